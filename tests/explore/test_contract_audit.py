"""Black-box audit of the explorer's public contract (shared/reference/explorer-api.md and docs/explorer.md).

Each test covers a promise of the contract that no other test pinned down; its docstring quotes the line.
Bodies are tiny and budgets small: the whole file runs in a few seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest

import dmabuf
from dmabuf.errors import InvalidArgument
from dmabuf.explore import database
from dmabuf.kernel import Mutex, mutex_lock, mutex_unlock
from dmabuf.runtime import READ, WRITE, rt


class Box:
    def __init__(self) -> None:
        self.v = 0


def lost_update_after_choice() -> None:
    """A data choice with 20 values (so the exhaustive searches run several executions and the default
    search probes), then a lost update that needs exactly one preemption."""
    dmabuf.choose(20)
    box = Box()

    def inc() -> None:
        rt().point("read", box, READ)
        x = box.v
        rt().point("write", box, WRITE)
        box.v = x + 1

    a, b = dmabuf.spawn(inc, name="a"), dmabuf.spawn(inc, name="b")
    a.join()
    b.join()
    assert box.v == 2, "lost update"


def _spawn_and_join(w: Any, n: int) -> None:
    """Run ``w(k)`` for k in 0..n-1 as n tasks and join them all."""
    ts = [dmabuf.spawn(w, k) for k in range(n)]
    for t in ts:
        t.join()


def many_interleavings() -> None:
    """3 tasks x 6 writes to one object: 17,153,136 interleavings for DFS, 3 * 10^4+ DPOR traces."""

    def w() -> None:
        for _ in range(6):
            rt().point("op", "x", WRITE)

    ts = [dmabuf.spawn(w) for _ in range(3)]
    for t in ts:
        t.join()


def _take(first: Mutex, second: Mutex) -> None:
    mutex_lock(first)
    mutex_lock(second)
    mutex_unlock(second)
    mutex_unlock(first)


def abba_serialised() -> None:
    """Opposite lock orders in two tasks that never overlap: no deadlock, but a lock-order inversion."""
    a, b = Mutex(name="lock_A"), Mutex(name="lock_B")
    t1 = dmabuf.spawn(_take, a, b, name="ab")
    t1.join()
    t2 = dmabuf.spawn(_take, b, a, name="ba")
    t2.join()


# ------------------------------------------------------------------------------------ preemption_bound
@pytest.mark.parametrize("strategy", ["dfs", "dpor", "random"])
def test_preemption_bound_is_honoured_by_every_strategy_that_accepts_it(strategy: str) -> None:
    """explorer-api.md: ``preemption_bound=None,  # int or None (unbounded)`` and ``failure.preemptions  #
    int: involuntary task switches in it``: a search with ``preemption_bound=0`` never reports an execution
    with a preemption. (The lost update needs one, so every strategy must come back clean.) Before the fix,
    ``random`` ignored the bound and the default ``dpor`` search's random probes broke it."""
    kw: dict[str, Any] = {"max_executions": 300} if strategy == "random" else {}
    res = dmabuf.explore(lost_update_after_choice, strategy=strategy, preemption_bound=0, database=None, **kw)
    assert res.failure is None, str(res.failure)
    assert res.ok
    with_one = dmabuf.explore(
        lost_update_after_choice, strategy=strategy, preemption_bound=1, database=None, seed=1, **kw
    )
    assert with_one.failure is not None and with_one.failure.preemptions == 1


# ------------------------------------------------------------------------------------------ time_budget
@pytest.mark.parametrize("strategy", ["dfs", "dpor"])
def test_time_budget_stops_an_exhaustive_search_incomplete(strategy: str) -> None:
    """explorer-api.md: ``time_budget=None,  # seconds (float) or None`` and ``result.complete  # every
    execution within the bounds was covered``: a budget far shorter than the search stops it, ok (nothing
    failed) but not complete."""
    t0 = time.perf_counter()
    res = dmabuf.explore(many_interleavings, strategy=strategy, time_budget=0.2, database=None)
    took = time.perf_counter() - t0
    assert res.ok and not res.complete
    assert res.executions >= 1
    assert took < 3.0, took


@pytest.mark.parametrize("strategy", ["dfs", "random"])
def test_time_budget_stops_a_parallel_search(strategy: str) -> None:
    """explorer-api.md: ``time_budget`` (seconds) with ``workers=1  # local worker processes``: the budget
    holds with workers too. Before the fix a DFS work unit ran its whole subtree (over a minute here)
    before the coordinator looked at the clock."""
    t0 = time.perf_counter()
    res = dmabuf.explore(many_interleavings, strategy=strategy, time_budget=0.3, workers=2, database=None)
    took = time.perf_counter() - t0
    assert res.ok and not res.complete
    assert took < 5.0, took


