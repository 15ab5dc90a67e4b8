"""Reservation objects: the fences of a buffer and the ww_mutex that guards them (``struct dma_resv``).

This package re-exports the names of the modules that implement reservation objects:

* :mod:`.fences`: :class:`Usage` (with ``usage_rw`` and ``check_usage``) and :class:`DmaResvList`, one
  allocation of an object's fence table (slots, count, reserved capacity), changed in place;
* :mod:`.reservation`: :class:`DmaResv` (life cycle, locking, the writers, the locked and unlocked readers,
  waiting), :class:`ReservationObject`, ``check_resv`` and :data:`reservation_ww_class`;
* :mod:`.iterator`: :class:`DmaResvIter`, the locked walk and the unlocked walk (which restarts when the
  list is reallocated).

A :class:`DmaResv` holds a list of ``(fence, usage)`` entries and a wound/wait mutex of the Wait-Die class
:data:`reservation_ww_class`. Writers hold the lock; they first reserve slots with
:meth:`DmaResv.reserve_fences` and then :meth:`DmaResv.add_fence`, which cannot fail any more (it ``BUG``\\ s
when no slot was reserved). Readers either hold the lock too (:meth:`DmaResv.iter_fences`) or walk the list
without it (:meth:`DmaResv.iter_fences_unlocked`), taking a reference on each fence and restarting when the
object's fence list was reallocated meanwhile.

**Usages** (:class:`Usage`) are ordered ``KERNEL < WRITE < READ < BOOKKEEP``; asking for usage *u* returns
every fence whose usage is ``<= u``.

**In-place updates, as in v6.12.** A :class:`DmaResvList` is one allocation of the fence table.
``reserve_fences`` allocates a new one only when the room is short (``num_fences + n > max_fences``): it
copies the unsignaled entries (dropping the signaled ones), publishes the new list (``rcu_assign_pointer``)
and leaves the old one as it was for the lock-free walkers still on it (``kfree_rcu``). ``copy_fences``
builds a private list and swaps it in (``rcu_replace_pointer``). ``add_fence`` and ``replace_fences`` change
the current table in place: a replacement is one slot store (``dma_resv_list_set``) followed by the put of
the old fence; an append stores the next unused slot and then publishes the new count
(``smp_store_mb(num_fences)``). Every such store is a WRITE scheduling point on its own location (the
object's ``fences`` pointer, one slot of one list, one list's count), and the unlocked walk reads each of
them as a READ point: the list pointer and the count when it (re)starts, each slot as it reaches it.

The unlocked walk restarts only when the object's list pointer changed (``dma_resv_fences_list(obj) !=
cursor->fences``) or when ``dma_fence_get_rcu`` of a fence it loaded fails (a writer replaced that slot and
put the fence's last reference meanwhile); the reference it takes keeps a returned fence alive. So, as in
the kernel, an unlocked reader does *not* see one state of the list: it never walks entries appended after
its (re)start, it returns an entry replaced ahead of its cursor and misses one replaced behind it, and so
may return a mix of two states (the old fence of one context next to the new fence of another) without
restarting. What it does guarantee: every fence it returns was in its slot when the walk read that slot,
has a wanted usage, was unsignaled when checked after its reference was taken, and is held by that
reference; and it never walks past the count it read, so it never reads an unfilled slot. A reader that needs one consistent state
holds the lock (the locked walk re-reads the count of its list at each step and so sees, like the
kernel's, the fences its own lock holder added or replaced ahead of its cursor).

``unlock`` first resets ``max_fences`` to ``num_fences`` (the kernel does so under CONFIG_DEBUG_MUTEXES), so a
reservation never survives an unlock: add after unlock-and-relock without a new reserve ``BUG``\\ s.

Kernel: drivers/dma-buf/dma-resv.c, include/linux/dma-resv.h (v6.12).
"""

from __future__ import annotations

from .fences import DmaResvList, Usage, check_usage, usage_rw
from .iterator import DmaResvIter
from .reservation import DmaResv, ReservationObject, check_resv, reservation_ww_class

__all__ = [
    "DmaResv",
    "DmaResvIter",
    "DmaResvList",
    "ReservationObject",
    "Usage",
    "check_resv",
    "check_usage",
    "reservation_ww_class",
    "usage_rw",
]
