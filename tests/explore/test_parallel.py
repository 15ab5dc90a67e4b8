"""``workers=N``: one search split over processes; DFS covers exactly the same executions."""

import pytest
from _agreement import independent_writers

import dmabuf
from dmabuf.examples.classic import locked_family
from dmabuf.kernel import Mutex
from dmabuf.runtime import WRITE


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


@pytest.mark.parametrize("n,k,bound", [(3, 2, None), (2, 3, None), (3, 2, 0), (3, 2, 1), (2, 2, 2)])
def test_dpor_workers_run_the_executions_of_one_process(n, k, bound):
    """The issue: ``workers=N`` runs "the same set of executions as ``workers=1``". A static split of the top
    levels over every enabled task ran 6 executions on locked 3x2 with bound 0, against 1."""
    one = dmabuf.explore(locked_family(n, k), preemption_bound=bound, database=None, probes=False)
    two = dmabuf.explore(locked_family(n, k), preemption_bound=bound, workers=2, database=None)
    assert two.ok and two.complete and two.executions == one.executions
    assert two.stats["bound_skipped"] == one.stats["bound_skipped"]


def test_dpor_workers_split_a_big_search_into_units():
    """The coordinator hands out the branches DPOR needs while the search runs: locked 3x3 (1,680
    executions) is cut into several units, and each trace runs once."""
    res = dmabuf.explore(locked_family(3, 3), workers=2, database=None)
    assert res.ok and res.complete and res.executions == 1680
    assert res.stats["units"] >= 4


def test_dpor_workers_run_independent_tasks_once():
    """Tasks that touch nothing in common: one execution, as in one process (a static split ran one per
    task at the top)."""
    body = independent_writers(3, 2)
    one = dmabuf.explore(body, database=None, probes=False)
    two = dmabuf.explore(body, workers=2, database=None)
    assert one.executions == two.executions == 1 and two.complete


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
    one = dmabuf.explore(
        locked_family(3, 2), strategy="dpor", preemption_bound=1, probes=False, database=None
    )
    two = dmabuf.explore(
        locked_family(3, 2), strategy="dpor", preemption_bound=1, probes=False, database=None, workers=2
    )
    assert one.stats["bound_skipped"] > 0
    assert two.stats["bound_skipped"] == one.stats["bound_skipped"] and two.executions == one.executions
    assert any("skipped reversals" in n for n in two.notes), two.notes


def test_workers_certify_a_bounded_dpor_search_that_dropped_reversals():
    """As in one process (engine._Search.certify): a finished, clean bounded DPOR search that dropped
    reversals ends with plain DFS at the same bound. The units do not run it; the coordinating process does,
    once they are done."""
    dfs = dmabuf.explore(locked_family(3, 2), strategy="dfs", preemption_bound=1, database=None)
    two = dmabuf.explore(locked_family(3, 2), preemption_bound=1, workers=2, database=None)
    assert two.ok and two.complete and two.stats["bound_skipped"] > 0 and two.stats["bound_certified"] == 1
    assert two.stats["certify_executions"] == dfs.executions
    assert any("so the search is complete" in n for n in two.notes), two.notes
    assert not any("may not have run" in n for n in two.notes), two.notes
    off = dmabuf.explore(locked_family(3, 2), preemption_bound=1, workers=2, database=None, probes=False)
    assert "bound_certified" not in off.stats and any("may not have run" in n for n in off.notes), off.notes


def _late_conflict():
    """The failing order (t2 writes Y first) needs no preemption, but bounded DPOR reaches it only by
    reversing the race on Y, which preempts t1 (see test_contract_audit's twin)."""
    box = {"v": 0}

    def t1():
        dmabuf.rt().point("write", "X", WRITE)
        dmabuf.rt().point("write", "Y", WRITE)
        box["v"] = 1

    def t2():
        dmabuf.rt().point("write", "Y", WRITE)
        box["v"] = 2

    a, b = dmabuf.spawn(t1, name="t1"), dmabuf.spawn(t2, name="t2")
    a.join()
    b.join()
    assert box["v"] == 2, "t2 wrote Y first"


def test_workers_certification_finds_what_bounded_dpor_skipped():
    res = dmabuf.explore(_late_conflict, preemption_bound=0, workers=2, database=None)
    assert res.failure is not None and res.failure.preemptions == 0 and not res.complete
    again = dmabuf.replay(_late_conflict, res.failure.schedule)
    assert again is not None and again.kind == res.failure.kind
