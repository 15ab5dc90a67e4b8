"""Option 3, ``one-shot-attachments``: attach_and_map / unmap_and_detach; a move kills the attachment."""

from __future__ import annotations

from typing import Any

import pytest
from _policy_drivers import ReentrantExporter, add_job_fence

import dmabuf
from dmabuf.buf import DmaBufAttachOps, MemoryExporter, check_all
from dmabuf.errors import KernelWarning, MappingInvalidated, UsageError
from dmabuf.kernel import DMA_BIDIRECTIONAL, ERR_PTR, dma_buf_attach_and_map, dma_buf_unmap_and_detach
from dmabuf.policies.one_shot_attachments import RULE_KILLED, RULE_MAP, RULE_UNMAP, RULE_USE, is_killed
from dmabuf.resv import Usage
from dmabuf.scenarios.base import move_locked

P = "one-shot-attachments"


def test_kill_on_move_notify_once(run_on: Any) -> None:
    def body() -> None:
        exp = MemoryExporter(8, "VRAM", policy=P)
        buf = exp.buf
        seen: list[str] = []
        a, s = buf.attach_and_map("A", DmaBufAttachOps(move_notify=lambda at: seen.append("A")))
        hint = buf.attach("H", DmaBufAttachOps(move_notify=lambda at: seen.append("H")))  # placement hint
        with buf.resv:
            buf.resv.wait(Usage.KERNEL)
            assert s.dma_read(0, 8) == bytes(range(1, 9))
            exp.move("GTT")
            assert is_killed(a)
            exp.move("SYSTEM")  # a dead attachment is not notified again (H8)
        assert seen == ["A"]  # the hint has no mapping: never notified
        with pytest.raises(MappingInvalidated, match=RULE_USE):
            s.dma_read(0, 4)
        with buf.resv:
            with pytest.raises(MappingInvalidated, match=RULE_KILLED):
                a.map()  # a killed attachment can never be mapped again
            with pytest.raises(UsageError, match=RULE_MAP):
                hint.map()  # dynamic importers map only with attach_and_map
            with pytest.raises(UsageError, match=RULE_UNMAP):
                a.unmap(s)
        a.unmap_and_detach(s)
        a2, s2 = buf.attach_and_map("A", DmaBufAttachOps(move_notify=lambda at: seen.append("A2")))
        with buf.resv:
            buf.resv.wait(Usage.KERNEL)
            assert s2.dma_read(0, 8) == bytes(range(1, 9))
        a2.unmap_and_detach(s2)
        hint.detach()
        check_all()
        buf.put()

    run_on(body, strategy="dpor", max_executions=None)


def test_kernel_names_and_errors() -> None:
    def body() -> None:
        exp = MemoryExporter(8, "VRAM", policy=P)
        buf = exp.buf
        ops = DmaBufAttachOps(move_notify=lambda at: None)
        a, s = dma_buf_attach_and_map(buf, "A", ops, None, DMA_BIDIRECTIONAL)
        assert a in buf.attachments and s.attachment is a
        with pytest.raises(KernelWarning, match="only dynamic importers"):
            dma_buf_attach_and_map(buf, "S", None, None, DMA_BIDIRECTIONAL)
        with pytest.raises(KernelWarning, match=RULE_UNMAP):
            dma_buf_unmap_and_detach(a, s, DMA_BIDIRECTIONAL) if False else a.detach()
        assert not buf.resv.is_locked()
        dma_buf_unmap_and_detach(a, s, DMA_BIDIRECTIONAL)
        assert a.detached and s.unmapped_by is not None and not buf.attachments
        with pytest.raises(UsageError, match="already detached"):
            dma_buf_unmap_and_detach(a, s, DMA_BIDIRECTIONAL)

        exp.map_dma_buf = lambda at, d: ERR_PTR(-12)  # type: ignore[method-assign]
        exp.ops.map_dma_buf = exp.map_dma_buf
        bad, none = dma_buf_attach_and_map(buf, "B", ops, None, DMA_BIDIRECTIONAL)
        assert bad == ERR_PTR(-12) or getattr(bad, "err", None) == -12
        assert none is None and not buf.attachments
        buf.put()

    dmabuf.run_threads(body)


