"""The fence object, :class:`DmaFence` (``struct dma_fence``), and the sleep of its default wait.

A fence starts unsignaled and is signaled exactly once. Drivers embed it by subclassing (so do
:class:`~dmabuf.fence.array.DmaFenceArray` and :class:`~dmabuf.fence.chain.DmaFenceChain`). Its methods
cover the life cycle (init, get/put, release, free), signalling, callbacks, the status queries and waiting;
:func:`_sleep`, :class:`_WaitCb` and :func:`_wake_waiter` are the sleep behind
:meth:`DmaFence.default_wait`, shared with :func:`~dmabuf.fence.functions.wait_any_timeout`.

Every operation that reads or changes fence state is preceded by a scheduling point on the fence (``READ``
for lockless tests, ``WRITE`` otherwise); the operations the kernel does under ``fence->lock`` take that
:class:`~dmabuf.sync.SpinLock` for real. Timestamps are nanoseconds of the runtime clock, timeouts are
jiffies converted with :data:`~dmabuf.kernel.config.HZ`.

Kernel: ``struct dma_fence`` (include/linux/dma-fence.h, drivers/dma-buf/dma-fence.c), v6.12 semantics.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import lockdep
from ..errors import InvalidArgument, KernelBug
from ..kernel import config
from ..kernel._warn import WARN
from ..kernel.errno import EDEADLK, EINVAL, ERESTARTSYS, MAX_ERRNO
from ..kernel.kref import KREF_INIT, Kref
from ..kernel.sched import MAX_SCHEDULE_TIMEOUT, might_sleep
from ..runtime import READ, WRITE, Runtime, Task, label_of, rt
from ..sync.spinlock import SpinLock
from .ops import _ENABLE, _SIGNALED, _TIMESTAMP, DmaFenceCb, DmaFenceOps, FenceFunc, is_later_seqno
from .signalling import begin_signalling, end_signalling, might_wait

__all__ = ["DmaFence"]


_NS = 1_000_000_000


class DmaFence:
    """A fence (``struct dma_fence``). ``DmaFence()`` is an empty struct; :meth:`init` (or
    ``dma_fence_init``) makes it ready with one reference. Drivers embed it by subclassing.

    Fields keep their kernel names: ``flags``, ``seqno``, ``context``, ``error``, ``ops``, ``lock``,
    ``refcount``, ``timestamp`` (ns of the runtime clock, valid once signaled), ``cb_list``.

    Kernel: ``struct dma_fence`` (include/linux/dma-fence.h).
    """

    def __init__(self) -> None:
        self.flags = 0
        self.seqno = 0
        self.context = 0
        self.error = 0
        self.ops: DmaFenceOps | None = None
        self.lock: SpinLock | None = None
        self.refcount = Kref()
        self.timestamp = 0
        self.cb_list: list[DmaFenceCb] = []
        self._freed = False

    # ------------------------------------------------------------------ life cycle
    def init(self, ops: DmaFenceOps, lock: SpinLock, context: int, seqno: int) -> None:
        """Make the fence ready: one reference, unsignaled, no error. Not a scheduling point (the fence
        is not shared yet).

        Raises:
            KernelBug: ``lock`` is missing or ``ops`` lacks ``get_driver_name``/``get_timeline_name``.

        Kernel: ``dma_fence_init`` (drivers/dma-buf/dma-fence.c).
        """
        if lock is None:
            raise KernelBug("BUG: dma_fence_init without a lock", "dma_fence_init: BUG_ON(!lock)")
        if ops is None or ops.get_driver_name is None or ops.get_timeline_name is None:
            raise KernelBug(
                "BUG: dma_fence_init needs ops with get_driver_name and get_timeline_name",
                "dma_fence_init: BUG_ON(!ops || !get_driver_name || !get_timeline_name)",
            )
        if not isinstance(ops, DmaFenceOps):
            raise InvalidArgument(f"dma_fence_init needs DmaFenceOps, got {type(ops).__name__}")
        if not isinstance(lock, SpinLock):
            raise InvalidArgument(f"dma_fence_init needs a SpinLock, got {type(lock).__name__}")
        for what, v in (("context", context), ("seqno", seqno)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise InvalidArgument(f"dma_fence_init: {what} must be a u64, got {v!r}")
        self.refcount = KREF_INIT(1)
        self.ops = ops
        self.cb_list = []
        self.lock = lock
        self.context = context & ((1 << 64) - 1)
        self.seqno = seqno & ((1 << 64) - 1)
        self.flags = 0
        self.error = 0
        self.timestamp = 0
        self._freed = False

    def get(self) -> DmaFence:
        """Take a reference and return the fence. Kernel: ``dma_fence_get``."""
        self.refcount.get()
        return self

    def get_unless_zero(self) -> DmaFence | None:
        """Take a reference unless the fence is being released. Kernel: ``dma_fence_get_rcu``."""
        return self if self.refcount.get_unless_zero() else None

    def put(self) -> None:
        """Drop a reference; the last one releases the fence. Kernel: ``dma_fence_put``."""
        self.refcount.put(self._kref_release)

    def _kref_release(self, _kref: object) -> None:
        """``dma_fence_release``: the last reference is gone."""
        if self.cb_list and not self.flags & _SIGNALED:
            ops = self.ops
            assert ops is not None and ops.get_driver_name is not None and ops.get_timeline_name is not None
            WARN(
                True,
                f"Fence {ops.get_driver_name(self)}:{ops.get_timeline_name(self)}:{self.context:x}:"
                f"{self.seqno:x} released with pending signals!",
                "dma_fence_release: released with pending signals",
            )
            flags = self._lock()
            self.error = -EDEADLK
            self._signal_locked(rt().now_ns())
            self._unlock(flags)
        ops = self.ops
        if ops is not None and ops.release is not None:
            ops.release(self)
        else:
            self.free()

    def free(self) -> None:
        """Free the fence memory (after an RCU grace period in the kernel). Later use is a KernelBug.

        Kernel: ``dma_fence_free``."""
        self._freed = True

    # ------------------------------------------------------------------ locking helpers
    def _lock(self) -> int:
        lock = self.lock
        assert lock is not None
        return lock.lock_irqsave()

    def _unlock(self, flags: int) -> None:
        lock = self.lock
        assert lock is not None
        lock.unlock_irqrestore(flags)

    def _assert_locked(self) -> None:
        assert self.lock is not None
        lockdep.assert_held(self.lock, f"fence lock {label_of(self.lock)} of {label_of(self)}")

    # ------------------------------------------------------------------ signalling
    def _signal_locked(self, timestamp: int) -> bool:
        """Core of every signal variant; the lock is held. False if it was signaled already."""
        r = rt()
        r.point("dma_fence_signal", self, WRITE)
        if self.flags & _SIGNALED:
            return False
        self.flags |= _SIGNALED
        cbs, self.cb_list = self.cb_list, []
        self.timestamp = timestamp
        self.flags |= _TIMESTAMP
        r.notify(self)
        for cb in cbs:
            cb._on = None
            func = cb.func
            assert func is not None
            func(self, cb)
        return True

    def signal(self, timestamp: int | None = None) -> bool:
        """Signal the fence: record the timestamp (default: now), run the callbacks in the order they were
        added, wake the waiters. Returns ``False`` if it was already signaled (nothing happens then).

        Locking: takes the fence lock; callbacks run under it (atomic context). Opens a fence signalling
        section around it. Kernel: ``dma_fence_signal`` / ``dma_fence_signal_timestamp``.
        """
        cookie = begin_signalling() if timestamp is None else True
        try:
            flags = self._lock()
            try:
                ok = self._signal_locked(rt().now_ns() if timestamp is None else timestamp)
            finally:
                self._unlock(flags)
        finally:
            end_signalling(cookie)
        return ok

    def signal_locked(self, timestamp: int | None = None) -> bool:
        """:meth:`signal` for a caller that holds the fence lock. Kernel: ``dma_fence_signal_locked`` /
        ``dma_fence_signal_timestamp_locked``."""
        self._assert_locked()
        return self._signal_locked(rt().now_ns() if timestamp is None else timestamp)

    def _enable_signaling(self) -> bool:
        """``__dma_fence_enable_signaling`` (lock held): True if the fence is still pending."""
        was_set = self.flags & _ENABLE
        self.flags |= _ENABLE
        if self.flags & _SIGNALED:
            return False
        ops = self.ops
        assert ops is not None
        if not was_set and ops.enable_signaling is not None and not ops.enable_signaling(self):
            self._signal_locked(rt().now_ns())
            return False
        return True

    def enable_sw_signaling(self) -> None:
        """Ask the driver to signal this fence (calls ``ops.enable_signaling`` the first time).

        Locking: takes the fence lock. Kernel: ``dma_fence_enable_sw_signaling``."""
        rt().point("dma_fence_enable_sw_signaling", self, WRITE)
        flags = self._lock()
        try:
            self._enable_signaling()
        finally:
            self._unlock(flags)

    def add_callback(self, cb: DmaFenceCb, func: FenceFunc) -> bool:
        """Queue ``func(fence, cb)`` to run when the fence signals. Returns ``False`` (and never calls
        ``func``) if the fence is already signaled.

        Locking: takes the fence lock; ``func`` runs later in the signaller, in atomic context.
        Kernel: ``dma_fence_add_callback``.
        """
        if not isinstance(cb, DmaFenceCb):
            raise InvalidArgument(f"add_callback needs a DmaFenceCb, got {type(cb).__name__}")
        r = rt()
        r.point("dma_fence_add_callback", self, WRITE)
        if self.flags & _SIGNALED:
            cb._on = None
            return False
        flags = self._lock()
        try:
            if self._enable_signaling():
                if cb._on is not None:
                    WARN(True, f"{label_of(cb)} is already queued on a fence", "dma_fence_cb: double add")
                cb.func = func
                self.cb_list.append(cb)
                cb._on = self.cb_list
                return True
            cb._on = None
            return False
        finally:
            self._unlock(flags)

    def remove_callback(self, cb: DmaFenceCb) -> bool:
        """Unqueue ``cb``; ``True`` if it was still pending, ``False`` if it already ran (or was never
        added). Kernel: ``dma_fence_remove_callback``."""
        if not isinstance(cb, DmaFenceCb):
            raise InvalidArgument(f"remove_callback needs a DmaFenceCb, got {type(cb).__name__}")
        rt().point("dma_fence_remove_callback", self, WRITE)
        flags = self._lock()
        try:
            lst = cb._on
            if lst is None:
                return False
            for i, x in enumerate(lst):
                if x is cb:
                    del lst[i]
                    break
            cb._on = None
            return True
        finally:
            self._unlock(flags)

    # ------------------------------------------------------------------ queries
    def test_signaled_flag(self) -> bool:
        """The SIGNALED bit, read locklessly (``test_bit(DMA_FENCE_FLAG_SIGNALED_BIT, &f->flags)``)."""
        rt().point("dma_fence_test_signaled", self, READ)
        return bool(self.flags & _SIGNALED)

    def is_signaled(self) -> bool:
        """True if signaled; polls ``ops.signaled`` and signals the fence if that says it completed. Does
        not enable signaling. Kernel: ``dma_fence_is_signaled``."""
        rt().point("dma_fence_is_signaled", self, READ)
        if self.flags & _SIGNALED:
            return True
        ops = self.ops
        assert ops is not None
        if ops.signaled is not None and ops.signaled(self):
            self.signal()
            return True
        return False

    def is_signaled_locked(self) -> bool:
        """:meth:`is_signaled` with the fence lock held. Kernel: ``dma_fence_is_signaled_locked``."""
        rt().point("dma_fence_is_signaled", self, READ)
        return self._is_signaled_locked()

    def _is_signaled_locked(self) -> bool:
        if self.flags & _SIGNALED:
            return True
        ops = self.ops
        assert ops is not None
        if ops.signaled is not None and ops.signaled(self):
            self.signal_locked()
            return True
        return False

    def get_status_locked(self) -> int:
        """0 if pending, 1 if signaled, the error if signaled with one. Lock held.
        Kernel: ``dma_fence_get_status_locked``."""
        self._assert_locked()
        rt().point("dma_fence_get_status", self, READ)
        if self._is_signaled_locked():
            return self.error or 1
        return 0

    def get_status(self) -> int:
        """:meth:`get_status_locked` taking the lock. Kernel: ``dma_fence_get_status``."""
        rt().point("dma_fence_get_status", self, READ)
        flags = self._lock()
        try:
            if self._is_signaled_locked():
                return self.error or 1
            return 0
        finally:
            self._unlock(flags)

    def set_error(self, error: int) -> None:
        """Record an error (a negative errno) before signaling.

        WARNs if the fence is already signaled or ``error`` is not in ``[-MAX_ERRNO, -1]``.
        Kernel: ``dma_fence_set_error`` (include/linux/dma-fence.h)."""
        if isinstance(error, bool) or not isinstance(error, int):
            raise InvalidArgument(f"dma_fence_set_error needs an int errno, got {error!r}")
        rt().point("dma_fence_set_error", self, WRITE)
        WARN(
            self.flags & _SIGNALED,
            f"dma_fence_set_error({error}) on already signaled {label_of(self)}",
            "dma_fence_set_error: fence already signaled",
        )
        WARN(
            error >= 0 or error < -MAX_ERRNO,
            f"dma_fence_set_error({error}): not a negative errno",
            "dma_fence_set_error: error out of range",
        )
        self.error = error

    def timestamp_ns(self) -> int:
        """The signal timestamp; WARNs (and returns now) if not signaled. Kernel: ``dma_fence_timestamp``."""
        r = rt()
        r.point("dma_fence_timestamp", self, READ)
        if WARN(
            not self.flags & _SIGNALED,
            f"dma_fence_timestamp of unsignaled {label_of(self)}",
            "dma_fence_timestamp: fence not signaled",
        ):
            return r.now_ns()
        return self.timestamp

    def set_deadline(self, deadline: int) -> None:
        """Pass a deadline hint (ns) to ``ops.set_deadline`` unless signaled. Kernel:
        ``dma_fence_set_deadline``."""
        ops = self.ops
        assert ops is not None
        if ops.set_deadline is not None and not self.is_signaled():
            ops.set_deadline(self, deadline)

    def is_later(self, other: DmaFence) -> bool:
        """True if this fence comes after ``other`` on their common timeline (WARN and False if the
        contexts differ). Kernel: ``dma_fence_is_later``."""
        if WARN(
            self.context != other.context,
            f"dma_fence_is_later: {label_of(self)} and {label_of(other)} are on different contexts",
            "dma_fence_is_later: context mismatch",
        ):
            return False
        ops = self.ops
        assert ops is not None
        return is_later_seqno(self.seqno, other.seqno, ops)

    # ------------------------------------------------------------------ waiting
    def wait_timeout(self, intr: bool, timeout: int) -> int:
        """Sleep until signaled or ``timeout`` jiffies passed (``MAX_SCHEDULE_TIMEOUT``: forever).

        Returns the jiffies left (>0) once signaled (1 for a zero timeout), 0 on timeout,
        ``-ERESTARTSYS`` if ``intr`` and a signal arrived, ``-EINVAL`` (with a WARN) for a negative timeout;
        a driver ``ops.wait`` may return other values.

        Locking: may sleep; WARNs inside a fence signalling section. Kernel: ``dma_fence_wait_timeout``.
        """
        if isinstance(timeout, bool) or not isinstance(timeout, int):
            raise InvalidArgument(f"dma_fence_wait_timeout needs an int timeout in jiffies, got {timeout!r}")
        if WARN(
            timeout < 0,
            f"dma_fence_wait_timeout({timeout}): negative timeout",
            "dma_fence_wait_timeout: negative timeout",
        ):
            return -EINVAL
        might_sleep()
        might_wait()
        self.enable_sw_signaling()
        ops = self.ops
        assert ops is not None
        if ops.wait is not None:
            return ops.wait(self, bool(intr), timeout)
        return self.default_wait(intr, timeout)

    def wait(self, intr: bool = False) -> int:
        """Sleep until signaled: 0, or ``-ERESTARTSYS`` if interrupted. Kernel: ``dma_fence_wait``."""
        ret = self.wait_timeout(intr, MAX_SCHEDULE_TIMEOUT)
        return ret if ret < 0 else 0

    def default_wait(self, intr: bool, timeout: int) -> int:
        """The default ``ops.wait``: queue a wake-up callback and sleep. Return values as
        :meth:`wait_timeout`. Kernel: ``dma_fence_default_wait``."""
        r = rt()
        t = r.current()
        ret = timeout if timeout else 1
        r.point("dma_fence_wait", self, READ)
        flags = self._lock()
        if self.flags & _SIGNALED:
            self._unlock(flags)
            return ret
        if intr and t.sigpending:
            self._unlock(flags)
            return -ERESTARTSYS
        if not timeout:
            self._unlock(flags)
            return 0
        cb = _WaitCb(t)
        cb.func = _wake_waiter
        self.cb_list.insert(0, cb)  # the kernel's list_add: at the head
        cb._on = self.cb_list
        self._unlock(flags)
        ret = _sleep(r, t, "dma_fence_wait", self, lambda: bool(self.flags & _SIGNALED), intr, timeout)
        flags = self._lock()
        lst = cb._on
        if lst is not None:
            for i, x in enumerate(lst):
                if x is cb:
                    del lst[i]
                    break
            cb._on = None
        self._unlock(flags)
        return ret

    def __repr__(self) -> str:
        state = "signaled" if self.flags & _SIGNALED else "pending"
        if self._freed:
            state = "freed"
        return f"<{type(self).__name__} {self.context}:{self.seqno} {state}>"


# ---------------------------------------------------------------------- sleeping (the default wait, wait_any_timeout)
class _WaitCb(DmaFenceCb):
    """``struct default_wait_cb``: wakes the sleeping task."""

    def __init__(self, task: Task) -> None:
        self.task = task


def _wake_waiter(fence: DmaFence, cb: DmaFenceCb) -> None:
    assert isinstance(cb, _WaitCb)
    rt().notify_task(cb.task)


def _sleep(
    r: Runtime, t: Task, op: str, obj: object, done: Callable[[], bool], intr: bool, timeout: int
) -> int:
    """Block until ``done()`` (or a signal, if ``intr``) for at most ``timeout`` jiffies; return the
    kernel's value: jiffies left (>=1) if done, 0 on timeout, ``-ERESTARTSYS`` if interrupted."""
    might_sleep()
    forever = timeout >= MAX_SCHEDULE_TIMEOUT
    timeout_ns = None if forever else timeout * _NS // config.HZ
    start = r.now_ns()

    if intr:

        def ready() -> bool:
            return done() or t.sigpending

    else:
        ready = done
    ok = r.wait(op, obj, READ, ready, timeout_ns)
    if not ok:
        return 0
    if intr and t.sigpending:
        return -ERESTARTSYS
    if forever:
        return MAX_SCHEDULE_TIMEOUT
    elapsed = (r.now_ns() - start) * config.HZ // _NS
    return max(1, timeout - elapsed)
