"""Kernel names for dma_fence_chain (being written)."""

__all__: list[str] = []
