"""H10: revocation while the importer defers its unmap to a worker that needs the resv -> deadlock.

The revoke flow as restated in 2026 (Leon Romanovsky, ``dma_buf_attach_revocable``): lock the resv; mark the
buffer revoked; ``dma_buf_invalidate_mappings()`` (the renamed ``dma_buf_move_notify``);
``dma_resv_wait_timeout(BOOKKEEP)``; then wait until every importer has unmapped -- "effectively unbounded"
for importers that do not unmap from the callback. The io_uring importer test harness
(anuj7781/linux-kernel, include/uapi/linux/fake_gpu_dmabuf.h) has an exporter mode "INVAL_AND_HOLD" that keeps
the resv after the invalidation while its importer's asynchronous release worker needs that resv to unmap.

Steps: importer job J runs through S1 (fence F in the resv); T1, the exporter, locks the resv, marks the
buffer revoked, invalidates, waits for the fences (F) and -- still holding the resv -- waits for the
importers' unmaps. The naive importer's callback hands S1 to a release worker T2 (it does not block in the
callback); T2 waits for F, then needs the resv for ``dma_buf_unmap_attachment`` -> T1 waits for T2, T2 for
T1's resv: DEADLOCK. The careful importer completes the invalidation synchronously in the callback, under the
resv the exporter already holds (waits for its job fences, unmaps: the base :class:`~.base.Importer`).

Per design, what the revoking exporter must wait for before the revocation is complete:

* options 1, 5 (the importer tracks): only the importer's unmap tells the exporter that no mapping is left, so
  it waits for the unmaps (held resv: the INVAL_AND_HOLD exporter).
* option 4 (the exporter tracks): the same wait, on its own bookkeeping -- but the contract says the importer
  unmaps *from the callback*, so the naive importer already does what the careful one does.
* options 2 and 3 (the core invalidates): once ``move_notify`` returned, the core refuses every new use of the
  invalidated mappings / killed attachments, and the fence wait covers the jobs in flight, so the revocation is
  complete without waiting for unmaps; the deferred release runs after the exporter unlocked. (Option 3's
  importer cannot unmap in the callback at all: ``dma_buf_unmap_and_detach`` takes the resv.)

An exporter that drops the resv before waiting for the unmaps (Leon's order) avoids the deadlock but not the
unbounded wait; the scenario keeps the holding exporter, as the hazard is about the importer's callback.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from .. import spawn
from ..buf import MemoryExporter, SgTable
from ..buf.core import dma_buf_move_notify
from ..kernel.errno import ERR_PTR
from ..kernel.waitqueue import WaitQueueHead
from ..resv import Usage
from .base import Importer, Scenario, attached, contract_of, finish, register

__all__ = ["H10", "CarefulImporter", "NaiveImporter", "RevokingExporter"]


class RevokingExporter(MemoryExporter):
    """An exporter that can revoke access to its buffer (a device going away, a VFIO BAR being reset)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.revoked = False
        self.unmapped = WaitQueueHead(f"{self.bo.name}.unmapped")

    def map_dma_buf(self, attach: Any, direction: int) -> Any:
        if self.revoked:
            return ERR_PTR(-errno.ENODEV)
        return super().map_dma_buf(attach, direction)

    def unmap_dma_buf(self, attach: Any, sgt: Any, direction: int) -> None:
        super().unmap_dma_buf(attach, sgt, direction)
        self.unmapped.wake_up()

    def revoke(self) -> None:
        # the design decides whether the revocation is complete once the core invalidated the mappings
        wait_for_unmaps = not contract_of(self.buf.policy).core_invalidates
        with self.buf.resv:
            self.revoked = True
            dma_buf_move_notify(self.buf)  # dma_buf_invalidate_mappings()
            self.buf.resv.wait(Usage.BOOKKEEP)  # dma_resv_wait_timeout(BOOKKEEP): the jobs in flight
            if wait_for_unmaps:  # INVAL_AND_HOLD: every mapping handed out comes back, resv still held
                self.unmapped.wait_event(lambda: self.unmaps == self.maps)


class NaiveImporter(Importer):
    """Does not block in its callback: the invalidated mapping goes to an asynchronous release worker, which
    waits for the jobs using it and then unmaps (taking the resv)."""

    worker: Any = None

    def move_notify(self, attach: Any) -> None:
        self.notified += 1
        if self.contract.exporter_delays_free:
            super().move_notify(attach)  # option 4's contract: unmap from the callback
            return
        if self.one_shot:
            sgt = None  # option 3: the dead attachment goes with dma_buf_unmap_and_detach, in the worker
        else:
            sgt, self.sgt = self.sgt, None
            if sgt is None:
                return
        if self.worker is None:
            self.worker = spawn(self.release, sgt, name="release")

    def release(self, sgt: SgTable | None) -> None:
        """The release worker (resv not held)."""
        for f in self.jobs:
            f.wait()
        if self.one_shot:
            self.teardown()
            return
        with self.buf.resv:
            if sgt is not None and sgt.unmapped_by is None:
                self.attach.unmap(sgt)

    def join_worker(self) -> None:
        if self.worker is not None:
            self.worker.join()


class CarefulImporter(NaiveImporter):
    """Completes the invalidation in the callback, under the resv the exporter holds: wait for its job
    fences, unmap (the base importer). Option 3 cannot unmap there and keeps the worker."""

    def move_notify(self, attach: Any) -> None:
        if self.one_shot:
            super().move_notify(attach)
            return
        Importer.move_notify(self, attach)


@register
class H10(Scenario):
    id = "H10"
    title = "revoke vs deferred unmap"
    prop = "revocation completes: no exporter waiting under the resv for an unmap that needs the resv (no deadlock)"
    duty = "unmap synchronously in move_notify"
    source = "Leon Romanovsky 2026 (dma_buf_attach_revocable); fake_gpu_dmabuf INVAL_AND_HOLD harness"

    def body(self, policy: str, variant: str) -> Callable[[], None]:
        cls = CarefulImporter if variant == "careful" else NaiveImporter

        def run() -> None:
            exp, imp = attached(policy, cls, RevokingExporter)
            sgt, job = imp.submit()  # job J through S1, fence F in the resv
            t = spawn(exp.revoke, name="exporter")  # 1. lock, revoke, invalidate, wait (resv held)
            sgt.dma_read(0, 4)  # J's DMA, then F signals
            job.signal()
            t.join()
            imp.join_worker()  # 2./3. the release worker's unmap
            imp.teardown()
            finish(exp)

        return run
