"""Attachments: attach and detach, pin and unpin, and the atomic attach-and-map / unmap-and-detach.

:func:`dma_buf_attach` (static importers) and :func:`dma_buf_dynamic_attach` (dynamic importers, with
``move_notify``) run the exporter's ``attach`` unlocked and then add the attachment to ``dmabuf.attachments``
under the resv. v6.12: when importer and exporter disagree on dynamic-ness, the attach itself pins (dynamic
exporter) and maps ``DMA_BIDIRECTIONAL`` under the resv and caches the table in ``attach.sgt``; detach
releases it. :func:`dma_buf_pin` / :func:`dma_buf_unpin` (resv held) are for dynamic importers.
:func:`dma_buf_attach_and_map` / :func:`dma_buf_unmap_and_detach` make attachment and mapping appear and
disappear in one resv critical section (this model's option 3, not in mainline).

Kernel: ``dma_buf_attach``, ``dma_buf_dynamic_attach``, ``dma_buf_detach``, ``dma_buf_pin``,
``dma_buf_unpin`` (drivers/dma-buf/dma-buf.c).
"""

from __future__ import annotations

import errno
from typing import Any

from ..errors import InvalidArgument, UsageError
from ..kernel._warn import WARN
from ..kernel.errno import ERR_PTR, ErrPtr
from ..runtime import WRITE, label_of, rt
from .export import dma_buf_attachment_is_dynamic, dma_buf_is_dynamic
from .mapping import _map_dma_buf, _pin_on_map, _unmap_dma_buf, dma_buf_unmap_attachment
from .objects import (
    DmaBuf,
    DmaBufAttachment,
    _alive,
    _attach_ok,
    _chk,
    _forbids_resv,
    _lock,
    _op_ret,
    _ops,
    _requires_resv,
    _unlock,
)
from .ops import DmaBufAttachOps
from .sg_table import DMA_BIDIRECTIONAL, SgTable, check_dir

__all__ = [
    "dma_buf_attach",
    "dma_buf_attach_and_map",
    "dma_buf_detach",
    "dma_buf_dynamic_attach",
    "dma_buf_pin",
    "dma_buf_unmap_and_detach",
    "dma_buf_unpin",
]


# ---------------------------------------------------------------------- attach / detach
def _new_attachment(
    dmabuf: DmaBuf, ops: Any, dev: Any, importer_ops: DmaBufAttachOps | None, importer_priv: Any
) -> DmaBufAttachment | ErrPtr:
    """A new attachment of ``dev`` to ``dmabuf``, passed to the exporter's ``attach`` (unlocked, not yet on
    the buffer's list); the exporter's error as ``ERR_PTR`` (the attachment is then dead). An ``attach`` result
    that is not 0, a negative errno or ``None`` raises :class:`InvalidArgument` (the attachment is dead too)."""
    attach = DmaBufAttachment()
    attach.dev = dev
    attach.dmabuf = dmabuf
    if importer_ops is not None:
        attach.peer2peer = importer_ops.allow_peer2peer
    attach.importer_ops = importer_ops
    attach.importer_priv = importer_priv
    if ops.attach is not None:
        try:
            ret = _op_ret(ops.attach(dmabuf, attach), dmabuf, "attach", errno_only=True)
        except Exception:
            attach.detached = True
            raise
        if ret:
            attach.detached = True
            return ERR_PTR(ret)
    return attach


