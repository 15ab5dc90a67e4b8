"""Audit of the dma-buf core against kernel-semantics.md section 1 (Linux v6.12): behaviours a driver engineer
porting C code relies on that tests/buf/test_core.py does not pin down. Black-box: ``dmabuf.kernel`` names and
the Pythonic API only; each test names the rule it checks."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

import pytest
from test_core import _cb, _nop_ops, _with_move_notify, run

import dmabuf
from dmabuf.buf import MemoryExporter, check_all
from dmabuf.errors import KernelBug, KernelWarning, UsageError
from dmabuf.kernel import (
    DMA_BIDIRECTIONAL,
    DMA_FROM_DEVICE,
    DMA_RESV_USAGE_BOOKKEEP,
    DMA_RESV_USAGE_KERNEL,
    DMA_RESV_USAGE_READ,
    DMA_RESV_USAGE_WRITE,
    DMA_TO_DEVICE,
    ERR_PTR,
    IS_ERR,
    PTR_ERR,
    DmaBuf,
    DmaBufAttachment,
    DmaBufAttachOps,
    DmaBufExportInfo,
    DmaBufOps,
    DmaResv,
    IosysMap,
    Mutex,
    SgTable,
    VmAreaStruct,
    current,
    dma_buf_attach,
    dma_buf_attachment_is_dynamic,
    dma_buf_begin_cpu_access,
    dma_buf_detach,
    dma_buf_dynamic_attach,
    dma_buf_end_cpu_access,
    dma_buf_export,
    dma_buf_is_dynamic,
    dma_buf_map_attachment,
    dma_buf_map_attachment_unlocked,
    dma_buf_mmap,
    dma_buf_pin,
    dma_buf_put,
    dma_buf_unmap_attachment,
    dma_buf_unmap_attachment_unlocked,
    dma_buf_unpin,
    dma_buf_vmap,
    dma_buf_vmap_unlocked,
    dma_buf_vunmap_unlocked,
    dma_fence_signal,
    dma_resv_add_fence,
    dma_resv_init,
    dma_resv_is_locked,
    dma_resv_lock,
    dma_resv_reserve_fences,
    dma_resv_unlock,
    flush_signals,
    get_dma_buf,
    kref_read,
    mutex_lock,
    mutex_unlock,
    send_sig,
    set_warn_mode,
)
from dmabuf.scenarios.base import make_fence


def run_log(body: Callable[[], Any]) -> KernelWarning:
    """Run ``body`` in log warn mode: the WARNs are recorded and the run reports the first at its end."""
    set_warn_mode("log")
    with pytest.raises(KernelWarning) as ei:
        run(body)
    return ei.value


class RecordingExporter:
    """A kernel-style exporter (ops table, ``priv``) whose callbacks record their calls and whether the
    buffer's reservation lock was held when the core called them."""

    def __init__(self, *, dynamic: bool = False, resv: DmaResv | None = None) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.sgts: list[SgTable] = []
        self.pin_ret = 0
        self.map_ret: Any = "sgt"
        self.vmap_ret = 0
        self.mmap_ret = 0
        self.begin_ret = 0
        self.end_ret = 0
        self.pinned = 0
        self.seen_attach: list[dict[str, Any]] = []
        self.buf: Any = None
        ops = DmaBufOps(
            attach=self.attach,
            detach=self.detach,
            pin=self.pin if dynamic else None,
            unpin=self.unpin if dynamic else None,
            map_dma_buf=self.map_dma_buf,
            unmap_dma_buf=self.unmap_dma_buf,
            release=self.release,
            begin_cpu_access=self.begin_cpu_access,
            end_cpu_access=self.end_cpu_access,
            mmap=self.mmap,
            vmap=self.vmap,
            vunmap=self.vunmap,
        )
        self.ops = ops
        info = DmaBufExportInfo(exp_name="rec", ops=ops, size=16, priv=self, resv=resv)
        buf = dma_buf_export(info)
        assert isinstance(buf, DmaBuf)
        self.buf = buf

    def _rec(self, name: str) -> None:
        self.calls.append((name, dma_resv_is_locked(self.buf.resv)))

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]

    def attach(self, dmabuf: Any, attach: Any) -> int:
        self._rec("attach")
        self.seen_attach.append(
            dict(
                dmabuf=attach.dmabuf,
                dev=attach.dev,
                importer_ops=attach.importer_ops,
                importer_priv=attach.importer_priv,
                peer2peer=attach.peer2peer,
                listed=attach in dmabuf.attachments,
            )
        )
        return 0

    def detach(self, dmabuf: Any, attach: Any) -> None:
        self._rec("detach")
        self.seen_attach.append(dict(listed=attach in dmabuf.attachments))

    def pin(self, attach: Any) -> int:
        self._rec("pin")
        if self.pin_ret == 0:
            self.pinned += 1
        return self.pin_ret

    def unpin(self, attach: Any) -> None:
        self._rec("unpin")
        self.pinned -= 1

    def map_dma_buf(self, attach: Any, direction: int) -> Any:
        self._rec("map_dma_buf")
        if self.map_ret != "sgt":
            return self.map_ret
        s = SgTable()
        self.sgts.append(s)
        return s

    def unmap_dma_buf(self, attach: Any, sgt: Any, direction: int) -> None:
        self._rec("unmap_dma_buf")

    def release(self, dmabuf: Any) -> None:
        self._rec("release")

    def begin_cpu_access(self, dmabuf: Any, direction: int) -> int:
        self._rec("begin_cpu_access")
        return self.begin_ret

    def end_cpu_access(self, dmabuf: Any, direction: int) -> int:
        self._rec("end_cpu_access")
        return self.end_ret

    def mmap(self, dmabuf: Any, vma: Any) -> int:
        self._rec("mmap")
        return self.mmap_ret

    def vmap(self, dmabuf: Any) -> tuple[int, IosysMap]:
        self._rec("vmap")
        if self.vmap_ret:
            return self.vmap_ret, IosysMap()
        return 0, IosysMap(object())

    def vunmap(self, dmabuf: Any, m: Any) -> None:
        self._rec("vunmap")


