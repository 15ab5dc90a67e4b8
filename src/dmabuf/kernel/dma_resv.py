"""Kernel names for reservation objects (``linux/dma-resv.h``) over :mod:`dmabuf.resv`.

Return conventions are the kernel's: the lock functions return 0 / ``-EDEADLK`` / ``-EALREADY`` (``-EINTR``
for the interruptible ones), ``dma_resv_trylock`` a bool; out-parameters come back after the result:
``ret, fences = dma_resv_get_fences(obj, usage)``, ``ret, fence = dma_resv_get_singleton(obj, usage)``.
Iteration macros are generators: ``for fence in dma_resv_for_each_fence(cursor, obj, usage)`` (lock held)
and ``dma_resv_iter_begin(cursor, obj, usage); for fence in dma_resv_for_each_fence_unlocked(cursor): ...;
dma_resv_iter_end(cursor)``.

Kernel: include/linux/dma-resv.h, drivers/dma-buf/dma-resv.c.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import InvalidArgument
from ..fence.fence import DmaFence
from ..resv import (
    DmaResv,
    DmaResvIter,
    Usage,
    check_resv,
    reservation_ww_class,
    usage_rw,
)
from ..sync.ww_mutex import WWAcquireCtx, check_ww_ctx

__all__ = [
    "DMA_RESV_USAGE_BOOKKEEP",
    "DMA_RESV_USAGE_KERNEL",
    "DMA_RESV_USAGE_READ",
    "DMA_RESV_USAGE_WRITE",
    "DmaResv",
    "DmaResvIter",
    "dma_resv_add_fence",
    "dma_resv_assert_held",
    "dma_resv_copy_fences",
    "dma_resv_fini",
    "dma_resv_for_each_fence",
    "dma_resv_for_each_fence_unlocked",
    "dma_resv_get_fences",
    "dma_resv_get_singleton",
    "dma_resv_held",
    "dma_resv_init",
    "dma_resv_is_locked",
    "dma_resv_iter_begin",
    "dma_resv_iter_end",
    "dma_resv_iter_first",
    "dma_resv_iter_first_unlocked",
    "dma_resv_iter_is_restarted",
    "dma_resv_iter_next",
    "dma_resv_iter_next_unlocked",
    "dma_resv_iter_usage",
    "dma_resv_lock",
    "dma_resv_lock_interruptible",
    "dma_resv_lock_slow",
    "dma_resv_lock_slow_interruptible",
    "dma_resv_locking_ctx",
    "dma_resv_replace_fences",
    "dma_resv_reserve_fences",
    "dma_resv_reset_max_fences",
    "dma_resv_set_deadline",
    "dma_resv_test_signaled",
    "dma_resv_trylock",
    "dma_resv_unlock",
    "dma_resv_usage_rw",
    "dma_resv_wait_timeout",
    "reservation_ww_class",
]

DMA_RESV_USAGE_KERNEL = Usage.KERNEL
DMA_RESV_USAGE_WRITE = Usage.WRITE
DMA_RESV_USAGE_READ = Usage.READ
DMA_RESV_USAGE_BOOKKEEP = Usage.BOOKKEEP


def _ctx(ctx: object, fn: str) -> WWAcquireCtx | None:
    return None if ctx is None else check_ww_ctx(ctx, fn)


def _cursor(cursor: Any, fn: str) -> DmaResvIter:
    if not isinstance(cursor, DmaResvIter):
        raise InvalidArgument(f"{fn} needs a DmaResvIter, got {type(cursor).__name__}")
    return cursor


# ---------------------------------------------------------------------- life cycle
def dma_resv_init(obj: DmaResv) -> None:
    """Make ``obj`` ready: its lock of ``reservation_ww_class``, no fences. Kernel: ``dma_resv_init``."""
    if not isinstance(obj, DmaResv):
        raise InvalidArgument(f"dma_resv_init needs a DmaResv, got {type(obj).__name__}")
    obj.init()


def dma_resv_fini(obj: DmaResv) -> None:
    """Put every fence and destroy the lock. Kernel: ``dma_resv_fini``."""
    check_resv(obj, "dma_resv_fini").fini()


# ---------------------------------------------------------------------- locking
def dma_resv_lock(obj: DmaResv, ctx: WWAcquireCtx | None) -> int:
    """0, ``-EALREADY`` or ``-EDEADLK`` (only with ``ctx``). May sleep. Kernel: ``dma_resv_lock``."""
    fn = "dma_resv_lock"
    return check_resv(obj, fn).lock_errno(_ctx(ctx, fn))


def dma_resv_lock_interruptible(obj: DmaResv, ctx: WWAcquireCtx | None) -> int:
    """As :func:`dma_resv_lock` plus ``-EINTR``. Kernel: ``dma_resv_lock_interruptible``."""
    fn = "dma_resv_lock_interruptible"
    return check_resv(obj, fn).lock_errno(_ctx(ctx, fn), interruptible=True)


def dma_resv_lock_slow(obj: DmaResv, ctx: WWAcquireCtx) -> None:
    """Sleep for the contended lock after ``-EDEADLK``. Kernel: ``dma_resv_lock_slow``."""
    fn = "dma_resv_lock_slow"
    check_resv(obj, fn).lock_slow(check_ww_ctx(ctx, fn))


def dma_resv_lock_slow_interruptible(obj: DmaResv, ctx: WWAcquireCtx) -> int:
    """0 or ``-EINTR``. Kernel: ``dma_resv_lock_slow_interruptible``."""
    fn = "dma_resv_lock_slow_interruptible"
    return check_resv(obj, fn).lock_slow_interruptible(check_ww_ctx(ctx, fn))


def dma_resv_trylock(obj: DmaResv) -> bool:
    """Lock without a context if free. Kernel: ``dma_resv_trylock``."""
    return check_resv(obj, "dma_resv_trylock").trylock()


def dma_resv_is_locked(obj: DmaResv) -> bool:
    """Kernel: ``dma_resv_is_locked``."""
    return check_resv(obj, "dma_resv_is_locked").is_locked()


def dma_resv_locking_ctx(obj: DmaResv) -> WWAcquireCtx | None:
    """The acquire context holding ``obj``'s lock. Kernel: ``dma_resv_locking_ctx``."""
    return check_resv(obj, "dma_resv_locking_ctx").locking_ctx()


