"""Kernel names for dma_fence_array (being written)."""

__all__: list[str] = []
