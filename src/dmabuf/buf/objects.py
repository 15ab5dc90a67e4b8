"""The dma-buf objects and the checks every ``dma_buf_*`` function makes on them.

* :class:`DmaBuf` (``struct dma_buf``), :class:`DmaBufAttachment` (``struct dma_buf_attachment``),
  :class:`DmaBufFile` (the ``struct file`` behind a buffer) and :class:`VmAreaStruct` (a user mapping
  request), with their Pythonic methods;
* the argument checks of the kernel-named functions (types, use after release or detach) and the conversion
  of kernel return values into exceptions for the Pythonic methods;
* the **locking convention** (section 1.5 of the reference): :func:`_requires_resv` WARNs when a function
  that needs the resv is called without it, :func:`_forbids_resv` when a function that takes it is called
  with it held. The WARN's rule is ``"dma-buf locking convention: <function> requires the reservation
  lock"`` or ``"... must be called without the reservation lock"``.

The Pythonic methods wrap the kernel-named functions of :mod:`.export`, :mod:`.attach`, :mod:`.mapping` and
:mod:`.cpu_access`. Those modules import this one for the classes, so each method imports its function when
it is called (a late import, which keeps the import graph acyclic).
"""

from __future__ import annotations

import errno
import os
from typing import Any

from ..errors import InvalidArgument, UsageError
from ..kernel._warn import WARN
from ..kernel.errno import ErrPtr
from ..policies.base import Policy
from ..resv import DmaResv
from ..runtime import label_of
from .memory import PAGE_SHIFT
from .ops import DmaBufAttachOps, DmaBufExportInfo, DmaBufOps
from .sg_table import DMA_BIDIRECTIONAL, IosysMap, SgTable

__all__ = ["DmaBuf", "DmaBufAttachment", "DmaBufFile", "VmAreaStruct"]