@pytest.mark.parametrize("bad", [float("nan"), 0, -0.5, True, "1"])
def test_time_budget_must_be_a_positive_number(bad: Any) -> None:
    """docs/explorer.md (bad input gets typed errors) and explorer-api.md ``time_budget  # seconds (float)
    or None``: NaN is not a number of seconds (no elapsed time ever exceeds it, so a ``random`` search given
    only ``time_budget=nan`` would never stop)."""
    with pytest.raises(InvalidArgument, match="time_budget must be a positive number"):
        dmabuf.explore(lost_update_after_choice, strategy="random", time_budget=bad, database=None)


# ------------------------------------------------------------------------------------------- bad input
def test_seed_error_does_not_offer_none() -> None:
    """explorer-api.md ``seed=0,  # for "random" and "pct"``: seed is an int; the error for ``seed=None``
    must not tell the user that None is allowed (it said "must be an int or None")."""
    with pytest.raises(InvalidArgument) as ei:
        dmabuf.explore(lost_update_after_choice, seed=None, database=None)  # type: ignore[arg-type]
    assert "seed must be an int" in str(ei.value)
    assert "or None" not in str(ei.value)


def test_database_of_the_wrong_type_is_a_typed_error() -> None:
    """docs/explorer.md: ``database=<dir>; database=None for none``: anything else is bad input and gets an
    InvalidArgument naming what to pass (it was a bare TypeError from os.fspath)."""
    with pytest.raises(InvalidArgument, match="database must be"):
        dmabuf.explore(lost_update_after_choice, database=42)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -3, 1.5, None])
def test_replay_rejects_a_bad_max_steps(bad: Any) -> None:
    """explore rejects ``max_steps=0`` (test_bad_input.py); ``dmabuf.replay(body, schedule)`` takes the same
    keyword and must reject it the same way rather than report a bogus livelock."""
    with pytest.raises(InvalidArgument, match="max_steps must be"):
        dmabuf.replay(lost_update_after_choice, "dmabuf-s1:", max_steps=bad)


# ---------------------------------------------------------------------------------------------- replay
def test_replay_of_a_body_that_stops_early_is_nondeterminism() -> None:
    """explorer-api.md: "Replays are deterministic: the same ``body`` and ``schedule`` give the same trace,
    or a ``nondeterminism`` failure that says where they diverged." A body that depends on state kept
    between calls and ends before the schedule does must not replay as a clean run (it returned None)."""
    state = {"short": False}

    def body() -> None:
        box = Box()

        def inc() -> None:
            rt().point("read", box, READ)
            x = box.v
            rt().point("write", box, WRITE)
            box.v = x + 1

        ts = [dmabuf.spawn(inc, name=f"i{k}") for k in range(1 if state["short"] else 2)]
        for t in ts:
            t.join()
        assert box.v == len(ts), "lost update"

    f = dmabuf.explore(body, database=None, shrink=False).failure
    assert f is not None and f.kind == "exception"
    state["short"] = True  # the state the body depends on changed between the search and the replay
    g = dmabuf.replay(body, f.schedule)
    assert g is not None, "a different (shorter) execution replayed as clean"
    assert g.kind == "nondeterminism"
    assert "diverged at step" in g.message


def test_replay_reproduces_data_choices_and_names_a_changed_one() -> None:
    """explorer-api.md: ``dmabuf.choose(n)  # a recorded data choice (explored like a schedule choice)``
    and "Replays are deterministic ... or a nondeterminism failure that says where they diverged": the
    replay string records the value, and a body that now chooses over a different range diverges there."""
    seen: list[int] = []

    def body() -> None:
        v = dmabuf.choose(4)
        seen.append(v)
        assert v != 2, f"value {v}"

    f = dmabuf.explore(body, database=None).failure
    assert f is not None and f.kind == "exception"
    seen.clear()
    again = dmabuf.replay(body, f.schedule)
    assert again is not None and again.kind == "exception" and seen == [2]

    def changed() -> None:
        dmabuf.choose(5)

    g = dmabuf.replay(changed, f.schedule)
    assert g is not None and g.kind == "nondeterminism"
    assert "diverged at step" in g.message and "choose(" in g.message


# ---------------------------------------------------------------------------------------------- choose
def test_dpor_explores_every_choice_value_times_every_trace() -> None:
    """explorer-api.md: ``dmabuf.choose(n)  # ... (explored like a schedule choice)``, under the default
    strategy (DPOR; other tests check DFS only): 3 values x 2 orders of two conflicting writes."""
    seen: set[tuple[int, int]] = set()

    def body() -> None:
        v = dmabuf.choose(3)
        box = Box()

        def w(k: int) -> None:
            rt().point("write", box, WRITE)
            box.v = k

        a, b = dmabuf.spawn(w, 1), dmabuf.spawn(w, 2)
        a.join()
        b.join()
        seen.add((v, box.v))

    res = dmabuf.explore(body, database=None, probes=False)
    assert res.ok and res.complete
    assert res.executions == 6
    assert seen == {(v, last) for v in range(3) for last in (1, 2)}


