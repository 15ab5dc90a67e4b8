"""The TTM-like exporter on its own: capacity, per-domain LRU, pin/unpin, validate with eviction, move fences,
move_notify under the victim's resv, export, release; and eviction back-off between two drm_exec contexts."""

from __future__ import annotations

from typing import Any

import pytest

import dmabuf
from dmabuf.buf import DmaBufAttachOps, check_all
from dmabuf.drivers import (
    TtmDevice,
    ttm_bo_export,
    ttm_bo_move_to_lru_tail,
    ttm_bo_pin,
    ttm_bo_unpin,
    ttm_bo_validate,
    ttm_exec_validate,
)
from dmabuf.errors import KernelWarning
from dmabuf.kernel import Completion
from dmabuf.resv import Usage
from dmabuf.runtime import label_of


def _both(body: Any, **kw: Any) -> dmabuf.ExploreResult:
    dmabuf.run_threads(body, timeout=60)
    res = dmabuf.explore(body, database=None, **kw)
    assert res.ok, res.failure
    return res


def _lru(dev: TtmDevice, dom: str) -> list[str]:
    return [str(label_of(b)) for b in dev.man[dom].lru]


def test_capacity_lru_and_enospc() -> None:
    def body() -> None:
        dev = TtmDevice(vram=2, gtt=2, system=2)
        x = dev.bo_create(4, ["VRAM"], name="X")
        w = dev.bo_create(4, ["VRAM", "GTT"], name="W")
        z = dev.bo_create(8, ["VRAM", "GTT"], name="Z")  # VRAM full: GTT
        assert (x.mem_type, w.mem_type, z.mem_type) == ("VRAM", "VRAM", "GTT")
        assert dev.man["VRAM"].usage == 2 and dev.man["GTT"].usage == 2
        assert _lru(dev, "VRAM") == ["X", "W"]
        with x.resv:
            ttm_bo_move_to_lru_tail(x)
        assert _lru(dev, "VRAM") == ["W", "X"]
        for b in (x, w, z):  # everything pinned: nothing can be evicted
            with b.resv:
                ttm_bo_pin(b)
        with pytest.raises(OSError, match="no room"):
            dev.bo_create(4, ["VRAM", "GTT"], name="Q")
        for b in (x, w, z):
            with b.resv:
                ttm_bo_unpin(b)
        dev.fini()

    _both(body)


def test_pin_takes_the_bo_off_the_lru_and_unpin_at_zero_warns() -> None:
    def body() -> None:
        dev = TtmDevice()
        x = dev.bo_create(4, ["VRAM"], name="X")
        w = dev.bo_create(4, ["VRAM"], name="W")
        with x.resv:
            ttm_bo_pin(x)
            ttm_bo_pin(x)
            assert x.pin_count == 2 and _lru(dev, "VRAM") == ["W"]
            ttm_bo_unpin(x)
            assert _lru(dev, "VRAM") == ["W"]
            ttm_bo_unpin(x)
            assert _lru(dev, "VRAM") == ["W", "X"]
            with pytest.raises(KernelWarning, match="not pinned"):
                ttm_bo_unpin(x)
        with pytest.raises(KernelWarning, match="reservation lock"):
            ttm_bo_pin(w)  # resv not held
        dev.fini()

    dmabuf.run_threads(body)


def test_validate_evicts_the_lru_head_and_pipelines_the_move() -> None:
    def body() -> None:
        dev = TtmDevice(vram=2, gtt=4, system=4)
        x = dev.bo_create(4, ["VRAM"], name="X", init=b"xxxx")
        w = dev.bo_create(4, ["VRAM"], name="W", init=b"wwww")
        y = dev.bo_create(4, ["GTT"], name="Y", init=b"yyyy")
        assert dev.validate(y, ["VRAM"]) == 0
        assert (x.mem_type, w.mem_type, y.mem_type) == ("GTT", "VRAM", "VRAM")
        assert dev.evictions == 1 and _lru(dev, "VRAM") == ["W", "Y"]
        with x.resv:  # the eviction's move fence is in X's resv with KERNEL usage
            kernel = list(x.resv.iter_fences(Usage.KERNEL))
        assert kernel and all(u == Usage.KERNEL for _, u in kernel)
        with w.resv:
            ttm_bo_move_to_lru_tail(w)  # now Y is the least recently used
        assert dev.validate(x, ["VRAM"]) == 0
        assert (x.mem_type, y.mem_type) == ("VRAM", "GTT")
        dev.fini()
        check_all()
        assert (
            x.bo is not None
            and y.bo is not None
            and x.bo.contents() == b"xxxx"
            and y.bo.contents() == b"yyyy"
        )
        assert all(not m.ghosts for m in dev.man.values())

    res = _both(body)
    assert res.complete


