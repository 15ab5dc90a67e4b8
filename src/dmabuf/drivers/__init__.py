"""Reference drivers that behave like real ones, for end-to-end checks with the data-integrity oracle.

* :mod:`.ttm`: a TTM-like exporter (BOs in VRAM/GTT/SYSTEM with capacity, per-domain LRU, pin/unpin,
  validate with eviction through drm_exec back-off, pipelined moves, export as a dynamic dma-buf);
* :mod:`.gpu_importer`: a dynamic importer modelled on amdgpu (move_notify invalidates, re-map on next use,
  jobs wait for the move fence and add their fences to the resv);
* :mod:`.static_importer`: a static importer (attach, map once: the core pins and caches);
* :mod:`.engine`: a simulated GPU ring whose jobs' fences are signalled by a completion worker inside
  ``dma_fence_begin_signalling``.

See docs/reference-drivers.md.
"""

from __future__ import annotations

from .engine import GpuEngine, GpuJob
from .gpu_importer import GpuImporter
from .static_importer import StaticImporter
from .ttm import (
    TtmBo,
    TtmDevice,
    TtmResourceManager,
    ttm_bo_move_to_lru_tail,
    ttm_bo_pin,
    ttm_bo_unpin,
    ttm_bo_validate,
    ttm_exec_validate,
)
from .ttm_dmabuf import ttm_bo_export

__all__ = [
    "GpuEngine",
    "GpuImporter",
    "GpuJob",
    "StaticImporter",
    "TtmBo",
    "TtmDevice",
    "TtmResourceManager",
    "ttm_bo_export",
    "ttm_bo_move_to_lru_tail",
    "ttm_bo_pin",
    "ttm_bo_unpin",
    "ttm_bo_validate",
    "ttm_exec_validate",
]
