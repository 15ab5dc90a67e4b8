"""Gaps of the oracle and the TTM exporter found by an audit, each with a bug the checks must catch and the
correct drivers they must leave alone:

* D1: a lost write is reported even when the buffer was released before ``check_all`` (late writes, and the
  bytes as they were at release);
* D2: a TTM ghost's pages (the old placement of a move) are freed once the move fence (and the policy's
  ``free_old_after`` fences) signalled, so DMA through the old mapping after the copy is a use-after-free
  (``StaleMapping``), not only under memory pressure;
* D3: the TTM exporter counts its live mappings and ``dma_buf_detach`` of an attachment with a mapping never
  unmapped is a ``MappingLeak``; so is a mapping still live at ``TtmDevice.fini``.
"""

from __future__ import annotations

from typing import Any

import pytest

import dmabuf
from dmabuf.buf import BufferObject, DmaBufAttachOps, check_all, memory
from dmabuf.buf.core import (
    DmaBufAttachment,
    dma_buf_detach,
    dma_buf_dynamic_attach,
    dma_buf_map_attachment,
    dma_buf_unmap_attachment,
)
from dmabuf.buf.sg_table import DMA_BIDIRECTIONAL
from dmabuf.drivers import GpuEngine, GpuImporter, StaticImporter, TtmDevice, ttm_bo_export
from dmabuf.drivers.engine import GpuJob
from dmabuf.errors import LostWrite, MappingLeak, StaleMapping
from dmabuf.kernel import Completion
from dmabuf.resv import Usage

INIT = bytes([1, 2, 3, 4])
DYN = b"DDDD"


def _clean(body: Any, **kw: Any) -> dmabuf.ExploreResult:
    dmabuf.run_threads(body, timeout=60)
    res = dmabuf.explore(body, database=None, **kw)
    assert res.ok, res.failure
    return res


def _finding(body: Any, **kw: Any) -> str:
    res = dmabuf.explore(body, database=None, **kw)
    assert not res.ok and res.failure is not None
    return str(res.failure.message)


# ---------------------------------------------------------------------- D1: released buffers are checked
def _late_write_then_release(hide: bool) -> Any:
    """A move that does not wait for a writer (the exporter keeps the old pages), a write through the old
    mapping after the copy, optionally hidden by a later write through a new mapping; then the buffer is
    released before the oracle runs."""

    def body() -> None:
        bo = BufferObject(4, "VRAM", name="X", init=INIT)
        old = bo.sg_table()
        mv = bo.move("GTT", free_old=False)
        mv.fence.wait()
        old.dma_write(0, DYN)  # after the copy: never reaches the new placement
        if hide:
            bo.sg_table().dma_write(0, bo.contents())  # rewrites the bytes the oracle expects: loss hidden
        bo.release()
        mv.task.join()
        mv.free_old()
        check_all()

    return body


@pytest.mark.parametrize("hide", [False, True])
def test_d1_lost_write_of_a_released_buffer_is_reported(hide: bool) -> None:
    with pytest.raises(LostWrite, match="held 0x01 when it was released" if not hide else "after move#1"):
        dmabuf.run_threads(_late_write_then_release(hide), timeout=60)
    msg = _finding(_late_write_then_release(hide))
    assert "lost write" in msg


def test_d1_released_buffer_clean_when_nothing_lost() -> None:
    def body() -> None:
        bo = BufferObject(4, "VRAM", name="X", init=INIT)
        bo.sg_table().dma_write(0, DYN)
        mv = bo.move("GTT")
        mv.fence.wait()
        bo.sg_table().dma_write(2, b"ee")
        bo.release()
        mv.task.join()
        check_all()

    _clean(body)


