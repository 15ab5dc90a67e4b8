"""The memory model behind buffers: domains, page pools, placements and moves.

A :class:`BufferObject` (the exporter's backing storage, a TTM buffer object in miniature) lives in a
:class:`Placement`: a list of pages of one :class:`MemoryDomain` (``"VRAM"``, ``"GTT"``, ``"SYSTEM"``). Each
domain owns a small pool of :class:`Page` objects (default 8 pages of :data:`PAGE_SIZE` = 4 bytes) handed out
lowest-free-first, so freed pages are reused by the next allocation of any buffer, and a device that still
DMAs through an old mapping touches somebody else's memory. Memory is per execution (kept in
``rt().globals``): every execution of a search starts with the same empty pools.

A **move** (:meth:`BufferObject.move`) allocates the new placement, makes it current at once, and copies
asynchronously on a detached task that signals the move fence (the exporter adds it to the resv with
KERNEL usage). The old pages go back to the pool after the copy (and after ``free_after`` fences), or later
through :meth:`Move.free_old` when the exporter keeps them. Where exactly the old pages are freed is the
exporter's decision, and the point where most protocol bugs become data bugs.

Every access to a page is a scheduling point on that page (READ or WRITE), so DPOR treats accesses to
different pages as independent. The data-integrity checks run at those points (see :mod:`.oracle`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument, OutOfPages, StaleContent, StaleMapping, UsageError
from ..fence.fence import DmaFence, DmaFenceOps, context_alloc
from ..runtime import READ, WRITE, label_of, rt
from ..sync.spinlock import SpinLock

if TYPE_CHECKING:
    from ..resv import DmaResv

__all__ = [
    "DEFAULT_DOMAINS",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "POOL_PAGES",
    "BufferObject",
    "Memory",
    "MemoryDomain",
    "Move",
    "Page",
    "Placement",
    "configure_memory",
    "memory",
]

#: Bytes per page of the model (tiny, so buffers span several pages and pools are reused quickly).
PAGE_SIZE = 4
#: ``PAGE_SHIFT`` of the model: ``size >> PAGE_SHIFT`` pages.
PAGE_SHIFT = 2
#: Pages per domain pool unless :func:`configure_memory` says otherwise.
POOL_PAGES = 8
#: Domains every execution starts with.
DEFAULT_DOMAINS = ("VRAM", "GTT", "SYSTEM")

_GLOBAL_KEY = "dmabuf.memory"


class Page:
    """One page of a domain pool. ``owner`` is the placement it belongs to (``None``: free); ``freed_by``
    names what last freed it (a :class:`Move` or a release), for the oracle's messages."""

    __slots__ = ("_dm_label", "data", "domain", "freed_by", "index", "owner")

    def __init__(self, domain: MemoryDomain, index: int) -> None:
        self.domain = domain
        self.index = index
        self.data = bytearray(PAGE_SIZE)
        self.owner: Placement | None = None
        self.freed_by: object = None
        self._dm_label = f"{domain.name}.page{index}"

    def __repr__(self) -> str:
        return f"<Page {self._dm_label} {'free' if self.owner is None else self.owner!r}>"


class MemoryDomain:
    """A memory domain with its page pool. Allocation takes the lowest free pages first (deterministic).

    Kernel: a TTM resource manager (``struct ttm_resource_manager``) in miniature.
    """

    def __init__(self, name: str, npages: int = POOL_PAGES) -> None:
        if isinstance(npages, bool) or not isinstance(npages, int) or npages <= 0:
            raise InvalidArgument(f"memory domain {name!r} needs a positive page count, got {npages!r}")
        self.name = name
        self.pages = [Page(self, i) for i in range(npages)]
        self._dm_label = f"domain:{name}"

    def free_pages(self) -> int:
        """How many pages are free now (no scheduling point: for tests and messages)."""
        return sum(1 for p in self.pages if p.owner is None)

    def alloc(self, n: int, owner: Placement) -> list[Page]:
        """Take ``n`` free pages (lowest index first) for ``owner``. A WRITE point on the pool.

        Raises:
            OutOfPages: fewer than ``n`` pages are free.
        """
        rt().point("alloc_pages", self, WRITE)
        free = [p for p in self.pages if p.owner is None]
        if len(free) < n:
            raise OutOfPages(
                f"memory domain {self.name} has {len(free)} free page(s) of {len(self.pages)}, "
                f"{label_of(owner.bo)} needs {n}: free buffers or old placements first, or configure bigger "
                "pools with dmabuf.buf.configure_memory(pages=...)"
            )
        got = free[:n]
        for p in got:
            p.owner = owner
        return got

    def __repr__(self) -> str:
        return f"<MemoryDomain {self.name} {self.free_pages()}/{len(self.pages)} free>"


