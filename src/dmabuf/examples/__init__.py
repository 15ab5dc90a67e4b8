"""Small shipped example bodies (used by ``dmabuf demo`` and the docs)."""
