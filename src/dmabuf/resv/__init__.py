"""Reservation objects: the fences of a buffer and the ww_mutex that guards them (``struct dma_resv``).

This package re-exports the names of the modules that implement reservation objects:

* :mod:`.fences`: :class:`Usage` (with ``usage_rw`` and ``check_usage``) and :class:`DmaResvList`, one
  published state of an object's fences, with its allocated capacity;
* :mod:`.reservation`: :class:`DmaResv` (life cycle, locking, the writers, the locked and unlocked readers,
  waiting), :class:`ReservationObject`, ``check_resv`` and :data:`reservation_ww_class`;
* :mod:`.iterator`: :class:`DmaResvIter`, the locked walk and the restarting unlocked walk.

A :class:`DmaResv` holds a list of ``(fence, usage)`` entries and a wound/wait mutex of the Wait-Die class
:data:`reservation_ww_class`. Writers hold the lock; they first reserve slots with
:meth:`DmaResv.reserve_fences` and then :meth:`DmaResv.add_fence`, which cannot fail any more (it ``BUG``\\ s
when no slot was reserved). Readers either hold the lock too (:meth:`DmaResv.iter_fences`) or walk the list
without it (:meth:`DmaResv.iter_fences_unlocked`), taking a reference on each fence and restarting whenever
the object's fence list was replaced meanwhile.

**Usages** (:class:`Usage`) are ordered ``KERNEL < WRITE < READ < BOOKKEEP``; asking for usage *u* returns
every fence whose usage is ``<= u``.

**Copy-on-write.** The kernel publishes a new ``struct dma_resv_list`` under RCU when it reallocates
(``reserve_fences``, ``copy_fences``) and updates the table in place otherwise. This model publishes a new
:class:`DmaResvList` for *every* change of the fence set (add, replace, compaction, copy), so the identity
check of the unlocked iterator (``dma_resv_fences_list(obj) != cursor->fences``) sees every change and an
unlocked reader always returns the fences of one list state (never a torn mix of two). Each publication is a
WRITE scheduling point on the resv; each unlocked read of the list pointer is a READ point. The lists that
stand for one kernel allocation share ``DmaResvList.alloc``, so a *locked* walk still sees, like the kernel's,
the fences added or replaced in place ahead of its cursor.

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
