"""``explore``: run a body under the controlled runtime, many times, and report failures (found failures are
replayed, shrunk and reported by :mod:`.replaying`, which also holds ``replay``)."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgument
from ..lockdep import BOOT_ORDERS
from ..runtime import activate, deactivate
from ..runtime.controlled import DEFAULT_MAX_STEPS, ControlledRuntime, Outcome
from .certify import SKIP_FACTOR, WALKS, certify_parallel, estimate_bounded_dfs
from .database import DatabaseWarning, FailureDatabase, body_key, resolve
from .failure import ExploreResult
from .progress import progress_bar
from .replaying import (
    _check_body,
    _lockdep_outcome,
    build_failure_or_keep,
    replay,  # re-exported: dmabuf.explore.engine.replay is where it always was
    shrink_budget,
    track_lock_orders,
)
from .resume import STALE_FRONTIER, replay_stored, restore_frontier
from .schedule import Entry
from .strategies import DFS, PathStrategy
from .strategies.base import check_positive_int
from .strategies.dpor import bound_skipped_note

__all__ = ["STRATEGIES", "explore", "replay"]

#: Strategy names accepted by :func:`explore`.
STRATEGIES = ("dfs", "dpor", "random", "pct")


def _make_strategy(strategy: str, preemption_bound: int | None, seed: int, **kw: Any) -> PathStrategy:
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise InvalidArgument(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if strategy == "dfs":
        if kw.get("depth") is not None:
            raise InvalidArgument(
                f"depth={kw['depth']!r} only applies to strategy='pct'; drop it or pass strategy='pct'"
            )
        return DFS(preemption_bound)
    from .strategies import extra

    return extra.make(strategy, preemption_bound, seed, **kw)


#: executions of ``random``/``pct`` when neither ``max_executions`` nor ``time_budget`` is given
DEFAULT_SAMPLES = 1_000



class _StaleFrontier(Exception):
    """The first execution of a resumed search diverged from the saved frontier (the body changed)."""


def _check_flag(name: str, value: Any, allow_none: bool = False) -> None:
    if isinstance(value, bool) or (allow_none and value is None):
        return
    raise InvalidArgument(
        f"{name} must be True or False{' (or None)' if allow_none else ''}, got {type(value).__name__} {value!r}"
    )


def explore(
    body: Callable[[], Any],
    strategy: str = "dpor",
    preemption_bound: int | None = None,
    max_executions: int | None = None,
    time_budget: float | None = None,
    seed: int = 0,
    workers: int = 1,
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
    depth: int | None = None,
    shrink: bool = True,
    database: str | os.PathLike[str] | bool | None = True,
    resume: bool = False,
    progress: bool | None = None,
    probes: bool | None = None,
) -> ExploreResult:
    """Run ``body`` once per execution under the controlled runtime and search its interleavings.

    Args:
        body: zero-argument callable; runs as the first task (``main``) of every execution.
        strategy: ``"dpor"`` (default), ``"dfs"``, ``"random"`` or ``"pct"``.
        preemption_bound: at most this many involuntary switches per execution (``None``: unbounded).
        max_executions: stop after this many executions (``random`` and ``pct`` never finish by
            themselves: with neither this nor ``time_budget`` they stop after ``DEFAULT_SAMPLES`` = 1,000,
            and say so in ``result.notes``).
        time_budget: stop after this many seconds (checked between executions); shrinking a failure then gets
            what is left of it (at least 0.5 s, at most its own 5 s).
        seed: seed of the random strategies.
        workers: local worker processes (1: in this process).
        max_steps: scheduling steps one task may take in an execution before it is reported as a livelock
            (an execution of more than 8 x ``max_steps`` steps in all is one too).
        depth: PCT bug depth, an int >= 1 (``pct`` only; default 3: bugs that need up to two preemptions).
        shrink: minimise the failure before returning it (fewer preemptions, steps, tasks, data values).
        database: where failing schedules are stored and replayed first next time: ``True`` (default:
            ``$DMABUF_DATABASE`` or ``.dmabuf``), a directory, or ``None`` for none (``False``, ``""``,
            ``"off"`` and ``"none"`` too).
        resume: continue an exhaustive search from the frontier saved when it was interrupted (Ctrl-C). A
            frontier of another body, a malformed one, or one that diverges at once (the body changed) gives a
            ``DatabaseWarning`` and a fresh search. Not with ``workers > 1`` (a parallel search saves none).
        progress: live progress bar (``None``: only when stderr is a terminal).
        probes: interleave probe executions with an exhaustive search (one after every 4 of its
            executions; every 8 after 1,000 and every 16 after 10,000), alternating a seeded random walk (within
            preemption_bound; finds bugs deep in a large space, reorder_N) and a
            preemption-bounded DPOR sub-search with bounds 1, 2, 3 in turn (finds few-preemption bugs that the
            unbounded search, which starts deep, reaches late). The search itself stays exhaustive. ``None``:
            on for ``dpor``. Probes are not counted in ``result.executions`` (the exhaustive search's
            executions, e.g. exactly one per Mazurkiewicz trace) but in ``stats["probe_executions"]``.

    Returns:
        An :class:`ExploreResult`; ``result.failure`` is the first failure found, already shrunk, replayed
        with a trace and a replay string.
    """
    _check_body(body)
    _check_flag("shrink", shrink)
    _check_flag("resume", resume)
    _check_flag("progress", progress, allow_none=True)
    _check_flag("probes", probes, allow_none=True)
    check_positive_int("preemption_bound", preemption_bound)
    check_positive_int("max_executions", max_executions, minimum=1)
    check_positive_int("max_steps", max_steps, allow_none=False, minimum=1)
    check_positive_int("workers", workers, allow_none=False, minimum=1)
    check_positive_int("seed", seed, allow_none=False, minimum=-(2**63))
    if time_budget is not None and (
        isinstance(time_budget, bool) or not isinstance(time_budget, (int, float)) or not time_budget > 0
    ):  # ``not > 0`` also rejects NaN, which no elapsed time ever exceeds
        raise InvalidArgument(
            f"time_budget must be a positive number of seconds or None, got {time_budget!r}"
        )
    strat = _make_strategy(strategy, preemption_bound, seed, depth=depth, max_steps=max_steps)
    budget_note = ""
    if not getattr(strat, "exhaustive", True) and max_executions is None and time_budget is None:
        # a sampling strategy never ends by itself: without a budget it would run until interrupted
        max_executions = DEFAULT_SAMPLES
        budget_note = (
            f"{strat.name}: no max_executions or time_budget given, so it stopped after the default "
            f"{DEFAULT_SAMPLES:,} executions; pass either to search longer"
        )
    db = resolve(database)
    key = body_key(body)
    rt = ControlledRuntime(strat, max_steps)
    track_lock_orders(rt)
    t0 = time.perf_counter()
    notes: list[str] = [budget_note] if budget_note else []
    if resume and (db is None or workers != 1):
        why = (
            "there is no failure database (database=None)"
            if db is None
            else "a parallel search (workers > 1) cannot be resumed (a frontier saved by workers=1 is kept for "
            "a workers=1 run)"
        )
        notes.append(f"resume=True ignored: {why}; the search started from the beginning")
    # phase 1: replay stored failures of this body first (with workers too: the database is per body)
    if db is not None:
        activate(rt)
        try:
            found = replay_stored(rt, body, db, key, notes, preemption_bound)
        except KeyboardInterrupt:
            try:
                rt.abandon()
            except Exception:
                pass
            notes.append(
                "interrupted (Ctrl-C) while replaying the failures stored for this body; the search did not "
                "start (the stored entries are kept): run again to search"
            )
            return ExploreResult(
                True, False, 0, None, strat.name, time.perf_counter() - t0, {"interrupted": True}, notes
            )
        finally:
            deactivate(rt)
        if found is not None:
            return ExploreResult(
                False,
                False,
                1,
                found,
                strat.name,
                time.perf_counter() - t0,
                {"from_database": True},
                notes,
            )
    if workers != 1:
        from .parallel import explore_parallel

        result: ExploreResult = explore_parallel(
            body,
            strategy,
            preemption_bound,
            max_executions,
            time_budget,
            seed,
            workers,
            max_steps,
            depth,
            shrink,
            db,
        )
        result.notes[:0] = notes
        if (
            probes is not False
            and strat.name == "dpor"
            and preemption_bound is not None
            and result.ok
            and result.complete
            and result.stats.get("bound_skipped")
        ):
            result = certify_parallel(result, rt, strat, body, preemption_bound, time_budget, t0, shrink, db, key)
        return result
    activate(rt)
    try:
        # phase 2: search
        executions = 0
        resumed = False
        if resume and db is not None:
            executions, resumed = restore_frontier(strat, db, key, notes)
            if not resumed:  # a frontier that failed to restore may have left the strategy half-restored
                strat = _make_strategy(strategy, preemption_bound, seed, depth=depth, max_steps=max_steps)
                rt.decider = strat
        if probes is None:
            probes = strat.name == "dpor"

        def new_search(executions: int) -> _Search:
            run = _Search(rt, strat, body, executions, max_executions, time_budget, t0)
            if probes and getattr(strat, "exhaustive", False):
                from .strategies.extra import RandomWalk

                run.probe = RandomWalk(seed, preemption_bound)  # probes keep the user's bound too
                run.bounded = _BoundedProbes(preemption_bound)
            return run

        run = new_search(executions)
        run.resumed = resumed
        with progress_bar(progress, strat.name, max_executions) as bar:
            run.bar = bar
            try:
                try:
                    run.loop()
                except _StaleFrontier:
                    # the saved frontier diverged at once: not the body's nondeterminism, a stale frontier
                    warnings.warn(f"dmabuf: {STALE_FRONTIER}", DatabaseWarning, stacklevel=2)
                    notes[:] = [n for n in notes if not n.startswith("resumed after")]
                    notes.append(
                        f"resume: {STALE_FRONTIER} (replaying it diverged: the body changed since it was saved)"
                    )
                    strat = _make_strategy(strategy, preemption_bound, seed, depth=depth, max_steps=max_steps)
                    rt.decider = strat
                    rt.lockdep_graph = None  # type: ignore[attr-defined]
                    run = new_search(0)
                    run.bar = bar
                    run.loop()
                if run.probe is not None:
                    run.certify(preemption_bound, notes)
            except KeyboardInterrupt:
                _interrupted(rt, strat, db, key, run, notes)
        failure = None
        secs = shrink_budget(time_budget, t0)
        pending = run.failed if run.failed is not None else run.lockdep
        if pending is not None:
            failure, cut = build_failure_or_keep(rt, body, pending[0], pending[1], shrink, secs)
            if cut:
                run.interrupted = True
                notes.append(
                    "interrupted (Ctrl-C) while the failure was shrunk: it is returned "
                    + ("as shrunk so far" if failure.trace else "unshrunk")
                    + " (see failure.shrink_note) and stored in the database as usual"
                )
        if failure is not None and db is not None:
            db.save_failure(key, failure)
        if run.complete and db is not None:
            db.clear_frontier(key)
    finally:
        deactivate(rt)
    stats: dict[str, Any] = dict(getattr(strat, "stats", {}))
    if stats.get("bound_skipped") and not stats.get("bound_certified"):
        notes.append(bound_skipped_note(preemption_bound))
    stats.update(run.coverage())
    graph = getattr(rt, "lockdep_graph", None)
    if graph is not None:
        boot = {(a, b) for a, b, _chain in BOOT_ORDERS}  # known before the body ran, not orders it took
        stats["lock_orders"] = sorted(
            f"{a} -> {b}" for a, outs in graph.edges.items() for b in outs if (a, b) not in boot
        )
    if run.interrupted:
        stats["interrupted"] = True
    if run.probes:
        stats["probe_executions"] = run.probes
    return ExploreResult(
        ok=failure is None,
        complete=run.complete and failure is None,
        executions=run.executions,
        failure=failure,
        strategy=strat.name,
        elapsed=time.perf_counter() - t0,
        stats=stats,
        notes=notes,
    )


class _Search:
    """The search loop of one ``explore`` call (kept as an object so an interruption can inspect it)."""

    def __init__(
        self,
        rt: ControlledRuntime,
        strat: PathStrategy,
        body: Callable[[], Any],
        executions: int,
        max_executions: int | None,
        time_budget: float | None,
        t0: float,
    ) -> None:
        self.rt = rt
        self.strat = strat
        self.body = body
        self.executions = executions
        self.max_executions = max_executions
        self.time_budget = time_budget
        self.t0 = t0
        self.complete = False
        self.interrupted = False
        self.failed: tuple[list[Entry], Outcome] | None = None
        self.lockdep: tuple[list[Entry], Outcome] | None = None
        self.bar: Any = None
        self.frontier_len = 0
        self.classes: dict[int, int] = {}
        self.track_classes = not getattr(strat, "exhaustive", True)
        #: probes interleaved with an exhaustive search (see explore's ``probes``)
        self.probe: PathStrategy | None = None
        self.bounded: _BoundedProbes | None = None
        self.probe_every = 4
        self.probes = 0
        #: continuing from a saved frontier: its first execution checks that the frontier fits the body
        self.resumed = False

    def _probe(self) -> bool:
        """One probe execution alongside the exhaustive search; True if it failed (then recorded)."""
        rt = self.rt
        probe: Any = self.probe
        if self.bounded is not None and self.probes % 2 == 1:
            probe = self.bounded.current() or probe
        assert probe is not None
        saved = rt.decider
        rt.decider = probe
        try:
            probe.start()
            outcome = rt.run(self.body)
        finally:
            rt.decider = saved
        self.probes += 1
        failed = outcome.kind not in ("ok", "pruned")
        if failed:
            self.failed = ([b.entry() for b in probe.decisions()], outcome)
        else:
            self._note_lockdep(outcome, probe)
        if not probe.advance(outcome) and self.bounded is not None and probe is self.bounded.current():
            self.bounded.next()
        return failed

    def _note_lockdep(self, outcome: Outcome, decider: Any) -> None:
        """Keep the first deferred lock-order report (it rides on an ``ok`` outcome), whichever execution
        found it: the search's, a probe's or the certifying DFS's. The lock-order graph is shared, so the
        same cycle is not reported again by a later execution: dropping it would lose it."""
        if self.lockdep is None and outcome.ok and "lockdep" in outcome.extra:
            self.lockdep = ([b.entry() for b in decider.decisions()], _lockdep_outcome(outcome))

    def loop(self) -> None:
        rt, strat, body = self.rt, self.strat, self.body
        track = self.track_classes
        rt.step_log = [] if track else None
        started = self.executions
        # the strategy's frontier (its path of nodes), looked up once: this loop runs every execution
        frontier_attr = "path" if hasattr(strat, "path") else "nodes" if hasattr(strat, "nodes") else ""
        has_probe = self.probe is not None
        while True:
            n = self.executions
            if has_probe:
                # probes find shallow bugs early; in a long search they thin out (1 in 4, then 8, then 16)
                every = self.probe_every if n < 1_000 else self.probe_every * (2 if n < 10_000 else 4)
                if n % every == every - 1 and self._probe():
                    return
            # the frontier before this execution (an interruption saves it); strategies may replace the list
            self.frontier_len = len(getattr(strat, frontier_attr)) if frontier_attr else 0
            strat.start()
            if track:
                rt.step_log = []
            outcome = rt.run(body)
            if outcome.kind == "pruned":
                if not strat.advance(outcome):
                    self.complete = getattr(strat, "exhaustive", True)
                    return
                continue
            if self.resumed:
                if outcome.kind == "nondeterminism":
                    raise _StaleFrontier(outcome.message)
                self.resumed = False
            self.executions += 1
            if track and rt.step_log is not None:
                h = _class_hash(rt.step_log)
                self.classes[h] = self.classes.get(h, 0) + 1
            if self.bar is not None and self.executions % 64 == 0:
                self.bar.update(self.executions, self.frontier_len, len(self.classes))
            if not outcome.ok:
                self.failed = ([b.entry() for b in strat.decisions()], outcome)
                return
            if self.lockdep is None and "lockdep" in outcome.extra:
                self.lockdep = ([b.entry() for b in strat.decisions()], _lockdep_outcome(outcome))
            if not strat.advance(outcome):
                self.complete = getattr(strat, "exhaustive", True)
                return
            if self.max_executions is not None and self.executions - started >= self.max_executions:
                return
            if self.time_budget is not None and time.perf_counter() - self.t0 > self.time_budget:
                return

    def certify(self, bound: int | None, notes: list[str]) -> None:
        """After a finished bounded DPOR search that dropped reversals for the bound (so a schedule within the
        bound may not have run): run plain DFS with the same bound, as probes (not counted as executions).
        First a few random walks estimate how many executions that DFS has (``certify.estimate_bounded_dfs``,
        only when the walks agree): far more than it may run, and it is skipped (said in the notes).
        Otherwise it runs for as many executions as the search ran (at least 64), or up to twice the
        estimate when that is larger (at most 4x). If it finishes, every schedule within the bound ran; if
        it (or a walk) fails, that is the search's failure."""
        stats: dict[str, int] | None = getattr(self.strat, "stats", None)
        if not (self.complete and self.failed is None and bound is not None and self.strat.name == "dpor"):
            return
        if stats is None or not stats.get("bound_skipped"):
            return
        rt = self.rt
        cap = max(64, self.executions)
        estimate, walks, failed = estimate_bounded_dfs(rt, self.body, bound, on_clean=self._note_lockdep)
        self.probes += walks
        if failed is not None:
            self.failed = failed
            return
        if estimate is not None:
            stats["certify_estimate"] = round(estimate)
        if estimate is not None and estimate > SKIP_FACTOR * cap:
            stats["certify_skipped"] = 1
            notes.append(
                f"the certifying dfs (preemption_bound={bound}) was not run: it would need about "
                f"{estimate:,.0f} executions (estimated from {WALKS} random walks), far more than the {cap:,} "
                "it may run"
            )
            return
        # room for the tree the estimate sees (twice it: the estimate is rough), up to 4x the usual cap
        if estimate is not None:
            cap = max(cap, min(4 * cap, int(2 * estimate) + 1))
        dfs = DFS(bound)
        saved = rt.decider
        rt.decider = dfs
        ran = 0
        finished = False
        try:
            while ran < cap:
                if self.time_budget is not None and time.perf_counter() - self.t0 > self.time_budget:
                    break
                dfs.start()
                outcome = rt.run(self.body)
                ran += 1
                if outcome.kind not in ("ok", "pruned"):
                    self.failed = ([b.entry() for b in dfs.decisions()], outcome)
                    break
                self._note_lockdep(outcome, dfs)
                if not dfs.advance(outcome):
                    finished = True
                    break
        finally:
            rt.decider = saved
        self.probes += ran
        stats["certify_executions"] = ran
        if finished:
            stats["bound_certified"] = 1
            notes.append(
                f"dpor with preemption_bound={bound} skipped reversals that need more preemptions than the "
                f"bound; plain dfs with the same bound then ran every schedule within it ({ran} executions, "
                "counted as probes), so the search is complete"
            )

    def coverage(self) -> dict[str, Any]:
        if not self.classes:
            return {}
        n = sum(self.classes.values())
        singletons = sum(1 for c in self.classes.values() if c == 1)
        # Good-Turing: the probability that the next execution shows a class not seen yet is about n1/n
        return {
            "distinct_classes": len(self.classes),
            "coverage_estimate": round(1.0 - singletons / n, 4) if n else 0.0,
        }


