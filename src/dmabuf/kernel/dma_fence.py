"""Kernel names for ``linux/dma-fence.h`` over :class:`dmabuf.fence.DmaFence` (v6.12 semantics).

Return conventions follow the kernel: ``dma_fence_signal*`` return 0 or ``-EINVAL`` (already signaled,
or ``NULL`` for the unlocked variants), ``dma_fence_add_callback`` 0 / ``-ENOENT`` / ``-EINVAL``, waits
return jiffies left / 0 / ``-ERESTARTSYS``; ``dma_fence_wait_any_timeout`` returns ``(ret, idx)``.
"""

from __future__ import annotations

from typing import Any, overload

from ..errors import InvalidArgument
from ..fence.fence import (
    DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT,
    DMA_FENCE_FLAG_SIGNALED_BIT,
    DMA_FENCE_FLAG_TIMESTAMP_BIT,
    DMA_FENCE_FLAG_USER_BITS,
    DmaFence,
    DmaFenceCb,
    DmaFenceOps,
    FenceFunc,
    allocate_private_stub,
    begin_signalling,
    check_fence,
    context_alloc,
    end_signalling,
    get_rcu_safe,
    get_stub,
    might_wait,
    wait_any_timeout,
)
from ..sync.spinlock import SpinLock
from ._warn import WARN
from .errno import EINVAL, ENOENT

__all__ = [
    "DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT",
    "DMA_FENCE_FLAG_SIGNALED_BIT",
    "DMA_FENCE_FLAG_TIMESTAMP_BIT",
    "DMA_FENCE_FLAG_USER_BITS",
    "DmaFence",
    "DmaFenceCb",
    "DmaFenceOps",
    "__dma_fence_might_wait",
    "dma_fence_add_callback",
    "dma_fence_allocate_private_stub",
    "dma_fence_begin_signalling",
    "dma_fence_context_alloc",
    "dma_fence_default_wait",
    "dma_fence_enable_sw_signaling",
    "dma_fence_end_signalling",
    "dma_fence_free",
    "dma_fence_get",
    "dma_fence_get_rcu",
    "dma_fence_get_rcu_safe",
    "dma_fence_get_status",
    "dma_fence_get_status_locked",
    "dma_fence_get_stub",
    "dma_fence_init",
    "dma_fence_is_later",
    "dma_fence_is_later_or_same",
    "dma_fence_is_signaled",
    "dma_fence_is_signaled_locked",
    "dma_fence_later",
    "dma_fence_put",
    "dma_fence_remove_callback",
    "dma_fence_set_deadline",
    "dma_fence_set_error",
    "dma_fence_signal",
    "dma_fence_signal_locked",
    "dma_fence_signal_timestamp",
    "dma_fence_signal_timestamp_locked",
    "dma_fence_timestamp",
    "dma_fence_wait",
    "dma_fence_wait_any_timeout",
    "dma_fence_wait_timeout",
]


