"""Mapping an attachment for its device, and telling importers that their mappings moved.

:func:`dma_buf_map_attachment` returns the :class:`~dmabuf.buf.sg_table.SgTable` the device DMAs through;
:func:`dma_buf_unmap_attachment` gives it back (both with the resv held; the ``_unlocked`` variants take it).
v6.12: a cached ``attach.sgt`` (made at attach for a dynamic-ness mismatch, or by the first map with
``cache_sgt_mapping``) is returned by every map (``-EBUSY`` for an incompatible direction) and left alone by
unmap until detach; a static importer's map waits for the resv's KERNEL fences; a dynamic exporter pins on
map only when ``CONFIG_DMABUF_MOVE_NOTIFY`` is off. :func:`_map_dma_buf` and :func:`_unmap_dma_buf` are the
exporter calls shared with :mod:`.attach`, with the buffer policy's hooks around them.

:func:`dma_buf_move_notify` (the exporter, resv held) calls the ``move_notify`` of the attachments the
buffer's policy selects.

Kernel: ``dma_buf_map_attachment``, ``dma_buf_unmap_attachment`` and their ``_unlocked`` variants,
``__map_dma_buf``, ``__unmap_dma_buf``, ``dma_buf_move_notify`` (drivers/dma-buf/dma-buf.c).
"""

from __future__ import annotations

import errno

from ..errors import InvalidArgument, UsageError
from ..kernel import config
from ..kernel._warn import WARN
from ..kernel.errno import ERR_PTR, IS_ERR_OR_NULL, ErrPtr
from ..kernel.sched import MAX_SCHEDULE_TIMEOUT, might_sleep
from ..resv import Usage
from ..runtime import READ, WRITE, label_of, rt
from .export import dma_buf_attachment_is_dynamic
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
from .sg_table import DMA_BIDIRECTIONAL, SgTable, check_dir

__all__ = [
    "dma_buf_map_attachment",
    "dma_buf_map_attachment_unlocked",
    "dma_buf_move_notify",
    "dma_buf_unmap_attachment",
    "dma_buf_unmap_attachment_unlocked",
]


# ---------------------------------------------------------------------- map / unmap
def _map_dma_buf(attach: DmaBufAttachment, direction: int) -> SgTable | ErrPtr | None:
    """``__map_dma_buf``: the exporter's map, then (static importer) wait for the KERNEL fences."""
    buf = attach._buf()
    ops = _ops(buf)
    policy = buf.policy
    policy.before_map(attach)
    try:
        sgt = ops.map_dma_buf(attach, direction)
    except BaseException:
        policy.after_map(attach, None)
        raise
    if IS_ERR_OR_NULL(sgt):
        policy.after_map(attach, None)
        return sgt  # type: ignore[no-any-return]
    if not isinstance(sgt, SgTable):
        policy.after_map(attach, None)
        raise InvalidArgument(
            f"the exporter's map_dma_buf of {label_of(buf)} returned {type(sgt).__name__}; it must return an "
            "SgTable (e.g. bo.sg_table()), None or ERR_PTR"
        )
    if not dma_buf_attachment_is_dynamic(attach):
        ret = buf.resv.wait_timeout(Usage.KERNEL, True, MAX_SCHEDULE_TIMEOUT)
        if ret < 0:
            ops.unmap_dma_buf(attach, sgt, direction)
            sgt.unmapped_by = "__map_dma_buf (interrupted fence wait)"
            policy.after_map(attach, None)
            return ERR_PTR(ret)
    sgt.attachment = attach
    sgt.dir = direction
    sgt.policy = policy
    sgt.unmapped_by = None
    sgt.invalidated_by = None
    policy.after_map(attach, sgt)
    return sgt


def _unmap_dma_buf(attach: DmaBufAttachment, sgt: SgTable, direction: int, by: str) -> None:
    buf = attach._buf()
    buf.policy.on_unmap(attach, sgt)
    _ops(buf).unmap_dma_buf(attach, sgt, direction)
    # the IOMMU entries of the table's pages go: a WRITE point per page, so DPOR orders an unmap against the
    # device's accesses through the table (READ points on the same pages) -- without it, DMA racing with an
    # unmap of pages that stay allocated (H6) would look independent and never be explored
    r = rt()
    for p in sgt.pages:
        r.point("unmap_page", p, WRITE)
    buf.policy.mark_unmapped(sgt, f"{by} in task {r.current().name!r}")


