"""Kernel names for drm_exec (being written)."""

__all__: list[str] = []