def _int(v: object, fn: str, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise InvalidArgument(f"{fn}: {what} must be an int, got {v!r}")
    return v


def dma_fence_init(fence: DmaFence, ops: DmaFenceOps, lock: SpinLock, context: int, seqno: int) -> None:
    """Initialise ``fence`` with one reference. BUGs without ``lock`` or the mandatory ops.

    Kernel: ``dma_fence_init`` (drivers/dma-buf/dma-fence.c)."""
    if not isinstance(fence, DmaFence):
        raise InvalidArgument(f"dma_fence_init needs a DmaFence, got {type(fence).__name__}")
    if ops is not None and not isinstance(ops, DmaFenceOps):
        raise InvalidArgument(f"dma_fence_init needs a DmaFenceOps table, got {type(ops).__name__}")
    fence.init(ops, lock, context, seqno)


def dma_fence_context_alloc(num: int) -> int:
    """First of ``num`` new fence contexts (the counter starts at 1 in each execution).

    Kernel: ``dma_fence_context_alloc``."""
    return context_alloc(num)


@overload
def dma_fence_get(fence: DmaFence) -> DmaFence: ...
@overload
def dma_fence_get(fence: None) -> None: ...
@overload
def dma_fence_get(fence: DmaFence | None) -> DmaFence | None: ...
def dma_fence_get(fence: DmaFence | None) -> DmaFence | None:
    """Take a reference (``NULL`` passes through). Kernel: ``dma_fence_get``."""
    if fence is None:
        return None
    return check_fence(fence, "dma_fence_get").get()


def dma_fence_get_rcu(fence: DmaFence) -> DmaFence | None:
    """Take a reference unless the count already reached zero. Kernel: ``dma_fence_get_rcu``."""
    if not isinstance(fence, DmaFence):
        raise InvalidArgument(f"dma_fence_get_rcu needs a DmaFence, got {type(fence).__name__}")
    return fence.get_unless_zero()


def dma_fence_get_rcu_safe(holder: Any, field: str | int) -> DmaFence | None:
    """Reference the fence in ``holder.field`` (``holder[field]`` for a list), the C ``&holder->field``,
    retrying while it is replaced or released. Locking: an RCU read-side section in the kernel.
    Kernel: ``dma_fence_get_rcu_safe``."""
    fn = "dma_fence_get_rcu_safe"
    if isinstance(field, str):
        if not hasattr(holder, field):
            raise InvalidArgument(f"{fn}: {type(holder).__name__} has no field {field!r}")
    elif isinstance(field, int) and not isinstance(field, bool):
        if not isinstance(holder, list) or not -len(holder) <= field < len(holder):
            raise InvalidArgument(
                f"{fn}: index {field} needs a list holding that slot, got {type(holder).__name__}"
            )
    else:
        raise InvalidArgument(f"{fn} needs a field name or list index, got {field!r}")
    return get_rcu_safe(holder, field)


def dma_fence_put(fence: DmaFence | None) -> None:
    """Drop a reference; the last one releases (WARN "released with pending signals" if callbacks are
    still queued on an unsignaled fence). ``NULL`` is ignored. Kernel: ``dma_fence_put``."""
    if fence is None:
        return
    check_fence(fence, "dma_fence_put").put()


def dma_fence_free(fence: DmaFence) -> None:
    """Default release: free the fence. Kernel: ``dma_fence_free``."""
    check_fence(fence, "dma_fence_free").free()


def dma_fence_signal(fence: DmaFence | None) -> int:
    """Signal: 0, or ``-EINVAL`` if already signaled or ``fence`` is ``NULL`` (no WARN). Runs the
    callbacks in the caller, under the fence lock, inside a signalling section.
    Kernel: ``dma_fence_signal``."""
    if fence is None:
        return -EINVAL
    return 0 if check_fence(fence, "dma_fence_signal").signal() else -EINVAL


def dma_fence_signal_locked(fence: DmaFence) -> int:
    """:func:`dma_fence_signal` with the fence lock held. Kernel: ``dma_fence_signal_locked``."""
    return 0 if check_fence(fence, "dma_fence_signal_locked").signal_locked() else -EINVAL


def dma_fence_signal_timestamp(fence: DmaFence | None, timestamp: int) -> int:
    """Signal with the given timestamp (ns): 0, or ``-EINVAL`` if already signaled or ``fence`` is
    ``NULL`` (no WARN). Kernel: ``dma_fence_signal_timestamp``."""
    if fence is None:
        return -EINVAL
    f = check_fence(fence, "dma_fence_signal_timestamp")
    return 0 if f.signal(_int(timestamp, "dma_fence_signal_timestamp", "timestamp")) else -EINVAL


def dma_fence_signal_timestamp_locked(fence: DmaFence, timestamp: int) -> int:
    """Kernel: ``dma_fence_signal_timestamp_locked``."""
    f = check_fence(fence, "dma_fence_signal_timestamp_locked")
    return (
        0 if f.signal_locked(_int(timestamp, "dma_fence_signal_timestamp_locked", "timestamp")) else -EINVAL
    )


def dma_fence_enable_sw_signaling(fence: DmaFence) -> None:
    """Kernel: ``dma_fence_enable_sw_signaling``."""
    check_fence(fence, "dma_fence_enable_sw_signaling").enable_sw_signaling()


def dma_fence_add_callback(fence: DmaFence | None, cb: DmaFenceCb, func: FenceFunc | None) -> int:
    """Queue ``func(fence, cb)``: 0, ``-ENOENT`` if already signaled (``func`` is not called), WARN and
    ``-EINVAL`` for a ``NULL`` fence or function. Kernel: ``dma_fence_add_callback``."""
    if WARN(
        fence is None or func is None,
        "dma_fence_add_callback with NULL fence or func",
        "dma_fence_add_callback: NULL argument",
    ):
        return -EINVAL
    assert func is not None
    if not callable(func):
        raise InvalidArgument(f"dma_fence_add_callback needs a function, got {type(func).__name__}")
    f = check_fence(fence, "dma_fence_add_callback")
    return 0 if f.add_callback(cb, func) else -ENOENT


def dma_fence_remove_callback(fence: DmaFence, cb: DmaFenceCb) -> bool:
    """True if ``cb`` was still pending and is now removed. Kernel: ``dma_fence_remove_callback``."""
    return check_fence(fence, "dma_fence_remove_callback").remove_callback(cb)


def dma_fence_is_signaled(fence: DmaFence) -> bool:
    """Kernel: ``dma_fence_is_signaled``."""
    return check_fence(fence, "dma_fence_is_signaled").is_signaled()


def dma_fence_is_signaled_locked(fence: DmaFence) -> bool:
    """Kernel: ``dma_fence_is_signaled_locked``."""
    return check_fence(fence, "dma_fence_is_signaled_locked").is_signaled_locked()


def dma_fence_get_status(fence: DmaFence) -> int:
    """0 pending, 1 signaled, negative error if signaled with one. Kernel: ``dma_fence_get_status``."""
    return check_fence(fence, "dma_fence_get_status").get_status()


def dma_fence_get_status_locked(fence: DmaFence) -> int:
    """Kernel: ``dma_fence_get_status_locked``."""
    return check_fence(fence, "dma_fence_get_status_locked").get_status_locked()


def dma_fence_set_error(fence: DmaFence, error: int) -> None:
    """Kernel: ``dma_fence_set_error`` (WARNs if signaled or not a negative errno)."""
    check_fence(fence, "dma_fence_set_error").set_error(error)


def dma_fence_wait_timeout(fence: DmaFence, intr: bool, timeout: int) -> int:
    """Kernel: ``dma_fence_wait_timeout``: jiffies left (>0), 0 on timeout, ``-ERESTARTSYS``, WARN and
    ``-EINVAL`` for a negative timeout."""
    return check_fence(fence, "dma_fence_wait_timeout").wait_timeout(bool(intr), timeout)


def dma_fence_wait(fence: DmaFence, intr: bool) -> int:
    """Kernel: ``dma_fence_wait``: 0 or ``-ERESTARTSYS``."""
    return check_fence(fence, "dma_fence_wait").wait(bool(intr))


def dma_fence_default_wait(fence: DmaFence, intr: bool, timeout: int) -> int:
    """Kernel: ``dma_fence_default_wait``."""
    f = check_fence(fence, "dma_fence_default_wait")
    return f.default_wait(bool(intr), _int(timeout, "dma_fence_default_wait", "timeout"))


def dma_fence_wait_any_timeout(
    fences: list[DmaFence] | None, count: int, intr: bool, timeout: int
) -> tuple[int, int | None]:
    """Kernel: ``dma_fence_wait_any_timeout``; the out-parameter ``idx`` comes back after the result:
    ``ret, idx = dma_fence_wait_any_timeout(fences, n, intr, t)`` (``idx`` is ``None`` when unset)."""
    _int(count, "dma_fence_wait_any_timeout", "count")
    _int(timeout, "dma_fence_wait_any_timeout", "timeout")
    if fences is not None and not isinstance(fences, list):
        raise InvalidArgument(f"dma_fence_wait_any_timeout needs a list, got {type(fences).__name__}")
    return wait_any_timeout(fences or [], count, bool(intr), timeout)


def dma_fence_is_later(f1: DmaFence, f2: DmaFence) -> bool:
    """Kernel: ``dma_fence_is_later`` (WARN and False across contexts)."""
    return check_fence(f1, "dma_fence_is_later").is_later(check_fence(f2, "dma_fence_is_later"))


def dma_fence_is_later_or_same(f1: DmaFence, f2: DmaFence) -> bool:
    """Kernel: ``dma_fence_is_later_or_same``."""
    return f1 is f2 or dma_fence_is_later(f1, f2)


def dma_fence_later(f1: DmaFence, f2: DmaFence) -> DmaFence | None:
    """The later of two fences on one context, ``None`` if that one already signaled (WARN and ``None``
    across contexts). Kernel: ``dma_fence_later``."""
    a = check_fence(f1, "dma_fence_later")
    b = check_fence(f2, "dma_fence_later")
    if WARN(
        a.context != b.context,
        "dma_fence_later: fences on different contexts",
        "dma_fence_later: context mismatch",
    ):
        return None
    later = a if a.is_later(b) else b
    return None if later.is_signaled() else later


def dma_fence_timestamp(fence: DmaFence) -> int:
    """The signal timestamp (ns); WARN and now if unsignaled. Kernel: ``dma_fence_timestamp``."""
    return check_fence(fence, "dma_fence_timestamp").timestamp_ns()


def dma_fence_get_stub() -> DmaFence:
    """Kernel: ``dma_fence_get_stub``."""
    return get_stub()


def dma_fence_allocate_private_stub(timestamp: int) -> DmaFence:
    """Kernel: ``dma_fence_allocate_private_stub``."""
    return allocate_private_stub(timestamp)


def dma_fence_set_deadline(fence: DmaFence, deadline: int) -> None:
    """Kernel: ``dma_fence_set_deadline``."""
    check_fence(fence, "dma_fence_set_deadline").set_deadline(
        _int(deadline, "dma_fence_set_deadline", "deadline")
    )


def dma_fence_begin_signalling() -> bool:
    """Kernel: ``dma_fence_begin_signalling``: returns the cookie for :func:`dma_fence_end_signalling`."""
    return begin_signalling()


def dma_fence_end_signalling(cookie: bool) -> None:
    """Kernel: ``dma_fence_end_signalling``."""
    end_signalling(cookie)


def __dma_fence_might_wait() -> None:
    """Kernel: ``__dma_fence_might_wait`` (the annotation ``dma_fence_wait_timeout`` makes)."""
    might_wait()