def dma_resv_unlock(obj: DmaResv) -> None:
    """Drop unused fence slots and unlock. Kernel: ``dma_resv_unlock``."""
    check_resv(obj, "dma_resv_unlock").unlock()


def dma_resv_reset_max_fences(obj: DmaResv) -> None:
    """``max_fences = num_fences``; lock held (asserted). Kernel: ``dma_resv_reset_max_fences``."""
    check_resv(obj, "dma_resv_reset_max_fences").reset_max_fences()


def dma_resv_held(obj: DmaResv) -> bool:
    """True if the caller holds ``obj``'s lock (``lockdep_is_held``). Kernel: ``dma_resv_held``."""
    return check_resv(obj, "dma_resv_held").held()


def dma_resv_assert_held(obj: DmaResv) -> None:
    """WARN unless the caller holds ``obj``'s lock. Kernel: ``dma_resv_assert_held``."""
    check_resv(obj, "dma_resv_assert_held").assert_held()


# ---------------------------------------------------------------------- writers
def dma_resv_reserve_fences(obj: DmaResv, num_fences: int) -> int:
    """Reserve ``num_fences`` slots; 0. Lock held (asserted). Kernel: ``dma_resv_reserve_fences``."""
    return check_resv(obj, "dma_resv_reserve_fences").reserve_fences(num_fences)


def dma_resv_add_fence(obj: DmaResv, fence: DmaFence, usage: Usage) -> None:
    """Add (or replace with) ``fence``. BUGs without a reserved slot; lock held (asserted).
    Kernel: ``dma_resv_add_fence``."""
    check_resv(obj, "dma_resv_add_fence").add_fence(fence, usage)


def dma_resv_replace_fences(obj: DmaResv, context: int, replacement: DmaFence, usage: Usage) -> None:
    """Replace the fences of ``context`` by ``replacement``. Kernel: ``dma_resv_replace_fences``."""
    check_resv(obj, "dma_resv_replace_fences").replace_fences(context, replacement, usage)


def dma_resv_copy_fences(dst: DmaResv, src: DmaResv) -> int:
    """Copy ``src``'s unsignaled fences over ``dst``'s; 0. ``dst`` held. Kernel: ``dma_resv_copy_fences``."""
    return check_resv(dst, "dma_resv_copy_fences").copy_fences(src)


# ---------------------------------------------------------------------- iterators
def dma_resv_iter_begin(cursor: DmaResvIter, obj: DmaResv, usage: Usage) -> None:
    """Kernel: ``dma_resv_iter_begin``."""
    _cursor(cursor, "dma_resv_iter_begin").begin(obj, usage)


def dma_resv_iter_end(cursor: DmaResvIter) -> None:
    """Kernel: ``dma_resv_iter_end`` (puts the cursor's fence)."""
    _cursor(cursor, "dma_resv_iter_end").end()


