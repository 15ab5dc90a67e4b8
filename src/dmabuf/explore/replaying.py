"""Turning a failing schedule into a :class:`~dmabuf.explore.failure.Failure`: replay it traced, check it
reproduces, shrink it (within what ``time_budget`` left), and :func:`replay` for users. The search that finds
the schedules is :mod:`.engine`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgument
from ..runtime import activate, deactivate
from ..runtime.controlled import DEFAULT_MAX_STEPS, ControlledRuntime, Outcome
from .failure import Failure, repeating_suffix
from .schedule import Entry, decode, encode
from .shrink import MAX_SHRINK_SECONDS, shrink
from .strategies import ReplayStrategy
from .strategies.base import check_positive_int

__all__ = ["replay", "shrink_budget"]


def _check_body(body: Any) -> None:
    if not callable(body):
        raise InvalidArgument(
            f"explore/replay need a zero-argument callable as body, got {type(body).__name__}: "
            "wrap the code in a function (def body(): ...) and pass the function itself"
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
    if outcome.kind != "nondeterminism" and rep.pos < len(entries):
        # the execution ended before the schedule did: not the execution the schedule describes
        left = len(entries) - rep.pos
        outcome = Outcome(
            "nondeterminism",
            f"nondeterminism: replay diverged at step {rt.steps + 1} (branch {rep.pos + 1}): the execution "
            f"ended ({outcome.kind}) but the schedule still has {left} decision{'s' if left > 1 else ''}, "
            f"starting with {entries[rep.pos].describe()}. The program changed since the schedule was "
            "recorded, or it depends on something the runtime does not control (random, wall-clock time, "
            "state kept between executions).",
            outcome.task,
            outcome.exception,
        )
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


def shrink_budget(time_budget: float | None, t0: float) -> float:
    """Seconds the shrinker gets: its own limit, or what ``time_budget`` left if less (at least half a
    second, so that a failure found at the deadline is still minimised a little)."""
    if time_budget is None:
        return MAX_SHRINK_SECONDS
    return min(MAX_SHRINK_SECONDS, max(0.5, time_budget - (time.perf_counter() - t0)))


def _build_failure(
    rt: ControlledRuntime,
    body: Callable[[], Any],
    entries: list[Entry],
    outcome: Outcome,
    shrink_it: bool = True,
    shrink_seconds: float = MAX_SHRINK_SECONDS,
) -> Failure:
    """Replay the failing decisions with tracing on, check the failure reproduces, shrink it (for at most
    ``shrink_seconds``), and turn the shrunk execution into a :class:`Failure`."""
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
            if not outcome.message:  # a worker process (workers=N) reports only the kind
                outcome = Outcome(
                    "nondeterminism",
                    replayed.message
                    if replayed.kind == "nondeterminism"
                    else "nondeterminism: a worker process ran this schedule twice and got two different "
                    "executions. The body depends on something the runtime does not control (random, "
                    "wall-clock time, state kept between executions): derive it from dmabuf.choose() or "
                    "create it inside the body.",
                    outcome.task,
                    outcome.exception,
                )
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
            res = shrink(rt, body, original, replayed, _effective, max_seconds=shrink_seconds)
            note = res.note()
            if shrink_seconds < MAX_SHRINK_SECONDS:
                note += f" (shrinking had {shrink_seconds:.1f} s: what time_budget left)"
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
        if not self_contained:
            note = (
                "Not self-contained: the lock order this execution contradicts was recorded by an earlier "
                "execution of the same search (lock-order classes persist across executions, as in lockdep), "
                "so dmabuf.replay(body, schedule) alone runs it without the warning, and it was not shrunk. "
                "To replay it, make one execution take both orders."
            )
        f = _to_failure(rt, replayed, rep)
        f.shrink_note = note
        return f
    finally:
        rt.lockdep_graph = graph  # type: ignore[attr-defined]


def replay(body: Callable[[], Any], schedule: str, *, max_steps: int = DEFAULT_MAX_STEPS) -> Failure | None:
    """Run exactly the execution ``schedule`` describes; return its :class:`Failure`, or ``None`` if it
    ran clean. A schedule that no longer fits the body gives a ``nondeterminism`` failure saying where."""
    _check_body(body)
    check_positive_int("max_steps", max_steps, allow_none=False, minimum=1)
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
