"""H8: a second invalidation of a mapping the importer has already invalidated (and not yet torn down).

Daniel Vetter's option 1 (seed thread, 2019-06-25): "Importer needs to keep track of all its mappings and
filter out invalidates that aren't for that specific importer (either because already invalidated, or not yet
mapped, or whatever). Feels fragile." And on option 4: "Not sure this would actually solve anything because of
the double-invalidate thing."

Steps: the importer holds S1; move #1 -> ``move_notify`` -> the handler marks S1 invalid and schedules its
unmap for after the job fences (it does not block in the callback); move #2 comes before the importer's next
job -> ``move_notify`` again -> the naive handler schedules S1 a second time; the next job's deferred teardown
unmaps S1 twice (``UsageError``: a double free of the sg_table in the kernel). The careful handler is
idempotent: a mapping already marked invalid is ignored.

Per design (the naive driver follows its design's contract):

* options 1 and 5: every dynamic attachment is notified on every move: the filter is the importer's duty.
* option 2: the core notifies only attachments with a live mapping *not yet invalidated*, so move #2 is not
  sent for S1 (one-shot invalidation).
* option 3: move #1 kills the attachment; a killed attachment is never notified again. The naive one-shot
  importer schedules the dead attachment for ``dma_buf_unmap_and_detach`` (outside the resv, at its next use).
* option 4: the contract is "unmap from the callback", which the naive driver does (no deferred list); the
  attachment then has no mapping and the exporter does not notify it for move #2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import spawn
from ..buf import SgTable
from .base import Importer, Scenario, attached, finish, move_locked, register

__all__ = ["H8", "CarefulImporter", "NaiveImporter"]


class NaiveImporter(Importer):
    """Marks an invalidated mapping and puts it on a deferred-unmap list, done at the next job (after the
    job fences); re-maps then. Every notification puts the current mapping on the list."""

    idempotent = False

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.valid = False
        #: (attachment, mapping) pairs scheduled for teardown after our jobs' fences
        self.doomed: list[tuple[Any, SgTable | None]] = []
        #: option 3: the table of each one-shot attachment we made
        self.one_shot_sgt: dict[Any, SgTable | None] = {}

    # -- the callback (resv held)
    def move_notify(self, attach: Any) -> None:
        self.notified += 1
        if self.contract.exporter_delays_free:
            # option 4's contract: unmap from the callback (the exporter keeps the pages for in-flight jobs)
            super().move_notify(attach)
            return
        if self.one_shot:
            # option 3: the attachment is dead; unmap_and_detach needs the resv dropped: schedule it
            if self.idempotent and any(a is attach for a, _ in self.doomed):
                return
            self.doomed.append((attach, None))  # its table: the one attach_and_map handed us for it
            return
        sgt = self.sgt
        if sgt is None:  # nothing mapped (H1 done right)
            return
        if self.idempotent and not self.valid:  # H8: already invalidated, already scheduled
            return
        self.valid = False
        self.doomed.append((attach, sgt))

    # -- deferred teardown
    def flush_locked(self) -> None:
        """Resv held: unmap every scheduled mapping once our jobs are done."""
        if not self.doomed:
            return
        for f in self.jobs:
            f.wait()
        doomed, self.doomed = self.doomed, []
        for a, sgt in doomed:
            if sgt is self.sgt:
                self.sgt = None
            if sgt is not None:
                a.unmap(sgt)  # a second unmap of the same table: double free

    def flush_one_shot(self) -> None:
        """Resv not held (option 3): unmap_and_detach every scheduled dead attachment."""
        if not self.doomed:
            return
        for f in self.jobs:
            f.wait()
        doomed, self.doomed = self.doomed, []
        for a, _ in doomed:
            if a is self.attach:
                self.attach, self.sgt = None, None
            a.unmap_and_detach(self.one_shot_sgt[a])  # a second teardown of one attachment: double free

    def attach_and_map(self) -> None:
        super().attach_and_map()
        # attach_and_map returns after dropping the resv, so a move may already have killed (and notified)
        # this attachment: remember its table for the deferred teardown
        self.one_shot_sgt[self.attach] = self.sgt

    def current_mapping(self) -> SgTable:
        self.flush_locked()
        if self.sgt is not None and not self.valid:
            self.sgt = None
        sgt = super().current_mapping()
        self.valid = True
        return sgt

    def submit(self) -> tuple[SgTable, Any]:
        if self.one_shot:
            self.flush_one_shot()
        return super().submit()

    def teardown(self) -> None:
        if self.one_shot:
            self.flush_one_shot()
        elif self.doomed:
            with self.buf.resv:
                self.flush_locked()
        super().teardown()


class CarefulImporter(NaiveImporter):
    """Also filters notifications for a mapping (attachment) it has already invalidated."""

    idempotent = True


@register
class H8(Scenario):
    id = "H8"
    title = "double invalidate"
    prop = "a second notification for an already invalidated mapping does not tear it down twice"
    duty = "ignore notify for an already invalidated mapping"
    source = "Daniel Vetter 2019-06-25 (seed thread, options 1 and 4)"

    def body(self, policy: str, variant: str) -> Callable[[], None]:
        cls = CarefulImporter if variant == "careful" else NaiveImporter

        def run() -> None:
            exp, imp = attached(policy, cls)
            imp.read_job()  # S1 mapped, its job done
            move_locked(exp)  # move #1 -> notify: S1 invalidated, its unmap deferred to the next job

            t = spawn(imp.read_job, name="importer")  # the next job: deferred teardown, then re-map
            move_locked(exp, "VRAM")  # move #2, at any time -- maybe before the importer re-mapped
            t.join()
            imp.teardown()
            finish(exp)

        return run