def _importer_ops(**kw: Any) -> DmaBufAttachOps:
    return DmaBufAttachOps(move_notify=lambda a: None, **kw)


def _add_fence(resv: DmaResv, usage: int) -> Any:
    f = make_fence()
    dma_resv_lock(resv, None)
    assert dma_resv_reserve_fences(resv, 1) == 0
    dma_resv_add_fence(resv, f, usage)
    dma_resv_unlock(resv)
    return f


# ------------------------------------------------------------------ 1.1 objects
def test_dynamic_ness_queries() -> None:
    """kernel-semantics 1.1: a dynamic exporter is one with ``ops->pin`` (``dma_buf_is_dynamic``); a dynamic
    attachment is one with ``importer_ops`` (``dma_buf_attachment_is_dynamic``)."""

    def body() -> None:
        dyn, static = RecordingExporter(dynamic=True), RecordingExporter(dynamic=False)
        assert dma_buf_is_dynamic(dyn.buf) is True
        assert dma_buf_is_dynamic(static.buf) is False
        a = dma_buf_dynamic_attach(static.buf, "d1", _importer_ops(), None)
        s = dma_buf_attach(static.buf, "d2")
        assert isinstance(a, DmaBufAttachment) and isinstance(s, DmaBufAttachment)
        assert dma_buf_attachment_is_dynamic(a) is True
        assert dma_buf_attachment_is_dynamic(s) is False
        dma_buf_detach(static.buf, a)
        dma_buf_detach(static.buf, s)

    run(body)


# ------------------------------------------------------------------ 1.2 lifecycle
@pytest.mark.parametrize("case", ["no ops", "unpin without pin"])
def test_export_rejects_bad_ops_with_warn_and_einval(case: str) -> None:
    """kernel-semantics 1.2: ``dma_buf_export`` WARNs and returns ``-EINVAL`` when ``ops`` is NULL, and when
    exactly one of pin/unpin is set (here: unpin only; pin only is in test_core)."""

    def info() -> DmaBufExportInfo:
        if case == "no ops":
            return DmaBufExportInfo(ops=None, size=8, priv=1)
        return DmaBufExportInfo(ops=_nop_ops(unpin=_cb), size=8, priv=1)

    with pytest.raises(KernelWarning):
        run(lambda: dma_buf_export(info()))
    got: list[Any] = []
    run_log(lambda: got.append(dma_buf_export(info())))
    assert got == [ERR_PTR(-errno.EINVAL)]


def test_release_finalises_only_the_embedded_resv() -> None:
    """kernel-semantics 1.2: with ``info->resv == NULL`` the buffer embeds a resv that is ``dma_resv_fini``ed
    on release (its fences are put); a resv passed by the exporter is left alone (keeps its fences)."""

    def body() -> None:
        emb = RecordingExporter()
        f1 = _add_fence(emb.buf.resv, DMA_RESV_USAGE_WRITE)
        r1 = kref_read(f1.refcount)
        dma_buf_put(emb.buf)
        assert kref_read(f1.refcount) == r1 - 1  # dma_resv_fini put the resv's reference

        own = DmaResv()
        dma_resv_init(own)
        ext = RecordingExporter(resv=own)
        assert ext.buf.resv is own
        f2 = _add_fence(own, DMA_RESV_USAGE_WRITE)
        r2 = kref_read(f2.refcount)
        dma_buf_put(ext.buf)
        assert kref_read(f2.refcount) == r2  # not the core's to finalise
        dma_fence_signal(f1)
        dma_fence_signal(f2)

    run(body)


