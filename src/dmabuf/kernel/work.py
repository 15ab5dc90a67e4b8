"""Work items (``struct work_struct``, ``struct delayed_work``): what a workqueue runs.

* :class:`WorkStruct`: a work item: its function, its PENDING bit, the instances of it queued and running,
  and the Pythonic :meth:`~WorkStruct.flush`, :meth:`~WorkStruct.cancel` and :meth:`~WorkStruct.cancel_sync`;
* :class:`DelayedWork`: a work item that a timer queues after a delay;
* the worker pool (``_pool``), the one object every operation on workqueue state is a scheduling point on
  (the kernel's pool lock), and ``_Entry``, one queued or running instance of a work item;
* the delay timer of delayed work, whose expiry (which queues the work) is a point on the pool too;
* the argument checks of delayed work (``_check_dwork``, ``_check_delay``).

The workqueues that run work items are in :mod:`.workqueue_struct`, the kernel-named functions in
:mod:`.workqueue` (whose docstring describes the model).

Kernel: include/linux/workqueue.h, kernel/workqueue.c.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import lockdep
from ..errors import InvalidArgument
from ..lockdep import LockMap
from ..runtime import READ, WRITE, Runtime, Task, label_of, rt
from ._warn import WARN
from .sched import might_sleep
from .timer import TimerList

if TYPE_CHECKING:
    from .workqueue_struct import Workqueue

__all__ = ["DelayedWork", "WorkStruct"]

#: one lockdep map per class name (maps of one class are interchangeable: lockdep compares class names)
_maps: dict[str, LockMap] = {}
_NS = 1_000_000_000


def _work_map(name: str) -> LockMap:
    m = _maps.get(name)
    if m is None:
        m = _maps[name] = LockMap(name)
    return m


class _Pool:
    """The one object every operation on workqueue state is a scheduling point on (the kernel's pool lock).

    A work item's PENDING bit, its queue membership, its running instances, each workqueue's queue, its
    running items and its idle workers, and the delay timers of delayed work change together (a worker
    taking an item clears PENDING and dequeues it in one step; an expiring delay timer queues the work), so
    every step that reads or changes any of them is a point on this one object: READ for the ones that only
    look (``work_pending``, the start of ``flush_work``/``flush_workqueue``, the waits of flush, cancel_sync,
    drain and destroy), WRITE for the ones that change something (queueing, cancelling, a worker taking or
    finishing an item, a delay timer firing). DPOR then orders every pair that could observe each other;
    steps on different work items of different workqueues are ordered too, which costs interleavings but
    is what the kernel's per-CPU pool lock does. Waits wake through ``r.notify(pool)`` (:func:`_changed`).
    """

    _dm_label = "worker_pool"


def _pool(r: Runtime) -> _Pool:
    p = r.globals.get("_wq_pool")
    if p is None:
        p = _Pool()
        r.globals["_wq_pool"] = p
    assert isinstance(p, _Pool)
    return p


def _changed(r: Runtime) -> None:
    """Wake every task waiting on workqueue state (they all wait on the pool) to re-check it."""
    r.notify(_pool(r))


class _Entry:
    """One queued or running instance of a work item."""

    __slots__ = ("inst", "task", "work", "wseq")

    def __init__(self, work: WorkStruct, inst: int, wseq: int) -> None:
        self.work = work
        self.inst = inst  # which queueing of this work (flush_work target)
        self.wseq = wseq  # position in its workqueue's history (flush_workqueue target)
        self.task: Task | None = None


class WorkStruct:
    """A work item: ``func(work)`` runs in a worker once queued.

    Embed by subclassing (``class MyWork(WorkStruct)``); the function receives the subclass instance.

    Kernel: ``struct work_struct``.
    """

    def __init__(self, func: Callable[[Any], Any] | None = None, name: str | None = None) -> None:
        if func is not None and not callable(func):
            raise InvalidArgument(
                f"{type(self).__name__} needs a callable function, got {type(func).__name__}"
            )
        self.func = func
        self._dm_label = name
        self._reset()

    def _reset(self) -> None:
        self._pending = False
        self._queued: Workqueue | None = None  # workqueue whose queue holds it
        self._entry: _Entry | None = None
        self._running: list[_Entry] = []
        self._inst = 0  # instances queued so far
        self._done_inst = 0  # highest instance finished or cancelled
        self._disable = 0
        self._last_wq: Workqueue | None = None

    def _dm_holders(self) -> list[Task]:
        return [e.task for e in self._running if e.task is not None]

    def _lockdep_map(self) -> LockMap:
        """The work's lockdep map, held around its function and taken by flush/cancel_sync. Its class is
        the function (the kernel keys it by the ``INIT_WORK`` call site, one per kind of work)."""
        f = self.func
        name = getattr(f, "__qualname__", None) or type(f).__qualname__
        return _work_map(f"(work_completion){name}")

    @property
    def work(self) -> WorkStruct:
        """The C ``&dwork->work``: the work struct itself."""
        return self

    @property
    def pending(self) -> bool:
        """``work_pending``: queued (or, for delayed work, timer armed) and not started yet."""
        r = rt()
        r.point("work_pending", _pool(r), READ)
        return self._pending

    def _check(self, fn: str) -> None:
        if self.func is None:
            raise InvalidArgument(f"{fn} on a work item without a function: call INIT_WORK(work, fn) first")

    # ------------------------------------------------------------- queueing / stealing (pool point held)
    def _grab(self, r: Runtime) -> bool:
        """Take the PENDING bit away: dequeue, or disarm the delay timer. Returns whether it was pending."""
        was = self._pending
        if isinstance(self, DelayedWork):
            self.timer._disarm(r)
        wq = self._queued
        if wq is not None and self._entry is not None:
            wq._queue.remove(self._entry)
            self._done_inst = max(self._done_inst, self._entry.inst)
            self._queued = None
            self._entry = None
            _changed(r)
        self._pending = False
        return was

    def _running_in_me(self, me: Task) -> bool:
        return any(e.task is me for e in self._running)

    # ------------------------------------------------------------- public methods
    def flush(self) -> bool:
        """Wait until the last queued instance of this work finished executing.

        Returns:
            True if it waited (the work was queued or running), False if it was idle.

        Misuse (WARN, returns False): no function set; flushing the work from inside itself (the kernel
        would wait for itself forever; lockdep reports it).

        Locking: may sleep. Kernel: ``flush_work``.
        """
        might_sleep()
        r = rt()
        me = r.current()
        r.point("flush_work", _pool(r), READ)
        if self.func is None:
            WARN(True, "flush_work on a work item that was never initialised", "flush_work: no function")
            return False
        if self._running_in_me(me):
            WARN(
                True,
                f"flush_work of {label_of(self)} from inside its own function: it would wait for itself",
                "flush_work: recursive flush",
            )
            return False
        lockdep.might_lock(me, self._lockdep_map())  # __flush_work's lock_map_acquire/release
        if self._entry is not None:
            target = self._entry.inst
            r.wait("flush_work", _pool(r), READ, lambda: self._done_inst >= target)
            return True
        if not self._running:
            return False
        # Only a running instance (a later one may have been cancelled, which moved _done_inst past it):
        # wait for that instance itself, as the kernel waits for the worker executing the work.
        last = max(self._running, key=lambda e: e.inst)
        r.wait("flush_work", _pool(r), READ, lambda: all(e is not last for e in self._running))
        return True

    def cancel(self) -> bool:
        """Remove a pending instance (dequeue it or disarm its timer); does not wait for a running one.

        Returns: True if the work was pending. Locking: any context. Kernel: ``cancel_work``.
        """
        r = rt()
        r.point("cancel_work", _pool(r), WRITE)
        return self._grab(r)

    def cancel_sync(self) -> bool:
        """Cancel a pending instance and wait until a running one finished. While it waits, queueing the
        work fails (the kernel disables it), so a self-requeueing work is stopped too.

        Returns: True if the work was pending.

        Misuse (WARN): called from the work's own function (the kernel would wait for itself forever).

        Locking: may sleep. Kernel: ``cancel_work_sync``.
        """
        might_sleep()
        r = rt()
        me = r.current()
        r.point("cancel_work_sync", _pool(r), WRITE)
        was = self._grab(r)
        if self._running_in_me(me):
            WARN(
                True,
                f"cancel_work_sync of {label_of(self)} from inside its own function: it would wait for "
                "itself",
                "cancel_work_sync: recursive cancel",
            )
            return was
        if self.func is not None:
            lockdep.might_lock(me, self._lockdep_map())  # __flush_work(from_cancel) annotates it too
        if self._running:
            self._disable += 1
            try:
                # WRITE: the step that ends the wait also re-enables queueing (the disable count)
                r.wait("cancel_work_sync", _pool(r), WRITE, lambda: not self._running)
            finally:
                self._disable -= 1
        return was

    def __repr__(self) -> str:
        st = "running" if self._running else ("pending" if self._pending else "idle")
        return f"<{type(self).__name__} {st}>"


class _DworkTimer(TimerList):
    """The delay timer of a delayed work. Armed and disarmed only inside pool steps (queue_delayed_work,
    mod_delayed_work, cancel, flush_delayed_work), and its expiry (which queues the work) is a point on the
    pool as well (the generic timer softirq with :meth:`_fire_obj` the pool): a firing on the timer would
    not be ordered against a cancel at the same jiffy. Its callback's queueing is part of that step."""

    def __init__(self, dwork: DelayedWork) -> None:
        super().__init__()
        self.dwork = dwork
        self._what = "delayed work timer"
        self.setup(_delayed_work_timer_fn)

    _FIRE_OP = "delayed_work_timer"

    def _fire_obj(self, r: Any) -> object:
        return _pool(r)

    def _done(self, r: Any) -> None:
        # no step of its own after the callback: the queueing it did was part of the firing step
        self._running = None
        r.notify(self)
        _changed(r)

    def pending(self) -> bool:
        """``timer_pending(&dwork->timer)``: a READ on the pool, where this timer is armed and fired."""
        r = rt()
        r.point("timer_pending", _pool(r), READ)
        return self._armed


def _delayed_work_timer_fn(timer: Any) -> None:
    # Runs in the timer softirq right after its firing point: queueing is part of that atomic step.
    dwork = timer.dwork
    wq = dwork.wq
    if wq is not None:
        wq._insert(rt(), dwork)


class DelayedWork(WorkStruct):
    """A work item queued after a delay (a timer that queues it).

    ``dwork.work`` is the work itself and ``dwork.timer`` its timer. Kernel: ``struct delayed_work``.
    """

    def __init__(self, func: Callable[[Any], Any] | None = None, name: str | None = None) -> None:
        super().__init__(func, name)
        self.timer: TimerList = _DworkTimer(self)
        self.wq: Workqueue | None = None

    def flush(self) -> bool:
        """If the delay timer is armed, queue the work now; then :meth:`WorkStruct.flush`.

        Locking: may sleep. Kernel: ``flush_delayed_work``.
        """
        r = rt()
        r.point("flush_delayed_work", _pool(r), WRITE)
        if self.timer._armed and self.wq is not None:
            self.timer._disarm(r)
            self.wq._insert(r, self)
            _changed(r)
        return WorkStruct.flush(self)


def _check_dwork(x: object, fn: str) -> DelayedWork:
    if not isinstance(x, DelayedWork):
        raise InvalidArgument(f"{fn} needs a DelayedWork, got {type(x).__name__}")
    x._check(fn)
    return x


def _check_delay(delay: object, fn: str) -> int:
    if isinstance(delay, bool) or not isinstance(delay, int):
        raise InvalidArgument(f"{fn}: delay must be an int number of jiffies, got {delay!r}")
    return max(0, delay)
