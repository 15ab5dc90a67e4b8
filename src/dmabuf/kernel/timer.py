"""Kernel names for timer (being written)."""

__all__: list[str] = []