def dma_resv_iter_first_unlocked(cursor: DmaResvIter) -> DmaFence | None:
    """Kernel: ``dma_resv_iter_first_unlocked``."""
    return _cursor(cursor, "dma_resv_iter_first_unlocked").first_unlocked()


def dma_resv_iter_next_unlocked(cursor: DmaResvIter) -> DmaFence | None:
    """Kernel: ``dma_resv_iter_next_unlocked``."""
    return _cursor(cursor, "dma_resv_iter_next_unlocked").next_unlocked()


def dma_resv_iter_first(cursor: DmaResvIter) -> DmaFence | None:
    """Lock held (asserted). Kernel: ``dma_resv_iter_first``."""
    return _cursor(cursor, "dma_resv_iter_first").first()


def dma_resv_iter_next(cursor: DmaResvIter) -> DmaFence | None:
    """Lock held (asserted). Kernel: ``dma_resv_iter_next``."""
    return _cursor(cursor, "dma_resv_iter_next").next()


def dma_resv_iter_usage(cursor: DmaResvIter) -> Usage:
    """Usage of the cursor's current fence. Kernel: ``dma_resv_iter_usage``."""
    return _cursor(cursor, "dma_resv_iter_usage").fence_usage


def dma_resv_iter_is_restarted(cursor: DmaResvIter) -> bool:
    """True on the first fence after a (re)start. Kernel: ``dma_resv_iter_is_restarted``."""
    return _cursor(cursor, "dma_resv_iter_is_restarted").is_restarted


def dma_resv_for_each_fence(cursor: DmaResvIter, obj: DmaResv, usage: Usage) -> Iterator[DmaFence]:
    """``for fence in dma_resv_for_each_fence(cursor, obj, usage)``: every fence with usage ``<= usage``,
    signaled included, no references. Lock held (asserted). Kernel: ``dma_resv_for_each_fence``."""
    c = _cursor(cursor, "dma_resv_for_each_fence")
    c.begin(obj, usage)
    fence = c.first()
    while fence is not None:
        yield fence
        fence = c.next()


def dma_resv_for_each_fence_unlocked(cursor: DmaResvIter) -> Iterator[DmaFence]:
    """``for fence in dma_resv_for_each_fence_unlocked(cursor)`` after ``dma_resv_iter_begin``: unsignaled
    fences, each referenced by the cursor until the next step; may restart (check
    ``dma_resv_iter_is_restarted``). Kernel: ``dma_resv_for_each_fence_unlocked``."""
    c = _cursor(cursor, "dma_resv_for_each_fence_unlocked")
    fence = c.first_unlocked()
    while fence is not None:
        yield fence
        fence = c.next_unlocked()


# ---------------------------------------------------------------------- queries
def dma_resv_get_fences(obj: DmaResv, usage: Usage) -> tuple[int, list[DmaFence]]:
    """``(0, fences)``: the unsignaled fences with usage ``<= usage``, one reference each.
    Kernel: ``dma_resv_get_fences``."""
    return 0, check_resv(obj, "dma_resv_get_fences").get_fences(usage)


def dma_resv_get_singleton(obj: DmaResv, usage: Usage) -> tuple[int, DmaFence | None]:
    """``(0, fence)``: ``None``, the one fence, or a fence array over them. Kernel:
    ``dma_resv_get_singleton``."""
    return 0, check_resv(obj, "dma_resv_get_singleton").get_singleton(usage)


def dma_resv_wait_timeout(obj: DmaResv, usage: Usage, intr: bool, timeout: int) -> int:
    """Jiffies left (> 0), 0 on timeout, ``-ERESTARTSYS``. May sleep. Kernel: ``dma_resv_wait_timeout``."""
    return check_resv(obj, "dma_resv_wait_timeout").wait_timeout(usage, intr, timeout)


def dma_resv_set_deadline(obj: DmaResv, usage: Usage, deadline: int) -> None:
    """Kernel: ``dma_resv_set_deadline``."""
    if isinstance(deadline, bool) or not isinstance(deadline, int):
        raise InvalidArgument(f"dma_resv_set_deadline needs an int deadline (ns), got {deadline!r}")
    check_resv(obj, "dma_resv_set_deadline").set_deadline(usage, deadline)


def dma_resv_test_signaled(obj: DmaResv, usage: Usage) -> bool:
    """True if all fences with usage ``<= usage`` signaled. Kernel: ``dma_resv_test_signaled``."""
    return check_resv(obj, "dma_resv_test_signaled").test_signaled(usage)


def dma_resv_usage_rw(write: bool) -> Usage:
    """READ for a writer, WRITE for a reader. Kernel: ``dma_resv_usage_rw``."""
    return usage_rw(bool(write))
