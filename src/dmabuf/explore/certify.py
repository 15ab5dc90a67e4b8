"""Certifying a parallel bounded DPOR search: the work units of ``workers=N`` do not run the certifying DFS
that a one-process search runs (see ``engine._Search.certify``), so the coordinating process runs it once the
units are done. Same rule: plain DFS with the same preemption bound, as probes, for at least as many
executions as the search ran; finished, every schedule within the bound ran; failed, that is the failure."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..runtime import activate, deactivate
from ..runtime.controlled import ControlledRuntime
from .database import FailureDatabase
from .failure import ExploreResult
from .replaying import _build_failure, shrink_budget
from .strategies.base import PathStrategy
from .strategies.dpor import bound_skipped_note

__all__ = ["certify_parallel"]


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
    from .engine import _Search  # engine imports this module lazily: no cycle at import time

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
        if run.failed is not None:
            entries, outcome = run.failed
            failure = _build_failure(rt, body, entries, outcome, shrink, shrink_budget(time_budget, t0))
            if db is not None and failure.kind != "nondeterminism":
                db.save(key, failure.kind, failure.schedule)
    finally:
        deactivate(rt)
    ran = stats.get("certify_executions", 0)
    result.stats["certify_executions"] = ran
    result.stats["probe_executions"] = result.stats.get("probe_executions", 0) + ran
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
    return result
