"""Timers (``linux/timer.h``): run a callback in softirq (atomic) context once ``jiffies`` reaches
``timer.expires``.

Model: each timer that was ever armed gets one daemon task, its "softirq". The task sleeps until the
timer's expiry (virtual time under the explorer, real time on threads) or until the timer is modified,
then, at a scheduling point of its own, fires it: it clears the pending state and calls
``timer.function(timer)`` with ``task.atomic_depth`` raised, so sleeping in the callback WARNs
(``might_sleep``). Because firing is a scheduling point, a timer and another task whose deadlines fall on
the same jiffy run in either order under the explorer. Callbacks of different timers may run
concurrently (as on different CPUs); one timer's callback never runs concurrently with itself.

Pending timers at the end of a run: a timer still armed (or with its callback still running) when every
non-daemon task finished is reported as a leak. In the kernel a timer must be deleted with
``del_timer_sync``/``timer_shutdown_sync`` before the memory or the code it refers to goes away (module
unload, freeing the containing struct); a timer left pending is a use-after-free waiting to happen. A
timer that fired and was not re-armed needs no deletion.

Kernel: ``struct timer_list`` (include/linux/timer.h, kernel/time/timer.c).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgument
from ..runtime import LOCAL, READ, WRITE, Task, label_of, rt
from ._warn import WARN
from .sched import HZ

__all__ = [
    "TIMER_DEFERRABLE",
    "TIMER_IRQSAFE",
    "TIMER_PINNED",
    "TimerList",
    "add_timer",
    "del_timer",
    "del_timer_sync",
    "mod_timer",
    "timer_delete",
    "timer_delete_sync",
    "timer_pending",
    "timer_setup",
    "timer_shutdown",
    "timer_shutdown_sync",
]

TIMER_DEFERRABLE = 0x00080000
TIMER_PINNED = 0x00100000
TIMER_IRQSAFE = 0x00200000
_FLAG_MASK = TIMER_DEFERRABLE | TIMER_PINNED | TIMER_IRQSAFE
_NS = 1_000_000_000
_REG = "_timers"


class TimerList:
    """A kernel timer. Construct, then :meth:`setup` (``timer_setup``); arm with :meth:`mod`.

    Attributes:
        function: the callback, called as ``function(timer)`` (a subclass instance when the timer is
            embedded by subclassing); ``None`` before setup and after shutdown.
        expires: expiry in jiffies (read by ``add_timer``).
        flags: ``TIMER_*`` flags given to ``timer_setup``.

    Kernel: ``struct timer_list``.
    """

    def __init__(self, name: str | None = None) -> None:
        self.function: Callable[[Any], Any] | None = None
        self.expires = 0
        self.flags = 0
        self._dm_label = name
        self._setup = False
        self._armed = False
        self._gen = 0  # bumped on every arm/disarm so the softirq task re-reads the expiry
        self._running: Task | None = None  # softirq task while the callback runs
        self._task: Task | None = None
        self._what = "timer"

    def _dm_holders(self) -> list[Task]:
        return [self._running] if self._running is not None else []

    # ----------------------------------------------------------------- API
    def setup(self, function: Callable[[Any], Any], flags: int = 0) -> None:
        """Prepare the timer to call ``function(timer)``. Not a scheduling point (the timer is not shared
        yet). Kernel: ``timer_setup``."""
        if not callable(function):
            raise InvalidArgument(f"timer_setup needs a callable function, got {type(function).__name__}")
        if isinstance(flags, bool) or not isinstance(flags, int) or flags & ~_FLAG_MASK:
            raise InvalidArgument(
                f"timer_setup: unknown flags {flags!r} (use TIMER_DEFERRABLE/PINNED/IRQSAFE)"
            )
        self.function = function
        self.flags = flags
        self._setup = True
        self._armed = False
        self._running = None

    def _check_setup(self, fn: str) -> None:
        if not self._setup:
            raise InvalidArgument(
                f"{fn} on a timer that was never set up: call timer_setup(timer, fn, 0) first"
            )

    def mod(self, expires: int) -> bool:
        """(Re-)arm the timer to fire when ``jiffies`` reaches ``expires``.

        Returns:
            True if the timer was pending (it was modified), False if it was idle (it was activated).
            A shut-down timer is left alone and False returned.

        Locking: any context, also atomic and the timer's own callback. Kernel: ``mod_timer``.
        """
        self._check_setup("mod_timer")
        if isinstance(expires, bool) or not isinstance(expires, int):
            raise InvalidArgument(f"mod_timer: expires must be an int (jiffies), got {expires!r}")
        r = rt()
        r.point("mod_timer", self, WRITE)
        was = self._armed
        if self.function is None:  # shut down: the kernel ignores re-arming silently
            return was
        self.expires = expires
        self._arm(r)
        return was

    def add(self) -> None:
        """Arm the timer at its current ``expires``. Adding a pending timer WARNs and changes nothing.

        Kernel: ``add_timer``.
        """
        self._check_setup("add_timer")
        r = rt()
        r.point("add_timer", self, WRITE)
        if self._armed:
            WARN(
                True,
                f"add_timer on {label_of(self)}, which is already pending (use mod_timer to re-arm)",
                "add_timer: timer already pending",
            )
            return
        if self.function is None:
            return
        self._arm(r)

    def pending(self) -> bool:
        """True while armed and not yet fired. Kernel: ``timer_pending``."""
        rt().point("timer_pending", self, READ)
        return self._armed

    def delete(self) -> bool:
        """Disarm; the callback may still be running on return. True if it was pending.

        Kernel: ``timer_delete`` / ``del_timer``.
        """
        r = rt()
        r.point("del_timer", self, WRITE)
        return self._disarm(r)

    def delete_sync(self, shutdown: bool = False) -> bool:
        """Disarm and wait until a running callback finished. True if it was pending. On return the timer
        is not queued, also when the running callback re-armed it (a periodic timer): it is disarmed again
        once the callback returned, and True returned.

        Calling it from the timer's own callback WARNs (the kernel would wait for itself forever; lockdep
        reports it). Holding a lock the callback takes is a deadlock the explorer finds.

        Locking: may wait; not from the callback itself. Kernel: ``timer_delete_sync`` / ``del_timer_sync``
        (``timer_shutdown_sync`` with ``shutdown=True``: afterwards re-arming is silently ignored).
        """
        r = rt()
        me = r.current()
        r.point("del_timer_sync", self, WRITE)
        if self._running is me:
            WARN(
                True,
                "del_timer_sync called from the timer's own callback: it would wait for itself",
                "del_timer_sync: called from the timer callback",
            )
            was = self._disarm(r)
            if shutdown:
                self.function = None
            return was
        was = self._disarm(r)
        if shutdown:
            self.function = None
        while self._running is not None:
            r.wait("del_timer_sync", self, READ, lambda: self._running is None)
            # The kernel detaches only once the callback is not running, so a callback that re-armed
            # its own timer (a periodic timer) is disarmed here: on return the timer is not queued.
            was = self._disarm(r) or was
        return was

    # ----------------------------------------------------------------- internals
    #: the firing step of the softirq task: a WRITE point named this, on :meth:`_fire_obj`
    _FIRE_OP = "timer_fire"

    def _fire_obj(self, r: Any) -> object:
        """The object the firing is a point on: the timer (a delayed work's timer: its pool)."""
        return self

    def _done(self, r: Any) -> None:
        """After the callback returned: a WRITE point on the timer (``del_timer_sync`` waits for it)."""
        r.point("timer_done", self, WRITE)
        self._running = None
        r.notify(self)

    def _arm(self, r: Any) -> None:
        self._armed = True
        self._gen += 1
        _register(r, self)
        if self._task is None or self._task.done:
            self._task = r.spawn(_softirq, (self,), f"softirq:{label_of(self)}", daemon=True)
        r.notify(self)

    def _disarm(self, r: Any) -> bool:
        was = self._armed
        if was:
            self._armed = False
            self._gen += 1
            r.notify(self)
        return was

    def __repr__(self) -> str:
        state = "running" if self._running else ("pending" if self._armed else "idle")
        return f"<TimerList {state} expires={self.expires}>"


def _softirq(timer: TimerList) -> None:
    """Daemon task that fires ``timer``. Re-arming wakes it; it re-reads the expiry and sleeps again.
    Those bookkeeping wake-ups are LOCAL steps (they only re-read state that any change would bump
    ``_gen`` for again), so only the firing itself is a scheduling branch."""
    r = rt()
    t = r.current()
    while True:
        gen = timer._gen

        def changed(gen: int = gen) -> bool:
            return timer._gen != gen

        if not timer._armed:
            r.wait("timer_idle", timer, LOCAL, changed)
            continue
        rel = max(0, timer.expires * _NS // HZ - r.now_ns())
        if r.wait("timer_sleep", timer, LOCAL, changed, rel):
            continue
        r.point(timer._FIRE_OP, timer._fire_obj(r), WRITE)
        if timer._gen != gen or not timer._armed:
            continue  # modified or deleted meanwhile
        fn = timer.function
        timer._armed = False
        if fn is None:
            continue
        timer._running = t
        t.atomic_depth += 1
        try:
            fn(timer)
        finally:
            t.atomic_depth -= 1
        timer._done(r)


def _register(r: Any, timer: TimerList) -> None:
    reg: list[TimerList] | None = r.globals.get(_REG)
    if reg is None:
        reg = []
        r.globals[_REG] = reg

        def check() -> str | None:
            bad = []
            for tm in reg:
                if tm._running is not None:
                    bad.append(f"{tm._what} {label_of(tm)}: callback still running")
                elif tm._armed:
                    bad.append(f"{tm._what} {label_of(tm)}: still pending (expires at jiffy {tm.expires})")
            if not bad:
                return None
            return (
                "timers not deleted at the end of the run (del_timer_sync/timer_shutdown_sync them before "
                "their memory or code goes away): " + "; ".join(bad)
            )

        r.add_end_check(check)
    if not any(x is timer for x in reg):
        reg.append(timer)


def _t(x: object, fn: str) -> TimerList:
    if not isinstance(x, TimerList):
        raise InvalidArgument(f"{fn} needs a TimerList, got {type(x).__name__}")
    return x


def timer_setup(timer: TimerList, callback: Callable[[Any], Any], flags: int) -> None:
    """Kernel: ``timer_setup``. See :meth:`TimerList.setup`."""
    _t(timer, "timer_setup").setup(callback, flags)


def mod_timer(timer: TimerList, expires: int) -> int:
    """Kernel: ``mod_timer``: 1 if the timer was pending, else 0."""
    return int(_t(timer, "mod_timer").mod(expires))


def add_timer(timer: TimerList) -> None:
    """Kernel: ``add_timer``: arm at ``timer.expires``; WARNs if already pending."""
    _t(timer, "add_timer").add()


def timer_pending(timer: TimerList) -> bool:
    """Kernel: ``timer_pending``."""
    return _t(timer, "timer_pending").pending()


def timer_delete(timer: TimerList) -> int:
    """Kernel: ``timer_delete``: 1 if the timer was pending, else 0 (does not wait for the callback)."""
    return int(_t(timer, "timer_delete").delete())


def timer_delete_sync(timer: TimerList) -> int:
    """Kernel: ``timer_delete_sync``: 1 if the timer was pending; waits for a running callback."""
    return int(_t(timer, "timer_delete_sync").delete_sync())


def timer_shutdown(timer: TimerList) -> int:
    """Kernel: ``timer_shutdown``: delete and forbid re-arming (does not wait)."""
    tm = _t(timer, "timer_shutdown")
    ret = tm.delete()
    tm.function = None
    return int(ret)


def timer_shutdown_sync(timer: TimerList) -> int:
    """Kernel: ``timer_shutdown_sync``: delete, wait for the callback, forbid re-arming."""
    return int(_t(timer, "timer_shutdown_sync").delete_sync(shutdown=True))


def del_timer(timer: TimerList) -> int:
    """Kernel: ``del_timer`` (old name of ``timer_delete``)."""
    return int(_t(timer, "del_timer").delete())


def del_timer_sync(timer: TimerList) -> int:
    """Kernel: ``del_timer_sync`` (old name of ``timer_delete_sync``)."""
    return int(_t(timer, "del_timer_sync").delete_sync())
