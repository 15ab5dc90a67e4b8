"""``struct dma_fence``: a one-shot completion event shared between drivers.

A fence starts unsignaled and is signaled exactly once. Waiters sleep on it (:meth:`DmaFence.wait_timeout`),
other drivers hang callbacks on it (:meth:`DmaFence.add_callback`); the callbacks run in the signalling task,
inside the fence lock (atomic context), in the order they were added. References are counted with a
:class:`~dmabuf.kernel.kref.Kref`; the last put releases the fence.

Modelling choices:

* every operation that reads or changes fence state is preceded by a scheduling point *on the fence*
  (``READ`` for lockless tests, ``WRITE`` otherwise); the operations the kernel does under ``fence->lock``
  also take that :class:`~dmabuf.sync.SpinLock` for real, so the ``_locked`` variants can assert it and a
  callback that sleeps is caught as sleeping in atomic context;
* time is the runtime clock (virtual under the explorer): timestamps are its nanoseconds, timeouts are
  jiffies converted with :data:`~dmabuf.kernel.config.HZ`;
* kernel globals (the context counter, the stub fence) live in ``rt().globals`` so that every execution of
  an exploration starts from the same state;
* ``irq_work`` (used by the containers to signal out of a callback) is a detached task running in atomic
  context: it runs asynchronously, after the signaller dropped the member fence's lock.

Kernel: ``struct dma_fence`` (include/linux/dma-fence.h, drivers/dma-buf/dma-fence.c), v6.12 semantics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import lockdep
from ..errors import InvalidArgument, KernelBug
from ..kernel import config
from ..kernel._warn import WARN
from ..kernel.errno import EDEADLK, EINVAL, ERESTARTSYS, MAX_ERRNO
from ..kernel.kref import KREF_INIT, Kref
from ..kernel.sched import MAX_SCHEDULE_TIMEOUT, might_sleep
from ..runtime import READ, WRITE, Runtime, Task, active, label_of, rt
from ..sync.spinlock import SpinLock

__all__ = [
    "DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT",
    "DMA_FENCE_FLAG_SIGNALED_BIT",
    "DMA_FENCE_FLAG_TIMESTAMP_BIT",
    "DMA_FENCE_FLAG_USER_BITS",
    "DmaFence",
    "DmaFenceCb",
    "DmaFenceOps",
    "allocate_private_stub",
    "begin_signalling",
    "check_fence",
    "context_alloc",
    "end_signalling",
    "get_rcu_safe",
    "get_stub",
    "irq_work_queue",
    "is_later_seqno",
    "might_wait",
    "wait_any_timeout",
]

DMA_FENCE_FLAG_SIGNALED_BIT = 0
DMA_FENCE_FLAG_TIMESTAMP_BIT = 1
DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT = 2
DMA_FENCE_FLAG_USER_BITS = 3

_SIGNALED = 1 << DMA_FENCE_FLAG_SIGNALED_BIT
_TIMESTAMP = 1 << DMA_FENCE_FLAG_TIMESTAMP_BIT
_ENABLE = 1 << DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT

_NS = 1_000_000_000
_SIGNALLING = "dma_fence_signalling"

FenceFunc = Callable[["DmaFence", "DmaFenceCb"], object]


class DmaFenceOps:
    """The driver's operations table (``struct dma_fence_ops``), built with keywords; a missing member is
    ``None``.

    Members (each called with the fence first):

    * ``get_driver_name(f) -> str``, ``get_timeline_name(f) -> str``: mandatory (``dma_fence_init`` BUGs
      without them);
    * ``enable_signaling(f) -> bool``: called once, with the fence lock held, when someone first needs the
      fence to signal (a waiter or a callback). Returning ``False`` means "already done": the core signals
      the fence at once;
    * ``signaled(f) -> bool``: a cheap completion poll used by ``dma_fence_is_signaled``;
    * ``wait(f, intr, timeout) -> int``: replaces ``dma_fence_default_wait``;
    * ``release(f)``: frees the fence on the last put (default: ``dma_fence_free``);
    * ``set_deadline(f, deadline_ns)``: a hint, only called while the fence is unsignaled;
    * ``use_64bit_seqno``: compare seqnos on 64 bits instead of the wrapping 32-bit compare.

    Kernel: ``struct dma_fence_ops`` (include/linux/dma-fence.h).
    """

    __slots__ = (
        "enable_signaling",
        "get_driver_name",
        "get_timeline_name",
        "release",
        "set_deadline",
        "signaled",
        "use_64bit_seqno",
        "wait",
    )

    def __init__(
        self,
        *,
        get_driver_name: Callable[[DmaFence], str] | None = None,
        get_timeline_name: Callable[[DmaFence], str] | None = None,
        enable_signaling: Callable[[DmaFence], bool] | None = None,
        signaled: Callable[[DmaFence], bool] | None = None,
        wait: Callable[[DmaFence, bool, int], int] | None = None,
        release: Callable[[DmaFence], object] | None = None,
        set_deadline: Callable[[DmaFence, int], object] | None = None,
        use_64bit_seqno: bool = False,
    ) -> None:
        for name, fn in (
            ("get_driver_name", get_driver_name),
            ("get_timeline_name", get_timeline_name),
            ("enable_signaling", enable_signaling),
            ("signaled", signaled),
            ("wait", wait),
            ("release", release),
            ("set_deadline", set_deadline),
        ):
            if fn is not None and not callable(fn):
                raise InvalidArgument(
                    f"DmaFenceOps.{name} must be a function or None, got {type(fn).__name__}"
                )
        self.get_driver_name = get_driver_name
        self.get_timeline_name = get_timeline_name
        self.enable_signaling = enable_signaling
        self.signaled = signaled
        self.wait = wait
        self.release = release
        self.set_deadline = set_deadline
        self.use_64bit_seqno = bool(use_64bit_seqno)

    def __repr__(self) -> str:
        set_ = [n for n in self.__slots__ if n != "use_64bit_seqno" and getattr(self, n) is not None]
        return f"DmaFenceOps({', '.join(set_)}{', 64bit' if self.use_64bit_seqno else ''})"


class DmaFenceCb:
    """A callback node (``struct dma_fence_cb``). Subclass it to carry data (the kernel's
    ``container_of``)::

        class SimpleCb(DmaFenceCb):
            seen = False

    ``func`` is set by ``add_callback`` and called as ``func(fence, cb)``. A node is on at most one fence
    at a time. Class-level defaults make subclasses work without calling ``super().__init__()``.

    Kernel: ``struct dma_fence_cb`` (include/linux/dma-fence.h).
    """

    func: FenceFunc | None = None
    #: the callback list this node is on (``None``: the kernel's empty ``list_head``)
    _on: list[DmaFenceCb] | None = None

    def pending(self) -> bool:
        """True while the node is queued on a fence (``!list_empty(&cb->node)``)."""
        return self._on is not None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'pending' if self._on is not None else 'idle'}>"


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
    if count > len(fences):
        raise InvalidArgument(f"dma_fence_wait_any_timeout: count {count} > {len(fences)} fences given")
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


# ---------------------------------------------------------------------- seqno order
def is_later_seqno(f1: int, f2: int, ops: DmaFenceOps) -> bool:
    """``__dma_fence_is_later``: ``f1`` after ``f2`` (64-bit compare, or wrapping 32-bit)."""
    if ops.use_64bit_seqno:
        return f1 > f2
    d = ((f1 & 0xFFFFFFFF) - (f2 & 0xFFFFFFFF)) & 0xFFFFFFFF
    return 0 < d < (1 << 31)


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


# ---------------------------------------------------------------------- signalling annotations
class _FenceMap:
    """The lockdep map ``dma_fence_map``: held (for read) inside signalling sections."""

    _dm_label = "dma_fence_map"
    _dm_class = "dma_fence_map"


FENCE_MAP = _FenceMap()


def begin_signalling() -> bool:
    """Open a fence signalling critical section in the running task; returns the cookie for
    :func:`end_signalling` (``True``: nested or in atomic context, nothing to undo).

    Inside a section, waiting on a fence is a possible deadlock (WARN), and every lock taken is recorded
    by lockdep-lite as taken under ``dma_fence_map``, so a lock that is also held around a fence wait
    elsewhere shows up as a lock-order cycle.

    Kernel: ``dma_fence_begin_signalling`` (drivers/dma-buf/dma-fence.c).
    """
    r = active()
    if r is None:
        return True
    t = r.current()
    if t.extra.get(_SIGNALLING, 0) > 0:
        return True
    if t.atomic_depth > 0 or t.rcu_depth > 0:
        return True
    t.extra[_SIGNALLING] = 1
    # a read-trylock in the kernel: no dependency from the locks already held
    t.held.append(FENCE_MAP)
    return False


def end_signalling(cookie: bool) -> None:
    """Close the section opened by the :func:`begin_signalling` that returned ``cookie``.
    Kernel: ``dma_fence_end_signalling``."""
    if not isinstance(cookie, bool):
        raise InvalidArgument(f"dma_fence_end_signalling needs the bool cookie, got {cookie!r}")
    if cookie:
        return
    r = active()
    if r is None:
        return
    t = r.current()
    if WARN(
        t.extra.get(_SIGNALLING, 0) <= 0,
        f"dma_fence_end_signalling in {t.name!r} without a matching dma_fence_begin_signalling",
        "dma_fence_end_signalling: unbalanced",
    ):
        return
    t.extra[_SIGNALLING] = 0
    lockdep.release(t, FENCE_MAP)


def in_signalling_section(task: Task) -> bool:
    """True if ``task`` is inside a fence signalling section."""
    return bool(task.extra.get(_SIGNALLING, 0))


def might_wait() -> None:
    """Annotate a fence wait: WARN inside a signalling section, and record (lockdep-lite) that every
    lock held now is held around a fence wait. Kernel: ``__dma_fence_might_wait``."""
    r = active()
    if r is None:
        return
    t = r.current()
    if in_signalling_section(t):
        WARN(
            True,
            f"possible deadlock: wait inside fence signalling critical section (task {t.name!r}): the fence "
            "waited on may need this very section to finish before it can signal",
            "dma_fence: wait inside signalling section",
        )
        return
    if config.CONFIG_PROVE_LOCKING and t.held:
        lockdep.acquire(t, FENCE_MAP)
        lockdep.release(t, FENCE_MAP)


# ---------------------------------------------------------------------- irq_work
def irq_work_queue(fn: Callable[[Any], object], arg: Any, name: str = "irq_work") -> None:
    """Run ``fn(arg)`` soon, asynchronously, in atomic (hard-irq) context: a detached task.
    Kernel: ``irq_work_queue`` as used by the fence containers."""
    r = rt()

    def run() -> None:
        t = rt().current()
        t.atomic_depth += 1
        try:
            fn(arg)
        finally:
            t.atomic_depth -= 1

    r.spawn(run, (), name, detached=True)