def test_dynamic_attach_fills_the_attachment_before_the_exporters_attach() -> None:
    """kernel-semantics 1.2: ``dma_buf_dynamic_attach`` sets dev, dmabuf, importer_ops, importer_priv and
    ``peer2peer = importer_ops->allow_peer2peer`` before calling the exporter's ``attach`` (which runs
    unlocked, 1.5, and before the attachment is on ``dmabuf->attachments``); then the core list_adds it.
    A static attachment has peer2peer false."""

    def body() -> None:
        exp = RecordingExporter()
        iops = _importer_ops(allow_peer2peer=True)
        priv = object()
        a = dma_buf_dynamic_attach(exp.buf, "gpu", iops, priv)
        assert isinstance(a, DmaBufAttachment)
        seen = exp.seen_attach[-1]
        assert seen == dict(dmabuf=exp.buf, dev="gpu", importer_ops=iops, importer_priv=priv, peer2peer=True,
                            listed=False)
        assert exp.calls[0] == ("attach", False)
        assert a.peer2peer is True and a.importer_priv is priv and a in exp.buf.attachments
        s = dma_buf_attach(exp.buf, "dsp")
        assert isinstance(s, DmaBufAttachment)
        assert exp.seen_attach[-1]["peer2peer"] is False and s.peer2peer is False and s.importer_ops is None
        dma_buf_detach(exp.buf, a)
        dma_buf_detach(exp.buf, s)

    run(body)


def test_detach_unlinks_before_the_exporters_detach() -> None:
    """kernel-semantics 1.2: ``dma_buf_detach`` list_dels the attachment under the resv, unlocks, and only
    then calls the exporter's ``detach`` (unlocked, 1.5)."""

    def body() -> None:
        exp = RecordingExporter()
        a = dma_buf_attach(exp.buf, "dev")
        dma_buf_detach(exp.buf, a)
        assert exp.calls[-1] == ("detach", False)
        assert exp.seen_attach[-1] == dict(listed=False)
        assert exp.buf.attachments == []

    run(body)


def test_detach_of_a_foreign_attachment_warns_and_does_nothing() -> None:
    """kernel-semantics 1.2: ``dma_buf_detach`` WARNs and returns when ``buf != attach->dmabuf`` (or either
    is NULL): nothing is unlinked and the exporter's ``detach`` is not called."""
    seen: dict[str, Any] = {}

    def body() -> None:
        e1, e2 = RecordingExporter(), RecordingExporter()
        a = dma_buf_attach(e1.buf, "dev")
        n1, n2 = len(e1.calls), len(e2.calls)
        dma_buf_detach(e2.buf, a)
        dma_buf_detach(None, a)
        dma_buf_detach(e1.buf, None)
        seen.update(listed=a in e1.buf.attachments, calls=(len(e1.calls) - n1, len(e2.calls) - n2))
        dma_buf_detach(e1.buf, a)

    w = run_log(body)
    assert w.rule == "dma_buf_detach: bad arguments"
    assert seen == dict(listed=True, calls=(0, 0))


def test_attach_time_pin_failure_detaches() -> None:
    """kernel-semantics 1.2 (v6.2-v6.14 extra): a static importer of a dynamic exporter is pinned at attach;
    if ``ops->pin`` fails the attach returns that error without mapping, and the attachment is detached
    again (off the list, exporter's ``detach`` called)."""

    def body() -> None:
        exp = RecordingExporter(dynamic=True)
        exp.pin_ret = -errno.EBUSY
        got = dma_buf_attach(exp.buf, "dev")
        assert IS_ERR(got) and PTR_ERR(got) == -errno.EBUSY
        assert exp.names() == ["attach", "pin", "detach"]
        assert exp.buf.attachments == []

    run(body)


def test_attach_time_map_of_static_importer_waits_for_kernel_fences(run_on: Any) -> None:
    """kernel-semantics 1.2/1.3 step 5: the map a static importer gets at attach (dynamic exporter) goes
    through the same KERNEL-fence wait as ``dma_buf_map_attachment``."""

    def body() -> None:
        exp = MemoryExporter(8, dynamic=True)
        f = _add_fence(exp.buf.resv, DMA_RESV_USAGE_KERNEL)
        t = dmabuf.spawn(lambda: dma_fence_signal(f))
        a = dma_buf_attach(exp.buf, "dev")
        assert isinstance(a, DmaBufAttachment) and a.sgt is not None
        assert f.is_signaled()
        t.join()
        dma_buf_detach(exp.buf, a)
        dma_buf_put(exp.buf)

    run_on(body)


def test_attach_time_map_of_dynamic_importer_does_not_wait() -> None:
    """kernel-semantics 1.3 step 5: only static importers wait for the KERNEL fences when mapped; the map a
    dynamic importer gets at attach (static exporter) returns with the fence still pending (a wait would
    block this single task for ever)."""

    def body() -> None:
        exp = MemoryExporter(8, dynamic=False)
        f = _add_fence(exp.buf.resv, DMA_RESV_USAGE_KERNEL)
        a = dma_buf_dynamic_attach(exp.buf, "dev", _importer_ops(), None)
        assert isinstance(a, DmaBufAttachment) and a.sgt is not None
        assert not f.is_signaled()
        dma_fence_signal(f)
        dma_buf_detach(exp.buf, a)
        dma_buf_put(exp.buf)

    run(body)


