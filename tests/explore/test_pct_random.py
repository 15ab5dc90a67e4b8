"""PCT and the random walk: argument checks, determinism per seed, the probability bound PCT reports and
meets, and the random walk's coverage statistic."""

from __future__ import annotations

import inspect
import math
from collections import Counter
from typing import Any

import pytest

import dmabuf
from dmabuf.explore.strategies import pct as PCTmod
from dmabuf.explore.strategies.pct import DEFAULT_STEPS, PCT, pct_bound, runs_for
from dmabuf.kernel import READ_ONCE, WRITE_ONCE
from dmabuf.runtime import activate, deactivate
from dmabuf.runtime.controlled import ControlledRuntime

#: counts must come from the search, not from a failure an earlier run stored (the engine's failure
#: database, where it has one, is keyed by the body's qualified name, shared by every builder's ``body``)
NO_DB: dict[str, Any] = (
    {"database": None} if "database" in inspect.signature(dmabuf.explore).parameters else {}
)


def explore(body: Any, **kw: Any) -> dmabuf.ExploreResult:
    return dmabuf.explore(body, **kw, **NO_DB)


class Shared:
    def __init__(self) -> None:
        self.x = 0
        self.y = 0


def lost_update(n: int = 2) -> Any:
    def body() -> None:
        s = Shared()

        def inc() -> None:
            WRITE_ONCE(s, "x", READ_ONCE(s, "x") + 1)

        ts = [dmabuf.spawn(inc) for _ in range(n)]
        for t in ts:
            t.join()
        assert s.x == n

    return body


def clean(n: int = 3, k: int = 3) -> Any:
    """n tasks doing k racy-but-harmless writes each: no failure, many schedules."""

    def body() -> None:
        s = Shared()

        def w(i: int) -> None:
            for _ in range(k):
                WRITE_ONCE(s, "x", i)

        ts = [dmabuf.spawn(w, i) for i in range(n)]
        for t in ts:
            t.join()

    return body


# ---------------------------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("depth", [0, -1, 1.5, "2", True])
def test_pct_needs_a_sensible_depth(depth: Any) -> None:
    with pytest.raises(dmabuf.InvalidArgument, match=r"depth must be an int >= 1"):
        explore(clean(), strategy="pct", depth=depth, max_executions=1)


def test_pct_without_a_depth_targets_depth_3() -> None:
    # explorer-api.md lists no depth: pct must run with only the documented parameters
    res = explore(clean(), strategy="pct", seed=1, max_executions=20)
    assert res.ok and res.executions == 20
    assert res.stats["depth"] == 3
    dflt = explore(lost_update(), strategy="pct", seed=1, max_executions=2000)
    assert dflt.failure is not None and dflt.failure.kind == "exception"


def test_a_depth_beyond_the_maximum_is_refused() -> None:
    with pytest.raises(dmabuf.InvalidArgument, match=r"depth=500 makes no sense for PCT.*pass 1\.\.100"):
        explore(clean(), strategy="pct", depth=500, max_executions=2)


def test_a_deep_bound_does_not_overflow() -> None:
    # 1/(n*k^(d-1)) is far below the smallest float here: the numbers stay exact, the text readable
    res = explore(clean(4, 30), strategy="pct", depth=100, max_executions=3)
    assert res.ok and res.executions == 3
    assert res.stats["pct_runs_for_99"] > 10**100
    assert "about 10^" in res.stats["bound_text"] and res.stats["bound_text"] in str(res)
    assert runs_for(pct_bound(2, 10, 3)) == PCTmod.runs_for_99(2, 10, 3)


def test_pct_rejects_a_preemption_bound() -> None:
    with pytest.raises(dmabuf.InvalidArgument, match="preemption_bound does not apply"):
        explore(clean(), strategy="pct", depth=2, preemption_bound=1, max_executions=1)


@pytest.mark.parametrize("strategy", ["random", "dpor", "dfs"])
def test_depth_only_applies_to_pct(strategy: str) -> None:
    with pytest.raises(dmabuf.InvalidArgument, match="only applies to strategy='pct'"):
        explore(clean(), strategy=strategy, depth=2, max_executions=1)


# ---------------------------------------------------------------------------------------------- behaviour
@pytest.mark.parametrize("strategy,kw", [("pct", {"depth": 2}), ("pct", {"depth": 3}), ("random", {})])
def test_never_complete_and_runs_the_budget(strategy: str, kw: dict[str, Any]) -> None:
    res = explore(clean(), strategy=strategy, max_executions=50, **kw)
    assert res.ok and not res.complete
    assert res.executions == 50
    assert res.strategy == strategy


@pytest.mark.parametrize("strategy,kw", [("pct", {"depth": 2}), ("random", {})])
def test_without_a_budget_they_stop_at_the_default_and_say_so(strategy: str, kw: dict[str, Any]) -> None:
    from dmabuf.explore.engine import DEFAULT_SAMPLES

    res = explore(clean(), strategy=strategy, **kw)
    assert res.ok and not res.complete
    assert res.executions == DEFAULT_SAMPLES
    assert any("max_executions" in n and "time_budget" in n for n in res.notes), res.notes


