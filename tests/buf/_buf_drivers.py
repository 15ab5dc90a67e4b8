"""Importers and small helpers shared by the dma-buf tests."""

from __future__ import annotations

from typing import Any

from dmabuf.buf import DmaBufAttachOps, SgTable


class TrackingImporter:
    """A correct dynamic importer (mainline): records its mapping under the resv, drops it on move_notify
    (after the job's fences, which the move waited for), re-maps on next use."""

    def __init__(self) -> None:
        self.sgt: SgTable | None = None
        self.notified = 0
        self.ops = DmaBufAttachOps(move_notify=self.move_notify)
        self.attach: Any = None
        self.jobs: list[Any] = []

    def move_notify(self, attach: Any) -> None:
        self.notified += 1
        if self.sgt is not None:  # H1: total over unmapped/mapped
            for f in self.jobs:  # H6: the old mapping lives until the jobs using it are done
                f.wait()
            attach.unmap(self.sgt)
            self.sgt = None

    def mapping(self) -> SgTable:
        """Resv held: the current mapping (map if needed)."""
        if self.sgt is None:
            self.sgt = self.attach.map()
        assert self.sgt is not None
        return self.sgt


