"""Small fence factory shared by the fence tests."""

from __future__ import annotations

from typing import Any

from dmabuf.kernel import DmaFence, DmaFenceOps, SpinLock, dma_fence_context_alloc, dma_fence_init


def _name(f: DmaFence) -> str:
    return "test"


OPS = DmaFenceOps(get_driver_name=_name, get_timeline_name=_name)


def make_fence(ops: DmaFenceOps = OPS, context: int | None = None, seqno: int = 1, **kw: Any) -> DmaFence:
    f = DmaFence()
    ctx = dma_fence_context_alloc(1) if context is None else context
    dma_fence_init(f, ops, SpinLock(lock_class="test_fence.lock"), ctx, seqno)
    return f
