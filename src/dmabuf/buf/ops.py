"""Operation tables of dma-buf: the exporter's :class:`DmaBufOps`, the importer's :class:`DmaBufAttachOps`,
and :class:`DmaBufExportInfo` (``DEFINE_DMA_BUF_EXPORT_INFO``).

Callbacks (every one gets the kernel's arguments in the kernel's order; ``None`` means "not provided"):

* ``attach(dmabuf, attach) -> int``, ``detach(dmabuf, attach)``: called **without** the resv (may take it);
* ``pin(attach) -> int``, ``unpin(attach)``: called **with** the resv held (must not take it);
* ``map_dma_buf(attach, dir) -> SgTable | ERR_PTR | None``, ``unmap_dma_buf(attach, sgt, dir)``: resv held;
* ``release(dmabuf)``: unlocked, on the last ``dma_buf_put``;
* ``begin_cpu_access(dmabuf, dir) -> int``, ``end_cpu_access(dmabuf, dir) -> int``: unlocked;
* ``mmap(dmabuf, vma) -> int``: unlocked;
* ``vmap(dmabuf) -> (int, IosysMap)`` (the C out-parameter comes back after the result; returning an
  ``IosysMap`` or a ``CpuMapping`` alone means 0), ``vunmap(dmabuf, map)``: resv held;
* ``cache_sgt_mapping``: the core keeps the first mapping of each attachment until detach (v6.2-v6.14).

A buffer is **dynamic** iff ``pin`` is set; an attachment is dynamic iff it has importer ops.

Kernel: ``struct dma_buf_ops``, ``struct dma_buf_attach_ops``, ``struct dma_buf_export_info``
(include/linux/dma-buf.h, v6.12).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ..errors import InvalidArgument

__all__ = ["DEFINE_DMA_BUF_EXPORT_INFO", "DmaBufAttachOps", "DmaBufExportInfo", "DmaBufOps", "MemoryExporter"]

_OPS = (
    "attach",
    "detach",
    "pin",
    "unpin",
    "map_dma_buf",
    "unmap_dma_buf",
    "release",
    "begin_cpu_access",
    "end_cpu_access",
    "mmap",
    "vmap",
    "vunmap",
)


def _only_known_fields(cls: str, args: tuple[Any, ...], unknown: dict[str, Any], known: Sequence[str]) -> None:
    """InvalidArgument for positional arguments or unknown keywords given to an operation table (a misspelt
    callback would otherwise be silently missing). ``args`` and ``unknown`` are typed ``NoReturn`` in the
    constructors, so a static checker still flags them; this is the runtime check."""
    fields = ", ".join(known)
    if args:
        raise InvalidArgument(
            f"{cls} takes keyword arguments only, got {len(args)} positional argument(s); known fields: {fields}"
        )
    if unknown:
        parts = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=1)
            parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise InvalidArgument(f"{cls} has no field {', '.join(parts)}; known fields: {fields}")


class DmaBufOps:
    """The exporter's operations (``struct dma_buf_ops``), built with keywords. See the module docstring.
    Positional arguments and unknown keywords raise :class:`~dmabuf.errors.InvalidArgument` naming the
    known fields."""

    __slots__ = (*_OPS, "cache_sgt_mapping")

    def __init__(
        self,
        *args: NoReturn,
        attach: Callable[..., Any] | None = None,
        detach: Callable[..., Any] | None = None,
        pin: Callable[..., Any] | None = None,
        unpin: Callable[..., Any] | None = None,
        map_dma_buf: Callable[..., Any] | None = None,
        unmap_dma_buf: Callable[..., Any] | None = None,
        release: Callable[..., Any] | None = None,
        begin_cpu_access: Callable[..., Any] | None = None,
        end_cpu_access: Callable[..., Any] | None = None,
        mmap: Callable[..., Any] | None = None,
        vmap: Callable[..., Any] | None = None,
        vunmap: Callable[..., Any] | None = None,
        cache_sgt_mapping: bool = False,
        **unknown: NoReturn,
    ) -> None:
        _only_known_fields("DmaBufOps", args, unknown, self.__slots__)
        given = dict(
            attach=attach,
            detach=detach,
            pin=pin,
            unpin=unpin,
            map_dma_buf=map_dma_buf,
            unmap_dma_buf=unmap_dma_buf,
            release=release,
            begin_cpu_access=begin_cpu_access,
            end_cpu_access=end_cpu_access,
            mmap=mmap,
            vmap=vmap,
            vunmap=vunmap,
        )
        for name, fn in given.items():
            if fn is not None and not callable(fn):
                raise InvalidArgument(f"DmaBufOps.{name} must be a function or None, got {type(fn).__name__}")
        # Any: each member is a callback or None; the core checks for None before calling
        self.attach: Any = attach
        self.detach: Any = detach
        self.pin: Any = pin
        self.unpin: Any = unpin
        self.map_dma_buf: Any = map_dma_buf
        self.unmap_dma_buf: Any = unmap_dma_buf
        self.release: Any = release
        self.begin_cpu_access: Any = begin_cpu_access
        self.end_cpu_access: Any = end_cpu_access
        self.mmap: Any = mmap
        self.vmap: Any = vmap
        self.vunmap: Any = vunmap
        self.cache_sgt_mapping = bool(cache_sgt_mapping)

    def __repr__(self) -> str:
        set_ = [n for n in _OPS if getattr(self, n) is not None]
        return f"DmaBufOps({', '.join(set_)}{', cache_sgt_mapping' if self.cache_sgt_mapping else ''})"


class DmaBufAttachOps:
    """The importer's operations (``struct dma_buf_attach_ops``): ``allow_peer2peer`` and
    ``move_notify(attach)``, called with the resv held whenever the exporter moves the buffer. Positional
    arguments and unknown keywords raise :class:`~dmabuf.errors.InvalidArgument` naming the known fields."""

    __slots__ = ("allow_peer2peer", "move_notify")

    def __init__(
        self,
        *args: NoReturn,
        allow_peer2peer: bool = False,
        move_notify: Callable[[Any], Any] | None = None,
        **unknown: NoReturn,
    ) -> None:
        _only_known_fields("DmaBufAttachOps", args, unknown, self.__slots__)
        if move_notify is not None and not callable(move_notify):
            raise InvalidArgument(
                f"DmaBufAttachOps.move_notify must be a function or None, got {type(move_notify).__name__}"
            )
        self.allow_peer2peer = bool(allow_peer2peer)
        self.move_notify = move_notify

    def __repr__(self) -> str:
        return f"DmaBufAttachOps(allow_peer2peer={self.allow_peer2peer}, move_notify={self.move_notify!r})"


class DmaBufExportInfo:
    """What ``dma_buf_export`` needs (``struct dma_buf_export_info``).

    Fields: ``exp_name``, ``owner``, ``ops``, ``size``, ``flags``, ``resv`` (``None``: the buffer embeds its
    own), ``priv`` (the exporter's object, mandatory), and ``policy`` (this model's mapping-tracking policy:
    a name from :func:`dmabuf.policies.policy_names`, a Policy, or ``None`` for the process-wide default).
    Positional arguments and unknown keywords raise :class:`~dmabuf.errors.InvalidArgument`.
    """

    _FIELDS = ("exp_name", "owner", "ops", "size", "flags", "resv", "priv", "policy")

    def __init__(
        self,
        *args: NoReturn,
        exp_name: str = "",
        owner: Any = None,
        ops: DmaBufOps | None = None,
        size: int = 0,
        flags: int = 0,
        resv: Any = None,
        priv: Any = None,
        policy: Any = None,
        **unknown: NoReturn,
    ) -> None:
        _only_known_fields("DmaBufExportInfo", args, unknown, self._FIELDS)
        self.exp_name = exp_name
        self.owner = owner
        self.ops = ops
        self.size = size
        self.flags = flags
        self.resv = resv
        self.priv = priv
        self.policy = policy

    def __repr__(self) -> str:
        return f"DmaBufExportInfo(exp_name={self.exp_name!r}, size={self.size}, ops={self.ops!r})"


def DEFINE_DMA_BUF_EXPORT_INFO(name: str = "") -> DmaBufExportInfo:
    """An export info with ``exp_name`` set (the C macro uses ``KBUILD_MODNAME``; pass a name) and
    ``owner`` = the module. Kernel: ``DEFINE_DMA_BUF_EXPORT_INFO`` (include/linux/dma-buf.h)."""
    return DmaBufExportInfo(exp_name=name or "dmabuf-model", owner=name or "dmabuf-model")


class MemoryExporter:
    """A reference exporter backed by the memory model (a TTM-like driver in a few lines).

    ``exp = MemoryExporter(size, "VRAM", dynamic=True)`` allocates a :class:`~dmabuf.buf.memory.BufferObject`
    and exports ``exp.buf`` with ops that map the current placement (``bo.sg_table()``), pin by counting,
    vmap through a :class:`~dmabuf.buf.sg_table.CpuMapping` and release the pages on the last put.

    :meth:`move` is the exporter's eviction, done right by default: with the resv held it refuses a pinned
    buffer (``-EBUSY``), lets the copy wait for every fence of the resv (BOOKKEEP), adds the move fence with
    KERNEL usage, frees the old pages after the copy and the policy's ``free_old_after`` fences, and calls
    ``dma_buf_move_notify``. Its switches turn it into the buggy exporters the oracle must catch.
    """

    def __init__(
        self,
        size: int,
        domain: str = "VRAM",
        *,
        dynamic: bool = True,
        name: str | None = None,
        policy: Any = None,
        cache_sgt_mapping: bool = False,
        resv: Any = None,
        init: bytes | None = None,
    ) -> None:
        from .core import DmaBuf
        from .memory import BufferObject

        self.bo = BufferObject(size, domain, name=name, init=init)
        self.maps = 0
        self.unmaps = 0
        self.pins = 0
        self.ops = DmaBufOps(
            pin=self.pin if dynamic else None,
            unpin=self.unpin if dynamic else None,
            map_dma_buf=self.map_dma_buf,
            unmap_dma_buf=self.unmap_dma_buf,
            release=self.release,
            vmap=self.vmap,
            mmap=self.mmap,
            cache_sgt_mapping=cache_sgt_mapping,
        )
        self.buf = DmaBuf.export(self.ops, size, self, resv=resv, policy=policy, name=name and f"{name}.dmabuf")

    # ---- callbacks
    def pin(self, attach: Any) -> int:
        self.bo.pin_count += 1
        self.pins += 1
        return 0

    def unpin(self, attach: Any) -> None:
        self.bo.pin_count -= 1

    def map_dma_buf(self, attach: Any, direction: int) -> Any:
        self.maps += 1
        return self.bo.sg_table()

    def unmap_dma_buf(self, attach: Any, sgt: Any, direction: int) -> None:
        self.unmaps += 1

    def release(self, dmabuf: Any) -> None:
        # like TTM's delayed destroy: the pages go only once every fence (moves, jobs) has signalled
        from ..resv import Usage

        dmabuf.resv.wait(Usage.BOOKKEEP)
        self.bo.release()

    def vmap(self, dmabuf: Any) -> tuple[int, Any]:
        from .sg_table import IosysMap

        return 0, IosysMap(self.bo.cpu_map())

    def mmap(self, dmabuf: Any, vma: Any) -> int:
        vma.vaddr = self.bo.cpu_map()
        return 0

    # ---- the exporter's own moves
    def move(
        self,
        domain: str,
        *,
        wait_fences: bool = True,
        free_old: bool = True,
        free_after_fences: bool = False,
        notify: bool = True,
        honour_pins: bool = True,
    ) -> Any:
        """Move the buffer to ``domain`` (resv held, checked). Returns the Move, or ``-EBUSY`` if pinned.

        Args:
            wait_fences: the copy waits for every fence in the resv (False: the lost-write bug).
            free_old: free the old pages once the copy is done (False: the caller frees them).
            free_after_fences: also wait for the resv's fences before freeing the old pages.
            notify: call ``dma_buf_move_notify`` (False: the missed-notify bug).
            honour_pins: refuse to move a pinned buffer (False: static importers' mappings go stale).
        """
        import errno

        from ..resv import Usage

        buf = self.buf
        buf.resv.assert_held()
        if honour_pins and self.bo.pin_count:
            return -errno.EBUSY
        fences = buf.resv.get_fences(Usage.BOOKKEEP)
        after = list(fences) if free_after_fences else []
        after += buf.policy.free_old_after(buf)
        mv = self.bo.move(
            domain,
            wait=fences if wait_fences else (),
            free_after=after,
            free_old=free_old,
            resv=buf.resv,
        )
        if notify:
            from .core import dma_buf_move_notify

            dma_buf_move_notify(buf)
        return mv
