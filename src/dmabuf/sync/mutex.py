"""Sleeping mutex (``struct mutex``) with owner tracking and the kernel's debug checks."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from .. import lockdep
from .. import runtime as _runtime
from ..errors import InvalidArgument
from ..kernel import config
from ..kernel._warn import WARN
from ..kernel.errno import EINTR
from ..runtime import RELEASE, WRITE, FieldIsNone, Task, rt

__all__ = ["Mutex", "mutex_lock", "mutex_unlock"]


class Mutex:
    """A sleeping lock. ``with m:`` locks and unlocks.

    Debug checks as with ``CONFIG_DEBUG_MUTEXES``/lockdep: unlocking a mutex the task does not own, locking
    in atomic context, re-locking a mutex the task already holds (lockdep "recursive locking"; without
    ``CONFIG_PROVE_LOCKING`` that is a plain self-deadlock) are ``KernelWarning``\\ s.

    Kernel: ``struct mutex`` (kernel/locking/mutex.c).
    """

    def __init__(self, name: str | None = None, *, lock_class: str | None = None) -> None:
        self.owner: Task | None = None
        self._dm_label = name
        self._dm_class = lock_class
        # lockdep classes a lock by its init site only when it has neither class nor name (lockdep.class_of):
        # the frame walk is skipped for the others
        named = (isinstance(lock_class, str) and lock_class) or (isinstance(name, str) and name)
        self._dm_site = None if named else lockdep.init_site("Mutex")
        #: the wait predicate of lock(): free when the owner left (compiled with the runtime)
        self._dm_free = FieldIsNone(self, "owner")

    def _dm_holders(self) -> list[Task]:
        return [self.owner] if self.owner is not None else []

    def _check_lock(self, t: Task) -> None:
        if t.sleep_forbidden:
            from ..kernel.sched import might_sleep

            might_sleep()
        if self.owner is t and config.CONFIG_PROVE_LOCKING:
            WARN(
                True,
                f"possible recursive locking detected: {t.name!r} locks {lockdep.class_of(self)} again",
                "mutex: recursive locking",
            )

    def lock(self) -> None:
        """Acquire, sleeping while another task holds it.

        Locking: may sleep; not in atomic context. Kernel: ``mutex_lock``.
        """
        mutex_lock(self)

    def lock_interruptible(self) -> int:
        """Acquire unless a signal arrives first: 0 or ``-EINTR``. Kernel: ``mutex_lock_interruptible``."""
        r = rt()
        t = r.current()
        self._check_lock(t)
        r.wait("lock", self, WRITE, lambda: self.owner is None or t.sigpending)
        if self.owner is not None:
            return -EINTR
        self.owner = t
        lockdep.acquire(t, self)
        return 0

    def trylock(self) -> bool:
        """Acquire if free, without sleeping. Kernel: ``mutex_trylock`` (returns 1/0)."""
        r = rt()
        t = r.current()
        r.point("trylock", self, WRITE)
        if self.owner is not None:
            return False
        self.owner = t
        lockdep.acquire(t, self, trylock=True)
        return True

    def unlock(self) -> None:
        """Release. Unlocking a mutex the caller does not hold WARNs (and, in log warn mode, releases it
        anyway, as the kernel does).

        Kernel: ``mutex_unlock``.
        """
        mutex_unlock(self)

    def is_locked(self) -> bool:
        """True if some task holds it. Kernel: ``mutex_is_locked``."""
        r = rt()
        r.point("is_locked", self, "read")
        return self.owner is not None

    def __enter__(self) -> Mutex:
        self.lock()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.unlock()

    def __repr__(self) -> str:
        return f"<Mutex {lockdep.class_of(self)} owner={self.owner.name if self.owner else None}>"


def mutex_lock(lock: Mutex) -> None:
    """Acquire ``lock``, sleeping while another task holds it (the body of :meth:`Mutex.lock`, under its
    kernel name: the kernel-named API calls it without a second frame).

    Locking: may sleep; not in atomic context. Kernel: ``mutex_lock``.
    """
    if not isinstance(lock, Mutex):
        check_mutex(lock, "mutex_lock")
    r = _runtime._current or rt()  # the active runtime without a call (rt() raises outside one)
    t = r.current()
    if t.sleep_forbidden or lock.owner is t:  # else _check_lock has nothing to check
        lock._check_lock(t)
    r.wait("lock", lock, WRITE, lock._dm_free)
    lock.owner = t
    if t.held:
        lockdep.acquire(t, lock)
    else:  # what lockdep.acquire does when nothing is held (no order to check), without the call
        t.held.append(lock)


def mutex_unlock(lock: Mutex) -> None:
    """Release ``lock`` (the body of :meth:`Mutex.unlock`). Unlocking a mutex the caller does not hold
    WARNs; in log warn mode it is then released anyway, as in the kernel.

    Kernel: ``mutex_unlock``.
    """
    if not isinstance(lock, Mutex):
        check_mutex(lock, "mutex_unlock")
    r = _runtime._current or rt()
    t = r.current()
    r.point("unlock", lock, RELEASE)
    if lock.owner is not t:
        who = "nobody" if lock.owner is None else repr(lock.owner.name)
        WARN(
            True,
            f"mutex_unlock of {lockdep.class_of(lock)} by {t.name!r}, but it is held by {who}",
            "mutex: unlock of a mutex not held by the caller",
        )
        # log mode: the kernel goes on. mutex_release() drops the caller's lockdep record if it has one (it
        # does after a thief released the mutex under it), and __mutex_unlock_slowpath releases the mutex
        # after its MUTEX_WARN_ON; the real owner's record stays until it unlocks or exits
        lockdep.release(t, lock)
        if lock.owner is not None:
            lock.owner = None
            r.notify(lock)
        return
    lock.owner = None
    held = t.held
    if held and held[-1] is lock:  # lockdep.release of the newest lock (the usual case), without the call
        del held[-1]
    else:
        lockdep.release(t, lock)
    r.notify(lock)


def check_mutex(m: Any, fn: str) -> Mutex:
    """Type check for kernel-named wrappers."""
    if not isinstance(m, Mutex):
        raise InvalidArgument(f"{fn} needs a Mutex, got {type(m).__name__}")
    return m
