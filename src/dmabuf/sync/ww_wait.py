"""The wait list of a ww_mutex and the Wait-Die / Wound-Wait decisions taken on it.

* ``_Waiter``: one task sleeping on a ww_mutex (``struct mutex_waiter`` with its ``ww_ctx``), and
  ``_WAITER``, the key under which a sleeping task keeps it (so a wound can wake the task);
* ``_WWWaitList``, the base class of :class:`~dmabuf.sync.ww_lock.WWMutex` that holds the kernel's
  ``__ww_mutex_*`` helpers: queueing a waiter in stamp order (``_add_waiter``), the kill checks of the
  wait loop (``_check_kill``, ``_kill``), Wait-Die's ``_die``, Wound-Wait's ``_wound``, and
  ``_check_waiters`` after the lock was taken.

Everything here is private to :mod:`.ww_lock`; :mod:`.ww_mutex` describes the algorithm.

Kernel: kernel/locking/ww_mutex.h.
"""

from __future__ import annotations

from typing import Any

from .. import lockdep
from ..kernel._warn import WARN
from ..kernel.errno import EDEADLK
from ..runtime import Task, rt
from .ww_acquire import WWAcquireCtx, _ctx_less

__all__: list[str] = []  # private: the base of WWMutex (import WWMutex from .ww_mutex)

#: key in ``task.extra`` of the waiter record of a task sleeping on a ww_mutex (so a wound can wake it)
_WAITER = "ww_mutex.waiter"


class _Waiter:
    """One task sleeping on a ww_mutex (``struct mutex_waiter`` with its ``ww_ctx``)."""

    __slots__ = ("ctx", "task", "woken")

    def __init__(self, task: Task, ctx: WWAcquireCtx | None) -> None:
        self.task = task
        self.ctx = ctx
        self.woken = False


class _WWWaitList:
    """The wait list of a :class:`~dmabuf.sync.ww_lock.WWMutex` and the wound/wait decisions on it.

    A base class of ``WWMutex`` only: its methods use the lock's ``owner``, ``ctx`` and ``_waiters``
    (declared here for the type checker; ``WWMutex.__init__`` sets them).

    Kernel: the ``__ww_mutex_*`` helpers of kernel/locking/ww_mutex.h.
    """

    owner: Task | None
    ctx: WWAcquireCtx | None
    _waiters: list[_Waiter]

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
            ctx.contending_lock = self  # type: ignore[assignment]  # self is a WWMutex, the only subclass
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
