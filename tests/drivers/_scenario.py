"""The end-to-end scenario of the reference drivers, shared by the tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dmabuf
from dmabuf.buf import check_all
from dmabuf.drivers import (
    GpuEngine,
    GpuImporter,
    StaticImporter,
    TtmDevice,
    ttm_bo_export,
    ttm_bo_pin,
    ttm_bo_unpin,
)
from dmabuf.kernel import Completion

INIT = bytes([1, 2, 3, 4])
DYN = b"DDDD"


def shared_eviction(
    *,
    static: bool = True,
    pin_w: bool = False,
    two_engines: bool = False,
    record: dict[str, Any] | None = None,
    static_kw: dict[str, Any] | None = None,
    **dyn_kw: Any,
) -> Callable[[], None]:
    """X (exported, VRAM) is shared by a dynamic importer (writes DDDD through a job) and a static importer
    (reads through a job); a third task validates Y into VRAM, which is full (X and W), so an LRU victim is
    evicted to GTT: X (then move_notify) unless the static importer pins it, or W. ``pin_w`` pins W so X is
    the only victim. ``dyn_kw`` are GpuImporter switches (the deliberate bugs)."""

    def body() -> None:
        dev = TtmDevice(vram=2, gtt=4, system=4)
        x = dev.bo_create(4, ["VRAM"], name="X", init=INIT)
        buf = ttm_bo_export(x)
        gfx = GpuEngine("gfx")
        disp = GpuEngine("display") if two_engines else gfx
        dyn = GpuImporter(buf, gfx, "gpu", **dyn_kw)
        dyn.prepare()  # mapped before the eviction: a move must invalidate it
        w = dev.bo_create(4, ["VRAM"], name="W")  # VRAM is full; LRU: X, W
        y = dev.bo_create(4, ["GTT"], name="Y")
        if pin_w:
            with w.resv:
                ttm_bo_pin(w)

        # a start barrier: every task exists before any of them acts (see start_all)
        go = Completion("go")

        def t_dyn() -> None:
            go.wait()
            dyn.submit(0, DYN)

        def t_static() -> bytes:
            go.wait()
            s = StaticImporter(buf, disp, "display", **(static_kw or {}))
            job = s.submit(0, n=4)
            s.fini()
            job.fence.wait(False)  # already signalled unless the importer detached too early
            return bytes(job.result)

        def t_evict() -> int:
            go.wait()
            return dev.validate(y, ["VRAM"])

        tasks = [dmabuf.spawn(t_dyn, name="gpu"), dmabuf.spawn(t_evict, name="evict")]
        if static:
            tasks.append(dmabuf.spawn(t_static, name="display"))
        go.complete_all()
        res = [t.join() for t in tasks]
        assert res[1] == 0, f"validate of Y into VRAM failed: {res[1]}"
        assert y.mem_type == "VRAM"
        if static:
            assert res[2] in (INIT, DYN), f"the static importer read {res[2]!r}"
        dyn.fini()
        if pin_w:
            with w.resv:
                ttm_bo_unpin(w)
        buf.put()
        gfx.fini()
        if disp is not gfx:
            disp.fini()
        dev.fini()
        check_all()
        assert x.bo is not None and x.bo.contents() == DYN
        if record is not None:
            record["executions"] = record.get("executions", 0) + 1
            if x.mem_type != "VRAM":
                record["x_evicted"] = record.get("x_evicted", 0) + 1
            if dyn.notified:
                record["notified"] = record.get("notified", 0) + 1
            if dyn.maps > 1:
                record["remapped"] = record.get("remapped", 0) + 1
            if dev.skipped_pinned:
                record["skipped_pinned"] = record.get("skipped_pinned", 0) + 1

    return body
