"""Audit of the reference drivers against real ones (TTM, amdgpu's dma-buf import/export, the RDMA dynamic
importer): behaviours the other driver tests leave unchecked, plus importers broken on purpose that the
data-integrity oracle must catch under ``dmabuf.explore`` (and correct in-flight DMA it must not flag).

Kernel sources cited by function; ``amdgpu_dma_buf.c``, ``ttm_bo.c``, ``umem_dmabuf.c`` as in torvalds/linux.
"""

from __future__ import annotations

from typing import Any

from _scenario import DYN, INIT

import dmabuf
from dmabuf.buf import DmaBufAttachOps, check_all
from dmabuf.buf.attach import dma_buf_pin, dma_buf_unpin
from dmabuf.buf.core import DmaBufAttachment
from dmabuf.drivers import (
    GpuEngine,
    GpuImporter,
    StaticImporter,
    TtmDevice,
    ttm_bo_export,
    ttm_bo_pin,
    ttm_bo_unpin,
    ttm_bo_validate,
)
from dmabuf.drivers.engine import GpuJob
from dmabuf.errors import LostWrite, StaleMapping
from dmabuf.kernel import Completion
from dmabuf.policies.base import default_policy, get_policy
from dmabuf.resv import Usage
from dmabuf.runtime import label_of
from dmabuf.scenarios.base import make_fence


def _lru(dev: TtmDevice, dom: str) -> list[str]:
    return [str(label_of(b)) for b in dev.man[dom].lru]


def _explore(body: Any, **kw: Any) -> dmabuf.ExploreResult:
    return dmabuf.explore(body, database=None, **kw)


def _run_threads_then_explore(body: Any, *, preemption_bound: int) -> None:
    """Run ``body`` on real threads, then explore it: every schedule within the bound must pass."""
    dmabuf.run_threads(body, timeout=60)
    res = _explore(body, preemption_bound=preemption_bound)
    assert res.ok and res.complete, res.failure


def _assert_finding(res: dmabuf.ExploreResult, exc: type[Exception], parts: tuple[str, ...]) -> None:
    """The exploration failed with an ``exc`` raised in a body whose message names every one of ``parts``."""
    f = res.failure
    assert f is not None and f.kind == "exception", f
    assert isinstance(f.exception, exc), f
    msg = str(f.exception)
    for part in parts:
        assert part in msg, (part, msg)


# ------------------------------------------------------------------ exporter: pinning
def test_static_import_pins_the_bo_and_blocks_its_eviction_until_detach() -> None:
    """A static importer of a dynamic exporter's buffer pins it (v6.12 ``dma_buf_dynamic_attach`` calls
    ``dma_buf_pin`` when importer and exporter disagree on dynamic-ness): TTM's eviction walk skips pinned
    BOs (``ttm_bo_evict_cb``: ``if (bo->pin_count ...) return 0``), ``ttm_bo_validate`` refuses to move a
    pinned BO (``-EINVAL``), and the last ``ttm_bo_unpin`` makes it evictable again (back on the LRU)."""

    def body() -> None:
        dev = TtmDevice(vram=2, gtt=4, system=4)
        x = dev.bo_create(4, ["VRAM"], name="X", init=INIT)  # LRU head of VRAM
        buf = ttm_bo_export(x)
        w = dev.bo_create(4, ["VRAM"], name="W")
        y = dev.bo_create(4, ["GTT"], name="Y")
        z = dev.bo_create(4, ["GTT"], name="Z")
        eng = GpuEngine("display")
        notified: list[int] = []
        spy = buf.attach("spy", DmaBufAttachOps(move_notify=lambda a: notified.append(1)))
        disp = StaticImporter(buf, eng)
        assert x.pin_count == 1 and _lru(dev, "VRAM") == ["W"]
        assert dev.validate(y, ["VRAM"]) == 0  # X is older, but pinned: W goes
        assert (x.mem_type, w.mem_type, y.mem_type) == ("VRAM", "GTT", "VRAM")
        with y.resv:
            ttm_bo_pin(y)
        assert dev.validate(z, ["VRAM"]) == -28  # only pinned BOs left in VRAM: -ENOSPC, X stays
        with x.resv:
            assert ttm_bo_validate(x, ["GTT"]) == -22  # moving a pinned BO is forbidden
        assert x.bo is not None and x.bo.moves == [] and notified == []
        job = disp.submit(0, n=4)
        disp.fini()  # waits for the read, detach unmaps and unpins
        assert job.result == INIT
        assert x.pin_count == 0 and _lru(dev, "VRAM") == ["X"]
        assert dev.validate(z, ["VRAM"]) == 0  # X evictable again
        assert x.mem_type == "GTT" and notified == [1]
        with y.resv:
            ttm_bo_unpin(y)
        spy.detach()
        buf.put()
        eng.fini()
        dev.fini()
        check_all()
        assert x.bo.contents() == INIT

    _run_threads_then_explore(body, preemption_bound=1)


