"""Kernel names for rcu (being written)."""

__all__: list[str] = []
