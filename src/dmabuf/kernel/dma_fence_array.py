"""Kernel names for ``linux/dma-fence-array.h`` over :class:`dmabuf.fence.DmaFenceArray` (v6.12)."""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import InvalidArgument
from ..fence.array import (
    DmaFenceArray,
    DmaFenceArrayCb,
    array_first,
    array_for_each,
    array_next,
    is_array,
    is_container,
    match_context,
    to_array,
)
from ..fence.fence import DmaFence, check_fence

__all__ = [
    "DmaFenceArray",
    "DmaFenceArrayCb",
    "dma_fence_array_create",
    "dma_fence_array_first",
    "dma_fence_array_for_each",
    "dma_fence_array_next",
    "dma_fence_is_array",
    "dma_fence_is_container",
    "dma_fence_match_context",
    "to_dma_fence_array",
]


def _opt(fence: object, fn: str) -> DmaFence | None:
    """``NULL`` or an initialised fence."""
    return None if fence is None else check_fence(fence, fn)


def dma_fence_array_create(
    num_fences: int, fences: list[DmaFence], context: int, seqno: int, signal_on_any: bool
) -> DmaFenceArray:
    """A fence signaling when all (``signal_on_any``: any) of ``fences[:num_fences]`` signaled; takes
    ownership of the list and its references. The first member error becomes the array's error.
    ``seqno`` is a C ``unsigned``: the array's ``seqno`` is ``seqno & 0xFFFFFFFF``. WARNs for an empty
    list or a container member. Kernel: ``dma_fence_array_create``."""
    return DmaFenceArray.create(num_fences, fences, context, seqno, bool(signal_on_any))


def to_dma_fence_array(fence: DmaFence | None) -> DmaFenceArray | None:
    """Kernel: ``to_dma_fence_array``."""
    return to_array(_opt(fence, "to_dma_fence_array"))


def dma_fence_is_array(fence: DmaFence) -> bool:
    """Kernel: ``dma_fence_is_array``."""
    return is_array(check_fence(fence, "dma_fence_is_array"))


def dma_fence_is_container(fence: DmaFence) -> bool:
    """Kernel: ``dma_fence_is_container`` (an array or a chain)."""
    return is_container(check_fence(fence, "dma_fence_is_container"))


def dma_fence_match_context(fence: DmaFence, context: int) -> bool:
    """Kernel: ``dma_fence_match_context``."""
    if isinstance(context, bool) or not isinstance(context, int):
        raise InvalidArgument(f"dma_fence_match_context needs an int context, got {context!r}")
    return match_context(check_fence(fence, "dma_fence_match_context"), context)


def dma_fence_array_first(head: DmaFence | None) -> DmaFence | None:
    """Kernel: ``dma_fence_array_first``."""
    return array_first(_opt(head, "dma_fence_array_first"))


def dma_fence_array_next(head: DmaFence | None, index: int) -> DmaFence | None:
    """Member ``index`` of the array ``head``; ``None`` if ``head`` is not an array or ``index`` is out of
    ``[0, num_fences)`` (the C index is unsigned: no negative indexing). Kernel: ``dma_fence_array_next``."""
    if isinstance(index, bool) or not isinstance(index, int):
        raise InvalidArgument(f"dma_fence_array_next needs an int index, got {index!r}")
    return array_next(_opt(head, "dma_fence_array_next"), index)


def dma_fence_array_for_each(head: DmaFence | None) -> Iterator[tuple[int, DmaFence]]:
    """``for i, fence in dma_fence_array_for_each(head)``. Kernel: ``dma_fence_array_for_each``."""
    return array_for_each(_opt(head, "dma_fence_array_for_each"))
