"""Wound/wait mutexes: deadlock-avoiding multi-lock acquisition (``struct ww_mutex``).

This module describes the algorithm and re-exports the names of the modules that implement it:

* :mod:`.ww_acquire`: :class:`WWClass` and :class:`WWAcquireCtx` (stamps, init / done / fini, ``lock_all``),
  :func:`check_ww_ctx`;
* :mod:`.ww_lock`: :class:`WWMutex` (Pythonic and kernel-result locking, the wait loop, the debug checks),
  :func:`check_ww_mutex`;
* :mod:`.ww_wait`: the wait list of a lock and the Wait-Die / Wound-Wait decisions (a base class of
  :class:`WWMutex`).

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

from .ww_acquire import WWAcquireCtx, WWClass, check_ww_ctx
from .ww_lock import WWMutex, check_ww_mutex

__all__ = ["WWAcquireCtx", "WWClass", "WWMutex", "check_ww_ctx", "check_ww_mutex"]