class _FenceAfterUnlock(GpuImporter):
    """Publishes its job's fence in a second critical section: a move in between copies without waiting
    for the write (the write is lost, or lands in freed pages)."""

    def submit(self, off: int, data: bytes | None = None, n: int = 0) -> GpuJob:
        resv = self.dmabuf.resv
        with resv:
            self._reap(False)
            assert self._validate() == 0
            job = self.engine.submit_dma(self._deps(data is not None), self.sgt, off, data, n, name="gpu.write")
            self.sgt_jobs.append(job.fence)
            self.jobs.append(job)
        with resv:
            resv.reserve_fences(1)
            resv.add_fence(job.fence, Usage.WRITE)
        return job


def _write_during_migration(writer_cls: type[GpuImporter]) -> Any:
    """A writer writes while X is migrated to GTT, a correct reader reads afterwards, then everything is
    put (X released) before ``check_all`` (the audit's repro p3 (b))."""

    def body() -> None:
        dev = TtmDevice(vram=2, gtt=4, system=4)
        x = dev.bo_create(4, ["VRAM"], name="X", init=INIT)
        buf = ttm_bo_export(x)
        gfx = GpuEngine("gfx")
        w = writer_cls(buf, gfx, "writer")
        w.prepare()
        rd = GpuImporter(buf, gfx, "reader")
        go = Completion("go")

        def tw() -> None:
            go.wait()
            w.submit(0, DYN)

        def tm() -> None:
            go.wait()
            assert dev.validate(x, ["GTT"]) == 0

        ts = [dmabuf.spawn(tw, name="w"), dmabuf.spawn(tm, name="m")]
        go.complete_all()
        for t in ts:
            t.join()
        w.wait_idle()
        rd.submit(0, n=4)
        rd.wait_idle()
        w.fini()
        rd.fini()
        buf.put()
        gfx.fini()
        x.put()  # X released before the oracle runs
        dev.fini()
        check_all()

    return body


def test_d1_d2_lost_write_with_freed_bo_found() -> None:
    msg = _finding(_write_during_migration(_FenceAfterUnlock), preemption_bound=2, max_executions=3000)
    assert "lost write" in msg or "stale mapping" in msg


def test_d1_d2_correct_writer_with_freed_bo_clean() -> None:
    _clean(_write_during_migration(GpuImporter), preemption_bound=2, max_executions=1500)


# ---------------------------------------------------------------------- D2: ghosts released at the move fence
class _IgnoresMoveNotify(GpuImporter):
    def _move_notify(self, attach: DmaBufAttachment) -> None:
        self.notified += 1


def _read_after_migration(importer_cls: type[GpuImporter]) -> Any:
    """The importer maps X, X migrates to GTT (nothing else happens: no memory pressure), the importer reads
    (the audit's repro p3 (a))."""

    def body() -> None:
        dev = TtmDevice(vram=2, gtt=4, system=4)
        x = dev.bo_create(4, ["VRAM"], name="X", init=INIT)
        buf = ttm_bo_export(x)
        gfx = GpuEngine("gfx")
        r = importer_cls(buf, gfx, "reader")
        r.prepare()
        assert dev.validate(x, ["GTT"]) == 0
        job = r.submit(0, n=4)
        r.wait_idle()
        assert job.result == INIT
        r.fini()
        buf.put()
        gfx.fini()
        x.put()
        dev.fini()
        check_all()

    return body


def test_d2_dma_through_old_placement_after_the_move_is_stale() -> None:
    msg = _finding(_read_after_migration(_IgnoresMoveNotify), preemption_bound=2)
    assert "stale mapping" in msg and "freed by move#1" in msg
    with pytest.raises(StaleMapping, match="freed by move#1"):
        dmabuf.run_threads(_read_after_migration(_IgnoresMoveNotify), timeout=60)


def test_d2_correct_importer_after_migration_clean() -> None:
    _clean(_read_after_migration(GpuImporter), preemption_bound=2)


