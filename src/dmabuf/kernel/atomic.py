"""Kernel names for atomic (being written)."""

__all__: list[str] = []
