"""Kernel names for spinlocks and mutexes (``linux/spinlock.h``, ``linux/mutex.h``), over
:class:`dmabuf.sync.SpinLock` and :class:`dmabuf.sync.Mutex`."""

from __future__ import annotations

from typing import Any

from .. import lockdep
from ..errors import InvalidArgument
from ..runtime import rt
from ..sync.mutex import Mutex, check_mutex, mutex_lock, mutex_unlock
from ..sync.spinlock import SpinLock, check_spinlock
from ._warn import WARN

__all__ = [
    "DEFINE_MUTEX",
    "DEFINE_SPINLOCK",
    "Mutex",
    "SpinLock",
    "lockdep_assert_held",
    "mutex_destroy",
    "mutex_init",
    "mutex_is_locked",
    "mutex_lock",
    "mutex_lock_interruptible",
    "mutex_lock_nested",
    "mutex_trylock",
    "mutex_unlock",
    "spin_is_locked",
    "spin_lock",
    "spin_lock_bh",
    "spin_lock_init",
    "spin_lock_irq",
    "spin_lock_irqsave",
    "spin_trylock",
    "spin_unlock",
    "spin_unlock_bh",
    "spin_unlock_irq",
    "spin_unlock_irqrestore",
]


def spin_lock_init(lock: SpinLock) -> None:
    """Make ``lock`` ready (unlocked). Kernel: ``spin_lock_init``."""
    check_spinlock(lock, "spin_lock_init").owner = None


def DEFINE_SPINLOCK(name: str | None = None) -> SpinLock:
    """A ready spinlock (``DEFINE_SPINLOCK(name)``)."""
    return SpinLock(name)


def spin_lock(lock: SpinLock) -> None:
    """Kernel: ``spin_lock``. Enters atomic context."""
    check_spinlock(lock, "spin_lock").lock()


def spin_trylock(lock: SpinLock) -> int:
    """Kernel: ``spin_trylock``: 1 if taken, 0 if busy."""
    return int(check_spinlock(lock, "spin_trylock").trylock())


def spin_unlock(lock: SpinLock) -> None:
    """Kernel: ``spin_unlock``."""
    check_spinlock(lock, "spin_unlock").unlock()


def spin_lock_irqsave(lock: SpinLock) -> int:
    """Kernel: ``spin_lock_irqsave(lock, flags)``; the flags are returned (rule 2)."""
    return check_spinlock(lock, "spin_lock_irqsave").lock_irqsave()


def spin_unlock_irqrestore(lock: SpinLock, flags: int) -> None:
    """Kernel: ``spin_unlock_irqrestore``."""
    check_spinlock(lock, "spin_unlock_irqrestore").unlock_irqrestore(flags)


def spin_lock_irq(lock: SpinLock) -> None:
    """Kernel: ``spin_lock_irq`` (irqs off while held)."""
    s = check_spinlock(lock, "spin_lock_irq")
    s.lock()
    rt().current().atomic_depth += 1


def spin_unlock_irq(lock: SpinLock) -> None:
    """Kernel: ``spin_unlock_irq``."""
    s = check_spinlock(lock, "spin_unlock_irq")
    t = rt().current()
    if s.owner is t:
        t.atomic_depth -= 1
    s.unlock()


spin_lock_bh = spin_lock
spin_unlock_bh = spin_unlock


def spin_is_locked(lock: SpinLock) -> bool:
    """Kernel: ``spin_is_locked``."""
    return check_spinlock(lock, "spin_is_locked").is_locked()


def mutex_init(lock: Mutex) -> None:
    """Make ``lock`` ready (unlocked). Kernel: ``mutex_init``."""
    check_mutex(lock, "mutex_init").owner = None


def DEFINE_MUTEX(name: str | None = None) -> Mutex:
    """A ready mutex (``DEFINE_MUTEX(name)``)."""
    return Mutex(name)


def mutex_destroy(lock: Mutex) -> None:
    """Kernel: ``mutex_destroy``: WARNs if the mutex is still locked."""
    m = check_mutex(lock, "mutex_destroy")
    WARN(
        m.owner is not None,
        f"mutex_destroy of locked mutex {lockdep.class_of(m)}",
        "mutex: destroy while locked",
    )


def mutex_lock_nested(lock: Mutex, subclass: int) -> None:
    """Kernel: ``mutex_lock_nested`` (the subclass only matters to lockdep)."""
    if isinstance(subclass, bool) or not isinstance(subclass, int):
        raise InvalidArgument(f"mutex_lock_nested needs an int subclass, got {subclass!r}")
    check_mutex(lock, "mutex_lock_nested").lock()


def mutex_lock_interruptible(lock: Mutex) -> int:
    """Kernel: ``mutex_lock_interruptible``: 0 or ``-EINTR``."""
    return check_mutex(lock, "mutex_lock_interruptible").lock_interruptible()


def mutex_trylock(lock: Mutex) -> int:
    """Kernel: ``mutex_trylock``: 1 if taken, 0 if busy."""
    return int(check_mutex(lock, "mutex_trylock").trylock())


def mutex_is_locked(lock: Mutex) -> bool:
    """Kernel: ``mutex_is_locked``."""
    return check_mutex(lock, "mutex_is_locked").is_locked()


def lockdep_assert_held(lock: Any) -> None:
    """Kernel: ``lockdep_assert_held``: WARN unless the running task holds ``lock``."""
    if lock is None:
        raise InvalidArgument("lockdep_assert_held(NULL): pass the lock object")
    lockdep.assert_held(lock)