def test_attach_time_interrupted_wait_unmaps_unpins_and_detaches() -> None:
    """kernel-semantics 1.3 step 5 (at attach, 1.2): the static importer's KERNEL-fence wait is
    interruptible; on ``-ERESTARTSYS`` the exporter's ``unmap_dma_buf`` runs, then ``unpin``, the attachment
    is detached and the attach returns the error."""

    def body() -> None:
        exp = RecordingExporter(dynamic=True)
        f = _add_fence(exp.buf.resv, DMA_RESV_USAGE_KERNEL)
        send_sig(9, current())
        got = dma_buf_attach(exp.buf, "dev")
        flush_signals(current())
        assert IS_ERR(got) and PTR_ERR(got) == -dmabuf.kernel.ERESTARTSYS
        assert exp.names() == ["attach", "pin", "map_dma_buf", "unmap_dma_buf", "unpin", "detach"]
        assert exp.pinned == 0 and exp.buf.attachments == []
        dma_fence_signal(f)

    run(body)


def test_put_null_warns() -> None:
    """kernel-semantics 1.2: ``dma_buf_put(NULL)`` WARNs and returns."""
    with pytest.raises(KernelWarning):
        run(lambda: dma_buf_put(None))
    got: list[Any] = []
    w = run_log(lambda: got.append(dma_buf_put(None)))
    assert got == [None] and w.rule == "dma_buf_put: NULL buffer"


def test_release_runs_the_exporters_release_unlocked() -> None:
    """kernel-semantics 1.2/1.5: the last ``dma_buf_put`` calls ``ops->release`` once, without the resv
    held."""

    def body() -> None:
        exp = RecordingExporter()
        dma_buf_put(exp.buf)
        assert exp.calls == [("release", False)]

    run(body)


# ------------------------------------------------------------------ 1.3 pin / map / unmap
def test_static_importer_map_waits_only_for_kernel_fences() -> None:
    """kernel-semantics 1.3 step 5: a static importer's map waits for ``DMA_RESV_USAGE_KERNEL`` fences only;
    pending WRITE/READ/BOOKKEEP fences do not block it (a wait would block this single task for ever)."""

    def body() -> None:
        exp = MemoryExporter(8, dynamic=False)
        fs = [_add_fence(exp.buf.resv, u) for u in (DMA_RESV_USAGE_WRITE, DMA_RESV_USAGE_READ,
                                                    DMA_RESV_USAGE_BOOKKEEP)]
        a = dma_buf_attach(exp.buf, "dev")
        assert isinstance(a, DmaBufAttachment)
        sgt = dma_buf_map_attachment_unlocked(a, DMA_BIDIRECTIONAL)
        assert isinstance(sgt, SgTable)
        assert not any(f.is_signaled() for f in fs)
        dma_buf_unmap_attachment_unlocked(a, sgt, DMA_BIDIRECTIONAL)
        for f in fs:
            dma_fence_signal(f)
        dma_buf_detach(exp.buf, a)
        dma_buf_put(exp.buf)

    run(body)


def test_map_interrupted_wait_unmaps_and_returns_the_error() -> None:
    """kernel-semantics 1.3 step 5: a static importer's wait is interruptible; ``<0`` -> the exporter's
    ``unmap_dma_buf`` runs on the fresh table and the map returns ``ERR_PTR(-ERESTARTSYS)``."""

    def body() -> None:
        exp = RecordingExporter(dynamic=False)
        a = dma_buf_attach(exp.buf, "dev")
        f = _add_fence(exp.buf.resv, DMA_RESV_USAGE_KERNEL)
        del exp.calls[:]
        send_sig(9, current())
        got = dma_buf_map_attachment_unlocked(a, DMA_TO_DEVICE)
        flush_signals(current())
        assert IS_ERR(got) and PTR_ERR(got) == -dmabuf.kernel.ERESTARTSYS
        assert exp.names() == ["map_dma_buf", "unmap_dma_buf"]
        dma_fence_signal(f)
        dma_buf_detach(exp.buf, a)

    run(body)


def test_map_null_table_is_enomem() -> None:
    """kernel-semantics 1.3 step 4: ``map_dma_buf`` returning NULL makes the map return
    ``ERR_PTR(-ENOMEM)``; an ``ERR_PTR`` from it is returned as is."""

    def body() -> None:
        exp = RecordingExporter()
        a = dma_buf_attach(exp.buf, "dev")
        exp.map_ret = None
        assert dma_buf_map_attachment_unlocked(a, DMA_BIDIRECTIONAL) == ERR_PTR(-errno.ENOMEM)
        exp.map_ret = ERR_PTR(-errno.EIO)
        assert dma_buf_map_attachment_unlocked(a, DMA_BIDIRECTIONAL) == ERR_PTR(-errno.EIO)
        dma_buf_detach(exp.buf, a)

    run(body)


