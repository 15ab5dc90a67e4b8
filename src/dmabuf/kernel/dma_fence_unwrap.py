"""Kernel names for ``linux/dma-fence-unwrap.h`` over :mod:`dmabuf.fence.unwrap` (v6.12)."""

from __future__ import annotations

from collections.abc import Iterator

from ..fence.fence import DmaFence, check_fence
from ..fence.unwrap import (
    DmaFenceUnwrap,
    dedup_array,
    unwrap_first,
    unwrap_for_each,
    unwrap_merge,
    unwrap_next,
)

__all__ = [
    "DmaFenceUnwrap",
    "dma_fence_dedup_array",
    "dma_fence_unwrap_first",
    "dma_fence_unwrap_for_each",
    "dma_fence_unwrap_merge",
    "dma_fence_unwrap_next",
]


def _opt(fence: object, fn: str) -> DmaFence | None:
    """``NULL`` or an initialised fence."""
    return None if fence is None else check_fence(fence, fn)


def dma_fence_unwrap_first(head: DmaFence | None, cursor: DmaFenceUnwrap) -> DmaFence | None:
    """Kernel: ``dma_fence_unwrap_first``."""
    return unwrap_first(_opt(head, "dma_fence_unwrap_first"), cursor)


def dma_fence_unwrap_next(cursor: DmaFenceUnwrap) -> DmaFence | None:
    """Kernel: ``dma_fence_unwrap_next``."""
    return unwrap_next(cursor)


def dma_fence_unwrap_for_each(cursor: DmaFenceUnwrap, head: DmaFence | None) -> Iterator[DmaFence]:
    """``for fence in dma_fence_unwrap_for_each(cursor, head)``. Kernel: ``dma_fence_unwrap_for_each``."""
    return unwrap_for_each(cursor, _opt(head, "dma_fence_unwrap_for_each"))


def dma_fence_unwrap_merge(*fences: DmaFence | None) -> DmaFence | None:
    """Merge fences (not consumed) into one; ``NULL`` inputs are skipped; ``None`` on allocation failure.
    Kernel: ``dma_fence_unwrap_merge``."""
    return unwrap_merge(*fences)


def dma_fence_dedup_array(fences: list[DmaFence], num_fences: int) -> int:
    """Sort and deduplicate ``fences[:num_fences]`` in place (latest per context kept, the others put);
    returns the new count (0 for an empty list). Not a v6.12 export: a later kernel factored it out of
    ``__dma_fence_unwrap_merge`` (patch of April 2025). Kernel: ``dma_fence_dedup_array``."""
    return dedup_array(fences, num_fences)
