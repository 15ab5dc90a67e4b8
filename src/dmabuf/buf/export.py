"""Exporting a dma-buf and sharing it: export, the dynamic-ness queries, file descriptors, references.

:func:`dma_buf_export` makes a :class:`~dmabuf.buf.objects.DmaBuf` with one reference (and an embedded resv
unless the exporter passes one); :func:`dma_buf_fd` installs it in this execution's fd table
(:func:`fd_table`), :func:`dma_buf_get` and :func:`close_fd` go back and forth, :func:`get_dma_buf` and
:func:`dma_buf_put` count references; the last put releases the buffer (the exporter's ``release``).

Kernel: ``dma_buf_export``, ``dma_buf_fd``, ``dma_buf_get``, ``dma_buf_put``, ``dma_buf_release``
(drivers/dma-buf/dma-buf.c), ``get_dma_buf`` (include/linux/dma-buf.h).
"""

from __future__ import annotations

import errno
from typing import Any

from ..errors import InvalidArgument
from ..kernel._warn import BUG_ON, WARN
from ..kernel.errno import ERR_PTR, ErrPtr
from ..policies.base import resolve_policy
from ..resv import DmaResv
from ..runtime import READ, WRITE, label_of, rt
from .objects import DmaBuf, DmaBufAttachment, DmaBufFile, _alive, _chk, _chk_int, _forbids_resv, _ops
from .ops import DmaBufExportInfo, DmaBufOps

__all__ = [
    "close_fd",
    "dma_buf_attachment_is_dynamic",
    "dma_buf_export",
    "dma_buf_fd",
    "dma_buf_get",
    "dma_buf_is_dynamic",
    "dma_buf_put",
    "fd_table",
    "get_dma_buf",
]


# ---------------------------------------------------------------------- export and files
def dma_buf_is_dynamic(dmabuf: DmaBuf) -> bool:
    """True if the exporter can move the buffer (it has ``ops.pin``). Kernel: ``dma_buf_is_dynamic``."""
    _chk(dmabuf, DmaBuf, "dma_buf_is_dynamic", "dmabuf", none_ok=False)
    return dmabuf.is_dynamic


def dma_buf_attachment_is_dynamic(attach: DmaBufAttachment) -> bool:
    """True if the importer handles moves (it gave importer ops). Kernel: ``dma_buf_attachment_is_dynamic``."""
    _chk(attach, DmaBufAttachment, "dma_buf_attachment_is_dynamic", "attach", none_ok=False)
    return attach.importer_ops is not None


def _export(info: DmaBufExportInfo, label: str | None = None) -> DmaBuf | ErrPtr:
    if not isinstance(info, DmaBufExportInfo):
        raise InvalidArgument(f"dma_buf_export needs a DmaBufExportInfo, got {type(info).__name__}")
    ops = info.ops
    if ops is not None and not isinstance(ops, DmaBufOps):
        raise InvalidArgument(f"dma_buf_export: info.ops must be DmaBufOps, got {type(ops).__name__}")
    if isinstance(info.size, bool) or not isinstance(info.size, int) or info.size < 0:
        raise InvalidArgument(f"dma_buf_export: info.size must be a size in bytes, got {info.size!r}")
    if info.resv is not None and not isinstance(info.resv, DmaResv):
        raise InvalidArgument(f"dma_buf_export: info.resv must be a DmaResv or None, got {type(info.resv).__name__}")
    missing = [] if ops is not None else ["ops"]
    if info.priv is None:
        missing.append("priv")
    if ops is not None:
        missing += [n for n in ("map_dma_buf", "unmap_dma_buf", "release") if getattr(ops, n) is None]
    if WARN(
        missing,
        f"dma_buf_export: exporter info lacks {', '.join(missing)} (priv, ops, ops.map_dma_buf, "
        "ops.unmap_dma_buf and ops.release are mandatory); returning -EINVAL",
        "dma_buf_export: mandatory exporter callbacks missing",
    ):
        return ERR_PTR(-errno.EINVAL)
    assert ops is not None
    if WARN(
        ops.cache_sgt_mapping and (ops.pin is not None or ops.unpin is not None),
        "dma_buf_export: cache_sgt_mapping cannot be combined with pin/unpin (a dynamic exporter's mappings "
        "move); returning -EINVAL",
        "dma_buf_export: cache_sgt_mapping with pin/unpin",
    ):
        return ERR_PTR(-errno.EINVAL)
    if WARN(
        (ops.pin is None) != (ops.unpin is None),
        "dma_buf_export: a dynamic exporter needs both pin and unpin (got only "
        f"{'pin' if ops.pin is not None else 'unpin'}); returning -EINVAL",
        "dma_buf_export: pin without unpin",
    ):
        return ERR_PTR(-errno.EINVAL)
    _forbids_resv(info.resv, "dma_buf_export")
    policy = resolve_policy(info.policy)
    r = rt()
    buf = DmaBuf()
    k = r.globals.get("dmabuf.export_count", 0) + 1
    r.globals["dmabuf.export_count"] = k
    buf._dm_label = label or f"dmabuf{k}"  # type: ignore[attr-defined]
    buf.size = info.size
    buf.ops = ops
    buf.exp_name = info.exp_name
    buf.owner = info.owner
    buf.priv = info.priv
    buf.policy = policy
    if info.resv is None:
        resv = DmaResv(f"{buf._dm_label}.resv")  # type: ignore[attr-defined]
        resv.init()
        buf.resv = resv
        buf._embedded_resv = True
    else:
        buf.resv = info.resv
    buf.file = DmaBufFile(buf)
    r.point("dma_buf_export", _db_list(), WRITE)
    return buf


