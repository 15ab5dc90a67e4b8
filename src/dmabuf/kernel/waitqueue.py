"""Wait queues (``linux/wait.h``): sleep until a condition holds, re-checked only when someone wakes the queue.

The kernel's ``wait_event(wq, cond)`` checks ``cond``, then sleeps; it looks at ``cond`` again only when a
``wake_up`` on ``wq`` (or a ``wake_up_process`` of the sleeping task, or a signal for the interruptible
forms) wakes it. A waker that changes the condition but forgets ``wake_up`` leaves the waiter asleep: a
lost wake-up. The model keeps exactly that: each queue has a *wake generation* bumped by every ``wake_up``,
and a sleeping waiter becomes runnable only when the generation moved, its task was woken directly
(``wake_up_process``, ``kthread_stop``: the task state went back to ``TASK_RUNNING``), a signal arrived
(interruptible forms) or its timeout expired. So the explorer reports a lost wake-up as a deadlock.

All waiters of ``wait_event*`` are non-exclusive, so ``wake_up`` and ``wake_up_all`` both wake every one of
them (as in the kernel, where ``wake_up`` only limits the number of *exclusive* waiters woken).
``wake_up_interruptible`` wakes only the interruptible waiters (``TASK_INTERRUPTIBLE`` sleepers).

Kernel: ``struct wait_queue_head`` (include/linux/wait.h, kernel/sched/wait.c).
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import InvalidArgument
from ..runtime import READ, WRITE, rt
from .completion import _deadline, _left, _rel
from .errno import ERESTARTSYS
from .sched import (
    MAX_SCHEDULE_TIMEOUT,
    TASK_INTERRUPTIBLE,
    TASK_RUNNING,
    TASK_UNINTERRUPTIBLE,
    might_sleep,
)

__all__ = [
    "DECLARE_WAIT_QUEUE_HEAD",
    "WaitQueueHead",
    "init_waitqueue_head",
    "wait_event",
    "wait_event_interruptible",
    "wait_event_interruptible_timeout",
    "wait_event_timeout",
    "waitqueue_active",
    "wake_up",
    "wake_up_all",
    "wake_up_interruptible",
    "wake_up_interruptible_all",
]

Cond = Callable[[], object]


class WaitQueueHead:
    """A wait queue head. Constructed ready; ``init_waitqueue_head`` resets it.

    Kernel: ``struct wait_queue_head``.
    """

    def __init__(self, name: str | None = None) -> None:
        self._gen = 0
        self._igen = 0
        self._waiters = 0
        self._dm_label = name

    def wait_event(
        self, cond: Cond, timeout: int = MAX_SCHEDULE_TIMEOUT, *, interruptible: bool = False
    ) -> int:
        """Sleep until ``cond()`` is true.

        ``cond`` is checked first, then again after joining the queue (so a ``wake_up`` during the first
        check is not lost) and after every wake-up of this queue (or of the task); a condition made true
        without ``wake_up`` is not noticed (a lost wake-up). Once the timeout expired, ``cond`` is checked
        one last time.

        Args:
            cond: zero-argument callable; truthy means "done waiting".
            timeout: jiffies (``MAX_SCHEDULE_TIMEOUT``: forever).
            interruptible: a pending signal ends the wait with ``-ERESTARTSYS`` (a true ``cond`` wins).

        Returns:
            ``-ERESTARTSYS`` on a signal; 0 if ``cond`` is still false after the timeout; else the jiffies
            left, at least 1 (``MAX_SCHEDULE_TIMEOUT`` for an unlimited wait).

        Locking: may sleep; not in atomic context (WARNs there).
        Kernel: ``wait_event``, ``wait_event_timeout``, ``wait_event_interruptible[_timeout]``.
        """
        if not callable(cond):
            raise InvalidArgument(
                f"wait_event needs a zero-argument callable condition, got {type(cond).__name__}: "
                "write wait_event(wq, lambda: <condition>)"
            )
        if isinstance(timeout, bool) or not isinstance(timeout, int):
            raise InvalidArgument(f"wait_event: timeout must be an int number of jiffies, got {timeout!r}")
        might_sleep()
        r = rt()
        t = r.current()
        # Joining the queue (prepare_to_wait) and leaving it (finish_wait) are list edits under the queue's
        # lock, so the steps that do them are WRITEs on the queue, ordered against waitqueue_active() (a
        # READ) and wake_up. This first step checks the condition and, if it is false, joins: it is a WRITE
        # whether or not it joins, because which it does depends on the condition, which may read state
        # the explorer does not see (a plain field): as a READ, DPOR would never run a waiter's check-and-
        # join before a waitqueue_active() it does not otherwise conflict with. The wait below is a WRITE
        # too: the step that ends it leaves the queue (and joins it again if the condition is still false).
        r.point("wait_event", self, WRITE)
        if timeout < 0:
            timeout = 0
        expire, rel = _deadline(timeout)
        forever = rel is None
        if cond():
            return max(_left(expire), 1)
        if timeout == 0:
            return 0
        state = TASK_INTERRUPTIBLE if interruptible else TASK_UNINTERRUPTIBLE
        expired = False
        while True:
            # prepare_to_wait: join the queue and set the task state, then check the condition again
            # before sleeping (___wait_event), so a wake_up that came while the previous check ran is
            # not lost.
            gen = self._gen
            igen = self._igen
            t.kstate = state
            self._waiters += 1
            try:
                if cond():
                    return max(_left(expire), 1)
                if expired:
                    return 0
                if interruptible and t.sigpending:
                    return -ERESTARTSYS

                def ready(gen: int = gen, igen: int = igen) -> bool:
                    return (
                        self._gen != gen
                        or t.kstate == TASK_RUNNING
                        or (interruptible and (t.sigpending or self._igen != igen))
                    )

                expired = not r.wait("wait_event", self, WRITE, ready, None if forever else _rel(expire))
            finally:
                # finish_wait
                self._waiters -= 1
                t.kstate = TASK_RUNNING

    def wake_up(self) -> None:
        """Wake every task sleeping in ``wait_event*`` on this queue, so it re-checks its condition.

        Locking: any context, also atomic. Kernel: ``wake_up``, ``wake_up_all``.
        """
        r = rt()
        r.point("wake_up", self, WRITE)
        self._gen += 1
        r.notify(self)

    wake_up_all = wake_up

    def wake_up_interruptible(self) -> None:
        """Wake the tasks sleeping interruptibly on this queue. Kernel: ``wake_up_interruptible[_all]``."""
        r = rt()
        r.point("wake_up", self, WRITE)
        self._igen += 1
        r.notify(self)

    def active(self) -> bool:
        """True if some task sleeps on the queue. Kernel: ``waitqueue_active`` (racy by design)."""
        rt().point("waitqueue_active", self, READ)
        return self._waiters > 0

    def __repr__(self) -> str:
        return f"<WaitQueueHead waiters={self._waiters}>"


def _wq(x: object, fn: str) -> WaitQueueHead:
    if not isinstance(x, WaitQueueHead):
        raise InvalidArgument(f"{fn} needs a WaitQueueHead, got {type(x).__name__}")
    return x


def DECLARE_WAIT_QUEUE_HEAD(name: str | None = None) -> WaitQueueHead:
    """A ready wait queue head (``DECLARE_WAIT_QUEUE_HEAD(name)``)."""
    return WaitQueueHead(name)


def init_waitqueue_head(wq_head: WaitQueueHead) -> None:
    """Make ``wq_head`` ready (empty). Kernel: ``init_waitqueue_head``."""
    w = _wq(wq_head, "init_waitqueue_head")
    w._gen = 0
    w._igen = 0
    w._waiters = 0


def wait_event(wq_head: WaitQueueHead, condition: Cond) -> None:
    """Sleep (uninterruptibly) until ``condition()`` is true. Kernel: ``wait_event``.

    Locking: may sleep.
    """
    _wq(wq_head, "wait_event").wait_event(condition)


def wait_event_timeout(wq_head: WaitQueueHead, condition: Cond, timeout: int) -> int:
    """Kernel: ``wait_event_timeout``: 0 if ``condition()`` is still false after ``timeout`` jiffies, else
    the jiffies left (>= 1, also when the condition became true right at the deadline)."""
    return _wq(wq_head, "wait_event_timeout").wait_event(condition, timeout)


def wait_event_interruptible(wq_head: WaitQueueHead, condition: Cond) -> int:
    """Kernel: ``wait_event_interruptible``: 0 once ``condition()`` holds, ``-ERESTARTSYS`` on a signal."""
    ret = _wq(wq_head, "wait_event_interruptible").wait_event(condition, interruptible=True)
    return ret if ret < 0 else 0


def wait_event_interruptible_timeout(wq_head: WaitQueueHead, condition: Cond, timeout: int) -> int:
    """Kernel: ``wait_event_interruptible_timeout``: ``-ERESTARTSYS``, 0 on timeout, else jiffies left."""
    return _wq(wq_head, "wait_event_interruptible_timeout").wait_event(condition, timeout, interruptible=True)


def wake_up(wq_head: WaitQueueHead) -> None:
    """Kernel: ``wake_up``. See :meth:`WaitQueueHead.wake_up`."""
    _wq(wq_head, "wake_up").wake_up()


def wake_up_all(wq_head: WaitQueueHead) -> None:
    """Kernel: ``wake_up_all``."""
    _wq(wq_head, "wake_up_all").wake_up()


def wake_up_interruptible(wq_head: WaitQueueHead) -> None:
    """Kernel: ``wake_up_interruptible``: wakes only interruptible sleepers."""
    _wq(wq_head, "wake_up_interruptible").wake_up_interruptible()


wake_up_interruptible_all = wake_up_interruptible


def waitqueue_active(wq_head: WaitQueueHead) -> bool:
    """Kernel: ``waitqueue_active``."""
    return _wq(wq_head, "waitqueue_active").active()