def test_d2_ghost_released_without_memory_pressure() -> None:
    def body() -> None:
        dev = TtmDevice(vram=2, gtt=4, system=4)
        x = dev.bo_create(4, ["VRAM"], name="X", init=INIT)
        assert dev.validate(x, ["GTT"]) == 0
        assert x.bo is not None
        mv = x.bo.moves[0]
        mv.task.join()  # the copy task freed the ghost's pages after the move fence
        assert mv.old.freed and memory().domain("VRAM").free_pages() == len(memory().domain("VRAM").pages)
        assert dev.man["VRAM"].ghosts  # the accounting goes at the next reclaim
        assert dev.reclaim(dev.man["VRAM"]) and dev.man["VRAM"].usage == 0
        x.put()
        dev.fini()
        check_all()

    _clean(body)


# ---------------------------------------------------------------------- D3: forgotten unmap with TTM
def test_d3_detach_without_unmap_is_a_mapping_leak() -> None:
    def body() -> None:
        dev = TtmDevice(vram=2, gtt=4, system=4)
        x = dev.bo_create(4, ["VRAM"], name="X")
        buf = ttm_bo_export(x)
        a = dma_buf_dynamic_attach(buf, "nic", DmaBufAttachOps(allow_peer2peer=True, move_notify=lambda a: None), None)
        with buf.resv:
            dma_buf_map_attachment(a, DMA_BIDIRECTIONAL)
        dma_buf_detach(buf, a)  # forgot dma_buf_unmap_attachment
        buf.put()
        x.put()
        dev.fini()
        check_all()

    with pytest.raises(MappingLeak, match="never unmapped"):
        dmabuf.run_threads(body, timeout=60)
    assert "mapping leak" in _finding(body)


def test_d3_a_mapping_never_unmapped_nor_detached_is_a_leak_at_device_teardown() -> None:
    def body() -> None:
        dev = TtmDevice(vram=2, gtt=4, system=4)
        x = dev.bo_create(4, ["VRAM"], name="X")
        buf = ttm_bo_export(x)
        a = dma_buf_dynamic_attach(buf, "nic", DmaBufAttachOps(allow_peer2peer=True, move_notify=lambda a: None), None)
        with buf.resv:
            dma_buf_map_attachment(a, DMA_BIDIRECTIONAL)
        dev.fini()  # neither unmapped nor detached

    with pytest.raises(MappingLeak, match="teardown: 1 mapping"):
        dmabuf.run_threads(body, timeout=60)
    assert "mapping leak at" in _finding(body)


class _ForgetsUnmap(GpuImporter):
    def fini(self) -> None:
        self.wait_idle()
        dma_buf_detach(self.dmabuf, self.attach)
        self.dmabuf.put()


def _gpu_importer_body(cls: type[GpuImporter]) -> Any:
    def body() -> None:
        dev = TtmDevice(vram=2, gtt=4, system=4)
        x = dev.bo_create(4, ["VRAM"], name="X")
        buf = ttm_bo_export(x)
        eng = GpuEngine()
        g = cls(buf, eng)
        g.submit(0, DYN)
        disp = StaticImporter(buf, eng, "display")  # its cached mapping is the core's to unmap
        g.fini()
        disp.fini()
        buf.put()
        eng.fini()
        x.put()
        dev.fini()
        check_all()

    return body


def test_d3_gpu_importer_forgetting_unmap_is_caught() -> None:
    assert "mapping leak" in _finding(_gpu_importer_body(_ForgetsUnmap))


def test_d3_correct_importers_unmap_everything() -> None:
    _clean(_gpu_importer_body(GpuImporter))
    with_ok = DmaBufAttachOps(allow_peer2peer=True, move_notify=lambda a: None)

    def body() -> None:
        dev = TtmDevice(vram=2, gtt=4, system=4)
        x = dev.bo_create(4, ["VRAM"], name="X")
        buf = ttm_bo_export(x)
        a = dma_buf_dynamic_attach(buf, "nic", with_ok, None)
        with buf.resv:
            sg = dma_buf_map_attachment(a, DMA_BIDIRECTIONAL)
            dma_buf_unmap_attachment(a, sg, DMA_BIDIRECTIONAL)
        dma_buf_detach(buf, a)
        assert not x.live_maps
        buf.put()
        x.put()
        dev.fini()
        check_all()

    _clean(body)
