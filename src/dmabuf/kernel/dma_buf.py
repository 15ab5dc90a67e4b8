"""Kernel names of ``linux/dma-buf.h`` (v6.12) over :mod:`dmabuf.buf`.

Return conventions are the kernel's: pointers are the object, ``None`` or ``ERR_PTR(-e)``; ints are 0 or
``-errno``; the vmap out-parameter comes back after the result (``ret, map = dma_buf_vmap(dmabuf)``).
WARN conditions raise :class:`~dmabuf.errors.KernelWarning` unless ``set_warn_mode("log")``; the locking
convention of the dma-buf documentation is enforced the same way.

Kernel: include/linux/dma-buf.h, drivers/dma-buf/dma-buf.c.
"""

from __future__ import annotations

from ..buf.core import (
    DmaBuf,
    DmaBufAttachment,
    VmAreaStruct,
    close_fd,
    dma_buf_attach,
    dma_buf_attach_and_map,
    dma_buf_attachment_is_dynamic,
    dma_buf_begin_cpu_access,
    dma_buf_detach,
    dma_buf_dynamic_attach,
    dma_buf_end_cpu_access,
    dma_buf_export,
    dma_buf_fd,
    dma_buf_get,
    dma_buf_is_dynamic,
    dma_buf_map_attachment,
    dma_buf_map_attachment_unlocked,
    dma_buf_mmap,
    dma_buf_move_notify,
    dma_buf_pin,
    dma_buf_put,
    dma_buf_unmap_and_detach,
    dma_buf_unmap_attachment,
    dma_buf_unmap_attachment_unlocked,
    dma_buf_unpin,
    dma_buf_vmap,
    dma_buf_vmap_unlocked,
    dma_buf_vunmap,
    dma_buf_vunmap_unlocked,
    get_dma_buf,
)
from ..buf.ops import DEFINE_DMA_BUF_EXPORT_INFO, DmaBufAttachOps, DmaBufExportInfo, DmaBufOps
from ..buf.sg_table import DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_NONE, DMA_TO_DEVICE, IosysMap, SgTable

__all__ = [
    "DEFINE_DMA_BUF_EXPORT_INFO",
    "DMA_BIDIRECTIONAL",
    "DMA_FROM_DEVICE",
    "DMA_NONE",
    "DMA_TO_DEVICE",
    "DmaBuf",
    "DmaBufAttachOps",
    "DmaBufAttachment",
    "DmaBufExportInfo",
    "DmaBufOps",
    "IosysMap",
    "SgTable",
    "VmAreaStruct",
    "close_fd",
    "dma_buf_attach",
    # option 3 of the 2019 thread (one-shot attachments); not in mainline
    "dma_buf_attach_and_map",
    "dma_buf_attachment_is_dynamic",
    "dma_buf_begin_cpu_access",
    "dma_buf_detach",
    "dma_buf_dynamic_attach",
    "dma_buf_end_cpu_access",
    "dma_buf_export",
    "dma_buf_fd",
    "dma_buf_get",
    "dma_buf_is_dynamic",
    "dma_buf_map_attachment",
    "dma_buf_map_attachment_unlocked",
    "dma_buf_mmap",
    "dma_buf_move_notify",
    "dma_buf_pin",
    "dma_buf_put",
    "dma_buf_unmap_and_detach",
    "dma_buf_unmap_attachment",
    "dma_buf_unmap_attachment_unlocked",
    "dma_buf_unpin",
    "dma_buf_vmap",
    "dma_buf_vmap_unlocked",
    "dma_buf_vunmap",
    "dma_buf_vunmap_unlocked",
    "get_dma_buf",
]