def test_dpor_max_executions_is_exact_and_incomplete() -> None:
    """explorer-api.md: ``max_executions=None,  # int or None`` and ``result.executions  # int: executions
    run``: the default search (DPOR, with probes that are not counted) stops after exactly that many."""
    res = dmabuf.explore(many_interleavings, max_executions=7, database=None)
    assert res.executions == 7
    assert res.ok and not res.complete


# ------------------------------------------------------------------------------------- failure fields
def _failure(body: Any, **kw: Any) -> dmabuf.Failure:
    f = dmabuf.explore(body, database=None, **kw).failure
    assert f is not None
    return f


def _deadlock() -> None:
    a, b = Mutex(name="A"), Mutex(name="B")
    x = dmabuf.spawn(_take, a, b, name="t1")
    y = dmabuf.spawn(_take, b, a, name="t2")
    x.join()
    y.join()


def _leak() -> None:
    m = Mutex(name="M")
    mutex_lock(m)


def _livelock() -> None:
    while True:
        rt().point("spin", "flag", READ)


def _raises() -> None:
    t = dmabuf.spawn(lambda: {}["missing"], name="bad")
    t.join()


@pytest.mark.parametrize(
    "body, kind, kw",
    [
        (_deadlock, "deadlock", {}),
        (_leak, "leak", {}),
        (_livelock, "livelock", {"max_steps": 50}),
        (_raises, "exception", {}),
        (abba_serialised, "kernel-warning", {}),
    ],
)
def test_failure_fields_per_kind(body: Any, kind: str, kw: dict[str, Any]) -> None:
    """explorer-api.md: ``failure.kind``; ``failure.message  # one paragraph a person can act on``;
    ``failure.exception  # the exception raised in a task, if any``; ``failure.schedule  # str: a compact,
    versioned replay string``; and "Replays are deterministic: the same body and schedule give the same
    trace" -- for each failure kind the explorer can produce from a deterministic body."""
    f = _failure(body, **kw)
    assert f.kind == kind
    assert f.message.strip() and "\n\n" not in f.message.strip()
    if kind == "exception":
        assert isinstance(f.exception, KeyError) and f.task == "bad"
    elif kind == "kernel-warning":
        assert f.exception is not None
    else:
        assert f.exception is None, f.exception
    assert isinstance(f.schedule, str) and f.schedule.startswith("dmabuf-")
    assert isinstance(f.steps, int) and isinstance(f.preemptions, int)
    again = dmabuf.replay(body, f.schedule, **kw)
    assert again is not None and again.kind == kind
    assert again.trace == f.trace and again.steps == f.steps and again.preemptions == f.preemptions


# -------------------------------------------------------------------------------------------- workers
@pytest.mark.parametrize("strategy", ["dfs", "dpor"])
def test_workers_report_a_lock_order_inversion(strategy: str) -> None:
    """explorer-api.md: "a kernel WARN/BUG condition ... [is a failure] of the kinds named above" and
    docs/explorer.md: lockdep-lite lock-order reports are kernel-warnings, deferred until no real deadlock
    is found. With ``workers=2`` the report was dropped and the search came back ok."""
    one = dmabuf.explore(abba_serialised, strategy=strategy, database=None)
    assert one.failure is not None and one.failure.kind == "kernel-warning"
    two = dmabuf.explore(abba_serialised, strategy=strategy, workers=2, database=None)
    assert not two.ok and two.failure is not None and two.failure.kind == "kernel-warning"
    assert "circular locking dependency" in two.failure.message
    again = dmabuf.replay(abba_serialised, two.failure.schedule)
    assert again is not None and again.kind == "kernel-warning"


def test_workers_replay_the_failure_database_first(tmp_path: Any) -> None:
    """docs/explorer.md, Failure database: "failing schedules are stored per body ... and replayed first by
    the next run" -- also when that run uses ``workers=2`` (it searched from scratch)."""
    first = dmabuf.explore(lost_update_after_choice, database=tmp_path)
    assert first.failure is not None
    database._WRITTEN.clear()  # what a fresh process sees
    res = dmabuf.explore(lost_update_after_choice, database=tmp_path, workers=2)
    assert res.stats.get("from_database") is True and res.executions == 1
    assert res.failure is not None and res.failure.schedule == first.failure.schedule


