"""``workers=N``: one search split over N local processes.

The work unit is a *forced prefix*: the decisions the first branches of every execution take (a list of
replay entries, JSON-able, so a cluster backend such as Ray can ship it as it is). A unit's strategy explores
the whole subtree under its prefix and never backtracks into it.

The coordinator grows units breadth-first: it runs one execution of a unit, finds the first branch below the
prefix, and replaces the unit by one child per alternative of that branch (the alternatives the strategy
itself would try: under a preemption bound, only those within it), until there are about ``4 * workers`` units.
Workers take units from a shared queue as they finish (``imap_unordered``: the idle worker steals the next
unit), so a large subtree does not leave the other processes idle.

* ``dfs``: the units partition the tree exactly, so the executions are the same set as with ``workers=1``.
* ``dpor``: a static split would run branches DPOR never needs, so the coordinator splits the tree while the
  search runs instead (:mod:`.parallel_dpor`): the executions are those of ``workers=1`` (with a preemption
  bound, by following one process's order over the units: bounded DPOR depends on it).
* ``random`` / ``pct``: worker ``i`` runs its share of the executions with seed ``seed * 1000003 + i``.

Bodies reach the worker processes through ``fork`` (no pickling), so closures work.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable
from typing import Any

from ..errors import UsageError
from ..lockdep import OrderGraph
from ..runtime import activate, deactivate
from ..runtime.controlled import ControlledRuntime, Outcome
from .database import FailureDatabase, body_key
from .failure import ExploreResult
from .replaying import lockdep_runs, track_lock_orders
from .schedule import Entry
from .strategies.dpor import bound_skipped_note

#: what a work unit reports: executions run, the failing decisions (for "lockdep", the runs of
#: replaying.lockdep_runs) or None, the kind ("ok", "lockdep", "stopped" or a failure kind), the reversals
#: its bounded DPOR dropped for the bound, and the lock-order edges its executions learnt (:func:`_edges_of`)
UnitResult = tuple[int, list[Any] | None, str, int, list[Any]]
#: a failure a search found: its entries, its kind ("lockdep" for a deferred lock-order report) and, for a
#: lock-order report, the earlier executions whose lock orders it contradicts (replayed before it)
Found = tuple[list[Entry], str, list[list[Entry]]]

__all__ = ["explore_parallel"]

#: set in the parent before forking; read by the workers
_JOB: dict[str, Any] = {}
#: the coordinator's tally of the running search (a Ctrl-C in the coordinator keeps what it holds)
_TALLY: list[Tally] = []


def _worker_ignores_sigint() -> None:
    """In a forked worker of a running search: Ctrl-C is the coordinator's to handle (it stops the workers
    and reports what they found), so a worker ignores SIGINT instead of dying with a traceback."""
    if _JOB:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


os.register_at_fork(after_in_child=_worker_ignores_sigint)


def _make(strategy: str, bound: int | None, seed: int, depth: int | None, forced: list[Entry]) -> Any:
    from .engine import _make_strategy

    strat = _make_strategy(strategy, bound, seed, depth=depth)
    strat.forced = list(forced)
    return strat


def _alternatives(strat: Any, index: int) -> list[Entry]:
    """The alternatives the strategy would explore at real branch ``index`` of the last execution."""
    decisions = strat.decisions()
    if index >= len(decisions):
        return []
    b = decisions[index]
    if b.kind == "c":
        return [Entry("c", v, b.n) for v in range(b.n)]
    bound = getattr(strat, "bound", None)
    out = []
    for i in b.alternatives():  # a DFS branch: ids by option index
        if bound is None or b.cur < 0 or i == b.cur or b.pre + 1 <= bound:
            out.append(Entry("t", b.tids[i]))
    return out


def _one(body: Callable[[], Any], strat: Any, max_steps: int) -> Outcome:
    rt = ControlledRuntime(strat, max_steps)
    activate(rt)
    try:
        strat.start()
        return rt.run(body)
    finally:
        deactivate(rt)


def _expand(
    body: Callable[[], Any],
    strategy: str,
    bound: int | None,
    seed: int,
    depth: int | None,
    max_steps: int,
    target: int,
) -> tuple[list[list[Entry]], Found | None, int, int]:
    """Split a DFS search into work units (forced prefixes). Returns the units, a failure found on the way,
    the executions run and the reversals dropped for the bound (at nodes inside the units' prefixes, which
    the units themselves do not analyse again)."""
    units: list[list[Entry]] = [[]]
    leaves: list[list[Entry]] = []
    ran = skipped = 0
    for _ in range(12):
        if len(units) + len(leaves) >= target or not units:
            break
        grown: list[list[Entry]] = []
        for u in units:
            strat = _make(strategy, bound, seed, depth, u)
            o = _one(body, strat, max_steps)
            ran += o.kind != "pruned"
            skipped += strat.stats.get("bound_skipped", 0) if hasattr(strat, "stats") else 0
            if o.kind not in ("ok", "pruned"):
                return [], ([b.entry() for b in strat.decisions()], o.kind, []), ran, skipped
            alts = _alternatives(strat, len(u))
            if not alts:
                leaves.append(u)
                continue
            grown.extend([*u, a] for a in alts)
        units = grown
    return units + leaves, None, ran, skipped


class Tally:
    """What the coordinator adds up from the units' results: executions, reversals dropped for the bound,
    the first real failure, and a lock-order report (the failure only if no unit found a real one)."""

    def __init__(self) -> None:
        self.executions = 0
        self.skipped = 0
        self.stopped = False
        self.failed: Found | None = None
        #: a lock-order report: the earlier executions it needs, then its own (replaying.lockdep_runs)
        self.lockdep: list[list[Entry]] | None = None
        #: the lock orders of all units together: a cycle through the orders of several units is a
        #: lock-order report too (one process learns them all in one graph)
        self.graph = OrderGraph()
        self._origin: dict[tuple[str, str], list[Entry]] = {}
        _TALLY[:] = [self]  # the latest search's: explore_parallel reads it after a Ctrl-C

    def add(self, result: UnitResult) -> bool:
        """Count one unit's result; True when it is a failure (the search stops)."""
        n, entries, kind, dropped, edges = result
        self.executions += n
        self.skipped += dropped
        self._merge(edges)
        if entries is not None and kind in ("lockdep", "stopped"):
            if self.lockdep is None:
                self.lockdep = [[Entry(*e) for e in run] for run in entries]
        elif entries is not None:
            self.failed = ([Entry(*e) for e in entries], kind, [])
            self.stopped = True
            return True
        if kind == "stopped":  # a unit ran out of budget before its subtree was covered; the others stop
            self.stopped = True  # at their next execution and report what they ran: keep counting
        return False

    def _merge(self, edges: list[Any]) -> None:
        """Add a unit's lock-order edges; the first that closes a cycle with the other units' edges gives a
        lock-order report (unless one is known): the executions that added the cycle's other edges, then
        the one that adds the closing edge (replayed up to it)."""
        g = self.graph
        for before, after, chain, origin in edges:
            run = [Entry(*e) for e in origin]
            reverse = g.add(before, after, list(chain))
            self._origin.setdefault((before, after), run)
            if reverse is not None and self.lockdep is None:
                earlier: list[list[Entry]] = []
                for a, b in itertools.pairwise(reverse):
                    o = self._origin.get((a, b))
                    if o is not None and o not in earlier:
                        earlier.append(o)
                self.lockdep = [*earlier, run]

    def failure(self) -> Found | None:
        """The failure to report: the first real one, else the lock-order report."""
        if self.failed is None and self.lockdep is not None:
            return (self.lockdep[-1], "lockdep", self.lockdep[:-1])
        return self.failed