class Memory:
    """The memory of one execution: its domains by name."""

    def __init__(self, pages: int = POOL_PAGES, domains: Sequence[str] = DEFAULT_DOMAINS) -> None:
        self.domains = {name: MemoryDomain(name, pages) for name in domains}
        self.buffers: list[BufferObject] = []

    def domain(self, name: str | MemoryDomain) -> MemoryDomain:
        """The domain called ``name``.

        Raises:
            InvalidArgument: no such domain (the message lists the valid ones).
        """
        if isinstance(name, MemoryDomain):
            return name
        d = self.domains.get(name)
        if d is None:
            raise InvalidArgument(f"unknown memory domain {name!r}; this execution has {sorted(self.domains)}")
        return d


def memory() -> Memory:
    """The memory of the running execution (created with the default pools on first use)."""
    g = rt().globals
    m = g.get(_GLOBAL_KEY)
    if m is None:
        m = Memory(g.get("dmabuf.memory.pages", POOL_PAGES), g.get("dmabuf.memory.domains", DEFAULT_DOMAINS))
        g[_GLOBAL_KEY] = m
    assert isinstance(m, Memory)
    return m


def configure_memory(pages: int = POOL_PAGES, domains: Sequence[str] = DEFAULT_DOMAINS) -> Memory:
    """Give this execution ``pages`` pages in each of ``domains``. Call it at the start of a body, before
    the first buffer is created.

    Raises:
        UsageError: memory was already used in this execution.
    """
    g = rt().globals
    if _GLOBAL_KEY in g:
        raise UsageError("configure_memory must be called before the first buffer of the execution is created")
    g["dmabuf.memory.pages"] = pages
    g["dmabuf.memory.domains"] = tuple(domains)
    return memory()


class Placement:
    """Where a buffer lives: its pages in one domain, with the buffer's generation counter at the time.

    ``pending`` is the move that is still copying into it (``None`` once the copy finished); ``copied`` the
    page indices that move already filled. ``freed_by`` is what freed these pages (a :class:`Move`, or the
    string ``"release of <bo>"``).
    """

    def __init__(self, bo: BufferObject, domain: MemoryDomain, generation: int) -> None:
        self.bo = bo
        self.domain = domain
        self.generation = generation
        self.pages: list[Page] = []
        self.pending: Move | None = None
        self.copied: set[int] = set()
        self.freed_by: object = None

    @property
    def freed(self) -> bool:
        return self.freed_by is not None

    def __repr__(self) -> str:
        return f"{label_of(self.bo)}@{self.domain.name}/gen{self.generation}"


_MOVE_OPS = DmaFenceOps(get_driver_name=lambda f: "dmabuf-memory", get_timeline_name=lambda f: "move")


class Move:
    """One move of a buffer from ``old`` to ``new``; ``fence`` signals when the copy is complete.

    ``index`` numbers the buffer's moves from 1; the move is named ``move#<index>(<bo> A->B)`` in messages.
    """

    def __init__(self, bo: BufferObject, old: Placement, new: Placement, fence: DmaFence, index: int) -> None:
        self.bo = bo
        self.old = old
        self.new = new
        self.fence = fence
        self.index = index
        self.task: Any = None

    @property
    def name(self) -> str:
        return f"move#{self.index}({label_of(self.bo)} {self.old.domain.name}->{self.new.domain.name})"

    def free_old(self) -> None:
        """Give the old placement's pages back to their pool (a WRITE point per page).

        Raises:
            UsageError: the old pages were already freed.
        """
        self.bo._free_placement(self.old, self)

    def __repr__(self) -> str:
        return self.name


