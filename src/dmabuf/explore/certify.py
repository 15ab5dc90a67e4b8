"""Certifying a bounded DPOR search that dropped reversals (``engine._Search.certify`` runs the certifying
DFS): the estimate that decides whether that DFS can finish at all, and the certification of a parallel
search, whose work units do not run it (the coordinating process does once they are done). Same rule
everywhere: plain DFS with the same preemption bound, as probes, for at least as many executions as the
search ran; finished, every schedule within the bound ran; failed, that is the failure."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..runtime import activate, deactivate
from ..runtime.controlled import ControlledRuntime
from .database import FailureDatabase
from .failure import ExploreResult
from .replaying import _build_failure, shrink_budget
from .schedule import Entry
from .strategies.base import PathStrategy
from .strategies.dpor import bound_skipped_note
from .strategies.extra import RandomWalk

__all__ = ["SKIP_FACTOR", "WALKS", "certify_parallel", "estimate_bounded_dfs"]

#: random walks of the estimate (they run as probes, and a failing one is the search's failure)
WALKS = 8
#: the certifying DFS is skipped when the estimate exceeds this many times the executions it may run
SKIP_FACTOR = 20


def estimate_bounded_dfs(
    rt: ControlledRuntime,
    body: Callable[[], Any],
    bound: int,
    seed: int = 0,
    on_clean: Callable[[Any, Any], None] | None = None,
) -> tuple[float | None, int, tuple[list[Entry], Any] | None]:
    """Knuth's estimate of the executions plain DFS with preemption bound ``bound`` runs: the mean, over
    :data:`WALKS` random walks within the bound, of the product of the alternatives the bound allows at each
    branch of the walk (all of them, or only the running task once ``bound`` preemptions were made -- DFS's
    own rule). The estimate is unbiased but heavy-tailed: on an uneven tree a few walks usually give far less
    than the truth (the scenarios of ``dmabuf check`` estimate a few hundred where DFS does not finish in
    thousands). So it is only returned when the walks agree (products within a factor of 2 of each other,
    as on a tree of even shape); else the estimate is ``None``. Returns the estimate, the walks run, and the
    first failing walk (its decisions and outcome), if one failed (the walks stop there). ``on_clean(outcome,
    walk)`` sees every clean walk (the caller keeps a deferred lock-order report one carries). ``rt``'s
    decider is restored."""
    walk = RandomWalk(seed, bound)
    saved = rt.decider
    rt.decider = walk
    products: list[float] = []
    try:
        for k in range(WALKS):
            walk.start()
            outcome = rt.run(body)
            branches = walk.decisions()
            if outcome.kind not in ("ok", "pruned"):
                return None, k + 1, ([b.entry() for b in branches], outcome)
            if on_clean is not None:
                on_clean(outcome, walk)
            product = 1.0
            for b in branches:
                if not (b.kind == "t" and b.cur >= 0 and b.pre >= bound):
                    product *= b.n
            products.append(product)
            walk.advance(outcome)
    finally:
        rt.decider = saved
    if max(products) > 2 * min(products):
        return None, WALKS, None
    return sum(products) / WALKS, WALKS, None


def certify_parallel(
    result: ExploreResult,
    rt: ControlledRuntime,
    strat: PathStrategy,
    body: Callable[[], Any],
    bound: int,
    time_budget: float | None,
    t0: float,
    shrink: bool,
    db: FailureDatabase | None,
    key: str,
) -> ExploreResult:
    """Certify (or refute) ``result``, a finished, clean ``workers>1`` DPOR search that dropped reversals for
    ``bound``. Returns the result to report: the same one with the certification in its stats and notes,
    or a failing one."""
    from .engine import _Search  # engine imports this module: _Search is looked up at call time

    stats: dict[str, int] | None = getattr(strat, "stats", None)
    if stats is None:
        return result
    stats["bound_skipped"] = int(result.stats.get("bound_skipped", 0))
    notes: list[str] = []
    activate(rt)
    try:
        run = _Search(rt, strat, body, result.executions, None, time_budget, t0)
        run.complete = True
        run.certify(bound, notes)
        failure = None
        pending = run.failed if run.failed is not None else run.lockdep  # a lock-order report counts too
        if pending is not None:
            entries, outcome = pending
            failure = _build_failure(rt, body, entries, outcome, shrink, shrink_budget(time_budget, t0))
            if db is not None:
                db.save_failure(key, failure)
    finally:
        deactivate(rt)
    result.stats["certify_executions"] = stats.get("certify_executions", 0)
    for k in ("certify_estimate", "certify_skipped"):
        if k in stats:
            result.stats[k] = stats[k]
    result.stats["probe_executions"] = result.stats.get("probe_executions", 0) + run.probes
    result.elapsed = time.perf_counter() - t0
    if failure is not None:
        result.ok = False
        result.complete = False
        result.failure = failure
        return result
    if stats.get("bound_certified"):
        result.stats["bound_certified"] = 1
        skipped = bound_skipped_note(bound)
        result.notes = [n for n in result.notes if n != skipped] + notes
    else:
        result.notes += notes  # why the certifying dfs did not run, if it did not
    return result