def stop_workers(procs: list[Any]) -> None:
    """Kill the workers still running (a failure or a budget ended the search) and forget the job."""
    for p in procs:
        if p.is_alive():
            p.kill()
    for p in procs:
        p.join(5)
    _JOB.clear()


def _claim(slots: Any) -> bool:
    """Take one execution of the shared ``max_executions`` budget (``None``: unlimited); False when spent."""
    if slots is None:
        return True
    with slots.get_lock():
        if slots.value <= 0:
            return False
        slots.value -= 1
        return True


def _release(slots: Any) -> None:
    """Give back a slot taken for an execution that did not count (pruned)."""
    if slots is not None:
        with slots.get_lock():
            slots.value += 1


def drive_unit(
    strat: Any,
    after_run: Callable[[Any], None] | None = None,
    after_advance: Callable[[Any], None] | None = None,
) -> UnitResult:
    """Run a unit's strategy until its subtree is covered, a failure is found or a shared budget (time,
    ``max_executions``) is spent. ``after_run(strat)`` is called after every execution and
    ``after_advance(strat)`` after the strategy took it into account (the DPOR coordinator's reports)."""
    job = _JOB
    rt = ControlledRuntime(strat, job["max_steps"])
    track_lock_orders(rt)
    n, entries, kind, dropped = _drive(rt, strat, after_run, after_advance)
    return n, entries, kind, dropped, _edges_of(rt)


