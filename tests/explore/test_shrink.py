"""Shrinking: failures come back minimised, still failing the same way, within 1.2x of the true minimum
(established by enumerating every execution with plain DFS)."""

import math
import time

import pytest

import dmabuf
from dmabuf.explore.replaying import shrink_budget
from dmabuf.explore.shrink import MAX_SHRINK_SECONDS
from dmabuf.explore.strategies import DFS
from dmabuf.kernel import Mutex, mutex_lock, mutex_unlock
from dmabuf.runtime import READ, WRITE, activate, deactivate, rt
from dmabuf.runtime.controlled import ControlledRuntime


class Box:
    def __init__(self):
        self.v = 0


def all_failures(body, kind):
    """(preemptions, steps) of every failing execution of ``kind``, by exhaustive DFS."""
    strat = DFS()
    r = ControlledRuntime(strat)
    out = []
    activate(r)
    try:
        while True:
            strat.start()
            o = r.run(body)
            if o.kind == kind:
                out.append((r.preemptions, r.steps))
            if not strat.advance(o):
                break
    finally:
        deactivate(r)
    return out


def noisy_lost_update():
    box = Box()
    noise = [Box() for _ in range(3)]

    def inc(k):
        for _i in range(2):  # unrelated work before and after the racy increment
            rt().point("write", noise[k], WRITE)
        rt().point("read", box, READ)
        x = box.v
        rt().point("write", noise[k], WRITE)
        rt().point("write", box, WRITE)
        box.v = x + 1
        rt().point("write", noise[k], WRITE)

    ts = [dmabuf.spawn(inc, k) for k in range(2)]  # 2 tasks: exhaustive DFS stays at C(12,6) = 924
    for t in ts:
        t.join()
    assert box.v == 2, "lost update"


def abba3():
    locks = [Mutex(name=f"L{i}") for i in range(3)]
    noise = Box()

    def t(a, b):
        rt().point("write", noise, WRITE)
        mutex_lock(locks[a])
        mutex_lock(locks[b])
        mutex_unlock(locks[b])
        mutex_unlock(locks[a])

    ts = [dmabuf.spawn(t, 0, 1), dmabuf.spawn(t, 1, 2), dmabuf.spawn(t, 2, 0)]
    for x in ts:
        x.join()


@pytest.mark.parametrize("body,kind", [(noisy_lost_update, "exception"), (abba3, "deadlock")])
@pytest.mark.parametrize("strategy", ["dfs", "dpor", "random"])
def test_shrunk_within_1_2x_of_minimum(body, kind, strategy):
    fails = all_failures(body, kind)
    assert fails, "the bug must exist"
    min_pre = min(p for p, _ in fails)
    min_steps = min(s for p, s in fails if p == min_pre)
    kw = {"max_executions": 2000} if strategy == "random" else {}
    res = dmabuf.explore(body, strategy=strategy, seed=3, **kw)
    f = res.failure
    assert f is not None and f.kind == kind
    assert f.preemptions <= math.ceil(1.2 * min_pre)
    assert f.steps <= math.ceil(1.2 * min_steps)
    # the shrunk schedule still reproduces the same failure
    again = dmabuf.replay(body, f.schedule)
    assert again is not None and again.kind == kind
    assert again.steps == f.steps and again.preemptions == f.preemptions


def test_shrinking_reports_what_it_did():
    res = dmabuf.explore(noisy_lost_update, strategy="random", seed=5, max_executions=500)
    f = res.failure
    assert f is not None
    assert f.shrink_note.startswith(("Shrunk from", "Shrinking: already minimal"))
    assert f.shrink_note in str(f)


def test_shrinking_can_be_turned_off():
    res = dmabuf.explore(noisy_lost_update, strategy="random", seed=5, max_executions=500, shrink=False)
    assert res.failure is not None and res.failure.shrink_note == ""


def test_data_choices_are_lowered():
    def body():
        v = dmabuf.choose(10)
        assert v < 3, f"value {v}"

    res = dmabuf.explore(body, strategy="random", seed=1, max_executions=200)
    f = res.failure
    assert f is not None and f.kind == "exception"
    assert "value 3" in str(f.exception)  # the smallest failing value


def test_shrinking_stays_within_what_time_budget_left() -> None:
    """``time_budget`` bounds the whole call: the shrinker gets its own limit (5 s) or what the budget
    left, at least half a second, and the note says when the budget limited it."""
    now = time.perf_counter()
    assert shrink_budget(None, now) == MAX_SHRINK_SECONDS
    assert 0.5 <= shrink_budget(1.0, now - 0.2) <= 0.8 + 1e-6
    assert shrink_budget(1.0, now - 3.0) == 0.5
    assert shrink_budget(60.0, now) == MAX_SHRINK_SECONDS

    res = dmabuf.explore(noisy_lost_update, time_budget=0.3, database=None)
    assert res.failure is not None and "what time_budget left" in res.failure.shrink_note
    res = dmabuf.explore(noisy_lost_update, database=None)
    assert res.failure is not None and "time_budget" not in res.failure.shrink_note


