"""Kernel names for dma_resv (being written)."""

__all__: list[str] = []
