"""The dma-fence functions that are not methods of one fence.

* :func:`check_fence`: the argument check of the kernel-named functions (an initialised, live fence);
* :func:`get_rcu_safe`: take a reference to the fence a field holds, retrying while it is replaced;
* :func:`wait_any_timeout`: sleep until any of several fences signals;
* the kernel globals, kept in ``rt().globals`` so that every execution of an exploration starts from the
  same state: :func:`context_alloc` (the fence context counter), :func:`get_stub` (the always-signaled stub
  fence) and :func:`allocate_private_stub`.

Kernel: ``dma_fence_wait_any_timeout``, ``dma_fence_get_rcu_safe``, ``dma_fence_context_alloc``,
``dma_fence_get_stub``, ``dma_fence_allocate_private_stub`` (drivers/dma-buf/dma-fence.c,
include/linux/dma-fence.h).
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgument, KernelBug
from ..kernel._warn import WARN
from ..kernel.errno import EINVAL
from ..runtime import READ, WRITE, Runtime, active, label_of, rt
from ..sync.spinlock import SpinLock
from .base import DmaFence, _sleep, _WaitCb, _wake_waiter
from .ops import _ENABLE, _SIGNALED, _TIMESTAMP, DmaFenceOps

__all__ = [
    "allocate_private_stub",
    "check_fence",
    "context_alloc",
    "get_rcu_safe",
    "get_stub",
    "wait_any_timeout",
]


# ---------------------------------------------------------------------- waiting on several fences
def wait_any_timeout(fences: list[DmaFence], count: int, intr: bool, timeout: int) -> tuple[int, int | None]:
    """Sleep until any of ``fences[:count]`` signals: ``(ret, idx)`` with ``ret`` as
    :meth:`DmaFence.wait_timeout` and ``idx`` the index of a signaled fence (``None`` if none).

    Locking: may sleep. Kernel: ``dma_fence_wait_any_timeout``.
    """
    if WARN(
        not fences or not count or timeout < 0,
        f"dma_fence_wait_any_timeout(count={count}, timeout={timeout}): bad arguments",
        "dma_fence_wait_any_timeout: bad arguments",
    ):
        return -EINVAL, None
    if count < 0 or count > len(fences):  # (C's count is a uint32_t: a negative one is no count at all)
        raise InvalidArgument(
            f"dma_fence_wait_any_timeout: count must be in 1..{len(fences)} (the fences given), got {count}"
        )
    for f in fences[:count]:
        check_fence(f, "dma_fence_wait_any_timeout")
    if timeout == 0:
        for i in range(count):
            if fences[i].is_signaled():
                return 1, i
        return 0, None
    r = rt()
    t = r.current()
    cbs: list[tuple[DmaFence, _WaitCb]] = []
    ret = timeout
    idx: int | None = None
    try:
        for i in range(count):
            cb = _WaitCb(t)
            if not fences[i].add_callback(cb, _wake_waiter):
                return timeout, i
            cbs.append((fences[i], cb))

        def any_signaled() -> bool:
            return any(f.flags & _SIGNALED for f in fences[:count])

        ret = _sleep(r, t, "dma_fence_wait_any", fences[0], any_signaled, intr, timeout)
        if ret > 0:
            for i in range(count):
                if fences[i].flags & _SIGNALED:
                    idx = i
                    break
        return ret, idx
    finally:
        for f, cb in reversed(cbs):
            f.remove_callback(cb)


# ---------------------------------------------------------------------- type checks
def check_fence(f: object, fn: str) -> DmaFence:
    """A kernel-named function's argument check: an initialised, live :class:`DmaFence`.

    Raises:
        InvalidArgument: ``f`` is not a DmaFence (``None`` where the kernel would crash) or not initialised.
        KernelBug: ``f`` was already freed (use after free).
    """
    if not isinstance(f, DmaFence):
        what = "NULL" if f is None else type(f).__name__
        raise InvalidArgument(f"{fn} needs a DmaFence, got {what}")
    if f.ops is None:
        raise InvalidArgument(f"{fn}: {label_of(f)} was never initialised; call dma_fence_init first")
    if f._freed:
        raise KernelBug(f"BUG: {fn} on {label_of(f)} after it was freed (use after free)", "use after free")
    return f


# ---------------------------------------------------------------------- RCU lookup
def _load(holder: Any, field: Any) -> Any:
    if isinstance(field, int) and not isinstance(field, bool):
        return holder[field]
    return getattr(holder, field)


def get_rcu_safe(holder: Any, field: Any) -> DmaFence | None:
    """Get a reference to the fence stored in ``holder.field`` (or ``holder[field]`` for a list),
    retrying while it is being replaced or released. Kernel: ``dma_fence_get_rcu_safe``."""
    if not isinstance(field, (str, int)) or isinstance(field, bool):
        raise InvalidArgument(f"dma_fence_get_rcu_safe needs a field name or index, got {field!r}")
    r = rt()
    while True:
        r.point("rcu_dereference", holder, READ)
        fence: object = _load(holder, field)
        if fence is None:
            return None
        if not isinstance(fence, DmaFence):
            raise InvalidArgument(f"dma_fence_get_rcu_safe: {field!r} holds a {type(fence).__name__}")
        if not fence.refcount.get_unless_zero():
            continue
        r.point("rcu_dereference", holder, READ)
        if _load(holder, field) is fence:
            got: DmaFence = fence
            return got
        fence.put()


# ---------------------------------------------------------------------- kernel globals
class _Global:
    def __init__(self, label: str) -> None:
        self._dm_label = label


_CONTEXT_COUNTER = _Global("dma_fence_context_counter")
_fallback_context = [1]


def context_alloc(num: int) -> int:
    """Reserve ``num`` consecutive fence contexts; returns the first. The counter starts at 1 in every
    execution. WARNs for ``num == 0``. Kernel: ``dma_fence_context_alloc``."""
    if isinstance(num, bool) or not isinstance(num, int) or num < 0:
        raise InvalidArgument(f"dma_fence_context_alloc needs a non-negative int, got {num!r}")
    WARN(num == 0, "dma_fence_context_alloc(0)", "dma_fence_context_alloc: num == 0")
    r = active()
    if r is None:
        first = _fallback_context[0]
        _fallback_context[0] += num
        return first
    r.point("atomic64_fetch_add", _CONTEXT_COUNTER, WRITE)
    first = int(r.globals.get("dma_fence_context", 1))
    r.globals["dma_fence_context"] = first + num
    return first


def _stub_name(f: DmaFence) -> str:
    return "stub"


_STUB_OPS = DmaFenceOps(get_driver_name=_stub_name, get_timeline_name=_stub_name)


def _stub_lock(r: Runtime) -> SpinLock:
    lock = r.globals.get("dma_fence_stub_lock")
    if lock is None:
        lock = SpinLock("dma_fence_stub_lock", lock_class="dma_fence_stub_lock")
        r.globals["dma_fence_stub_lock"] = lock
    assert isinstance(lock, SpinLock)
    return lock


def get_stub() -> DmaFence:
    """The always-signaled stub fence of this execution (context 0, seqno 0), with a reference taken.
    Kernel: ``dma_fence_get_stub``."""
    r = rt()
    stub = r.globals.get("dma_fence_stub")
    if stub is None:
        stub = DmaFence()
        stub._dm_label = "dma_fence_stub"  # type: ignore[attr-defined]
        stub.init(_STUB_OPS, _stub_lock(r), 0, 0)
        # signaled "at boot": no waiter can exist yet, so no scheduling point is needed
        stub.flags = _SIGNALED | _TIMESTAMP | _ENABLE
        stub.timestamp = r.now_ns()
        r.globals["dma_fence_stub"] = stub
    assert isinstance(stub, DmaFence)
    return stub.get()


def allocate_private_stub(timestamp: int) -> DmaFence:
    """A new signaled fence with the given timestamp (one reference). Kernel:
    ``dma_fence_allocate_private_stub``."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise InvalidArgument(f"dma_fence_allocate_private_stub needs an int timestamp, got {timestamp!r}")
    r = rt()
    f = DmaFence()
    f.init(_STUB_OPS, _stub_lock(r), 0, 0)
    f.flags |= _ENABLE
    f.signal(timestamp)
    return f
