"""Kernel names for ww_mutex (being written)."""

__all__: list[str] = []
