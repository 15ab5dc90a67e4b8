"""Wound/wait mutexes: deadlock-avoiding multi-lock acquisition (``struct ww_mutex``).

A task that must hold several locks of one *ww class* at once (every buffer's reservation lock, say) takes
them under one :class:`WWAcquireCtx`. Each context gets a *stamp* from its class when it is initialised; a
smaller stamp is an older context. When two contexts want each other's locks, the younger one is made to
back off: its next lock attempt fails with ``-EDEADLK`` (:class:`~dmabuf.errors.Deadlk` in the Pythonic
API), it releases everything it holds, sleeps on the contended lock with :meth:`WWMutex.lock_slow` and then
retries. Which context backs off, and when, is decided by the class's algorithm:

* **Wait-Die** (``WWClass(name, wait_die=True)``): a younger context that holds locks and must wait behind an
  older holder or an older waiter *dies* at once. When an older context queues or acquires, younger waiters
  that hold locks are woken so they can die.
* **Wound-Wait** (the default): an older context that blocks on a lock held by a younger one *wounds* the
  holder; the wounded context backs off the next time it blocks on a contended lock while holding locks.

A context that holds no lock never backs off: it simply waits. So ``lock_slow`` after releasing everything
always succeeds.

The wait list of each lock is explicit and ordered like the kernel's: context waiters by stamp (oldest
first), context-less waiters in FIFO order between them. A waiter sleeps until it is woken (to die, or
because its context was wounded) or the lock is free and it is the first waiter; each time it resumes it
re-runs the same trylock / signal / kill checks as the kernel's wait loop.

Debug checks of ``CONFIG_DEBUG_WW_MUTEXES`` and lockdep are always on and raise
:class:`~dmabuf.errors.KernelWarning`: lock after ``acquire_done``, a lock of another class, a different lock
(or other locks still held) after ``-EDEADLK``, ``lock_slow`` without a prior ``-EDEADLK``, ``fini`` with
locks held or twice, unlocking a lock that is not held, and taking two locks of one ww class outside one
acquire context. ``config.CONFIG_DEBUG_WW_MUTEX_SLOWPATH`` injects fake ``-EDEADLK`` back-offs.

Kernel: include/linux/ww_mutex.h, kernel/locking/ww_mutex.h, kernel/locking/mutex.c,
Documentation/locking/ww-mutex-design.rst.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any

from .. import lockdep
from ..errors import Deadlk, InvalidArgument
from ..kernel import config
from ..kernel._warn import WARN
from ..kernel.errno import EALREADY, EDEADLK, EINTR
from ..runtime import READ, RELEASE, WRITE, Task, active, rt

__all__ = ["WWAcquireCtx", "WWClass", "WWMutex", "check_ww_ctx", "check_ww_mutex"]

#: key in ``rt().globals`` of the per-execution stamp counters (one per class)
_STAMPS = "ww_mutex.stamps"
#: key in ``task.extra`` of the waiter record of a task sleeping on a ww_mutex (so a wound can wake it)
_WAITER = "ww_mutex.waiter"
_UINT_MAX = 0xFFFFFFFF


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


class _Waiter:
    """One task sleeping on a ww_mutex (``struct mutex_waiter`` with its ``ww_ctx``)."""

    __slots__ = ("ctx", "task", "woken")

    def __init__(self, task: Task, ctx: WWAcquireCtx | None) -> None:
        self.task = task
        self.ctx = ctx
        self.woken = False


class WWMutex:
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
        lockdep.acquire(t, self, nest_ok=ctx is not None)
        if ctx is not None and self._waiters:
            self._check_waiters(ctx)
        return True

    def unlock(self) -> None:
        """Release. Unlocking a lock the caller does not hold WARNs and changes nothing.

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

    def _kill(self, ctx: WWAcquireCtx) -> int:
        """``__ww_mutex_kill``: back off (-EDEADLK) if the context holds locks."""
        if ctx.acquired > 0:
            WARN(
                ctx.contending_lock is not None,
                f"context stamp {ctx.stamp} gets -EDEADLK on {lockdep.class_of(self)} but has not handled "
                f"its earlier -EDEADLK on {lockdep.class_of(ctx.contending_lock)}; after -EDEADLK unlock "
                "everything and ww_mutex_lock_slow the contended lock",
                "ww_mutex: -EDEADLK not handled",
            )
            ctx.contending_lock = self
            return -EDEADLK
        return 0

    def _wake(self, waiter: _Waiter) -> None:
        waiter.woken = True
        rt().notify_task(waiter.task)

    def _die(self, waiter: _Waiter, ctx: WWAcquireCtx) -> bool:
        """``__ww_mutex_die``: Wait-Die; wake a younger waiter holding locks so it can die."""
        if not ctx.is_wait_die:
            return False
        wctx = waiter.ctx
        if wctx is not None and wctx.acquired > 0 and _ctx_less(wctx, ctx):
            self._wake(waiter)
        return True

    def _wound(self, ww_ctx: WWAcquireCtx, hold_ctx: WWAcquireCtx | None) -> bool:
        """``__ww_mutex_wound``: Wound-Wait; wound a younger holder so it backs off."""
        if hold_ctx is None:
            return False
        owner = self.owner
        if owner is None:
            return False
        if ww_ctx.acquired > 0 and _ctx_less(hold_ctx, ww_ctx):
            hold_ctx.wounded = True
            if owner is not rt().current():
                w = owner.extra.get(_WAITER)
                if isinstance(w, _Waiter):
                    self._wake(w)  # wake_up_process(owner): it re-checks its kill condition
            return True
        return False

    def _check_waiters(self, ctx: WWAcquireCtx) -> None:
        """``__ww_mutex_check_waiters``: we took the lock; waiters behind may need to die or wound us."""
        for cur in list(self._waiters):
            if cur.ctx is None:
                continue
            if self._die(cur, ctx) or self._wound(cur.ctx, ctx):
                break

    def _check_kill(self, waiter: _Waiter, ctx: WWAcquireCtx) -> int:
        """``__ww_mutex_check_kill``: the kill checks of the wait loop."""
        if ctx.acquired == 0:
            return 0
        if not ctx.is_wait_die:
            return self._kill(ctx) if ctx.wounded else 0
        hold = self.ctx
        if hold is not None and _ctx_less(ctx, hold):
            return self._kill(ctx)
        for cur in self._waiters:
            if cur is waiter:
                break
            if cur.ctx is not None:
                return self._kill(ctx)
        return 0

    def _add_waiter(self, waiter: _Waiter) -> int:
        """``__ww_mutex_add_waiter``: queue in stamp order; Wait-Die may die here, Wound-Wait wounds."""
        ctx = waiter.ctx
        if ctx is None:
            self._waiters.append(waiter)
            return 0
        pos: int | None = None
        for i in range(len(self._waiters) - 1, -1, -1):
            cur = self._waiters[i]
            if cur.ctx is None:
                continue
            if _ctx_less(ctx, cur.ctx):
                if ctx.is_wait_die:
                    ret = self._kill(ctx)
                    if ret:
                        return ret
                break
            pos = i
            self._die(cur, ctx)
        if pos is None:
            self._waiters.append(waiter)
        else:
            self._waiters.insert(pos, waiter)
        if not ctx.is_wait_die:
            self._wound(ctx, self.ctx)
        return 0

    def _remove_waiter(self, r: Any, waiter: _Waiter) -> None:
        for i, w in enumerate(self._waiters):
            if w is waiter:
                del self._waiters[i]
                r.notify(self)  # the next waiter may now be first
                return

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


def check_ww_ctx(ctx: Any, fn: str) -> WWAcquireCtx:
    """Type check for kernel-named wrappers (an initialised acquire context)."""
    if not isinstance(ctx, WWAcquireCtx):
        raise InvalidArgument(f"{fn} needs a WWAcquireCtx, got {type(ctx).__name__}")
    ctx._check_ready(fn)
    return ctx
