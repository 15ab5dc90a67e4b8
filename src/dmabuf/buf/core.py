"""The dma-buf core (drivers/dma-buf/dma-buf.c, Linux v6.12 behaviour).

This module re-exports the names of the modules that implement it:

* :mod:`.objects`: :class:`DmaBuf`, :class:`DmaBufAttachment`, :class:`DmaBufFile`, :class:`VmAreaStruct`,
  the argument checks and the locking convention;
* :mod:`.export`: export, ``dma_buf_is_dynamic``, file descriptors, references and release;
* :mod:`.attach`: attach/detach, pin/unpin, attach-and-map / unmap-and-detach;
* :mod:`.mapping`: map/unmap (and the cached ``attach.sgt``), ``dma_buf_move_notify``;
* :mod:`.cpu_access`: begin/end CPU access, vmap/vunmap, mmap.

A :class:`DmaBuf` is exported by a driver with :func:`dma_buf_export` (Pythonic: :meth:`DmaBuf.export`),
shared through file descriptors (:func:`dma_buf_fd`, :func:`dma_buf_get`, :func:`dma_buf_put`,
:func:`get_dma_buf`) and attached by importers (:func:`dma_buf_attach` for static importers,
:func:`dma_buf_dynamic_attach` with importer ops for dynamic ones). Importers map an attachment to get an
:class:`~dmabuf.buf.sg_table.SgTable` the device DMAs through.

**v6.12 specifics.** When the importer's and the exporter's dynamic-ness differ, the attach itself pins (for
a dynamic exporter) and maps ``DMA_BIDIRECTIONAL`` under the resv and caches the table in ``attach.sgt``;
every later map returns it (``-EBUSY`` for an incompatible direction) and unmap leaves it alone until detach.
Exporters with ``cache_sgt_mapping`` get the first map of each attachment cached the same way. A static
importer's map waits for the resv's KERNEL fences. A dynamic exporter pins on map only when
``CONFIG_DMABUF_MOVE_NOTIFY`` is off.

**Locking convention** (section 1.5 of the reference), enforced: functions that need the resv
(:func:`dma_buf_pin`, :func:`dma_buf_unpin`, :func:`dma_buf_map_attachment`, :func:`dma_buf_unmap_attachment`,
:func:`dma_buf_vmap`, :func:`dma_buf_vunmap`, :func:`dma_buf_move_notify`) WARN when the caller does not hold
it; functions that take it or may take it (attach, detach, export, fd, get, put, mmap, begin/end CPU access,
every ``_unlocked`` variant) WARN when the caller already holds it. The WARN's rule is
``"dma-buf locking convention: <function> requires the reservation lock"`` or ``"... must be called without
the reservation lock"``.

**Policies.** Each buffer has a mapping-tracking :class:`~dmabuf.policies.base.Policy`; the core calls its
hooks at attach, map, unmap, move_notify and detach.
"""

from __future__ import annotations

from .attach import (
    dma_buf_attach,
    dma_buf_attach_and_map,
    dma_buf_detach,
    dma_buf_dynamic_attach,
    dma_buf_pin,
    dma_buf_unmap_and_detach,
    dma_buf_unpin,
)
from .cpu_access import (
    dma_buf_begin_cpu_access,
    dma_buf_end_cpu_access,
    dma_buf_mmap,
    dma_buf_vmap,
    dma_buf_vmap_unlocked,
    dma_buf_vunmap,
    dma_buf_vunmap_unlocked,
)
from .export import (
    close_fd,
    dma_buf_attachment_is_dynamic,
    dma_buf_export,
    dma_buf_fd,
    dma_buf_get,
    dma_buf_is_dynamic,
    dma_buf_put,
    fd_table,
    get_dma_buf,
)
from .mapping import (
    dma_buf_map_attachment,
    dma_buf_map_attachment_unlocked,
    dma_buf_move_notify,
    dma_buf_unmap_attachment,
    dma_buf_unmap_attachment_unlocked,
)
from .objects import DmaBuf, DmaBufAttachment, DmaBufFile, VmAreaStruct

__all__ = [
    "DmaBuf",
    "DmaBufAttachment",
    "DmaBufFile",
    "VmAreaStruct",
    "close_fd",
    "dma_buf_attach",
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
    "fd_table",
    "get_dma_buf",
]