def test_dynamic_importer_pin_blocks_eviction_and_move_notify() -> None:
    """An RDMA-like dynamic importer that pins (``ib_umem_dmabuf_get_pinned``: ``dma_buf_pin`` under the
    resv, then map and wait for the exporter's move fence) must never see move_notify while pinned (its
    callback only warns: ``ib_umem_dmabuf_unsupported_move_notify``): the exporter (``amdgpu_dma_buf_pin``
    -> ``ttm_bo_pin``) never evicts or moves the BO; after ``dma_buf_unpin`` it can move again."""

    def body() -> None:
        dev = TtmDevice(vram=2, gtt=4, system=4)
        x = dev.bo_create(4, ["VRAM"], name="X", init=INIT)
        buf = ttm_bo_export(x)
        dev.bo_create(4, ["VRAM"], name="W")
        y = dev.bo_create(4, ["GTT"], name="Y")
        z = dev.bo_create(4, ["GTT"], name="Z")
        notified: list[int] = []
        a = buf.attach("rdma", DmaBufAttachOps(allow_peer2peer=True, move_notify=lambda at: notified.append(1)))
        with buf.resv:
            assert dma_buf_pin(a) == 0
            sgt = a.map()
            buf.resv.wait(Usage.KERNEL)
        assert x.pin_count == 1
        assert dev.validate(y, ["VRAM"]) == 0 and x.mem_type == "VRAM"  # W evicted, not X
        assert dev.validate(z, ["VRAM"]) == 0  # and again: Y goes, X never
        assert (x.mem_type, y.mem_type, z.mem_type) == ("VRAM", "GTT", "VRAM")
        sgt.dma_write(0, DYN)  # the pinned mapping stays valid
        assert notified == [] and x.bo is not None and x.bo.moves == []
        with buf.resv:
            a.unmap(sgt)
            dma_buf_unpin(a)
        assert x.pin_count == 0
        with x.resv:
            assert ttm_bo_validate(x, ["GTT"]) == 0
        assert x.mem_type == "GTT" and notified == [1]
        a.detach()
        buf.put()
        dev.fini()
        check_all()
        assert x.bo.contents() == DYN

    _run_threads_then_explore(body, preemption_bound=2)


