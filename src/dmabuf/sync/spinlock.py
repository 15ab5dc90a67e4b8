"""Spinlock (``spinlock_t``): like a mutex, but holding it puts the task in atomic context."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from .. import lockdep
from ..errors import InvalidArgument
from ..kernel._warn import WARN
from ..runtime import RELEASE, WRITE, FieldIsNone, Task, rt

__all__ = ["SpinLock"]


class SpinLock:
    """A spinning lock. While held the task is in atomic context: ``might_sleep()`` in it WARNs.

    ``irqsave`` variants also count as atomic context; the saved flags are opaque ints that must be given
    back to the matching restore (the kernel checks nothing there; we check they match).

    Debug checks as with ``CONFIG_DEBUG_SPINLOCK``: recursion (locking a lock the task holds), unlock of a
    lock that is not held, unlock by another task.

    Kernel: ``spinlock_t`` (include/linux/spinlock.h, kernel/locking/spinlock_debug.c).
    """

    def __init__(self, name: str | None = None, *, lock_class: str | None = None) -> None:
        self.owner: Task | None = None
        self._dm_label = name
        self._dm_class = lock_class
        self._dm_site = lockdep.init_site("SpinLock")
        self._flags = 0
        #: the wait predicate of lock(): free when the owner left (compiled with the runtime)
        self._dm_free = FieldIsNone(self, "owner")

    def _dm_holders(self) -> list[Task]:
        return [self.owner] if self.owner is not None else []

    def lock(self) -> None:
        """Acquire, spinning while held elsewhere. Kernel: ``spin_lock``."""
        r = rt()
        t = r.current()
        if self.owner is t:
            WARN(
                True,
                f"spinlock recursion: {t.name!r} locks {lockdep.class_of(self)} it already holds",
                "spinlock: recursion",
            )
        r.wait("spin_lock", self, WRITE, self._dm_free)
        self.owner = t
        t.atomic_depth += 1
        lockdep.acquire(t, self)

    def trylock(self) -> bool:
        """Acquire if free. Kernel: ``spin_trylock``."""
        r = rt()
        t = r.current()
        r.point("spin_trylock", self, WRITE)
        if self.owner is not None:
            return False
        self.owner = t
        t.atomic_depth += 1
        lockdep.acquire(t, self, trylock=True)
        return True

    def unlock(self) -> None:
        """Release. Kernel: ``spin_unlock``; an unheld or foreign lock is a ``spin_bug`` (KernelWarning)."""
        r = rt()
        t = r.current()
        r.point("spin_unlock", self, RELEASE)
        if self.owner is not t:
            what = "already unlocked" if self.owner is None else f"wrong owner ({self.owner.name!r})"
            WARN(
                True,
                f"spinlock {lockdep.class_of(self)}: {what}, unlocked by {t.name!r}",
                "spinlock: unlock of a lock not held by the caller",
            )
            # log mode: after spin_bug the kernel unlocks anyway. lockdep drops the caller's record if it has
            # one (it took the lock and a thief released it): then its preemption count drops too; a caller
            # that never took the lock keeps its count (the kernel's would underflow)
            if lockdep.release(t, self):
                t.atomic_depth -= 1
            if self.owner is not None:
                self.owner = None
                r.notify(self)
            return
        self.owner = None
        t.atomic_depth -= 1
        lockdep.release(t, self)
        r.notify(self)

    def lock_irqsave(self) -> int:
        """Acquire with interrupts off; returns the flags to restore. Kernel: ``spin_lock_irqsave``."""
        self.lock()
        r = rt()
        t = r.current()
        t.atomic_depth += 1
        # flags come from one per-run counter, so restoring another lock's flags is noticed
        n: int = r.globals.get("_irq_flags", 0) + 1
        r.globals["_irq_flags"] = n
        self._flags = n
        return n

    def unlock_irqrestore(self, flags: int) -> None:
        """Release and restore interrupts. Kernel: ``spin_unlock_irqrestore``."""
        t = rt().current()
        if self.owner is t:
            if not isinstance(flags, int) or flags != self._flags:
                WARN(
                    True,
                    f"spin_unlock_irqrestore of {lockdep.class_of(self)} with flags {flags!r} that "
                    "spin_lock_irqsave did not return",
                    "spinlock: irqrestore with foreign flags",
                )
            t.atomic_depth -= 1
        self.unlock()

    def is_locked(self) -> bool:
        """True if held. Kernel: ``spin_is_locked``."""
        rt().point("spin_is_locked", self, "read")
        return self.owner is not None

    def held_by_current(self) -> bool:
        """True if the running task holds it (``lockdep_assert_held`` helper)."""
        return self.owner is rt().current()

    def __enter__(self) -> SpinLock:
        self.lock()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.unlock()

    def __repr__(self) -> str:
        return f"<SpinLock {lockdep.class_of(self)} owner={self.owner.name if self.owner else None}>"


def check_spinlock(s: Any, fn: str) -> SpinLock:
    """Type check for kernel-named wrappers."""
    if not isinstance(s, SpinLock):
        raise InvalidArgument(f"{fn} needs a SpinLock, got {type(s).__name__}")
    return s