def _pin_on_map(buf: DmaBuf) -> bool:
    return buf.is_dynamic and not config.CONFIG_DMABUF_MOVE_NOTIFY


def dma_buf_map_attachment(attach: DmaBufAttachment | None, direction: int) -> SgTable | ErrPtr:
    """Map the buffer for the attachment's device.

    v6.12: a cached ``attach.sgt`` is returned as is (``ERR_PTR(-EBUSY)`` if it was mapped for another,
    non-bidirectional direction); otherwise the exporter pins first if ``CONFIG_DMABUF_MOVE_NOTIFY`` is off
    and the buffer is dynamic, maps, a static importer waits for the KERNEL fences (interruptible), and with
    ``cache_sgt_mapping`` the table is cached. ``ERR_PTR(-EINVAL)`` after a WARN for ``None``. A pin made
    here is undone when the map fails, whether with an error pointer or an exception (which then propagates).

    Raises:
        UsageError: the attachment was detached.
        MappingInvalidated: the policy refuses (a dead one-shot attachment).
        InvalidArgument: the exporter's ``map_dma_buf`` returned something that is no ``SgTable``, ``None``
            or ``ERR_PTR``, or its ``pin`` something that is no int or ``None`` (a failed pin: not unpinned).

    Locking: resv held (checked). Kernel: ``dma_buf_map_attachment``.
    """
    _chk(attach, DmaBufAttachment, "dma_buf_map_attachment", "attach")
    might_sleep()
    if WARN(attach is None or attach.dmabuf is None, "dma_buf_map_attachment: NULL attachment", "dma_buf_map_attachment: NULL"):
        return ERR_PTR(-errno.EINVAL)
    assert attach is not None
    direction = check_dir(direction, "dma_buf_map_attachment")
    buf = attach._buf()
    _attach_ok(attach, "dma_buf_map_attachment")
    _requires_resv(buf, "dma_buf_map_attachment")
    buf.policy.check_map(attach)
    if attach.sgt is not None:
        if attach.dir != direction and attach.dir != DMA_BIDIRECTIONAL:
            return ERR_PTR(-errno.EBUSY)
        return attach.sgt
    ops = _ops(buf)
    pin = _pin_on_map(buf)
    if pin:
        ret = _op_ret(ops.pin(attach), buf, "pin", errno_only=True)
        if ret:
            return ERR_PTR(ret)
    try:
        sgt = _map_dma_buf(attach, direction)
    except Exception:
        if pin:
            ops.unpin(attach)
        raise
    if sgt is None:
        sgt = ERR_PTR(-errno.ENOMEM)
    if isinstance(sgt, ErrPtr):
        if pin:
            ops.unpin(attach)
        return sgt
    if ops.cache_sgt_mapping:
        attach.sgt = sgt
        attach.dir = direction
    return sgt


def dma_buf_unmap_attachment(attach: DmaBufAttachment | None, sg_table: SgTable | None, direction: int) -> None:
    """Unmap a table from :func:`dma_buf_map_attachment`. The cached ``attach.sgt`` is left alone (it goes
    at detach); otherwise the exporter's ``unmap_dma_buf`` runs and, if pinned on map, the buffer is unpinned.
    WARNs and returns for ``None``.

    Raises:
        UsageError: ``sg_table`` was already unmapped, or belongs to another attachment; ``attach`` was
            detached by ``dma_buf_detach`` (use after free; the exporter is not called).

    Locking: resv held (checked). Kernel: ``dma_buf_unmap_attachment``.
    """
    _chk(attach, DmaBufAttachment, "dma_buf_unmap_attachment", "attach")
    _chk(sg_table, SgTable, "dma_buf_unmap_attachment", "sg_table")
    might_sleep()
    if WARN(
        attach is None or attach.dmabuf is None or sg_table is None,
        "dma_buf_unmap_attachment: NULL attachment or sg_table",
        "dma_buf_unmap_attachment: NULL",
    ):
        return
    assert attach is not None and sg_table is not None
    direction = check_dir(direction, "dma_buf_unmap_attachment")
    buf = attach._buf()
    _attach_ok(attach, "dma_buf_unmap_attachment", "unmap every mapping before dma_buf_detach")
    _requires_resv(buf, "dma_buf_unmap_attachment")
    if attach.sgt is sg_table:
        return
    if sg_table.unmapped_by is not None:
        raise UsageError(
            f"dma_buf_unmap_attachment: {label_of(sg_table)} of {label_of(attach)} was already unmapped by "
            f"{sg_table.unmapped_by}; unmapping a mapping twice is a double free"
        )
    if sg_table.attachment is not None and sg_table.attachment is not attach:
        raise UsageError(
            f"dma_buf_unmap_attachment: {label_of(sg_table)} was mapped through {label_of(sg_table.attachment)}, "
            f"not {label_of(attach)}"
        )
    _unmap_dma_buf(attach, sg_table, direction, "dma_buf_unmap_attachment")
    if _pin_on_map(buf):
        ops = _ops(buf)
        ops.unpin(attach)


