"""A dynamic importer modelled on amdgpu's import path.

:class:`GpuImporter` attaches with ``move_notify`` (``dma_buf_dynamic_attach``, ``allow_peer2peer``) and
keeps, per attachment, the mapping its page tables use (``self.sgt``) and the fences of the jobs that used
it. All of that state is protected by the buffer's resv, which every path below holds:

* **move_notify** (called by the exporter with the resv held): the current mapping is invalidated at once
  (no new job will use it) and queued on ``invalidated`` with the fences of the jobs still using it; it is
  not unmapped yet, because those jobs may still be DMAing through it. Mirrors
  ``amdgpu_dma_buf_move_notify``: ``ttm_bo_validate`` to an empty placement (pipeline gutting keeps the old
  pages' mapping in a ghost until the BO's fences signalled) and ``amdgpu_vm_handle_moved`` (page tables
  cleared, re-filled on next use).
* **next use** (:meth:`GpuImporter.submit`, a command submission): take the resv; unmap the invalidated
  mappings whose jobs have completed (the ghost's delayed release); if no valid mapping, re-map with
  ``dma_buf_map_attachment`` under the resv (amdgpu: ``amdgpu_cs_validate`` -> ``ttm_bo_validate`` ->
  ``amdgpu_ttm_backend_bind`` -> ``dma_buf_map_attachment``); collect the job's dependencies from the resv:
  every KERNEL fence (the exporter's moves: the new mapping's pages are valid only once the copy finished)
  and the implicit-sync fences of the access (``dma_resv_usage_rw``); queue the job on the engine; add the
  job's fence to the resv with WRITE or READ usage (``amdgpu_cs_submit`` -> ``amdgpu_bo_fence`` /
  ``dma_resv_add_fence``), so any later move's copy waits for the job; unlock.
* :meth:`GpuImporter.fini`: wait for the jobs, unmap everything under the resv, detach (unlocked).

Deliberate bugs for the oracle (each a switch):

* ``wait_move_fence=False``: the job's dependencies leave out the KERNEL fences (the importer forgets to
  wait for the move) -> the job may DMA into the new placement before the copy reached it
  (``StaleContent``);
* ``add_job_fence=False``: the job fence is not added to the resv -> a move's copy does not wait for the
  job, which then writes old pages after they were copied (``LostWrite``) or freed (``StaleMapping``);
* ``unmap_in_move_notify=True``: move_notify unmaps at once while jobs may still use the mapping
  (``StaleMapping`` "after it was unmapped").

Kernel: drivers/gpu/drm/amd/amdgpu/amdgpu_dma_buf.c (``amdgpu_dma_buf_move_notify``,
``amdgpu_dma_buf_create_obj``), amdgpu_cs.c, include/linux/dma-buf.h (DYNAMIC IMPORTER RULES).
"""

from __future__ import annotations

import os
from typing import Any

from ..buf.core import (
    DmaBuf,
    DmaBufAttachment,
    dma_buf_detach,
    dma_buf_dynamic_attach,
    dma_buf_map_attachment,
    dma_buf_unmap_attachment,
)
from ..buf.ops import DmaBufAttachOps
from ..buf.sg_table import DMA_BIDIRECTIONAL, SgTable
from ..fence.fence import DmaFence
from ..kernel.errno import IS_ERR, PTR_ERR
from ..resv import DmaResvIter, Usage, usage_rw
from ..runtime import label_of
from .engine import GpuEngine, GpuJob

__all__ = ["GpuImporter"]