def test_pin_on_map_errors() -> None:
    """kernel-semantics 1.3 steps 3-4 (``CONFIG_DMABUF_MOVE_NOTIFY=n``): the pin's error is returned without
    calling ``map_dma_buf``; a failing ``map_dma_buf`` is followed by ``unpin``."""

    def body() -> None:
        exp = RecordingExporter(dynamic=True)
        a = dma_buf_dynamic_attach(exp.buf, "dev", _importer_ops(), None)
        assert isinstance(a, DmaBufAttachment)
        del exp.calls[:]
        exp.pin_ret = -errno.EBUSY
        assert dma_buf_map_attachment_unlocked(a, DMA_BIDIRECTIONAL) == ERR_PTR(-errno.EBUSY)
        assert exp.names() == ["pin"]
        del exp.calls[:]
        exp.pin_ret = 0
        exp.map_ret = ERR_PTR(-errno.ENOSPC)
        assert dma_buf_map_attachment_unlocked(a, DMA_BIDIRECTIONAL) == ERR_PTR(-errno.ENOSPC)
        assert exp.names() == ["pin", "map_dma_buf", "unpin"] and exp.pinned == 0
        dma_buf_detach(exp.buf, a)

    _with_move_notify(False, body)


def test_pin_returns_the_exporters_error_and_unpin_warns_for_static() -> None:
    """kernel-semantics 1.3: ``dma_buf_pin`` returns ``ops->pin``'s result; ``dma_buf_unpin`` is symmetric
    (WARNs for a static attachment, then calls ``ops->unpin``)."""
    seen: list[Any] = []

    def body() -> None:
        exp = RecordingExporter(dynamic=True)
        a = dma_buf_dynamic_attach(exp.buf, "dev", _importer_ops(), None)
        s = dma_buf_attach(exp.buf, "dev2")
        exp.pin_ret = -errno.ENOMEM
        dma_resv_lock(exp.buf.resv, None)
        seen.append(dma_buf_pin(a))
        del exp.calls[:]
        dma_buf_unpin(s)  # WARN (log mode), then the exporter's unpin
        seen.append(exp.names())
        exp.pinned += 1  # undo the model unpin above for the attach-time pin's bookkeeping
        dma_resv_unlock(exp.buf.resv)
        dma_buf_detach(exp.buf, a)
        dma_buf_detach(exp.buf, s)

    w = run_log(body)
    assert w.rule == "dma_buf_unpin: static attachment"
    assert seen == [-errno.ENOMEM, ["unpin"]]


def test_map_and_unmap_of_null_warn() -> None:
    """kernel-semantics 1.3: map WARNs and returns ``ERR_PTR(-EINVAL)`` for a NULL attachment; unmap WARNs and
    returns for a NULL sg_table without calling the exporter."""
    got: list[Any] = []
    calls: list[str] = []

    def body() -> None:
        exp = RecordingExporter()
        a = dma_buf_attach(exp.buf, "dev")
        got.append(dma_buf_map_attachment(None, DMA_BIDIRECTIONAL))
        del exp.calls[:]
        dma_resv_lock(exp.buf.resv, None)
        dma_buf_unmap_attachment(a, None, DMA_BIDIRECTIONAL)
        dma_resv_unlock(exp.buf.resv)
        calls.extend(exp.names())
        dma_buf_detach(exp.buf, a)

    run_log(body)
    assert got == [ERR_PTR(-errno.EINVAL)] and calls == []


# ------------------------------------------------------------------ 1.4 move_notify
def test_move_notify_contract() -> None:
    """kernel-semantics 1.4: ``move_notify`` is called with the resv held; the core does not touch the
    importer's mappings (no ``unmap_dma_buf``, the table stays mapped); a mapping created after the callback
    points to the new location."""

    def body() -> None:
        exp = MemoryExporter(8, "VRAM", dynamic=True)
        buf = exp.buf
        held: list[bool] = []
        a = buf.attach("gpu", DmaBufAttachOps(move_notify=lambda at: held.append(buf.resv.held())))
        with buf.resv:
            old = dma_buf_map_attachment(a, DMA_BIDIRECTIONAL)
            assert isinstance(old, SgTable)
            old_pl, unmaps = old.placement, exp.unmaps
            exp.move("GTT")
            assert held == [True]
            assert exp.unmaps == unmaps and old.unmapped_by is None
            new = dma_buf_map_attachment(a, DMA_BIDIRECTIONAL)
            assert isinstance(new, SgTable)
            assert new.placement is exp.bo.placement and new.placement is not old_pl
            dma_buf_unmap_attachment(a, old, DMA_BIDIRECTIONAL)
            dma_buf_unmap_attachment(a, new, DMA_BIDIRECTIONAL)
        buf.resv.wait_timeout(DMA_RESV_USAGE_BOOKKEEP, False, dmabuf.kernel.MAX_SCHEDULE_TIMEOUT)
        a.detach()
        check_all()
        buf.put()

    run(body)


