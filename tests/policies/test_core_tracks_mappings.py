"""Option 2, ``core-tracks-mappings``: the core records mappings, invalidates them one-shot, notifies only
attachments with a live, valid mapping."""

from __future__ import annotations

from typing import Any

import pytest
from _policy_drivers import Importer, add_job_fence, race_body

import dmabuf
from dmabuf.buf import DmaBufAttachOps, MemoryExporter, check_all
from dmabuf.errors import KernelWarning, MappingInvalidated
from dmabuf.policies.core_tracks_mappings import RULE_DETACH, RULE_USE, invalidated_mappings, live_mappings
from dmabuf.resv import Usage

P = "core-tracks-mappings"


def test_notifies_only_live_valid_mappings_and_invalidates_one_shot(run_on: Any) -> None:
    def body() -> None:
        exp = MemoryExporter(8, "VRAM", policy=P)
        buf = exp.buf
        seen: list[tuple[str, list[Any]]] = []
        a = buf.attach("A", DmaBufAttachOps(move_notify=lambda at: seen.append(("A", invalidated_mappings(at)))))
        b = buf.attach("B", DmaBufAttachOps(move_notify=lambda at: seen.append(("B", invalidated_mappings(at)))))
        with buf.resv:
            s1 = a.map()
            assert live_mappings(a) == [s1] and live_mappings(b) == []
            exp.move("GTT")
        assert seen == [("A", [s1])]  # B has no mapping: not notified (H1 cannot happen)
        assert s1.invalidated_by is not None and "dma_buf_move_notify" in s1.invalidated_by
        with pytest.raises(MappingInvalidated, match=RULE_USE):
            s1.dma_read(0, 4)
        with buf.resv:
            exp.move("SYSTEM")  # s1 is already invalidated: A is not told twice (H8 cannot happen)
        assert len(seen) == 1
        with buf.resv:
            a.unmap(s1)  # the one thing an invalidated mapping is good for
            s2 = a.map()
            buf.resv.wait(Usage.KERNEL)
            assert s2.dma_read(0, 8) == bytes(range(1, 9))
            a.unmap(s2)
        assert live_mappings(a) == []
        a.detach()
        b.detach()
        check_all()
        buf.put()

    run_on(body, strategy="dpor", max_executions=None)


def test_invalidation_is_per_mapping() -> None:
    def body() -> None:
        exp = MemoryExporter(8, "VRAM", policy=P)
        buf = exp.buf
        a = buf.attach("A", DmaBufAttachOps(move_notify=lambda at: None))
        with buf.resv:
            s1 = a.map()
            exp.move("GTT")
            buf.resv.wait(Usage.KERNEL)
            s2 = a.map()  # made after the move: valid
            exp.move("SYSTEM")  # A is notified again, for s2 only
            assert s2.invalidated_by is not None
            a.unmap(s1)
            a.unmap(s2)
        a.detach()
        buf.put()

    dmabuf.run_threads(body)


def test_detach_with_live_mapping_warns_and_releases_resv() -> None:
    def body() -> None:
        exp = MemoryExporter(8, "VRAM", policy=P)
        buf = exp.buf
        a = buf.attach("A", DmaBufAttachOps(move_notify=lambda at: None))
        with buf.resv:
            s = a.map()
        with pytest.raises(KernelWarning, match=RULE_DETACH) as ei:
            a.detach()
        assert ei.value.rule == RULE_DETACH
        assert not buf.resv.is_locked()
        with buf.resv:
            a.unmap(s)
        a.detach()
        buf.put()

    dmabuf.run_threads(body)


def test_inflight_job_may_finish_new_work_may_not(run_on: Any) -> None:
    def body() -> None:
        exp = MemoryExporter(8, "VRAM", policy=P)
        buf = exp.buf
        a = buf.attach("A", DmaBufAttachOps(move_notify=lambda at: None))
        with buf.resv:
            s1 = a.map()
            job = add_job_fence(buf)  # a job using s1 was submitted before the move

        def run_job() -> None:
            s1.dma_write(0, b"JJJJ")  # may run before or after the invalidation: both legal
            job.signal()

        t = dmabuf.spawn(run_job, name="job")
        with buf.resv:
            exp.move("GTT")  # the copy waits for the job
        t.join()
        with pytest.raises(MappingInvalidated, match=RULE_USE):
            s1.dma_read(0, 4)  # the job is done: this is new work through an invalidated mapping
        with buf.resv:
            a.unmap(s1)
        a.detach()
        check_all()
        buf.put()

    run_on(body, strategy="dpor", max_executions=None)


def test_explored_race_correct_importer(run_on: Any) -> None:
    """Importer writes while the exporter evicts: the importer only ever uses valid mappings (an invalidated
    one would raise), and no byte is lost, in every interleaving."""
    res = run_on(race_body(P, Importer), strategy="dpor", max_executions=None)
    if hasattr(res, "complete"):
        assert res.complete


def test_explored_race_importer_keeping_invalidated_mapping_is_caught() -> None:
    class Keeper(Importer):
        def move_notify(self, attach: Any) -> None:  # ignores the notification
            self.notified += 1

    res = dmabuf.explore(race_body(P, Keeper), max_executions=None)
    assert res.failure is not None and isinstance(res.failure.exception, MappingInvalidated), res.failure
    assert RULE_USE in res.failure.message
