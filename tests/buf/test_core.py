"""dma-buf core (v6.12): lifecycle, attach/map/unmap, static/dynamic mismatch, CPU access, vmap, mmap, and the
locking convention, on both runtimes."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

import pytest
from _buf_drivers import TrackingImporter

import dmabuf
from dmabuf.buf import (
    DMA_BIDIRECTIONAL,
    DMA_FROM_DEVICE,
    DMA_TO_DEVICE,
    DmaBuf,
    DmaBufAttachOps,
    DmaBufOps,
    MemoryExporter,
    SgTable,
    VmAreaStruct,
    check_all,
)
from dmabuf.errors import KernelBug, KernelWarning, StaleMapping, UsageError
from dmabuf.kernel import (
    DEFINE_DMA_BUF_EXPORT_INFO,
    ERR_PTR,
    IS_ERR,
    PTR_ERR,
    DmaBufExportInfo,
    close_fd,
    config,
    dma_buf_attach,
    dma_buf_begin_cpu_access,
    dma_buf_detach,
    dma_buf_dynamic_attach,
    dma_buf_end_cpu_access,
    dma_buf_export,
    dma_buf_fd,
    dma_buf_get,
    dma_buf_map_attachment,
    dma_buf_map_attachment_unlocked,
    dma_buf_mmap,
    dma_buf_move_notify,
    dma_buf_pin,
    dma_buf_put,
    dma_buf_unmap_attachment,
    dma_buf_unmap_attachment_unlocked,
    dma_buf_unpin,
    dma_buf_vmap,
    dma_buf_vmap_unlocked,
    dma_buf_vunmap,
    dma_buf_vunmap_unlocked,
    get_dma_buf,
    set_warn_mode,
)
from dmabuf.resv import Usage
from dmabuf.scenarios.base import make_fence


def run(body: Callable[[], Any]) -> Any:
    return dmabuf.run_threads(body, timeout=30)


def _with_move_notify(on: bool, body: Callable[[], Any]) -> None:
    """Run ``body`` with ``CONFIG_DMABUF_MOVE_NOTIFY`` set to ``on`` (restored afterwards)."""
    old = config.CONFIG_DMABUF_MOVE_NOTIFY
    config.CONFIG_DMABUF_MOVE_NOTIFY = on
    try:
        run(body)
    finally:
        config.CONFIG_DMABUF_MOVE_NOTIFY = old


def _cb(*a: Any) -> int:
    return 0


def _nop_ops(**kw: Any) -> DmaBufOps:
    return DmaBufOps(map_dma_buf=lambda a, d: SgTable(), unmap_dma_buf=_cb, release=_cb, **kw)


# ------------------------------------------------------------------ export
@pytest.mark.parametrize(
    "missing", ["map_dma_buf", "unmap_dma_buf", "release"]
)
def test_export_missing_mandatory_callback_warns_einval(missing: str) -> None:
    def body() -> None:
        kw: dict[str, Any] = dict(map_dma_buf=_cb, unmap_dma_buf=_cb, release=_cb)
        kw[missing] = None
        info = DmaBufExportInfo(ops=DmaBufOps(**kw), size=8, priv=object())
        with pytest.raises(KernelWarning) as ei:
            dma_buf_export(info)
        assert missing in str(ei.value)
        assert ei.value.rule == "dma_buf_export: mandatory exporter callbacks missing"

    def body_log() -> None:
        kw: dict[str, Any] = dict(map_dma_buf=_cb, unmap_dma_buf=_cb, release=_cb)
        kw[missing] = None
        info = DmaBufExportInfo(ops=DmaBufOps(**kw), size=8, priv=object())
        assert dma_buf_export(info) == ERR_PTR(-errno.EINVAL)

    run(body)
    set_warn_mode("log")
    res = dmabuf.explore(body_log)
    assert res.failure is not None and res.failure.kind == "kernel-warning", res.failure


def test_export_rules() -> None:
    def body() -> None:
        no_priv = DmaBufExportInfo(ops=_nop_ops(), size=8)
        assert PTR_ERR(dma_buf_export(no_priv)) == -errno.EINVAL
        pin_only = DmaBufExportInfo(ops=_nop_ops(pin=_cb), size=8, priv=1)
        assert PTR_ERR(dma_buf_export(pin_only)) == -errno.EINVAL
        cached_dyn = DmaBufExportInfo(ops=_nop_ops(pin=_cb, unpin=_cb, cache_sgt_mapping=True), size=8, priv=1)
        assert PTR_ERR(dma_buf_export(cached_dyn)) == -errno.EINVAL
        info = DEFINE_DMA_BUF_EXPORT_INFO("test")
        info.ops, info.size, info.priv = _nop_ops(), 8, 1
        buf = dma_buf_export(info)
        assert isinstance(buf, DmaBuf) and buf.size == 8 and buf.exp_name == "test"
        assert buf.resv is not None and buf._embedded_resv and not buf.is_dynamic
        dma_buf_put(buf)
        assert buf.released

    set_warn_mode("log")
    res = dmabuf.explore(body)
    assert res.failure is not None and res.failure.kind == "kernel-warning", res.failure  # logged WARNs reported
    assert "mandatory" in res.failure.message or "pin" in res.failure.message


def test_export_with_given_resv_and_release_keeps_it() -> None:
    def body() -> None:
        from dmabuf.resv import ReservationObject

        resv = ReservationObject("shared")
        exp = MemoryExporter(8, resv=resv)
        assert exp.buf.resv is resv and not exp.buf._embedded_resv
        exp.buf.put()
        with resv:  # still usable: the exporter's resv is not finalised by the core
            pass

    run(body)


# ------------------------------------------------------------------ files
def test_fd_get_put_refcounts_and_release() -> None:
    def body() -> None:
        released = []
        exp = MemoryExporter(8)
        orig = exp.release
        exp.ops.release = lambda b: (released.append(b), orig(b))
        buf = exp.buf
        fd = dma_buf_fd(buf, 0)
        assert fd == 3
        b2 = dma_buf_get(fd)
        assert b2 is buf and buf.file is not None and buf.file.f_count == 2
        get_dma_buf(buf)
        assert buf.file.f_count == 3
        assert dma_buf_get(99) == ERR_PTR(-errno.EBADF)
        dma_buf_put(buf)
        dma_buf_put(buf)
        assert released == []
        assert close_fd(fd) == 0  # the fd's reference was the last
        assert released == [buf] and buf.released
        assert close_fd(fd) == -errno.EBADF
        assert dma_buf_fd(None, 0) == -errno.EINVAL  # type: ignore[arg-type]

    run(body)


def test_dma_buf_get_of_a_non_dmabuf_file_is_einval() -> None:
    def body() -> None:
        from dmabuf.buf import fd_table

        fd_table()[3] = object()
        assert dma_buf_get(3) == ERR_PTR(-errno.EINVAL)

    run(body)


def test_release_with_attachments_warns() -> None:
    def body() -> None:
        exp = MemoryExporter(8, dynamic=False)
        exp.buf.attach("dev")
        with pytest.raises(KernelWarning) as ei:
            exp.buf.put()
        assert ei.value.rule == "dma_buf_release: attachments remain"

    run(body)


def test_put_after_release_and_attach_released_buffer_are_usage_errors() -> None:
    def body() -> None:
        exp = MemoryExporter(8)
        buf = exp.buf
        buf.put()
        with pytest.raises(UsageError, match="released by its last dma_buf_put"):
            buf.attach("dev")
        with pytest.raises(UsageError, match="use after free"):
            buf.put()

    run(body)


def test_release_while_vmapped_bugs() -> None:
    def body() -> None:
        exp = MemoryExporter(8)
        with exp.buf.resv:
            exp.buf.vmap()
        with pytest.raises(KernelBug, match="vmapped"):
            exp.buf.put()

    run(body)


# ------------------------------------------------------------------ attach / map
def test_static_importer_of_static_exporter(run_on: Any) -> None:
    def body() -> None:
        exp = MemoryExporter(8, dynamic=False)
        buf = exp.buf
        a = buf.attach("dev")
        assert a.sgt is None and not a.is_dynamic and exp.maps == 0  # no mismatch: nothing cached
        with buf.resv:
            with a.map(DMA_TO_DEVICE) as sgt:
                assert sgt.attachment is a and sgt.dir == DMA_TO_DEVICE
                sgt.dma_write(1, b"xyz")
                assert exp.maps == 1
            assert exp.unmaps == 1
            assert sgt.unmapped_by is not None
            with pytest.raises(StaleMapping, match="after it was unmapped"):
                sgt.dma_read(0, 1)
        a.detach()
        check_all()
        buf.put()

    run_on(body)


def test_mismatch_static_importer_dynamic_exporter_pins_and_caches_at_attach(run_on: Any) -> None:
    def body() -> None:
        exp = MemoryExporter(8, dynamic=True)
        buf = exp.buf
        a = buf.attach("dev")
        assert exp.pins == 1 and exp.bo.pin_count == 1 and exp.maps == 1
        assert isinstance(a.sgt, SgTable) and a.dir == DMA_BIDIRECTIONAL
        with buf.resv:
            s1 = dma_buf_map_attachment(a, DMA_TO_DEVICE)
            s2 = dma_buf_map_attachment(a, DMA_FROM_DEVICE)
            assert s1 is a.sgt and s2 is a.sgt and exp.maps == 1  # cached: no exporter call
            dma_buf_unmap_attachment(a, s1, DMA_TO_DEVICE)  # cached: left alone
            assert exp.unmaps == 0 and s1.unmapped_by is None
            assert exp.move("GTT") == -errno.EBUSY  # pinned
        a.detach()
        assert exp.unmaps == 1 and exp.bo.pin_count == 0 and a.sgt is None
        buf.put()

    run_on(body)


def test_mismatch_dynamic_importer_static_exporter_caches_without_pin(run_on: Any) -> None:
    def body() -> None:
        exp = MemoryExporter(8, dynamic=False)
        imp = TrackingImporter()
        a = exp.buf.attach("dev", imp.ops)
        assert a.is_dynamic and exp.pins == 0 and exp.maps == 1 and a.sgt is not None
        with exp.buf.resv:
            assert dma_buf_map_attachment(a, DMA_TO_DEVICE) is a.sgt
        a.detach()
        assert exp.unmaps == 1
        exp.buf.put()

    run_on(body)


def test_cached_sgt_direction_clash_is_ebusy() -> None:
    def body() -> None:
        exp = MemoryExporter(8, dynamic=False, cache_sgt_mapping=True)
        a = exp.buf.attach("dev")
        with exp.buf.resv:
            s = dma_buf_map_attachment(a, DMA_TO_DEVICE)
            assert a.sgt is s and a.dir == DMA_TO_DEVICE
            assert dma_buf_map_attachment(a, DMA_FROM_DEVICE) == ERR_PTR(-errno.EBUSY)
            assert dma_buf_map_attachment(a, DMA_TO_DEVICE) is s
            assert exp.maps == 1
        a.detach()
        assert exp.unmaps == 1
        exp.buf.put()

    run(body)


def test_static_importer_map_waits_for_kernel_fences(run_on: Any) -> None:
    """Static importer of a static exporter: the map waits for the KERNEL fences (an eviction in flight)."""

    def body() -> None:

        exp = MemoryExporter(8, dynamic=False)
        buf = exp.buf
        a = buf.attach("dev")
        f = make_fence()
        with buf.resv:
            buf.resv.reserve_fences(1)
            buf.resv.add_fence(f, Usage.KERNEL)
        t = dmabuf.spawn(f.signal)
        with buf.resv:
            sgt = dma_buf_map_attachment(a, DMA_BIDIRECTIONAL)
            assert f.is_signaled()
            dma_buf_unmap_attachment(a, sgt, DMA_BIDIRECTIONAL)
        t.join()
        a.detach()
        buf.put()

    run_on(body)


def test_dynamic_importer_map_does_not_wait() -> None:
    def body() -> None:

        exp = MemoryExporter(8)
        imp = TrackingImporter()
        a = exp.buf.attach("dev", imp.ops)
        f = make_fence()
        with exp.buf.resv:
            exp.buf.resv.reserve_fences(1)
            exp.buf.resv.add_fence(f, Usage.KERNEL)
            sgt = dma_buf_map_attachment(a, DMA_BIDIRECTIONAL)
            assert not f.is_signaled()
            dma_buf_unmap_attachment(a, sgt, DMA_BIDIRECTIONAL)
        f.signal()
        a.detach()
        exp.buf.put()

    run(body)


@pytest.mark.parametrize("move_notify", [True, False])
def test_pin_on_map_follows_config(move_notify: bool) -> None:
    def body() -> None:
        exp = MemoryExporter(8)
        a = exp.buf.attach("dev", TrackingImporter().ops)
        with exp.buf.resv:
            sgt = dma_buf_map_attachment(a, DMA_BIDIRECTIONAL)
            assert exp.bo.pin_count == (0 if move_notify else 1)
            dma_buf_unmap_attachment(a, sgt, DMA_BIDIRECTIONAL)
            assert exp.bo.pin_count == 0
        a.detach()
        exp.buf.put()

    _with_move_notify(move_notify, body)


def test_pin_unpin_dynamic_and_warn_for_static() -> None:
    def body() -> None:
        exp = MemoryExporter(8, dynamic=False)
        a = exp.buf.attach("dev", TrackingImporter().ops)
        with exp.buf.resv:
            assert dma_buf_pin(a) == 0  # static exporter: no pin op
            dma_buf_unpin(a)
        exp2 = MemoryExporter(8)
        s = exp2.buf.attach("dev")
        with exp2.buf.resv, pytest.raises(KernelWarning, match="only dynamic importers may pin"):
            dma_buf_pin(s)

    run(body)


def test_attach_errors() -> None:
    def body() -> None:
        exp = MemoryExporter(8)
        with pytest.raises(KernelWarning, match="move_notify"):
            dma_buf_dynamic_attach(exp.buf, "dev", DmaBufAttachOps(), None)
        with pytest.raises(KernelWarning):
            dma_buf_attach(exp.buf, None)

    def body_log() -> None:
        exp = MemoryExporter(8)
        assert dma_buf_attach(None, "dev") == ERR_PTR(-errno.EINVAL)
        exp.ops.attach = lambda b, a: -errno.EBUSY
        assert dma_buf_attach(exp.buf, "dev") == ERR_PTR(-errno.EBUSY)
        assert exp.buf.attachments == []

    run(body)
    set_warn_mode("log")
    res = dmabuf.explore(body_log)
    assert res.failure is not None and res.failure.kind == "kernel-warning", res.failure


def test_attach_time_map_failure_unpins_and_detaches() -> None:
    def body() -> None:
        exp = MemoryExporter(8)
        exp.ops.map_dma_buf = lambda a, d: ERR_PTR(-errno.ENOMEM)
        got = dma_buf_attach(exp.buf, "dev")
        assert IS_ERR(got) and PTR_ERR(got) == -errno.ENOMEM
        assert exp.bo.pin_count == 0 and exp.buf.attachments == []

    run(body)


def test_detached_attachment_and_double_unmap_and_foreign_sgt() -> None:
    def body() -> None:
        exp = MemoryExporter(8)
        imp = TrackingImporter()
        a = exp.buf.attach("dev", imp.ops)
        b = exp.buf.attach("dev2", TrackingImporter().ops)
        with exp.buf.resv:
            sgt = a.map()
            with pytest.raises(UsageError, match="mapped through"):
                b.unmap(sgt)
            a.unmap(sgt)
            with pytest.raises(UsageError, match="already unmapped"):
                a.unmap(sgt)
        a.detach()
        with exp.buf.resv, pytest.raises(UsageError, match="detached"):
            a.map()
        with pytest.raises(UsageError, match="already detached"):
            a.detach()
        b.detach()
        exp.buf.put()

    run(body)


def test_map_unlocked_context_manager(run_on: Any) -> None:
    def body() -> None:
        exp = MemoryExporter(8)
        a = exp.buf.attach("dev", TrackingImporter().ops)
        with a.map_unlocked(DMA_TO_DEVICE) as sgt:
            sgt.dma_write(0, b"ab")
        assert exp.unmaps == 1 and not exp.buf.resv.is_locked()
        s = dma_buf_map_attachment_unlocked(a, DMA_BIDIRECTIONAL)
        assert isinstance(s, SgTable)
        assert s.dma_read(0, 3) == b"ab\x03"
        dma_buf_unmap_attachment_unlocked(a, s, DMA_BIDIRECTIONAL)
        a.detach()
        check_all()
        exp.buf.put()

    run_on(body)


# ------------------------------------------------------------------ move_notify
def test_move_notify_calls_every_dynamic_attachment_in_list_order(run_on: Any) -> None:
    def body() -> None:
        exp = MemoryExporter(8)
        order: list[str] = []
        a1 = exp.buf.attach("d1", DmaBufAttachOps(move_notify=lambda a: order.append("a1")))
        a2 = exp.buf.attach("d2", DmaBufAttachOps(move_notify=lambda a: order.append("a2")))
        st = exp.buf.attach("d3")  # static: pinned at attach, never notified
        with exp.buf.resv:
            dma_buf_move_notify(exp.buf)
        assert order == ["a2", "a1"]  # list_add puts new attachments at the head
        for a in (a1, a2, st):
            a.detach()
        exp.buf.put()

    run_on(body)


# ------------------------------------------------------------------ CPU access / vmap / mmap
def test_begin_cpu_access_waits_rw_fences() -> None:
    def body() -> None:

        exp = MemoryExporter(8)
        buf = exp.buf
        rd, wr = make_fence(), make_fence()
        with buf.resv:
            buf.resv.reserve_fences(2)
            buf.resv.add_fence(rd, Usage.READ)
            buf.resv.add_fence(wr, Usage.WRITE)
        t = dmabuf.spawn(wr.signal)
        assert dma_buf_begin_cpu_access(buf, DMA_FROM_DEVICE) == 0  # read access waits for writers only
        assert wr.is_signaled() and not rd.is_signaled()
        t2 = dmabuf.spawn(rd.signal)
        assert dma_buf_begin_cpu_access(buf, DMA_TO_DEVICE) == 0  # write access waits for readers too
        assert rd.is_signaled()
        assert dma_buf_end_cpu_access(buf, DMA_TO_DEVICE) == 0
        t.join()
        t2.join()
        exp.ops.begin_cpu_access = lambda b, d: -errno.EIO
        assert dma_buf_begin_cpu_access(buf, DMA_TO_DEVICE) == -errno.EIO

    run(body)
    res = dmabuf.explore(body)
    assert res.ok, res.failure


def test_vmap_refcounted() -> None:
    def body() -> None:
        exp = MemoryExporter(8)
        buf = exp.buf
        vunmaps: list[Any] = []
        exp.ops.vunmap = lambda b, m: vunmaps.append(m)
        ret, m1 = dma_buf_vmap_unlocked(buf)
        assert ret == 0 and buf.vmapping_counter == 1
        with buf.resv:
            ret, m2 = dma_buf_vmap(buf)
            assert ret == 0 and m2 == m1 and buf.vmapping_counter == 2
            m1.vaddr.write(0, b"\xff")
            dma_buf_vunmap(buf, m2)
            assert vunmaps == []
        dma_buf_vunmap_unlocked(buf, m1)
        assert len(vunmaps) == 1 and buf.vmap_ptr.is_null()
        with pytest.raises(StaleMapping):
            m1.vaddr.read(0, 1)
        with buf.resv, pytest.raises(KernelBug, match="not vmapped"):
            dma_buf_vunmap(buf, m1)
        check_all()
        buf.put()

    run(body)


def test_vmap_without_op_is_einval() -> None:
    def body() -> None:
        exp = MemoryExporter(8)
        exp.ops.vmap = None
        with exp.buf.resv:
            ret, m = dma_buf_vmap(exp.buf)
        assert ret == -errno.EINVAL and m.is_null()

    run(body)


def test_mmap_bounds() -> None:
    def body() -> None:
        exp = MemoryExporter(8)  # 2 pages of 4 bytes
        buf = exp.buf
        assert dma_buf_mmap(buf, VmAreaStruct(0, 8), 0) == 0
        assert dma_buf_mmap(buf, VmAreaStruct(0, 4), 1) == 0
        assert dma_buf_mmap(buf, VmAreaStruct(0, 8), 1) == -errno.EINVAL
        assert dma_buf_mmap(buf, VmAreaStruct(0, 8), (1 << 64) - 1) == -errno.EOVERFLOW
        vma = VmAreaStruct(0, 4)
        assert dma_buf_mmap(buf, vma, 1) == 0 and vma.vm_pgoff == 1 and vma.vm_file is buf.file
        exp.ops.mmap = None
        assert dma_buf_mmap(buf, VmAreaStruct(0, 4), 0) == -errno.EINVAL

    run(body)


# ------------------------------------------------------------------ locking convention
def _locked_fns(buf: DmaBuf, a: Any, sgt: Any) -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("dma_buf_pin", lambda: dma_buf_pin(a)),
        ("dma_buf_unpin", lambda: dma_buf_unpin(a)),
        ("dma_buf_map_attachment", lambda: dma_buf_map_attachment(a, DMA_BIDIRECTIONAL)),
        ("dma_buf_unmap_attachment", lambda: dma_buf_unmap_attachment(a, sgt, DMA_BIDIRECTIONAL)),
        ("dma_buf_vmap", lambda: dma_buf_vmap(buf)),
        ("dma_buf_vunmap", lambda: dma_buf_vunmap(buf, buf.vmap_ptr)),
        ("dma_buf_move_notify", lambda: dma_buf_move_notify(buf)),
    ]


REQUIRES = [
    "dma_buf_pin",
    "dma_buf_unpin",
    "dma_buf_map_attachment",
    "dma_buf_unmap_attachment",
    "dma_buf_vmap",
    "dma_buf_vunmap",
    "dma_buf_move_notify",
]


@pytest.mark.parametrize("fn", REQUIRES)
def test_locking_convention_requires_resv(fn: str, run_on: Any) -> None:
    def body() -> None:
        exp = MemoryExporter(8)
        buf = exp.buf
        a = buf.attach("dev", TrackingImporter().ops)
        with buf.resv:
            sgt = a.map()
        call = dict(_locked_fns(buf, a, sgt))[fn]
        with pytest.raises(KernelWarning) as ei:
            call()
        assert ei.value.rule == f"dma-buf locking convention: {fn} requires the reservation lock"
        assert str(ei.value).startswith(f"WARNING: dma-buf locking convention: {fn} requires the reservation lock")

    run_on(body)


FORBIDS = [
    "dma_buf_attach",
    "dma_buf_dynamic_attach",
    "dma_buf_detach",
    "dma_buf_export",
    "dma_buf_fd",
    "dma_buf_get",
    "dma_buf_put",
    "dma_buf_mmap",
    "dma_buf_begin_cpu_access",
    "dma_buf_end_cpu_access",
    "dma_buf_map_attachment_unlocked",
    "dma_buf_unmap_attachment_unlocked",
    "dma_buf_vmap_unlocked",
    "dma_buf_vunmap_unlocked",
]


@pytest.mark.parametrize("fn", FORBIDS)
def test_locking_convention_forbids_resv(fn: str, run_on: Any) -> None:
    def body() -> None:
        exp = MemoryExporter(8)
        buf = exp.buf
        a = buf.attach("dev", TrackingImporter().ops)
        sgt = dma_buf_map_attachment_unlocked(a, DMA_BIDIRECTIONAL)
        fd = dma_buf_fd(buf.get(), 0)
        calls: dict[str, Callable[[], Any]] = {
            "dma_buf_attach": lambda: dma_buf_attach(buf, "d"),
            "dma_buf_dynamic_attach": lambda: dma_buf_dynamic_attach(buf, "d", TrackingImporter().ops, None),
            "dma_buf_detach": lambda: dma_buf_detach(buf, a),
            "dma_buf_export": lambda: dma_buf_export(DmaBufExportInfo(ops=exp.ops, size=8, priv=1, resv=buf.resv)),
            "dma_buf_fd": lambda: dma_buf_fd(buf, 0),
            "dma_buf_get": lambda: dma_buf_get(fd),
            "dma_buf_put": lambda: dma_buf_put(buf),
            "dma_buf_mmap": lambda: dma_buf_mmap(buf, VmAreaStruct(0, 4), 0),
            "dma_buf_begin_cpu_access": lambda: dma_buf_begin_cpu_access(buf, DMA_TO_DEVICE),
            "dma_buf_end_cpu_access": lambda: dma_buf_end_cpu_access(buf, DMA_TO_DEVICE),
            "dma_buf_map_attachment_unlocked": lambda: dma_buf_map_attachment_unlocked(a, DMA_BIDIRECTIONAL),
            "dma_buf_unmap_attachment_unlocked": lambda: dma_buf_unmap_attachment_unlocked(a, sgt, DMA_BIDIRECTIONAL),
            "dma_buf_vmap_unlocked": lambda: dma_buf_vmap_unlocked(buf),
            "dma_buf_vunmap_unlocked": lambda: dma_buf_vunmap_unlocked(buf, buf.vmap_ptr),
        }
        with buf.resv:
            with pytest.raises(KernelWarning) as ei:
                calls[fn]()
        assert ei.value.rule == f"dma-buf locking convention: {fn} must be called without the reservation lock"

    run_on(body)


def test_locking_convention_log_mode_carries_on_without_deadlock() -> None:
    def body() -> None:
        exp = MemoryExporter(8)
        buf = exp.buf
        with buf.resv:
            a = buf.attach("dev", TrackingImporter().ops)  # WARN, then list_add under the held lock
            s = dma_buf_map_attachment_unlocked(a, DMA_BIDIRECTIONAL)
            assert isinstance(s, SgTable)
            dma_buf_unmap_attachment_unlocked(a, s, DMA_BIDIRECTIONAL)
            assert buf.resv.held()
        a.detach()

    set_warn_mode("log")
    res = dmabuf.explore(body)
    assert res.failure is not None and res.failure.kind == "kernel-warning", res.failure
    assert "dma-buf locking convention: dma_buf_dynamic_attach must be called without" in res.failure.message