class GpuImporter:
    """A dynamic importer of ``dmabuf`` whose device runs jobs on ``engine`` (see the module docstring).

    Args:
        dmabuf: the buffer to import (a reference is taken and dropped at :meth:`fini`).
        engine: the device's ring.
        dev: the device (attachment label).
        wait_move_fence, add_job_fence, unmap_in_move_notify: the deliberate bugs (defaults: correct).

    Attributes:
        attach: the attachment; ``sgt``: the valid mapping or ``None``; ``invalidated``: ``(sgt, fences)``
        waiting for their jobs before unmap; ``maps``/``unmaps``/``notified``: counters for tests.

    Locking: :meth:`submit`, :meth:`prepare` and :meth:`fini` must be called without the resv (they take it);
    ``move_notify`` runs with it held (asserted).
    """

    def __init__(
        self,
        dmabuf: DmaBuf,
        engine: GpuEngine,
        dev: Any = "gpu",
        *,
        wait_move_fence: bool = True,
        add_job_fence: bool = True,
        unmap_in_move_notify: bool = False,
    ) -> None:
        self.dmabuf = dmabuf.get()
        self.engine = engine
        self.dev = dev
        self.wait_move_fence = wait_move_fence
        self.add_job_fence = add_job_fence
        self.unmap_in_move_notify = unmap_in_move_notify
        self.sgt: SgTable | None = None
        self.sgt_jobs: list[DmaFence] = []
        self.invalidated: list[tuple[SgTable, list[DmaFence]]] = []
        self.jobs: list[GpuJob] = []
        self.maps = 0
        self.unmaps = 0
        self.notified = 0
        self._dm_label = f"{dev}-importer"
        self.ops = DmaBufAttachOps(allow_peer2peer=True, move_notify=self._move_notify)
        a = dma_buf_dynamic_attach(dmabuf, dev, self.ops, self)
        if IS_ERR(a):
            raise OSError(-PTR_ERR(a), f"dma_buf_dynamic_attach: {os.strerror(-PTR_ERR(a))}")
        assert isinstance(a, DmaBufAttachment)
        self.attach: DmaBufAttachment = a

    # ------------------------------------------------------------------ move_notify
    def _move_notify(self, attach: DmaBufAttachment) -> None:
        """``amdgpu_dma_buf_move_notify``: invalidate the mapping (resv held)."""
        resv = attach._buf().resv
        resv.assert_held()
        self.notified += 1
        sgt = self.sgt
        if sgt is None:  # nothing mapped (H1): nothing to invalidate
            return
        self.sgt = None
        jobs, self.sgt_jobs = self.sgt_jobs, []
        if self.unmap_in_move_notify:  # BUG: jobs may still DMA through it
            self._unmap(sgt)
            return
        self.invalidated.append((sgt, jobs))

    # ------------------------------------------------------------------ helpers (resv held)
    def _unmap(self, sgt: SgTable) -> None:
        dma_buf_unmap_attachment(self.attach, sgt, DMA_BIDIRECTIONAL)
        self.unmaps += 1

    def _reap(self, wait: bool) -> None:
        """Unmap the invalidated mappings whose jobs completed (all of them after waiting, if ``wait``)."""
        keep: list[tuple[SgTable, list[DmaFence]]] = []
        for sgt, jobs in self.invalidated:
            if wait:
                for f in jobs:
                    f.wait(False)
            elif not all(f.is_signaled() for f in jobs):
                keep.append((sgt, jobs))
                continue
            self._unmap(sgt)
        self.invalidated = keep

    def _validate(self) -> int:
        """Re-map on use: a valid mapping for the next job. Resv held."""
        if self.sgt is None:
            sgt = dma_buf_map_attachment(self.attach, DMA_BIDIRECTIONAL)
            if IS_ERR(sgt):
                return PTR_ERR(sgt)
            assert isinstance(sgt, SgTable)
            self.sgt = sgt
            self.maps += 1
        return 0

    def _deps(self, write: bool) -> list[DmaFence]:
        """The job's dependencies, with references: KERNEL fences (moves) and implicit-sync fences."""
        resv = self.dmabuf.resv
        deps: list[DmaFence] = []
        cursor = DmaResvIter()
        cursor.begin(resv, usage_rw(write))
        f = cursor.first()
        while f is not None:
            if self.wait_move_fence or cursor.fence_usage != Usage.KERNEL:
                deps.append(f.get())
            f = cursor.next()
        return deps

    # ------------------------------------------------------------------ API
    def prepare(self) -> None:
        """Map now (what a first command submission does), without submitting a job."""
        with self.dmabuf.resv:
            self._reap(False)
            ret = self._validate()
        if ret:
            raise OSError(-ret, f"dma_buf_map_attachment: {os.strerror(-ret)}")

    def submit(self, off: int, data: bytes | None = None, n: int = 0) -> GpuJob:
        """A command submission: a job that writes ``data`` at ``off`` (or, with ``data=None``, reads ``n``
        bytes: ``job.result``) through the valid mapping, queued on the engine. Returns the job.

        Raises:
            OSError: mapping failed.
        """
        write = data is not None
        resv = self.dmabuf.resv
        with resv:
            self._reap(False)
            ret = self._validate()
            if ret:
                raise OSError(-ret, f"dma_buf_map_attachment: {os.strerror(-ret)}")
            sgt = self.sgt
            assert sgt is not None
            resv.reserve_fences(1)
            deps = self._deps(write)
            job = self.engine.submit_dma(
                deps, sgt, off, data, n, name=f"{self.dev}.{'write' if write else 'read'}{len(self.jobs) + 1}"
            )
            if self.add_job_fence:
                resv.add_fence(job.fence, Usage.WRITE if write else Usage.READ)
            self.sgt_jobs.append(job.fence)
            self.jobs.append(job)
        return job

    def wait_idle(self) -> None:
        """Wait for every job this importer submitted (unlocked)."""
        for j in self.jobs:
            j.fence.wait(False)

    def fini(self) -> None:
        """Wait for the jobs, unmap every mapping under the resv, detach, drop the buffer reference."""
        self.wait_idle()
        with self.dmabuf.resv:
            self._reap(True)
            if self.sgt is not None:
                self._unmap(self.sgt)
                self.sgt = None
                self.sgt_jobs = []
        dma_buf_detach(self.dmabuf, self.attach)
        self.dmabuf.put()

    def __repr__(self) -> str:
        return f"<GpuImporter {label_of(self)} sgt={label_of(self.sgt) if self.sgt else None} {len(self.invalidated)} invalidated>"