# ------------------------------------------------------------------ exporter: pipelined move, move_notify
def test_eviction_copy_waits_for_busy_fences_and_notifies_before_the_old_pages_are_reused() -> None:
    """Evicting a busy BO pipelines the copy behind every fence of its resv and publishes the move fence
    with KERNEL usage (``ttm_bo_move_accel_cleanup`` / ``amdgpu_copy_buffer`` syncing to the resv,
    ``dma_resv_add_fence(..., DMA_RESV_USAGE_KERNEL)``); move_notify runs under the victim's resv while the
    importer's old pages still belong to the old placement (``amdgpu_bo_move_notify`` is called from the move
    itself, before the old resource is released), and the old range is given to the new BO only after the
    copy finished (the ghost object lives until its fences signalled)."""

    def body() -> None:
        dev = TtmDevice(vram=2, gtt=4, system=4)
        x = dev.bo_create(4, ["VRAM"], name="X", init=INIT)
        buf = ttm_bo_export(x)
        w = dev.bo_create(4, ["VRAM"], name="W")
        y = dev.bo_create(4, ["GTT"], name="Y")
        with w.resv:
            ttm_bo_pin(w)  # X is the only victim
        busy = make_fence()  # an importer's job still reading X
        with x.resv:
            x.resv.reserve_fences(1)
            x.resv.add_fence(busy, Usage.BOOKKEEP)
        moved = Completion("moved")
        seen: dict[str, Any] = {}

        def notify(at: DmaBufAttachment) -> None:
            seen["held"] = at.dmabuf.resv.held()
            seen["old_still_owned"] = all(p.owner is sgt.placement for p in sgt.pages)
            moved.complete_all()

        a = buf.attach("gpu", DmaBufAttachOps(move_notify=notify))
        with buf.resv:
            sgt = a.map()
        old_pages = list(sgt.pages)

        def evict() -> int:
            return dev.validate(y, ["VRAM"])

        t = dmabuf.spawn(evict, name="evict")
        moved.wait()
        assert seen == {"held": True, "old_still_owned": True}
        with x.resv:
            kernel = [f for f, u in x.resv.iter_fences(Usage.KERNEL) if u == Usage.KERNEL]
        assert len(kernel) == 1  # the move fence
        assert not kernel[0].is_signaled()  # the copy waits for the busy fence
        assert all(p.owner is sgt.placement for p in old_pages)  # not reused while busy
        assert y.mem_type == "GTT"  # so Y cannot have X's VRAM yet
        busy.signal()
        assert t.join() == 0
        assert kernel[0].is_signaled() and y.mem_type == "VRAM" and x.mem_type == "GTT"
        assert y.bo is not None and [p.index for p in y.bo.placement.pages] == [p.index for p in old_pages]
        with buf.resv:
            a.unmap(sgt)
        a.detach()
        with w.resv:
            ttm_bo_unpin(w)
        buf.put()
        dev.fini()
        check_all()

    _run_threads_then_explore(body, preemption_bound=2)


def test_move_out_of_system_of_a_mapped_export_notifies_the_importer() -> None:
    """A move that changes the pages an importer mapped must be move_notified. amdgpu notifies only moves
    out of a non-SYSTEM placement (``amdgpu_bo_move_notify``) because ``amdgpu_dma_buf_map`` never maps a
    SYSTEM BO (it validates into GTT/VRAM first) and a SYSTEM -> GTT move keeps the ``ttm_tt`` pages. The
    model maps SYSTEM pages where they are and copies them on a move, so the exporter must notify: before
    the fix the (correct) importer's next job wrote the freed SYSTEM pages and the write was lost."""

    def body() -> None:
        dev = TtmDevice(vram=2, gtt=4, system=4)
        x = dev.bo_create(4, ["SYSTEM"], name="X", init=INIT)
        buf = ttm_bo_export(x)
        gfx = GpuEngine("gfx")
        gpu = GpuImporter(buf, gfx)
        gpu.prepare()  # maps X's SYSTEM pages
        assert dev.validate(x, ["GTT"]) == 0
        assert gpu.notified == 1 and gpu.sgt is None
        gpu.submit(0, DYN).fence.wait(False)
        assert gpu.maps == 2
        gpu.fini()
        buf.put()
        gfx.fini()
        dev.fini()
        check_all()
        assert x.bo is not None and x.bo.contents() == DYN

    _run_threads_then_explore(body, preemption_bound=2)


