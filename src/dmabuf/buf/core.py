"""The dma-buf core (drivers/dma-buf/dma-buf.c, Linux v6.12 behaviour).

A :class:`DmaBuf` is exported by a driver with :func:`dma_buf_export` (Pythonic: :meth:`DmaBuf.export`),
shared through file descriptors (:func:`dma_buf_fd`, :func:`dma_buf_get`, :func:`dma_buf_put`,
:func:`get_dma_buf`) and attached by importers (:func:`dma_buf_attach` for static importers,
:func:`dma_buf_dynamic_attach` with importer ops for dynamic ones). Importers map an attachment to get an
:class:`~dmabuf.buf.sg_table.SgTable` the device DMAs through.

**v6.12 specifics.** When the importer's and the exporter's dynamic-ness differ, the attach itself pins (for
a dynamic exporter) and maps ``DMA_BIDIRECTIONAL`` under the resv and caches the table in ``attach.sgt``;
every later map returns it (``-EBUSY`` for an incompatible direction) and unmap leaves it alone until detach.
Exporters with ``cache_sgt_mapping`` get the first map of each attachment cached the same way. A static
importer's map waits for the resv's KERNEL fences. A dynamic exporter pins on map only when
``CONFIG_DMABUF_MOVE_NOTIFY`` is off.

**Locking convention** (section 1.5 of the reference), enforced: functions that need the resv
(:func:`dma_buf_pin`, :func:`dma_buf_unpin`, :func:`dma_buf_map_attachment`, :func:`dma_buf_unmap_attachment`,
:func:`dma_buf_vmap`, :func:`dma_buf_vunmap`, :func:`dma_buf_move_notify`) WARN when the caller does not hold
it; functions that take it or may take it (attach, detach, export, fd, get, put, mmap, begin/end CPU access,
every ``_unlocked`` variant) WARN when the caller already holds it. The WARN's rule is
``"dma-buf locking convention: <function> requires the reservation lock"`` or ``"... must be called without
the reservation lock"``.

**Policies.** Each buffer has a mapping-tracking :class:`~dmabuf.policies.base.Policy`; the core calls its
hooks at attach, map, unmap, move_notify and detach.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from ..errors import InvalidArgument, UsageError
from ..kernel import config
from ..kernel._warn import BUG_ON, WARN
from ..kernel.errno import ERR_PTR, IS_ERR_OR_NULL, ErrPtr
from ..kernel.sched import MAX_SCHEDULE_TIMEOUT, might_sleep
from ..policies.base import Policy, resolve_policy
from ..resv import DmaResv, Usage, usage_rw
from ..runtime import READ, WRITE, label_of, rt
from .memory import PAGE_SHIFT
from .ops import DmaBufAttachOps, DmaBufExportInfo, DmaBufOps
from .sg_table import DMA_BIDIRECTIONAL, DMA_TO_DEVICE, CpuMapping, IosysMap, SgTable, check_dir

__all__ = [
    "DmaBuf",
    "DmaBufAttachment",
    "DmaBufFile",
    "VmAreaStruct",
    "close_fd",
    "dma_buf_attach",
    "dma_buf_attach_and_map",
    "dma_buf_attachment_is_dynamic",
    "dma_buf_begin_cpu_access",
    "dma_buf_detach",
    "dma_buf_dynamic_attach",
    "dma_buf_end_cpu_access",
    "dma_buf_export",
    "dma_buf_fd",
    "dma_buf_get",
    "dma_buf_is_dynamic",
    "dma_buf_map_attachment",
    "dma_buf_map_attachment_unlocked",
    "dma_buf_mmap",
    "dma_buf_move_notify",
    "dma_buf_pin",
    "dma_buf_put",
    "dma_buf_unmap_and_detach",
    "dma_buf_unmap_attachment",
    "dma_buf_unmap_attachment_unlocked",
    "dma_buf_unpin",
    "dma_buf_vmap",
    "dma_buf_vmap_unlocked",
    "dma_buf_vunmap",
    "dma_buf_vunmap_unlocked",
    "fd_table",
    "get_dma_buf",
]

_RULE = "dma-buf locking convention"
_U64 = 1 << 64


# ---------------------------------------------------------------------- objects
class DmaBufFile:
    """The ``struct file`` behind a dma-buf: its reference count is the buffer's (``f_count``)."""

    def __init__(self, dmabuf: DmaBuf | None = None) -> None:
        self.f_count = 1
        self.private_data = dmabuf
        self._dm_label = f"{label_of(dmabuf)}.file" if dmabuf is not None else "file"

    def __repr__(self) -> str:
        return f"<DmaBufFile {self._dm_label} count={self.f_count}>"