def dma_buf_dynamic_attach(
    dmabuf: DmaBuf | None, dev: Any, importer_ops: DmaBufAttachOps | None, importer_priv: Any
) -> DmaBufAttachment | ErrPtr:
    """Attach ``dev``; dynamic if ``importer_ops`` (which must have ``move_notify``).

    The exporter's ``attach`` runs unlocked; the core then takes the resv to add the attachment to the list.
    If importer and exporter disagree on dynamic-ness (v6.12), the core also pins (dynamic exporter) and
    maps ``DMA_BIDIRECTIONAL`` under the resv and caches the table in ``attach.sgt``; a static importer's map
    waits for the KERNEL fences. Errors: ``ERR_PTR(-EINVAL)`` after a WARN for a missing buffer/device or
    ``move_notify``; the exporter's errors. When that pin or map fails -- an errno, or an exception such as
    the :class:`InvalidArgument` for a ``map_dma_buf`` result that is no ``SgTable`` or a ``pin`` result
    that is no int -- the kernel's ``err_unpin`` / ``err_unlock`` path runs before the error is returned or
    propagates: unpin (only if the pin succeeded), unlock the resv, ``dma_buf_detach``.

    Locking: must not hold the resv. Kernel: ``dma_buf_dynamic_attach``.
    """
    _chk(dmabuf, DmaBuf, "dma_buf_dynamic_attach", "dmabuf")
    if WARN(dmabuf is None or dev is None, "dma_buf_dynamic_attach: NULL buffer or device", "dma_buf_attach: NULL"):
        return ERR_PTR(-errno.EINVAL)
    assert dmabuf is not None
    if importer_ops is not None and not isinstance(importer_ops, DmaBufAttachOps):
        raise InvalidArgument(f"dma_buf_dynamic_attach needs DmaBufAttachOps, got {type(importer_ops).__name__}")
    if WARN(
        importer_ops is not None and importer_ops.move_notify is None,
        "dma_buf_dynamic_attach: dynamic importers must provide importer_ops.move_notify",
        "dma_buf_dynamic_attach: importer_ops without move_notify",
    ):
        return ERR_PTR(-errno.EINVAL)
    _alive(dmabuf, "dma_buf_attach")
    held = _forbids_resv(dmabuf.resv, "dma_buf_attach" if importer_ops is None else "dma_buf_dynamic_attach")
    ops = _ops(dmabuf)
    attach = _new_attachment(dmabuf, ops, dev, importer_ops, importer_priv)
    if isinstance(attach, ErrPtr):
        return attach
    r = rt()
    _lock(dmabuf, held)
    r.point("list_add attachments", dmabuf, WRITE)
    dmabuf.attachments.insert(0, attach)  # list_add: at the head
    dmabuf.policy.on_attach(attach)
    _unlock(dmabuf, held)

    if dma_buf_attachment_is_dynamic(attach) != dma_buf_is_dynamic(dmabuf):
        _lock(dmabuf, held)
        pinned = False
        try:
            ret = 0
            if dmabuf.is_dynamic:
                ret = _op_ret(ops.pin(attach), dmabuf, "pin", errno_only=True)
                pinned = not ret
            sgt = ERR_PTR(ret) if ret else _map_dma_buf(attach, DMA_BIDIRECTIONAL)
            if sgt is None:
                sgt = ERR_PTR(-errno.ENOMEM)
        except Exception:
            _attach_map_failed(dmabuf, attach, pinned, held)
            raise
        if isinstance(sgt, ErrPtr):
            _attach_map_failed(dmabuf, attach, pinned, held)
            return sgt
        attach.sgt = sgt
        attach.dir = DMA_BIDIRECTIONAL
        _unlock(dmabuf, held)
    return attach


def _attach_map_failed(dmabuf: DmaBuf, attach: DmaBufAttachment, pinned: bool, held: bool) -> None:
    """``err_unpin`` / ``err_unlock`` of ``dma_buf_dynamic_attach`` (resv held): unpin if the pin succeeded,
    unlock, ``dma_buf_detach``. Each step runs even if the one before it raises."""
    try:
        if pinned:
            _ops(dmabuf).unpin(attach)
    finally:
        try:
            _unlock(dmabuf, held)
        finally:
            dma_buf_detach(dmabuf, attach)


def dma_buf_attach(dmabuf: DmaBuf | None, dev: Any) -> DmaBufAttachment | ErrPtr:
    """A static attachment: ``dma_buf_dynamic_attach(dmabuf, dev, None, None)``. Kernel: ``dma_buf_attach``."""
    _chk(dmabuf, DmaBuf, "dma_buf_attach", "dmabuf")
    return dma_buf_dynamic_attach(dmabuf, dev, None, None)


def dma_buf_detach(dmabuf: DmaBuf | None, attach: DmaBufAttachment | None) -> None:
    """Remove an attachment: under the resv, release a cached mapping (and unpin for a dynamic exporter) and
    unlink it; then the exporter's ``detach`` runs unlocked. WARNs and returns for ``None`` or a foreign
    attachment; detaching twice raises :class:`UsageError`.

    Locking: must not hold the resv. Kernel: ``dma_buf_detach``.
    """
    _chk(dmabuf, DmaBuf, "dma_buf_detach", "dmabuf")
    _chk(attach, DmaBufAttachment, "dma_buf_detach", "attach")
    if WARN(
        dmabuf is None or attach is None or attach.dmabuf is not dmabuf,
        "dma_buf_detach: NULL buffer/attachment, or the attachment belongs to another buffer",
        "dma_buf_detach: bad arguments",
    ):
        return
    assert dmabuf is not None and attach is not None
    if attach.detached:
        raise UsageError(f"dma_buf_detach: {label_of(attach)} was already detached (detaching twice is a double free)")
    _alive(dmabuf, "dma_buf_detach")
    held = _forbids_resv(dmabuf.resv, "dma_buf_detach")
    ops = _ops(dmabuf)
    _lock(dmabuf, held)
    _detach_locked(dmabuf, attach, held)
    _unlock(dmabuf, held)
    if ops.detach is not None:
        ops.detach(dmabuf, attach)
    attach.detached = True