def test_move_inside_attach_and_map_does_not_kill_it(run_on: Any) -> None:
    def body() -> None:
        exp = ReentrantExporter(8, "VRAM", policy=P)
        buf = exp.buf
        seen: list[str] = []
        exp.move_on_map = "GTT"
        a, s = buf.attach_and_map("A", DmaBufAttachOps(move_notify=lambda at: seen.append("A")))
        assert seen == [] and not is_killed(a)  # it did not exist yet when the exporter moved
        with buf.resv:
            buf.resv.wait(Usage.KERNEL)
            assert s.placement is exp.bo.placement and s.dma_read(0, 8) == bytes(range(1, 9))
        a.unmap_and_detach(s)
        check_all()
        buf.put()

    run_on(body, strategy="dpor", max_executions=None)


class OneShotImporter:
    """A correct option-3 importer: move_notify marks the attachment dead (resv held); the next use tears it
    down after its job fences and attaches anew, outside the lock."""

    def __init__(self, buf: Any) -> None:
        self.buf = buf
        self.attach: Any = None
        self.sgt: Any = None
        self.dead = False
        self.ops = DmaBufAttachOps(move_notify=self.move_notify)

    def move_notify(self, attach: Any) -> None:
        assert attach is self.attach and not self.dead  # notified once per attachment
        self.dead = True

    def write(self, off: int, data: bytes) -> None:
        while True:
            if self.attach is not None and self.dead:
                self.attach.unmap_and_detach(self.sgt)
                self.attach = self.sgt = None
            if self.attach is None:
                self.attach, self.sgt = self.buf.attach_and_map("gpu", self.ops)
                self.dead = False
            with self.buf.resv:
                if not self.dead:  # killed between attach_and_map and now: start over
                    self.buf.resv.wait(Usage.KERNEL)
                    self.sgt.dma_write(off, data)
                    return

    def release(self) -> None:
        if self.attach is not None:
            self.attach.unmap_and_detach(self.sgt)


def _race_body() -> Any:
    def body() -> None:
        exp = MemoryExporter(8, "VRAM", policy=P, name="A")
        buf = exp.buf
        imp = OneShotImporter(buf)

        def work() -> None:
            imp.write(0, b"\x10" * 4)
            imp.write(4, b"\x11" * 4)

        t1 = dmabuf.spawn(work, name="importer")
        t2 = dmabuf.spawn(move_locked, exp, name="evict")
        t1.join()
        t2.join()
        imp.release()
        check_all()
        buf.put()

    return body


def test_explored_race_correct_importer(run_on: Any) -> None:
    """Importer writes while the exporter evicts: every notification kills exactly one live attachment, no
    dead attachment is ever mapped or used, and no byte is lost, in every interleaving."""
    res = run_on(_race_body(), strategy="dpor", max_executions=None)
    if hasattr(res, "complete"):
        assert res.complete


def test_inflight_job_on_killed_attachment_may_finish(run_on: Any) -> None:
    def body() -> None:
        exp = MemoryExporter(8, "VRAM", policy=P)
        buf = exp.buf
        a, s = buf.attach_and_map("A", DmaBufAttachOps(move_notify=lambda at: None))
        with buf.resv:
            job = add_job_fence(buf)

        def run_job() -> None:
            s.dma_write(0, b"JJJJ")
            job.signal()

        t = dmabuf.spawn(run_job, name="job")
        with buf.resv:
            exp.move("GTT")
        t.join()
        with pytest.raises(MappingInvalidated, match=RULE_USE):
            s.dma_write(0, b"XXXX")
        a.unmap_and_detach(s)
        check_all()
        buf.put()

    run_on(body, strategy="dpor", max_executions=None)
