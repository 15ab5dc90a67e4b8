"""Wound/wait classes and acquire contexts: the transaction side of ww_mutexes.

* :class:`WWClass`: a class of ww_mutexes (``DEFINE_WW_CLASS`` / ``DEFINE_WD_CLASS``): its algorithm
  (Wait-Die or Wound-Wait) and the stamp counter, kept per execution in ``rt().globals``;
* :class:`WWAcquireCtx`: an acquire context (``struct ww_acquire_ctx``): init / done / fini with their
  lockdep and debug checks, and the Pythonic back-off loop :meth:`WWAcquireCtx.lock_all`;
* ``_ctx_less``: the stamp order of two contexts (the younger one backs off);
* :func:`check_ww_ctx`: the argument check of the kernel-named wrappers.

The locks are in :mod:`.ww_lock`; :mod:`.ww_mutex` describes the algorithm and re-exports both.

Kernel: include/linux/ww_mutex.h, kernel/locking/ww_mutex.h.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .. import lockdep
from ..errors import Deadlk, InvalidArgument
from ..kernel import config
from ..kernel._warn import WARN
from ..runtime import WRITE, Task, active, rt

if TYPE_CHECKING:
    from .ww_lock import WWMutex

__all__ = ["WWAcquireCtx", "WWClass", "check_ww_ctx"]

#: key in ``rt().globals`` of the per-execution stamp counters (one per class)
_STAMPS = "ww_mutex.stamps"


class WWClass:
    """A class of wound/wait mutexes: the locks one acquire context may hold together.

    Args:
        name: the lock class name (lockdep reports, traces). Acquire contexts of the class are the lockdep
            class ``<name>_acquire``.
        wait_die: ``True`` for Wait-Die, ``False`` (default) for Wound-Wait.

    The stamp counter is global kernel state. A class is usually created once at module level, while the
    explorer re-runs a body many times, so the counter lives in the active runtime's per-execution
    ``globals`` (stamps restart at 1 in every execution, as replay needs); outside a runtime it lives on the
    object.

    Kernel: ``struct ww_class``, ``DEFINE_WW_CLASS``/``DEFINE_WD_CLASS`` (include/linux/ww_mutex.h).
    """

    def __init__(self, name: str = "ww_class", wait_die: bool = False) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"WWClass needs a non-empty name, got {name!r}")
        self.name = name
        self.is_wait_die = bool(wait_die)
        self._stamp = 0

    @property
    def stamp(self) -> int:
        """The last stamp handed out (0 before the first ``ww_acquire_init``)."""
        r = active()
        if r is None:
            return self._stamp
        stamps: dict[WWClass, int] = r.globals.get(_STAMPS, {})
        return stamps.get(self, 0)

    def _next_stamp(self) -> int:
        """``atomic_long_inc_return(&class->stamp)``; the caller made a scheduling point before."""
        r = active()
        if r is None:
            self._stamp += 1
            return self._stamp
        stamps: dict[WWClass, int] = r.globals.setdefault(_STAMPS, {})
        stamps[self] = stamps.get(self, 0) + 1
        return stamps[self]

    def __repr__(self) -> str:
        return f"<WWClass {self.name} {'wait-die' if self.is_wait_die else 'wound-wait'}>"


def _ctx_less(a: WWAcquireCtx, b: WWAcquireCtx) -> bool:
    """True if ``a`` is younger than ``b`` (``__ww_ctx_less``: the bigger stamp is the younger)."""
    return a.stamp > b.stamp


class WWAcquireCtx:
    """An acquire context (a "ticket"): the transaction that takes several locks of one ww class.

    ``WWAcquireCtx(cls)`` initialises it at once (``ww_acquire_init``); ``WWAcquireCtx()`` leaves it for
    :meth:`init`. ``with WWAcquireCtx(cls) as ctx:`` calls :meth:`fini` at the end; if the block raises, the
    locks still held under the context are released first (so the original exception is what you see).

    Fields (kernel names): ``task``, ``stamp``, ``acquired`` (locks held under it), ``wounded``,
    ``is_wait_die``, ``ww_class``, ``done_acquire``, ``contending_lock`` (the lock of the last ``-EDEADLK``),
    ``deadlock_inject_interval``/``deadlock_inject_countdown`` (``CONFIG_DEBUG_WW_MUTEX_SLOWPATH``).

    Locking: a context belongs to the task that initialised it; it is a lockdep "lock" of class
    ``<class name>_acquire`` held from init to fini (a second context of the same class in one task WARNs).

    Kernel: ``struct ww_acquire_ctx`` (include/linux/ww_mutex.h).
    """

    def __init__(self, cls: WWClass | None = None, *, name: str | None = None) -> None:
        self.task: Task | None = None
        self.stamp = 0
        self.acquired = 0
        self.wounded = False
        self.is_wait_die = False
        self.ww_class: WWClass | None = None
        self.done_acquire = False
        self.contending_lock: WWMutex | None = None
        self.deadlock_inject_interval = 0
        self.deadlock_inject_countdown = 0
        self._locks: list[WWMutex] = []
        self._finished = False
        self._dm_label = name
        self._dm_class: str | None = None
        if cls is not None:
            self.init(cls)

    @property
    def locks(self) -> list[WWMutex]:
        """The locks held under this context, oldest first (a Python convenience; not a kernel field)."""
        return list(self._locks)

    def init(self, cls: WWClass) -> None:
        """Start a transaction: take a new stamp from ``cls``.

        Locking: may not be nested with another context of the same class in one task (lockdep WARNs).
        Kernel: ``ww_acquire_init`` (include/linux/ww_mutex.h).
        """
        if not isinstance(cls, WWClass):
            raise InvalidArgument(f"ww_acquire_init needs a WWClass, got {type(cls).__name__}")
        r = rt()
        t = r.current()
        if config.CONFIG_PROVE_LOCKING:
            for h in t.held:
                if isinstance(h, WWAcquireCtx) and h.ww_class is cls:
                    WARN(
                        True,
                        f"possible recursive locking detected: {t.name!r} initialises a second "
                        f"{cls.name} acquire context while {lockdep.class_of(h)} is still held; "
                        "call ww_acquire_fini on the first one before starting another transaction",
                        "ww_mutex: nested acquire contexts",
                    )
                    break
        r.point("acquire_init", cls, WRITE)
        self.task = t
        self.stamp = cls._next_stamp()
        self.acquired = 0
        self.wounded = False
        self.is_wait_die = cls.is_wait_die
        self.ww_class = cls
        self.done_acquire = False
        self.contending_lock = None
        self.deadlock_inject_interval = 1
        self.deadlock_inject_countdown = self.stamp & 0xF
        self._locks = []
        self._finished = False
        self._dm_class = cls.name + "_acquire"
        lockdep.acquire(t, self)

    def done(self) -> None:
        """Mark the end of the acquire phase: locking more locks under the context WARNs afterwards.

        Locking: the context must be initialised by the caller (lockdep_assert_held).
        Kernel: ``ww_acquire_done``.
        """
        self._check_ready("ww_acquire_done")
        lockdep.assert_held(self, f"acquire context {lockdep.class_of(self)}")
        WARN(
            self.done_acquire,
            f"ww_acquire_done called twice on {lockdep.class_of(self)} (stamp {self.stamp})",
            "ww_mutex: double acquire_done",
        )
        self.done_acquire = True

    def fini(self) -> None:
        """End the transaction. Every lock taken under the context must have been unlocked.

        Locking: WARNs if locks are still held or if called twice. Kernel: ``ww_acquire_fini``.
        """
        self._check_ready("ww_acquire_fini")
        r = rt()
        t = r.current()
        was_held = lockdep.release(t, self)
        WARN(
            self._finished or not was_held,
            f"ww_acquire_fini of {lockdep.class_of(self)} (stamp {self.stamp}) by {t.name!r}, but the "
            "context is already finished (or was initialised by another task)",
            "ww_mutex: double fini",
        )
        WARN(
            self.acquired != 0,
            f"ww_acquire_fini of {lockdep.class_of(self)} (stamp {self.stamp}) with {self.acquired} lock(s) "
            "still held; unlock every ww_mutex taken under the context first",
            "ww_mutex: fini with locks held",
        )
        self.done_acquire = True
        self._finished = True

    def unlock_all(self) -> None:
        """Unlock every lock held under the context, newest first (the back-off step).

        Locking: the caller is the context's task. Not a kernel function (drivers loop over their list).
        """
        for lock in reversed(self._locks):
            lock.unlock()

    def lock_all(self, locks: Iterable[WWMutex], *, interruptible: bool = False) -> None:
        """Lock every lock in ``locks`` under this context with the canonical back-off loop.

        On contention: unlock everything, sleep on the contended lock with ``lock_slow``, and retry the
        others. Duplicates in ``locks`` are fine (``-EALREADY`` is ignored).

        Raises:
            InterruptedError: ``interruptible`` and a signal arrived while waiting (nothing is held then).

        Locking: may sleep. See Documentation/locking/ww-mutex-design.rst ("Method 1").
        """
        # late import: ww_lock imports this module at its top (WWClass, check_ww_ctx), so not the reverse
        from .ww_lock import WWMutex

        todo = list(locks)
        contended: WWMutex | None = None
        while True:
            if contended is not None:
                if interruptible:
                    contended.lock_slow_interruptible(self)
                else:
                    contended.lock_slow(self)
            try:
                for lock in todo:
                    if lock is not contended:
                        if interruptible:
                            lock.lock_interruptible(self)
                        else:
                            lock.lock(self)
            except Deadlk as e:
                self.unlock_all()
                if not isinstance(e.contended, WWMutex):
                    raise
                contended = e.contended
                continue
            except InterruptedError:
                self.unlock_all()
                raise
            return

    def _check_ready(self, fn: str) -> WWClass:
        if self.ww_class is None:
            raise InvalidArgument(f"{fn}: the acquire context is not initialised; call ww_acquire_init first")
        return self.ww_class

    def __enter__(self) -> WWAcquireCtx:
        self._check_ready("WWAcquireCtx.__enter__")
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is not None:
            if not issubclass(et, Exception):
                return  # the runtime is tearing the task down: do not touch shared state
            self.unlock_all()
        self.fini()

    def __repr__(self) -> str:
        name = self.ww_class.name if self.ww_class else "uninitialised"
        return f"<WWAcquireCtx {name} stamp={self.stamp} acquired={self.acquired}>"


def check_ww_ctx(ctx: Any, fn: str) -> WWAcquireCtx:
    """Type check for kernel-named wrappers (an initialised acquire context)."""
    if not isinstance(ctx, WWAcquireCtx):
        raise InvalidArgument(f"{fn} needs a WWAcquireCtx, got {type(ctx).__name__}")
    ctx._check_ready(fn)
    return ctx
