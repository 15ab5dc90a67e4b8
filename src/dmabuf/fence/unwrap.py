"""Unwrapping fence containers: iterate the plain fences inside chains and arrays, and merge several
fences (of any shape) into one flat array.

Kernel: drivers/dma-buf/dma-fence-unwrap.c, include/linux/dma-fence-unwrap.h (v6.12).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from ..errors import InvalidArgument
from .array import DmaFenceArray, array_first, array_next
from .chain import chain_contained, chain_walk
from .fence import DmaFence, allocate_private_stub, check_fence, context_alloc

__all__ = ["DmaFenceUnwrap", "dedup_array", "unwrap_first", "unwrap_for_each", "unwrap_merge", "unwrap_next"]


class DmaFenceUnwrap:
    """The unwrap cursor (``struct dma_fence_unwrap``): ``chain`` (the current chain node, referenced),
    ``array`` (the container being walked) and ``index`` (position in it).

    Kernel: ``struct dma_fence_unwrap`` (include/linux/dma-fence-unwrap.h).
    """

    def __init__(self) -> None:
        self.chain: DmaFence | None = None
        self.array: DmaFence | None = None
        self.index = 0


def _unwrap_array(cursor: DmaFenceUnwrap) -> DmaFence | None:
    cursor.array = chain_contained(cursor.chain)
    cursor.index = 0
    return array_first(cursor.array)


def unwrap_first(head: DmaFence | None, cursor: DmaFenceUnwrap) -> DmaFence | None:
    """Start unwrapping ``head``: its first plain fence. Kernel: ``dma_fence_unwrap_first``."""
    if not isinstance(cursor, DmaFenceUnwrap):
        raise InvalidArgument(
            f"dma_fence_unwrap_first needs a DmaFenceUnwrap cursor, got {type(cursor).__name__}"
        )
    cursor.chain = head.get() if head is not None else None
    return _unwrap_array(cursor)


def unwrap_next(cursor: DmaFenceUnwrap) -> DmaFence | None:
    """The next plain fence, or ``None`` at the end. Kernel: ``dma_fence_unwrap_next``."""
    if not isinstance(cursor, DmaFenceUnwrap):
        raise InvalidArgument(
            f"dma_fence_unwrap_next needs a DmaFenceUnwrap cursor, got {type(cursor).__name__}"
        )
    cursor.index += 1
    tmp = array_next(cursor.array, cursor.index)
    if tmp is not None:
        return tmp
    cursor.chain = chain_walk(cursor.chain)
    return _unwrap_array(cursor)


def unwrap_for_each(cursor: DmaFenceUnwrap, head: DmaFence | None) -> Iterator[DmaFence]:
    """Yield every plain fence inside ``head`` (chain nodes newest first, array members in order; a
    plain fence yields itself). No reference is taken on the yielded fences; the cursor holds one on the
    current chain node until the end. Kernel: ``dma_fence_unwrap_for_each``."""
    fence = unwrap_first(head, cursor)
    while fence is not None:
        yield fence
        fence = unwrap_next(cursor)


def _fence_cmp(a: DmaFence, b: DmaFence) -> int:
    if a.context < b.context:
        return -1
    if a.context > b.context:
        return 1
    if b.is_later(a):
        return 1
    if a.is_later(b):
        return -1
    return 0


def dedup_array(fences: list[DmaFence], num_fences: int) -> int:
    """Sort ``fences[:num_fences]`` by context and keep only the latest fence of each context, putting
    the others. The list is changed in place (the dropped entries are removed from it); returns the new
    count. Kernel: ``dma_fence_dedup_array``."""
    if not isinstance(fences, list):
        raise InvalidArgument(f"dma_fence_dedup_array needs a list, got {type(fences).__name__}")
    if isinstance(num_fences, bool) or not isinstance(num_fences, int) or not 0 <= num_fences <= len(fences):
        raise InvalidArgument(f"dma_fence_dedup_array: bad count {num_fences!r} for {len(fences)} fences")
    if num_fences == 0:
        return 0
    for f in fences[:num_fences]:
        check_fence(f, "dma_fence_dedup_array")
    head = sorted(fences[:num_fences], key=functools.cmp_to_key(_fence_cmp))
    kept = [head[0]]
    for f in head[1:]:
        if f.context == kept[-1].context:
            f.put()
        else:
            kept.append(f)
    fences[:num_fences] = kept
    return len(kept)


def unwrap_merge(*fences: DmaFence | None) -> DmaFence | None:
    """Merge ``fences`` (plain fences, chains, arrays; not consumed) into one fence waiting for all of
    their unsignaled leaves: a private signaled stub if none is left, the single leaf (referenced) if one,
    else a new array of the latest leaf per context. A ``None`` input unwraps to nothing and is skipped, as
    the kernel's ``NULL``. Kernel: ``dma_fence_unwrap_merge``."""
    for f in fences:
        if f is not None:
            check_fence(f, "dma_fence_unwrap_merge")
    timestamp = 0
    count = 0
    unsignaled: DmaFence | None = None
    for f in fences:
        for tmp in unwrap_for_each(DmaFenceUnwrap(), f):
            if not tmp.is_signaled():
                if unsignaled is not None:
                    unsignaled.put()
                unsignaled = tmp.get()
                count += 1
            else:
                timestamp = max(timestamp, tmp.timestamp_ns())
    if count == 0:
        return allocate_private_stub(timestamp)
    if count == 1:
        return unsignaled
    assert unsignaled is not None
    unsignaled.put()

    array: list[DmaFence] = []
    for f in fences:
        for tmp in unwrap_for_each(DmaFenceUnwrap(), f):
            if not tmp.is_signaled():
                array.append(tmp.get())
            else:
                timestamp = max(timestamp, tmp.timestamp_ns())
    count = len(array)
    if count > 1:
        count = dedup_array(array, count)
        if count > 1:
            return DmaFenceArray.create(count, array, context_alloc(1), 1, False)
    if count == 0:
        return allocate_private_stub(timestamp)
    return array[0]
