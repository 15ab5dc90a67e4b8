"""Error paths of the dma-buf core: a typed error leaves nothing half-changed (resv unlocked, attachment
unlinked, buffer unpinned), a detached attachment cannot be unmapped through, exporter callbacks' return
values are checked in one place, and the operation tables reject unknown fields with a typed error.

Kernel reference: ``dma_buf_dynamic_attach`` (its ``err_unpin`` / ``err_unlock`` paths),
``dma_buf_map_attachment`` (unpin on a map error), drivers/dma-buf/dma-buf.c v6.12."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _buf_drivers import TrackingImporter
from test_core import _with_move_notify, run

from dmabuf.buf import MemoryExporter
from dmabuf.errors import InvalidArgument, UsageError
from dmabuf.kernel import (
    DEFINE_DMA_BUF_EXPORT_INFO,
    DMA_BIDIRECTIONAL,
    DmaBuf,
    DmaBufAttachment,
    DmaBufAttachOps,
    DmaBufExportInfo,
    DmaBufOps,
    SgTable,
    VmAreaStruct,
    dma_buf_attach,
    dma_buf_attach_and_map,
    dma_buf_begin_cpu_access,
    dma_buf_detach,
    dma_buf_dynamic_attach,
    dma_buf_end_cpu_access,
    dma_buf_export,
    dma_buf_map_attachment,
    dma_buf_map_attachment_unlocked,
    dma_buf_mmap,
    dma_buf_pin,
    dma_buf_unmap_attachment,
    dma_buf_unmap_attachment_unlocked,
    dma_buf_vmap_unlocked,
    dma_resv_lock,
    dma_resv_unlock,
)


def _cb(*a: Any) -> int:
    return 0


class _Exporter:
    """An exporter whose callbacks log what they do; ``map_result`` is what ``map_dma_buf`` returns (a
    callable: called; an exception instance: raised)."""

    def __init__(self, *, dynamic: bool = True, map_result: Any = None, pin_result: Any = 0) -> None:
        self.log: list[str] = []
        self.map_result = map_result
        self.pin_result = pin_result
        self.pins = 0
        self.ops = DmaBufOps(
            map_dma_buf=self.map_dma_buf,
            unmap_dma_buf=self.unmap_dma_buf,
            release=_cb,
            detach=lambda b, a: self.log.append("detach"),
            pin=self.pin if dynamic else None,
            unpin=self.unpin if dynamic else None,
        )

    def map_dma_buf(self, attach: Any, direction: int) -> Any:
        self.log.append("map")
        r = self.map_result
        if isinstance(r, BaseException):
            raise r
        return SgTable() if r is None else r

    def unmap_dma_buf(self, attach: Any, sgt: Any, direction: int) -> None:
        self.log.append("unmap")

    def pin(self, attach: Any) -> Any:
        self.log.append("pin")
        if self.pin_result in (0, None):
            self.pins += 1
        return self.pin_result

    def unpin(self, attach: Any) -> None:
        self.log.append("unpin")
        self.pins -= 1

    def export(self) -> DmaBuf:
        info = DEFINE_DMA_BUF_EXPORT_INFO()
        info.ops = self.ops
        info.size = 4096
        info.priv = self
        buf = dma_buf_export(info)
        assert isinstance(buf, DmaBuf)
        return buf


_BAD_MAPS: list[Any] = ["junk", ValueError("exporter blew up")]
_BAD_MAP_IDS = ["map returns junk", "map raises"]


def _expected_error(map_result: Any) -> type[BaseException]:
    return InvalidArgument if isinstance(map_result, str) else type(map_result)


# ------------------------------------------------------------------ D1 (a): attach-time map of a mismatch
@pytest.mark.parametrize("map_result", _BAD_MAPS, ids=_BAD_MAP_IDS)
def test_attach_time_map_error_of_static_importer_unpins_unlocks_detaches(map_result: Any) -> None:
    """Static importer of a dynamic exporter: pin, map under the resv; a raised error takes the kernel's
    err_unpin path (unpin, unlock, detach) before it propagates."""

    def body() -> None:
        exp = _Exporter(map_result=map_result)
        buf = exp.export()
        with pytest.raises(_expected_error(map_result)):
            dma_buf_attach(buf, "dev")
        assert not buf.resv.held()
        assert buf.attachments == []
        assert exp.log == ["pin", "map", "unpin", "detach"]
        assert exp.pins == 0
        buf.put()

    run(body)


@pytest.mark.parametrize("map_result", _BAD_MAPS, ids=_BAD_MAP_IDS)
def test_attach_time_map_error_of_dynamic_importer_of_static_exporter_unlocks_detaches(map_result: Any) -> None:
    def body() -> None:
        exp = _Exporter(dynamic=False, map_result=map_result)
        buf = exp.export()
        with pytest.raises(_expected_error(map_result)):
            dma_buf_dynamic_attach(buf, "dev", TrackingImporter().ops, None)
        assert not buf.resv.held()
        assert buf.attachments == []
        assert exp.log == ["map", "detach"]
        buf.put()

    run(body)


def test_attach_time_pin_with_invalid_return_unlocks_detaches_without_unpin() -> None:
    """A pin returning neither an int nor None is an InvalidArgument naming ``pin``; the pin counts as failed
    (the kernel's err_unlock path: no unpin), the attachment is detached and the resv unlocked."""

    def body() -> None:
        exp = _Exporter(pin_result="ok")
        buf = exp.export()
        with pytest.raises(InvalidArgument, match=r"pin of .* returned 'ok'.*must return"):
            dma_buf_attach(buf, "dev")
        assert not buf.resv.held()
        assert buf.attachments == []
        assert exp.log == ["pin", "detach"]
        buf.put()

    run(body)


def test_repro_of_the_audit_static_importer_junk_map() -> None:
    def body() -> None:
        log: list[str] = []

        def pin(a: Any) -> int:
            log.append("pin")
            return 0

        ops = DmaBufOps(
            map_dma_buf=lambda a, d: "junk",
            unmap_dma_buf=_cb,
            release=_cb,
            pin=pin,
            unpin=lambda a: log.append("unpin"),
        )
        info = DEFINE_DMA_BUF_EXPORT_INFO()
        info.ops = ops
        info.size = 4096
        info.priv = object()
        buf = dma_buf_export(info)
        assert isinstance(buf, DmaBuf)
        with pytest.raises(InvalidArgument, match="must return an SgTable"):
            dma_buf_attach(buf, "dev")
        assert not buf.resv.held()
        assert buf.attachments == []
        assert log == ["pin", "unpin"]

    run(body)


# ------------------------------------------------------------------ D1 (b): pin-on-map undone on a raised map error
@pytest.mark.parametrize("map_result", _BAD_MAPS, ids=_BAD_MAP_IDS)
def test_map_error_undoes_pin_on_map(map_result: Any) -> None:
    def body() -> None:
        exp = _Exporter(map_result=map_result)
        buf = exp.export()
        a = dma_buf_dynamic_attach(buf, "dev", TrackingImporter().ops, None)
        assert isinstance(a, DmaBufAttachment)
        dma_resv_lock(buf.resv, None)
        with pytest.raises(_expected_error(map_result)):
            dma_buf_map_attachment(a, DMA_BIDIRECTIONAL)
        assert buf.resv.held()  # the caller's lock stays the caller's
        dma_resv_unlock(buf.resv)
        assert exp.log == ["pin", "map", "unpin"] and exp.pins == 0
        with pytest.raises(_expected_error(map_result)):
            dma_buf_map_attachment_unlocked(a, DMA_BIDIRECTIONAL)
        assert not buf.resv.held()
        assert exp.log == ["pin", "map", "unpin"] * 2 and exp.pins == 0
        assert buf.attachments == [a]
        dma_buf_detach(buf, a)
        buf.put()

    _with_move_notify(False, body)


def test_map_with_pin_returning_junk_is_invalid_argument_and_not_unpinned() -> None:
    def body() -> None:
        exp = _Exporter(pin_result=[])
        buf = exp.export()
        a = dma_buf_dynamic_attach(buf, "dev", TrackingImporter().ops, None)
        assert isinstance(a, DmaBufAttachment)
        with pytest.raises(InvalidArgument, match=r"pin .*returned \[\]"):
            dma_buf_map_attachment_unlocked(a, DMA_BIDIRECTIONAL)
        assert not buf.resv.held()
        assert exp.log == ["pin"] and exp.pins == 0
        dma_buf_detach(buf, a)
        buf.put()

    _with_move_notify(False, body)


@pytest.mark.parametrize("map_result", _BAD_MAPS, ids=_BAD_MAP_IDS)
def test_attach_and_map_error_unpins_unlocks_and_kills_the_attachment(map_result: Any) -> None:
    def body() -> None:
        exp = _Exporter(map_result=map_result)
        buf = exp.export()
        with pytest.raises(_expected_error(map_result)):
            dma_buf_attach_and_map(buf, "dev", TrackingImporter().ops, None, DMA_BIDIRECTIONAL)
        assert not buf.resv.held()
        assert buf.attachments == []
        assert exp.log == ["pin", "map", "unpin", "detach"] and exp.pins == 0
        buf.put()

    _with_move_notify(False, body)


# ------------------------------------------------------------------ D2: unmap through a detached attachment
@pytest.mark.parametrize("unlocked", [False, True], ids=["locked", "unlocked"])
def test_unmap_through_detached_attachment_is_usage_error(unlocked: bool) -> None:
    def body() -> None:
        exp = MemoryExporter(8)
        a = exp.buf.attach("dev", TrackingImporter().ops)
        sgt = a.map_unlocked()
        a.detach()
        unmaps = exp.unmaps
        if unlocked:
            with pytest.raises(UsageError, match="detached by dma_buf_detach"):
                dma_buf_unmap_attachment_unlocked(a, sgt, DMA_BIDIRECTIONAL)
            assert not exp.buf.resv.held()
        else:
            with exp.buf.resv, pytest.raises(UsageError, match="detached by dma_buf_detach"):
                dma_buf_unmap_attachment(a, sgt, DMA_BIDIRECTIONAL)
        assert exp.unmaps == unmaps  # the exporter's unmap_dma_buf was not called
        assert sgt.unmapped_by is None
        exp.buf.put()

    run(body)


# ------------------------------------------------------------------ D5: int-returning exporter callbacks
def test_callbacks_returning_none_mean_success() -> None:
    def body() -> None:
        exp = _Exporter(pin_result=None)
        exp.ops.attach = lambda b, a: None
        exp.ops.begin_cpu_access = lambda b, d: None
        exp.ops.end_cpu_access = lambda b, d: None
        exp.ops.mmap = lambda b, v: None
        buf = exp.export()
        a = dma_buf_dynamic_attach(buf, "dev", TrackingImporter().ops, None)
        assert isinstance(a, DmaBufAttachment)
        with buf.resv:
            assert dma_buf_pin(a) == 0
        assert dma_buf_begin_cpu_access(buf, DMA_BIDIRECTIONAL) == 0
        assert dma_buf_end_cpu_access(buf, DMA_BIDIRECTIONAL) == 0
        assert dma_buf_mmap(buf, VmAreaStruct(0, 8), 0) == 0

    run(body)


_JUNK: list[Any] = ["ok", 1.5, True, [0]]


@pytest.mark.parametrize("junk", _JUNK, ids=repr)
def test_pin_with_invalid_return_is_invalid_argument(junk: Any) -> None:
    def body() -> None:
        exp = MemoryExporter(8)
        a = exp.buf.attach("dev", TrackingImporter().ops)

        def pin(attach: Any) -> Any:
            return junk

        exp.ops.pin = pin
        with exp.buf.resv, pytest.raises(InvalidArgument) as ei:
            a.pin()
        msg = str(ei.value)
        assert "pin" in msg and repr(junk) in msg and "must return" in msg
        assert isinstance(ei.value, TypeError)
        assert exp.bo.pin_count == 0

    run(body)


def test_pin_returning_a_positive_int_is_invalid_argument() -> None:
    """``pin`` and ``attach`` results become ``ERR_PTR``: a positive value is no errno."""

    def body() -> None:
        exp = MemoryExporter(8)
        a = exp.buf.attach("dev", TrackingImporter().ops)
        exp.ops.pin = lambda attach: 1
        with exp.buf.resv, pytest.raises(InvalidArgument, match="negative errno"):
            a.pin()
        exp.ops.attach = lambda b, at: 5
        with pytest.raises(InvalidArgument, match="attach .*returned 5"):
            dma_buf_attach(exp.buf, "dev2")
        assert exp.buf.attachments == [a]

    run(body)


@pytest.mark.parametrize("junk", _JUNK, ids=repr)
def test_cpu_access_and_mmap_with_invalid_return_are_invalid_argument(junk: Any) -> None:
    def body() -> None:
        exp = MemoryExporter(8)
        buf = exp.buf
        exp.ops.begin_cpu_access = lambda b, d: junk
        exp.ops.end_cpu_access = lambda b, d: junk
        exp.ops.mmap = lambda b, v: junk
        with pytest.raises(InvalidArgument, match="begin_cpu_access"):
            dma_buf_begin_cpu_access(buf, DMA_BIDIRECTIONAL)
        with pytest.raises(InvalidArgument, match="end_cpu_access"):
            dma_buf_end_cpu_access(buf, DMA_BIDIRECTIONAL)
        vma = VmAreaStruct(0, 8)
        with pytest.raises(InvalidArgument, match="mmap"):
            dma_buf_mmap(buf, vma, 0)
        assert vma.vm_file is None and vma.vm_pgoff == 0  # nothing half-changed

    run(body)


def test_vmap_with_invalid_result_is_invalid_argument_and_leaves_no_vmap() -> None:
    def body() -> None:
        exp = MemoryExporter(8)
        buf = exp.buf
        exp.ops.vmap = lambda b: ("ok", None)
        with pytest.raises(InvalidArgument, match="vmap"):
            dma_buf_vmap_unlocked(buf)
        assert buf.vmapping_counter == 0 and buf.vmap_ptr.is_null()
        assert not buf.resv.held()
        exp.ops.vmap = lambda b: (0, None, None)
        with pytest.raises(InvalidArgument, match="vmap"):
            dma_buf_vmap_unlocked(buf)
        assert buf.vmapping_counter == 0 and not buf.resv.held()

    run(body)


# ------------------------------------------------------------------ D7: unknown fields of the operation tables
def test_unknown_ops_field_is_invalid_argument_naming_it() -> None:
    with pytest.raises(InvalidArgument) as ei:
        DmaBufOps(foo=1)  # type: ignore[arg-type]
    msg = str(ei.value)
    assert "'foo'" in msg and "map_dma_buf" in msg and "cache_sgt_mapping" in msg
    assert isinstance(ei.value, TypeError)  # old `except TypeError` users still catch it


def test_misspelt_attach_ops_field_is_invalid_argument_with_suggestion() -> None:
    f: Callable[[Any], None] = lambda a: None  # noqa: E731
    with pytest.raises(InvalidArgument, match=r"'move_notfy'.*did you mean 'move_notify'"):
        DmaBufAttachOps(move_notfy=f)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="'sise'"):
        DmaBufExportInfo(sise=4096)  # type: ignore[arg-type]


def test_positional_ops_are_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="keyword"):
        DmaBufOps(_cb)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="keyword"):
        DmaBufAttachOps(True)  # type: ignore[arg-type]


def test_keyword_construction_and_attribute_assignment_still_work() -> None:
    ops = DmaBufOps(map_dma_buf=_cb, unmap_dma_buf=_cb, release=_cb, cache_sgt_mapping=True)
    ops.map_dma_buf = lambda a, d: SgTable()
    assert ops.cache_sgt_mapping and ops.pin is None
    io = DmaBufAttachOps(allow_peer2peer=True, move_notify=_cb)
    io.move_notify = None
    assert io.allow_peer2peer and io.move_notify is None
    assert DmaBufExportInfo(size=8, priv=1).size == 8
