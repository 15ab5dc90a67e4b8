"""The reservation object (``struct dma_resv``): :class:`DmaResv`.

* life cycle (``init``, ``fini``) and the ww_mutex of :data:`reservation_ww_class` (``lock_*``, ``unlock``,
  ``held``, ``assert_held``, ``with resv:``);
* the writers, lock held: ``reserve_fences`` (a new :class:`~dmabuf.resv.fences.DmaResvList` only when
  the reserved room is short), ``add_fence`` and ``replace_fences`` (in place), ``copy_fences`` (a new
  list swapped in);
* the readers: ``iter_fences`` (lock held), and without the lock, through a
  :class:`~dmabuf.resv.iterator.DmaResvIter`: ``iter_fences_unlocked``, ``get_fences``, ``get_singleton``,
  ``wait_timeout``/``wait``, ``set_deadline``, ``test_signaled``;
* :class:`ReservationObject`, ready at construction, and :func:`check_resv`, the argument check of the
  kernel-named functions.

:mod:`dmabuf.resv` describes the model (usages, in-place updates and what lock-free readers see,
reservations reset by unlock).

Kernel: drivers/dma-buf/dma-resv.c, include/linux/dma-resv.h (v6.12).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any

from .. import lockdep
from ..errors import InvalidArgument
from ..fence.array import DmaFenceArray, is_container
from ..fence.fence import DmaFence, check_fence, context_alloc
from ..kernel._warn import BUG, WARN
from ..kernel.once import field_key
from ..kernel.sched import MAX_SCHEDULE_TIMEOUT
from ..runtime import READ, WRITE, label_of, rt
from ..sync.ww_mutex import WWAcquireCtx, WWClass, WWMutex, check_ww_ctx
from .fences import DmaResvList, Usage, _list_capacity, _list_free, _roundup_pow_of_two, check_usage
from .iterator import DmaResvIter

__all__ = ["DmaResv", "ReservationObject", "check_resv", "reservation_ww_class"]

#: The Wait-Die ww class of every reservation lock (``DEFINE_WD_CLASS(reservation_ww_class)``).
reservation_ww_class = WWClass("reservation_ww_class", wait_die=True)


class DmaResv:
    """A reservation object (``struct dma_resv``). ``DmaResv()`` is an empty struct made ready by
    :meth:`init` (``dma_resv_init``); :class:`ReservationObject` is ready at construction.

    Fields keep their kernel names: ``lock`` (the :class:`~dmabuf.sync.ww_mutex.WWMutex` of
    :data:`reservation_ww_class`) and ``fences`` (the current :class:`DmaResvList` or ``None``).

    ``with resv:`` locks without an acquire context and unlocks at the end.

    Kernel: ``struct dma_resv`` (include/linux/dma-resv.h).
    """

    def __init__(self, name: str | None = None) -> None:
        self.lock = WWMutex(name=None if name is None else f"{name}.lock")
        self.fences: DmaResvList | None = None
        self._dm_label = name

    # ------------------------------------------------------------------ life cycle
    def init(self) -> None:
        """Make the object ready: unlocked, no fences. Kernel: ``dma_resv_init``."""
        self.lock.init(reservation_ww_class)
        self.fences = None

    def fini(self) -> None:
        """Destroy the object: put every fence and destroy the lock (WARNs if still locked).

        Locking: nobody else may use the object any more. Kernel: ``dma_resv_fini``.
        """
        self._ready("dma_resv_fini")
        lst, self.fences = self.fences, None
        _list_free(lst)
        self.lock.destroy()

    def _ready(self, fn: str) -> None:
        if self.lock.ww_class is None:
            raise InvalidArgument(f"{fn}: {label_of(self)} is not initialised; call dma_resv_init first")

    # ------------------------------------------------------------------ locking
    def lock_errno(self, ctx: WWAcquireCtx | None = None, *, interruptible: bool = False) -> int:
        """Lock, returning the kernel's result: 0, ``-EALREADY``, ``-EDEADLK`` or (interruptible) ``-EINTR``.

        Locking: may sleep. Kernel: ``dma_resv_lock`` / ``dma_resv_lock_interruptible``.
        """
        self._ready("dma_resv_lock")
        return self.lock.lock_errno(ctx, interruptible=interruptible)

    def lock_resv(self, ctx: WWAcquireCtx | None = None) -> bool:
        """Pythonic lock: True when taken, False when ``ctx`` already holds it (``-EALREADY``).

        Raises:
            Deadlk: back off (``-EDEADLK``): unlock everything, :meth:`lock_slow` this one, retry.

        Locking: may sleep. Kernel: ``dma_resv_lock``.
        """
        self._ready("dma_resv_lock")
        return self.lock.lock(ctx)

    def lock_interruptible(self, ctx: WWAcquireCtx | None = None) -> bool:
        """As :meth:`lock_resv`; raises :class:`InterruptedError` on a signal.
        Kernel: ``dma_resv_lock_interruptible``."""
        self._ready("dma_resv_lock_interruptible")
        return self.lock.lock_interruptible(ctx)

    def lock_slow(self, ctx: WWAcquireCtx) -> None:
        """After ``-EDEADLK`` with nothing held: sleep until the lock is ours. Kernel: ``dma_resv_lock_slow``."""
        self._ready("dma_resv_lock_slow")
        self.lock.lock_slow(ctx)

    def lock_slow_interruptible(self, ctx: WWAcquireCtx) -> int:
        """As :meth:`lock_slow`; returns 0 or ``-EINTR``. Kernel: ``dma_resv_lock_slow_interruptible``."""
        fn = "dma_resv_lock_slow_interruptible"
        self._ready(fn)
        c = check_ww_ctx(ctx, fn)
        self.lock._slow_check(c, fn)
        return self.lock.lock_errno(c, interruptible=True)

    def trylock(self) -> bool:
        """Lock without a context if free. Kernel: ``dma_resv_trylock``."""
        self._ready("dma_resv_trylock")
        return self.lock.trylock(None)

    def is_locked(self) -> bool:
        """Kernel: ``dma_resv_is_locked``."""
        self._ready("dma_resv_is_locked")
        return self.lock.is_locked()

    def locking_ctx(self) -> WWAcquireCtx | None:
        """The acquire context holding the lock (``None``: free or locked without one).

        Kernel: ``dma_resv_locking_ctx`` (``READ_ONCE(obj->lock.ctx)``)."""
        self._ready("dma_resv_locking_ctx")
        rt().point("READ_ONCE", self.lock, READ)
        return self.lock.ctx

    def unlock(self) -> None:
        """Reset the reserved slots (``max_fences = num_fences``) and unlock.

        A caller that does not hold the lock gets the kernel's first WARN, ``dma_resv_assert_held`` in
        the reset; in log warn mode the reset and the ww_mutex unlock (which WARNs too) still run.

        Locking: held (asserted). Kernel: ``dma_resv_unlock`` (with ``dma_resv_reset_max_fences`` as under
        CONFIG_DEBUG_MUTEXES).
        """
        self._ready("dma_resv_unlock")
        self.reset_max_fences()
        self.lock.unlock()

    def reset_max_fences(self) -> None:
        """Drop unused reservations. Locking: held (asserted). Kernel: ``dma_resv_reset_max_fences``."""
        self.assert_held()
        lst = self.fences
        if lst is not None:
            lst.max_fences = lst.num_fences

    def held(self) -> bool:
        """True if the calling task holds the lock. Kernel: ``dma_resv_held`` (lockdep_is_held)."""
        return lockdep.is_held(self.lock)

    def assert_held(self) -> None:
        """WARN unless the calling task holds the lock. Kernel: ``dma_resv_assert_held``."""
        self._ready("dma_resv_assert_held")
        lockdep.assert_held(self.lock, f"reservation lock of {label_of(self)}")

    def __enter__(self) -> DmaResv:
        self.lock_resv(None)
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is not None and not issubclass(et, Exception):
            return  # the runtime is tearing the task down
        self.unlock()

    # ------------------------------------------------------------------ writers (lock held)
    def _publish(self, op: str, new: DmaResvList | None) -> DmaResvList | None:
        """Make ``new`` the current list (``rcu_assign_pointer``/``rcu_replace_pointer``): a WRITE point on
        the ``fences`` field, which lock-free walkers read; returns the old list."""
        rt().point(op, field_key(self, "fences"), WRITE)
        old, self.fences = self.fences, new
        return old

    def reserve_fences(self, num_fences: int) -> int:
        """Make room for ``num_fences`` more :meth:`add_fence` calls; returns 0 (``-ENOMEM`` never happens).

        A no-op when the current list has room (``num_fences + n <= max_fences``). Otherwise allocates a
        list of ``max(num + n, 2 * max)`` slots (the first list gets ``max(4, pow2(n))``, rounded up to the
        allocator bucket), copies the unsignaled entries into it (signaled ones are dropped), publishes it
        and then puts the dropped fences. The old list stays as it was for the lock-free walkers still on it
        (``kfree_rcu``); they restart when they see the new pointer.

        Locking: held (asserted). The reservation lasts until the next unlock. Kernel:
        ``dma_resv_reserve_fences``.
        """
        if isinstance(num_fences, bool) or not isinstance(num_fences, int) or num_fences < 0:
            raise InvalidArgument(f"dma_resv_reserve_fences needs a count >= 0, got {num_fences!r}")
        self._ready("dma_resv_reserve_fences")
        self.assert_held()
        old = self.fences
        if old is not None and old.max_fences:
            if old.num_fences + num_fences <= old.max_fences:
                return 0
            want = max(old.num_fences + num_fences, old.max_fences * 2)
        else:
            want = max(4, _roundup_pow_of_two(num_fences))
        new = DmaResvList(_list_capacity(want))
        dropped: list[DmaFence] = []
        # the references of the old list carry over to the new one (no get)
        for f, u in old.entries() if old is not None else ():
            if f.is_signaled():
                dropped.append(f)
            else:
                new.append_private(f, u)
        self._publish("dma_resv_reserve_fences", new)
        for f in dropped:
            f.put()
        return 0

    def add_fence(self, fence: DmaFence, usage: Usage) -> None:
        """Add ``fence`` (a reference is taken) with ``usage``.

        The first entry (in table order) that is on the same context with a usage ``>=`` ``usage`` and
        older than or the same as ``fence`` (``dma_fence_is_later_or_same``), or that is signaled, is
        replaced in place: one slot store, then the old fence is put (so a later fence never degrades an
        entry, and a replacement needs no reserved slot). Otherwise the fence is stored in the first unused
        slot and the new count published after it (``smp_store_mb``): a lock-free walker that read the
        count before does not walk the new entry, one that reads it after finds the slot filled.

        Raises:
            KernelBug: no slot reserved (no :meth:`reserve_fences` since the lock was taken).
            KernelWarning: the lock is not held, or ``fence`` is a container (the fence is still added).

        Locking: held (asserted). Kernel: ``dma_resv_add_fence``.
        """
        fence = check_fence(fence, "dma_resv_add_fence")
        usage = check_usage(usage, "dma_resv_add_fence")
        self._ready("dma_resv_add_fence")
        fence.get()
        self.assert_held()
        WARN(
            is_container(fence),
            f"dma_resv_add_fence of container fence {label_of(fence)} to {label_of(self)}: add each "
            "contained fence individually (dma_fence_unwrap_for_each)",
            "dma_resv_add_fence: container fence",
        )
        lst = self.fences
        if lst is None:
            BUG(
                f"dma_resv_add_fence on {label_of(self)} which has no fence list: call "
                "dma_resv_reserve_fences after locking and before adding"
            )
        count = lst.num_fences
        for i in range(count):
            old, old_usage = lst.entry(i)
            same_ctx = old.context == fence.context and old_usage >= usage
            if (same_ctx and (old is fence or fence.is_later(old))) or old.is_signaled():
                lst.store(i, fence, usage)
                old.put()
                return
        if lst.num_fences >= lst.max_fences:
            fence.put()
            BUG(
                f"dma_resv_add_fence on {label_of(self)} without a reserved slot ({lst.num_fences} of "
                f"{lst.max_fences} used): call dma_resv_reserve_fences after locking (reservations are "
                "dropped by dma_resv_unlock)"
            )
        lst.store(count, fence, usage)
        lst.store_num(count + 1)

    def replace_fences(self, context: int, replacement: DmaFence, usage: Usage) -> None:
        """Replace every entry of fence context ``context`` by ``replacement`` (a reference per entry).

        In place, entry by entry in table order: each matching slot is stored (a WRITE point), then its
        old fence is put. Locking: held (asserted). Kernel: ``dma_resv_replace_fences``.
        """
        if isinstance(context, bool) or not isinstance(context, int):
            raise InvalidArgument(f"dma_resv_replace_fences needs an int context, got {context!r}")
        replacement = check_fence(replacement, "dma_resv_replace_fences")
        usage = check_usage(usage, "dma_resv_replace_fences")
        self._ready("dma_resv_replace_fences")
        self.assert_held()
        lst = self.fences
        if lst is None:
            return
        for i in range(lst.num_fences):
            old, _u = lst.entry(i)
            if old.context != context:
                continue
            lst.store(i, replacement.get(), usage)
            old.put()

    def copy_fences(self, src: DmaResv) -> int:
        """Replace this object's fences by the unsignaled fences of ``src`` (all usages); returns 0.

        Walks ``src`` unlocked into a private list (sized for the count the walk read at its last
        restart; a restart frees it and starts a new one), then swaps it in (``rcu_replace_pointer``) and
        frees the old list. Locking: this object held (asserted); ``src`` is read without its lock. Kernel:
        ``dma_resv_copy_fences``.
        """
        src = check_resv(src, "dma_resv_copy_fences")
        self._ready("dma_resv_copy_fences")
        self.assert_held()
        new: DmaResvList | None = None
        with DmaResvIter(src, Usage.BOOKKEEP) as cursor:
            for f in cursor:
                if cursor.is_restarted:
                    _list_free(new)
                    new = DmaResvList(_list_capacity(cursor.num_fences))
                assert new is not None  # the first fence of a walk is always a restart
                new.append_private(f.get(), cursor.fence_usage)
        _list_free(self._publish("dma_resv_copy_fences", new))
        return 0

    # ------------------------------------------------------------------ readers
    def iter_fences(self, usage: Usage = Usage.BOOKKEEP) -> Iterator[tuple[DmaFence, Usage]]:
        """``(fence, usage)`` of every entry with usage ``<= usage``, signaled ones included, no references.

        Locking: held (asserted at the start and at each step). Kernel: ``dma_resv_for_each_fence``.
        """
        cursor = DmaResvIter(self, usage)
        f = cursor.first()
        while f is not None:
            yield f, cursor.fence_usage
            f = cursor.next()

    def iter_fences_unlocked(self, usage: Usage = Usage.BOOKKEEP) -> DmaResvIter:
        """A begun unlocked cursor: ``with resv.iter_fences_unlocked(u) as cur: for fence in cur: ...``.

        Yields unsignaled fences with usage ``<= usage``; the cursor holds a reference on the current one.
        When the object's list was reallocated meanwhile (or a fence could not be got) the walk restarts and
        ``cur.is_restarted`` is True: callers that accumulate must start over then. Entries changed in place
        do not restart the walk, so the fences yielded may mix the states before and after a writer's
        changes.

        Locking: none needed. Kernel: ``dma_resv_iter_begin`` + ``dma_resv_for_each_fence_unlocked``.
        """
        return DmaResvIter(self, usage)

    def get_fences(self, usage: Usage) -> list[DmaFence]:
        """The unsignaled fences with usage ``<= usage``, each with a reference for the caller.

        One unlocked walk, started over (references dropped) at each restart. Without the lock the result
        need not be one state of the list: a writer replacing entries in place meanwhile can leave an old
        entry and a new one side by side. Locking: none needed. Kernel: ``dma_resv_get_fences``.
        """
        usage = check_usage(usage, "dma_resv_get_fences")
        self._ready("dma_resv_get_fences")
        fences: list[DmaFence] = []
        with DmaResvIter(self, usage) as cursor:
            for f in cursor:
                if cursor.is_restarted:
                    while fences:
                        fences.pop().put()
                fences.append(f.get())
        return fences

    def get_singleton(self, usage: Usage) -> DmaFence | None:
        """One fence for all unsignaled fences with usage ``<= usage`` (with a reference): ``None`` if
        there are none, the fence itself for one, else a new :class:`DmaFenceArray` over them.

        Locking: none needed. Do not add the result back to a resv (it is a container). Kernel:
        ``dma_resv_get_singleton``.
        """
        fences = self.get_fences(usage)
        if not fences:
            return None
        if len(fences) == 1:
            return fences[0]
        return DmaFenceArray.create(len(fences), fences, context_alloc(1), 1, False)

    def wait_timeout(self, usage: Usage, intr: bool, timeout: int) -> int:
        """Wait for every fence with usage ``<= usage``.

        Returns:
            The jiffies left (> 0; 1 for a zero ``timeout`` when all are signaled), 0 on timeout,
            ``-ERESTARTSYS`` if ``intr`` and a signal arrived.

        Locking: none needed; the lock may be held. May sleep. Kernel: ``dma_resv_wait_timeout``.
        """
        usage = check_usage(usage, "dma_resv_wait_timeout")
        if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
            raise InvalidArgument(f"dma_resv_wait_timeout needs a timeout in jiffies >= 0, got {timeout!r}")
        self._ready("dma_resv_wait_timeout")
        ret = timeout if timeout else 1
        with DmaResvIter(self, usage) as cursor:
            for f in cursor:
                ret = f.wait_timeout(bool(intr), ret)
                if ret <= 0:
                    return ret
        return ret

    def wait(self, usage: Usage = Usage.BOOKKEEP, intr: bool = False) -> int:
        """Wait without a timeout: 0, or ``-ERESTARTSYS`` if interrupted."""
        ret = self.wait_timeout(usage, intr, MAX_SCHEDULE_TIMEOUT)
        return ret if ret < 0 else 0

    def set_deadline(self, usage: Usage, deadline: int) -> None:
        """Pass a deadline hint to every unsignaled fence with usage ``<= usage``.
        Kernel: ``dma_resv_set_deadline``."""
        usage = check_usage(usage, "dma_resv_set_deadline")
        self._ready("dma_resv_set_deadline")
        with DmaResvIter(self, usage) as cursor:
            for f in cursor:
                f.set_deadline(deadline)

    def test_signaled(self, usage: Usage) -> bool:
        """True if every fence with usage ``<= usage`` is signaled. Kernel: ``dma_resv_test_signaled``."""
        usage = check_usage(usage, "dma_resv_test_signaled")
        self._ready("dma_resv_test_signaled")
        with DmaResvIter(self, usage) as cursor:
            for _f in cursor:
                return False
        return True

    def __repr__(self) -> str:
        return f"<DmaResv {label_of(self)} {self.fences!r}>"


class ReservationObject(DmaResv):
    """A :class:`DmaResv` that is ready at construction (the Pythonic spelling)."""

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self.init()


def check_resv(obj: Any, fn: str) -> DmaResv:
    """Argument check of kernel-named functions: an initialised :class:`DmaResv`."""
    if not isinstance(obj, DmaResv):
        what = "NULL" if obj is None else type(obj).__name__
        raise InvalidArgument(f"{fn} needs a DmaResv, got {what}")
    obj._ready(fn)
    return obj