def dma_buf_map_attachment_unlocked(attach: DmaBufAttachment | None, direction: int) -> SgTable | ErrPtr:
    """Lock the resv, :func:`dma_buf_map_attachment`, unlock.

    Locking: must not hold the resv. Kernel: ``dma_buf_map_attachment_unlocked``.
    """
    _chk(attach, DmaBufAttachment, "dma_buf_map_attachment_unlocked", "attach")
    check_dir(direction, "dma_buf_map_attachment_unlocked")
    might_sleep()
    if WARN(attach is None or attach.dmabuf is None, "dma_buf_map_attachment_unlocked: NULL attachment", "dma_buf_map_attachment_unlocked: NULL"):
        return ERR_PTR(-errno.EINVAL)
    assert attach is not None
    buf = attach._buf()
    held = _forbids_resv(buf.resv, "dma_buf_map_attachment_unlocked")
    _lock(buf, held)
    try:
        return dma_buf_map_attachment(attach, direction)
    finally:
        _unlock(buf, held)


def dma_buf_unmap_attachment_unlocked(
    attach: DmaBufAttachment | None, sg_table: SgTable | None, direction: int
) -> None:
    """Lock the resv, :func:`dma_buf_unmap_attachment`, unlock (also when it raises, e.g. the
    :class:`UsageError` for a detached attachment).

    Locking: must not hold the resv. Kernel: ``dma_buf_unmap_attachment_unlocked``.
    """
    _chk(attach, DmaBufAttachment, "dma_buf_unmap_attachment_unlocked", "attach")
    _chk(sg_table, SgTable, "dma_buf_unmap_attachment_unlocked", "sg_table")
    check_dir(direction, "dma_buf_unmap_attachment_unlocked")
    might_sleep()
    if WARN(
        attach is None or attach.dmabuf is None or sg_table is None,
        "dma_buf_unmap_attachment_unlocked: NULL attachment or sg_table",
        "dma_buf_unmap_attachment_unlocked: NULL",
    ):
        return
    assert attach is not None
    buf = attach._buf()
    held = _forbids_resv(buf.resv, "dma_buf_unmap_attachment_unlocked")
    _lock(buf, held)
    try:
        dma_buf_unmap_attachment(attach, sg_table, direction)
    finally:
        _unlock(buf, held)


# ---------------------------------------------------------------------- move_notify
def dma_buf_move_notify(dmabuf: DmaBuf) -> None:
    """Tell importers the buffer moved: call ``importer_ops.move_notify(attach)`` for each attachment the
    buffer's policy selects (v6.12 / ``importer-tracks``: every dynamic attachment, in list order).

    Locking: the exporter holds the resv (checked). Kernel: ``dma_buf_move_notify``.
    """
    _chk(dmabuf, DmaBuf, "dma_buf_move_notify", "dmabuf", none_ok=False)
    _alive(dmabuf, "dma_buf_move_notify")
    _requires_resv(dmabuf, "dma_buf_move_notify")
    rt().point("list_for_each attachments", dmabuf, READ)
    policy = dmabuf.policy
    for attach in policy.notify_targets(dmabuf):
        ops = attach.importer_ops
        if ops is None or ops.move_notify is None:
            continue
        policy.before_notify(attach)
        ops.move_notify(attach)
        policy.after_notify(attach)
