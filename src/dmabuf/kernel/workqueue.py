"""Kernel names for workqueue (being written)."""

__all__: list[str] = []