def test_workers_count_the_executions_that_found_the_failure() -> None:
    """explorer-api.md: ``result.executions  # int: executions run``. A parallel search that finds the
    failure while splitting the tree into work units still ran executions (it reported 0)."""
    res = dmabuf.explore(_deadlock, strategy="dfs", workers=2, database=None)
    assert res.failure is not None and res.failure.kind == "deadlock"
    assert res.executions >= 1


def test_workers_with_pct_find_and_replay() -> None:
    """explorer-api.md: every strategy ``"dfs" | "dpor" | "random" | "pct"`` with ``workers``: PCT split
    over two processes finds the lost update and its schedule replays."""
    res = dmabuf.explore(
        lost_update_after_choice, strategy="pct", depth=2, workers=2, max_executions=400, database=None
    )
    f = res.failure
    assert f is not None and f.kind == "exception"
    again = dmabuf.replay(lost_update_after_choice, f.schedule)
    assert again is not None and again.kind == "exception"


def test_workers_dfs_with_a_preemption_bound_cover_the_same_executions() -> None:
    """docs/explorer.md: "DFS covers exactly the same executions as one process" -- with a
    ``preemption_bound`` too (work units must split only along alternatives within the bound)."""

    def body() -> None:
        def w(k: int) -> None:
            for i in range(3):
                rt().point("op", f"x{k}.{i}", WRITE)

        _spawn_and_join(w, 3)

    one = dmabuf.explore(body, strategy="dfs", preemption_bound=1, database=None)
    two = dmabuf.explore(body, strategy="dfs", preemption_bound=1, workers=2, database=None)
    assert one.complete and two.complete
    assert two.executions == one.executions
    assert math.isfinite(two.elapsed)


def _three_by_two() -> None:
    """3 tasks x 2 writes to one object: 90 interleavings, all distinct traces (so DPOR runs 90 too)."""

    def w(k: int) -> None:
        for _ in range(2):
            rt().point("op", "x", WRITE)

    _spawn_and_join(w, 3)


@pytest.mark.parametrize("strategy", ["dfs", "dpor", "random"])
@pytest.mark.parametrize("budget", [3, 7, 11])
def test_workers_never_run_more_than_max_executions(strategy: str, budget: int) -> None:
    """explorer-api.md: ``max_executions=None,  # int or None`` with ``workers``: the executions of all
    workers together run exactly the budget, as one process does (each work unit had the whole budget, and
    ``random`` rounded the per-worker share up: 7 executions for max_executions=5 and more)."""
    res = dmabuf.explore(_three_by_two, strategy=strategy, workers=2, max_executions=budget, database=None)
    assert res.ok and not res.complete  # 90 executions to cover, many more than the budget
    assert res.executions == budget, res.executions


def test_workers_with_an_exact_budget_are_complete() -> None:
    """explorer-api.md ``result.complete  # every execution within the bounds was covered``: a budget equal
    to the size of the search does not make a parallel DFS incomplete."""
    total = dmabuf.explore(_three_by_two, strategy="dfs", database=None).executions
    res = dmabuf.explore(_three_by_two, strategy="dfs", workers=2, max_executions=total, database=None)
    assert res.complete and res.executions == total


def _exits_in_a_worker() -> None:
    import multiprocessing
    import os

    _three_by_two()
    if multiprocessing.parent_process() is not None:  # only in the forked workers, not while splitting
        os._exit(3)  # a crash, an OOM kill, ... : the process ends without reporting


def test_a_worker_that_dies_is_an_error_not_a_hang() -> None:
    """explorer-api.md ``workers=1,  # local worker processes``: ``explore`` returns or raises. A worker
    process that died without reporting (here the body calls os._exit) left the coordinator waiting for
    its result forever; now it is a UsageError naming the exit code and what to do."""
    import signal

    def too_slow(signum: int, frame: Any) -> None:
        raise AssertionError("explore(workers=2) hung after a worker died")

    old = signal.signal(signal.SIGALRM, too_slow)
    signal.setitimer(signal.ITIMER_REAL, 20.0)
    try:
        with pytest.raises(dmabuf.UsageError, match="exit code 3"):
            dmabuf.explore(_exits_in_a_worker, strategy="dfs", workers=2, database=None)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------------------------------------- resume
_interrupt = {"runs": 0, "at": -1}


def _interruptible() -> None:
    _three_by_two()
    _interrupt["runs"] += 1
    if _interrupt["runs"] == _interrupt["at"]:
        raise KeyboardInterrupt


def test_interrupted_sampling_search_says_why_nothing_was_saved(tmp_path: Any) -> None:
    """docs/explorer.md, Resume: "Ctrl-C during an exhaustive search saves its frontier in the database".
    A random search has no frontier; with a database given, the note must not claim there was none."""
    _interrupt.update(runs=0, at=5)
    res = dmabuf.explore(_interruptible, strategy="random", max_executions=50, database=tmp_path)
    assert res.stats.get("interrupted") and res.executions == 4 and not res.complete
    note = next(n for n in res.notes if "interrupted" in n)
    assert "no database" not in note and "'random'" in note
    assert not list(tmp_path.glob("*/frontier.json"))