def _detach_locked(dmabuf: DmaBuf, attach: DmaBufAttachment, held: bool) -> None:
    """The part of ``dma_buf_detach`` under the resv: release a cached mapping, unlink the attachment."""
    ops = _ops(dmabuf)
    if attach.sgt is not None:
        _unmap_dma_buf(attach, attach.sgt, attach.dir, "dma_buf_detach")
        if dmabuf.is_dynamic:
            ops.unpin(attach)
        attach.sgt = None
    try:
        dmabuf.policy.on_detach(attach)
    except Exception:
        # a policy refusing the detach (a broken contract: WARN in raise mode) must not leave the resv held
        _unlock(dmabuf, held)
        raise
    rt().point("list_del attachments", dmabuf, WRITE)
    dmabuf.attachments.remove(attach)


# ---------------------------------------------------------------------- pin / unpin
def dma_buf_pin(attach: DmaBufAttachment) -> int:
    """Pin the buffer in place for this attachment (``ops.pin``; 0 if the exporter has none). WARNs for a
    static attachment (only dynamic importers may pin). An exporter ``pin`` that returns ``None`` succeeded
    (0); one that returns anything but ``None``, 0 or a negative errno raises :class:`InvalidArgument`.

    Locking: resv held (checked). Kernel: ``dma_buf_pin``.
    """
    _chk(attach, DmaBufAttachment, "dma_buf_pin", "attach", none_ok=False)
    buf = attach._buf()
    _attach_ok(attach, "dma_buf_pin")
    WARN(
        attach.importer_ops is None,
        f"dma_buf_pin: {label_of(attach)} is a static attachment; only dynamic importers may pin",
        "dma_buf_pin: static attachment",
    )
    _requires_resv(buf, "dma_buf_pin")
    ops = _ops(buf)
    return _op_ret(ops.pin(attach), buf, "pin", errno_only=True) if ops.pin is not None else 0


def dma_buf_unpin(attach: DmaBufAttachment) -> None:
    """Undo :func:`dma_buf_pin`. Locking: resv held (checked). Kernel: ``dma_buf_unpin``."""
    _chk(attach, DmaBufAttachment, "dma_buf_unpin", "attach", none_ok=False)
    buf = attach._buf()
    _attach_ok(attach, "dma_buf_unpin")
    WARN(
        attach.importer_ops is None,
        f"dma_buf_unpin: {label_of(attach)} is a static attachment; only dynamic importers may pin",
        "dma_buf_unpin: static attachment",
    )
    _requires_resv(buf, "dma_buf_unpin")
    ops = _ops(buf)
    if ops.unpin is not None:
        ops.unpin(attach)


