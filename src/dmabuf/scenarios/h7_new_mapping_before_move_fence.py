"""H7: a new mapping used before the move fence signalled.

v1/v2 of "dma-buf: add optional invalidate_mappings callback" (2018): "New mappings can be created immediately,
but can't be used before the exclusive fence in the dma_bufs reservation object is signaled." The v6.12
kerneldoc keeps the rule for dynamic importers (``dma_buf.resv``, DYNAMIC IMPORTER RULES: they must wait for
the KERNEL/exclusive fences before device access); only *static* importers get the wait from the core
(``__map_dma_buf``). Real instance: RDMA's ``ib_umem_dmabuf_map_pages()`` -- "the content of the pages may be
not up-to-date. Wait for the exporter to finish the migration" (drivers/infiniband/core/umem_dmabuf.c).

Steps: the exporter locks the resv, moves (new placement current at once, the copy runs asynchronously and
signals the move fence M, added with KERNEL usage), ``dma_buf_move_notify``; the importer's next job re-maps
-> S2 points at the new pages -- and DMAs through S2 before M signalled: it reads pages the copy has not
filled yet (``StaleContent``: stale data at the right address). The careful importer waits for the KERNEL
fences in the critical section that submits the job (the base :class:`~.base.Importer`'s ``add_job``).

No design changes this: every one of the five lets a dynamic importer map the new placement at once and none
makes the core wait for the move fence on its behalf (option 3's ``dma_buf_attach_and_map`` maps like
``dma_buf_map_attachment`` does for a dynamic importer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..resv import Usage
from .base import Importer, Scenario, attached, finish, make_fence, move_locked, register

__all__ = ["H7", "CarefulImporter", "NaiveImporter"]


class NaiveImporter(Importer):
    """Submits its job as soon as it has a mapping: "the mapping points at the new location, so it is good"."""

    def add_job(self) -> Any:
        job = make_fence()  # no dma_resv_wait(KERNEL): the move's copy may still be running
        self.buf.resv.reserve_fences(1)
        self.buf.resv.add_fence(job, Usage.READ)
        self.jobs.append(job)
        return job


class CarefulImporter(Importer):
    """The base importer: waits for the resv's KERNEL fences (the move's copy) before its DMA may start."""


@register
class H7(Scenario):
    id = "H7"
    title = "new mapping used before the move fence"
    prop = "DMA through a new mapping starts only after the KERNEL (move) fences signalled: no stale content"
    duty = "wait for the KERNEL fences before using a new mapping"
    source = "invalidate_mappings v1/v2 doc (2018); v6.12 dma_buf.resv DYNAMIC IMPORTER RULES; RDMA umem_dmabuf"

    def body(self, policy: str, variant: str) -> Callable[[], None]:
        cls = CarefulImporter if variant == "careful" else NaiveImporter

        def run() -> None:
            exp, imp = attached(policy, cls)
            imp.read_job()  # S1: the old placement (retired by the handler after this job's fence)
            # 1. the exporter moves: new placement current now, its copy (fence M) runs on its own task;
            # dma_buf_move_notify
            move_locked(exp)
            imp.read_job()  # 2./3. re-map -> S2 (the new pages) and DMA, racing with the copy
            imp.teardown()
            finish(exp)

        return run
