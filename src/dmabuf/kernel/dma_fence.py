"""Kernel names for dma_fence (being written)."""

__all__: list[str] = []
