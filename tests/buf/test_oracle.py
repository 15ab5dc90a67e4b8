"""The memory model's oracle: each of its three checks catches a purpose-built buggy driver under the explorer,
and stays silent on the corrected driver under exhaustive exploration."""

from __future__ import annotations

from typing import Any

import pytest
from _buf_drivers import TrackingImporter

import dmabuf
from dmabuf.buf import BufferObject, DmaBufAttachOps, MemoryExporter, check_all, configure_memory, memory
from dmabuf.errors import LostWrite, OutOfPages, StaleContent, StaleMapping, UsageError
from dmabuf.resv import Usage
from dmabuf.scenarios.base import make_fence


def _explore(body: Any, **kw: Any) -> dmabuf.ExploreResult:
    return dmabuf.explore(body, max_executions=5000, **kw)


# ------------------------------------------------------------------ memory model basics
def test_pool_allocation_lowest_first_and_reuse() -> None:
    def body() -> None:
        configure_memory(pages=4, domains=("VRAM", "GTT"))
        a = BufferObject(8, "VRAM", name="a")
        b = BufferObject(4, "VRAM", name="b")
        assert [p.index for p in a.placement.pages] == [0, 1]
        assert [p.index for p in b.placement.pages] == [2]
        mv = a.move("GTT")
        mv.fence.wait()
        mv.task.join()
        assert a.placement.domain.name == "GTT" and a.contents() == bytes(range(1, 9))
        c = BufferObject(8, "VRAM", name="c", init=b"C" * 8)
        assert [p.index for p in c.placement.pages] == [0, 1]  # a's old pages, reused
        with pytest.raises(OutOfPages, match="VRAM has 1 free page"):
            BufferObject(8, "VRAM")
        with pytest.raises(UsageError, match="already freed"):
            mv.free_old()
        check_all()

    dmabuf.run_threads(body)
    res = _explore(body)
    assert res.ok and res.complete, res.failure


def test_kept_old_pages_are_a_leak() -> None:
    def body() -> None:
        a = BufferObject(4, "VRAM")
        a.move("GTT", free_old=False).fence.wait()

    res = _explore(body)
    assert res.failure is not None and res.failure.kind == "leak"
    assert "never freed" in res.failure.message


# ------------------------------------------------------------------ 1. stale mapping
def _stale_map_body(correct: bool) -> Any:
    def body() -> None:
        exp = MemoryExporter(8, "VRAM", name="A")
        buf = exp.buf
        imp = TrackingImporter()
        if not correct:  # the buggy importer ignores move_notify and keeps its old mapping
            imp.ops = DmaBufAttachOps(move_notify=lambda a: None)
        a = imp.attach = buf.attach("gpu", imp.ops)
        with buf.resv:
            imp.mapping()

        def evict() -> None:
            with buf.resv:
                exp.move("GTT")

        t = dmabuf.spawn(evict, name="evict")
        t.join()
        with buf.resv:
            buf.resv.wait(Usage.KERNEL)  # the move is complete and its old pages are freed...
            sgt = imp.mapping()  # ...so a stale sgt now points at freed VRAM
        BufferObject(8, "VRAM", name="B", init=b"BBBBBBBB")  # which another buffer reuses
        assert sgt.dma_read(0, 8) == bytes(range(1, 9))
        with buf.resv:
            if imp.sgt is not None:
                a.unmap(imp.sgt)
        a.detach()
        check_all()

    return body


def test_stale_mapping_found() -> None:
    res = _explore(_stale_map_body(correct=False))
    assert res.failure is not None and res.failure.kind == "exception"
    exc = res.failure.exception
    assert isinstance(exc, StaleMapping)
    msg = str(exc)
    for part in ("A", "sgt", "VRAM.page0", "move#1(A VRAM->GTT)", "now belongs to B@VRAM/gen0"):
        assert part in msg, (part, msg)


def test_stale_mapping_silent_on_correct_importer(run_on: Any) -> None:
    res = run_on(_stale_map_body(correct=True), strategy="dpor")
    if res is not None and not isinstance(res, type(None)) and hasattr(res, "complete"):
        assert res.complete


