"""Completions (``linux/completion.h``): a counter of "done" events that sleeping waiters consume.

``done`` counts completions not yet consumed. :meth:`Completion.complete` adds one (saturating at
``UINT_MAX``), :meth:`Completion.complete_all` sets it to ``UINT_MAX``, which means "completed for good":
from then on every wait succeeds without consuming anything until :meth:`Completion.reinit`.

Double complete: ``complete()`` twice is not an error. It makes two waits succeed (two sleeping waiters are
released, or one waiter now and the next wait later returns at once). Which of several sleeping waiters gets a
completion is not fixed: the kernel wakes the first queued waiter, but a task that arrives meanwhile may
take the completion first; the model lets any waiter take it, a superset of the kernel's behaviours.

Kernel: ``struct completion`` (include/linux/completion.h, kernel/sched/completion.c).
"""

from __future__ import annotations

from ..errors import InvalidArgument
from ..runtime import READ, WRITE, rt
from ._warn import WARN
from .errno import ERESTARTSYS
from .sched import HZ, MAX_SCHEDULE_TIMEOUT, NOTIFY_SIGNAL, REAL_SIGNAL, might_sleep

__all__ = [
    "DECLARE_COMPLETION",
    "UINT_MAX",
    "Completion",
    "complete",
    "complete_all",
    "completion_done",
    "init_completion",
    "reinit_completion",
    "try_wait_for_completion",
    "wait_for_completion",
    "wait_for_completion_interruptible",
    "wait_for_completion_interruptible_timeout",
    "wait_for_completion_killable",
    "wait_for_completion_timeout",
]

#: ``UINT_MAX``: the value of ``done`` after ``complete_all``.
UINT_MAX = (1 << 32) - 1
_NS = 1_000_000_000


