"""Kernel names for seqcount (being written)."""

__all__: list[str] = []