# ------------------------------------------------------------------ 1.5 locking convention, exporter side
def test_exporter_callbacks_locked_or_unlocked_as_documented() -> None:
    """kernel-semantics 1.5: the core calls ``attach, detach, release, begin_cpu_access, end_cpu_access, mmap``
    without the resv and ``pin, unpin, map_dma_buf, unmap_dma_buf, vmap, vunmap`` with it held, also when the
    core takes the lock itself (attach-time pin/map, detach, the ``_unlocked`` variants)."""

    def body() -> None:
        exp = RecordingExporter(dynamic=True)
        buf = exp.buf
        st = dma_buf_attach(buf, "dev")  # attach, then pin + map (mismatch) under the lock
        dy = dma_buf_dynamic_attach(buf, "dev2", _importer_ops(), None)
        assert isinstance(st, DmaBufAttachment) and isinstance(dy, DmaBufAttachment)
        sgt = dma_buf_map_attachment_unlocked(dy, DMA_BIDIRECTIONAL)
        dma_buf_unmap_attachment_unlocked(dy, sgt, DMA_BIDIRECTIONAL)
        ret, m = dma_buf_vmap_unlocked(buf)
        assert ret == 0
        dma_buf_vunmap_unlocked(buf, m)
        assert dma_buf_begin_cpu_access(buf, DMA_TO_DEVICE) == 0
        assert dma_buf_end_cpu_access(buf, DMA_TO_DEVICE) == 0
        assert dma_buf_mmap(buf, VmAreaStruct(0, 4), 0) == 0
        dma_buf_detach(buf, st)  # unmap + unpin under the lock, then detach unlocked
        dma_buf_detach(buf, dy)
        dma_buf_put(buf)
        locked = {"pin", "unpin", "map_dma_buf", "unmap_dma_buf", "vmap", "vunmap"}
        names = {n for n, _ in exp.calls}
        assert names == locked | {"attach", "detach", "release", "begin_cpu_access", "end_cpu_access", "mmap"}
        wrong = [(n, h) for n, h in exp.calls if h != (n in locked)]
        assert wrong == [], wrong

    run(body)


# ------------------------------------------------------------------ 1.6 CPU access, vmap, mmap
def test_begin_cpu_access_exporter_error_skips_the_wait() -> None:
    """kernel-semantics 1.6: ``begin_cpu_access`` waits for fences only if ``ops->begin_cpu_access``
    returned 0; its error is returned at once (a wait would block this single task for ever)."""

    def body() -> None:
        exp = RecordingExporter()
        f = _add_fence(exp.buf.resv, DMA_RESV_USAGE_WRITE)
        exp.begin_ret = -errno.EIO
        assert dma_buf_begin_cpu_access(exp.buf, DMA_FROM_DEVICE) == -errno.EIO
        assert not f.is_signaled()
        dma_fence_signal(f)

    run(body)


def test_begin_cpu_access_bidirectional_is_a_write_and_bookkeep_is_ignored() -> None:
    """kernel-semantics 1.6: ``DMA_BIDIRECTIONAL`` counts as a write, so it waits ``dma_resv_usage_rw(true)``
    = READ (kernel+write+read fences) but not BOOKKEEP fences."""

    def body() -> None:
        exp = RecordingExporter()
        rd = _add_fence(exp.buf.resv, DMA_RESV_USAGE_READ)
        bk = _add_fence(exp.buf.resv, DMA_RESV_USAGE_BOOKKEEP)
        t = dmabuf.spawn(lambda: dma_fence_signal(rd))
        assert dma_buf_begin_cpu_access(exp.buf, DMA_BIDIRECTIONAL) == 0
        assert rd.is_signaled() and not bk.is_signaled()
        t.join()
        dma_fence_signal(bk)

    dmabuf.run_threads(body, timeout=30)
    res = dmabuf.explore(body)
    assert res.ok, res.failure


def test_begin_cpu_access_interrupted_and_end_cpu_access_result() -> None:
    """kernel-semantics 1.6: the fence wait of ``begin_cpu_access`` is interruptible (returns
    ``-ERESTARTSYS``); ``end_cpu_access`` returns what the exporter's op returns."""

    def body() -> None:
        exp = RecordingExporter()
        f = _add_fence(exp.buf.resv, DMA_RESV_USAGE_WRITE)
        send_sig(9, current())
        assert dma_buf_begin_cpu_access(exp.buf, DMA_FROM_DEVICE) == -dmabuf.kernel.ERESTARTSYS
        flush_signals(current())
        exp.end_ret = -errno.EIO
        assert dma_buf_end_cpu_access(exp.buf, DMA_FROM_DEVICE) == -errno.EIO
        dma_fence_signal(f)

    run(body)


