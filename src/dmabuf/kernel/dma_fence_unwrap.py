"""Kernel names for dma_fence_unwrap (being written)."""

__all__: list[str] = []