def test_resume_without_a_database_says_it_was_ignored() -> None:
    """docs/explorer.md: "``resume=True`` continues from [the saved frontier]": with ``database=None`` there
    is none, and the result must say the flag had no effect rather than pass it over in silence."""
    _interrupt.update(runs=0, at=-1)
    res = dmabuf.explore(_interruptible, strategy="dfs", database=None, resume=True)
    assert res.complete and res.executions == 90
    assert any("resume=True ignored" in n for n in res.notes), res.notes


# ------------------------------------------------------------------------------ bounded DPOR completeness
def _late_conflict() -> None:
    """t2 writing Y before t1 does is the bug; it needs no preemption (run t2 first), but DPOR can only
    reach it by reversing the race on Y, which switches in the middle of t1 (a preemption)."""
    box = Box()

    def t1() -> None:
        rt().point("write", "X", WRITE)
        rt().point("write", "Y", WRITE)
        box.v = 1

    def t2() -> None:
        rt().point("write", "Y", WRITE)
        box.v = 2

    a, b = dmabuf.spawn(t1, name="t1"), dmabuf.spawn(t2, name="t2")
    a.join()
    b.join()
    assert box.v == 2, "t2 wrote Y first"


def test_bounded_dfs_finds_the_zero_preemption_bug() -> None:
    """The reference for the next test: "dfs: every interleaving, current task first; preemption_bound
    limits involuntary switches" (docs/explorer.md) -- the failing order needs no preemption."""
    res = dmabuf.explore(_late_conflict, strategy="dfs", preemption_bound=0, database=None)
    assert res.failure is not None and res.failure.preemptions == 0


def test_bounded_dpor_that_skips_executions_is_not_complete() -> None:
    """explorer-api.md: ``result.complete  # bool: every execution within the bounds was covered``. Bounded
    DPOR may skip schedules within the bound (docs/explorer.md, "``dpor`` with ``preemption_bound=k``");
    when it does, it must either still find the failure or not claim completeness. With the default probes
    it ends with plain DFS at the same bound, which runs the 0-preemption failing order."""
    res = dmabuf.explore(_late_conflict, strategy="dpor", preemption_bound=0, database=None)
    assert res.failure is not None or not res.complete, (res.executions, res.stats)
    assert res.failure is not None and res.failure.preemptions == 0


def test_a_bounded_dpor_search_that_dropped_reversals_is_certified_by_bounded_dfs() -> None:
    """A finished bounded DPOR search that dropped reversals runs plain DFS with the same bound afterwards
    (as probes, not counted as executions); when that finishes, every schedule within the bound ran: the
    note says so instead of warning, and ``stats["bound_certified"]`` is set."""
    from dmabuf.examples.classic import locked_family

    res = dmabuf.explore(locked_family(3, 2), preemption_bound=1, database=None)
    dfs = dmabuf.explore(locked_family(3, 2), strategy="dfs", preemption_bound=1, database=None)
    assert res.ok and res.complete and res.stats["bound_skipped"] > 0 and res.stats["bound_certified"] == 1
    assert res.stats["certify_executions"] == dfs.executions
    assert res.executions <= dfs.executions  # the certifying runs are probes, not executions
    assert any("so the search is complete" in n for n in res.notes), res.notes
    assert not any("may not have run" in n for n in res.notes), res.notes


def _late_conflict_with_bystanders(extra: int) -> Callable[[], None]:
    """The late conflict of t1 and t2, next to ``extra`` tasks that each write their own object once: bounded
    DPOR at bound 0 runs 1 execution and drops the reversal; plain DFS at bound 0 runs one execution per
    order in which the (2 + extra) tasks finish, (2 + extra)!."""

    def body() -> None:
        def t1() -> None:
            rt().point("write", "X", WRITE)
            rt().point("write", "Y", WRITE)

        def t2() -> None:
            rt().point("write", "Y", WRITE)

        def bystander(i: int) -> None:
            rt().point("write", f"Z{i}", WRITE)

        tasks = [dmabuf.spawn(t1), dmabuf.spawn(t2)] + [dmabuf.spawn(bystander, i) for i in range(extra)]
        for t in tasks:
            t.join()

    return body


def test_the_certifying_dfs_is_skipped_when_it_cannot_finish() -> None:
    """Certifying by bounded DFS only helps when that DFS can finish: random walks estimate its size first
    (7! = 5,040 here, against the 64 executions it may run), and it is skipped, with a note; the search's
    own "may not have run" note stays."""
    res = dmabuf.explore(_late_conflict_with_bystanders(5), preemption_bound=0, database=None)
    assert res.ok and res.complete and res.stats["bound_skipped"] > 0
    assert res.stats["certify_skipped"] == 1 and res.stats["certify_estimate"] == 5040
    assert "bound_certified" not in res.stats and "certify_executions" not in res.stats
    assert any("was not run" in n and "5,040" in n for n in res.notes), res.notes
    assert any("may not have run" in n for n in res.notes), res.notes


