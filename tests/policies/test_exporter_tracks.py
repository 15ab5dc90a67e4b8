"""Option 4, ``exporter-tracks``: individual notification of attachments with a mapping, importers unmap in
the callback, the exporter frees old pages only after the resv's fences."""

from __future__ import annotations

from typing import Any

import pytest
from _policy_drivers import add_job_fence

import dmabuf
from dmabuf.buf import DmaBufAttachOps, MemoryExporter, check_all
from dmabuf.errors import KernelWarning, StaleMapping, UsageError
from dmabuf.policies.exporter_tracks import RULE_FREE, RULE_UNMAP, tracked_mappings
from dmabuf.resv import Usage
from dmabuf.scenarios.base import move_locked

P = "exporter-tracks"


class UnmapInCallback:
    """A correct option-4 importer: unmaps every mapping inside move_notify, without waiting for its jobs."""

    def __init__(self) -> None:
        self.sgt: Any = None
        self.attach: Any = None
        self.notified = 0
        self.ops = DmaBufAttachOps(move_notify=self.move_notify)

    def move_notify(self, attach: Any) -> None:
        self.notified += 1
        assert self.sgt is not None  # only attachments with a mapping are notified (H1)
        attach.unmap(self.sgt)
        self.sgt = None


def test_notifies_only_attachments_with_mappings(run_on: Any) -> None:
    def body() -> None:
        exp = MemoryExporter(8, "VRAM", policy=P)
        buf = exp.buf
        imp = UnmapInCallback()
        imp.attach = a = buf.attach("A", imp.ops)
        b = buf.attach("B", DmaBufAttachOps(move_notify=lambda at: pytest.fail("B has no mapping")))
        with buf.resv:
            imp.sgt = a.map()
            assert tracked_mappings(a) == [imp.sgt]
            exp.move("GTT")
            assert imp.notified == 1 and tracked_mappings(a) == []
            exp.move("SYSTEM")  # A unmapped in the callback: not told twice (H8)
        assert imp.notified == 1
        a.detach()
        b.detach()
        check_all()
        buf.put()

    run_on(body, strategy="dpor", max_executions=None)


def test_importer_keeping_mapping_warns() -> None:
    def body() -> None:
        exp = MemoryExporter(8, "VRAM", policy=P)
        buf = exp.buf
        a = buf.attach("A", DmaBufAttachOps(move_notify=lambda at: None))
        with buf.resv:
            s = a.map()
            with pytest.raises(KernelWarning, match=RULE_UNMAP):
                exp.move("GTT")
            a.unmap(s)
        a.detach()
        buf.resv.wait(Usage.KERNEL)
        buf.put()

    dmabuf.run_threads(body)


def _inflight_reader_body(policy: str, exporter_delays: bool = True) -> Any:
    """A reader job uses s1 (READ fence) while the exporter moves without making the copy wait for readers;
    the importer unmaps s1 inside move_notify at once."""

    def body() -> None:
        exp = MemoryExporter(8, "VRAM", policy=policy, name="A")
        if not exporter_delays:  # a buggy option-4 exporter: frees old pages right after the copy
            exp.buf.policy.free_old_after = lambda buf: []  # type: ignore[method-assign]
        buf = exp.buf
        imp = UnmapInCallback()
        imp.attach = buf.attach("gpu", imp.ops)
        with buf.resv:
            s1 = imp.sgt = imp.attach.map()
            job = add_job_fence(buf, Usage.READ)

        def run_job() -> None:
            assert s1.dma_read(0, 8) == bytes(range(1, 9))
            job.signal()

        t = dmabuf.spawn(run_job, name="reader-job")
        with buf.resv:
            exp.move("GTT", wait_fences=False)  # a copy need not wait for readers
        t.join()
        with pytest.raises(StaleMapping):
            s1.dma_read(0, 4)  # the job is done: s1 is gone
        with pytest.raises(UsageError, match="already unmapped"):
            with buf.resv:
                imp.attach.unmap(s1)
        imp.attach.detach()
        check_all()
        buf.put()

    return body


def test_old_pages_kept_until_fences_signal(run_on: Any) -> None:
    res = run_on(_inflight_reader_body(P), strategy="dpor", max_executions=None)
    if hasattr(res, "complete"):
        assert res.complete


def test_exporter_freeing_early_is_caught() -> None:
    res = dmabuf.explore(_inflight_reader_body(P, exporter_delays=False), max_executions=None)
    assert res.failure is not None and res.failure.kind == "kernel-warning", res.failure
    assert RULE_FREE in res.failure.message


def test_same_importer_is_the_h6_bug_under_mainline() -> None:
    # contrast: under importer-tracks unmapping in the callback while the job runs is a stale mapping (H6)
    res = dmabuf.explore(_inflight_reader_body("importer-tracks"), max_executions=None)
    assert res.failure is not None and isinstance(res.failure.exception, StaleMapping), res.failure


def test_explored_race_correct_importer(run_on: Any) -> None:
    """An importer submitting asynchronous write jobs while the exporter evicts: it unmaps in the callback,
    its jobs finish on the old pages (the copy waits for them), no byte is lost, in every interleaving."""

    def body() -> None:
        exp = MemoryExporter(8, "VRAM", policy=P, name="A")
        buf = exp.buf
        imp = UnmapInCallback()
        imp.attach = buf.attach("gpu", imp.ops)
        jobs = []

        def submit(off: int, val: int) -> None:
            with buf.resv:
                if imp.sgt is None:
                    imp.sgt = imp.attach.map()
                buf.resv.wait(Usage.KERNEL)
                sgt, f = imp.sgt, add_job_fence(buf)

            def job() -> None:
                sgt.dma_write(off, bytes([val] * 4))
                f.signal()

            jobs.append(dmabuf.spawn(job, name=f"job{val:x}"))

        def work() -> None:
            submit(0, 0x10)

        t1 = dmabuf.spawn(work, name="importer")
        t2 = dmabuf.spawn(move_locked, exp, name="evict")
        t1.join()
        t2.join()
        for j in jobs:
            j.join()
        with buf.resv:
            if imp.sgt is not None:
                imp.attach.unmap(imp.sgt)
        imp.attach.detach()
        check_all()
        buf.put()

    res = run_on(body, strategy="dpor", max_executions=None)
    if hasattr(res, "complete"):
        assert res.complete
