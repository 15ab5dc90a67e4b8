"""Pythonic synchronisation primitives on the runtime seam (the kernel-named layer wraps them)."""

from .mutex import Mutex
from .spinlock import SpinLock
from .ww_mutex import WWAcquireCtx, WWClass, WWMutex

__all__ = ["Mutex", "SpinLock", "WWAcquireCtx", "WWClass", "WWMutex"]
