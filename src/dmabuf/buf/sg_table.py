"""Mappings of a buffer's pages: :class:`SgTable` (a device mapping, ``struct sg_table``) and
:class:`CpuMapping` (a kernel virtual mapping behind an :class:`IosysMap`).

A mapping captures the pages of the placement it was made from, and the placement's generation. Every access
(:meth:`SgTable.dma_read`, :meth:`SgTable.dma_write`, :meth:`CpuMapping.read`, :meth:`CpuMapping.write`) goes
page by page, each page a scheduling point (READ or WRITE on the page), and runs the oracle's checks there:

* the page must still belong to the mapping's placement, and the mapping must not be unmapped
  (:class:`~dmabuf.errors.StaleMapping`);
* a page of a placement that a move is still filling must already be copied
  (:class:`~dmabuf.errors.StaleContent`);
* the mapping-tracking policy may declare an invalidated mapping unusable
  (:class:`~dmabuf.errors.MappingInvalidated`).

Completed writes update the buffer's ``expected`` bytes (the oracle's "last completed write").
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument, StaleMapping
from ..runtime import READ, WRITE, label_of, rt
from .memory import PAGE_SIZE, Placement, check_page

if TYPE_CHECKING:
    from .core import DmaBufAttachment

__all__ = [
    "DMA_BIDIRECTIONAL",
    "DMA_FROM_DEVICE",
    "DMA_NONE",
    "DMA_TO_DEVICE",
    "CpuMapping",
    "IosysMap",
    "PageMapping",
    "SgTable",
]

#: ``enum dma_data_direction``
DMA_BIDIRECTIONAL = 0
DMA_TO_DEVICE = 1
DMA_FROM_DEVICE = 2
DMA_NONE = 3
_DIRS = {DMA_BIDIRECTIONAL: "DMA_BIDIRECTIONAL", DMA_TO_DEVICE: "DMA_TO_DEVICE", DMA_FROM_DEVICE: "DMA_FROM_DEVICE"}


def check_dir(direction: object, fn: str) -> int:
    """Argument check: a DMA direction (BIDIRECTIONAL, TO_DEVICE or FROM_DEVICE)."""
    if isinstance(direction, bool) or direction not in _DIRS:
        raise InvalidArgument(
            f"{fn} needs a DMA direction (DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE), got {direction!r}"
        )
    assert isinstance(direction, int)
    return direction


class PageMapping:
    """Common part of device and CPU mappings: pages of one placement, checked on every access."""

    kind = "mapping"

    def __init__(self, placement: Placement | None = None, name: str | None = None) -> None:
        if placement is not None and not isinstance(placement, Placement):
            raise InvalidArgument(f"{type(self).__name__} needs a Placement or None, got {type(placement).__name__}")
        if name is not None and not isinstance(name, str):
            raise InvalidArgument(f"{type(self).__name__} name must be a str or None, got {type(name).__name__}")
        self.placement = placement
        self.pages = list(placement.pages) if placement is not None else []
        self.generation = placement.generation if placement is not None else -1
        #: set by dma_buf_unmap_attachment / vunmap: any later access is a stale-mapping finding
        self.unmapped_by: str | None = None
        #: set by a policy that invalidates mappings (one-shot invalidation): names the move_notify
        self.invalidated_by: str | None = None
        #: the policy deciding whether an invalidated mapping stays usable (set by the core)
        self.policy: Any = None
        if name:
            self._dm_label = name
        elif placement is not None:
            r = rt()
            k = r.globals.get("dmabuf.mapping_count", 0) + 1
            r.globals["dmabuf.mapping_count"] = k
            self._dm_label = f"{self.kind}{k}({placement!r})"

    @property
    def bo(self) -> Any:
        return None if self.placement is None else self.placement.bo

    @property
    def size(self) -> int:
        return 0 if self.placement is None else int(self.placement.bo.size)

    def _check_usable(self, what: str) -> Placement:
        pl = self.placement
        if pl is None:
            raise InvalidArgument(f"{what} through {label_of(self)}, which maps no pages")
        if self.unmapped_by is not None:
            raise StaleMapping(
                f"stale mapping: {what} of {label_of(pl.bo)} through {label_of(self)} after it was unmapped by "
                f"{self.unmapped_by}"
            )
        if self.policy is not None:
            self.policy.check_use(self)
        return pl

    def _range(self, off: int, n: int, what: str) -> None:
        for v in (off, n):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise InvalidArgument(f"{what} needs non-negative int offset and length, got {off!r}, {n!r}")
        if off + n > self.size:
            raise InvalidArgument(
                f"{what} of bytes [{off}, {off + n}) is outside {label_of(self)} ({self.size} bytes)"
            )

    def _read(self, off: int, n: int, what: str) -> bytes:
        pl = self._check_usable(what)
        self._range(off, n, what)
        r = rt()
        out = bytearray()
        pos = off
        while pos < off + n:
            i, o = divmod(pos, PAGE_SIZE)
            k = min(PAGE_SIZE - o, off + n - pos)
            r.point(what, self.pages[i], READ)
            self._check_usable(what)
            p = check_page(pl, i, False, label_of(self))
            out += p.data[o : o + k]
            pos += k
        return bytes(out)

    def _write(self, off: int, data: bytes, what: str) -> None:
        pl = self._check_usable(what)
        data = bytes(data)
        self._range(off, len(data), what)
        r = rt()
        bo = pl.bo
        pos = off
        end = off + len(data)
        while pos < end:
            i, o = divmod(pos, PAGE_SIZE)
            k = min(PAGE_SIZE - o, end - pos)
            r.point(what, self.pages[i], WRITE)
            self._check_usable(what)
            p = check_page(pl, i, True, label_of(self))
            chunk = data[pos - off : pos - off + k]
            p.data[o : o + k] = chunk
            bo.expected[pos : pos + k] = chunk
            stamp = (r.current().name, label_of(self), pl.generation)
            for b in range(pos, pos + k):
                bo.last_writer[b] = stamp
            pos += k

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {label_of(self)}>"


class SgTable(PageMapping):
    """A device mapping of a buffer (``struct sg_table``), made by the exporter's ``map_dma_buf``
    (typically ``bo.sg_table()``).

    ``nents``/``orig_nents`` count its pages; ``attachment`` and ``dir`` are set by the core when it hands
    the table to an importer.

    Kernel: ``struct sg_table`` (include/linux/scatterlist.h).
    """

    kind = "sgt"

    def __init__(self, placement: Placement | None = None, name: str | None = None) -> None:
        super().__init__(placement, name)
        self.nents = len(self.pages)
        self.orig_nents = self.nents
        self.attachment: DmaBufAttachment | None = None
        self.dir = DMA_BIDIRECTIONAL
        #: set by the core's Pythonic map: how ``with sgt:`` unmaps at exit
        self._exit_unmap: Callable[[], None] | None = None

    def __enter__(self) -> SgTable:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is not None and not issubclass(et, Exception):
            return  # the runtime is tearing the task down
        fn, self._exit_unmap = self._exit_unmap, None
        if fn is not None and self.unmapped_by is None:
            fn()

    def dma_read(self, off: int, n: int) -> bytes:
        """The device reads ``n`` bytes at ``off`` (a READ point per page).

        Raises:
            StaleMapping, StaleContent, MappingInvalidated: see the module docstring.
        """
        return self._read(off, n, "dma_read")

    def dma_write(self, off: int, data: bytes) -> None:
        """The device writes ``data`` at ``off`` (a WRITE point per page). Raises as :meth:`dma_read`."""
        self._write(off, data, "dma_write")


class CpuMapping(PageMapping):
    """A kernel virtual mapping of a buffer (what ``vmap`` returns inside an :class:`IosysMap`)."""

    kind = "vmap"

    def read(self, off: int, n: int) -> bytes:
        """The CPU reads ``n`` bytes at ``off``. Raises as :meth:`SgTable.dma_read`."""
        return self._read(off, n, "cpu_read")

    def write(self, off: int, data: bytes) -> None:
        """The CPU writes ``data`` at ``off``. Raises as :meth:`SgTable.dma_read`."""
        self._write(off, data, "cpu_write")


class IosysMap:
    """``struct iosys_map``: ``vaddr`` is a :class:`CpuMapping` (or any object an exporter uses), ``None``
    when cleared. ``is_iomem`` is informational."""

    def __init__(self, vaddr: Any = None, is_iomem: bool = False) -> None:
        self.vaddr = vaddr
        self.is_iomem = is_iomem

    def is_null(self) -> bool:
        """Kernel: ``iosys_map_is_null``."""
        return self.vaddr is None

    def is_set(self) -> bool:
        """Kernel: ``iosys_map_is_set``."""
        return self.vaddr is not None

    def clear(self) -> None:
        """Kernel: ``iosys_map_clear``."""
        self.vaddr = None
        self.is_iomem = False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IosysMap) and other.vaddr is self.vaddr and other.is_iomem == self.is_iomem

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"IosysMap({self.vaddr!r})"
