"""A static importer: ``dma_buf_attach`` (no ``move_notify``), map once, use the mapping.

A static importer cannot follow moves, so the dma-buf core keeps the buffer still for it. In v6.12 (this
model's target) ``dma_buf_attach`` of a dynamic exporter's buffer, under the resv, **pins** it
(``ops->pin``), maps it ``DMA_BIDIRECTIONAL``, waits for the KERNEL fences (a pending move's copy) and caches
the table in ``attach->sgt``; :func:`dma_buf_map_attachment` then returns that cached table and
:func:`dma_buf_unmap_attachment` leaves it alone; ``dma_buf_detach`` unmaps it and unpins. So the
:class:`StaticImporter` needs no move handling at all, only two duties that are the driver's own:

* implicit sync: its jobs depend on the resv's fences of the access (``dma_resv_usage_rw``) and add their
  own fence (READ or WRITE), so a dynamic importer's job or a later move (after unpin) waits for them;
* it waits for its own jobs before it detaches: the detach unmaps and unpins, after which the exporter may
  move the buffer and free the pages a still-running job would DMA into.

Kernel: a display or media driver's import (``drm_gem_prime_import_dev`` for a non-dynamic importer,
``dma_buf_attach`` + ``dma_buf_map_attachment_unlocked``), drivers/dma-buf/dma-buf.c v6.12
(``dma_buf_dynamic_attach`` caching hunk).
"""

from __future__ import annotations

import os
from typing import Any

from ..buf.core import (
    DmaBuf,
    DmaBufAttachment,
    dma_buf_attach,
    dma_buf_detach,
    dma_buf_map_attachment,
    dma_buf_unmap_attachment,
)
from ..buf.sg_table import DMA_BIDIRECTIONAL, SgTable
from ..kernel.errno import IS_ERR, PTR_ERR
from ..resv import Usage, usage_rw
from ..runtime import label_of
from .engine import GpuEngine, GpuJob

__all__ = ["StaticImporter"]


class StaticImporter:
    """A static importer of ``dmabuf`` whose device runs jobs on ``engine`` (see the module docstring).

    Args:
        wait_before_detach: wait for the jobs before detaching (False: the deliberate bug).

    Locking: every method takes the resv itself; call them without it.
    """

    def __init__(
        self, dmabuf: DmaBuf, engine: GpuEngine, dev: Any = "display", *, wait_before_detach: bool = True
    ) -> None:
        self.dmabuf = dmabuf.get()
        self.engine = engine
        self.dev = dev
        self.wait_before_detach = wait_before_detach
        self.jobs: list[GpuJob] = []
        self._dm_label = f"{dev}-importer"
        a = dma_buf_attach(dmabuf, dev)  # v6.12: pins, maps and caches for a dynamic exporter
        if IS_ERR(a):
            raise OSError(-PTR_ERR(a), f"dma_buf_attach: {os.strerror(-PTR_ERR(a))}")
        assert isinstance(a, DmaBufAttachment)
        self.attach: DmaBufAttachment = a
        with dmabuf.resv:
            sgt = dma_buf_map_attachment(a, DMA_BIDIRECTIONAL)
        if IS_ERR(sgt):
            dma_buf_detach(dmabuf, a)
            raise OSError(-PTR_ERR(sgt), f"dma_buf_map_attachment: {os.strerror(-PTR_ERR(sgt))}")
        assert isinstance(sgt, SgTable)
        self.sgt: SgTable = sgt

    def submit(self, off: int, data: bytes | None = None, n: int = 0) -> GpuJob:
        """Queue a job writing ``data`` at ``off`` (or reading ``n`` bytes into ``job.result``) through the
        mapping, after the implicit-sync fences; its fence goes in the resv. Returns the job."""
        write = data is not None
        resv = self.dmabuf.resv
        sgt = self.sgt
        with resv:
            resv.reserve_fences(1)
            deps = resv.get_fences(usage_rw(write))
            job = self.engine.submit_dma(
                deps, sgt, off, data, n, name=f"{self.dev}.{'write' if write else 'read'}{len(self.jobs) + 1}"
            )
            resv.add_fence(job.fence, Usage.WRITE if write else Usage.READ)
            self.jobs.append(job)
        return job

    def fini(self) -> None:
        """Wait for the jobs (unless the bug is on), unmap (a no-op for the cached table), detach (unmaps
        and unpins), drop the buffer reference."""
        if self.wait_before_detach:
            for j in self.jobs:
                j.fence.wait(False)
        with self.dmabuf.resv:
            dma_buf_unmap_attachment(self.attach, self.sgt, DMA_BIDIRECTIONAL)
        dma_buf_detach(self.dmabuf, self.attach)
        self.dmabuf.put()

    def __repr__(self) -> str:
        return f"<StaticImporter {label_of(self)} of {label_of(self.dmabuf)}>"
