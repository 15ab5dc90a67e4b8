"""H3: a move racing with a map whose mapping is recorded after the resv was dropped.

Daniel Vetter in the seed thread: "One thing that's tricky is races here, i.e. what if an ->invalidate from the
exporter races with a map from the importer. The usual way to solve these is by being really careful when you
publish a new $thing, in this case when we add the new mapping to whatever tracking list. If we quench all
these races with the ww_mutex in the reservation ...". v15 kerneldoc: "no mapping is created concurrently with
an ongoing move".

Steps: T1 (importer) locks the resv, maps -> S1, unlocks, and only then records S1 in its tracking; T2
(exporter) locks the resv, moves, ``move_notify``: the importer's tracking has no S1, nothing is retired;
T1 submits a job through S1 -> DMA to pages the move freed (``StaleMapping``). The careful importer maps and
records in one resv critical section (the base :class:`~.base.Importer`).

Both drivers check, in the critical section that submits the job, that the core has not declared the mapping
invalid (``sgt.invalidated_by``): under designs where the core tracks mappings (option 2/3) that check is the
contract's duty, and it is what closes the window there; under option 1 nobody but the importer knows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import spawn
from ..buf import SgTable
from ..errors import MappingInvalidated
from .base import Importer, Scenario, attached, finish, move_locked, register

__all__ = ["H3", "CarefulImporter", "NaiveImporter"]


class NaiveImporter(Importer):
    """Maps in one critical section ("prepare"), records the table after unlocking, and submits the job in a
    second critical section."""

    def submit(self) -> tuple[SgTable, Any]:
        if self.one_shot:
            # option 3: attach_and_map hands the mapping back after dropping the resv, so *every* importer
            # records it late; the core's kill flag, checked where the job is submitted, is the record
            return super().submit()
        while True:
            with self.buf.resv:
                sgt = self.sgt
                if sgt is None:
                    try:
                        sgt = self.attach.map()
                    except MappingInvalidated:  # a dead one-shot attachment (option 3)
                        sgt = None
            if sgt is None:
                self.reattach()
                continue
            self.sgt = sgt  # H3: published after the lock was dropped
            with self.buf.resv:
                cur = self.sgt
                if cur is not None and cur.invalidated_by is not None:  # the core says: dead (option 2/3)
                    self.sgt = None
                    self.retire(cur)
                    continue
                if cur is None:  # our handler retired it meanwhile: map again
                    continue
                return cur, self.add_job()


class CarefulImporter(Importer):
    """Maps and records in the same resv critical section (the base importer)."""


@register
class H3(Scenario):
    id = "H3"
    title = "map recorded after unlock"
    prop = "a mapping is tracked in the same resv critical section that creates it (no missed notify)"
    duty = "map and record under one resv lock"
    source = "Daniel Vetter in the seed thread (publish under the ww_mutex); v15 doc"

    def body(self, policy: str, variant: str) -> Callable[[], None]:
        cls = CarefulImporter if variant == "careful" else NaiveImporter

        def run() -> None:
            exp, imp = attached(policy, cls)

            t = spawn(move_locked, exp, name="exporter")
            imp.read_job()
            t.join()
            imp.teardown()
            finish(exp)

        return run
