"""Kernel names for ``linux/dma-fence-chain.h`` over :class:`dmabuf.fence.DmaFenceChain` (v6.12)."""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import InvalidArgument
from ..fence.chain import (
    DmaFenceChain,
    chain_contained,
    chain_find_seqno,
    chain_for_each,
    chain_walk,
    is_chain,
    to_chain,
)
from ..fence.fence import DmaFence, check_fence

__all__ = [
    "DmaFenceChain",
    "dma_fence_chain_alloc",
    "dma_fence_chain_contained",
    "dma_fence_chain_find_seqno",
    "dma_fence_chain_for_each",
    "dma_fence_chain_free",
    "dma_fence_chain_init",
    "dma_fence_chain_walk",
    "dma_fence_is_chain",
    "to_dma_fence_chain",
]


def _opt(fence: object, fn: str) -> DmaFence | None:
    """``NULL`` or an initialised fence."""
    return None if fence is None else check_fence(fence, fn)


def dma_fence_chain_alloc() -> DmaFenceChain:
    """An uninitialised chain node. Kernel: ``dma_fence_chain_alloc``."""
    return DmaFenceChain()


def dma_fence_chain_free(chain: DmaFenceChain) -> None:
    """Free a node that was never initialised. Kernel: ``dma_fence_chain_free``."""
    if not isinstance(chain, DmaFenceChain):
        raise InvalidArgument(f"dma_fence_chain_free needs a DmaFenceChain, got {type(chain).__name__}")
    chain.free()


def dma_fence_chain_init(chain: DmaFenceChain, prev: DmaFence | None, fence: DmaFence, seqno: int) -> None:
    """Link ``chain`` after ``prev`` for ``fence`` at ``seqno`` (takes both references).
    Kernel: ``dma_fence_chain_init``."""
    if not isinstance(chain, DmaFenceChain):
        raise InvalidArgument(f"dma_fence_chain_init needs a DmaFenceChain, got {type(chain).__name__}")
    chain.link(prev, fence, seqno)


def to_dma_fence_chain(fence: DmaFence | None) -> DmaFenceChain | None:
    """Kernel: ``to_dma_fence_chain``."""
    return to_chain(_opt(fence, "to_dma_fence_chain"))


def dma_fence_is_chain(fence: DmaFence) -> bool:
    """Kernel: ``dma_fence_is_chain``."""
    return is_chain(check_fence(fence, "dma_fence_is_chain"))


def dma_fence_chain_contained(fence: DmaFence | None) -> DmaFence | None:
    """Kernel: ``dma_fence_chain_contained``."""
    return chain_contained(_opt(fence, "dma_fence_chain_contained"))


def dma_fence_chain_walk(fence: DmaFence | None) -> DmaFence | None:
    """Consume the reference on ``fence`` and return the previous unsignaled node (referenced) or
    ``None``; signaled nodes are unlinked on the way. ``NULL`` or a non-chain fence: (put and) ``None``.
    Kernel: ``dma_fence_chain_walk``."""
    return chain_walk(_opt(fence, "dma_fence_chain_walk"))


def dma_fence_chain_find_seqno(fence: DmaFence | None, seqno: int) -> tuple[int, DmaFence | None]:
    """``ret, fence = dma_fence_chain_find_seqno(fence, seqno)`` (the C in/out pointer).
    Kernel: ``dma_fence_chain_find_seqno``."""
    if fence is not None:
        check_fence(fence, "dma_fence_chain_find_seqno")
    return chain_find_seqno(fence, seqno)


def dma_fence_chain_for_each(head: DmaFence | None) -> Iterator[DmaFence]:
    """``for it in dma_fence_chain_for_each(head)``; breaking out leaves a reference on ``it`` for the
    caller to put. Kernel: ``dma_fence_chain_for_each``."""
    return chain_for_each(_opt(head, "dma_fence_chain_for_each"))