# ------------------------------------------------------------------ importer: in-flight DMA, re-map
class _NotifyingImporter(GpuImporter):
    """The correct importer, telling the test when its move_notify ran."""

    def __init__(self, *args: Any, moved: Completion, **kw: Any) -> None:
        self.moved = moved
        super().__init__(*args, **kw)

    def _move_notify(self, attach: DmaBufAttachment) -> None:
        super()._move_notify(attach)
        self.moved.complete_all()


def test_in_flight_job_uses_the_invalidated_mapping_unflagged_and_the_next_job_remaps() -> None:
    """Correct dynamic-importer behaviour the oracle must not flag: after move_notify, a job already queued
    keeps DMAing through the old mapping (mappings "stay valid and are not directly affected by this
    callback", ``dma_buf_attach_ops.move_notify``; amdgpu keeps the old placement in a ghost until the BO's
    fences signalled), while the next submission re-maps (``amdgpu_dma_buf_move_notify`` invalidates, the
    next CS validates and maps) and waits for the move fence (umem_dmabuf.c ``ib_umem_dmabuf_map_pages``:
    "the content of the pages may be not up-to-date. Wait for the exporter to finish the migration")."""

    def body() -> None:
        dev = TtmDevice(vram=2, gtt=4, system=4)
        x = dev.bo_create(4, ["VRAM"], name="X", init=INIT)
        buf = ttm_bo_export(x)
        w = dev.bo_create(4, ["VRAM"], name="W")
        y = dev.bo_create(4, ["GTT"], name="Y")
        with w.resv:
            ttm_bo_pin(w)
        gfx = GpuEngine("gfx")
        moved = Completion("moved")
        gpu = _NotifyingImporter(buf, gfx, moved=moved)
        gate = make_fence()  # another device's write the read must wait for (implicit sync)
        with buf.resv:
            buf.resv.reserve_fences(1)
            buf.resv.add_fence(gate, Usage.WRITE)
        read = gpu.submit(0, n=4)  # mapped now; queued behind the gate
        old = gpu.sgt
        assert old is not None
        t = dmabuf.spawn(lambda: dev.validate(y, ["VRAM"]), name="evict")
        moved.wait()
        with buf.resv:
            assert gpu.sgt is None and [s for s, _ in gpu.invalidated] == [old]
        assert old.unmapped_by is None
        gate.signal()
        read.fence.wait(False)
        assert read.result == INIT  # through the old mapping, before the copy: not flagged
        assert t.join() == 0 and x.mem_type == "GTT"
        write = gpu.submit(0, DYN)
        assert gpu.maps == 2 and gpu.sgt is not old and gpu.unmaps == 1
        write.fence.wait(False)
        gpu.fini()
        with w.resv:
            ttm_bo_unpin(w)
        buf.put()
        gfx.fini()
        dev.fini()
        check_all()
        assert x.bo is not None and x.bo.contents() == DYN

    dmabuf.run_threads(body, timeout=60)
    res = _explore(body, preemption_bound=2, max_executions=2000)
    assert res.ok, res.failure


# ------------------------------------------------------------------ the oracle catches broken importers
class _IgnoresMoveNotify(GpuImporter):
    """BROKEN: a dynamic importer that ignores move_notify and keeps using its mapping for new jobs
    (violates "all mappings should be destroyed and re-created", dma_buf_attach_ops.move_notify)."""

    def _move_notify(self, attach: DmaBufAttachment) -> None:
        self.notified += 1


class _FenceAfterUnlock(GpuImporter):
    """BROKEN: queues its job under the resv but publishes the job fence only after dropping and retaking
    the lock, so a move in between does not wait for the job (violates "must add fences for any access they
    cannot stop immediately", dma_buf.resv DYNAMIC IMPORTER RULES; amdgpu_cs_submit adds the fence before
    it unlocks)."""

    def submit(self, off: int, data: bytes | None = None, n: int = 0) -> GpuJob:
        resv = self.dmabuf.resv
        with resv:
            self._reap(False)
            assert self._validate() == 0 and self.sgt is not None
            job = self.engine.submit_dma(self._deps(data is not None), self.sgt, off, data, n, name="gpu.write")
            self.sgt_jobs.append(job.fence)
            self.jobs.append(job)
        with resv:
            resv.reserve_fences(1)
            resv.add_fence(job.fence, Usage.WRITE)
        return job