@pytest.mark.parametrize("strategy,kw", [("pct", {"depth": 2}), ("random", {})])
def test_same_seed_same_search(strategy: str, kw: dict[str, Any]) -> None:
    def find(seed: int) -> tuple[int, str]:
        res = explore(lost_update(3), strategy=strategy, seed=seed, max_executions=500, **kw)
        assert res.failure is not None and res.failure.kind == "exception"
        return res.executions, res.failure.schedule

    assert find(7) == find(7)
    assert len({find(s) for s in range(8)}) > 1  # the seed matters


def test_depth_one_never_preempts() -> None:
    """With no change points PCT runs the highest-priority task until it blocks or ends: the lost update
    (which needs a preemption between a read and a write) is never found."""
    res = explore(lost_update(3), strategy="pct", depth=1, max_executions=300)
    assert res.ok and res.executions == 300


def test_priorities_are_a_uniform_permutation() -> None:
    """depth=1: each execution is one priority order; which of 3 tasks writes first is uniform."""
    firsts: Counter[int] = Counter()

    def body() -> None:
        s = Shared()
        s.x = -1

        def w(i: int) -> None:
            if READ_ONCE(s, "x") == -1:
                WRITE_ONCE(s, "x", i)

        ts = [dmabuf.spawn(w, i) for i in range(3)]
        for t in ts:
            t.join()
        firsts[s.x] += 1

    res = explore(body, strategy="pct", depth=1, seed=3, max_executions=900)
    assert res.ok and sum(firsts.values()) == 900
    for i in range(3):
        assert 220 <= firsts[i] <= 380, firsts


@pytest.mark.parametrize("depth", [2, 3])
def test_each_run_meets_the_probability_bound(depth: int) -> None:
    """Run PCT directly (no stop at the first failure) and compare the failure rate with 1/(n*k^(d-1))."""
    strat = PCT(depth, seed=11)
    rt = ControlledRuntime(strat)
    body = lost_update(2)
    runs, bad = 2000, 0
    activate(rt)
    try:
        for _ in range(runs):
            strat.start()
            out = rt.run(body)
            bad += not out.ok
            strat.advance(out)
    finally:
        deactivate(rt)
    p = strat.bound()
    assert p == pct_bound(strat.n, strat.k, depth)
    assert strat.n == 2 and 1 <= strat.k <= 6
    assert bad / runs >= p, (bad, runs, p, strat.bound_text())


def test_stats_and_bound_text() -> None:
    res = explore(clean(3, 3), strategy="pct", depth=3, max_executions=40)
    st = res.stats
    n, k, d = st["tasks"], st["steps"], st["depth"]
    assert (n, d) == (3, 3)
    assert 1 <= k < DEFAULT_STEPS  # the longest execution seen, not the default any more
    p = 1 / (n * k ** (d - 1))
    assert st["pct_bound"] == pytest.approx(p)
    assert st["pct_runs_for_99"] == math.ceil(math.log(0.01) / math.log(1 - p))
    assert f"1/({n}*{k}^2)" in st["bound_text"] and "99%" in st["bound_text"]


def test_stats_count_the_failing_execution() -> None:
    """The engine never advances past the failing execution; its tasks and steps still count."""
    res = explore(lost_update(2), strategy="pct", depth=2, seed=0, max_executions=100)
    assert res.failure is not None
    assert res.stats["tasks"] == 2 and res.stats["steps"] >= 1


def test_runs_for() -> None:
    assert runs_for(1.0) == 1
    assert runs_for(0.5) == 7  # 0.5^7 < 0.01 <= 0.5^6
    assert runs_for(0.01) == 459
    with pytest.raises(ValueError):
        runs_for(0.0)


def test_pct_failure_replays() -> None:
    body = lost_update(3)
    res = explore(body, strategy="pct", depth=2, seed=5, max_executions=500)
    f = res.failure
    assert f is not None and f.kind == "exception"
    again = dmabuf.replay(body, f.schedule)
    assert again is not None and again.kind == f.kind


def test_pct_data_choices_are_uniform() -> None:
    seen: Counter[int] = Counter()

    def body() -> None:
        seen[dmabuf.choose(4)] += 1

    explore(body, strategy="pct", depth=2, max_executions=800)
    assert set(seen) == {0, 1, 2, 3} and min(seen.values()) > 140


# ---------------------------------------------------------------------------------------------- random walk
def test_random_reports_distinct_schedules() -> None:
    res = explore(clean(3, 3), strategy="random", max_executions=200)
    st = res.stats
    assert 1 < st["distinct_schedules"] <= 200
    assert st["distinct_ratio"] == pytest.approx(st["distinct_schedules"] / 200)


def test_random_distinct_ratio_drops_on_a_small_space() -> None:
    """Two tasks of one write each: 2 schedules, so 100 random executions repeat them."""
    res = explore(clean(2, 1), strategy="random", max_executions=100)
    assert res.stats["distinct_schedules"] == 2
    assert res.stats["distinct_ratio"] == pytest.approx(0.02)
