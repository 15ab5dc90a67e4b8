"""Pythonic synchronisation primitives on the runtime seam (the kernel-named layer wraps them)."""

from .mutex import Mutex
from .spinlock import SpinLock

__all__ = ["Mutex", "SpinLock"]
