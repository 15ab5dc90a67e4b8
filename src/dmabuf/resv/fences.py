"""What a reservation object holds: fence usages and the fence table.

* :class:`Usage` (``enum dma_resv_usage``), :func:`usage_rw` and the argument check :func:`check_usage`;
* :class:`DmaResvList` (``struct dma_resv_list``): one allocation of an object's fence table, changed in
  place by the writers (slot stores, the count) and read lock-free by the unlocked walk, each shared access
  a scheduling point; ``_list_free`` drops its references;
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
from ..kernel.once import field_key
from ..runtime import READ, WRITE, label_of, rt

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
    """One allocation of a resv's fence table (``struct dma_resv_list``).

    ``table`` has one slot per allocated entry (its length is the capacity the allocator gave, never
    resized); a slot is ``None`` or a ``(fence, usage)`` pair (the kernel packs the usage into the low bits
    of the fence pointer, so one store publishes both). The first ``num_fences`` slots are in use;
    ``max_fences`` (the reserved capacity) is lowered to ``num_fences`` by unlock. The list owns one
    reference on each fence in use while it is the object's current list.

    The writers (resv lock held) change the table in place, as v6.12 does: :meth:`store` is
    ``dma_resv_list_set`` (a WRITE point on that slot), :meth:`store_num` the count publication
    ``smp_store_mb(num_fences)`` (a WRITE point on the count). The lock-free walk reads with :meth:`load`
    (``rcu_dereference`` of a slot) and :meth:`load_num` (READ points). Under the lock, :meth:`entry` and
    :meth:`entries` read without a scheduling point (no writer can race with the lock holder, and reads
    commute). A list that is no longer the object's current one (``reserve_fences`` reallocated, or
    ``copy_fences`` replaced it) stays readable as it was: ``kfree_rcu`` frees it only after the
    lock-free readers that may still walk it are done.
    """

    __slots__ = ("__weakref__", "max_fences", "num_fences", "table")

    def __init__(self, max_fences: int) -> None:
        self.table: list[tuple[DmaFence, Usage] | None] = [None] * max_fences
        self.num_fences = 0
        self.max_fences = max_fences

    # ------------------------------------------------------------------ lock held (or not yet shared)
    def entry(self, index: int) -> tuple[DmaFence, Usage]:
        """Slot ``index`` (in use), read by the lock holder: no scheduling point.
        Kernel: ``dma_resv_list_entry`` with the lock held."""
        e = self.table[index]
        assert e is not None, f"[internal bug] empty slot {index} below num_fences of {self!r}"
        return e

    def entries(self) -> tuple[tuple[DmaFence, Usage], ...]:
        """The entries in use, read by the lock holder (or for inspection): no scheduling point."""
        return tuple(self.entry(i) for i in range(self.num_fences))

    def append_private(self, fence: DmaFence, usage: Usage) -> None:
        """Fill the next slot of a list nobody else can see yet (a new allocation before it is published):
        no scheduling point."""
        self.table[self.num_fences] = (fence, usage)
        self.num_fences += 1

    def store(self, index: int, fence: DmaFence, usage: Usage) -> None:
        """Store ``(fence, usage)`` in slot ``index`` of a published list (lock held): one WRITE point on
        that slot. Kernel: ``dma_resv_list_set`` (``RCU_INIT_POINTER``)."""
        rt().point("dma_resv_list_set", field_key(self, f"table[{index}]"), WRITE)
        self.table[index] = (fence, usage)

    def store_num(self, count: int) -> None:
        """Publish the number of entries in use after an append (lock held): one WRITE point on the count.
        Kernel: ``smp_store_mb(fobj->num_fences, count)``."""
        rt().point("smp_store_mb", field_key(self, "num_fences"), WRITE)
        self.num_fences = count

    # ------------------------------------------------------------------ lock-free
    def load(self, index: int) -> tuple[DmaFence, Usage]:
        """Slot ``index`` read without the lock: one READ point on that slot. Only slots below a count
        read earlier are loaded, and a slot is stored before the count that covers it.
        Kernel: ``dma_resv_list_entry`` (``rcu_dereference_check``) in the unlocked walk."""
        rt().point("dma_resv_list_entry", field_key(self, f"table[{index}]"), READ)
        return self.entry(index)

    def load_num(self) -> int:
        """The number of entries in use, read without the lock: one READ point on the count.
        Kernel: ``cursor->fences->num_fences`` in ``dma_resv_iter_restart_unlocked``."""
        rt().point("READ num_fences", field_key(self, "num_fences"), READ)
        return self.num_fences

    def __repr__(self) -> str:
        ents = ", ".join(
            f"{label_of(e[0])}:{e[1].name}" if e is not None else "-" for e in self.table[: self.num_fences]
        )
        return f"<DmaResvList {self.num_fences}/{self.max_fences} [{ents}]>"


def _list_free(lst: DmaResvList | None) -> None:
    """``dma_resv_list_free``: drop the list's references."""
    if lst is None:
        return
    for f, _u in lst.entries():
        f.put()
