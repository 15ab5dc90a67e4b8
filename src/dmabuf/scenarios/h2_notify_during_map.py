"""H2: ``move_notify`` re-entering the importer from inside its own map call.

v2 of "dma-buf: add optional invalidate_mappings callback" (Mar 2018) removed the caller's attachment from the
list during ``map_dma_buf``: "Mapping a DMA-buf can trigger its invalidation, prevent sending this event to the
caller"; v11 of the dynamic dma-buf series dropped it ("drop automatically re-entry avoidance"), so importers
must cope. Christian König in the seed thread: "In the importer I need to ignore invalidations which are caused
by creating a mapping. Otherwise it is perfectly possible that we invalidate a mapping because of its creation
which will result in creating a new one...."

Steps: the importer's device (``"nic"``) cannot reach VRAM, so the exporter's ``map_dma_buf`` first migrates the
buffer to GTT and calls ``dma_buf_move_notify`` -- with the resv the importer holds for its map. The naive
importer keeps a mapping ready at all times: its handler retires the old mapping and maps again at once. Nested
inside its own map, that handler maps a second time and publishes it; the outer map then overwrites the
published table, and one mapping is never unmapped (the oracle's leak check in :func:`~.base.finish`). The
careful importer ignores notifications while it is inside its own map (what the v2 core did for it).
Property: the mapping returned must not be torn down or shadowed by the nested call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..buf import MemoryExporter, SgTable
from .base import Importer, Scenario, attached, contract_of, finish, register

__all__ = ["H2", "CarefulImporter", "MigratingExporter", "NaiveImporter"]


class MigratingExporter(MemoryExporter):
    """An exporter whose ``map_dma_buf`` first moves the buffer where the device can reach it (VRAM is not
    reachable by ``"nic"``: no peer-to-peer) -- a move, hence a ``move_notify``, from inside a map."""

    def map_dma_buf(self, attach: Any, direction: int) -> Any:
        if attach.dev == "nic" and self.bo.placement.domain.name == "VRAM":
            self.move("GTT")  # resv held by the importer's map; notifies every attachment the policy picks
        return super().map_dma_buf(attach, direction)


class NaiveImporter(Importer):
    """Keeps a mapping ready: on every notification, retire the old one and map the new placement now."""

    dev = "nic"

    def move_notify(self, attach: Any) -> None:
        self.notified += 1
        old, self.sgt = self.sgt, None
        if old is not None:
            self.retire(old)
        self.sgt = attach.map()


class CarefulImporter(NaiveImporter):
    """Also ignores a notification raised by its own map call: the table being made already points at the
    new placement."""

    in_map = False

    def current_mapping(self) -> SgTable:
        self.in_map = True
        try:
            return super().current_mapping()
        finally:
            self.in_map = False

    def move_notify(self, attach: Any) -> None:
        if self.in_map:
            self.notified += 1
            return
        super().move_notify(attach)


@register
class H2(Scenario):
    id = "H2"
    title = "notify re-enters the importer's map"
    prop = "a notification caused by the importer's own map must not tear down or shadow the new mapping"
    duty = "ignore notify raised by your own map"
    source = "v2 2018-03 (re-entry avoidance), dropped in v11; Christian König in the seed thread"

    def applicable(self, policy: Any) -> str | None:
        if contract_of(policy).kills_attachment:
            return ("the attachment joins the list only together with its mapping (attach_and_map), so a move "
                    "made inside that call cannot be notified to it; nor can a handler map (it takes the resv)")
        return None

    def body(self, policy: str, variant: str) -> Callable[[], None]:
        cls = CarefulImporter if variant == "careful" else NaiveImporter

        def run() -> None:
            exp, imp = attached(policy, cls, MigratingExporter)
            imp.read_job()  # map: the exporter migrates VRAM -> GTT inside it, with the resv held
            imp.teardown()
            finish(exp)

        return run
