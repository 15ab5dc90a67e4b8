"""Exporters, importers and bodies shared by the policy tests."""

from __future__ import annotations

from typing import Any

import dmabuf
from dmabuf.buf import DmaBufAttachOps, MemoryExporter, SgTable, check_all
from dmabuf.resv import Usage
from dmabuf.scenarios.base import make_fence, move_locked


class ReentrantExporter(MemoryExporter):
    """A MemoryExporter whose ``map_dma_buf`` first moves the buffer to ``move_on_map`` (once), the re-entry
    case of H2: the move's ``dma_buf_move_notify`` runs inside the importer's own map call."""

    move_on_map: str | None = None

    def map_dma_buf(self, attach: Any, direction: int) -> Any:
        dom, self.move_on_map = self.move_on_map, None
        if dom is not None:
            self.move(dom)
        return super().map_dma_buf(attach, direction)


class Importer:
    """A correct dynamic importer for notification-per-attachment designs (options 1, 2, 5): one tracked
    mapping, mapped under the resv, dropped on move_notify. It asserts it is never notified while inside its
    own map call when ``no_reentry`` (option 5's guarantee)."""

    def __init__(self, *, no_reentry: bool = False) -> None:
        self.sgt: SgTable | None = None
        self.attach: Any = None
        self.notified = 0
        self.in_map = False
        self.no_reentry = no_reentry
        self.ops = DmaBufAttachOps(move_notify=self.move_notify)

    def move_notify(self, attach: Any) -> None:
        self.notified += 1
        if self.no_reentry:
            assert not self.in_map, "notified inside its own map call"
        if self.sgt is not None:
            attach.unmap(self.sgt)
            self.sgt = None

    def mapping(self) -> SgTable:
        """Resv held: the current mapping, mapped if needed (and waited for: H7)."""
        if self.sgt is None:
            self.in_map = True
            try:
                sgt = self.attach.map()
            finally:
                self.in_map = False
            self.sgt = sgt
        self.attach.dmabuf.resv.wait(Usage.KERNEL)
        assert self.sgt is not None
        return self.sgt

    def release(self) -> None:
        buf = self.attach.dmabuf
        with buf.resv:
            if self.sgt is not None:
                self.attach.unmap(self.sgt)
                self.sgt = None
        self.attach.detach()


def race_body(policy: str, make_importer: Any, *, reentrant: bool = False, writes: int = 2) -> Any:
    """Importer thread writes through its mapping ``writes`` times (each under the resv) while the exporter
    evicts the buffer once (under the resv); with ``reentrant`` the exporter may also move inside the
    importer's first map. Ends with the data oracle's "no byte lost"."""

    def body() -> None:
        exp = ReentrantExporter(8, "VRAM", policy=policy, name="A")
        buf = exp.buf
        if reentrant:
            exp.move_on_map = "SYSTEM"
        imp = make_importer()
        imp.attach = buf.attach("gpu", imp.ops)

        def work() -> None:
            for i in range(writes):
                with buf.resv:
                    imp.mapping().dma_write(4 * (i % 2), bytes([0x10 + i] * 4))

        t1 = dmabuf.spawn(work, name="importer")
        t2 = dmabuf.spawn(move_locked, exp, name="evict")
        t1.join()
        t2.join()
        imp.release()
        check_all()
        buf.put()

    return body


def add_job_fence(buf: Any, usage: Usage = Usage.WRITE) -> Any:
    """Resv held: a job's fence added to ``buf.resv``."""
    f = make_fence()
    buf.resv.reserve_fences(1)
    buf.resv.add_fence(f, usage)
    return f