def _deadline(timeout: int) -> tuple[int, int | None]:
    """(expiry in jiffies, relative wait in ns) of a ``timeout``-jiffy sleep starting now. The expiry is
    jiffy-aligned like the kernel's timer wheel, so a timer armed at the same jiffy expires at the same
    instant."""
    r = rt()
    now = r.now_ns()
    start = now * HZ // _NS
    if timeout >= MAX_SCHEDULE_TIMEOUT:
        return MAX_SCHEDULE_TIMEOUT, None
    expire = start + timeout
    return expire, max(0, expire * _NS // HZ - now)


def _rel(expire: int) -> int:
    """Nanoseconds from now until jiffy ``expire``."""
    return max(0, expire * _NS // HZ - rt().now_ns())


def _left(expire: int) -> int:
    """Jiffies left until ``expire`` (0 if it passed)."""
    if expire >= MAX_SCHEDULE_TIMEOUT:
        return MAX_SCHEDULE_TIMEOUT
    return max(0, expire - rt().now_ns() * HZ // _NS)


class Completion:
    """A completion. Constructed ready (``done == 0``); ``init_completion`` resets it.

    Attributes:
        done: completions not yet consumed; ``UINT_MAX`` after ``complete_all``.

    Kernel: ``struct completion``.
    """

    def __init__(self, name: str | None = None) -> None:
        self.done = 0
        self._dm_label = name

    def _has_done(self) -> bool:
        return self.done > 0

    def _consume(self) -> None:
        if self.done != UINT_MAX:
            self.done -= 1

    # -------------------------------------------------------------- signalling side
    def reinit(self) -> None:
        """Reset ``done`` to 0 so the completion can be reused; no task may still wait on it.

        Locking: any context. Kernel: ``reinit_completion``.
        """
        rt().point("reinit_completion", self, WRITE)
        self.done = 0

    def complete(self) -> None:
        """Add one completion: releases one waiter (now or the next that comes). Saturates at ``UINT_MAX``.

        Locking: any context, also atomic (does not sleep). Kernel: ``complete``.
        """
        r = rt()
        r.point("complete", self, WRITE)
        if self.done != UINT_MAX:
            self.done += 1
        r.notify(self)

    def complete_all(self) -> None:
        """Complete for good: every current and future wait succeeds until :meth:`reinit`.

        Locking: any context. Kernel: ``complete_all``.
        """
        r = rt()
        r.point("complete_all", self, WRITE)
        self.done = UINT_MAX
        r.notify(self)

    # -------------------------------------------------------------- waiting side
    def _wait(self, op: str, timeout: int, interruptible: bool, killable: bool = False) -> int:
        """Core of every sleeping wait: 0 on timeout, ``-ERESTARTSYS`` on a signal, else jiffies left (>= 1).
        ``killable``: ``kthread_stop``'s notification (not a fatal signal) does not interrupt it."""
        if isinstance(timeout, bool) or not isinstance(timeout, int):
            raise InvalidArgument(f"{op}: timeout must be an int number of jiffies, got {timeout!r}")
        might_sleep()
        r = rt()
        t = r.current()
        if timeout < 0:
            WARN(True, f"{op}: wrong timeout value {timeout:#x}", "schedule_timeout: negative timeout")
            timeout = 0
        expire, rel = _deadline(timeout)

        def signalled() -> bool:
            # killable: kthread_stop's notification alone is not fatal; a real signal is (the model has one
            # kind of signal)
            return interruptible and t.sigpending and not (
                killable and t.extra.get(NOTIFY_SIGNAL) and not t.extra.get(REAL_SIGNAL)
            )

        def ready() -> bool:
            return self.done > 0 or signalled()

        ok = r.wait(op, self, WRITE, ready, rel)
        if self.done > 0:
            self._consume()
            left = _left(expire)
            return left if left > 0 else 1
        if ok and signalled():
            return -ERESTARTSYS
        return 0

    def wait(self) -> None:
        """Sleep until a completion is available and consume it (unless completed for good).

        Locking: may sleep; not in atomic context (WARNs there). Kernel: ``wait_for_completion``.
        """
        self._wait("wait_for_completion", MAX_SCHEDULE_TIMEOUT, False)

    def wait_timeout(self, timeout: int) -> int:
        """Like :meth:`wait`, for at most ``timeout`` jiffies.

        Returns:
            0 if it timed out, else the jiffies left, at least 1 (a completion that arrives exactly at the
            deadline still counts).

        Locking: may sleep. Kernel: ``wait_for_completion_timeout``.
        """
        return self._wait("wait_for_completion_timeout", timeout, False)

    def wait_interruptible(self, timeout: int = MAX_SCHEDULE_TIMEOUT) -> int:
        """Like :meth:`wait_timeout`, but a pending signal ends the wait with ``-ERESTARTSYS`` (an available
        completion wins over a signal).

        Locking: may sleep. Kernel: ``wait_for_completion_interruptible[_timeout]``.
        """
        return self._wait("wait_for_completion_interruptible", timeout, True)

    def try_wait(self) -> bool:
        """Consume a completion if one is available, without sleeping.

        Locking: any context. Kernel: ``try_wait_for_completion``.
        """
        rt().point("try_wait_for_completion", self, WRITE)
        if self.done == 0:
            return False
        self._consume()
        return True

    def is_done(self) -> bool:
        """True if a wait would succeed at once (a completion is available).

        Locking: any context. Kernel: ``completion_done``.
        """
        rt().point("completion_done", self, READ)
        return self.done > 0

    def __repr__(self) -> str:
        done = "all" if self.done == UINT_MAX else str(self.done)
        return f"<Completion done={done}>"


def _c(x: object, fn: str) -> Completion:
    if not isinstance(x, Completion):
        raise InvalidArgument(f"{fn} needs a Completion, got {type(x).__name__}")
    return x


def DECLARE_COMPLETION(name: str | None = None) -> Completion:
    """A ready completion (``DECLARE_COMPLETION(name)``)."""
    return Completion(name)


def init_completion(x: Completion) -> None:
    """Make ``x`` ready (``done = 0``). Not a scheduling point: the struct is not shared yet.

    Kernel: ``init_completion``.
    """
    _c(x, "init_completion").done = 0


def reinit_completion(x: Completion) -> None:
    """Kernel: ``reinit_completion``. See :meth:`Completion.reinit`."""
    _c(x, "reinit_completion").reinit()


def complete(x: Completion) -> None:
    """Kernel: ``complete``. See :meth:`Completion.complete`."""
    _c(x, "complete").complete()


def complete_all(x: Completion) -> None:
    """Kernel: ``complete_all``. See :meth:`Completion.complete_all`."""
    _c(x, "complete_all").complete_all()


def wait_for_completion(x: Completion) -> None:
    """Kernel: ``wait_for_completion``. See :meth:`Completion.wait`."""
    _c(x, "wait_for_completion").wait()


def wait_for_completion_timeout(x: Completion, timeout: int) -> int:
    """Kernel: ``wait_for_completion_timeout``: 0 on timeout, else jiffies left (>= 1)."""
    return _c(x, "wait_for_completion_timeout").wait_timeout(timeout)


def wait_for_completion_interruptible(x: Completion) -> int:
    """Kernel: ``wait_for_completion_interruptible``: 0, or ``-ERESTARTSYS`` if a signal arrived first."""
    ret = _c(x, "wait_for_completion_interruptible").wait_interruptible()
    return ret if ret < 0 else 0


def wait_for_completion_interruptible_timeout(x: Completion, timeout: int) -> int:
    """Kernel: ``wait_for_completion_interruptible_timeout``: ``-ERESTARTSYS``, 0 on timeout, else jiffies
    left (>= 1)."""
    return _c(x, "wait_for_completion_interruptible_timeout").wait_interruptible(timeout)


def wait_for_completion_killable(x: Completion) -> int:
    """Kernel: ``wait_for_completion_killable``. The model has one kind of signal, so this is the
    interruptible wait -- except when the only pending signal is the notification ``kthread_stop`` sends
    (``TIF_NOTIFY_SIGNAL``), which is not fatal: then it waits like ``wait_for_completion`` and returns 0.

    Locking: may sleep.
    """
    ret = _c(x, "wait_for_completion_killable")._wait(
        "wait_for_completion_killable", MAX_SCHEDULE_TIMEOUT, True, killable=True
    )
    return ret if ret < 0 else 0


def try_wait_for_completion(x: Completion) -> bool:
    """Kernel: ``try_wait_for_completion``. See :meth:`Completion.try_wait`."""
    return _c(x, "try_wait_for_completion").try_wait()


def completion_done(x: Completion) -> bool:
    """Kernel: ``completion_done``. See :meth:`Completion.is_done`."""
    return _c(x, "completion_done").is_done()
