"""The wound/wait mutex itself (``struct ww_mutex``): :class:`WWMutex`.

* setup and queries: ``init``, ``destroy``, ``is_locked``;
* the Pythonic locking (``lock``, ``lock_slow``, ``trylock``, ``unlock``, ``with lock:``), which raises
  :class:`~dmabuf.errors.Deadlk` and :class:`InterruptedError` where the kernel returns ``-EDEADLK`` and
  ``-EINTR``;
* the kernel algorithm: :meth:`WWMutex.lock_errno` (fast path, then the wait loop), taking and releasing
  the lock, and the ``CONFIG_DEBUG_WW_MUTEXES`` / lockdep checks (``_set_context``, ``_check_nesting``,
  ``_slow_check``) and the ``CONFIG_DEBUG_WW_MUTEX_SLOWPATH`` injection (``_inject``);
* :func:`check_ww_mutex`: the argument check of the kernel-named wrappers.

The wait list and the Wait-Die / Wound-Wait decisions taken on it are in :mod:`.ww_wait` (the base class of
:class:`WWMutex`); classes and acquire contexts in :mod:`.ww_acquire`. :mod:`.ww_mutex` describes the
algorithm and re-exports all of it.

Kernel: include/linux/ww_mutex.h, kernel/locking/mutex.c, kernel/locking/ww_mutex.h.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from .. import lockdep
from ..errors import Deadlk, InvalidArgument
from ..kernel import config
from ..kernel._warn import WARN
from ..kernel.errno import EALREADY, EDEADLK, EINTR
from ..runtime import READ, RELEASE, WRITE, Task, active, rt
from .ww_acquire import WWAcquireCtx, WWClass, check_ww_ctx
from .ww_wait import _WAITER, _Waiter, _WWWaitList

__all__ = ["WWMutex", "check_ww_mutex"]

_UINT_MAX = 0xFFFFFFFF


class WWMutex(_WWWaitList):
    """A wound/wait mutex of one :class:`WWClass`.

    ``WWMutex(cls)`` is ready; ``WWMutex()`` needs :meth:`init`. ``lock.ctx`` is the acquire context that
    holds it (``None`` when free or locked without a context), ``lock.owner`` the holding task.

    The Pythonic methods raise :class:`~dmabuf.errors.Deadlk` where the kernel returns ``-EDEADLK`` and
    :class:`InterruptedError` where it returns ``-EINTR``; :meth:`lock_errno` returns the kernel's int.
    ``with lock:`` locks without a context (a plain mutex).

    Kernel: ``struct ww_mutex`` (include/linux/ww_mutex.h, kernel/locking/mutex.c).
    """

    def __init__(self, cls: WWClass | None = None, name: str | None = None) -> None:
        self.owner: Task | None = None
        self.ctx: WWAcquireCtx | None = None
        self.ww_class: WWClass | None = None
        self._waiters: list[_Waiter] = []
        self._dm_label = name
        self._dm_class: str | None = None
        if cls is not None:
            self.init(cls)

    # ------------------------------------------------------------------ setup
    def init(self, cls: WWClass) -> None:
        """Make the lock ready and unlocked, belonging to ``cls``. Kernel: ``ww_mutex_init``."""
        if not isinstance(cls, WWClass):
            raise InvalidArgument(f"ww_mutex_init needs a WWClass, got {type(cls).__name__}")
        self.ww_class = cls
        self.owner = None
        self.ctx = None
        self._waiters = []
        self._dm_class = cls.name

    def destroy(self) -> None:
        """Kernel: ``ww_mutex_destroy`` (``mutex_destroy``): WARNs if the lock is still locked."""
        self._check_ready("ww_mutex_destroy")
        r = active()
        if r is not None:
            r.point("destroy", self, READ)
        WARN(
            self.owner is not None,
            f"ww_mutex_destroy of {lockdep.class_of(self)} while it is locked by {self._owner_name()}",
            "mutex: destroy while locked",
        )

    # ------------------------------------------------------------------ queries
    def _dm_holders(self) -> list[Task]:
        return [self.owner] if self.owner is not None else []

    def is_locked(self) -> bool:
        """True if some task holds the lock. Kernel: ``ww_mutex_is_locked``."""
        self._check_ready("ww_mutex_is_locked")
        rt().point("is_locked", self, READ)
        return self.owner is not None

    # ------------------------------------------------------------------ Pythonic locking
    def lock(self, ctx: WWAcquireCtx | None = None) -> bool:
        """Acquire under ``ctx`` (``None``: as a plain mutex).

        Returns:
            True when acquired; False when ``ctx`` already holds the lock (the kernel's ``-EALREADY``).

        Raises:
            Deadlk: the context must back off (``-EDEADLK``): unlock everything, then ``lock_slow`` the lock
                in ``exc.contended`` and retry. Only possible while ``ctx`` holds other locks.

        Locking: may sleep. Kernel: ``ww_mutex_lock``.
        """
        return self._pythonic(self.lock_errno(ctx), ctx)

    def lock_interruptible(self, ctx: WWAcquireCtx | None = None) -> bool:
        """As :meth:`lock`, but raises :class:`InterruptedError` if a signal arrives while waiting.

        Kernel: ``ww_mutex_lock_interruptible``.
        """
        return self._pythonic(self.lock_errno(ctx, interruptible=True), ctx)

    def lock_slow(self, ctx: WWAcquireCtx) -> None:
        """After :class:`Deadlk` and releasing every lock: sleep until this (the contended) lock is ours.

        Locking: WARNs unless the previous attempt under ``ctx`` failed with ``-EDEADLK`` on this lock and
        ``ctx`` holds nothing. Kernel: ``ww_mutex_lock_slow``.
        """
        self._slow_check(ctx, "ww_mutex_lock_slow")
        self.lock_errno(ctx)

    def lock_slow_interruptible(self, ctx: WWAcquireCtx) -> None:
        """As :meth:`lock_slow`; raises :class:`InterruptedError` on a signal.

        Kernel: ``ww_mutex_lock_slow_interruptible``.
        """
        self._slow_check(ctx, "ww_mutex_lock_slow_interruptible")
        self._pythonic(self.lock_errno(ctx, interruptible=True), ctx)

    def trylock(self, ctx: WWAcquireCtx | None = None) -> bool:
        """Acquire if free, without sleeping; False if locked (also if ``ctx`` already holds it).

        Kernel: ``ww_mutex_trylock``.
        """
        self._check_ready("ww_mutex_trylock")
        if ctx is not None:
            check_ww_ctx(ctx, "ww_mutex_trylock")
        r = rt()
        t = r.current()
        r.point("trylock", self, WRITE)
        if ctx is not None and ctx.acquired == 0:
            ctx.wounded = False
        if self.owner is not None:
            return False
        if ctx is not None:
            self._set_context(ctx)
        self.owner = t
        # a trylock cannot block, so (as mutex_acquire_nest(..., trylock=1, ...) in the kernel) it adds no
        # order edge from the locks held now
        lockdep.acquire(t, self, nest_ok=ctx is not None, trylock=True)
        if ctx is not None and self._waiters:
            self._check_waiters(ctx)
        return True

    def unlock(self) -> None:
        """Release. Unlocking a lock the caller does not hold WARNs (and, in log warn mode, releases it
        anyway, context accounting included, as the kernel does).

        Kernel: ``ww_mutex_unlock``.
        """
        self._check_ready("ww_mutex_unlock")
        r = rt()
        t = r.current()
        r.point("unlock", self, RELEASE)
        if self.owner is not t:
            WARN(
                True,
                f"ww_mutex_unlock of {lockdep.class_of(self)} by {t.name!r}, but it is held by "
                f"{self._owner_name()}",
                "mutex: unlock of a mutex not held by the caller",
            )
            # log mode: the kernel goes on (__ww_mutex_unlock drops the context's count, mutex_release drops
            # the caller's lockdep record if any, and the mutex is released after its MUTEX_WARN_ON); the
            # real owner's lockdep record stays
            if self.owner is None:
                lockdep.release(t, self)
                return
        self._release(t)

    def __enter__(self) -> WWMutex:
        self.lock(None)
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.unlock()

    # ------------------------------------------------------------------ the kernel algorithm
    def lock_errno(self, ctx: WWAcquireCtx | None = None, *, interruptible: bool = False) -> int:
        """Acquire and return the kernel's result: 0, ``-EALREADY``, ``-EDEADLK`` or (interruptible) ``-EINTR``.

        Locking: may sleep. Kernel: ``ww_mutex_lock``/``ww_mutex_lock_interruptible`` (mutex.c,
        ``__mutex_lock_common`` with a ww context, ``ww_mutex_deadlock_injection``).
        """
        from ..kernel.sched import might_sleep

        fn = "ww_mutex_lock_interruptible" if interruptible else "ww_mutex_lock"
        self._check_ready(fn)
        if ctx is not None:
            check_ww_ctx(ctx, fn)
        r = rt()
        t = r.current()
        might_sleep()
        r.point("lock", self, WRITE)
        if ctx is not None:
            if self.ctx is ctx:
                return -EALREADY
            if ctx.acquired == 0:
                ctx.wounded = False  # a context holding nothing cannot be wounded any more
        self._check_nesting(t, ctx)
        if self.owner is None:
            # fast path (also the "trylock after taking wait_lock"): may overtake sleeping waiters
            if ctx is not None:
                self._set_context(ctx)
            self._take(t, ctx)
            if ctx is not None and self._waiters:
                self._check_waiters(ctx)
            return self._inject(ctx)
        waiter = _Waiter(t, ctx)
        ret = self._add_waiter(waiter)
        if ret:
            return ret
        ret = self._wait_loop(r, t, waiter, interruptible)
        if ret:
            return ret
        return self._inject(ctx)

    def _wait_loop(self, r: Any, t: Task, waiter: _Waiter, interruptible: bool) -> int:
        ctx = waiter.ctx

        def ready() -> bool:
            if waiter.woken or (interruptible and t.sigpending):
                return True
            return self.owner is None and bool(self._waiters) and self._waiters[0] is waiter

        t.extra[_WAITER] = waiter
        try:
            while True:
                if self.owner is None:
                    first = self._waiters[0] is waiter
                    if ctx is not None:
                        self._set_context(ctx)
                    self._remove_waiter(r, waiter)
                    self._take(t, ctx)
                    if ctx is not None and not ctx.is_wait_die and not first:
                        # Wound-Wait: we overtook the first waiter, which may want to wound us
                        self._check_waiters(ctx)
                    return 0
                if interruptible and t.sigpending:
                    return -EINTR
                if ctx is not None:
                    ret = self._check_kill(waiter, ctx)
                    if ret:
                        return ret
                waiter.woken = False
                r.wait("lock", self, WRITE, ready)
        finally:
            self._remove_waiter(r, waiter)
            if t.extra.get(_WAITER) is waiter:
                del t.extra[_WAITER]

    def _take(self, t: Task, ctx: WWAcquireCtx | None) -> None:
        self.owner = t
        lockdep.acquire(t, self, nest_ok=ctx is not None)

    def _set_context(self, ctx: WWAcquireCtx) -> None:
        """``ww_mutex_lock_acquired``: the debug checks, then account the lock to ``ctx``."""
        if self.ctx is not None:
            WARN(
                True,
                f"{lockdep.class_of(self)} still has acquire context stamp {self.ctx.stamp if self.ctx else 0}: "
                "it was released without ww_mutex_unlock",
                "ww_mutex: released without ww_mutex_unlock",
            )
        if ctx.done_acquire:
            WARN(
                True,
                f"ww_mutex_lock of {lockdep.class_of(self)} under context stamp {ctx.stamp} after "
                "ww_acquire_done (or ww_acquire_fini); take every lock before declaring the acquire phase done",
                "ww_mutex: lock after acquire_done",
            )
        if ctx.contending_lock is not None:
            if ctx.contending_lock is not self:
                WARN(
                    True,
                    f"after -EDEADLK on {lockdep.class_of(ctx.contending_lock)} context stamp {ctx.stamp} locked "
                    f"a different lock ({lockdep.class_of(self)}); lock the contended lock first with "
                    "ww_mutex_lock_slow",
                    "ww_mutex: wrong lock after -EDEADLK",
                )
            if ctx.acquired > 0:
                WARN(
                    True,
                    f"after -EDEADLK context stamp {ctx.stamp} locked again while still holding "
                    f"{ctx.acquired} lock(s); unlock everything before ww_mutex_lock_slow",
                    "ww_mutex: locks held after -EDEADLK",
                )
            ctx.contending_lock = None
        if ctx.ww_class is not self.ww_class:
            WARN(
                True,
                f"ww_mutex {lockdep.class_of(self)} locked with an acquire context of class "
                f"{ctx.ww_class.name if ctx.ww_class else None}; one context only takes locks of its own class",
                "ww_mutex: context of another class",
            )
        ctx.acquired += 1
        self.ctx = ctx
        ctx._locks.append(self)

    def _release(self, t: Task) -> None:
        """``__ww_mutex_unlock`` + ``mutex_unlock`` (the caller checked ownership)."""
        c = self.ctx
        if c is not None:
            if not c.acquired:
                WARN(
                    True,
                    f"ww_mutex_unlock of {lockdep.class_of(self)}: its context stamp {c.stamp} has no lock "
                    "accounted",
                    "ww_mutex: unlock with acquired == 0",
                )
            if c.acquired > 0:
                c.acquired -= 1
            for i in range(len(c._locks) - 1, -1, -1):
                if c._locks[i] is self:
                    del c._locks[i]
                    break
            self.ctx = None
        self.owner = None
        lockdep.release(t, self)
        rt().notify(self)

    def _inject(self, ctx: WWAcquireCtx | None) -> int:
        """``ww_mutex_deadlock_injection``: with CONFIG_DEBUG_WW_MUTEX_SLOWPATH fake a -EDEADLK."""
        if ctx is None or ctx.acquired <= 1 or not config.CONFIG_DEBUG_WW_MUTEX_SLOWPATH:
            return 0
        countdown = ctx.deadlock_inject_countdown
        ctx.deadlock_inject_countdown = (countdown - 1) & _UINT_MAX
        if countdown != 0:
            return 0
        tmp = ctx.deadlock_inject_interval
        tmp = _UINT_MAX if tmp > _UINT_MAX // 4 else tmp * 2 + tmp + tmp // 2
        ctx.deadlock_inject_interval = tmp
        ctx.deadlock_inject_countdown = tmp
        ctx.contending_lock = self
        self._release(rt().current())
        return -EDEADLK

    # ------------------------------------------------------------------ helpers
    def _check_nesting(self, t: Task, ctx: WWAcquireCtx | None) -> None:
        """lockdep: several locks of one ww class only under the one acquire context the task holds."""
        if not config.CONFIG_PROVE_LOCKING:
            return
        for h in t.held:
            if not isinstance(h, WWMutex) or h.ww_class is not self.ww_class:
                continue
            if ctx is None:
                WARN(
                    True,
                    f"possible recursive locking detected: {t.name!r} takes {lockdep.class_of(self)} "
                    f"without an acquire context while holding {lockdep.class_of(h)} of the same ww class; "
                    "hold several locks of one ww class only under one ww_acquire_ctx",
                    "ww_mutex: nesting without one acquire context",
                )
            elif not lockdep.is_held(ctx, t) or (h.ctx is not None and h.ctx is not ctx):
                WARN(
                    True,
                    f"possible recursive locking detected: {t.name!r} takes {lockdep.class_of(self)} "
                    f"under acquire context stamp {ctx.stamp} while holding {lockdep.class_of(h)} under "
                    f"another context; hold several locks of one ww class only under one ww_acquire_ctx "
                    "of the running task",
                    "ww_mutex: nesting without one acquire context",
                )
            return

    def _slow_check(self, ctx: WWAcquireCtx, fn: str) -> None:
        self._check_ready(fn)
        if ctx is None:
            raise InvalidArgument(f"{fn} needs an acquire context (got None)")
        check_ww_ctx(ctx, fn)
        WARN(
            ctx.contending_lock is None,
            f"{fn} of {lockdep.class_of(self)} under context stamp {ctx.stamp} without a prior -EDEADLK; "
            "use ww_mutex_lock (lock_slow is only for the lock that returned -EDEADLK)",
            "ww_mutex: lock_slow without -EDEADLK",
        )

    def _pythonic(self, ret: int, ctx: WWAcquireCtx | None) -> bool:
        if ret == -EDEADLK:
            stamp = ctx.stamp if ctx is not None else 0
            raise Deadlk(
                f"acquire context stamp {stamp} must back off on {lockdep.class_of(self)}: unlock every lock "
                "it holds, lock_slow this one, then retry",
                contended=self,
            )
        if ret == -EINTR:
            raise InterruptedError(EINTR, f"signal while waiting for {lockdep.class_of(self)}")
        return ret == 0

    def _check_ready(self, fn: str) -> WWClass:
        if self.ww_class is None:
            raise InvalidArgument(
                f"{fn}: the ww_mutex is not initialised; call ww_mutex_init(lock, ww_class)"
            )
        return self.ww_class

    def _owner_name(self) -> str:
        return "nobody" if self.owner is None else repr(self.owner.name)

    def __repr__(self) -> str:
        stamp = self.ctx.stamp if self.ctx else None
        return (
            f"<WWMutex {lockdep.class_of(self)} owner={self.owner.name if self.owner else None} ctx={stamp}>"
        )


def check_ww_mutex(lock: Any, fn: str) -> WWMutex:
    """Type check for kernel-named wrappers."""
    if not isinstance(lock, WWMutex):
        raise InvalidArgument(f"{fn} needs a WWMutex, got {type(lock).__name__}")
    return lock
