"""Fences: ``dma_fence`` and its containers (array, chain) plus unwrapping, as Pythonic classes.

The kernel-named layer (``dma_fence_*``) is in :mod:`dmabuf.kernel`; it wraps these classes.
"""

from __future__ import annotations

# The kernel package first: its modules import this package's submodules, and importing it from inside
# one of them would find this package half-initialised.
from .. import kernel as _kernel  # noqa: F401
from .array import DmaFenceArray, DmaFenceArrayCb
from .chain import DmaFenceChain
from .fence import (
    DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT,
    DMA_FENCE_FLAG_SIGNALED_BIT,
    DMA_FENCE_FLAG_TIMESTAMP_BIT,
    DMA_FENCE_FLAG_USER_BITS,
    DmaFence,
    DmaFenceCb,
    DmaFenceOps,
)
from .unwrap import DmaFenceUnwrap

__all__ = [
    "DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT",
    "DMA_FENCE_FLAG_SIGNALED_BIT",
    "DMA_FENCE_FLAG_TIMESTAMP_BIT",
    "DMA_FENCE_FLAG_USER_BITS",
    "DmaFence",
    "DmaFenceArray",
    "DmaFenceArrayCb",
    "DmaFenceCb",
    "DmaFenceChain",
    "DmaFenceOps",
    "DmaFenceUnwrap",
]