def _edges_of(rt: ControlledRuntime) -> list[Any]:
    """The lock-order edges the runtime's executions learnt, oldest first, each with the decisions that led
    to it (for the coordinator's merged graph, :meth:`Tally.add`)."""
    g = getattr(rt, "lockdep_graph", None)
    if g is None:
        return []
    out = []
    for (before, after), (_serial, _execution, payload) in sorted(g.origin.items(), key=lambda kv: kv[1][0]):
        if isinstance(payload, list):
            out.append((before, after, list(g.edges[before][after]), [list(e) for e in payload]))
    return out


def _drive(
    rt: ControlledRuntime,
    strat: Any,
    after_run: Callable[[Any], None] | None,
    after_advance: Callable[[Any], None] | None,
) -> tuple[int, list[Any] | None, str, int]:
    job = _JOB
    slots, deadline = job["slots"], job["deadline"]
    executions = 0
    lockdep: list[list[list[Any]]] | None = None
    stats: dict[str, int] = strat.stats if hasattr(strat, "stats") else {}
    activate(rt)
    try:
        while True:
            if (deadline is not None and time.perf_counter() > deadline) or not _claim(slots):
                # time_budget or max_executions (all workers) spent
                return executions, lockdep, "stopped", stats.get("bound_skipped", 0)
            strat.start()
            o = rt.run(job["body"])
            if after_run is not None:
                after_run(strat)
            if o.kind == "pruned":
                _release(slots)
            else:
                executions += 1
                if not o.ok:
                    return executions, [list(b.entry()) for b in strat.decisions()], o.kind, 0
                if lockdep is None and "lockdep" in o.extra:  # deferred, as in one process: a real failure wins
                    lockdep = lockdep_runs(o, strat)
            more = strat.advance(o)
            if after_advance is not None:
                after_advance(strat)
            if not more:
                break
    finally:
        deactivate(rt)
    return executions, lockdep, "lockdep" if lockdep is not None else "ok", stats.get("bound_skipped", 0)


def _run_unit(unit: list[list[Any]]) -> UnitResult:
    """A DFS work unit: the subtree under its forced prefix."""
    job = _JOB
    return drive_unit(_make(job["strategy"], job["bound"], job["seed"], job["depth"], [Entry(*e) for e in unit]))


def _run_seeded(i: int) -> UnitResult:
    job = _JOB
    strat = _make(job["strategy"], job["bound"], job["seed"] * 1000003 + i, job["depth"], [])
    rt = ControlledRuntime(strat, job["max_steps"])
    track_lock_orders(rt)
    n, entries, kind, dropped = _seeded(rt, strat)
    return n, entries, kind, dropped, _edges_of(rt)