def _export_keeping_ghosts(x: Any) -> tuple[Any, Any]:
    """Export ``x`` with the default policy whose ``free_old_after`` also returns a fence the body signals
    at its end: the ghosts of X's moves keep their pages until then (otherwise TTM releases a ghost as soon
    as its move fence signalled, and DMA through the old mapping hits freed pages: ``StaleMapping``), so
    the oracle's checks of a kept old placement (late writes, stale reads) are what fires."""
    hold = make_fence()
    pol = get_policy(default_policy())
    pol.free_old_after = lambda buf: [hold]  # type: ignore[method-assign]
    return ttm_bo_export(x, policy=pol), hold


def _broken_importer_body(
    cls: type[GpuImporter], *, evict_for_space: bool, final_write: bool = False, keep_ghost: bool = False
) -> Any:
    """X (exported, VRAM, mapped by the importer) is moved to GTT while the importer writes DYN through a
    job, then reads X back through a later job. ``evict_for_space``: Y is validated into the full VRAM (W
    pinned, so X goes and Y takes X's old pages at once); else an explicit migration of X to GTT (its old
    pages stay in a ghost until the move fence signalled, or with ``keep_ghost`` until the end).
    ``final_write``: the later job writes DYN again instead of reading."""

    def body() -> None:
        dev = TtmDevice(vram=2, gtt=4, system=4)
        x = dev.bo_create(4, ["VRAM"], name="X", init=INIT)
        hold = None
        if keep_ghost:
            buf, hold = _export_keeping_ghosts(x)
        else:
            buf = ttm_bo_export(x)
        w = dev.bo_create(4, ["VRAM"], name="W")
        y = dev.bo_create(4, ["GTT"], name="Y", init=b"yyyy")
        with w.resv:
            ttm_bo_pin(w)
        gfx = GpuEngine("gfx")
        gpu = cls(buf, gfx)
        gpu.prepare()
        go = Completion("go")

        def t_gpu() -> None:
            go.wait()
            gpu.submit(0, DYN)

        def t_move() -> int:
            go.wait()
            if evict_for_space:
                return dev.validate(y, ["VRAM"])
            return dev.validate(x, ["GTT"])

        tasks = [dmabuf.spawn(t_gpu, name="gpu"), dmabuf.spawn(t_move, name="move")]
        go.complete_all()
        assert tasks[1].join() == 0
        tasks[0].join()
        if final_write:
            gpu.submit(0, DYN)  # a later job rewriting the same bytes: hides a lost write from the content
        else:
            gpu.submit(0, n=4)  # a later (read) job: after the move, whatever the interleaving
        gpu.wait_idle()
        gpu.fini()
        with w.resv:
            ttm_bo_unpin(w)
        buf.put()
        gfx.fini()
        if hold is not None:
            hold.signal()
        dev.fini()
        check_all()

    return body


def test_oracle_catches_an_importer_dmaing_through_a_stale_mapping() -> None:
    """The importer that ignores move_notify writes through its VRAM mapping after the eviction gave those
    pages to Y: the oracle reports a stale mapping naming the buffer, the move and the new owner."""
    res = _explore(_broken_importer_body(_IgnoresMoveNotify, evict_for_space=True), preemption_bound=2,
                   max_executions=2000)
    _assert_finding(
        res,
        StaleMapping,
        ("of X through sgt", "X@VRAM/gen0", "move#1(X VRAM->GTT)", "now belongs to Y@VRAM"),
    )


def test_oracle_stays_silent_on_the_correct_importer_in_the_same_scenarios() -> None:
    """The same two scenarios with the correct GpuImporter: no finding (the oracle does not flag correct
    behaviour), over the same search bound."""
    for evict, final_write in ((True, False), (False, False), (False, True)):
        res = _explore(_broken_importer_body(GpuImporter, evict_for_space=evict, final_write=final_write),
                       preemption_bound=2, max_executions=1500)
        assert res.ok, res.failure


