"""The cursor over a reservation object's fences (``struct dma_resv_iter``): :class:`DmaResvIter`.

* the unlocked walk (``first_unlocked``/``next_unlocked``, ``for fence in cursor``): reads the object's
  list pointer and the list's count without the lock when it (re)starts, then one slot at a time, takes a
  reference on each unsignaled fence of a wanted usage (``dma_fence_get_rcu``; a failed get restarts), and
  restarts (``is_restarted``) only when the object's list pointer changed (a reallocation): entries
  changed in place are seen or missed depending on where the cursor is, entries appended after the
  (re)start are not walked;
* the locked walk (``first``/``next``): every entry of a wanted usage, signaled ones included, no
  references, the lock asserted at each step; it re-reads the count of the list it started on at each
  step, so it sees the in-place changes the lock holder makes meanwhile.

The object is in :mod:`.reservation`; :mod:`dmabuf.resv` describes the model.

Kernel: ``struct dma_resv_iter`` and ``dma_resv_iter_*`` (include/linux/dma-resv.h, drivers/dma-buf/dma-resv.c).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument
from ..fence.fence import DmaFence
from ..kernel.once import field_key
from ..runtime import READ, label_of, rt
from .fences import DmaResvList, Usage, check_usage

if TYPE_CHECKING:
    from .reservation import DmaResv

__all__ = ["DmaResvIter"]


class DmaResvIter:
    """A cursor over a resv's fences (``struct dma_resv_iter``).

    Fields (kernel names): ``obj``, ``usage`` (the largest usage returned), ``fence`` (current; the unlocked
    walk holds a reference on it), ``fence_usage``, ``index``, ``fences`` (the list being walked: an
    unlocked step restarts when it is no longer the object's current list, so assigning anything else
    forces a restart), ``num_fences`` (the count read at the last (re)start: the unlocked walk stops there),
    ``is_restarted``.

    ``DmaResvIter(obj, usage)`` is begun; iterating it (``for fence in cursor``) walks unlocked, and
    ``with cursor:`` ends it (drops the reference on the current fence).

    Kernel: ``struct dma_resv_iter`` and ``dma_resv_iter_*`` (include/linux/dma-resv.h, dma-resv.c).
    """

    def __init__(self, obj: DmaResv | None = None, usage: Usage = Usage.BOOKKEEP) -> None:
        self.obj: DmaResv | None = None
        self.usage = Usage.BOOKKEEP
        self.fence: DmaFence | None = None
        self.fence_usage = Usage.KERNEL
        self.index = 0
        self.fences: Any = None
        self.num_fences = 0
        self.is_restarted = False
        if obj is not None:
            self.begin(obj, usage)

    def begin(self, obj: DmaResv, usage: Usage) -> None:
        """Start a walk of ``obj``'s fences with usage ``<= usage``. Kernel: ``dma_resv_iter_begin``."""
        # late import: reservation imports this module at its top (DmaResv walks its fences with a cursor)
        from .reservation import check_resv

        self.obj = check_resv(obj, "dma_resv_iter_begin")
        self.usage = check_usage(usage, "dma_resv_iter_begin")
        self.fence = None

    def end(self) -> None:
        """Drop the reference on the current fence (unlocked walks). Kernel: ``dma_resv_iter_end``."""
        f, self.fence = self.fence, None
        if f is not None:
            f.put()

    def _obj(self, fn: str) -> DmaResv:
        if self.obj is None:
            raise InvalidArgument(f"{fn}: the cursor was never begun; call dma_resv_iter_begin first")
        return self.obj

    # ------------------------------------------------------------------ unlocked walk
    def _current_list(self, obj: DmaResv) -> DmaResvList | None:
        """``dma_resv_fences_list`` read without the lock (``rcu_dereference``): a READ point on the
        object's ``fences`` field."""
        rt().point("dma_resv_fences_list", field_key(obj, "fences"), READ)
        return obj.fences

    def _restart_unlocked(self, obj: DmaResv) -> None:
        self.index = 0
        self.num_fences = 0
        self.fences = self._current_list(obj)
        if self.fences is not None:
            self.num_fences = self.fences.load_num()
        self.is_restarted = True

    def _walk_unlocked(self, obj: DmaResv) -> None:
        """Advance to the next unsignaled fence of a usage we want, taking a reference on it.

        Walks the indices below the count read at the (re)start; each slot is read once (a lock-free
        load), so a fence stored there in place before the load is returned, one stored after is not.
        Kernel: ``dma_resv_iter_walk_unlocked``."""
        if self.fences is None:
            # The kernel returns here keeping the previous fence (only reachable when copy_fences emptied
            # the list); the model drops it so a fence is never returned twice in a row.
            self.end()
            return
        while True:
            self.end()
            if self.index >= self.num_fences:
                return
            lst: DmaResvList = self.fences
            f, u = lst.load(self.index)
            self.index += 1
            self.fence_usage = u
            self.fence = f.get_unless_zero()
            if self.fence is None:
                self._restart_unlocked(obj)
                continue
            if not self.fence.is_signaled() and self.usage >= u:
                return

    def first_unlocked(self) -> DmaFence | None:
        """The first unsignaled fence (with a cursor reference), or ``None``.

        Locking: none (an RCU walk in the kernel). Kernel: ``dma_resv_iter_first_unlocked``.
        """
        obj = self._obj("dma_resv_iter_first_unlocked")
        while True:
            self._restart_unlocked(obj)
            self._walk_unlocked(obj)
            if self._current_list(obj) is self.fences:
                return self.fence

    def next_unlocked(self) -> DmaFence | None:
        """The next unsignaled fence, restarting (``is_restarted``) if the object's list pointer changed
        meanwhile (a reallocation; changes made in place do not restart the walk).

        Locking: none. Kernel: ``dma_resv_iter_next_unlocked``.
        """
        obj = self._obj("dma_resv_iter_next_unlocked")
        self.is_restarted = False
        restart = self._current_list(obj) is not self.fences
        while True:
            if restart:
                self._restart_unlocked(obj)
            self._walk_unlocked(obj)
            restart = True
            if self._current_list(obj) is self.fences:
                return self.fence

    # ------------------------------------------------------------------ locked walk
    def first(self) -> DmaFence | None:
        """The first fence (signaled ones included, no reference taken), or ``None``.

        Locking: held (asserted). Kernel: ``dma_resv_iter_first``.
        """
        obj = self._obj("dma_resv_iter_first")
        obj.assert_held()
        self.index = 0
        self.fences = obj.fences
        f = self.next()
        self.is_restarted = True
        return f

    def next(self) -> DmaFence | None:
        """The next fence of a usage we want.

        The walk sees the in-place changes of the list it started on (a fence added or replaced ahead of
        the cursor by ``dma_resv_add_fence``/``replace_fences`` meanwhile is returned), as the kernel
        re-reads the table and ``num_fences`` at each step; after a reallocation it goes on over the old
        list. Plain reads, no scheduling points: the lock excludes every writer. Locking: held (asserted).
        Kernel: ``dma_resv_iter_next``.
        """
        obj = self._obj("dma_resv_iter_next")
        obj.assert_held()
        self.is_restarted = False
        while True:
            lst = self.fences
            if not isinstance(lst, DmaResvList) or self.index >= lst.num_fences:
                return None
            f, self.fence_usage = lst.entry(self.index)
            self.index += 1
            if self.fence_usage <= self.usage:
                return f

    # ------------------------------------------------------------------ Python protocol
    def __iter__(self) -> Iterator[DmaFence]:
        f = self.first_unlocked()
        while f is not None:
            yield f
            f = self.next_unlocked()

    def __enter__(self) -> DmaResvIter:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is not None and not issubclass(et, Exception):
            return
        self.end()

    def __repr__(self) -> str:
        return (
            f"<DmaResvIter {label_of(self.obj)} usage<={self.usage.name} index={self.index} "
            f"restarted={self.is_restarted}>"
        )
