"""Kernel names for waitqueue (being written)."""

__all__: list[str] = []
