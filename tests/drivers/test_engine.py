"""The simulated GPU ring: jobs in order after their dependencies, fences on one timeline signalled by the
completion worker inside a fence signalling section."""

from __future__ import annotations

import pytest

import dmabuf
from dmabuf.buf import BufferObject, SgTable, check_all
from dmabuf.drivers import GpuEngine
from dmabuf.errors import UsageError
from dmabuf.fence.fence import DmaFence, DmaFenceOps, context_alloc
from dmabuf.sync.spinlock import SpinLock


def _fence() -> DmaFence:
    f = DmaFence()
    f.init(
        DmaFenceOps(get_driver_name=lambda f: "t", get_timeline_name=lambda f: "t"),
        SpinLock(),
        context_alloc(1),
        1,
    )
    return f


def test_jobs_run_in_order_after_their_dependencies() -> None:
    def body() -> None:
        eng = GpuEngine("gfx")
        dep = _fence()
        log: list[str] = []
        j1 = eng.submit([dep.get()], lambda: log.append("j1") or 1)
        j2 = eng.submit([], lambda: log.append("j2") or 2)
        assert j1.fence.context == j2.fence.context and j2.fence.is_later(j1.fence)

        def producer() -> None:
            log.append("dep")
            dep.signal()

        t = dmabuf.spawn(producer, name="producer")
        j2.fence.wait(False)
        t.join()
        assert log == ["dep", "j1", "j2"] and (j1.result, j2.result) == (1, 2)
        assert j1.fence.is_signaled()
        eng.fini()
        with pytest.raises(UsageError, match="after GpuEngine.fini"):
            eng.submit([], lambda: None)

    dmabuf.run_threads(body)
    res = dmabuf.explore(body, database=None)
    assert res.ok and res.complete, res.failure


def test_a_job_that_waits_on_a_fence_is_a_signalling_section_violation() -> None:
    def body() -> None:
        eng = GpuEngine("gfx")
        other = _fence()
        j = eng.submit([], lambda: other.wait(False))  # the hardware never waits on a fence
        other.signal()
        j.fence.wait(False)
        eng.fini()

    res = dmabuf.explore(body, database=None)
    assert res.failure is not None and res.failure.kind == "kernel-warning", res.failure
    assert "signalling" in res.failure.message


def test_dma_through_a_job_is_checked_by_the_oracle() -> None:
    def body() -> None:
        bo = BufferObject(4, "VRAM", name="A")
        sgt = SgTable(bo.placement)
        eng = GpuEngine("copy")
        j = eng.submit([], lambda: sgt.dma_write(0, b"abcd"))
        eng.fini()
        assert j.fence.is_signaled() and bo.contents() == b"abcd"
        check_all()

    dmabuf.run_threads(body)
    res = dmabuf.explore(body, database=None)
    assert res.ok and res.complete, res.failure
