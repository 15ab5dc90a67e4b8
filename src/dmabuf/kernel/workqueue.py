"""Workqueues (``linux/workqueue.h``): run work items asynchronously in worker tasks.

This module holds the kernel-named functions (``INIT_WORK``, ``queue_work``, ``flush_work``,
``cancel_delayed_work_sync``, ``alloc_workqueue``...) and re-exports the objects of the modules that
implement workqueues:

* :mod:`.work`: :class:`WorkStruct` and :class:`DelayedWork` (work items: PENDING, flush, cancel);
* :mod:`.workqueue_struct`: :class:`Workqueue` and its workers, the ``WQ_*`` flags, the system workqueues.

Model:

* A :class:`Workqueue` starts *worker* tasks (daemons) on demand: when an item is queued that could run
  now and no free worker (one not running an item) is there to take it, a new worker starts, up to one
  for an ordered workqueue and ``max(2, max_active)`` otherwise. In the kernel a worker pool wakes or
  creates another worker when its running workers sleep; the model cannot see a work function sleep, so
  it gives every runnable item a worker at once: items that block each other (two wait for a third)
  still all run, and a workqueue has only as many workers as it ever had items queued or running at
  once (none before its first item). ``max_active`` is a per-CPU limit in the kernel, so
  ``max_active == 1`` without ``alloc_ordered_workqueue`` does not serialise work items queued from
  different CPUs: it may have two workers. Workers take items in FIFO order; the first idle worker
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

Every operation on workqueue state is a scheduling point on one object (the "worker pool", the kernel's
pool lock): queueing (also by an expiring delay timer), cancelling, a worker taking or finishing an item,
``work_pending``, flush, drain and destroy, and their waits. A worker taking an item clears its PENDING bit
and dequeues it in one step, so it must be ordered against every queue, cancel, flush and
``work_pending`` of any item: one object with READ (only looks) and WRITE (changes) steps does that.

Under the explorer idle daemons keep running until they block, so work queued just before the body returns
still runs and only work that is stuck is reported at the end; on real threads daemons are killed as soon
as the other tasks finished, so there unflushed work may be reported too (it is a bug either way).

Kernel: include/linux/workqueue.h, kernel/workqueue.c.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgument
from ..runtime import label_of
from ._warn import WARN
from .work import DelayedWork, WorkStruct, _DworkTimer
from .workqueue_struct import (
    _FLAGS,
    _WQ_ORDERED,
    WQ_BH,
    WQ_CPU_INTENSIVE,
    WQ_DFL_ACTIVE,
    WQ_FREEZABLE,
    WQ_HIGHPRI,
    WQ_MAX_ACTIVE,
    WQ_MEM_RECLAIM,
    WQ_POWER_EFFICIENT,
    WQ_SYSFS,
    WQ_UNBOUND,
    Workqueue,
    WorkqueueStruct,
    WqArg,
    _SystemWq,
    system_highpri_wq,
    system_long_wq,
    system_unbound_wq,
    system_wq,
)

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
    model starts worker tasks as items need them, up to ``max(2, max_active)`` (``max_active`` limits work
    items per CPU, so 1 does not serialise a queue: Documentation/core-api/workqueue.rst); an ordered
    queue has one.

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