def _seeded(rt: ControlledRuntime, strat: Any) -> tuple[int, list[Any] | None, str, int]:
    job = _JOB
    executions = 0
    deadline = job["deadline"]
    lockdep: list[list[list[Any]]] | None = None
    activate(rt)
    try:
        while (deadline is None or time.perf_counter() < deadline) and _claim(job["slots"]):
            strat.start()
            o = rt.run(job["body"])
            executions += 1
            if not o.ok:
                return executions, [list(b.entry()) for b in strat.decisions()], o.kind, 0
            if lockdep is None and "lockdep" in o.extra:
                lockdep = lockdep_runs(o, strat)
            strat.advance(o)
    finally:
        deactivate(rt)
    return executions, lockdep, "lockdep" if lockdep is not None else "ok", 0


def _worker(counter: Any, results: Any) -> None:
    """A worker process: take the next unit index from the shared counter (work stealing), run it, report."""
    work, fn = _JOB["work"], _JOB["fn"]
    while True:
        with counter.get_lock():
            k = counter.value
            counter.value = k + 1
        if k >= len(work):
            results.put(None)
            return
        results.put(fn(work[k]))


def _check_alive(procs: list[Any]) -> None:
    """A worker that died without reporting (a BaseException such as SystemExit escaped the body, or the
    process was killed) would leave the coordinator waiting forever: report it instead."""
    for i, p in enumerate(procs):
        if not p.is_alive() and p.exitcode not in (None, 0):
            raise UsageError(
                f"explore worker process {i} died (exit code {p.exitcode}) before reporting its work: the body "
                "must not end the process (SystemExit, KeyboardInterrupt, os._exit) or be killed; run with "
                "workers=1 to see what it did"
            )


def receive(
    results: Any, procs: list[Any], tally: Tally, time_budget: float | None, t0: float
) -> tuple[bool, Any]:
    """A coordinator's wait for the next worker message (up to 0.2 s): ``(False, message or None)``, or
    ``(True, None)`` to give up -- the time budget is over by a second, so a worker is stuck in one long
    execution (``tally.stopped`` is set). Raises as :func:`_check_alive` for a worker that died."""
    try:
        return False, results.get(timeout=0.2)
    except queue.Empty:
        _check_alive(procs)
        if time_budget is not None and time.perf_counter() - t0 > time_budget + 1.0:
            tally.stopped = True
            return True, None
        return False, None


def _run_workers(
    workers: int, max_executions: int | None, time_budget: float | None, t0: float
) -> tuple[int, Found | None, bool, int]:
    """Fork the workers (they inherit ``_JOB``), collect results, stop early on a failure or a budget, and
    kill whatever still runs. Returns (executions, failure, stopped early, reversals the units' bounded DPOR
    dropped for the bound); a lock-order report (lockdep) is the failure only if no worker found a real one."""
    ctx = multiprocessing.get_context("fork")
    counter = ctx.Value("i", 0)
    # the max_executions budget, shared: a worker takes a slot before each execution, so the workers
    # together never run more than the budget (per-unit limits overshot it by up to a unit each)
    _JOB["slots"] = None if max_executions is None else ctx.Value("q", max_executions)
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(counter, results), daemon=True) for _ in range(workers)]
    tally = Tally()
    try:
        for p in procs:
            p.start()
        running = workers
        while running:
            try:
                r = results.get(timeout=0.2)
            except queue.Empty:
                _check_alive(procs)
                continue
            if r is None:
                running -= 1
                continue
            if tally.add(r):
                break
            if time_budget is not None and time.perf_counter() - t0 > time_budget + 1.0:
                tally.stopped = True  # a worker stuck in one long execution: do not wait for it
                break
    finally:
        stop_workers(procs)
    return tally.executions, tally.failure(), tally.stopped, tally.skipped