_RULE = "dma-buf locking convention"


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
        # late import: .mapping imports this module for the classes
        from .mapping import dma_buf_map_attachment, dma_buf_unmap_attachment

        sgt: SgTable = _ok_ptr(dma_buf_map_attachment(self, direction), "dma_buf_map_attachment")
        sgt._exit_unmap = lambda: dma_buf_unmap_attachment(self, sgt, direction)
        return sgt

    def map_unlocked(self, direction: int = DMA_BIDIRECTIONAL) -> SgTable:
        """As :meth:`map` but takes the resv itself: ``dma_buf_map_attachment_unlocked``."""
        # late import: .mapping imports this module for the classes
        from .mapping import dma_buf_map_attachment_unlocked, dma_buf_unmap_attachment_unlocked

        sgt: SgTable = _ok_ptr(dma_buf_map_attachment_unlocked(self, direction), "dma_buf_map_attachment_unlocked")
        sgt._exit_unmap = lambda: dma_buf_unmap_attachment_unlocked(self, sgt, direction)
        return sgt

    def unmap(self, sgt: SgTable, direction: int | None = None) -> None:
        """``dma_buf_unmap_attachment`` (resv held); ``direction`` defaults to the one mapped with."""
        # late import: .mapping imports this module for the classes
        from .mapping import dma_buf_unmap_attachment

        dma_buf_unmap_attachment(self, sgt, sgt.dir if direction is None else direction)

    def unmap_unlocked(self, sgt: SgTable, direction: int | None = None) -> None:
        """``dma_buf_unmap_attachment_unlocked``."""
        # late import: .mapping imports this module for the classes
        from .mapping import dma_buf_unmap_attachment_unlocked

        dma_buf_unmap_attachment_unlocked(self, sgt, sgt.dir if direction is None else direction)

    def pin(self) -> None:
        """``dma_buf_pin`` (resv held). Raises :class:`OSError` on the exporter's error."""
        # late import: .attach imports this module for the classes
        from .attach import dma_buf_pin

        _ok(dma_buf_pin(self), "dma_buf_pin")

    def unpin(self) -> None:
        """``dma_buf_unpin`` (resv held)."""
        # late import: .attach imports this module for the classes
        from .attach import dma_buf_unpin

        dma_buf_unpin(self)

    def detach(self) -> None:
        """``dma_buf_detach`` (takes the resv)."""
        # late import: .attach imports this module for the classes
        from .attach import dma_buf_detach

        dma_buf_detach(self._buf(), self)

    def unmap_and_detach(self, sgt: SgTable, direction: int | None = None) -> None:
        """``dma_buf_unmap_and_detach`` (takes the resv): the end of an :meth:`DmaBuf.attach_and_map`."""
        # late import: .attach imports this module for the classes
        from .attach import dma_buf_unmap_and_detach

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
        # late import: .export imports this module for the classes
        from .export import _export

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
        # late import: .attach imports this module for the classes
        from .attach import dma_buf_dynamic_attach

        a = _ok_ptr(dma_buf_dynamic_attach(self, dev, importer_ops, importer_priv), "dma_buf_dynamic_attach")
        assert isinstance(a, DmaBufAttachment)
        return a

    def detach(self, attach: DmaBufAttachment) -> None:
        """``dma_buf_detach``."""
        # late import: .attach imports this module for the classes
        from .attach import dma_buf_detach

        dma_buf_detach(self, attach)

    def attach_and_map(
        self, dev: Any, importer_ops: DmaBufAttachOps, importer_priv: Any = None, direction: int = DMA_BIDIRECTIONAL
    ) -> tuple[DmaBufAttachment, SgTable]:
        """``dma_buf_attach_and_map``: a dynamic attachment and its mapping, made atomically (takes the resv).
        Undo with ``attach.unmap_and_detach(sgt)``. Raises :class:`OSError` on the kernel's errors."""
        # late import: .attach imports this module for the classes
        from .attach import dma_buf_attach_and_map

        a, sgt = dma_buf_attach_and_map(self, dev, importer_ops, importer_priv, direction)
        a = _ok_ptr(a, "dma_buf_attach_and_map")
        assert isinstance(a, DmaBufAttachment) and isinstance(sgt, SgTable)
        return a, sgt

    def fd(self, flags: int = 0) -> int:
        """Install the buffer in this execution's fd table (``dma_buf_fd``); the fd owns the caller's
        reference."""
        # late import: .export imports this module for the classes
        from .export import dma_buf_fd

        return _ok(dma_buf_fd(self, flags), "dma_buf_fd")

    @staticmethod
    def from_fd(fd: int) -> DmaBuf:
        """``dma_buf_get``: the buffer behind ``fd``, with a new reference."""
        # late import: .export imports this module for the classes
        from .export import dma_buf_get

        b = _ok_ptr(dma_buf_get(fd), "dma_buf_get")
        assert isinstance(b, DmaBuf)
        return b

    def get(self) -> DmaBuf:
        """``get_dma_buf``: take a reference."""
        # late import: .export imports this module for the classes
        from .export import get_dma_buf

        get_dma_buf(self)
        return self

    def put(self) -> None:
        """``dma_buf_put``: drop a reference; the last one releases the buffer."""
        # late import: .export imports this module for the classes
        from .export import dma_buf_put

        dma_buf_put(self)

    def move_notify(self) -> None:
        """``dma_buf_move_notify`` (resv held): tell the importers the policy selects that the buffer moved."""
        # late import: .mapping imports this module for the classes
        from .mapping import dma_buf_move_notify

        dma_buf_move_notify(self)

    def begin_cpu_access(self, direction: int) -> None:
        """``dma_buf_begin_cpu_access`` (unlocked; waits for the fences of the access)."""
        # late import: .cpu_access imports this module for the classes
        from .cpu_access import dma_buf_begin_cpu_access

        _ok(dma_buf_begin_cpu_access(self, direction), "dma_buf_begin_cpu_access")

    def end_cpu_access(self, direction: int) -> None:
        """``dma_buf_end_cpu_access``."""
        # late import: .cpu_access imports this module for the classes
        from .cpu_access import dma_buf_end_cpu_access

        _ok(dma_buf_end_cpu_access(self, direction), "dma_buf_end_cpu_access")

    def vmap(self) -> IosysMap:
        """``dma_buf_vmap`` (resv held)."""
        # late import: .cpu_access imports this module for the classes
        from .cpu_access import dma_buf_vmap

        ret, m = dma_buf_vmap(self)
        _ok(ret, "dma_buf_vmap")
        return m

    def vunmap(self, m: IosysMap) -> None:
        """``dma_buf_vunmap`` (resv held)."""
        # late import: .cpu_access imports this module for the classes
        from .cpu_access import dma_buf_vunmap

        dma_buf_vunmap(self, m)

    def mmap(self, vma: VmAreaStruct, pgoff: int = 0) -> None:
        """``dma_buf_mmap``."""
        # late import: .cpu_access imports this module for the classes
        from .cpu_access import dma_buf_mmap

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


def _op_ret(value: object, buf: DmaBuf, op: str, errno_only: bool = False) -> int:
    """The int result of the exporter's callback ``op`` (``pin``, ``attach``, ``begin_cpu_access``,
    ``end_cpu_access``, ``mmap``, ``vmap``): ``None`` is 0 (a Python function that returns nothing
    succeeded), an int is itself. With ``errno_only`` (a result the core turns into ``ERR_PTR``) it must be 0
    or a negative errno.

    Raises:
        InvalidArgument: anything else (a bool, a str...): the callback broke its contract. The caller changes
            nothing it would not change for a failed callback.
    """
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and not (errno_only and value > 0):
        return value
    must = "0 or a negative errno" if errno_only else "an int (0 or a negative errno)"
    raise InvalidArgument(
        f"the exporter's {op} of {label_of(buf)} returned {value!r} ({type(value).__name__}); it must return "
        f"{must}, or None for success"
    )


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


def _attach_ok(attach: DmaBufAttachment, fn: str, hint: str = "attach again before mapping") -> None:
    """UsageError for an attachment of a released buffer or one detached by ``dma_buf_detach``."""
    if attach.dmabuf is not None:
        _alive(attach.dmabuf, fn)  # the buffer went first (released with this attachment still on it)
    if attach.detached:
        raise UsageError(
            f"{fn} through {label_of(attach)}, which was detached by dma_buf_detach (use after free): {hint}"
        )


def _ops(buf: DmaBuf) -> DmaBufOps:
    ops = buf.ops
    assert ops is not None
    return ops
