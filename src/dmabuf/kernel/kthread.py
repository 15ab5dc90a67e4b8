"""Kernel names for kthread (being written)."""

__all__: list[str] = []