class _BoundedProbes:
    """Preemption-bounded DPOR sub-searches with bounds 1, 2, 3 (below the user's bound), one after another."""

    def __init__(self, user_bound: int | None) -> None:
        from .strategies.dpor import DPOR

        top = 3 if user_bound is None else min(3, user_bound - 1)
        self._make = DPOR
        self._bounds = list(range(1, top + 1))
        self._cur: Any = DPOR(self._bounds.pop(0)) if self._bounds else None

    def current(self) -> Any:
        return self._cur

    def next(self) -> None:
        self._cur = self._make(self._bounds.pop(0)) if self._bounds else None


def _class_hash(log: list[tuple[int, Any, str]]) -> int:
    """A hash of the execution's Mazurkiewicz class (approximate: per object, the order of accesses by
    task and per-task index; read-read reorderings count as different)."""
    per_task: dict[int, int] = {}
    per_obj: dict[Any, list[tuple[int, int, str]]] = {}
    for tid, obj, access in log:
        k = per_task.get(tid, 0)
        per_task[tid] = k + 1
        key = obj if type(obj) is str else id(obj)
        per_obj.setdefault(key, []).append((tid, k, access))
    return hash(frozenset(tuple(v) for v in per_obj.values()))


def _interrupted(
    rt: ControlledRuntime,
    strat: PathStrategy,
    db: FailureDatabase | None,
    key: str,
    run: _Search,
    notes: list[str],
) -> None:
    run.interrupted = True
    try:
        rt.abandon()
    except Exception:
        pass
    found = ""
    if run.failed is None and run.lockdep is not None:
        found = (
            "; a lock-order (lockdep) report it had found is returned as the failure (and stored): the search "
            "was stopped before it could look further for a real deadlock"
        )
    if run.complete:
        # the certifying DFS after a finished bounded DPOR search: nothing of the search is left to resume
        notes.append(
            f"interrupted during the certifying dfs, after the bounded dpor search had finished ({run.executions} "
            "executions): no frontier saved (there is nothing left of that search to resume); result.complete "
            "says the bounded dpor tree was finished, but the certification did not finish" + found
        )
        return
    snap = getattr(strat, "snapshot", None)
    if db is not None and snap is not None:
        state = snap(run.frontier_len)
        where = db.save_frontier(
            key, {"strategy": strat.name, "body": key, "executions": run.executions, "state": state}
        )
        if where is not None:
            notes.append(
                f"interrupted after {run.executions} executions; frontier saved to {where}: run again with "
                "resume=True (dmabuf explore --resume) to continue" + found
            )
            return
    why = "no database" if db is None else f"strategy {strat.name!r} has no frontier to resume; dfs and dpor have"
    notes.append(f"interrupted after {run.executions} executions; no frontier saved ({why})" + found)
