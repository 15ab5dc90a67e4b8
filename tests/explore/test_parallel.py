"""``workers=N``: one search split over processes; DFS covers exactly the same executions."""

import pytest

import dmabuf
from dmabuf.examples.classic import locked_family
from dmabuf.kernel import Mutex


class Box:
    def __init__(self):
        self.v = 0


def abba():
    a, b = Mutex(name="A"), Mutex(name="B")

    def t1():
        with a, b:
            pass

    def t2():
        with b, a:
            pass

    x, y = dmabuf.spawn(t1), dmabuf.spawn(t2)
    x.join()
    y.join()


@pytest.mark.parametrize("n,k", [(3, 2), (2, 3)])
def test_dfs_workers_cover_the_same_executions(n, k):
    one = dmabuf.explore(locked_family(n, k), strategy="dfs", database=None)
    two = dmabuf.explore(locked_family(n, k), strategy="dfs", workers=2, database=None)
    assert two.ok and two.complete and two.executions == one.executions
    assert two.stats["units"] >= 2


def test_dpor_workers_stay_exhaustive():
    one = dmabuf.explore(locked_family(3, 2), database=None, probes=False)
    two = dmabuf.explore(locked_family(3, 2), workers=2, database=None)
    assert two.ok and two.complete and two.executions >= one.executions == 90


@pytest.mark.parametrize("strategy", ["dfs", "dpor"])
def test_workers_find_and_shrink_failures(strategy):
    res = dmabuf.explore(abba, strategy=strategy, workers=2, database=None)
    f = res.failure
    assert f is not None and f.kind == "deadlock"
    again = dmabuf.replay(abba, f.schedule)
    assert again is not None and again.kind == "deadlock"


def test_random_workers_without_a_budget_use_the_default_one():
    res = dmabuf.explore(abba, strategy="random", workers=2, database=None)
    assert res.failure is not None and res.failure.kind == "deadlock"
    assert any("default" in n for n in res.notes), res.notes
    res = dmabuf.explore(abba, strategy="random", workers=2, max_executions=200, database=None)
    assert res.failure is not None and res.failure.kind == "deadlock"


def test_workers_report_the_reversals_bounded_dpor_dropped():
    """Bounded DPOR says when it dropped reversals for the bound (stats and a note); split over workers it
    must say the same, with the units' counts added up."""
    one = dmabuf.explore(locked_family(3, 2), strategy="dpor", preemption_bound=1, probes=False, database=None)
    two = dmabuf.explore(
        locked_family(3, 2), strategy="dpor", preemption_bound=1, probes=False, database=None, workers=2
    )
    assert one.stats["bound_skipped"] > 0
    assert two.stats["bound_skipped"] == one.stats["bound_skipped"] and two.executions == one.executions
    assert any("skipped reversals" in n for n in two.notes), two.notes
