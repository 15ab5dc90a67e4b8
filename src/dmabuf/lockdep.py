"""lockdep-lite: the kernel's lock validator, reduced to what finds protocol bugs in buffer-sharing code.

What it tracks:

* the locks each task holds, in acquisition order (``task.held``);
* **lock classes** and the order in which classes were taken. A lock's class is the class or name given at
  init (``Mutex(name=...)``, a ww class, ``reservation_ww_class`` for every resv) or else, as in the kernel,
  its init call site (``Mutex@driver.py:42``), which is stable across the executions of one search. Locks
  of one class nested in each other add no order edge (the primitive checks its own nesting rules).
* **lockdep maps that are not locks** (:class:`LockMap`): as in kernel/workqueue.c, a worker holds the
  workqueue's map ``(wq_completion)<name>`` and the work's ``(work_completion)<function>`` around the work
  function, and flush_work/cancel_work_sync (the work's) and flush_workqueue/drain_workqueue (the
  workqueue's) take them for a moment, so flushing a work while holding a lock its function takes is
  reported even when the work was idle at the flush.
* When a new acquisition adds an edge ``held -> new`` and a path ``new -> ... -> held`` already exists, the
  program *can* deadlock even if this execution did not: a ``possible circular locking dependency`` report
  (kind ``kernel-warning``) printing both chains. Such a report is *deferred*: the explorer keeps searching
  and prefers an actual deadlock if it can reach one; otherwise the lockdep report is the finding.

Under the explorer the order graph lives on the runtime object, so it carries across the executions of one
search. The other checks (sleeping in atomic context, ww nesting, fence signalling sections, assert_held)
raise at once through :func:`dmabuf.kernel.WARN`.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from typing import Any

from .errors import KernelWarning
from .kernel import config
from .kernel._warn import WARN
from .runtime import Task, active, label_of

__all__ = [
    "BOOT_ORDERS",
    "LockdepWarning",
    "OrderGraph",
    "acquire",
    "assert_held",
    "class_of",
    "held_locks",
    "init_site",
    "is_held",
    "release",
]


class LockdepWarning(KernelWarning):
    """A lock-order cycle found by lockdep-lite (possible deadlock, not necessarily reached).

    ``origins``: what the explorer needs to replay the earlier executions whose lock orders this report
    contradicts (empty when the current execution took both orders, or outside the explorer)."""

    origins: list[object] = []


#: The lock orders the kernel teaches lockdep at boot, before any driver runs: ``dma_resv_lockdep()``
#: (drivers/dma-buf/dma-resv.c, a subsys_initcall under CONFIG_LOCKDEP) takes a reservation lock under an
#: acquire context and, holding it, annotates a fence wait (``__dma_fence_might_wait``). So waiting for a
#: fence while holding a resv is legal, and taking a resv lock (not a trylock) inside a fence signalling
#: section is reported at once, even in a program that never waits under a resv. (The kernel's chain also
#: has mmap_lock, fs_reclaim and i_mmap_rwsem, which this model does not have.) Each entry: (held class,
#: class taken, the chain printed in a report).
BOOT_ORDERS: tuple[tuple[str, str, list[str]], ...] = (
    ("reservation_ww_class_acquire", "reservation_ww_class",
     ["reservation_ww_class_acquire", "reservation_ww_class (dma_resv_lockdep at boot)"]),
    ("reservation_ww_class_acquire", "dma_fence_map",
     ["reservation_ww_class_acquire", "reservation_ww_class", "dma_fence_map (dma_resv_lockdep at boot)"]),
    ("reservation_ww_class", "dma_fence_map",
     ["reservation_ww_class_acquire", "reservation_ww_class", "dma_fence_map (dma_resv_lockdep at boot)"]),
)


class OrderGraph:
    """Edges between lock classes, each with the chain of held locks that first created it.

    ``origin_hook`` (set by the explorer, through the runtime's ``lockdep_origin``) returns ``(execution,
    payload)`` for the code running now: an identity of the current execution and how to get back to this
    point (the explorer's recorded decisions so far). Each new edge keeps what it returned, so a report that
    closes a cycle through edges of *earlier* executions can name them (``LockdepWarning.origins``) and the
    explorer can put them in the replay string."""

    def __init__(self, origin_hook: Callable[[], tuple[object, object]] | None = None) -> None:
        self.edges: dict[str, dict[str, list[str]]] = {}
        for before, after, chain in BOOT_ORDERS:  # known before any task runs, as after the kernel's boot
            self.edges.setdefault(before, {})[after] = chain
        self.reported: set[frozenset[str]] = set()
        #: set while the explorer replays a lock-order finding: report cycles through existing edges too
        self.replaying = False
        self.origin_hook = origin_hook
        #: edge -> (serial, execution, payload) of the code that added it (only with an origin hook)
        self.origin: dict[tuple[str, str], tuple[int, object, object]] = {}

    def path(self, src: str, dst: str) -> list[str] | None:
        """A path of classes from src to dst (inclusive), or None."""
        stack: list[tuple[str, list[str]]] = [(src, [src])]
        seen = {src}
        while stack:
            node, p = stack.pop()
            if node == dst:
                return p
            for nxt in self.edges.get(node, {}):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*p, nxt]))
        return None

    def add(self, before: str, after: str, chain: list[str]) -> list[str] | None:
        """Record ``before -> after``; return the reverse path if the new edge closes a cycle."""
        if before == after:
            return None
        out = self.edges.setdefault(before, {})
        if after in out:
            return None
        reverse = self.path(after, before)
        out[after] = chain
        if self.origin_hook is not None:
            execution, payload = self.origin_hook()
            self.origin[(before, after)] = (len(self.origin), execution, payload)
        return reverse

    def origins(self, path: list[str]) -> list[object]:
        """The payloads of the earlier executions that added the edges along ``path`` (oldest first, each
        execution once, with the first of its edges' payloads); edges the current execution added are left
        out (it adds them again when replayed)."""
        if self.origin_hook is None:
            return []
        now, _ = self.origin_hook()
        found = sorted(o for o in (self.origin.get(e) for e in itertools.pairwise(path)) if o is not None)
        seen: list[object] = [now]
        out = []
        for _serial, execution, payload in found:
            if not any(execution is x for x in seen):
                seen.append(execution)
                out.append(payload)
        return out


def _graph() -> OrderGraph | None:
    r = active()
    if r is None:
        return None
    g = getattr(r, "lockdep_graph", None)
    if g is None:
        g = OrderGraph(getattr(r, "lockdep_origin", None))
        r.lockdep_graph = g  # type: ignore[attr-defined]
    return g


def class_of(lock: Any) -> str:
    """The lockdep class name of ``lock``: its explicit class, else its name, else its init site."""
    for attr in ("_dm_class", "_dm_label", "_dm_site"):
        cls = getattr(lock, attr, None)
        if isinstance(cls, str) and cls:
            return cls
    return label_of(lock)


def _class_fast(lock: Any) -> str:
    cached = getattr(lock, "_dm_lockdep_class", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    cls = class_of(lock)
    try:
        lock._dm_lockdep_class = cls
    except AttributeError:
        pass  # slotted objects: computed each time
    return cls


_PKG_DIR = __file__.rsplit("/", 1)[0]


_getframe = sys._getframe
#: (kind, file, line) -> site name: every lock created at one line shares one string (formatting it each
#: time cost more than the frame walk)
_site_names: dict[tuple[str, str, int], str] = {}


def init_site(kind: str) -> str:
    """``<kind>@<file>:<line>`` of the first caller outside the dmabuf package (the kernel's lock class key
    is the init call site). Stable across the executions of a search, unlike trace names."""
    f = _getframe(1)
    while f is not None and f.f_code.co_filename.startswith(_PKG_DIR):
        f = f.f_back  # type: ignore[assignment]
    if f is None:
        return kind
    filename = f.f_code.co_filename
    key = (kind, filename, f.f_lineno)
    site = _site_names.get(key)
    if site is None:
        site = _site_names[key] = f"{kind}@{filename.rsplit('/', 1)[-1]}:{key[2]}"
    return site


class LockMap:
    """A lockdep map that is not a lock (``struct lockdep_map``): the kernel "acquires" one around a work
    item's function and around flushing it, so lockdep learns "flushing W while holding L" against "W's
    function takes L" even when the two never overlap in time. Its class is its name."""

    def __init__(self, name: str) -> None:
        self._dm_class = name
        self._dm_label = name

    def __repr__(self) -> str:
        return f"<LockMap {self._dm_class}>"


def might_lock(task: Task, lock: Any) -> None:
    """Record "every lock ``task`` holds -> ``lock``" without taking ``lock`` (acquire and release at once).

    Kernel: ``might_lock`` (dma_buf_begin_cpu_access on the resv), and ``lock_map_acquire`` followed by
    ``lock_map_release`` on a :class:`LockMap` (flush_work, flush_workqueue)."""
    if task.held and config.CONFIG_PROVE_LOCKING:
        acquire(task, lock)
        release(task, lock)


def held_locks(task: Task) -> list[Any]:
    """Locks ``task`` holds, oldest first."""
    return list(task.held)


def is_held(lock: Any, task: Task | None = None) -> bool:
    """True if ``task`` (default: the current task) holds ``lock``."""
    if task is None:
        r = active()
        if r is None:
            return False
        task = r.current()
    return any(h is lock for h in task.held)


def acquire(task: Task, lock: Any, *, nest_ok: bool = False, trylock: bool = False) -> None:
    """Record that ``task`` now holds ``lock`` and check the class order.

    ``nest_ok``: several locks of this class may be held (a ww acquire context, ``mutex_lock_nested``).
    ``trylock``: the acquisition could not block, so (as in the kernel's lockdep) it adds no order edges from
    the locks already held; locks taken later while holding it do.
    """
    if task.held and not trylock and config.CONFIG_PROVE_LOCKING:
        new_cls = _class_fast(lock)
        g = _graph()
        if g is not None:
            for h in task.held:
                hc = _class_fast(h)
                if hc == new_cls:
                    continue  # same class: nesting rules are checked by the primitive
                chain = [_class_fast(x) for x in task.held] + [new_cls]
                reverse = g.add(hc, new_cls, chain)
                if reverse is None and g.replaying:
                    reverse = g.path(new_cls, hc)
                if reverse is not None:
                    _report_cycle(g, task, hc, new_cls, chain, reverse)
    task.held.append(lock)


def _report_cycle(
    g: OrderGraph, task: Task, held: str, new: str, chain: list[str], reverse: list[str]
) -> None:
    key = frozenset((held, new))
    if key in g.reported and not g.replaying:
        return
    g.reported.add(key)
    earlier = []
    for a, b in itertools.pairwise(reverse):
        earlier.append(f"{a} -> {b} (first taken while holding {' -> '.join(g.edges[a][b])})")
    msg = (
        "possible circular locking dependency detected: task "
        f"{task.name!r} takes {new} while holding {held} (chain {' -> '.join(chain)}), but earlier "
        f"{' ; '.join(earlier)}. Two tasks taking these locks in opposite orders can deadlock; "
        "take them in one global order (or under one ww acquire context)."
    )
    exc = LockdepWarning(msg, "lockdep: lock order inversion")
    exc.origins = g.origins(reverse)
    r = active()
    if r is not None:
        r.log_warning(exc)


def release(task: Task, lock: Any) -> bool:
    """Record that ``task`` released ``lock``; False if it did not hold it."""
    held = task.held
    for i in range(len(held) - 1, -1, -1):  # newest first: the usual case is the last lock taken
        if held[i] is lock:
            del held[i]
            return True
    return False


def assert_held(lock: Any, what: str = "") -> None:
    """``lockdep_assert_held``: WARN unless the current task holds ``lock``."""
    r = active()
    if r is None:
        return
    t = r.current()
    if not is_held(lock, t):
        WARN(
            True,
            f"{what or label_of(lock)} must be held by {t.name!r} here (lockdep_assert_held)",
            "lockdep_assert_held",
        )
