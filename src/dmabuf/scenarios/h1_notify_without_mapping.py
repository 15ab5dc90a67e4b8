"""H1: ``move_notify`` on an attachment that has no mapping.

"It would help in making it clear you get the callback even when there's no mapping to invalidate for you"
(Daniel Vetter, 2019-06-25, seed thread). Real instances: an importer whose ``importer_priv`` is still NULL;
mlx5's ``if (!umem_dmabuf->sgt) return``.

Steps: the importer attaches (no map yet); the exporter, racing with the importer's first job, locks the resv,
moves the buffer and calls ``dma_buf_move_notify``; the naive handler assumes there is a mapping and unmaps
it -> ``dma_buf_unmap_attachment(attach, NULL, ...)``, the kernel's WARN (a NULL dereference in older
kernels). Property: the handler is total over {unmapped, mapped, invalidated}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import spawn
from ..buf import DMA_BIDIRECTIONAL
from ..buf.core import dma_buf_unmap_attachment
from .base import Importer, Scenario, attached, contract_of, finish, move_locked, register

__all__ = ["H1", "CarefulImporter", "NaiveImporter"]


class NaiveImporter(Importer):
    """Tracks its mapping, and believes a notification means "your mapping moved"."""

    def move_notify(self, attach: Any) -> None:
        self.notified += 1
        for f in self.jobs:  # H6 done right: the old mapping outlives the jobs using it
            f.wait()
        dma_buf_unmap_attachment(attach, self.sgt, DMA_BIDIRECTIONAL)  # self.sgt may be None
        self.sgt = None


class CarefulImporter(Importer):
    """The base importer's handler: ``if self.sgt is None: return`` (nothing mapped, nothing to do)."""


@register
class H1(Scenario):
    id = "H1"
    title = "notify without a mapping"
    prop = "the move_notify handler is total over {unmapped, mapped, invalidated}"
    duty = "ignore notify when nothing is mapped"
    source = "Daniel Vetter 2019-06-25 (seed thread); design-hazards.md H1"

    def applicable(self, policy: Any) -> str | None:
        if contract_of(policy).kills_attachment:
            return ("attach and map are one call (attach_and_map), so an attachment never exists without its "
                    "mapping, and a killed one is never notified again")
        return None

    def body(self, policy: str, variant: str) -> Callable[[], None]:
        cls = CarefulImporter if variant == "careful" else NaiveImporter

        def run() -> None:
            exp, imp = attached(policy, cls)  # 1. attached, nothing mapped

            t = spawn(move_locked, exp, name="exporter")  # 2. the exporter moves whenever it likes
            imp.read_job()  # the importer's first job maps -- before or after the move
            t.join()
            imp.teardown()
            finish(exp)

        return run
