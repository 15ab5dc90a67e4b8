"""``workers=N``: one search split over processes; DFS covers exactly the same executions."""

import pytest
from _agreement import independent_writers

import dmabuf
from dmabuf.examples.classic import locked_family
from dmabuf.kernel import READ_ONCE, WRITE_ONCE, Mutex
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


def _three_writers(log=None):
    """The audit's repro: three tasks, each twice reading ``a`` and writing ``a`` or ``b``. Bounded DPOR's
    executions depend on the order it explores branches in; with the units' branches handed out in the order
    races arrived, ``workers=2`` ran 134 or 118 executions at bound 2 (one process: 134), 35 or 37 at bound 1."""

    def body():
        c = Box()
        c.a = c.b = 0
        ops = []

        def w(i):
            for j in range(2):
                v = READ_ONCE(c, "a")
                ops.append((i, v))
                WRITE_ONCE(c, "ab"[(i + j) % 2], v + 1)
                ops.append((i, "ab"[(i + j) % 2]))

        ts = [dmabuf.spawn(w, i) for i in range(3)]
        for t in ts:
            t.join()
        if log is not None:
            with open(log, "a") as f:
                f.write(repr(ops) + "\n")

    return body


_KEYS = ("bound_skipped", "bound_certified", "certify_executions", "certify_skipped")


def _summary(res):
    return res.ok, res.complete, res.executions, {k: res.stats.get(k) for k in _KEYS}


@pytest.mark.parametrize("probes", [None, False])
@pytest.mark.parametrize(
    "name,bound",
    [("writers", 1), ("writers", 2), ("locked", 1), ("locked", 2)],
)
def test_bounded_dpor_workers_run_what_one_process_runs_every_time(name, bound, probes):
    """Bounded DPOR with ``workers=N`` follows one process's order over the units, so every run gives the
    executions, ``bound_skipped`` and certification of ``workers=1`` (the audit saw them vary)."""
    body = _three_writers() if name == "writers" else locked_family(3, 3)
    one = _summary(dmabuf.explore(body, preemption_bound=bound, database=None, probes=probes))
    assert one[2] > 1 and one[3]["bound_skipped"]
    for workers in (2, 3):
        for _ in range(3):
            got = dmabuf.explore(body, preemption_bound=bound, workers=workers, database=None, probes=probes)
            assert _summary(got) == one, (workers, got.stats)
            if probes is None:
                assert ("bound_certified" in got.stats) == any("so the search is complete" in n for n in got.notes)
            else:
                assert any("may not have run" in n for n in got.notes), got.notes


def test_bounded_dpor_workers_run_the_same_executions(tmp_path):
    """Not only as many: the same ones. Each execution that finishes logs its interleaving; every one of
    ``workers=1``'s is among them (the extra ones are of units a later report proved mispredicted: run, not
    counted)."""
    from collections import Counter

    def run(workers):
        log = tmp_path / f"w{workers}.log"
        res = dmabuf.explore(_three_writers(log), preemption_bound=2, workers=workers, database=None, probes=False)
        return res, Counter(log.read_text().splitlines())

    one, seen = run(1)
    for workers in (2, 3):
        res, got = run(workers)
        assert res.executions == one.executions
        assert not seen - got  # every execution of one process ran
