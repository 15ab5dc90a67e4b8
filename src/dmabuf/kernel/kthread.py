"""Kernel threads (``linux/kthread.h``): ``kthread_run``, ``kthread_create``, ``kthread_stop``,
``kthread_should_stop``.

A kthread is a *detached* task of the runtime: it runs to completion without being joined, but it must
finish before the run ends. A kthread that is never stopped and sleeps forever is therefore reported
(as a deadlock under the explorer): in the kernel it would outlive the module that owns its code.

``kthread_stop(task)`` sets the task's ``should_stop`` flag, makes a signal pending for it (the kernel's
``TIF_NOTIFY_SIGNAL``: interruptible waits of the thread end with ``-ERESTARTSYS``), wakes it (``wake_up_process``: a task sleeping
in ``schedule()`` or ``wait_event*`` re-checks its condition) and waits until the thread function returned;
it returns that function's result. A thread created with ``kthread_create`` and stopped before it was ever
woken does not run its function at all, and ``kthread_stop`` returns ``-EINTR``.

Kernel: kernel/kthread.c.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgument
from ..runtime import READ, WRITE, Task, check_task_name, rt
from ._warn import WARN
from .errno import EINTR
from .sched import KTHREAD_KEY, NOTIFY_SIGNAL, TASK_RUNNING, TASK_UNINTERRUPTIBLE, might_sleep

__all__ = ["kthread_create", "kthread_run", "kthread_should_stop", "kthread_stop"]

_KEY = KTHREAD_KEY


class _Kthread:
    """Per-task kthread bookkeeping (the kernel's ``struct kthread``), kept in ``task.extra["kthread"]``."""

    __slots__ = ("data", "fn", "parked_by_creator", "ran", "stopped")

    def __init__(self, fn: Callable[[Any], Any], data: Any) -> None:
        self.fn = fn
        self.data = data
        self.parked_by_creator = False
        self.ran = False
        self.stopped = False


def _main(info: _Kthread, start_parked: bool) -> Any:
    r = rt()
    t = r.current()
    t.extra[_KEY] = info
    if start_parked:
        # kthread(): a new thread sleeps until its creator wakes it (or stops it).
        if not info.parked_by_creator:
            t.kstate = TASK_UNINTERRUPTIBLE
        r.wait("kthread_start", t, READ, lambda: t.kstate == TASK_RUNNING or t.should_stop)
        if t.should_stop:
            return -EINTR
    info.ran = True
    return info.fn(info.data)


def _check(threadfn: object, fn: str, name: object) -> str | None:
    """Validate the arguments; returns the task name (the given one, else the thread function's)."""
    if not callable(threadfn):
        raise InvalidArgument(f"{fn} needs a callable thread function, got {type(threadfn).__name__}")
    fallback = getattr(threadfn, "__name__", None)
    return check_task_name(name, fn) or (fallback if isinstance(fallback, str) else None)


def kthread_create(threadfn: Callable[[Any], Any], data: Any, name: str | None = None) -> Task:
    """Create a kthread that will run ``threadfn(data)`` once woken with ``wake_up_process``.

    Returns:
        The new task (kernel: ``task_struct *``).

    Locking: may sleep. Kernel: ``kthread_create``.
    """
    task_name = _check(threadfn, "kthread_create", name)
    might_sleep()
    info = _Kthread(threadfn, data)
    r = rt()
    t = r.spawn(_main, (info, True), task_name, detached=True)
    # The thread may not have started yet (real threads): put it to sleep before anyone can wake it.
    t.extra[_KEY] = info
    if not t.done and not t.should_stop and t.kstate == TASK_RUNNING and not info.parked_by_creator:
        t.kstate = TASK_UNINTERRUPTIBLE
    info.parked_by_creator = True
    return t


def kthread_run(threadfn: Callable[[Any], Any], data: Any, name: str | None = None) -> Task:
    """Create a kthread running ``threadfn(data)`` and start it at once.

    Returns:
        The new task; ``kthread_stop(task)`` later returns ``threadfn``'s result.

    Locking: may sleep. Kernel: ``kthread_run``.
    """
    task_name = _check(threadfn, "kthread_run", name)
    might_sleep()
    info = _Kthread(threadfn, data)
    r = rt()
    t = r.spawn(_main, (info, False), task_name, detached=True)
    t.extra[_KEY] = info
    return t


def kthread_should_stop() -> bool:
    """True once ``kthread_stop`` was called on the running kthread. Calling it from a task that is not a
    kthread WARNs (the kernel's ``to_kthread``) and returns False.

    Locking: any context. Kernel: ``kthread_should_stop``.
    """
    r = rt()
    t = r.current()
    r.point("kthread_should_stop", t, READ)
    if _KEY not in t.extra:
        WARN(
            True,
            f"kthread_should_stop called by {t.name!r}, which is not a kthread",
            "kthread: not a kthread",
        )
        return False
    return t.should_stop


def kthread_stop(k: Task) -> Any:
    """Tell kthread ``k`` to stop, wake it and wait until its function returned. From then on
    ``signal_pending`` is true for ``k`` (the kernel sets ``TIF_NOTIFY_SIGNAL``), so its interruptible
    waits return ``-ERESTARTSYS``/``-EINTR`` at once instead of sleeping.

    Returns:
        The thread function's result; ``-EINTR`` if the thread was created but never woken (its function
        never ran).

    Misuse (WARN): ``k`` is not a kthread (returns ``-EINVAL`` after the WARN; the kernel would use a
    bogus pointer), ``k`` is the calling task (it would wait for itself forever), ``k`` was stopped
    already (the kernel would use a freed task).

    Locking: may sleep. Kernel: ``kthread_stop``.
    """
    from .errno import EINVAL

    if not isinstance(k, Task):
        raise InvalidArgument(f"kthread_stop needs a task (from kthread_run), got {type(k).__name__}")
    might_sleep()
    r = rt()
    me = r.current()
    info = k.extra.get(_KEY)
    if not isinstance(info, _Kthread):
        WARN(True, f"kthread_stop on task {k.name!r}, which is not a kthread", "kthread: not a kthread")
        return -EINVAL
    if k is me:
        WARN(True, f"kthread {k.name!r} calls kthread_stop on itself", "kthread_stop: self-stop")
        return -EINVAL
    if info.stopped:
        WARN(True, f"kthread_stop on kthread {k.name!r} that was stopped already", "kthread_stop: twice")
        return k.result
    info.stopped = True
    r.point("kthread_stop", k, WRITE)
    k.should_stop = True
    # The kernel also sets TIF_NOTIFY_SIGNAL, so signal_pending() is true in the thread from now on and
    # its interruptible sleeps end at once (wait_event_interruptible returns -ERESTARTSYS).
    k.sigpending = True
    k.extra[NOTIFY_SIGNAL] = True
    if not k.done and k.kstate != TASK_RUNNING:
        k.kstate = TASK_RUNNING
    r.notify_task(k)
    r.wait("kthread_stop", k, READ, lambda: k.done)
    return k.result