class BufferObject:
    """An exporter's backing storage of ``size`` bytes, placed in a memory domain.

    Args:
        size: bytes (> 0).
        domain: the initial domain's name.
        name: label in traces and messages.
        init: initial content (default: the bytes ``1, 2, 3, ...``); counted as the first completed write.

    ``expected`` is what the oracle believes the buffer must contain: every completed write updates it.
    ``pin_count`` is for exporters (a pinned buffer must not move; the memory model does not forbid it, the
    broken mappings do the talking).
    """

    def __init__(self, size: int, domain: str = "VRAM", *, name: str | None = None, init: bytes | None = None) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise InvalidArgument(f"a buffer needs a positive size in bytes, got {size!r}")
        mem = memory()
        self._dm_label = name or f"bo{len(mem.buffers) + 1}"
        self.size = size
        self.npages = -(-size // PAGE_SIZE)
        self.generation = 0
        self.moves: list[Move] = []
        self.pin_count = 0
        self.released = False
        self.fence_context = context_alloc(1)
        self._mem = mem
        data = bytes(init) if init is not None else bytes((i + 1) & 0xFF for i in range(size))
        if len(data) != size:
            raise InvalidArgument(f"init of {self._dm_label} has {len(data)} bytes, the buffer {size}")
        self.expected = bytearray(data)
        #: per byte: (task name, mapping name, placement generation) of the last completed write
        self.last_writer: list[tuple[str, str, int] | None] = [None] * size
        #: writes that landed in an old placement's page after its move had copied it: (page, mapping, move);
        #: lost even when a later write to the same bytes hides it (reported by the oracle's check_buffer)
        self.late_writes: list[tuple[int, str, Move]] = []
        #: at :meth:`release`: (the current placement's bytes, the expected bytes), for the oracle's "no byte
        #: lost" check of a released buffer; ``None`` while live, or if a move was still copying at release
        self.released_image: tuple[bytes, bytes] | None = None
        self.placement = self._new_placement(mem.domain(domain))
        for i, p in enumerate(self.placement.pages):
            rt().point("init_page", p, WRITE)
            chunk = data[i * PAGE_SIZE : (i + 1) * PAGE_SIZE]
            p.data[: len(chunk)] = chunk
        mem.buffers.append(self)

    @property
    def name(self) -> str:
        return self._dm_label

    def _new_placement(self, domain: MemoryDomain) -> Placement:
        pl = Placement(self, domain, self.generation)
        pl.pages = domain.alloc(self.npages, pl)
        return pl

    # ------------------------------------------------------------------ moves
    def move(
        self,
        domain: str,
        *,
        wait: Iterable[DmaFence] = (),
        free_after: Iterable[DmaFence] = (),
        free_old: bool = True,
        resv: DmaResv | None = None,
    ) -> Move:
        """Move the buffer to ``domain``: allocate, switch the current placement, copy on a detached task.

        The copy task first waits for every fence of ``wait`` (what the copy must not overtake: pending
        writes to the buffer), copies page by page (a READ point on the old page, a WRITE point on the new
        one), signals the move fence, then waits for ``free_after`` and, if ``free_old``, frees the old
        pages. With ``free_old=False`` the caller frees them later with :meth:`Move.free_old`.

        Args:
            resv: if given, the move fence is added to it with KERNEL usage (reserve + add; the caller must
                hold it).

        Locking: the exporter's business; a dma-buf exporter holds the buffer's resv (and then calls
            ``dma_buf_move_notify``). Kernel: ``ttm_bo_move_accel_cleanup`` in miniature.
        """
        if self.released:
            raise UsageError(f"{self._dm_label} was released; it cannot move")
        wait_l, free_l = list(wait), list(free_after)
        r = rt()
        r.point("move", self, WRITE)
        old = self.placement
        self.generation += 1
        new = self._new_placement(self._mem.domain(domain))
        fence = DmaFence()
        fence.init(_MOVE_OPS, SpinLock(lock_class="dmabuf_move_fence.lock"), self.fence_context, self.generation)
        mv = Move(self, old, new, fence, len(self.moves) + 1)
        fence._dm_label = f"{mv.name}.fence"  # type: ignore[attr-defined]
        new.pending = mv
        self.moves.append(mv)
        self.placement = new
        if resv is not None:
            from ..resv import Usage

            resv.reserve_fences(1)
            resv.add_fence(fence, Usage.KERNEL)
        mv.task = r.spawn(_copy, (mv, wait_l, free_l, free_old), f"copy:{mv.name}", detached=True)
        self._register_leak_check(mv)
        return mv

    def _register_leak_check(self, mv: Move) -> None:
        def check() -> str | None:
            if mv.old.freed:
                return None
            return (
                f"the old pages of {mv.name} ({mv.old!r}) were never freed: the exporter kept them "
                "(free_old=False) and never called Move.free_old()"
            )

        rt().add_end_check(check)

    def _free_placement(self, pl: Placement, by: object) -> None:
        r = rt()
        if pl.freed_by is not None:
            raise UsageError(f"the pages of {pl!r} were already freed by {pl.freed_by}; freeing twice")
        for p in pl.pages:
            r.point("free_page", p, WRITE)
            if p.owner is pl:
                p.owner = None
                p.freed_by = by
        pl.freed_by = by
        r.point("free_pages", pl.domain, WRITE)

    def release(self) -> None:
        """Free the current placement (the buffer is gone). Old placements still held by unfinished moves
        are freed by their moves. Unless a move is still copying into the current placement, the content and
        the expected bytes at this point are kept in ``released_image`` for the oracle. Raises
        :class:`UsageError` on a second release."""
        if self.released:
            raise UsageError(f"{self._dm_label} released twice")
        rt().point("release", self, WRITE)
        self.released = True
        if self.placement.pending is None:
            # what the oracle still can check once the pages are gone: the content at release
            self.released_image = (self.contents(), bytes(self.expected))
        self._free_placement(self.placement, f"release of {self._dm_label}")

    # ------------------------------------------------------------------ mappings
    def sg_table(self, name: str | None = None) -> Any:
        """A new :class:`~dmabuf.buf.sg_table.SgTable` over the current placement (a READ point on the
        buffer: moves are WRITEs). What an exporter's ``map_dma_buf`` returns."""
        from .sg_table import SgTable

        rt().point("map_pages", self, READ)
        return SgTable(self.placement, name=name)

    def cpu_map(self, name: str | None = None) -> Any:
        """A :class:`~dmabuf.buf.sg_table.CpuMapping` (kernel virtual mapping) of the current placement."""
        from .sg_table import CpuMapping

        rt().point("vmap_pages", self, READ)
        return CpuMapping(self.placement, name=name)

    def contents(self) -> bytes:
        """The bytes of the current placement now (no scheduling point, no checks: for oracles and tests)."""
        out = bytearray()
        for p in self.placement.pages:
            out += p.data
        return bytes(out[: self.size])

    def __repr__(self) -> str:
        return f"<BufferObject {self._dm_label} {self.placement!r}>"


def check_page(pl: Placement, i: int, write: bool, who: str) -> Page:
    """The oracle's check of one page access through ``pl`` (called right after the page's point).

    Raises:
        StaleMapping: the page no longer belongs to ``pl`` (freed or reused), or it is a read of a page a
            move already copied away (``pl`` is an old placement still kept) that no longer holds the
            buffer's content: the reader gets stale data. A write there is recorded in ``bo.late_writes``:
            the oracle reports it as a lost write even when a later write hides the loss.
        StaleContent: ``pl`` is still being filled by a move that has not copied this page yet.
    """
    p = pl.pages[i]
    what = "write" if write else "read"
    if p.owner is not pl:
        by = pl.freed_by or p.freed_by
        now = "is free" if p.owner is None else f"now belongs to {p.owner!r}"
        raise StaleMapping(
            f"stale mapping: {what} of {label_of(pl.bo)} through {who} hit page {p._dm_label} (page {i} of "
            f"{pl!r}), which was freed by {by} and {now}; the mapping was made before that and used after it"
        )
    bo = pl.bo
    # moves[k] takes generation k to k + 1. bo.generation is bumped before the move is appended (the new
    # placement's allocation has scheduling points in between), so test the list, not the counter
    if pl.generation < len(bo.moves):
        out = bo.moves[pl.generation]  # the move that copied this placement away
        lo, hi = i * PAGE_SIZE, min((i + 1) * PAGE_SIZE, bo.size)
        if write and out.old is pl and i in out.new.copied:
            bo.late_writes.append((i, who, out))
        elif out.old is pl and i in out.new.copied and bytes(p.data[: hi - lo]) != bytes(bo.expected[lo:hi]):
            raise StaleMapping(
                f"stale mapping: read of {label_of(bo)} through {who} hit page {p._dm_label} (page {i} of "
                f"{pl!r}) after {out.name} had copied it away: it holds {bytes(p.data[: hi - lo])!r} but the "
                f"last completed writes put {bytes(bo.expected[lo:hi])!r} there; the mapping was made before "
                "the move and used after it (re-map after move_notify)"
            )
    mv = pl.pending
    if mv is not None and i not in pl.copied:
        raise StaleContent(
            f"stale content: {what} of {label_of(pl.bo)} through {who} hit page {p._dm_label} (page {i} of "
            f"{pl!r}) before {mv.name} copied it: the move fence {label_of(mv.fence)} had not signalled; "
            "wait for the KERNEL fences of the resv before using a new mapping"
        )
    return p


def _copy(mv: Move, wait: list[DmaFence], free_after: list[DmaFence], free_old: bool) -> None:
    """The copy engine's job for one move."""
    r = rt()
    for f in wait:
        f.wait(False)
    who = f"the copy of {mv.name}"
    for i in range(len(mv.old.pages)):
        r.point("copy_read", mv.old.pages[i], READ)
        data = bytes(check_page(mv.old, i, False, who).data)
        np = mv.new.pages[i]
        r.point("copy_write", np, WRITE)
        if np.owner is not mv.new:
            raise StaleMapping(
                f"stale mapping: {who} wrote page {np._dm_label} of {mv.new!r} after it was freed by "
                f"{mv.new.freed_by or np.freed_by}: a later move or release did not wait for this move's fence"
            )
        np.data[:] = data
        mv.new.copied.add(i)
    mv.new.pending = None
    mv.fence.signal()
    for f in free_after:
        f.wait(False)
    if free_old and mv.old.freed_by is None:
        mv.free_old()