class VmAreaStruct:
    """A user mapping request (``struct vm_area_struct``): ``vm_start``/``vm_end`` in bytes,
    ``vm_pgoff`` in pages; ``dma_buf_mmap`` sets ``vm_file`` and ``vm_pgoff``. An exporter's ``mmap`` may
    put a :class:`~dmabuf.buf.sg_table.CpuMapping` in ``vaddr`` for CPU access."""

    def __init__(self, vm_start: int = 0, vm_end: int = 0, vm_pgoff: int = 0) -> None:
        for what, v in (("vm_start", vm_start), ("vm_end", vm_end), ("vm_pgoff", vm_pgoff)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise InvalidArgument(f"VmAreaStruct {what} must be an unsigned long, got {v!r}")
        if vm_end < vm_start:
            raise InvalidArgument(f"VmAreaStruct vm_end {vm_end} is below vm_start {vm_start}")
        self.vm_start = vm_start
        self.vm_end = vm_end
        self.vm_pgoff = vm_pgoff
        self.vm_file: DmaBufFile | None = None
        self.vaddr: Any = None

    def pages(self) -> int:
        """Kernel: ``vma_pages``."""
        return (self.vm_end - self.vm_start) >> PAGE_SHIFT


class DmaBufAttachment:
    """One device's attachment to a buffer (``struct dma_buf_attachment``).

    Fields (kernel names): ``dmabuf``, ``dev``, ``peer2peer``, ``importer_ops``, ``importer_priv``, ``priv``
    (the exporter's), ``sgt``/``dir`` (the cached mapping, v6.2-v6.14). Model state: ``detached``, and
    ``policy_data`` (a dict the buffer's policy keeps per attachment).

    Pythonic use::

        with buf.resv:
            with attach.map(DMA_BIDIRECTIONAL) as sgt:    # dma_buf_map_attachment ... unmap at exit
                sgt.dma_write(0, b"data")
        with attach.map_unlocked(DMA_TO_DEVICE) as sgt:   # takes the resv itself
            ...
    """

    def __init__(self) -> None:
        self.dmabuf: DmaBuf | None = None
        self.dev: Any = None
        self.peer2peer = False
        self.importer_ops: DmaBufAttachOps | None = None
        self.importer_priv: Any = None
        self.priv: Any = None
        self.sgt: SgTable | None = None
        self.dir = DMA_BIDIRECTIONAL
        self.detached = False
        self.policy_data: dict[str, Any] = {}

    @property
    def is_dynamic(self) -> bool:
        """Kernel: ``dma_buf_attachment_is_dynamic``."""
        return self.importer_ops is not None

    def _buf(self) -> DmaBuf:
        b = self.dmabuf
        if b is None:
            raise InvalidArgument(f"{label_of(self)} belongs to no dma-buf")
        return b

    def map(self, direction: int = DMA_BIDIRECTIONAL) -> SgTable:
        """Map (resv held): ``dma_buf_map_attachment``. The table is a context manager that unmaps at exit.

        Raises:
            OSError: the kernel's error (``-EBUSY`` direction clash, exporter errors, ``-EINTR`` waits).
        """
        sgt: SgTable = _ok_ptr(dma_buf_map_attachment(self, direction), "dma_buf_map_attachment")
        sgt._exit_unmap = lambda: dma_buf_unmap_attachment(self, sgt, direction)
        return sgt

    def map_unlocked(self, direction: int = DMA_BIDIRECTIONAL) -> SgTable:
        """As :meth:`map` but takes the resv itself: ``dma_buf_map_attachment_unlocked``."""
        sgt: SgTable = _ok_ptr(dma_buf_map_attachment_unlocked(self, direction), "dma_buf_map_attachment_unlocked")
        sgt._exit_unmap = lambda: dma_buf_unmap_attachment_unlocked(self, sgt, direction)
        return sgt

    def unmap(self, sgt: SgTable, direction: int | None = None) -> None:
        """``dma_buf_unmap_attachment`` (resv held); ``direction`` defaults to the one mapped with."""
        dma_buf_unmap_attachment(self, sgt, sgt.dir if direction is None else direction)

    def unmap_unlocked(self, sgt: SgTable, direction: int | None = None) -> None:
        """``dma_buf_unmap_attachment_unlocked``."""
        dma_buf_unmap_attachment_unlocked(self, sgt, sgt.dir if direction is None else direction)

    def pin(self) -> None:
        """``dma_buf_pin`` (resv held). Raises :class:`OSError` on the exporter's error."""
        _ok(dma_buf_pin(self), "dma_buf_pin")

    def unpin(self) -> None:
        """``dma_buf_unpin`` (resv held)."""
        dma_buf_unpin(self)

    def detach(self) -> None:
        """``dma_buf_detach`` (takes the resv)."""
        dma_buf_detach(self._buf(), self)

    def unmap_and_detach(self, sgt: SgTable, direction: int | None = None) -> None:
        """``dma_buf_unmap_and_detach`` (takes the resv): the end of an :meth:`DmaBuf.attach_and_map`."""
        dma_buf_unmap_and_detach(self, sgt, sgt.dir if direction is None else direction)

    def __repr__(self) -> str:
        kind = "dynamic" if self.importer_ops is not None else "static"
        return f"<DmaBufAttachment {label_of(self)} {kind} of {label_of(self.dmabuf)} dev={self.dev!r}>"


class DmaBuf:
    """A shared buffer (``struct dma_buf``).

    Fields (kernel names): ``size``, ``file``, ``attachments`` (a list, protected by the resv), ``ops``,
    ``vmapping_counter``, ``vmap_ptr``, ``exp_name``, ``name``, ``owner``, ``priv``, ``resv``. Model state:
    ``policy`` (its :class:`~dmabuf.policies.base.Policy`) and ``released``.
    """

    def __init__(self) -> None:
        self.size = 0
        self.file: DmaBufFile | None = None
        self.attachments: list[DmaBufAttachment] = []
        self.ops: DmaBufOps | None = None
        self.vmapping_counter = 0
        self.vmap_ptr = IosysMap()
        self.exp_name = ""
        self.name: str | None = None
        self.owner: Any = None
        self.priv: Any = None
        self.resv: DmaResv = DmaResv()
        self.policy: Policy = Policy()
        self.released = False
        self._embedded_resv = False

    # ------------------------------------------------------------------ Pythonic API
    @classmethod
    def export(
        cls,
        ops: DmaBufOps,
        size: int,
        priv: Any,
        *,
        resv: DmaResv | None = None,
        exp_name: str = "dmabuf-model",
        policy: Any = None,
        name: str | None = None,
    ) -> DmaBuf:
        """Export a buffer (``dma_buf_export``); ``name`` labels it in traces.

        Raises:
            OSError: ``-EINVAL`` for a bad ops table (after the kernel's WARN in log mode).
            KernelWarning: the ops table lacks mandatory callbacks (raise mode).
        """
        info = DmaBufExportInfo(exp_name=exp_name, ops=ops, size=size, priv=priv, resv=resv, policy=policy)
        buf = _ok_ptr(_export(info, name), "dma_buf_export")
        assert isinstance(buf, DmaBuf)
        return buf

    @property
    def is_dynamic(self) -> bool:
        """Kernel: ``dma_buf_is_dynamic`` (the exporter has ``pin``)."""
        return self.ops is not None and self.ops.pin is not None

    def attach(self, dev: Any, importer_ops: DmaBufAttachOps | None = None, importer_priv: Any = None) -> DmaBufAttachment:
        """Attach a device: static without ``importer_ops`` (``dma_buf_attach``), dynamic with them
        (``dma_buf_dynamic_attach``). Takes the resv. Raises :class:`OSError` on the kernel's errors."""
        a = _ok_ptr(dma_buf_dynamic_attach(self, dev, importer_ops, importer_priv), "dma_buf_dynamic_attach")
        assert isinstance(a, DmaBufAttachment)
        return a

    def detach(self, attach: DmaBufAttachment) -> None:
        """``dma_buf_detach``."""
        dma_buf_detach(self, attach)

    def attach_and_map(
        self, dev: Any, importer_ops: DmaBufAttachOps, importer_priv: Any = None, direction: int = DMA_BIDIRECTIONAL
    ) -> tuple[DmaBufAttachment, SgTable]:
        """``dma_buf_attach_and_map``: a dynamic attachment and its mapping, made atomically (takes the resv).
        Undo with ``attach.unmap_and_detach(sgt)``. Raises :class:`OSError` on the kernel's errors."""
        a, sgt = dma_buf_attach_and_map(self, dev, importer_ops, importer_priv, direction)
        a = _ok_ptr(a, "dma_buf_attach_and_map")
        assert isinstance(a, DmaBufAttachment) and isinstance(sgt, SgTable)
        return a, sgt

    def fd(self, flags: int = 0) -> int:
        """Install the buffer in this execution's fd table (``dma_buf_fd``); the fd owns the caller's
        reference."""
        return _ok(dma_buf_fd(self, flags), "dma_buf_fd")

    @staticmethod
    def from_fd(fd: int) -> DmaBuf:
        """``dma_buf_get``: the buffer behind ``fd``, with a new reference."""
        b = _ok_ptr(dma_buf_get(fd), "dma_buf_get")
        assert isinstance(b, DmaBuf)
        return b

    def get(self) -> DmaBuf:
        """``get_dma_buf``: take a reference."""
        get_dma_buf(self)
        return self

    def put(self) -> None:
        """``dma_buf_put``: drop a reference; the last one releases the buffer."""
        dma_buf_put(self)

    def move_notify(self) -> None:
        """``dma_buf_move_notify`` (resv held): tell the importers the policy selects that the buffer moved."""
        dma_buf_move_notify(self)

    def begin_cpu_access(self, direction: int) -> None:
        """``dma_buf_begin_cpu_access`` (unlocked; waits for the fences of the access)."""
        _ok(dma_buf_begin_cpu_access(self, direction), "dma_buf_begin_cpu_access")

    def end_cpu_access(self, direction: int) -> None:
        """``dma_buf_end_cpu_access``."""
        _ok(dma_buf_end_cpu_access(self, direction), "dma_buf_end_cpu_access")

    def vmap(self) -> IosysMap:
        """``dma_buf_vmap`` (resv held)."""
        ret, m = dma_buf_vmap(self)
        _ok(ret, "dma_buf_vmap")
        return m

    def vunmap(self, m: IosysMap) -> None:
        """``dma_buf_vunmap`` (resv held)."""
        dma_buf_vunmap(self, m)

    def mmap(self, vma: VmAreaStruct, pgoff: int = 0) -> None:
        """``dma_buf_mmap``."""
        _ok(dma_buf_mmap(self, vma, pgoff), "dma_buf_mmap")

    def __repr__(self) -> str:
        state = "released" if self.released else f"{len(self.attachments)} attachment(s)"
        return f"<DmaBuf {label_of(self)} size={self.size} {'dynamic' if self.is_dynamic else 'static'} {state}>"


def _ok(ret: int, fn: str) -> int:
    if isinstance(ret, int) and ret < 0:
        raise OSError(-ret, f"{fn} failed: {os.strerror(-ret)}")
    return ret


def _ok_ptr(p: Any, fn: str) -> Any:
    if p is None:
        raise OSError(errno.ENOMEM, f"{fn} returned NULL")
    if isinstance(p, ErrPtr):
        raise OSError(-p.err, f"{fn} failed: {os.strerror(-p.err)}")
    return p




def _chk(v: object, cls: type, fn: str, what: str, none_ok: bool = True) -> None:
    """Argument check of kernel-named functions: ``v`` is a ``cls`` (or ``None`` where the kernel copes)."""
    if v is None and none_ok:
        return
    if not isinstance(v, cls):
        got = "NULL" if v is None else type(v).__name__
        raise InvalidArgument(f"{fn} needs a {cls.__name__} as {what}, got {got}")


def _chk_int(v: object, fn: str, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise InvalidArgument(f"{fn} needs an int {what}, got {v!r}")
    return v


# ---------------------------------------------------------------------- locking convention
def _requires_resv(buf: DmaBuf, fn: str) -> None:
    """WARN unless the caller holds ``buf.resv`` (``dma_resv_assert_held`` with the convention's name)."""
    if not buf.resv.held():
        WARN(
            True,
            f"{_RULE}: {fn} requires the reservation lock of {label_of(buf)}; take it with dma_resv_lock() "
            f"first{' or use the _unlocked variant' if fn in _HAS_UNLOCKED else ''}",
            f"{_RULE}: {fn} requires the reservation lock",
        )


_HAS_UNLOCKED = ("dma_buf_map_attachment", "dma_buf_unmap_attachment", "dma_buf_vmap", "dma_buf_vunmap")


def _forbids_resv(resv: DmaResv | None, fn: str, what: str = "") -> bool:
    """WARN if the caller holds ``resv``: ``fn`` takes (or may take) it itself. Returns True when it is held
    (log mode carries on without taking it again)."""
    if resv is None or not resv.held():
        return False
    WARN(
        True,
        f"{_RULE}: {fn} must be called without the reservation lock{what}; it takes the lock itself, so "
        "calling it with the lock held would deadlock. Drop the lock first (importers hold it only for pin, "
        "unpin, map, unmap, vmap, vunmap; exporters for move_notify)",
        f"{_RULE}: {fn} must be called without the reservation lock",
    )
    return True


def _lock(buf: DmaBuf, held: bool) -> None:
    if not held:
        buf.resv.lock_resv(None)


def _unlock(buf: DmaBuf, held: bool) -> None:
    if not held:
        buf.resv.unlock()


def _alive(buf: DmaBuf, fn: str) -> None:
    if buf.released:
        raise UsageError(
            f"{fn} on {label_of(buf)}, which was released by its last dma_buf_put (use after free): keep a "
            "reference (get_dma_buf / dma_buf_get) while using the buffer"
        )


def _attach_ok(attach: DmaBufAttachment, fn: str) -> None:
    if attach.detached:
        raise UsageError(
            f"{fn} through {label_of(attach)}, which was detached by dma_buf_detach (use after free): attach "
            "again before mapping"
        )


def _ops(buf: DmaBuf) -> DmaBufOps:
    ops = buf.ops
    assert ops is not None
    return ops


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


# ---------------------------------------------------------------------- attach / detach
def dma_buf_dynamic_attach(
    dmabuf: DmaBuf | None, dev: Any, importer_ops: DmaBufAttachOps | None, importer_priv: Any
) -> DmaBufAttachment | ErrPtr:
    """Attach ``dev``; dynamic if ``importer_ops`` (which must have ``move_notify``).

    The exporter's ``attach`` runs unlocked; the core then takes the resv to add the attachment to the list.
    If importer and exporter disagree on dynamic-ness (v6.12), the core also pins (dynamic exporter) and
    maps ``DMA_BIDIRECTIONAL`` under the resv and caches the table in ``attach.sgt``; a static importer's map
    waits for the KERNEL fences. Errors: ``ERR_PTR(-EINVAL)`` after a WARN for a missing buffer/device or
    ``move_notify``; the exporter's errors.

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
    attach = DmaBufAttachment()
    attach.dev = dev
    attach.dmabuf = dmabuf
    if importer_ops is not None:
        attach.peer2peer = importer_ops.allow_peer2peer
    attach.importer_ops = importer_ops
    attach.importer_priv = importer_priv
    if ops.attach is not None:
        ret = ops.attach(dmabuf, attach)
        if ret:
            attach.detached = True
            return ERR_PTR(ret)
    r = rt()
    _lock(dmabuf, held)
    r.point("list_add attachments", dmabuf, WRITE)
    dmabuf.attachments.insert(0, attach)  # list_add: at the head
    dmabuf.policy.on_attach(attach)
    _unlock(dmabuf, held)

    if dma_buf_attachment_is_dynamic(attach) != dma_buf_is_dynamic(dmabuf):
        _lock(dmabuf, held)
        if dmabuf.is_dynamic:
            ret = ops.pin(attach)
            if ret:
                _unlock(dmabuf, held)
                dma_buf_detach(dmabuf, attach)
                return ERR_PTR(ret)
        sgt = _map_dma_buf(attach, DMA_BIDIRECTIONAL)
        if sgt is None:
            sgt = ERR_PTR(-errno.ENOMEM)
        if isinstance(sgt, ErrPtr):
            if dmabuf.is_dynamic:
                ops.unpin(attach)
            _unlock(dmabuf, held)
            dma_buf_detach(dmabuf, attach)
            return sgt
        attach.sgt = sgt
        attach.dir = DMA_BIDIRECTIONAL
        _unlock(dmabuf, held)
    return attach


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


# ---------------------------------------------------------------------- pin / map / unmap
def dma_buf_pin(attach: DmaBufAttachment) -> int:
    """Pin the buffer in place for this attachment (``ops.pin``; 0 if the exporter has none). WARNs for a
    static attachment (only dynamic importers may pin).

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
    return int(ops.pin(attach)) if ops.pin is not None else 0


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
    ``cache_sgt_mapping`` the table is cached. ``ERR_PTR(-EINVAL)`` after a WARN for ``None``.

    Raises:
        UsageError: the attachment was detached.
        MappingInvalidated: the policy refuses (a dead one-shot attachment).

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
        ret = ops.pin(attach)
        if ret:
            return ERR_PTR(ret)
    sgt = _map_dma_buf(attach, direction)
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
        UsageError: ``sg_table`` was already unmapped, or belongs to another attachment.

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
    """Lock the resv, :func:`dma_buf_unmap_attachment`, unlock.

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
    errors (the attachment is then detached). Tear down with :func:`dma_buf_unmap_and_detach`.

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
    attach = DmaBufAttachment()
    attach.dev = dev
    attach.dmabuf = dmabuf
    attach.peer2peer = importer_ops.allow_peer2peer
    attach.importer_ops = importer_ops
    attach.importer_priv = importer_priv
    if ops.attach is not None:
        ret = ops.attach(dmabuf, attach)
        if ret:
            attach.detached = True
            return ERR_PTR(ret), None
    _lock(dmabuf, held)
    pin = _pin_on_map(dmabuf)
    err = 0
    sgt: Any = None
    if pin:
        err = ops.pin(attach)
    if not err:
        sgt = _map_dma_buf(attach, direction)
        if sgt is None:
            sgt = ERR_PTR(-errno.ENOMEM)
        if isinstance(sgt, ErrPtr):
            err = sgt.err
            if pin:
                ops.unpin(attach)
    if err:
        _unlock(dmabuf, held)
        if ops.detach is not None:
            ops.detach(dmabuf, attach)
        attach.detached = True
        return ERR_PTR(err), None
    r = rt()
    r.point("list_add attachments", dmabuf, WRITE)
    dmabuf.attachments.insert(0, attach)
    dmabuf.policy.on_attach(attach)
    dmabuf.policy.on_attach_and_map(attach, sgt)
    _unlock(dmabuf, held)
    return attach, sgt


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


# ---------------------------------------------------------------------- CPU access
def _write_dir(direction: int) -> bool:
    return direction in (DMA_BIDIRECTIONAL, DMA_TO_DEVICE)


def dma_buf_begin_cpu_access(dmabuf: DmaBuf | None, direction: int) -> int:
    """Prepare CPU access: the exporter's ``begin_cpu_access`` (unlocked), then wait (interruptible) for the
    fences the access must not overtake (``dma_resv_usage_rw(write)``, write = BIDIRECTIONAL or TO_DEVICE).
    Returns 0, the exporter's error, ``-ERESTARTSYS``, or ``-EINVAL`` after a WARN for ``None``.

    Locking: must not hold the resv (might_lock). Kernel: ``dma_buf_begin_cpu_access``.
    """
    _chk(dmabuf, DmaBuf, "dma_buf_begin_cpu_access", "dmabuf")
    if WARN(dmabuf is None, "dma_buf_begin_cpu_access(NULL)", "dma_buf_begin_cpu_access: NULL"):
        return -errno.EINVAL
    assert dmabuf is not None
    direction = check_dir(direction, "dma_buf_begin_cpu_access")
    _alive(dmabuf, "dma_buf_begin_cpu_access")
    _forbids_resv(dmabuf.resv, "dma_buf_begin_cpu_access")
    ops = _ops(dmabuf)
    ret = 0
    if ops.begin_cpu_access is not None:
        ret = int(ops.begin_cpu_access(dmabuf, direction))
    if ret == 0:
        w = dmabuf.resv.wait_timeout(usage_rw(_write_dir(direction)), True, MAX_SCHEDULE_TIMEOUT)
        ret = w if w < 0 else 0
    return ret


def dma_buf_end_cpu_access(dmabuf: DmaBuf | None, direction: int) -> int:
    """End CPU access: the exporter's ``end_cpu_access`` (unlocked) or 0.

    Locking: must not hold the resv (might_lock). Kernel: ``dma_buf_end_cpu_access``.
    """
    _chk(dmabuf, DmaBuf, "dma_buf_end_cpu_access", "dmabuf")
    if WARN(dmabuf is None, "dma_buf_end_cpu_access(NULL)", "dma_buf_end_cpu_access: NULL"):
        return -errno.EINVAL
    assert dmabuf is not None
    direction = check_dir(direction, "dma_buf_end_cpu_access")
    _alive(dmabuf, "dma_buf_end_cpu_access")
    _forbids_resv(dmabuf.resv, "dma_buf_end_cpu_access")
    ops = _ops(dmabuf)
    return int(ops.end_cpu_access(dmabuf, direction)) if ops.end_cpu_access is not None else 0


def _call_vmap(buf: DmaBuf) -> tuple[int, IosysMap]:
    res = _ops(buf).vmap(buf)
    if isinstance(res, tuple):
        ret, m = res
        return int(ret), m if isinstance(m, IosysMap) else IosysMap(m)
    if isinstance(res, IosysMap):
        return 0, res
    if isinstance(res, int) and not isinstance(res, bool):
        return res, IosysMap()
    return 0, IosysMap(res)


def dma_buf_vmap(dmabuf: DmaBuf | None) -> tuple[int, IosysMap]:
    """A kernel virtual mapping, refcounted: the first call runs the exporter's ``vmap``, later ones reuse
    ``vmap_ptr``. Returns ``(ret, map)``: ``(-EINVAL, cleared map)`` without a ``vmap`` op or (after a WARN)
    for ``None``; the exporter's error after a WARN.

    Locking: resv held (checked). Kernel: ``dma_buf_vmap``.
    """
    _chk(dmabuf, DmaBuf, "dma_buf_vmap", "dmabuf")
    m = IosysMap()
    if WARN(dmabuf is None, "dma_buf_vmap(NULL)", "dma_buf_vmap: NULL"):
        return -errno.EINVAL, m
    assert dmabuf is not None
    _alive(dmabuf, "dma_buf_vmap")
    _requires_resv(dmabuf, "dma_buf_vmap")
    if _ops(dmabuf).vmap is None:
        return -errno.EINVAL, m
    rt().point("vmap", dmabuf, WRITE)
    if dmabuf.vmapping_counter:
        dmabuf.vmapping_counter += 1
        BUG_ON(dmabuf.vmap_ptr.is_null(), "dma_buf_vmap: counter set but vmap_ptr NULL")
        return 0, IosysMap(dmabuf.vmap_ptr.vaddr, dmabuf.vmap_ptr.is_iomem)
    BUG_ON(dmabuf.vmap_ptr.is_set(), "dma_buf_vmap: vmap_ptr set with a zero counter")
    ret, ptr = _call_vmap(dmabuf)
    if WARN(ret, f"dma_buf_vmap: the exporter's vmap of {label_of(dmabuf)} failed with {ret}", "dma_buf_vmap: vmap failed"):
        return ret, m
    if isinstance(ptr.vaddr, CpuMapping):
        ptr.vaddr.policy = dmabuf.policy
    dmabuf.vmap_ptr = ptr
    dmabuf.vmapping_counter = 1
    return 0, IosysMap(ptr.vaddr, ptr.is_iomem)


def dma_buf_vunmap(dmabuf: DmaBuf | None, map: IosysMap) -> None:
    """Drop one vmap reference; the last one runs the exporter's ``vunmap`` and clears ``vmap_ptr``. BUG on
    a NULL ``vmap_ptr``, a zero counter or a map that is not the buffer's.

    Locking: resv held (checked). Kernel: ``dma_buf_vunmap``.
    """
    _chk(dmabuf, DmaBuf, "dma_buf_vunmap", "dmabuf")
    _chk(map, IosysMap, "dma_buf_vunmap", "map", none_ok=False)
    if WARN(dmabuf is None, "dma_buf_vunmap(NULL)", "dma_buf_vunmap: NULL"):
        return
    assert dmabuf is not None
    _requires_resv(dmabuf, "dma_buf_vunmap")
    rt().point("vunmap", dmabuf, WRITE)
    BUG_ON(dmabuf.vmap_ptr.is_null(), f"dma_buf_vunmap: {label_of(dmabuf)} is not vmapped")
    BUG_ON(dmabuf.vmapping_counter == 0, f"dma_buf_vunmap: {label_of(dmabuf)} vmapping_counter is 0")
    BUG_ON(dmabuf.vmap_ptr != map, f"dma_buf_vunmap: {map!r} is not the vmap of {label_of(dmabuf)}")
    dmabuf.vmapping_counter -= 1
    if dmabuf.vmapping_counter == 0:
        ops = _ops(dmabuf)
        if ops.vunmap is not None:
            ops.vunmap(dmabuf, map)
        v = dmabuf.vmap_ptr.vaddr
        if isinstance(v, CpuMapping):
            v.unmapped_by = f"dma_buf_vunmap in task {rt().current().name!r}"
        dmabuf.vmap_ptr = IosysMap()


def dma_buf_vmap_unlocked(dmabuf: DmaBuf | None) -> tuple[int, IosysMap]:
    """Lock, :func:`dma_buf_vmap`, unlock. Locking: must not hold the resv. Kernel: ``dma_buf_vmap_unlocked``."""
    _chk(dmabuf, DmaBuf, "dma_buf_vmap_unlocked", "dmabuf")
    if WARN(dmabuf is None, "dma_buf_vmap_unlocked(NULL)", "dma_buf_vmap_unlocked: NULL"):
        return -errno.EINVAL, IosysMap()
    assert dmabuf is not None
    held = _forbids_resv(dmabuf.resv, "dma_buf_vmap_unlocked")
    _lock(dmabuf, held)
    try:
        return dma_buf_vmap(dmabuf)
    finally:
        _unlock(dmabuf, held)


def dma_buf_vunmap_unlocked(dmabuf: DmaBuf | None, map: IosysMap) -> None:
    """Lock, :func:`dma_buf_vunmap`, unlock. Locking: must not hold the resv. Kernel:
    ``dma_buf_vunmap_unlocked``."""
    _chk(dmabuf, DmaBuf, "dma_buf_vunmap_unlocked", "dmabuf")
    _chk(map, IosysMap, "dma_buf_vunmap_unlocked", "map", none_ok=False)
    if WARN(dmabuf is None, "dma_buf_vunmap_unlocked(NULL)", "dma_buf_vunmap_unlocked: NULL"):
        return
    assert dmabuf is not None
    held = _forbids_resv(dmabuf.resv, "dma_buf_vunmap_unlocked")
    _lock(dmabuf, held)
    try:
        dma_buf_vunmap(dmabuf, map)
    finally:
        _unlock(dmabuf, held)


def dma_buf_mmap(dmabuf: DmaBuf | None, vma: VmAreaStruct | None, pgoff: int) -> int:
    """Map the buffer to user space: ``-EINVAL`` without an ``mmap`` op, ``-EOVERFLOW`` if ``pgoff +
    pages`` wraps, ``-EINVAL`` if it exceeds the buffer's pages; else sets ``vma.vm_file``/``vm_pgoff``
    and returns the exporter's ``mmap``.

    Locking: must not hold the resv. Kernel: ``dma_buf_mmap``.
    """
    _chk(dmabuf, DmaBuf, "dma_buf_mmap", "dmabuf")
    _chk(vma, VmAreaStruct, "dma_buf_mmap", "vma")
    if WARN(dmabuf is None or vma is None, "dma_buf_mmap: NULL buffer or vma", "dma_buf_mmap: NULL"):
        return -errno.EINVAL
    assert dmabuf is not None and vma is not None
    if isinstance(pgoff, bool) or not isinstance(pgoff, int) or not 0 <= pgoff < _U64:
        raise InvalidArgument(f"dma_buf_mmap needs an unsigned long pgoff, got {pgoff!r}")
    _alive(dmabuf, "dma_buf_mmap")
    _forbids_resv(dmabuf.resv, "dma_buf_mmap")
    ops = _ops(dmabuf)
    if ops.mmap is None:
        return -errno.EINVAL
    n = vma.pages()
    if pgoff + n >= _U64:
        return -errno.EOVERFLOW
    if pgoff + n > dmabuf.size >> PAGE_SHIFT:
        return -errno.EINVAL
    vma.vm_file = dmabuf.file
    vma.vm_pgoff = pgoff
    return int(ops.mmap(dmabuf, vma))

