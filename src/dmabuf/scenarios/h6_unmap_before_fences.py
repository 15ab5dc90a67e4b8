"""H6: an invalidated mapping unmapped while the importer's own job still DMAs through it.

Christian König, 2018-03-13 (invalidate_mappings v1 review): "Even after invalidation the sg list stays alive
until it is explicitly destroyed by the importer using dma_buf_unmap_attachment() which in turn is only allowed
after all fences have signaled ... multiple sg list could exists at the same time." Daniel Vetter: "You can't
throw the sg list away before the dma stopped." Real instance I2 of design-hazards.md. The v15 kerneldoc of
``dma_buf.resv`` (DYNAMIC IMPORTER RULES) puts it as: importers "must add fences for any access they cannot
stop immediately from move_notify", and may only unmap once those fences signalled.

Steps: the importer submits job J through S1 (its fence F is in the resv); the exporter locks the resv, moves
(its copy, fence M, waits for F) and calls ``dma_buf_move_notify``; the naive handler unmaps S1 at once, while
J's DMA still runs -> the device reads through an unmapped table (``StaleMapping``: in the kernel, IOMMU faults
or DMA to pages the exporter already recycled). The careful handler waits for its job fences before unmapping
(the base :class:`~.base.Importer`'s ``retire``).

Per design:

* options 1, 2, 5: the handler is where the naive importer unmaps (option 2's core invalidates, but unmapping
  stays the importer's call and the core does not delay it).
* option 3 (``one-shot-attachments``): the handler cannot unmap (``dma_buf_unmap_and_detach`` takes the resv),
  so the dead attachment goes to a release worker -- Daniel's own suggestion in the seed thread, "a small
  helper which puts all these unmaps onto a list with a worker". The naive worker tears down at once; the
  careful one waits for the jobs first.
* option 4 (``exporter-tracks``): the contract *is* "unmap from the callback at once"; the exporter keeps the
  old pages until the resv's fences signalled, and the unmapped table stays usable for the jobs in flight at
  the unmap ("exporter needs to obey the current fences attached to the resv_obj").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import spawn
from ..buf import SgTable
from .base import Importer, Scenario, attached, finish, move_locked, register

__all__ = ["H6", "CarefulImporter", "NaiveImporter"]


class NaiveImporter(Importer):
    """Tears its mapping down as soon as it hears of the move, without looking at its jobs."""

    #: the release worker of a one-shot importer (option 3), spawned by the handler
    worker: Any = None

    def move_notify(self, attach: Any) -> None:
        self.notified += 1
        if self.one_shot:
            # option 3: the handler runs with the resv held and unmap_and_detach takes it: defer to a worker
            if self.worker is None:
                self.worker = spawn(self.release_dead, name="release")
            return
        sgt, self.sgt = self.sgt, None
        if sgt is not None:
            self.retire(sgt)

    def retire(self, sgt: SgTable) -> None:
        """H6: unmap now -- J may still be running."""
        if sgt.unmapped_by is None:
            self.attach.unmap(sgt)

    def release_dead(self) -> None:
        """Option 3's release worker: unmap_and_detach the dead attachment (resv not held)."""
        sgt, self.sgt = self.sgt, None
        a, self.attach = self.attach, None
        if a is not None and sgt is not None:
            a.unmap_and_detach(sgt)

    def join_worker(self) -> None:
        if self.worker is not None:
            self.worker.join()


class CarefulImporter(NaiveImporter):
    """Waits for its own job fences before an invalidated mapping goes (in the handler, or in the worker)."""

    def retire(self, sgt: SgTable) -> None:
        Importer.retire(self, sgt)  # for f in jobs: f.wait(); then unmap

    def release_dead(self) -> None:
        for f in self.jobs:
            f.wait()
        super().release_dead()


@register
class H6(Scenario):
    id = "H6"
    title = "unmap before the jobs' fences"
    prop = "an invalidated mapping is unmapped only after the fences of the jobs using it signalled"
    duty = "wait for your job fences before unmapping"
    source = "Christian König / Daniel Vetter 2018-03-13 (invalidate_mappings v1); v15 dma_buf.resv doc"

    def body(self, policy: str, variant: str) -> Callable[[], None]:
        cls = CarefulImporter if variant == "careful" else NaiveImporter

        def run() -> None:
            exp, imp = attached(policy, cls)
            sgt, job = imp.submit()  # 1. job J through S1, its fence F in the resv

            t = spawn(move_locked, exp, name="exporter")  # 2. the exporter moves (the copy waits for F) and notifies
            sgt.dma_read(0, 4)  # 3. J's DMA, racing with the handler's unmap
            job.signal()
            t.join()
            imp.join_worker()
            imp.teardown()
            finish(exp)

        return run