def test_pinned_bos_are_skipped_and_fallback_domains() -> None:
    def body() -> None:
        dev = TtmDevice(vram=2, gtt=4, system=4)
        x = dev.bo_create(4, ["VRAM"], name="X")
        w = dev.bo_create(4, ["VRAM"], name="W")
        y = dev.bo_create(4, ["GTT"], name="Y")
        with x.resv:
            ttm_bo_pin(x)
        assert dev.validate(y, ["VRAM"]) == 0
        assert (x.mem_type, w.mem_type) == ("VRAM", "GTT")  # X pinned: W went
        with w.resv:
            ttm_bo_pin(w)
            assert ttm_bo_validate(w, ["VRAM"]) == -22  # pinned elsewhere: -EINVAL
        with y.resv:
            ttm_bo_pin(y)
        assert dev.validate(w, ["SYSTEM"]) == -22
        z = dev.bo_create(4, ["GTT"], name="Z")
        assert dev.validate(z, ["VRAM"]) == -28  # everything in VRAM pinned: -ENOSPC
        assert dev.validate(z, ["VRAM"], ["GTT"]) == 0 and z.mem_type == "GTT"  # stays in its fallback
        for b in (x, w, y):
            with b.resv:
                ttm_bo_unpin(b)
        dev.fini()

    _both(body)


def test_eviction_of_an_exported_bo_notifies_under_the_resv_and_release() -> None:
    def body() -> None:
        dev = TtmDevice(vram=2, gtt=4, system=4)
        x = dev.bo_create(4, ["VRAM"], name="X")
        buf = ttm_bo_export(x)
        assert ttm_bo_export(x) is buf and buf.is_dynamic and buf.resv is x.resv
        seen: list[bool] = []
        a = buf.attach("gpu", DmaBufAttachOps(move_notify=lambda at: seen.append(at.dmabuf.resv.held())))
        dev.bo_create(4, ["VRAM"], name="W")
        y = dev.bo_create(4, ["GTT"], name="Y")
        with buf.resv:
            sgt = a.map()  # map_dma_buf marks X recently used: W is the victim
            a.unmap(sgt)
        assert dev.validate(y, ["VRAM"]) == 0 and x.mem_type == "VRAM" and seen == []
        with y.resv:
            ttm_bo_move_to_lru_tail(y)
        z = dev.bo_create(4, ["GTT"], name="Z")
        assert dev.validate(z, ["VRAM"]) == 0 and x.mem_type == "GTT"
        assert seen == [True]  # move_notify once, with the resv held by the evicting task
        a.detach()
        x.put()  # the creation reference; the dma-buf still holds one
        assert not x.released
        buf.put()  # last reference: released once idle
        assert x.released
        dev.fini()  # frees the ghosts (old pages of Y and Z in GTT, of X in VRAM)
        assert (dev.man["VRAM"].usage, dev.man["GTT"].usage) == (2, 1)  # Y, Z / W

    _both(body)


def _backoff_body(rec: dict[str, Any]) -> Any:
    def body() -> None:
        dev = TtmDevice(vram=2, gtt=4, system=4)
        a1 = dev.bo_create(4, ["VRAM"], name="A1")
        b1 = dev.bo_create(4, ["VRAM"], name="B1")
        a2 = dev.bo_create(4, ["GTT"], name="A2")
        b2 = dev.bo_create(4, ["GTT"], name="B2")
        go = Completion("go")

        # each context holds its working set (A1, A2 / B1, B2) and needs VRAM for its second BO: the only
        # victim is the other context's first BO, which the other context holds: ABBA on the resvs
        def ctx_a() -> int:
            go.wait()
            return ttm_exec_validate([a1, a2], a2, ["VRAM"], ["GTT"])

        def ctx_b() -> int:
            go.wait()
            return ttm_exec_validate([b1, b2], b2, ["VRAM"], ["GTT"])

        ta, tb = dmabuf.spawn(ctx_a, name="A"), dmabuf.spawn(ctx_b, name="B")
        go.complete_all()
        assert (ta.join(), tb.join()) == (0, 0)
        assert dev.man["VRAM"].usage <= 2
        dev.fini()
        check_all()
        rec["executions"] = rec.get("executions", 0) + 1
        if dev.backoffs:
            rec["backoff"] = rec.get("backoff", 0) + 1
        if a2.mem_type == "VRAM" and b2.mem_type == "VRAM":
            rec["both"] = rec.get("both", 0) + 1

    return body


def test_two_contexts_evicting_each_others_bos_back_off_without_deadlock() -> None:
    rec: dict[str, Any] = {}
    body = _backoff_body(rec)
    dmabuf.run_threads(body, timeout=60)
    res = dmabuf.explore(body, database=None, preemption_bound=1)
    assert res.ok and res.complete, res.failure
    assert res.executions > 30  # ~48 (~92 before ghosts' pages were freed by their copy task)
    assert rec.get("backoff"), rec  # some interleavings hit -EDEADLK in the eviction and backed off
    assert rec.get("both"), rec  # and in some both BOs made it into VRAM


def test_eviction_back_off_exhaustive_at_preemption_bound_2() -> None:
    rec: dict[str, Any] = {}
    res = dmabuf.explore(_backoff_body(rec), database=None, preemption_bound=2)
    assert res.ok and res.complete, res.failure
    assert rec.get("backoff"), rec
