"""Workqueues (``linux/workqueue.h``): run work items asynchronously in worker tasks.

Model:

* A :class:`Workqueue` owns a few *worker* tasks (daemons): one for an ordered workqueue or
  ``max_active == 1``, two otherwise (two are enough to expose every race between concurrent work items;
  more would only multiply the interleavings). Workers take items in FIFO order; the first idle worker
  takes the next item (so the explorer does not branch on which of two identical idle workers runs it).
* A work item's ``PENDING`` bit is set from queueing until a worker starts it (``queue_work`` returns
  False while it is set), and is cleared *before* the function runs, so a work may requeue itself.
  A work item never runs concurrently with itself on one workqueue: a requeued instance waits until the
  running one returned.
* Work functions are called as ``func(work)`` with the work struct (embed by subclassing
  :class:`WorkStruct`; ``container_of`` is the instance itself). They run in process context and may sleep;
  returning with a lock held or in atomic context WARNs, as the kernel's "workqueue leaked lock" check.
* ``system_wq`` and friends are placeholders that stand for per-run workqueues created on first use and
  kept in ``rt().globals``.
* At the end of a run, a workqueue that was not destroyed and still has queued or running work is
  reported as a leak (in the kernel the work would run after its module or memory is gone). Delayed work
  whose timer is still armed is reported by the timer check the same way.

Queueing, cancelling, flushing and finishing a work item are scheduling points on one object (the
"worker pool", the kernel's pool lock); a worker taking an item is a point on its workqueue.

Under the explorer idle daemons keep running until they block, so work queued just before the body returns
still runs and only work that is stuck is reported at the end; on real threads daemons are killed as soon
as the other tasks finished, so there unflushed work may be reported too (it is a bug either way).

Kernel: include/linux/workqueue.h, kernel/workqueue.c.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgument
from ..runtime import READ, WRITE, Runtime, Task, label_of, rt
from ._warn import WARN
from .sched import HZ, might_sleep
from .timer import TimerList

__all__ = [
    "INIT_DELAYED_WORK",
    "INIT_WORK",
    "WQ_BH",
    "WQ_CPU_INTENSIVE",
    "WQ_DFL_ACTIVE",
    "WQ_FREEZABLE",
    "WQ_HIGHPRI",
    "WQ_MAX_ACTIVE",
    "WQ_MEM_RECLAIM",
    "WQ_POWER_EFFICIENT",
    "WQ_SYSFS",
    "WQ_UNBOUND",
    "DelayedWork",
    "WorkStruct",
    "Workqueue",
    "WorkqueueStruct",
    "alloc_ordered_workqueue",
    "alloc_workqueue",
    "cancel_delayed_work",
    "cancel_delayed_work_sync",
    "cancel_work",
    "cancel_work_sync",
    "delayed_work_pending",
    "destroy_workqueue",
    "drain_workqueue",
    "flush_delayed_work",
    "flush_scheduled_work",
    "flush_work",
    "flush_workqueue",
    "mod_delayed_work",
    "queue_delayed_work",
    "queue_work",
    "schedule_delayed_work",
    "schedule_work",
    "system_highpri_wq",
    "system_long_wq",
    "system_unbound_wq",
    "system_wq",
    "to_delayed_work",
    "work_pending",
]

WQ_BH = 1 << 0
WQ_UNBOUND = 1 << 1
WQ_FREEZABLE = 1 << 2
WQ_MEM_RECLAIM = 1 << 3
WQ_HIGHPRI = 1 << 4
WQ_CPU_INTENSIVE = 1 << 5
WQ_SYSFS = 1 << 6
WQ_POWER_EFFICIENT = 1 << 7
_WQ_ORDERED = 1 << 17
_FLAGS = WQ_BH | WQ_UNBOUND | WQ_FREEZABLE | WQ_MEM_RECLAIM | WQ_HIGHPRI | WQ_CPU_INTENSIVE | WQ_SYSFS
_FLAGS |= WQ_POWER_EFFICIENT | _WQ_ORDERED
WQ_MAX_ACTIVE = 2048
WQ_DFL_ACTIVE = WQ_MAX_ACTIVE // 2
_NS = 1_000_000_000
_REG = "_workqueues"


class _Pool:
    """The one object every workqueue state change is a scheduling point on (the kernel's pool lock)."""

    _dm_label = "worker_pool"


def _pool(r: Runtime) -> _Pool:
    p = r.globals.get("_wq_pool")
    if p is None:
        p = _Pool()
        r.globals["_wq_pool"] = p
    assert isinstance(p, _Pool)
    return p


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
            r.notify(wq)
            r.notify(self)
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
        if self._entry is not None:
            target = self._entry.inst
        elif self._running:
            target = max(e.inst for e in self._running)
        else:
            return False
        r.wait("flush_work", self, READ, lambda: self._done_inst >= target)
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
        if self._running:
            self._disable += 1
            try:
                r.wait("cancel_work_sync", self, READ, lambda: not self._running)
            finally:
                self._disable -= 1
        return was

    def __repr__(self) -> str:
        st = "running" if self._running else ("pending" if self._pending else "idle")
        return f"<{type(self).__name__} {st}>"


class _DworkTimer(TimerList):
    def __init__(self, dwork: DelayedWork) -> None:
        super().__init__()
        self.dwork = dwork
        self._what = "delayed work timer"
        self.setup(_delayed_work_timer_fn)


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
        return WorkStruct.flush(self)


class _SystemWq:
    """Placeholder for a system workqueue; resolved to a per-run :class:`Workqueue` on first use."""

    def __init__(self, name: str, flags: int) -> None:
        self.name = name
        self.flags = flags

    def resolve(self) -> Workqueue:
        r = rt()
        key = "_system_wq:" + self.name
        wq = r.globals.get(key)
        if wq is None:
            wq = Workqueue(self.name, self.flags, 0, _system=True)
            r.globals[key] = wq
        assert isinstance(wq, Workqueue)
        return wq

    def __repr__(self) -> str:
        return f"<system workqueue {self.name}>"


system_wq = _SystemWq("events", 0)
system_highpri_wq = _SystemWq("events_highpri", WQ_HIGHPRI)
system_long_wq = _SystemWq("events_long", 0)
system_unbound_wq = _SystemWq("events_unbound", WQ_UNBOUND)


class Workqueue:
    """A workqueue with its worker tasks. Create with :func:`alloc_workqueue`.

    Kernel: ``struct workqueue_struct``.
    """

    def __init__(self, name: str, flags: int = 0, max_active: int = 0, *, _system: bool = False) -> None:
        for what, v in (("flags", flags), ("max_active", max_active)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise InvalidArgument(f"Workqueue: {what} must be an int, got {v!r}")
        if not _system:
            might_sleep()
        r = rt()
        self.name = name
        self._dm_label = name
        self.flags = flags
        if max_active <= 0:
            max_active = WQ_DFL_ACTIVE
        self.max_active = min(max_active, WQ_MAX_ACTIVE)
        nworkers = 1 if (flags & _WQ_ORDERED or self.max_active == 1) else 2
        self._queue: list[_Entry] = []
        self._running: list[_Entry] = []
        self._wseq = 0
        self._idle: list[Task] = []
        self._draining = 0
        self._destroying = False
        self._stopping = False
        self._destroyed = False
        self._exited = 0
        self._register(r)
        self._workers = [
            r.spawn(_worker, (self,), f"kworker/{name}:{i}", daemon=True) for i in range(nworkers)
        ]

    def _dm_holders(self) -> list[Task]:
        return [e.task for e in self._running if e.task is not None]

    def _register(self, r: Runtime) -> None:
        reg: list[Workqueue] | None = r.globals.get(_REG)
        if reg is None:
            reg = []
            r.globals[_REG] = reg

            def check() -> str | None:
                bad = []
                for wq in reg:
                    if wq._destroyed:
                        continue
                    what = [label_of(e.work) + " running" for e in wq._running]
                    what += [label_of(e.work) + " queued" for e in wq._queue]
                    if what:
                        bad.append(f"workqueue {wq.name!r}: " + ", ".join(what))
                if not bad:
                    return None
                return (
                    "work still queued or running at the end of the run (flush or cancel it, or "
                    "destroy_workqueue, before its code or memory goes away): " + "; ".join(bad)
                )

            r.add_end_check(check)
        reg.append(self)

    # ------------------------------------------------------------------ internals
    def _runnable(self) -> _Entry | None:
        for e in self._queue:
            if not any(x.work is e.work for x in self._running):
                return e
        return None

    def _oldest(self) -> int:
        m = 1 << 62
        for e in self._queue:
            m = min(m, e.wseq)
        for e in self._running:
            m = min(m, e.wseq)
        return m

    def _idle_now(self) -> bool:
        return not self._queue and not self._running

    def _is_chained(self, me: Task) -> bool:
        return me.extra.get("worker_wq") is self and me.extra.get("current_work") is not None

    def _insert(self, r: Runtime, work: WorkStruct) -> None:
        """Put ``work`` (PENDING already set) on the queue. Pool point already passed."""
        me = r.current()
        if (self._destroying or self._draining or self._destroyed) and not self._is_chained(me):
            state = "destroyed" if self._destroyed or self._destroying else "being drained"
            WARN(
                True,
                f"workqueue: cannot queue {label_of(work)} on workqueue {self.name!r}: it is {state}",
                "queue_work: workqueue draining or destroyed",
            )
            return  # v6.12 leaves PENDING set: the work is stuck
        work._inst += 1
        self._wseq += 1
        e = _Entry(work, work._inst, self._wseq)
        self._queue.append(e)
        work._queued = self
        work._entry = e
        work._last_wq = self
        r.notify(self)

    def _check_not_own(self, me: Task, fn: str) -> bool:
        if me.extra.get("worker_wq") is self and me.extra.get("current_work") is not None:
            WARN(
                True,
                f"{fn} of workqueue {self.name!r} from one of its own work items: it would wait for itself",
                f"{fn}: recursive flush",
            )
            return True
        return False

    # ------------------------------------------------------------------ API
    def queue(self, work: WorkStruct) -> bool:
        """Queue ``work``. Returns False if it was already pending (or is being cancelled), True if queued.

        Queueing on a workqueue that is being drained (from outside its own work items) or destroyed WARNs;
        as in the kernel the work then stays PENDING without being queued, and True is returned.

        Locking: any context, also atomic. Kernel: ``queue_work``.
        """
        if not isinstance(work, WorkStruct):
            raise InvalidArgument(f"queue_work needs a WorkStruct, got {type(work).__name__}")
        work._check("queue_work")
        r = rt()
        r.point("queue_work", _pool(r), WRITE)
        if work._pending or work._disable:
            return False
        work._pending = True
        self._insert(r, work)
        return True

    def queue_delayed(self, dwork: DelayedWork, delay: int) -> bool:
        """Queue ``dwork`` after ``delay`` jiffies (at once for 0). False if it was already pending.

        Locking: any context. Kernel: ``queue_delayed_work``.
        """
        _check_dwork(dwork, "queue_delayed_work")
        delay = _check_delay(delay, "queue_delayed_work")
        r = rt()
        r.point("queue_delayed_work", _pool(r), WRITE)
        if dwork._pending or dwork._disable:
            return False
        dwork._pending = True
        self._queue_delayed(r, dwork, delay)
        return True

    def _queue_delayed(self, r: Runtime, dwork: DelayedWork, delay: int) -> None:
        dwork.wq = self
        if delay == 0:
            self._insert(r, dwork)
            return
        dwork.timer.expires = r.now_ns() * HZ // _NS + delay
        dwork.timer._arm(r)

    def mod_delayed(self, dwork: DelayedWork, delay: int) -> bool:
        """Queue ``dwork`` after ``delay`` jiffies whether or not it is pending (a pending one is moved).

        Returns: True if it was pending (modified), False if it was idle (newly queued).
        Locking: any context. Kernel: ``mod_delayed_work``.
        """
        _check_dwork(dwork, "mod_delayed_work")
        delay = _check_delay(delay, "mod_delayed_work")
        r = rt()
        r.point("mod_delayed_work", _pool(r), WRITE)
        was = dwork._grab(r)
        if not dwork._disable:
            dwork._pending = True
            self._queue_delayed(r, dwork, delay)
        return was

    def flush(self) -> None:
        """Wait until every work item queued before the call finished.

        Misuse (WARN): flushing from one of this workqueue's own work items; flushing a destroyed one.

        Locking: may sleep. Kernel: ``flush_workqueue``.
        """
        might_sleep()
        r = rt()
        me = r.current()
        r.point("flush_workqueue", _pool(r), READ)
        if self._destroyed:
            WARN(True, f"flush_workqueue on destroyed workqueue {self.name!r}", "flush_workqueue: destroyed")
            return
        if self._check_not_own(me, "flush_workqueue"):
            return
        target = self._wseq
        r.wait("flush_workqueue", self, READ, lambda: self._oldest() > target)

    def drain(self) -> None:
        """Wait until the workqueue is empty, also of work its own items queue meanwhile (chained work).
        Queueing from elsewhere while it drains WARNs.

        Locking: may sleep. Kernel: ``drain_workqueue``.
        """
        might_sleep()
        r = rt()
        me = r.current()
        r.point("drain_workqueue", _pool(r), WRITE)
        if self._destroyed:
            WARN(True, f"drain_workqueue on destroyed workqueue {self.name!r}", "drain_workqueue: destroyed")
            return
        if self._check_not_own(me, "drain_workqueue"):
            return
        self._draining += 1
        try:
            r.wait("drain_workqueue", self, READ, self._idle_now)
        finally:
            self._draining -= 1

    def destroy(self) -> None:
        """Drain, then stop the workers. Queueing on it afterwards WARNs; destroying twice WARNs.

        Locking: may sleep. Kernel: ``destroy_workqueue``.
        """
        might_sleep()
        r = rt()
        me = r.current()
        r.point("destroy_workqueue", _pool(r), WRITE)
        if self._destroyed or self._destroying:
            WARN(
                True,
                f"destroy_workqueue on workqueue {self.name!r} that is already destroyed",
                "destroy_workqueue: twice",
            )
            return
        if self._check_not_own(me, "destroy_workqueue"):
            return
        self._destroying = True
        self._draining += 1
        r.wait("drain_workqueue", self, READ, self._idle_now)
        self._draining -= 1
        self._stopping = True
        r.notify(self)
        n = len(self._workers)
        r.wait("destroy_workqueue", self, READ, lambda: self._exited == n)
        self._destroyed = True

    def __repr__(self) -> str:
        return f"<Workqueue {self.name!r} queued={len(self._queue)} running={len(self._running)}>"


WorkqueueStruct = Workqueue
#: What the kernel-named functions accept as a workqueue: one from ``alloc_workqueue`` or ``system_wq``.
WqArg = Workqueue | _SystemWq


def _worker(wq: Workqueue) -> None:
    r = rt()
    me = r.current()
    me.extra["worker_wq"] = wq
    pool = _pool(r)
    bh = bool(wq.flags & WQ_BH)

    def ready() -> bool:
        return wq._stopping or (bool(wq._idle) and wq._idle[0] is me and wq._runnable() is not None)

    while True:
        wq._idle.append(me)
        try:
            # waits on the workqueue (every change that can make it ready notifies the workqueue)
            r.wait("worker_take", wq, WRITE, ready)
        finally:
            wq._idle.remove(me)
        if wq._stopping:
            wq._exited += 1
            r.notify(wq)
            return
        e = wq._runnable()
        assert e is not None
        work = e.work
        wq._queue.remove(e)
        work._queued = None
        work._entry = None
        work._pending = False  # cleared before the function runs: it may requeue itself
        e.task = me
        wq._running.append(e)
        work._running.append(e)
        if wq._runnable() is not None:
            r.notify(wq)  # the next idle worker is now first in line
        me.extra["current_work"] = work
        held = len(me.held)
        if bh:
            me.atomic_depth += 1
        try:
            func = work.func
            assert func is not None
            func(work)
        finally:
            if bh:
                me.atomic_depth -= 1
            me.extra["current_work"] = None
        if len(me.held) > held or me.atomic_depth or me.rcu_depth:
            WARN(
                True,
                f"workqueue leaked lock or atomic: {label_of(work)} returned with locks held, "
                "in atomic context or in an RCU read-side section",
                "workqueue: leaked lock or atomic",
            )
        r.point("work_done", pool, WRITE)
        wq._running.remove(e)
        work._running.remove(e)
        work._done_inst = max(work._done_inst, e.inst)
        r.notify(work)
        r.notify(wq)


# ---------------------------------------------------------------------- kernel-named layer
def _wq(x: object, fn: str) -> Workqueue:
    if isinstance(x, _SystemWq):
        return x.resolve()
    if not isinstance(x, Workqueue):
        raise InvalidArgument(
            f"{fn} needs a workqueue (alloc_workqueue or system_wq), got {type(x).__name__}"
        )
    return x


def _w(x: object, fn: str) -> WorkStruct:
    if not isinstance(x, WorkStruct):
        raise InvalidArgument(f"{fn} needs a WorkStruct, got {type(x).__name__}")
    return x


def _check_dwork(x: object, fn: str) -> DelayedWork:
    if not isinstance(x, DelayedWork):
        raise InvalidArgument(f"{fn} needs a DelayedWork, got {type(x).__name__}")
    x._check(fn)
    return x


def _check_delay(delay: object, fn: str) -> int:
    if isinstance(delay, bool) or not isinstance(delay, int):
        raise InvalidArgument(f"{fn}: delay must be an int number of jiffies, got {delay!r}")
    return max(0, delay)


def INIT_WORK(work: WorkStruct, func: Callable[[Any], Any]) -> None:
    """Make ``work`` ready to run ``func(work)``. Re-initialising a pending or running work WARNs (the
    kernel's debugobjects: "init active object").

    Kernel: ``INIT_WORK``.
    """
    _w(work, "INIT_WORK")
    if not callable(func):
        raise InvalidArgument(f"INIT_WORK needs a callable function, got {type(func).__name__}")
    if work._pending or work._running:
        WARN(True, f"INIT_WORK on {label_of(work)} while it is pending or running", "INIT_WORK: active work")
        return
    work.func = func
    work._reset()


def INIT_DELAYED_WORK(dwork: DelayedWork, func: Callable[[Any], Any]) -> None:
    """Kernel: ``INIT_DELAYED_WORK``."""
    if not isinstance(dwork, DelayedWork):
        raise InvalidArgument(f"INIT_DELAYED_WORK needs a DelayedWork, got {type(dwork).__name__}")
    if dwork.timer._armed:
        WARN(
            True,
            f"INIT_DELAYED_WORK on {label_of(dwork)} while its timer is pending",
            "INIT_WORK: active work",
        )
        return
    INIT_WORK(dwork, func)
    dwork.timer = _DworkTimer(dwork)
    dwork.wq = None


def to_delayed_work(work: WorkStruct) -> DelayedWork:
    """Kernel: ``to_delayed_work`` (``container_of``): the delayed work a work struct belongs to."""
    if not isinstance(work, DelayedWork):
        raise InvalidArgument(f"to_delayed_work on {type(work).__name__}, which is not a DelayedWork")
    return work


def alloc_workqueue(fmt: str, flags: int, max_active: int, *args: Any) -> Workqueue:
    """Create a workqueue named ``fmt % args``.

    ``max_active`` 0 means the default (``WQ_DFL_ACTIVE``); values above ``WQ_MAX_ACTIVE`` are clamped. The
    model runs one worker task when ``max_active`` is 1 (or the queue is ordered) and two otherwise.

    Locking: may sleep. Kernel: ``alloc_workqueue``.
    """
    if not isinstance(fmt, str):
        raise InvalidArgument(f"alloc_workqueue needs a name string, got {type(fmt).__name__}")
    if isinstance(flags, bool) or not isinstance(flags, int) or flags & ~_FLAGS:
        raise InvalidArgument(f"alloc_workqueue: unknown flags {flags!r}")
    if isinstance(max_active, bool) or not isinstance(max_active, int):
        raise InvalidArgument(f"alloc_workqueue: max_active must be an int, got {max_active!r}")
    name = fmt % args if args else fmt
    return Workqueue(name, flags, max_active)


def alloc_ordered_workqueue(fmt: str, flags: int, *args: Any) -> Workqueue:
    """An ordered workqueue: one item at a time, in queueing order. Kernel: ``alloc_ordered_workqueue``."""
    if isinstance(flags, bool) or not isinstance(flags, int):
        raise InvalidArgument(f"alloc_ordered_workqueue: flags must be an int, got {flags!r}")
    return alloc_workqueue(fmt, WQ_UNBOUND | _WQ_ORDERED | flags, 1, *args)


def destroy_workqueue(wq: WqArg) -> None:
    """Kernel: ``destroy_workqueue``. See :meth:`Workqueue.destroy`."""
    if isinstance(wq, _SystemWq):
        raise InvalidArgument("destroy_workqueue on a system workqueue: they live forever")
    _wq(wq, "destroy_workqueue").destroy()


def queue_work(wq: WqArg, work: WorkStruct) -> bool:
    """Kernel: ``queue_work``: False if ``work`` was already pending."""
    return _wq(wq, "queue_work").queue(_w(work, "queue_work"))


def schedule_work(work: WorkStruct) -> bool:
    """Kernel: ``schedule_work``: ``queue_work(system_wq, work)``."""
    return queue_work(system_wq, work)


def queue_delayed_work(wq: WqArg, dwork: DelayedWork, delay: int) -> bool:
    """Kernel: ``queue_delayed_work``."""
    return _wq(wq, "queue_delayed_work").queue_delayed(dwork, delay)


def schedule_delayed_work(dwork: DelayedWork, delay: int) -> bool:
    """Kernel: ``schedule_delayed_work``."""
    return system_wq.resolve().queue_delayed(dwork, delay)


def mod_delayed_work(wq: WqArg, dwork: DelayedWork, delay: int) -> bool:
    """Kernel: ``mod_delayed_work``: True if it was pending."""
    return _wq(wq, "mod_delayed_work").mod_delayed(dwork, delay)


def flush_work(work: WorkStruct) -> bool:
    """Kernel: ``flush_work``. See :meth:`WorkStruct.flush`."""
    return WorkStruct.flush(_w(work, "flush_work"))


def flush_delayed_work(dwork: DelayedWork) -> bool:
    """Kernel: ``flush_delayed_work``."""
    if not isinstance(dwork, DelayedWork):
        raise InvalidArgument(f"flush_delayed_work needs a DelayedWork, got {type(dwork).__name__}")
    return dwork.flush()


def cancel_work(work: WorkStruct) -> bool:
    """Kernel: ``cancel_work``. See :meth:`WorkStruct.cancel`."""
    return _w(work, "cancel_work").cancel()


def cancel_work_sync(work: WorkStruct) -> bool:
    """Kernel: ``cancel_work_sync``. See :meth:`WorkStruct.cancel_sync`."""
    return _w(work, "cancel_work_sync").cancel_sync()


def cancel_delayed_work(dwork: DelayedWork) -> bool:
    """Kernel: ``cancel_delayed_work``: disarm the timer or dequeue; True if it was pending. Does not wait."""
    if not isinstance(dwork, DelayedWork):
        raise InvalidArgument(f"cancel_delayed_work needs a DelayedWork, got {type(dwork).__name__}")
    return dwork.cancel()


def cancel_delayed_work_sync(dwork: DelayedWork) -> bool:
    """Kernel: ``cancel_delayed_work_sync``: also waits for a running instance."""
    if not isinstance(dwork, DelayedWork):
        raise InvalidArgument(f"cancel_delayed_work_sync needs a DelayedWork, got {type(dwork).__name__}")
    return dwork.cancel_sync()


def flush_workqueue(wq: WqArg) -> None:
    """Kernel: ``flush_workqueue``. See :meth:`Workqueue.flush`."""
    _wq(wq, "flush_workqueue").flush()


def flush_scheduled_work() -> None:
    """Kernel: ``flush_scheduled_work`` (flushes ``system_wq``; deprecated in the kernel)."""
    system_wq.resolve().flush()


def drain_workqueue(wq: WqArg) -> None:
    """Kernel: ``drain_workqueue``. See :meth:`Workqueue.drain`."""
    _wq(wq, "drain_workqueue").drain()


def work_pending(work: WorkStruct) -> bool:
    """Kernel: ``work_pending``."""
    return _w(work, "work_pending").pending


def delayed_work_pending(dwork: DelayedWork) -> bool:
    """Kernel: ``delayed_work_pending``."""
    if not isinstance(dwork, DelayedWork):
        raise InvalidArgument(f"delayed_work_pending needs a DelayedWork, got {type(dwork).__name__}")
    return dwork.pending
