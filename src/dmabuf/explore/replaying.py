"""Turning a failing schedule into a :class:`~dmabuf.explore.failure.Failure`: replay it traced, check it
reproduces, shrink it (within what ``time_budget`` left), and :func:`replay` for users. The search that finds
the schedules is :mod:`.engine`."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgument
from ..runtime import activate, deactivate
from ..runtime.controlled import DEFAULT_MAX_STEPS, ControlledRuntime, Outcome
from .failure import Failure, repeating_suffix
from .schedule import Entry, decode_runs, encode, encode_runs
from .shrink import MAX_SHRINK_SECONDS, shrink
from .strategies import ReplayStrategy
from .strategies.base import check_positive_int

__all__ = ["build_failure_or_keep", "lockdep_outcome_of_runs", "lockdep_runs", "replay", "shrink_budget", "track_lock_orders"]


def _check_body(body: Any) -> None:
    if not callable(body):
        raise InvalidArgument(
            f"explore/replay need a zero-argument callable as body, got {type(body).__name__}: "
            "wrap the code in a function (def body(): ...) and pass the function itself"
        )
    try:
        sig = inspect.signature(body)
    except (TypeError, ValueError):  # a builtin or an extension without a readable signature: accepted
        return
    required = [
        p.name
        for p in sig.parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    if required:
        raise InvalidArgument(
            f"explore needs a zero-argument callable as body (it calls body() once per execution), but "
            f"{getattr(body, '__qualname__', type(body).__name__)}{sig} requires "
            f"{', '.join(repr(n) for n in required)}: bind them first (functools.partial(f, ...) or "
            "lambda: f(...))"
        )


def _decisions_so_far(decider: Any) -> list[Entry]:
    """The decisions the running execution took so far, as replay entries (any strategy of this package)."""
    recorded = getattr(decider, "recorded", None)
    if recorded is not None:  # ReplayStrategy
        return list(recorded)
    path = getattr(decider, "path", None)
    if path is not None:  # PathStrategy (dfs, random, pct): path[:pos] is this execution's
        return [b.entry() for b in path[: decider.pos]]
    if hasattr(decider, "nodes"):  # DPOR: its decisions() (the real branches so far) has no side effects
        return [nd.entry() for nd in decider.decisions()]
    return []


def track_lock_orders(rt: ControlledRuntime) -> None:
    """Let lockdep note, for each lock-order edge it learns, the execution and the decisions that led
    there (``OrderGraph.origin_hook``), so that a report through edges of earlier executions can be
    replayed with them. The execution's identity is its labeler, which ``run`` makes anew each time."""
    rt.lockdep_origin = lambda: (rt.labeler, _decisions_so_far(rt.decider))  # type: ignore[attr-defined]


def _training_runs(warning: object) -> list[list[Entry]]:
    """The earlier executions a lock-order report (a ``LockdepWarning``) needs: its ``origins``."""
    origins = getattr(warning, "origins", None)
    if not origins:
        return []
    return [list(o) for o in origins if isinstance(o, list)]


def _replay_runs(
    rt: ControlledRuntime, body: Callable[[], Any], runs: list[list[Entry]]
) -> tuple[Outcome, ReplayStrategy, list[list[Entry]]]:
    """Replay the executions of a replay string (:func:`.schedule.decode_runs`). One is replayed as it is.
    Of several, on one fresh lock-order graph, the runs before the last only teach lockdep their lock
    orders (their outcomes do not count, unless they diverge); the last is the execution replayed. Returns
    its outcome and strategy, and what each earlier run recorded."""
    from ..lockdep import OrderGraph

    if len(runs) == 1:
        outcome, rep = _run_replay(rt, body, runs[0])
        return outcome, rep, []
    graph = OrderGraph(getattr(rt, "lockdep_origin", None))
    rt.lockdep_graph = graph  # type: ignore[attr-defined]
    trained: list[list[Entry]] = []
    for k, run in enumerate(runs[:-1]):
        outcome, rep = _run_replay(rt, body, run)
        if outcome.kind == "nondeterminism":
            where = f"execution {k + 1} of the {len(runs)} of the replay string (one replayed for its lock orders)"
            outcome.message = f"{where}: {outcome.message}"
            return outcome, rep, trained
        trained.append(list(rep.recorded))
    graph.replaying = True  # the last run reports cycles through the edges the others added
    try:
        outcome, rep = _run_replay(rt, body, runs[-1])
    finally:
        graph.replaying = False
    return outcome, rep, trained


def lockdep_runs(o: Outcome, strat: Any) -> list[list[list[Any]]]:
    """A deferred lock-order report of the execution that just ran, for a worker process to send: the
    earlier executions it needs (``LockdepWarning.origins``), then this one, each as a list of entries."""
    earlier = _training_runs(o.extra.get("lockdep"))
    return [*[[list(e) for e in run] for run in earlier], [list(b.entry()) for b in strat.decisions()]]


