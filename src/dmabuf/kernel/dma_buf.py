"""Kernel names for dma_buf (being written)."""

__all__: list[str] = []
