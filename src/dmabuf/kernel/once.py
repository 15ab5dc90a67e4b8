"""Kernel names for once (being written)."""

__all__: list[str] = []