# ------------------------------------------------------------- lock-order reports learnt across executions
def _take(first, second):
    mutex_lock(first)
    mutex_lock(second)
    mutex_unlock(second)
    mutex_unlock(first)


def noisy_orders_by_choice():
    """One lock order per execution (chosen), beside two tasks of unrelated steps: the inversion exists
    only across two executions, and a random or PCT search finds it with needless preemptions in both."""
    a, b = Mutex(name="lock_A"), Mutex(name="lock_B")

    def noise(k):
        for _ in range(3):
            rt().point("op", f"n{k}", WRITE)

    ts = [dmabuf.spawn(noise, k, name=f"noise{k}") for k in range(2)]

    def orders():
        if dmabuf.choose(2) == 0:
            _take(a, b)
        else:
            _take(b, a)

    t = dmabuf.spawn(orders, name="orders")
    for x in ts:
        x.join()
    t.join()


@pytest.mark.parametrize("strategy", ["random", "pct"])
def test_a_lock_order_report_of_two_executions_is_shrunk_in_both(strategy):
    """Every failure is minimised, including a lock-order report whose replay string holds the earlier
    execution it needs: both come back without preemptions, and the string still replays the report."""
    kw = {"depth": 3} if strategy == "pct" else {}
    r = dmabuf.explore(noisy_orders_by_choice, strategy=strategy, max_executions=300, seed=3, database=None, **kw)
    f = r.failure
    assert f is not None and f.kind == "kernel-warning", r
    assert f.preemptions == 0, f.shrink_note
    earlier, last = f.schedule.removeprefix("dmabuf-s2:").split("|")
    # without preemptions each run is its choice, then the tasks in id order: the two runs differ only there
    assert earlier.split(";")[1:] == last.split(";")[1:], f.schedule
    assert earlier.split(";")[0] != last.split(";")[0]
    assert "earlier execution" in f.shrink_note
    assert "Shrunk" in f.shrink_note or "minimal" in f.shrink_note
    again = dmabuf.replay(noisy_orders_by_choice, f.schedule)
    assert again is not None and again.kind == "kernel-warning" and again.message == f.message


def test_the_shrinker_drops_an_earlier_execution_the_report_does_not_need():
    """Given the report's run and two earlier runs of which one suffices, the shrinker keeps one."""
    from dmabuf.explore.replaying import _effective
    from dmabuf.explore.schedule import decode_runs
    from dmabuf.explore.shrink import shrink

    f = dmabuf.explore(noisy_orders_by_choice, database=None).failure
    assert f is not None and f.kind == "kernel-warning"
    earlier, last = decode_runs(f.schedule)
    rt_ = ControlledRuntime(DFS())
    activate(rt_)
    try:
        res = shrink(rt_, noisy_orders_by_choice, last, _outcome_of(rt_, [earlier, earlier], last), _effective,
                     training=[earlier, earlier])
    finally:
        deactivate(rt_)
    assert len(res.training) == 1 and res.training_before == 2
    assert res.passes["drop_execution"][1] == 1
    assert "needs 1 of the 2 earlier executions" in res.note()


def _outcome_of(rt_, training, last):
    """The outcome of ``last`` replayed after ``training`` taught the lock-order graph."""
    from dmabuf.explore.replaying import _effective, _replay_runs

    outcome, _rep, _trained = _replay_runs(rt_, noisy_orders_by_choice, [*training, last])
    outcome = _effective(outcome)
    assert outcome.kind == "kernel-warning"
    return outcome


def test_an_earlier_execution_cut_alone_is_what_the_failure_replays():
    """The last run is already minimal and only the earlier one shrinks: the failure's string holds the
    cut earlier run (as its note says), not the one it was found with."""
    from dmabuf.explore.replaying import _build_failure, lockdep_outcome_of_runs, track_lock_orders
    from dmabuf.explore.schedule import decode_runs

    raw = dmabuf.explore(
        noisy_orders_by_choice, strategy="random", seed=3, max_executions=300, database=None, shrink=False
    ).failure
    minimal = dmabuf.explore(noisy_orders_by_choice, database=None).failure
    assert raw is not None and minimal is not None
    earlier_raw = decode_runs(raw.schedule)[0]
    last = decode_runs(minimal.schedule)[-1]
    # the other order, found with task 3 (orders) run first: not the default (id order) schedule
    assert earlier_raw[0] != last[0] and earlier_raw[1].value == 3
    rt_ = ControlledRuntime(DFS())
    track_lock_orders(rt_)
    activate(rt_)
    try:
        f = _build_failure(rt_, noisy_orders_by_choice, last, lockdep_outcome_of_runs([earlier_raw, last]))
    finally:
        deactivate(rt_)
    assert f.kind == "kernel-warning" and "earlier execution cut" in f.shrink_note, f.shrink_note
    earlier, kept_last = decode_runs(f.schedule)
    assert kept_last == last and earlier != earlier_raw
    assert earlier[1:] == last[1:], f.schedule  # without preemptions: the tasks in id order, as the last
    assert dmabuf.replay(noisy_orders_by_choice, f.schedule) is not None