def lockdep_outcome_of_runs(runs: list[list[Entry]]) -> Outcome:
    """The outcome a coordinator rebuilds from :func:`lockdep_runs`: a kernel warning whose ``origins`` are
    the runs before the last (for :func:`_build_failure`)."""
    from ..lockdep import LockdepWarning

    w = LockdepWarning("lock-order report of a worker process", "lockdep: lock order inversion")
    w.origins = [list(run) for run in runs[:-1]]
    return Outcome("kernel-warning", "", None, w)


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
        trained: list[list[Entry]] = []
        training = _training_runs(outcome.exception) if outcome.kind == "kernel-warning" else []
        if replayed.kind != outcome.kind and training:
            # a lock-order report through edges that earlier executions added: replay those first
            again, again_rep, again_trained = _replay_runs(rt, body, [*training, entries])
            again = _effective(again)
            if again.kind == outcome.kind and len(again_trained) == len(training):
                replayed, rep, trained = again, again_rep, again_trained
        if (
            graph is not None
            and replayed.kind != outcome.kind
            and outcome.kind == "kernel-warning"
            and not trained
        ):
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
            # a lock-order report through edges of earlier executions is shrunk with them: each candidate
            # is judged after those executions taught a fresh graph (and the shrinker tries without each)
            original = list(rep.recorded)
            res = shrink(
                rt, body, original, replayed, _effective, max_seconds=shrink_seconds, training=trained
            )
            note = res.note()
            if shrink_seconds < MAX_SHRINK_SECONDS:
                note += f" (shrinking had {shrink_seconds:.1f} s: what time_budget left)"
            # the shrinker's runs overwrote the runtime's trace: replay the final schedule, traced
            rt.lockdep_graph = None  # type: ignore[attr-defined]
            # shrunk: the last run, or the earlier ones (fewer of them, or cut shorter)
            shrunk = res.after < res.before or res.training != trained
            final_runs = [*res.training, res.entries] if shrunk else [*trained, original]
            final, final_rep, final_trained = _replay_runs(rt, body, final_runs)
            final = _effective(final)
            if final.kind == replayed.kind and len(final_trained) == len(final_runs) - 1:
                replayed, rep, trained = final, final_rep, final_trained
            else:  # pragma: no cover - shrinker and strict replay disagree: keep the original
                note = ""
                rt.lockdep_graph = None  # type: ignore[attr-defined]
                replayed, rep, trained = _replay_runs(rt, body, [*trained, original])
                replayed = _effective(replayed)
        if trained:
            n = len(trained)
            note = (
                f"Replays with {n} earlier execution{'s' if n > 1 else ''} of the search first (its replay "
                "string holds them: lock-order classes persist across executions, as in lockdep, and this "
                "report contradicts the lock orders they took). " + note
            ).strip()
        if not self_contained:
            note = (
                "Not self-contained: the lock order this execution contradicts was recorded by an earlier "
                "execution of the same search (lock-order classes persist across executions, as in lockdep), "
                "so dmabuf.replay(body, schedule) alone runs it without the warning, and it was not shrunk. "
                "To replay it, make one execution take both orders."
            )
        f = _to_failure(rt, replayed, rep)
        if trained:
            f.schedule = encode_runs([*trained, list(rep.recorded)])
        f.shrink_note = note
        return f
    finally:
        rt.lockdep_graph = graph  # type: ignore[attr-defined]


def build_failure_or_keep(
    rt: ControlledRuntime,
    body: Callable[[], Any],
    entries: list[Entry],
    outcome: Outcome,
    shrink_it: bool = True,
    shrink_seconds: float = MAX_SHRINK_SECONDS,
) -> tuple[Failure, bool]:
    """:func:`_build_failure`, but a Ctrl-C (KeyboardInterrupt) does not lose the failure: interrupted while
    shrinking, the shrinker keeps the simplest schedule so far (its note says it was interrupted); interrupted
    before or after, the failure is returned as found, without a trace. Returns the failure and whether it
    was interrupted."""
    try:
        f = _build_failure(rt, body, entries, outcome, shrink_it, shrink_seconds)
        return f, "interrupted" in f.shrink_note and "Ctrl-C" in f.shrink_note
    except KeyboardInterrupt:
        try:
            rt.abandon()
        except Exception:
            pass
    training = _training_runs(outcome.exception) if outcome.kind == "kernel-warning" else []
    message = outcome.message or f"{outcome.kind} found by the search"
    f = Failure(
        kind=outcome.kind,
        message=message,
        schedule=encode_runs([*training, entries]) if training else encode(entries),
        exception=outcome.exception,
        task=outcome.task.name if outcome.task is not None else None,
    )
    f.shrink_note = (
        "Interrupted (Ctrl-C) while this failure was replayed and shrunk: returned as the search found it, "
        "not shrunk and without a trace; dmabuf.replay(body, schedule) runs it again with one."
    )
    return f, True


def replay(body: Callable[[], Any], schedule: str, *, max_steps: int = DEFAULT_MAX_STEPS) -> Failure | None:
    """Run exactly the execution ``schedule`` describes; return its :class:`Failure`, or ``None`` if it
    ran clean. A schedule that no longer fits the body gives a ``nondeterminism`` failure saying where."""
    _check_body(body)
    check_positive_int("max_steps", max_steps, allow_none=False, minimum=1)
    runs = decode_runs(schedule)
    rt = ControlledRuntime(ReplayStrategy(runs[-1]), max_steps)
    track_lock_orders(rt)
    activate(rt)
    try:
        outcome, rep, trained = _replay_runs(rt, body, runs)
    finally:
        deactivate(rt)
    outcome = _effective(outcome)
    if outcome.ok:
        return None
    f = _to_failure(rt, outcome, rep)
    if len(runs) > 1:
        # all runs replayed: the string of what ran; one diverged: the string given, as it was
        f.schedule = encode_runs([*trained, list(rep.recorded)]) if len(trained) == len(runs) - 1 else schedule
    return f