def test_the_certifying_dfs_gets_room_for_the_tree_it_estimates() -> None:
    """5! = 120 executions of bounded DFS, more than the 64 the 1-execution search would allow it: the
    estimate raises the allowance (up to 4x), and the search is certified."""
    res = dmabuf.explore(_late_conflict_with_bystanders(3), preemption_bound=0, database=None)
    dfs = dmabuf.explore(_late_conflict_with_bystanders(3), strategy="dfs", preemption_bound=0, database=None)
    assert dfs.complete and dfs.executions == 120
    assert res.stats["bound_certified"] == 1 and res.stats["certify_executions"] == 120


def test_bounded_dpor_says_when_it_dropped_a_reversal() -> None:
    """explorer-api.md's ``complete`` and docs/explorer.md ("``dpor`` with ``preemption_bound=k``"): a bounded
    DPOR search that dropped a reversal for the bound must say so: ``stats["bound_skipped"]`` counts the drops
    and a note names the consequence and the complete alternative; the unbounded search drops nothing."""
    res = dmabuf.explore(_late_conflict, strategy="dpor", preemption_bound=0, database=None, probes=False)
    assert res.ok and res.stats["bound_skipped"] >= 1
    assert any("preemption_bound=0 skipped reversals" in n and "strategy='dfs'" in n for n in res.notes), res.notes
    full = dmabuf.explore(_late_conflict, strategy="dpor", database=None, probes=False)
    assert full.failure is not None and full.stats["bound_skipped"] == 0


def test_livelock_is_a_task_exceeding_the_step_bound() -> None:
    """explorer-api.md: "... a task that exceeds the step bound ... [are] failures of the kinds named
    above": tasks that each stay well within ``max_steps`` and finish are not a livelock."""

    def body() -> None:
        def w(k: int) -> None:
            for _ in range(40):
                rt().point("op", f"x{k}", WRITE)

        _spawn_and_join(w, 3)

    res = dmabuf.explore(body, strategy="dfs", preemption_bound=0, max_steps=100, database=None)
    assert res.ok, res.failure and res.failure.message


def test_livelock_names_the_task_over_the_bound_and_the_execution_has_a_total_bound() -> None:
    """explorer-api.md: "a task that exceeds the step bound" is a livelock: the message names that task.
    An execution whose tasks each stay within ``max_steps`` but take more than 8 x ``max_steps`` steps in
    all is a livelock too (the backstop for tasks that keep spawning tasks)."""

    def spinner() -> None:
        def spin() -> None:
            while True:
                rt().point("op", "x", WRITE)

        dmabuf.spawn(spin, name="spinner").join()

    f = dmabuf.explore(spinner, strategy="dfs", max_steps=30, database=None).failure
    assert f is not None and f.kind == "livelock"
    assert "task 'spinner' exceeded its bound of 30 scheduling steps" in f.message, f.message

    def many() -> None:
        def w(k: int) -> None:
            for _ in range(9):
                rt().point("op", f"x{k}", WRITE)

        _spawn_and_join(w, 10)  # 90 steps, each task 9 <= 10, but 90 > 8 x 10

    f = dmabuf.explore(many, strategy="dfs", preemption_bound=0, max_steps=10, database=None).failure
    assert f is not None and f.kind == "livelock"
    assert "bound of 80 scheduling steps in all" in f.message, f.message


