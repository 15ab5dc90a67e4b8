"""What a reservation object holds: fence usages and the published fence list.

* :class:`Usage` (``enum dma_resv_usage``), :func:`usage_rw` and the argument check :func:`check_usage`;
* :class:`DmaResvList` (``struct dma_resv_list``): one published state of an object's fences, never changed
  once published except for ``max_fences``; ``_list_free`` drops its references;
* the capacity of a list as the kernel allocates it (``_list_capacity``: the header and the slots rounded
  up to the kmalloc bucket; ``_roundup_pow_of_two``).

The object is in :mod:`.reservation`, the cursor in :mod:`.iterator`; :mod:`dmabuf.resv` describes the
model.

Kernel: include/linux/dma-resv.h, drivers/dma-buf/dma-resv.c.
"""

from __future__ import annotations

from enum import IntEnum

from ..errors import InvalidArgument
from ..fence.fence import DmaFence
from ..runtime import label_of

__all__ = ["DmaResvList", "Usage", "check_usage", "usage_rw"]


class Usage(IntEnum):
    """How the operation behind a fence uses the buffer (``enum dma_resv_usage``).

    Ordered: a query for usage *u* returns every fence with usage ``<= u``. A fence can be promoted
    (re-added with a larger usage, e.g. BOOKKEEP to READ only via a new entry) but an entry is never
    degraded by :meth:`DmaResv.add_fence` (WRITE stays WRITE when re-added as READ).
    """

    #: kernel memory management (moves, clears): every user must wait for these.
    KERNEL = 0
    #: implicit-sync writers.
    WRITE = 1
    #: implicit-sync readers.
    READ = 2
    #: no implicit sync (explicit sync, page-table updates, preemption fences).
    BOOKKEEP = 3


def usage_rw(write: bool) -> Usage:
    """The usage an access must wait for: a writer waits for readers and writers (READ), a reader only for
    writers (WRITE). Kernel: ``dma_resv_usage_rw`` (include/linux/dma-resv.h)."""
    return Usage.READ if write else Usage.WRITE


def check_usage(usage: object, fn: str) -> Usage:
    """Argument check: a :class:`Usage` (or the int of one)."""
    if isinstance(usage, bool) or not isinstance(usage, int) or not 0 <= usage <= 3:
        raise InvalidArgument(f"{fn} needs a dma_resv usage (DMA_RESV_USAGE_KERNEL..BOOKKEEP), got {usage!r}")
    return Usage(usage)


# struct dma_resv_list is {rcu_head (16 bytes), u32 num_fences, u32 max_fences, table[] of 8-byte slots};
# kmalloc rounds the request up to its bucket and the list uses every slot of it (kmalloc_size_roundup).
_LIST_HEADER = 24
_SLOT = 8
_KMALLOC_BUCKETS = (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192)
_PAGE = 4096


def _kmalloc_size_roundup(size: int) -> int:
    for b in _KMALLOC_BUCKETS:
        if size <= b:
            return b
    pages = -(-size // _PAGE)
    return _PAGE * (1 << (pages - 1).bit_length())


def _list_capacity(n: int) -> int:
    """``max_fences`` of a list allocated for ``n`` fences (``dma_resv_list_alloc``)."""
    return (_kmalloc_size_roundup(_LIST_HEADER + _SLOT * n) - _LIST_HEADER) // _SLOT


def _roundup_pow_of_two(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


class DmaResvList:
    """One published state of a resv's fences (``struct dma_resv_list``).

    ``table`` (a tuple of ``(fence, usage)``) never changes once published; ``max_fences`` (the reserved
    capacity) is the only field updated in place, under the resv lock. The list owns one reference on each
    fence in ``table`` while it is the object's current list.

    ``alloc`` names the kernel allocation this state belongs to: ``dma_resv_add_fence`` and
    ``dma_resv_replace_fences`` change the kernel's table in place, so the lists they publish share the
    ``alloc`` of the list they replace; ``reserve_fences`` (reallocation) and ``copy_fences`` start a new one.
    A locked walk follows the states of one allocation, as the kernel's re-reads of that table do.
    """

    __slots__ = ("__weakref__", "alloc", "max_fences", "table")

    def __init__(
        self, table: tuple[tuple[DmaFence, Usage], ...], max_fences: int, alloc: object | None = None
    ) -> None:
        self.table = table
        self.max_fences = max_fences
        # a fresh token, not ``self``: a list naming itself would be a reference cycle, freed only by the GC
        self.alloc: object = object() if alloc is None else alloc

    @property
    def num_fences(self) -> int:
        """Entries in use."""
        return len(self.table)

    def __repr__(self) -> str:
        ents = ", ".join(f"{label_of(f)}:{u.name}" for f, u in self.table)
        return f"<DmaResvList {self.num_fences}/{self.max_fences} [{ents}]>"


def _list_free(lst: DmaResvList | None) -> None:
    """``dma_resv_list_free``: drop the list's references."""
    if lst is None:
        return
    for f, _u in lst.table:
        f.put()
