"""``explore`` and ``replay``: run a body under the controlled runtime, many times, and report failures."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgument, UsageError
from ..runtime import activate, deactivate
from ..runtime.controlled import DEFAULT_MAX_STEPS, ControlledRuntime, Outcome
from .failure import ExploreResult, Failure, repeating_suffix
from .schedule import Entry, decode, encode
from .shrink import shrink
from .strategies import DFS, PathStrategy, ReplayStrategy
from .strategies.base import check_positive_int

__all__ = ["STRATEGIES", "explore", "replay"]

#: Strategy names accepted by :func:`explore`.
STRATEGIES = ("dfs", "dpor", "random", "pct")


def _check_body(body: Any) -> None:
    if not callable(body):
        raise InvalidArgument(
            f"explore/replay need a zero-argument callable as body, got {type(body).__name__}: "
            "wrap the code in a function (def body(): ...) and pass the function itself"
        )


def _make_strategy(strategy: str, preemption_bound: int | None, seed: int, **kw: Any) -> PathStrategy:
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise InvalidArgument(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if strategy == "dfs":
        return DFS(preemption_bound)
    from .strategies import extra

    return extra.make(strategy, preemption_bound, seed, **kw)


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
) -> ExploreResult:
    """Run ``body`` once per execution under the controlled runtime and search its interleavings.

    Args:
        body: zero-argument callable; runs as the first task (``main``) of every execution.
        strategy: ``"dpor"`` (default), ``"dfs"``, ``"random"`` or ``"pct"``.
        preemption_bound: at most this many involuntary switches per execution (``None``: unbounded).
        max_executions: stop after this many executions.
        time_budget: stop after this many seconds (checked between executions).
        seed: seed of the random strategies.
        workers: local worker processes (1: in this process).
        max_steps: scheduling steps after which an execution is reported as a livelock.
        depth: PCT bug depth (``pct`` only).
        shrink: minimise the failure before returning it (fewer preemptions, steps, tasks, data values).

    Returns:
        An :class:`ExploreResult`; ``result.failure`` is the first failure found, already replayed with a
        trace and a replay string.
    """
    _check_body(body)
    check_positive_int("preemption_bound", preemption_bound)
    check_positive_int("max_executions", max_executions, minimum=1)
    check_positive_int("max_steps", max_steps, allow_none=False, minimum=1)
    check_positive_int("workers", workers, allow_none=False, minimum=1)
    check_positive_int("seed", seed, allow_none=False, minimum=-(2**63))
    if time_budget is not None and (
        isinstance(time_budget, bool) or not isinstance(time_budget, (int, float)) or time_budget <= 0
    ):
        raise InvalidArgument(
            f"time_budget must be a positive number of seconds or None, got {time_budget!r}"
        )
    strat = _make_strategy(strategy, preemption_bound, seed, depth=depth, max_steps=max_steps)
    if workers != 1:
        raise UsageError(
            "workers > 1 (a search split over processes) is not available yet; run with workers=1"
        )
    rt = ControlledRuntime(strat, max_steps)
    t0 = time.perf_counter()
    executions = 0
    complete = False
    failure: Failure | None = None
    lockdep_finding: tuple[list[Entry], Outcome] | None = None
    activate(rt)
    try:
        while True:
            strat.start()
            outcome = rt.run(body)
            if outcome.kind == "pruned":
                if not strat.advance(outcome):
                    complete = getattr(strat, "exhaustive", True)
                    break
                continue
            executions += 1
            if not outcome.ok:
                failure = _build_failure(rt, body, [b.entry() for b in strat.decisions()], outcome, shrink)
                break
            if lockdep_finding is None and "lockdep" in outcome.extra:
                lockdep_finding = ([b.entry() for b in strat.decisions()], _lockdep_outcome(outcome))
            if not strat.advance(outcome):
                complete = getattr(strat, "exhaustive", True)
                break
            if max_executions is not None and executions >= max_executions:
                break
            if time_budget is not None and time.perf_counter() - t0 > time_budget:
                break
        if failure is None and lockdep_finding is not None:
            failure = _build_failure(rt, body, lockdep_finding[0], lockdep_finding[1], shrink)
    finally:
        deactivate(rt)
    stats = dict(getattr(strat, "stats", {}))
    return ExploreResult(
        ok=failure is None,
        complete=complete and failure is None,
        executions=executions,
        failure=failure,
        strategy=strat.name,
        elapsed=time.perf_counter() - t0,
        stats=stats,
    )


def _lockdep_outcome(o: Outcome) -> Outcome:
    w = o.extra["lockdep"]
    return Outcome("kernel-warning", str(w), None, w)


def _effective(o: Outcome) -> Outcome:
    """Lock-order findings ride on an ``ok`` outcome; for failure reports they are kernel warnings."""
    return _lockdep_outcome(o) if o.ok and "lockdep" in o.extra else o


def _run_replay(
    rt: ControlledRuntime, body: Callable[[], Any], entries: list[Entry]
) -> tuple[Outcome, ReplayStrategy]:
    saved = rt.decider
    rep = ReplayStrategy(entries)
    rt.decider = rep
    try:
        rep.start()
        outcome = rt.run(body, tracing=True)
    finally:
        rt.decider = saved
    return outcome, rep


def _to_failure(rt: ControlledRuntime, outcome: Outcome, rep: ReplayStrategy) -> Failure:
    message = outcome.message
    if outcome.kind == "livelock":
        period, reps = repeating_suffix(rt.trace)
        if period:
            seq = ", ".join(f"{e.task} {e.op} {e.obj}" for e in period)
            message += f" The execution ends repeating [{seq}] ({reps} times)."
    return Failure(
        kind=outcome.kind,
        message=message,
        schedule=encode(rep.recorded),
        trace=list(rt.trace),
        exception=outcome.exception,
        steps=rt.steps,
        preemptions=rt.preemptions,
        task=outcome.task.name if outcome.task is not None else None,
    )


def _build_failure(
    rt: ControlledRuntime,
    body: Callable[[], Any],
    entries: list[Entry],
    outcome: Outcome,
    shrink_it: bool = True,
) -> Failure:
    """Replay the failing decisions with tracing on, check the failure reproduces, shrink it, and turn the
    shrunk execution into a :class:`Failure`."""
    graph = getattr(rt, "lockdep_graph", None)
    try:
        # replay first on a fresh lock-order graph (self-contained); a lock-order finding that needed the
        # graph of earlier executions is replayed on the search's graph instead
        rt.lockdep_graph = None  # type: ignore[attr-defined]
        replayed, rep = _run_replay(rt, body, entries)
        replayed = _effective(replayed)
        self_contained = True
        if graph is not None and replayed.kind != outcome.kind and outcome.kind == "kernel-warning":
            self_contained = False
            rt.lockdep_graph = graph  # type: ignore[attr-defined]
            graph.replaying = True
            try:
                replayed, rep = _run_replay(rt, body, entries)
            finally:
                graph.replaying = False
            replayed = _effective(replayed)
        if outcome.kind == "nondeterminism":
            f = _to_failure(rt, outcome, rep)
            f.schedule = encode(entries)
            return f
        if replayed.kind != outcome.kind:
            msg = (
                f"nondeterminism: an execution failed with {outcome.kind} ({outcome.message}) but replaying the "
                f"same schedule gave {replayed.kind}"
                + (f" ({replayed.message})" if replayed.message else "")
                + ". The body depends on something the runtime does not control (random, wall-clock time, "
                "state kept between executions)."
            )
            f = _to_failure(rt, Outcome("nondeterminism", msg, outcome.task, outcome.exception), rep)
            f.schedule = encode(entries)
            return f
        note = ""
        if shrink_it and self_contained:
            original = list(rep.recorded)
            res = shrink(rt, body, original, replayed, _effective)
            note = res.note()
            # the shrinker's runs overwrote the runtime's trace: replay the final schedule, traced
            rt.lockdep_graph = None  # type: ignore[attr-defined]
            final, final_rep = _run_replay(rt, body, res.entries if res.after < res.before else original)
            final = _effective(final)
            if final.kind == replayed.kind:
                replayed, rep = final, final_rep
            else:  # pragma: no cover - shrinker and strict replay disagree: keep the original
                note = ""
                rt.lockdep_graph = None  # type: ignore[attr-defined]
                replayed, rep = _run_replay(rt, body, original)
                replayed = _effective(replayed)
        f = _to_failure(rt, replayed, rep)
        f.shrink_note = note
        return f
    finally:
        rt.lockdep_graph = graph  # type: ignore[attr-defined]


def replay(body: Callable[[], Any], schedule: str, *, max_steps: int = DEFAULT_MAX_STEPS) -> Failure | None:
    """Run exactly the execution ``schedule`` describes; return its :class:`Failure`, or ``None`` if it
    ran clean. A schedule that no longer fits the body gives a ``nondeterminism`` failure saying where."""
    _check_body(body)
    entries = decode(schedule)
    rt = ControlledRuntime(ReplayStrategy(entries), max_steps)
    activate(rt)
    try:
        outcome, rep = _run_replay(rt, body, entries)
    finally:
        deactivate(rt)
    outcome = _effective(outcome)
    if outcome.ok:
        return None
    return _to_failure(rt, outcome, rep)