# ------------------------------------------------------------------------------------ failure database
def test_the_database_location_comes_from_the_environment(tmp_path: Any, monkeypatch: Any) -> None:
    """docs/explorer.md: "failing schedules are stored per body in ``.dmabuf/`` (or ``$DMABUF_DATABASE``,
    or ``database=<dir>``...)": the environment variable picks the directory, and ``off`` turns it off."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DMABUF_DATABASE", str(tmp_path / "from-env"))
    res = dmabuf.explore(lost_update_after_choice)
    assert res.failure is not None
    assert list((tmp_path / "from-env").glob("*/*.json"))
    assert not (tmp_path / ".dmabuf").exists()
    monkeypatch.setenv("DMABUF_DATABASE", "off")
    dmabuf.explore(_deadlock)
    assert not (tmp_path / ".dmabuf").exists() and not (tmp_path / "off").exists()


# ------------------------------------------------------------------------ lock orders across executions
def _orders_by_choice() -> None:
    """One order per execution: the inversion exists only across two executions of the search."""
    a, b = Mutex(name="lock_A"), Mutex(name="lock_B")
    if dmabuf.choose(2) == 0:
        _take(a, b)
    else:
        _take(b, a)


def test_a_lock_order_learnt_in_an_earlier_execution_says_so() -> None:
    """explorer-api.md: ``failure.message  # one paragraph a person can act on``: when the report needs the
    lock orders of an earlier execution, the failure says that its replay string runs that one first."""
    f = _failure(_orders_by_choice)
    assert f.kind == "kernel-warning" and "circular locking dependency" in f.message
    assert "earlier execution" in f.shrink_note and "replay string" in f.shrink_note
    assert f.shrink_note in str(f)


@pytest.mark.parametrize("strategy", ["dpor", "dfs", "random"])
def test_a_lock_order_learnt_in_an_earlier_execution_replays(strategy: str) -> None:
    """explorer-api.md: "Replays are deterministic: the same ``body`` and ``schedule`` give the same trace,
    or a ``nondeterminism`` failure" -- the kernel-warning the search reported comes back on replay, though
    the order it contradicts was taken by an earlier execution (the string holds both: dmabuf-s2)."""
    kw: dict[str, Any] = {"max_executions": 40} if strategy == "random" else {}
    f = _failure(_orders_by_choice, strategy=strategy, **kw)
    assert f.schedule.startswith("dmabuf-s2:") and f.schedule.count("|") == 1, f.schedule
    again = dmabuf.replay(_orders_by_choice, f.schedule)
    assert again is not None and again.kind == "kernel-warning"
    assert again.message == f.message and again.schedule == f.schedule
    # the last execution alone does not show it: the earlier one is what the string adds
    last = f.schedule.split("|")[-1]
    assert dmabuf.replay(_orders_by_choice, "dmabuf-s1:" + last) is None


def _three_orders() -> None:
    """A -> B, B -> C and C -> A, one per execution (chosen): the cycle closes in the third and needs the
    orders of both others."""
    a, b, c = Mutex(name="lock_A"), Mutex(name="lock_B"), Mutex(name="lock_C")
    pairs = [(a, b), (b, c), (c, a)]
    _take(*pairs[dmabuf.choose(3)])


def test_a_cycle_through_two_earlier_executions_replays_with_both(tmp_path: Any) -> None:
    """The cycle C -> A -> B -> C needs two earlier executions: the replay string holds three, replays from
    the string and from the failure database, and with ``workers=2`` (the worker names its earlier
    executions to the coordinator)."""
    f = _failure(_three_orders)
    assert f.kind == "kernel-warning" and f.schedule.count("|") == 2, f.schedule
    again = dmabuf.replay(_three_orders, f.schedule)
    assert again is not None and again.kind == "kernel-warning" and again.message == f.message
    first = dmabuf.explore(_three_orders, database=tmp_path)
    assert first.failure is not None and first.failure.schedule.count("|") == 2
    database._WRITTEN.clear()  # what a fresh process sees
    stored = dmabuf.explore(_three_orders, database=tmp_path)
    assert stored.stats.get("from_database") is True
    assert stored.failure is not None and stored.failure.kind == "kernel-warning"
    assert stored.failure.schedule == first.failure.schedule
    two = dmabuf.explore(_three_orders, workers=2, database=None)
    assert two.failure is not None and two.failure.kind == "kernel-warning", two.notes
    assert dmabuf.replay(_three_orders, two.failure.schedule) is not None


def _two_orders_then_the_reverse() -> None:
    """One execution takes A then B, and later B then C; the other takes C then A: the cycle C -> A -> B -> C
    goes through two edges of the same earlier execution."""
    a, b, c = Mutex(name="lock_A"), Mutex(name="lock_B"), Mutex(name="lock_C")
    if dmabuf.choose(2) == 0:
        _take(a, b)
        _take(b, c)
    else:
        _take(c, a)


def test_an_earlier_execution_is_replayed_once_for_all_its_edges() -> None:
    """The replay string holds each earlier execution once, however many edges of the cycle it added."""
    f = _failure(_two_orders_then_the_reverse)
    assert f.kind == "kernel-warning" and f.schedule.count("|") == 1, f.schedule
    again = dmabuf.replay(_two_orders_then_the_reverse, f.schedule)
    assert again is not None and again.message == f.message


def test_a_multi_execution_replay_string_that_diverges_says_which_execution() -> None:
    """A ``dmabuf-s2`` string whose earlier execution no longer fits the body: a nondeterminism failure
    naming that execution, and the string given back unchanged."""
    f = _failure(_orders_by_choice)
    bad = f.schedule.replace("c0/2|", "c0/3|").replace("c1/2|", "c1/3|")
    got = dmabuf.replay(_orders_by_choice, bad)
    assert got is not None and got.kind == "nondeterminism"
    assert "execution 1 of the 2" in got.message and got.schedule == bad


def test_a_stored_failure_outside_the_preemption_bound_is_not_reported(tmp_path: Any) -> None:
    """explorer-api.md ``preemption_bound=None,  # int or None`` with docs/explorer.md's failure database
    ("replayed first by the next run"): a stored 1-preemption failure is not the answer of a search bounded
    to 0 preemptions (it was returned without searching); the entry is kept for unbounded runs."""
    first = dmabuf.explore(lost_update_after_choice, database=tmp_path)
    assert first.failure is not None and first.failure.preemptions == 1
    database._WRITTEN.clear()  # what a fresh process sees
    bounded = dmabuf.explore(lost_update_after_choice, database=tmp_path, preemption_bound=0)
    assert bounded.ok and bounded.failure is None
    assert any("kept, not reported" in n for n in bounded.notes), bounded.notes
    assert list(tmp_path.glob("*/*.json"))
    unbounded = dmabuf.explore(lost_update_after_choice, database=tmp_path)
    assert unbounded.stats.get("from_database") is True


# --------------------------------------------------------------------------------------- run_threads
@pytest.mark.parametrize("bad", [-1, 0, "5", float("nan"), True])
def test_run_threads_rejects_a_bad_timeout(bad: Any) -> None:
    """explorer-api.md ``dmabuf.run_threads(body)  # ... raises on failure`` and docs/explorer.md's bad-input
    promise: a timeout that is not a positive number is a typed error, not a TimeoutError claiming tasks
    were "still running after -1 s", a bare TypeError, or (NaN) no limit at all."""
    with pytest.raises(InvalidArgument, match="timeout must be a positive number"):
        dmabuf.run_threads(lambda: 3, timeout=bad)
    assert dmabuf.run_threads(lambda: 3, timeout=5) == 3


@pytest.mark.parametrize("strategy", ["dfs", "dpor"])
def test_resume_with_other_bounds_starts_afresh_and_skips_nothing(tmp_path: Any, strategy: str) -> None:
    """docs/explorer.md, Resume: "``resume=True`` continues from it (... nothing is skipped)": a frontier
    saved by a search with ``preemption_bound=1`` is not a frontier of the unbounded search; resuming with
    other bounds must start afresh (and say so) and cover every execution."""
    full = dmabuf.explore(_three_by_two, strategy=strategy, database=None, probes=False).executions
    _interrupt.update(runs=0, at=3)
    first = dmabuf.explore(_interruptible, strategy=strategy, preemption_bound=1, database=tmp_path)
    assert first.stats.get("interrupted") and list(tmp_path.glob("*/frontier.json"))
    _interrupt.update(runs=0, at=-1)
    res = dmabuf.explore(_interruptible, strategy=strategy, database=tmp_path, resume=True, probes=False)
    assert res.complete and res.executions == full == 90
    assert any("starting afresh" in n for n in res.notes), res.notes


_calls = {"n": 0}


def _odd_and_even() -> None:
    """Every other call does a different operation: state kept between executions."""
    _calls["n"] += 1
    op = "odd" if _calls["n"] % 2 else "even"

    def w() -> None:
        for _ in range(2):
            rt().point(op, "x", WRITE)

    ts = [dmabuf.spawn(w) for _ in range(3)]
    for t in ts:
        t.join()


def test_workers_nondeterminism_has_a_message() -> None:
    """explorer-api.md: ``failure.kind  # ... "nondeterminism"`` and ``failure.message  # one paragraph a
    person can act on``: a nondeterminism found by a worker process came back with an empty message (the
    workers report only the kind)."""
    _calls["n"] = 0
    res = dmabuf.explore(_odd_and_even, strategy="dfs", workers=2, database=None)
    f = res.failure
    assert f is not None and f.kind == "nondeterminism"
    assert f.message.startswith("nondeterminism:") and "dmabuf.choose()" in f.message


def test_lock_orders_lists_the_orders_the_body_took_not_the_boot_ones() -> None:
    """result.stats['lock_orders'] is the per lock-pair orders seen; the orders lockdep knows from boot
    (dma_resv_lockdep: resv -> fence wait) are in the graph but were not taken by the body."""
    import dmabuf.kernel as K

    def body() -> None:
        a, b = K.Mutex("outer_A"), K.Mutex("inner_B")

        def nest() -> None:
            K.mutex_lock(a)
            K.mutex_lock(b)
            K.mutex_unlock(b)
            K.mutex_unlock(a)

        for t in [dmabuf.spawn(nest) for _ in range(2)]:
            t.join()

    res = dmabuf.explore(body, database=None)
    assert res.ok and res.stats["lock_orders"] == ["outer_A -> inner_B"], res.stats.get("lock_orders")