def dma_buf_export(exp_info: DmaBufExportInfo) -> DmaBuf | ErrPtr:
    """Export a buffer: a new :class:`DmaBuf` with one reference, or ``ERR_PTR(-EINVAL)`` after a WARN
    (missing priv/ops/map/unmap/release, ``cache_sgt_mapping`` with pin/unpin, only one of pin/unpin).
    ``exp_info.resv is None`` gives the buffer an embedded resv (finalised on release).

    Locking: must not hold ``exp_info.resv``. Kernel: ``dma_buf_export`` (drivers/dma-buf/dma-buf.c).
    """
    return _export(exp_info)


class _Global:
    def __init__(self, label: str) -> None:
        self._dm_label = label


def _db_list() -> _Global:
    g = rt().globals
    o = g.get("dmabuf.db_list")
    if o is None:
        o = g["dmabuf.db_list"] = _Global("db_list")
    assert isinstance(o, _Global)
    return o


class _FdTable(_Global):
    def __init__(self) -> None:
        super().__init__("fd_table")
        self.files: dict[int, Any] = {}


def fd_table() -> dict[int, Any]:
    """This execution's file-descriptor table (fd -> file object); fds start at 3."""
    return _fds().files


def _fds() -> _FdTable:
    g = rt().globals
    t = g.get("dmabuf.fd_table")
    if t is None:
        t = g["dmabuf.fd_table"] = _FdTable()
    assert isinstance(t, _FdTable)
    return t


def dma_buf_fd(dmabuf: DmaBuf | None, flags: int) -> int:
    """Install the buffer's file at the lowest free fd (>= 3) and return it; the fd owns the caller's
    reference. ``-EINVAL`` for ``None`` or a buffer without a file.

    Locking: must not hold the resv. Kernel: ``dma_buf_fd``.
    """
    _chk(dmabuf, DmaBuf, "dma_buf_fd", "dmabuf")
    _chk_int(flags, "dma_buf_fd", "flags")
    if dmabuf is None or dmabuf.file is None:
        return -errno.EINVAL
    _alive(dmabuf, "dma_buf_fd")
    _forbids_resv(dmabuf.resv, "dma_buf_fd")
    t = _fds()
    rt().point("fd_install", t, WRITE)
    fd = 3
    while fd in t.files:
        fd += 1
    t.files[fd] = dmabuf.file
    return fd


def close_fd(fd: int) -> int:
    """Close ``fd`` (drops the file reference it owns): 0 or ``-EBADF``. Kernel: ``close_fd``."""
    _chk_int(fd, "close_fd", "fd")
    t = _fds()
    rt().point("close_fd", t, WRITE)
    f = t.files.pop(fd, None)
    if f is None:
        return -errno.EBADF
    if isinstance(f, DmaBufFile) and f.private_data is not None:
        dma_buf_put(f.private_data)
    return 0


def dma_buf_get(fd: int) -> DmaBuf | ErrPtr:
    """The buffer behind ``fd`` with a new reference; ``ERR_PTR(-EBADF)`` if no file, ``ERR_PTR(-EINVAL)``
    if the file is not a dma-buf.

    Locking: must not hold the resv. Kernel: ``dma_buf_get``.
    """
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise InvalidArgument(f"dma_buf_get needs an int fd, got {fd!r}")
    t = _fds()
    rt().point("fget", t, READ)
    f = t.files.get(fd)
    if f is None:
        return ERR_PTR(-errno.EBADF)
    if not isinstance(f, DmaBufFile) or f.private_data is None:
        return ERR_PTR(-errno.EINVAL)
    buf = f.private_data
    _forbids_resv(buf.resv, "dma_buf_get")
    get_dma_buf(buf)
    return buf


def get_dma_buf(dmabuf: DmaBuf) -> None:
    """Take a reference (``get_file``). Kernel: ``get_dma_buf`` (include/linux/dma-buf.h)."""
    _chk(dmabuf, DmaBuf, "get_dma_buf", "dmabuf", none_ok=False)
    _alive(dmabuf, "get_dma_buf")
    assert dmabuf.file is not None
    rt().point("get_file", dmabuf.file, WRITE)
    dmabuf.file.f_count += 1


def dma_buf_put(dmabuf: DmaBuf | None) -> None:
    """Drop a reference (``fput``); the last one releases the buffer: BUG if still vmapped, the exporter's
    ``release``, the embedded resv finalised, WARN if attachments remain.

    Locking: must not hold the resv (release may take it). Kernel: ``dma_buf_put``, ``dma_buf_release``.
    """
    _chk(dmabuf, DmaBuf, "dma_buf_put", "dmabuf")
    if WARN(dmabuf is None or dmabuf.file is None, "dma_buf_put(NULL)", "dma_buf_put: NULL buffer"):
        return
    assert dmabuf is not None and dmabuf.file is not None
    _alive(dmabuf, "dma_buf_put")
    _forbids_resv(dmabuf.resv, "dma_buf_put")
    f = dmabuf.file
    rt().point("fput", f, WRITE)
    f.f_count -= 1
    if f.f_count == 0:
        _release(dmabuf)


def _release(buf: DmaBuf) -> None:
    BUG_ON(buf.vmapping_counter, f"dma_buf_release: {label_of(buf)} still vmapped {buf.vmapping_counter} time(s)")
    buf.released = True
    _ops(buf).release(buf)
    if buf._embedded_resv:
        buf.resv.fini()
    WARN(
        bool(buf.attachments),
        f"dma_buf_release: {label_of(buf)} released with {len(buf.attachments)} attachment(s) still attached "
        f"({', '.join(label_of(a) for a in buf.attachments)}); importers must dma_buf_detach before the last "
        "dma_buf_put",
        "dma_buf_release: attachments remain",
    )
    rt().point("dma_buf_release", _db_list(), WRITE)
