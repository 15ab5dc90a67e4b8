"""``struct dma_fence``: a one-shot completion event shared between drivers.

This module re-exports the names of the modules that implement fences:

* :mod:`.ops`: the ``DMA_FENCE_FLAG_*`` bits, :class:`DmaFenceOps`, :class:`DmaFenceCb`, seqno order;
* :mod:`.base`: :class:`DmaFence` (life cycle, signalling, callbacks, queries, waiting);
* :mod:`.signalling`: fence signalling sections, the wait annotation, ``irq_work``;
* :mod:`.functions`: ``check_fence``, ``get_rcu_safe``, ``wait_any_timeout``, context allocation, stub fences.

A fence starts unsignaled and is signaled exactly once. Waiters sleep on it (:meth:`DmaFence.wait_timeout`),
other drivers hang callbacks on it (:meth:`DmaFence.add_callback`); the callbacks run in the signalling task,
inside the fence lock (atomic context), in the order they were added. References are counted with a
:class:`~dmabuf.kernel.kref.Kref`; the last put releases the fence.

Modelling choices:

* every operation that reads or changes fence state is preceded by a scheduling point *on the fence*
  (``READ`` for lockless tests, ``WRITE`` otherwise); the operations the kernel does under ``fence->lock``
  also take that :class:`~dmabuf.sync.SpinLock` for real, so the ``_locked`` variants can assert it and a
  callback that sleeps is caught as sleeping in atomic context;
* time is the runtime clock (virtual under the explorer): timestamps are its nanoseconds, timeouts are
  jiffies converted with :data:`~dmabuf.kernel.config.HZ`;
* kernel globals (the context counter, the stub fence) live in ``rt().globals`` so that every execution of
  an exploration starts from the same state;
* ``irq_work`` (used by the containers to signal out of a callback) is a detached task running in atomic
  context: it runs asynchronously, after the signaller dropped the member fence's lock.

Kernel: ``struct dma_fence`` (include/linux/dma-fence.h, drivers/dma-buf/dma-fence.c), v6.12 semantics.
"""

from __future__ import annotations

from .base import DmaFence
from .functions import (
    allocate_private_stub,
    check_fence,
    context_alloc,
    get_rcu_safe,
    get_stub,
    wait_any_timeout,
)
from .ops import (
    DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT,
    DMA_FENCE_FLAG_SIGNALED_BIT,
    DMA_FENCE_FLAG_TIMESTAMP_BIT,
    DMA_FENCE_FLAG_USER_BITS,
    DmaFenceCb,
    DmaFenceOps,
    is_later_seqno,
)
from .ops import FenceFunc as FenceFunc
from .signalling import FENCE_MAP as FENCE_MAP
from .signalling import begin_signalling, end_signalling, irq_work_queue, might_wait
from .signalling import in_signalling_section as in_signalling_section

__all__ = [
    "DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT",
    "DMA_FENCE_FLAG_SIGNALED_BIT",
    "DMA_FENCE_FLAG_TIMESTAMP_BIT",
    "DMA_FENCE_FLAG_USER_BITS",
    "DmaFence",
    "DmaFenceCb",
    "DmaFenceOps",
    "allocate_private_stub",
    "begin_signalling",
    "check_fence",
    "context_alloc",
    "end_signalling",
    "get_rcu_safe",
    "get_stub",
    "irq_work_queue",
    "is_later_seqno",
    "might_wait",
    "wait_any_timeout",
]
