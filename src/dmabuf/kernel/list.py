"""Kernel names for list (being written)."""

__all__: list[str] = []
