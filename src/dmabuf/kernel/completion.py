"""Kernel names for completion (being written)."""

__all__: list[str] = []
