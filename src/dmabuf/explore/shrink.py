"""Shrinking: make a failing schedule simpler while it keeps failing the same way.

A schedule is the list of decisions at the real branches of an execution (:class:`~.schedule.Entry`).
Candidates are replayed *leniently*: past a decision that no longer fits, the default choice (no preemption)
is taken, so deleting or changing one decision yields another valid execution. A candidate is accepted when
it fails with the same kind (and, for exceptions, the same exception type) and is *simpler*: fewer
preemptions, then fewer steps, then fewer tasks, then fewer decisions, then smaller ``choose`` values.

First, *iterative preemption bounding*: plain DFS with preemption bounds 0, 1, ... below the failure's
count looks for the same failure with fewer preemptions (bounded searches are small), within a budget.
Then passes, run to a fixed point within a budget (Hypothesis-style ``ShrinkPass`` records count calls and
successes):

* ``truncate``: keep only the first k decisions (the rest run without preemptions), smallest k first;
* ``drop``: delete one decision (later ones shift one branch earlier);
* ``no_preempt``: replace one decision by the default choice;
* ``lower_data``: make one ``choose`` value smaller.

A lock-order report may need the lock orders that *earlier* executions of the search took (lockdep's
classes persist across executions): its replay string holds those executions first (``training``). Each
candidate is then judged on a fresh lock-order graph taught by the training executions, and two first
passes make those simpler: ``drop_execution`` tries to do without each of them, ``truncate_execution``
cuts each after as few decisions as it can (the rest running without preemptions).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..runtime.controlled import ControlledRuntime, Outcome
from .schedule import Entry
from .strategies.base import ReplayStrategy
from .strategies.dfs import DFS

__all__ = ["ShrinkResult", "shrink"]

#: Replays the shrinker may run for one failure.
MAX_SHRINK_RUNS = 400
#: Seconds the shrinker may spend on one failure.
MAX_SHRINK_SECONDS = 5.0


@dataclass(order=True)
class _Key:
    preemptions: int
    steps: int
    tasks: int
    decisions: int
    data: int


@dataclass
class ShrinkResult:
    """The simplest schedule found, its measures before and after, and per-pass statistics. ``training``:
    the earlier executions the failure still needs (see the module docstring; empty for most failures),
    ``training_before`` how many it needed before shrinking."""

    entries: list[Entry]
    before: _Key
    after: _Key
    runs: int
    passes: dict[str, list[int]] = field(default_factory=dict)  # name -> [calls, successes]
    training: list[list[Entry]] = field(default_factory=list)
    training_before: int = 0
    #: a Ctrl-C (KeyboardInterrupt) stopped it: ``entries`` is the simplest schedule found until then
    interrupted: bool = False

    def note(self) -> str:
        if self.interrupted:
            return "Shrinking was interrupted (Ctrl-C): " + self._note()
        return self._note()

    def _note(self) -> str:
        b, a = self.before, self.after
        dropped = self.training_before - len(self.training)
        cut = self.passes.get("truncate_execution", [0, 0])[1]
        if a == b and not dropped and not cut:
            if self.interrupted:
                return f"not simplified ({self.runs} candidate replays tried)."
            return f"Shrinking: already minimal ({self.runs} candidate replays tried)."
        what = (
            f"Shrunk from {b.steps} steps / {b.preemptions} preemptions / {b.tasks} tasks to {a.steps} steps / "
            f"{a.preemptions} preemptions / {a.tasks} tasks"
        )
        if dropped:
            what += (
                f"; it needs {len(self.training)} of the {self.training_before} earlier executions it was "
                "found with"
            )
        if cut:
            what += f"; {cut} earlier execution{'s' if cut > 1 else ''} cut to fewer decisions"
        return f"{what} in {self.runs} replays."


def _signature(o: Outcome) -> tuple[str, str]:
    exc = type(o.exception).__name__ if o.exception is not None else ""
    return (o.kind, exc)


def _prepare(
    rt: ControlledRuntime, body: Callable[[], Any], training: list[list[Entry]]
) -> list[list[Entry]]:
    """Give the next execution its lock-order graph: none (each candidate is judged on its own) or, with
    ``training``, a fresh one taught by those executions (replayed leniently, their outcomes ignored).
    Returns what each training execution recorded (the same lists, unless one was cut short)."""
    if not training:
        rt.lockdep_graph = None  # type: ignore[attr-defined]
        return []
    from ..lockdep import OrderGraph

    graph = OrderGraph()
    rt.lockdep_graph = graph  # type: ignore[attr-defined]
    saved = rt.decider
    recorded = []
    try:
        for run in training:
            rep = ReplayStrategy(run, lenient=True)
            rt.decider = rep
            rep.start()
            rt.run(body)
            recorded.append(list(rep.recorded))
    finally:
        rt.decider = saved
    graph.replaying = True  # as _replay_runs: the judged execution reports cycles through taught edges
    return recorded


def shrink(
    rt: ControlledRuntime,
    body: Callable[[], Any],
    entries: list[Entry],
    outcome: Outcome,
    effective: Callable[[Outcome], Outcome],
    max_runs: int = MAX_SHRINK_RUNS,
    max_seconds: float = MAX_SHRINK_SECONDS,
    training: list[list[Entry]] | None = None,
) -> ShrinkResult:
    """Shrink ``entries`` (which make ``body`` fail with ``outcome``) on runtime ``rt``; ``training``: the
    earlier executions a lock-order report needs (replayed before each candidate, see the module
    docstring). A Ctrl-C (KeyboardInterrupt) stops it: the simplest schedule found so far is returned, with
    ``interrupted`` set."""
    target = _signature(outcome)
    saved = rt.decider
    t0 = time.perf_counter()
    runs = 0
    passes: dict[str, list[int]] = {}
    taught = list(training or [])
    good_taught = taught  # the training executions of ``best`` (``taught`` may be a candidate being tried)

    taught_as_run: list[list[Entry]] = []
    k0 = _Key(10**9, 10**9, 10**9, len(entries), 0)
    best_key, best, before = k0, entries, k0

    def run(cand: list[Entry]) -> tuple[_Key, list[Entry]] | None:
        nonlocal runs, taught_as_run
        runs += 1
        taught_as_run = _prepare(rt, body, taught)  # a fresh graph for every candidate
        rep = ReplayStrategy(cand, lenient=True)
        rt.decider = rep
        rep.start()
        o = effective(rt.run(body))
        if _signature(o) != target:
            return None
        rec = rep.recorded
        key = _Key(
            rt.preemptions, rt.steps, len(rt.tasks()), len(rec), sum(e.value for e in rec if e.kind == "c")
        )
        return key, rec

    try:
        first = run(entries)
        if first is None:  # should not happen (the caller just reproduced it); keep the original
            return ShrinkResult(entries, k0, k0, runs)
        best_key, best = first
        before = best_key

        def budget() -> bool:
            return runs < max_runs and time.perf_counter() - t0 < max_seconds

        # phase 0: the earlier executions a lock-order report needs, fewer if it can do without some
        stat = passes.setdefault("drop_execution", [0, 0])
        for i in range(len(taught) - 1, -1, -1):
            if not budget():
                break
            kept = taught
            taught = kept[:i] + kept[i + 1 :]
            stat[0] += 1
            res = run(best)
            if res is None:
                taught = kept
            else:
                best_key, best = res
                stat[1] += 1
            good_taught = taught
        # ... and each of them as short as it can be (cut after k decisions, the rest without preemptions)
        stat = passes.setdefault("truncate_execution", [0, 0])
        for i in range(len(taught)):
            for cut in range(len(taught[i])):
                if not budget():
                    break
                kept = taught
                taught = [*kept[:i], kept[i][:cut], *kept[i + 1 :]]
                stat[0] += 1
                res = run(best)
                if res is None:
                    taught = kept
                    continue
                best_key, best = res
                if taught_as_run[i] == kept[i]:  # the cut one ran as before: it was already that simple
                    taught = kept
                else:
                    taught = taught_as_run  # what the cut executions ran, in full
                    stat[1] += 1
                good_taught = taught
                break
            good_taught = taught

        # phase 1: the same failure with fewer preemptions, by bounded DFS
        stat = passes.setdefault("preemption_bounding", [0, 0])
        for bound in range(best_key.preemptions):
            found = _bounded_search(
                rt, body, bound, target, effective, max_runs // 4, t0 + max_seconds / 2, taught
            )
            runs += found[1]
            stat[0] += found[1]
            if found[0] is not None:
                res = run(found[0])
                if res is not None and res[0] < best_key:
                    best_key, best = res
                    stat[1] += 1
                break

        improved = True
        while improved and budget():
            improved = False
            for name, gen in (
                ("truncate", _truncations),
                ("drop", _drops),
                ("no_preempt", _defaults),
                ("lower_data", _lower_data),
            ):
                stat = passes.setdefault(name, [0, 0])
                for cand in gen(best):
                    if not budget():
                        break
                    stat[0] += 1
                    res = run(cand)
                    if res is not None and res[0] < best_key:
                        best_key, best = res
                        stat[1] += 1
                        improved = True
                        break  # restart this generator family on the new best at the next round
        return ShrinkResult(best, before, best_key, runs, passes, taught, len(training or []))
    except KeyboardInterrupt:
        try:
            rt.abandon()  # the candidate's tasks (the runtime runs again: the caller replays the result)
        except Exception:
            pass
        if best_key is k0:  # interrupted in the first replay: nothing measured, keep the schedule as found
            return ShrinkResult(entries, k0, k0, runs, passes, list(training or []), len(training or []), True)
        return ShrinkResult(best, before, best_key, runs, passes, good_taught, len(training or []), True)
    finally:
        rt.decider = saved


def _bounded_search(
    rt: ControlledRuntime,
    body: Callable[[], Any],
    bound: int,
    target: tuple[str, str],
    effective: Callable[[Outcome], Outcome],
    max_runs: int,
    deadline: float,
    training: list[list[Entry]],
) -> tuple[list[Entry] | None, int]:
    """DFS with preemption bound ``bound`` until a failure with signature ``target``; (entries, runs)."""
    strat = DFS(bound)
    runs = 0
    while runs < max_runs and time.perf_counter() < deadline:
        _prepare(rt, body, training)
        rt.decider = strat
        strat.start()
        o = effective(rt.run(body))
        runs += 1
        if _signature(o) == target:
            return [b.entry() for b in strat.decisions()], runs
        if not strat.advance(o):
            break
    return None, runs


def _truncations(entries: list[Entry]) -> Iterator[list[Entry]]:
    for k in range(len(entries)):
        yield entries[:k]


def _drops(entries: list[Entry]) -> Iterator[list[Entry]]:
    for i in range(len(entries) - 1, -1, -1):
        yield entries[:i] + entries[i + 1 :]


def _defaults(entries: list[Entry]) -> Iterator[list[Entry]]:
    # a scheduling entry naming a task id that cannot be chosen makes the lenient replay take the default
    for i in range(len(entries) - 1, -1, -1):
        if entries[i].kind == "t":
            yield [*entries[:i], Entry("t", -1), *entries[i + 1 :]]


def _lower_data(entries: list[Entry]) -> Iterator[list[Entry]]:
    for i, e in enumerate(entries):
        if e.kind == "c" and e.value > 0:
            for v in range(e.value):
                yield [*entries[:i], Entry("c", v, e.n), *entries[i + 1 :]]
