"""Kernel names for kref (being written)."""

__all__: list[str] = []
