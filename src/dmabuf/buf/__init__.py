"""The dma-buf core with its memory model and data-integrity oracle.

* :mod:`.core`: :class:`DmaBuf`, :class:`DmaBufAttachment` and the v6.12 ``dma_buf_*`` functions, gathered from
  :mod:`.objects` (the objects, argument checks, locking convention), :mod:`.export` (export, fds, references),
  :mod:`.attach` (attach/detach, pin/unpin), :mod:`.mapping` (map/unmap, move_notify) and :mod:`.cpu_access`
  (begin/end CPU access, vmap, mmap);
* :mod:`.ops`: :class:`DmaBufOps`, :class:`DmaBufAttachOps`, :class:`DmaBufExportInfo`;
* :mod:`.memory`: domains, page pools, :class:`BufferObject`, moves;
* :mod:`.sg_table`: :class:`SgTable` (device mapping), :class:`CpuMapping`, :class:`IosysMap`;
* :mod:`.oracle`: :func:`check_all` ("no byte lost"); stale mappings/content are checked at every access.
"""

from __future__ import annotations

from .core import DmaBuf, DmaBufAttachment, DmaBufFile, VmAreaStruct, fd_table
from .memory import (
    PAGE_SHIFT,
    PAGE_SIZE,
    POOL_PAGES,
    BufferObject,
    Memory,
    MemoryDomain,
    Move,
    Page,
    Placement,
    configure_memory,
    memory,
)
from .ops import DEFINE_DMA_BUF_EXPORT_INFO, DmaBufAttachOps, DmaBufExportInfo, DmaBufOps, MemoryExporter
from .oracle import check_all, check_buffer
from .sg_table import (
    DMA_BIDIRECTIONAL,
    DMA_FROM_DEVICE,
    DMA_NONE,
    DMA_TO_DEVICE,
    CpuMapping,
    IosysMap,
    PageMapping,
    SgTable,
)

__all__ = [
    "DEFINE_DMA_BUF_EXPORT_INFO",
    "DMA_BIDIRECTIONAL",
    "DMA_FROM_DEVICE",
    "DMA_NONE",
    "DMA_TO_DEVICE",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "POOL_PAGES",
    "BufferObject",
    "CpuMapping",
    "DmaBuf",
    "DmaBufAttachOps",
    "DmaBufAttachment",
    "DmaBufExportInfo",
    "DmaBufFile",
    "DmaBufOps",
    "IosysMap",
    "Memory",
    "MemoryDomain",
    "MemoryExporter",
    "Move",
    "Page",
    "PageMapping",
    "Placement",
    "SgTable",
    "VmAreaStruct",
    "check_all",
    "check_buffer",
    "configure_memory",
    "fd_table",
    "memory",
]