# ---------------------------------------------------------------------- attach_and_map / unmap_and_detach
def dma_buf_attach_and_map(
    dmabuf: DmaBuf | None, dev: Any, importer_ops: DmaBufAttachOps | None, importer_priv: Any, direction: int
) -> tuple[DmaBufAttachment | ErrPtr, SgTable | None]:
    """Attach a dynamic importer and map it, atomically (option 3 of the 2019 thread, Daniel Vetter's
    ``dma_buf_attach_and_map_sg``; not in mainline).

    The exporter's ``attach`` runs unlocked; then, in **one** resv critical section, the exporter maps the
    new attachment (pinning first if ``CONFIG_DMABUF_MOVE_NOTIFY`` is off) and only then is the attachment
    added to ``dmabuf.attachments``: attachment and mapping become visible together, so no move can notify
    an attachment that has no mapping yet (a move the exporter makes inside this ``map_dma_buf`` is not sent
    to it: it does not exist yet). Returns ``(attach, sgt)`` (rule 2: the C function returns the attachment
    and fills ``struct sg_table **``), or ``(ERR_PTR(-e), None)``: ``-EINVAL`` after a WARN for a missing
    buffer/device or importer ops without ``move_notify`` (only dynamic importers use it), the exporter's
    errors (the attachment is then detached). An exception from the pin or the map (such as the
    :class:`InvalidArgument` for a ``map_dma_buf`` result that is no ``SgTable``) propagates after the same
    clean-up: unpin (if pinned), unlock, the exporter's ``detach``; the attachment is dead and was never on
    the list. Tear down with :func:`dma_buf_unmap_and_detach`.

    Locking: must not hold the resv (takes it). Kernel name of this model: ``dma_buf_attach_and_map``.
    """
    fn = "dma_buf_attach_and_map"
    _chk(dmabuf, DmaBuf, fn, "dmabuf")
    if WARN(dmabuf is None or dev is None, f"{fn}: NULL buffer or device", f"{fn}: NULL"):
        return ERR_PTR(-errno.EINVAL), None
    assert dmabuf is not None
    if importer_ops is not None and not isinstance(importer_ops, DmaBufAttachOps):
        raise InvalidArgument(f"{fn} needs DmaBufAttachOps, got {type(importer_ops).__name__}")
    if WARN(
        importer_ops is None or importer_ops.move_notify is None,
        f"{fn}: only dynamic importers (importer_ops with move_notify) attach and map in one step; static "
        "importers use dma_buf_attach + dma_buf_map_attachment",
        f"{fn}: not a dynamic importer",
    ):
        return ERR_PTR(-errno.EINVAL), None
    assert importer_ops is not None
    direction = check_dir(direction, fn)
    _alive(dmabuf, fn)
    held = _forbids_resv(dmabuf.resv, fn)
    ops = _ops(dmabuf)
    attach = _new_attachment(dmabuf, ops, dev, importer_ops, importer_priv)
    if isinstance(attach, ErrPtr):
        return attach, None
    _lock(dmabuf, held)
    pinned = False
    err = 0
    sgt: Any = None
    try:
        if _pin_on_map(dmabuf):
            err = _op_ret(ops.pin(attach), dmabuf, "pin", errno_only=True)
            pinned = not err
        if not err:
            sgt = _map_dma_buf(attach, direction)
            if sgt is None:
                sgt = ERR_PTR(-errno.ENOMEM)
            if isinstance(sgt, ErrPtr):
                err = sgt.err
    except Exception:
        _attach_and_map_failed(dmabuf, attach, pinned, held)
        raise
    if err:
        _attach_and_map_failed(dmabuf, attach, pinned, held)
        return ERR_PTR(err), None
    r = rt()
    r.point("list_add attachments", dmabuf, WRITE)
    dmabuf.attachments.insert(0, attach)
    dmabuf.policy.on_attach(attach)
    dmabuf.policy.on_attach_and_map(attach, sgt)
    _unlock(dmabuf, held)
    return attach, sgt


def _attach_and_map_failed(dmabuf: DmaBuf, attach: DmaBufAttachment, pinned: bool, held: bool) -> None:
    """Clean-up of a failed :func:`dma_buf_attach_and_map` (resv held, attachment not on the list): unpin if
    pinned, unlock, the exporter's ``detach``; the attachment is dead. Each step runs even if one raises."""
    ops = _ops(dmabuf)
    try:
        if pinned:
            ops.unpin(attach)
    finally:
        try:
            _unlock(dmabuf, held)
        finally:
            try:
                if ops.detach is not None:
                    ops.detach(dmabuf, attach)
            finally:
                attach.detached = True


def dma_buf_unmap_and_detach(attach: DmaBufAttachment | None, sg_table: SgTable | None, direction: int) -> None:
    """Unmap ``sg_table`` and detach ``attach``, atomically: the counterpart of :func:`dma_buf_attach_and_map`.
    In one resv critical section the exporter unmaps (unpinning if pinned on map) and the attachment leaves
    the list; then the exporter's ``detach`` runs unlocked. WARNs and returns for ``None``.

    Raises:
        UsageError: ``sg_table`` was already unmapped or belongs to another attachment; ``attach`` was
            already detached.

    Locking: must not hold the resv (takes it). Kernel name of this model: ``dma_buf_unmap_and_detach``.
    """
    fn = "dma_buf_unmap_and_detach"
    _chk(attach, DmaBufAttachment, fn, "attach")
    _chk(sg_table, SgTable, fn, "sg_table")
    if WARN(
        attach is None or attach.dmabuf is None or sg_table is None,
        f"{fn}: NULL attachment or sg_table",
        f"{fn}: NULL",
    ):
        return
    assert attach is not None and sg_table is not None
    direction = check_dir(direction, fn)
    dmabuf = attach._buf()
    if attach.detached:
        raise UsageError(f"{fn}: {label_of(attach)} was already detached (detaching twice is a double free)")
    held = _forbids_resv(dmabuf.resv, fn)
    ops = _ops(dmabuf)
    _lock(dmabuf, held)
    try:
        dmabuf.policy.on_unmap_and_detach(attach, sg_table)
        dma_buf_unmap_attachment(attach, sg_table, direction)
    except Exception:
        _unlock(dmabuf, held)
        raise
    _detach_locked(dmabuf, attach, held)
    _unlock(dmabuf, held)
    if ops.detach is not None:
        ops.detach(dmabuf, attach)
    attach.detached = True