def test_oracle_catches_an_importer_that_loses_bytes() -> None:
    """The importer that publishes its job fence after unlocking: an explicit migration's copy does not
    wait for the job, whose write lands in X's old VRAM pages after they were copied -- the oracle's "no
    byte lost" check names the byte, the writer, the mapping and the move that lost it."""
    res = _explore(_broken_importer_body(_FenceAfterUnlock, evict_for_space=False, keep_ghost=True),
                   preemption_bound=2, max_executions=3000)
    _assert_finding(
        res,
        LostWrite,
        ("lost write: X byte 0", "0x44", "X@VRAM/gen0", "move#1(X VRAM->GTT)", "the copy must wait"),
    )


def _stale_read_body(cls: type[GpuImporter]) -> Any:
    """X mapped by importer ``cls`` ("reader") is migrated to GTT (its old VRAM pages kept in a ghost until
    the end, see :func:`_export_keeping_ghosts`); a correct importer ("writer") then writes DYN, and the
    reader reads X through a job."""

    def body() -> None:
        dev = TtmDevice(vram=2, gtt=4, system=4)
        x = dev.bo_create(4, ["VRAM"], name="X", init=INIT)
        buf, hold = _export_keeping_ghosts(x)
        gfx = GpuEngine("gfx")
        reader = cls(buf, gfx, "reader")
        writer = GpuImporter(buf, gfx, "writer")
        reader.prepare()
        go = Completion("go")

        def t_move() -> int:
            go.wait()
            return dev.validate(x, ["GTT"])

        t = dmabuf.spawn(t_move, name="move")
        go.complete_all()
        assert t.join() == 0
        writer.submit(0, DYN)
        job = reader.submit(0, n=4)
        reader.wait_idle()
        assert job.result == DYN, job.result
        reader.fini()
        writer.fini()
        buf.put()
        gfx.fini()
        hold.signal()
        dev.fini()
        check_all()

    return body


def test_oracle_catches_a_stale_read_through_a_kept_old_placement() -> None:
    """The importer that ignores move_notify reads through its VRAM mapping after the migration: the old
    pages are not freed yet (a TTM ghost kept by the policy's ``free_old_after`` fence), but they no longer hold X's
    content -- the device reads stale data. The oracle reports a stale mapping (before the audit it stayed
    silent: only freed pages and unmapped mappings were checked); the correct importer re-maps and reads
    DYN (``dma_buf_attach_ops.move_notify``: "all mappings should be destroyed and re-created")."""
    res = _explore(_stale_read_body(_IgnoresMoveNotify), preemption_bound=1)
    _assert_finding(
        res,
        StaleMapping,
        ("stale mapping: read of X through sgt", "X@VRAM/gen0", "after move#1(X VRAM->GTT) had copied it"),
    )
    ok = _explore(_stale_read_body(GpuImporter), preemption_bound=1)
    assert ok.ok and ok.complete, ok.failure


def test_oracle_catches_a_lost_write_that_a_later_write_hides() -> None:
    """The same fence-after-unlock importer, whose later job rewrites the same bytes: X's final content is
    right, yet the first write was lost (it landed in the old pages after the copy, and a reader in between
    saw old data). The oracle records writes into copied-away old pages and reports them (before the audit
    ``check_all`` compared only the final content and passed)."""
    res = _explore(_broken_importer_body(_FenceAfterUnlock, evict_for_space=False, final_write=True,
                                         keep_ghost=True),
                   preemption_bound=2, max_executions=3000)
    _assert_finding(
        res,
        LostWrite,
        (
            "lost write: X page 0",
            "sgt1(X@VRAM/gen0)",
            "after move#1(X VRAM->GTT) had copied it away",
            "never reached X@GTT/gen1",
        ),
    )