def test_vmap_failure_warns_and_leaves_no_mapping() -> None:
    """kernel-semantics 1.6: a failing ``ops->vmap`` is WARNed and its error returned with the map cleared;
    the counter stays 0, so the next ``dma_buf_vmap`` calls the op again."""
    got: list[Any] = []

    def body() -> None:
        exp = RecordingExporter()
        exp.vmap_ret = -errno.ENOMEM
        ret, m = dma_buf_vmap_unlocked(exp.buf)
        got.append((ret, m.is_null(), exp.buf.vmapping_counter, exp.buf.vmap_ptr.is_null()))
        exp.vmap_ret = 0
        ret, m = dma_buf_vmap_unlocked(exp.buf)
        got.append((ret, m.is_null(), exp.buf.vmapping_counter, exp.names().count("vmap")))
        dma_buf_vunmap_unlocked(exp.buf, m)

    w = run_log(body)
    assert w.rule == "dma_buf_vmap: vmap failed"
    assert got == [(-errno.ENOMEM, True, 0, True), (0, False, 1, 2)]


def test_vunmap_of_a_foreign_map_bugs() -> None:
    """kernel-semantics 1.6: ``dma_buf_vunmap`` BUGs when the map is not the buffer's ``vmap_ptr``."""

    def body() -> None:
        exp = RecordingExporter()
        ret, m = dma_buf_vmap_unlocked(exp.buf)
        assert ret == 0
        with pytest.raises(KernelBug, match="is not the vmap"):
            dma_buf_vunmap_unlocked(exp.buf, IosysMap(object()))
        dma_buf_vunmap_unlocked(exp.buf, m)
        assert exp.buf.vmapping_counter == 0

    run(body)


def test_mmap_returns_the_exporters_result_and_warns_on_null() -> None:
    """kernel-semantics 1.6: ``dma_buf_mmap`` returns ``ops->mmap``'s result after the checks, and WARNs with
    ``-EINVAL`` for a NULL buffer or vma."""
    got: list[Any] = []

    def body() -> None:
        exp = RecordingExporter()
        exp.mmap_ret = -errno.EACCES
        got.append(dma_buf_mmap(exp.buf, VmAreaStruct(0, 4), 0))
        got.append(dma_buf_mmap(None, VmAreaStruct(0, 4), 0))
        got.append(dma_buf_mmap(exp.buf, None, 0))

    w = run_log(body)
    assert w.rule == "dma_buf_mmap: NULL"
    assert got == [-errno.EACCES, -errno.EINVAL, -errno.EINVAL]


def test_cpu_access_and_vmap_of_null_warn_einval() -> None:
    """kernel-semantics 1.6: ``begin_cpu_access`` and ``vmap`` WARN and return ``-EINVAL`` for NULL (vmap
    with the map cleared)."""
    got: list[Any] = []

    def body() -> None:
        got.append(dma_buf_begin_cpu_access(None, DMA_TO_DEVICE))
        ret, m = dma_buf_vmap(None)
        got.append((ret, m.is_null()))
        ret, m = dma_buf_vmap_unlocked(None)
        got.append((ret, m.is_null()))

    run_log(body)
    assert got == [-errno.EINVAL, (-errno.EINVAL, True), (-errno.EINVAL, True)]



# ------------------------------------------------------------------ concurrency (explored)
def test_concurrent_vmap_calls_the_exporter_once() -> None:
    """kernel-semantics 1.6: vmap is refcounted under the resv: whatever the interleaving of two tasks'
    ``dma_buf_vmap_unlocked``/``dma_buf_vunmap_unlocked``, ``ops->vmap`` runs only while the counter is 0 and
    ``ops->vunmap`` only when it drops back to 0, and both tasks get the same mapping while they share it."""

    def body() -> None:
        exp = RecordingExporter()
        buf = exp.buf
        maps: list[Any] = []

        def user() -> None:
            ret, m = dma_buf_vmap_unlocked(buf)
            assert ret == 0 and m.is_set()
            maps.append(m)
            dma_buf_vunmap_unlocked(buf, m)

        ts = [dmabuf.spawn(user, name=f"u{i}") for i in range(2)]
        for t in ts:
            t.join()
        n_vmap, n_vunmap = exp.names().count("vmap"), exp.names().count("vunmap")
        assert n_vmap == n_vunmap and n_vmap in (1, 2), exp.names()
        if n_vmap == 1:
            assert maps[0] == maps[1]
        assert buf.vmapping_counter == 0 and buf.vmap_ptr.is_null()
        dma_buf_put(buf)

    res = dmabuf.explore(body, strategy="dpor")
    assert res.ok and res.complete, res.failure


def test_concurrent_last_puts_release_once() -> None:
    """kernel-semantics 1.1/1.2: the buffer's refcount is its file's; with two references dropped by two
    tasks concurrently, ``ops->release`` runs exactly once, after both ``dma_buf_put`` calls started."""

    def body() -> None:
        exp = RecordingExporter()
        buf = exp.buf
        get_dma_buf(buf)
        ts = [dmabuf.spawn(lambda: dma_buf_put(buf), name=f"p{i}") for i in range(2)]
        for t in ts:
            t.join()
        assert exp.names() == ["release"]

    res = dmabuf.explore(body, strategy="dpor")
    assert res.ok and res.complete, res.failure


