"""Kernel names for wound/wait mutexes (``linux/ww_mutex.h``), over :mod:`dmabuf.sync.ww_mutex`.

Return conventions are the kernel's: ``ww_mutex_lock`` returns 0, ``-EALREADY`` (the context already holds
the lock) or ``-EDEADLK`` (back off: unlock everything, ``ww_mutex_lock_slow`` the contended lock, retry);
the ``_interruptible`` variants may also return ``-EINTR``; ``ww_mutex_trylock`` returns 1 or 0.

Kernel: include/linux/ww_mutex.h, kernel/locking/mutex.c, kernel/locking/ww_mutex.h.
"""

from __future__ import annotations

from ..errors import InvalidArgument
from ..sync.ww_mutex import WWAcquireCtx, WWClass, WWMutex, check_ww_ctx, check_ww_mutex

__all__ = [
    "DEFINE_WD_CLASS",
    "DEFINE_WW_CLASS",
    "WWAcquireCtx",
    "WWClass",
    "WWMutex",
    "ww_acquire_done",
    "ww_acquire_fini",
    "ww_acquire_init",
    "ww_mutex_destroy",
    "ww_mutex_init",
    "ww_mutex_is_locked",
    "ww_mutex_lock",
    "ww_mutex_lock_interruptible",
    "ww_mutex_lock_slow",
    "ww_mutex_lock_slow_interruptible",
    "ww_mutex_trylock",
    "ww_mutex_unlock",
]


def DEFINE_WW_CLASS(name: str) -> WWClass:
    """A Wound-Wait class (``DEFINE_WW_CLASS(name)``)."""
    return WWClass(name, wait_die=False)


def DEFINE_WD_CLASS(name: str) -> WWClass:
    """A Wait-Die class (``DEFINE_WD_CLASS(name)``)."""
    return WWClass(name, wait_die=True)


def _ctx_or_none(ctx: object, fn: str) -> WWAcquireCtx | None:
    return None if ctx is None else check_ww_ctx(ctx, fn)


def ww_mutex_init(lock: WWMutex, ww_class: WWClass) -> None:
    """Make ``lock`` ready and unlocked, of class ``ww_class``. Kernel: ``ww_mutex_init``."""
    check_ww_mutex(lock, "ww_mutex_init").init(ww_class)


def ww_mutex_destroy(lock: WWMutex) -> None:
    """Kernel: ``ww_mutex_destroy``: WARNs if the lock is still locked."""
    check_ww_mutex(lock, "ww_mutex_destroy").destroy()


def ww_acquire_init(ctx: WWAcquireCtx, ww_class: WWClass) -> None:
    """Start a transaction: ``ctx`` takes a new stamp of ``ww_class``. Kernel: ``ww_acquire_init``."""
    if not isinstance(ctx, WWAcquireCtx):
        raise InvalidArgument(f"ww_acquire_init needs a WWAcquireCtx, got {type(ctx).__name__}")
    ctx.init(ww_class)


def ww_acquire_done(ctx: WWAcquireCtx) -> None:
    """End of the acquire phase (later locks WARN). Kernel: ``ww_acquire_done``."""
    check_ww_ctx(ctx, "ww_acquire_done").done()


def ww_acquire_fini(ctx: WWAcquireCtx) -> None:
    """End the transaction; WARNs with locks still held or when called twice. Kernel: ``ww_acquire_fini``."""
    check_ww_ctx(ctx, "ww_acquire_fini").fini()


def ww_mutex_lock(lock: WWMutex, ctx: WWAcquireCtx | None) -> int:
    """Kernel: ``ww_mutex_lock``: 0, ``-EALREADY`` or ``-EDEADLK`` (``ctx`` None: plain lock, 0). May sleep."""
    c = _ctx_or_none(ctx, "ww_mutex_lock")
    return check_ww_mutex(lock, "ww_mutex_lock").lock_errno(c)


def ww_mutex_lock_interruptible(lock: WWMutex, ctx: WWAcquireCtx | None) -> int:
    """Kernel: ``ww_mutex_lock_interruptible``: as ``ww_mutex_lock`` plus ``-EINTR``."""
    c = _ctx_or_none(ctx, "ww_mutex_lock_interruptible")
    return check_ww_mutex(lock, "ww_mutex_lock_interruptible").lock_errno(c, interruptible=True)


def ww_mutex_lock_slow(lock: WWMutex, ctx: WWAcquireCtx) -> None:
    """Kernel: ``ww_mutex_lock_slow``: sleep for the contended lock after ``-EDEADLK`` (no result)."""
    check_ww_mutex(lock, "ww_mutex_lock_slow").lock_slow(check_ww_ctx(ctx, "ww_mutex_lock_slow"))


def ww_mutex_lock_slow_interruptible(lock: WWMutex, ctx: WWAcquireCtx) -> int:
    """Kernel: ``ww_mutex_lock_slow_interruptible``: 0 or ``-EINTR``."""
    fn = "ww_mutex_lock_slow_interruptible"
    m = check_ww_mutex(lock, fn)
    c = check_ww_ctx(ctx, fn)
    m._slow_check(c, fn)
    return m.lock_errno(c, interruptible=True)


def ww_mutex_trylock(lock: WWMutex, ctx: WWAcquireCtx | None) -> int:
    """Kernel: ``ww_mutex_trylock``: 1 if taken, 0 if busy (also when ``ctx`` already holds it)."""
    c = _ctx_or_none(ctx, "ww_mutex_trylock")
    return int(check_ww_mutex(lock, "ww_mutex_trylock").trylock(c))


def ww_mutex_unlock(lock: WWMutex) -> None:
    """Kernel: ``ww_mutex_unlock``."""
    check_ww_mutex(lock, "ww_mutex_unlock").unlock()


def ww_mutex_is_locked(lock: WWMutex) -> bool:
    """Kernel: ``ww_mutex_is_locked``."""
    return check_ww_mutex(lock, "ww_mutex_is_locked").is_locked()