def explore_parallel(
    body: Callable[[], Any],
    strategy: str,
    bound: int | None,
    max_executions: int | None,
    time_budget: float | None,
    seed: int,
    workers: int,
    max_steps: int,
    depth: int | None,
    shrink: bool,
    db: FailureDatabase | None,
) -> ExploreResult:
    """The ``workers > 1`` path of :func:`dmabuf.explore` (see the module docstring)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        raise UsageError("workers > 1 needs the 'fork' start method (Linux); run with workers=1")
    t0 = time.perf_counter()
    exhaustive = strategy in ("dfs", "dpor")
    failed: Found | None = None
    executions = 0
    complete = False
    skipped = 0
    nunits = 0
    interrupted = False
    _TALLY.clear()
    unit_stats: dict[str, int] = {}
    if strategy == "dpor":
        work: list[Any] = []
        fn: Callable[[Any], UnitResult] = _run_unit
    elif exhaustive:
        try:
            units, failed, executions, skipped = _expand(
                body, strategy, bound, seed, depth, max_steps, 4 * workers
            )
        except KeyboardInterrupt:  # Ctrl-C while the coordinator split the tree
            units, interrupted = [], True
        work = [[list(e) for e in u] for u in units]
        fn = _run_unit
        nunits = len(work)
    else:
        work = list(range(workers))
        fn = _run_seeded
        nunits = workers
    if failed is None and not interrupted:
        _JOB.clear()
        _JOB.update(
            body=body,
            strategy=strategy,
            bound=bound,
            seed=seed,
            depth=depth,
            max_steps=max_steps,
            deadline=None if time_budget is None else t0 + time_budget,
            work=work,
            fn=fn,
        )
        try:
            if strategy == "dpor":
                from .parallel_dpor import run_dpor_workers

                executions, failed, stopped, dropped, unit_stats = run_dpor_workers(
                    workers, max_executions, time_budget, t0
                )
                nunits = unit_stats.pop("units")
            else:
                executions, failed, stopped, dropped = _run_workers(workers, max_executions, time_budget, t0)
        except KeyboardInterrupt:
            # Ctrl-C in the coordinator (the workers ignore it and were stopped on the way out): keep what
            # the units reported, a failure or a lock-order report included
            interrupted, stopped = True, True
            tally = _TALLY[0] if _TALLY else Tally()
            executions, failed, dropped = tally.executions, tally.failure(), tally.skipped
        skipped += dropped
        complete = exhaustive and not stopped
    _TALLY.clear()
    failure = None
    notes: list[str] = [bound_skipped_note(bound)] if skipped else []
    if interrupted:
        notes.append(
            f"interrupted (Ctrl-C) after {executions} executions of {workers} worker processes; a parallel "
            "search (workers > 1) saves no frontier and cannot be resumed: run it again to restart it"
            + (" (what the workers found is returned)" if failed is not None else "")
        )
    if failed is not None:
        from .engine import _make_strategy
        from .replaying import build_failure_or_keep, lockdep_outcome_of_runs, shrink_budget

        kind = "kernel-warning" if failed[1] == "lockdep" else failed[1]
        found = lockdep_outcome_of_runs([*failed[2], failed[0]]) if failed[1] == "lockdep" else Outcome(kind)
        rt = ControlledRuntime(_make_strategy(strategy, bound, seed, depth=depth), max_steps)
        track_lock_orders(rt)
        activate(rt)
        try:
            failure, cut = build_failure_or_keep(
                rt, body, failed[0], found, shrink, shrink_budget(time_budget, t0)
            )
        finally:
            deactivate(rt)
        if cut:
            interrupted = True
            notes.append(
                "interrupted (Ctrl-C) while the failure was shrunk: it is returned "
                + ("as shrunk so far" if failure.trace else "unshrunk")
                + " (see failure.shrink_note) and stored in the database as usual"
            )
        if failed[1] == "lockdep" and failure.kind != kind:
            # the lock orders came from executions the worker could not name (none should be left)
            notes.append(
                "a worker saw a lock-order (lockdep) report that needs the lock orders of several executions "
                "and it did not replay, even with the earlier executions it named; run with workers=1 to get "
                "it reported"
            )
            failure, complete = None, False
        if failure is not None and db is not None:
            db.save_failure(body_key(body), failure)
    return ExploreResult(
        ok=failure is None,
        complete=complete and failure is None,
        executions=executions,
        failure=failure,
        strategy=strategy,
        elapsed=time.perf_counter() - t0,
        stats={
            "workers": workers,
            "units": nunits,
            **unit_stats,
            **({"bound_skipped": skipped} if strategy == "dpor" else {}),
            **({"interrupted": True} if interrupted else {}),
        },
        notes=notes,
    )