# ------------------------------------------------------------------ 2. stale content
def _stale_content_body(correct: bool) -> Any:
    def body() -> None:
        exp = MemoryExporter(4, "VRAM", name="A")
        buf = exp.buf
        imp = TrackingImporter()
        imp.attach = buf.attach("gpu", imp.ops)
        with buf.resv:
            exp.move("GTT")  # the copy runs asynchronously; its fence is in the resv (KERNEL)
        with buf.resv:
            sgt = imp.mapping()  # the new mapping points at the new placement at once
            if correct:  # dynamic importers wait for the KERNEL fences before device access (H7)
                buf.resv.wait(Usage.KERNEL)
        data = sgt.dma_read(0, 4)
        assert data == bytes([1, 2, 3, 4]), data
        with buf.resv:
            imp.attach.unmap(sgt)
        check_all()

    return body


def test_stale_content_found() -> None:
    res = _explore(_stale_content_body(correct=False))
    assert res.failure is not None and res.failure.kind == "exception", res.failure
    exc = res.failure.exception
    assert isinstance(exc, StaleContent)
    assert "move#1(A VRAM->GTT)" in str(exc) and "GTT.page0" in str(exc)


def test_stale_content_silent_when_importer_waits(run_on: Any) -> None:
    run_on(_stale_content_body(correct=True), strategy="dpor")


# ------------------------------------------------------------------ 3. lost write
def _lost_write_body(correct: bool) -> Any:
    def body() -> None:
        exp = MemoryExporter(4, "VRAM", name="A")
        buf = exp.buf
        imp = TrackingImporter()
        imp.attach = buf.attach("gpu", imp.ops)
        job = make_fence()
        with buf.resv:  # submit a write job: its fence goes in the resv
            sgt = imp.mapping()
            buf.resv.reserve_fences(1)
            buf.resv.add_fence(job, Usage.WRITE)
            imp.jobs.append(job)

        def evict() -> None:
            with buf.resv:
                # the buggy exporter's copy does not wait for the pending write (but frees old pages late)
                exp.move("GTT", wait_fences=correct, free_after_fences=True)

        t = dmabuf.spawn(evict, name="evict")
        sgt.dma_write(0, b"WXYZ")  # the job runs
        job.signal()
        t.join()
        buf.resv.wait(Usage.BOOKKEEP)
        check_all()

    return body


def test_lost_write_found() -> None:
    res = _explore(_lost_write_body(correct=False))
    assert res.failure is not None and res.failure.kind == "exception", res.failure
    exc = res.failure.exception
    assert isinstance(exc, LostWrite)
    msg = str(exc)
    assert "A byte 0" in msg and "0x57" in msg and "move#1(A VRAM->GTT)" in msg, msg


def test_lost_write_silent_when_copy_waits(run_on: Any) -> None:
    res = run_on(_lost_write_body(correct=True), strategy="dpor")
    if hasattr(res, "complete"):
        assert res.complete and res.executions > 1


def test_check_all_reports_overwritten_write_on_new_placement() -> None:
    """A write to an already-copied page of the new placement survives; check_all passes."""

    def body() -> None:
        bo = BufferObject(8, "VRAM", name="A")
        mv = bo.move("GTT")
        mv.fence.wait()
        from dmabuf.buf.sg_table import SgTable

        s = SgTable(bo.placement)
        s.dma_write(2, b"!!")
        check_all()
        assert bo.contents() == b"\x01\x02!!\x05\x06\x07\x08"
        assert memory().domains["VRAM"].free_pages() == 8

    res = _explore(body)
    assert res.ok and res.complete, res.failure


def test_a_read_while_a_move_is_starting_is_checked_without_error() -> None:
    """A read through the current placement while a move of the buffer is between bumping its generation
    and recording the move (its new pages are being allocated, a scheduling point): the oracle's check must
    see "not copied yet", not fail on a move it has not recorded yet (an IndexError once, on real threads)."""
    from dmabuf.buf.memory import check_page
    from dmabuf.runtime import READ, rt

    def body() -> None:
        bo = BufferObject(4, "VRAM", name="bo", init=b"abcd")
        pl = bo.placement

        def reader() -> None:
            rt().point("read", pl.pages[0], READ)
            check_page(pl, 0, False, "reader")

        moves = []

        def mover() -> None:
            moves.append(bo.move("GTT", free_old=False))  # the old pages stay valid until the reader is done
            moves[0].fence.wait()

        ts = [dmabuf.spawn(reader, name="reader"), dmabuf.spawn(mover, name="mover")]
        for t in ts:
            t.join()
        moves[0].task.join()
        moves[0].free_old()

    res = dmabuf.explore(body, strategy="dfs", database=None)
    assert res.ok and res.complete, res.failure and res.failure.message