@pytest.mark.parametrize("fn", ["dma_buf_begin_cpu_access", "dma_buf_end_cpu_access"])
def test_cpu_access_might_lock_records_the_resv_order(fn: str) -> None:
    """kernel-semantics 1.6: begin/end_cpu_access do ``might_lock(resv)``, so lockdep learns "locks held here
    -> resv" even when the exporter's op never takes the resv: a driver calling them under its own mutex and
    elsewhere taking that mutex under the resv gets the kernel's circular-locking report."""
    call = {"dma_buf_begin_cpu_access": dma_buf_begin_cpu_access, "dma_buf_end_cpu_access": dma_buf_end_cpu_access}

    def body() -> None:
        exp = RecordingExporter()  # its CPU-access ops do not touch the resv
        m = Mutex(name="driver.lock")
        mutex_lock(m)
        assert call[fn](exp.buf, DMA_TO_DEVICE) == 0  # driver.lock -> resv (might_lock)
        mutex_unlock(m)
        dma_resv_lock(exp.buf.resv, None)
        mutex_lock(m)  # resv -> driver.lock: the inversion
        mutex_unlock(m)
        dma_resv_unlock(exp.buf.resv)

    with pytest.raises(KernelWarning) as ei:
        run(body)
    assert ei.value.rule == "lockdep: lock order inversion"
    assert "driver.lock" in str(ei.value)


def test_cpu_access_might_lock_is_silent_without_inversion() -> None:
    """kernel-semantics 1.6: ``might_lock`` only records an order; called with no lock held, or in the same
    order as real resv users (driver.lock taken outside the resv), nothing is reported."""

    def body() -> None:
        exp = RecordingExporter()
        m = Mutex(name="driver.lock")
        assert dma_buf_begin_cpu_access(exp.buf, DMA_FROM_DEVICE) == 0
        mutex_lock(m)
        assert dma_buf_end_cpu_access(exp.buf, DMA_FROM_DEVICE) == 0
        dma_resv_lock(exp.buf.resv, None)
        dma_resv_unlock(exp.buf.resv)
        mutex_unlock(m)
        assert not exp.buf.resv.held()

    run(body)
    res = dmabuf.explore(body)
    assert res.ok, res.failure


def test_every_call_through_an_attachment_of_a_released_buffer_is_a_use_after_free() -> None:
    """kernel-semantics 1.2: the last ``dma_buf_put`` frees the buffer; ``dma_buf_release`` WARNs when
    attachments remain, and an importer that then maps, unmaps, pins, unpins or detaches through
    the freed buffer dereferences freed memory. In log warn mode the model goes on after the WARN, so each
    of those calls must be refused as a use after free, not run on the released buffer. (A buffer still
    vmapped cannot get there: its release is a BUG, which stops the task.)"""
    refused: list[str] = []

    def body() -> None:
        exp = RecordingExporter(dynamic=True)
        buf = exp.buf
        a = dma_buf_dynamic_attach(buf, "dev", _importer_ops(), None)
        dma_resv_lock(buf.resv, None)
        sgt = dma_buf_map_attachment(a, DMA_BIDIRECTIONAL)
        assert isinstance(sgt, SgTable)
        dma_resv_unlock(buf.resv)
        calls: list[tuple[str, Callable[[], Any]]] = [
            ("dma_buf_map_attachment", lambda: dma_buf_map_attachment(a, DMA_BIDIRECTIONAL)),
            ("dma_buf_unmap_attachment", lambda: dma_buf_unmap_attachment(a, sgt, DMA_BIDIRECTIONAL)),
            ("dma_buf_pin", lambda: dma_buf_pin(a)),
            ("dma_buf_unpin", lambda: dma_buf_unpin(a)),
        ]
        dma_buf_put(buf)  # the last reference: WARNs (attachments remain), the buffer is released anyway
        assert buf.released
        del exp.calls[:]
        dma_resv_lock(buf.resv, None)
        for name, call in calls:
            with pytest.raises(UsageError, match="use after free") as ei:
                call()
            assert name in str(ei.value)
            refused.append(name)
        dma_resv_unlock(buf.resv)
        with pytest.raises(UsageError, match="use after free"):
            dma_buf_detach(buf, a)
        refused.append("dma_buf_detach")
        assert exp.calls == []  # no exporter callback ran on the freed buffer

    w = run_log(body)
    assert w.rule == "dma_buf_release: attachments remain"
    assert refused == [
        "dma_buf_map_attachment",
        "dma_buf_unmap_attachment",
        "dma_buf_pin",
        "dma_buf_unpin",
        "dma_buf_detach",
    ]
