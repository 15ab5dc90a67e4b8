"""Workqueues (``struct workqueue_struct``): the queues of work items and the worker tasks that run them.

* the ``WQ_*`` flags and the ``max_active`` limits;
* :class:`Workqueue` (alias ``WorkqueueStruct``): queueing (also after a delay), flush, drain and destroy,
  the workers it starts on demand, and the end-of-run check that reports work still queued or running;
* ``_worker``, the body of a worker task: takes items in FIFO order, runs them, and WARNs when a work
  function returns with a lock held or in atomic context;
* the system workqueues (``system_wq`` and friends), placeholders resolved to a per-run :class:`Workqueue`
  on first use, and ``WqArg``, what the kernel-named functions accept as a workqueue.

The work items are in :mod:`.work`, the kernel-named functions in :mod:`.workqueue` (whose docstring
describes the model).

Kernel: include/linux/workqueue.h, kernel/workqueue.c.
"""

from __future__ import annotations

from .. import lockdep
from ..errors import InvalidArgument
from ..lockdep import LockMap
from ..runtime import READ, WRITE, Runtime, Task, label_of, rt
from . import config
from ._warn import WARN
from .sched import HZ, might_sleep
from .work import DelayedWork, WorkStruct, _changed, _check_delay, _check_dwork, _Entry, _pool, _work_map

__all__ = [
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
    "Workqueue",
    "WorkqueueStruct",
    "WqArg",
    "system_highpri_wq",
    "system_long_wq",
    "system_unbound_wq",
    "system_wq",
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
        # The most workers it may have at once. An ordered workqueue runs one item at a time system-wide.
        # Otherwise max_active is per CPU (so 1 does not serialise items queued from two CPUs: at least 2).
        self._max_workers = 1 if flags & _WQ_ORDERED else max(2, self.max_active)
        self._workers: list[Task] = []
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

    def _dm_holders(self) -> list[Task]:
        return [e.task for e in self._running if e.task is not None]

    def _lockdep_map(self) -> LockMap:
        """The workqueue's lockdep map: held around each of its work items, taken by flush/drain."""
        return _work_map(f"(wq_completion){self.name}")

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

    def _start_workers(self, r: Runtime) -> None:
        """Start a worker for every item that could run now and has no free worker to take it, up to
        ``_max_workers``. In the kernel a pool wakes or creates another worker when its running workers
        sleep and work is pending; the model cannot see a worker sleep, so it gives each runnable item a
        worker at once (a worker that is not running an item is free; one running an item may block in it
        for good). So a workqueue has as many workers as it ever had items queued or running at once, and
        none before its first item: no idle task adds interleavings."""
        free = len(self._workers) - len(self._running)
        need = sum(1 for e in self._queue if not any(x.work is e.work for x in self._running))
        while need > free and len(self._workers) < self._max_workers:
            i = len(self._workers)
            self._workers.append(r.spawn(_worker, (self,), f"kworker/{self.name}:{i}", daemon=True))
            free += 1

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
        self._start_workers(r)
        _changed(r)

    def _check_not_own(self, me: Task, fn: str) -> bool:
        if me.extra.get("worker_wq") is self and me.extra.get("current_work") is not None:
            WARN(
                True,
                f"{fn} of workqueue {self.name!r} from one of its own work items: it would wait for itself",
                f"{fn}: recursive flush",
            )
            return True
        return False

    def _enter_wait(self, fn: str, access: str) -> Runtime | None:
        """The start of flush/drain (``fn``): may sleep, a point on the pool; WARNs and returns ``None`` if the
        workqueue is destroyed or the caller is one of its own work items (it would wait for itself)."""
        might_sleep()
        r = rt()
        me = r.current()
        r.point(fn, _pool(r), access)
        if self._destroyed:
            WARN(True, f"{fn} on destroyed workqueue {self.name!r}", f"{fn}: destroyed")
            return None
        if self._check_not_own(me, fn):
            return None
        lockdep.might_lock(me, self._lockdep_map())  # flush_workqueue's lock_map_acquire/release
        return r

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
        r = self._enter_wait("flush_workqueue", READ)
        if r is None:
            return
        target = self._wseq
        r.wait("flush_workqueue", _pool(r), READ, lambda: self._oldest() > target)

    def drain(self) -> None:
        """Wait until the workqueue is empty, also of work its own items queue meanwhile (chained work).
        Queueing from elsewhere while it drains WARNs.

        Locking: may sleep. Kernel: ``drain_workqueue``.
        """
        r = self._enter_wait("drain_workqueue", WRITE)
        if r is None:
            return
        self._draining += 1
        try:
            # WRITE: the step that ends the wait also ends the draining (queueing works again)
            r.wait("drain_workqueue", _pool(r), WRITE, self._idle_now)
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
        pool = _pool(r)
        # WRITE: the step that ends the drain also tells the workers to stop
        r.wait("drain_workqueue", pool, WRITE, self._idle_now)
        self._draining -= 1
        self._stopping = True
        _changed(r)
        r.wait("destroy_workqueue", pool, WRITE, lambda: self._exited == len(self._workers))
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
            # A WRITE on the pool: taking an item clears its PENDING bit and dequeues it, which every
            # queue/cancel/flush/work_pending step looks at (every change that can make it ready notifies
            # the pool)
            r.wait("worker_take", pool, WRITE, ready)
        finally:
            wq._idle.remove(me)
        if wq._stopping:
            wq._exited += 1
            _changed(r)
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
        _changed(r)  # PENDING cleared (for waiters); the next idle worker is now first in line
        me.extra["current_work"] = work
        held = len(me.held)
        if bh:
            me.atomic_depth += 1
        # process_one_work holds the workqueue's and the work's lockdep maps around the function
        maps = (wq._lockdep_map(), work._lockdep_map()) if config.CONFIG_PROVE_LOCKING else ()
        for m in maps:
            lockdep.acquire(me, m)  # lock_map_acquire
        try:
            func = work.func
            assert func is not None
            func(work)
        finally:
            for m in reversed(maps):
                lockdep.release(me, m)  # lock_map_release
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
        _changed(r)
