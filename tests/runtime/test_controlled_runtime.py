"""The controlled (greenlet) runtime: pooling and reuse of greenlets, tear-down of killed tasks, nested and
sequential spawns, spawns inside a task that is being advanced, exceptions in nested tasks, deciders."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from greenlet import getcurrent

import dmabuf
from dmabuf.errors import TaskKilled
from dmabuf.kernel import msleep
from dmabuf.runtime import READ, WRITE, Task, activate, current_task, deactivate, rt
from dmabuf.runtime.controlled import ControlledRuntime, Outcome
from dmabuf.sync import Mutex

MS = 1_000_000


class First:
    """Decider that always picks the first enabled task (lowest id) and data value 0; counts its calls."""

    def __init__(self) -> None:
        self.sched_calls: list[tuple[list[int], int | None]] = []
        self.data_calls: list[tuple[int, str]] = []

    def sched(self, r: ControlledRuntime, options: list[Task], cur: Task | None) -> int:
        self.sched_calls.append(([t.id for t in options], None if cur is None else cur.id))
        return 0

    def data(self, r: ControlledRuntime, n: int, label: str) -> int:
        self.data_calls.append((n, label))
        return n - 1


class Last(First):
    """Always the last enabled task (highest id): switches away from the current task whenever it can."""

    def sched(self, r: ControlledRuntime, options: list[Task], cur: Task | None) -> int:
        super().sched(r, options, cur)
        return len(options) - 1


class Other(First):
    """Switches away from the current task whenever another one is enabled."""

    def sched(self, r: ControlledRuntime, options: list[Task], cur: Task | None) -> int:
        super().sched(r, options, cur)
        for i, t in enumerate(options):
            if t is not cur:
                return i
        return 0


def run_with(
    decider: Any, body: Callable[[], Any], times: int = 1, **kw: Any
) -> tuple[ControlledRuntime, Outcome]:
    r = ControlledRuntime(decider, **kw)
    activate(r)
    try:
        out = r.run(body)
        for _ in range(times - 1):
            out = r.run(body)
    finally:
        deactivate(r)
    return r, out


def _locked_increments(tasks: int = 3, rounds: int = 2) -> Callable[[], int]:
    def body() -> int:
        m = Mutex("m")
        box = {"n": 0}

        def inc() -> None:
            for _ in range(rounds):
                with m:
                    rt().point("read", box, READ)
                    v = box["n"]
                    rt().point("write", box, WRITE)
                    box["n"] = v + 1

        ts = [dmabuf.spawn(inc) for _ in range(tasks)]

        def idle() -> None:
            rt().wait("idle", None, READ, lambda: False)

        rt().spawn(idle, (), "daemon", daemon=True)
        for t in ts:
            t.join()
        return box["n"]

    return body


# ---------------------------------------------------------------------------------------------- greenlet pool
@pytest.mark.parametrize("decider", [First, Last, Other])
def test_greenlet_pool_stays_bounded_over_many_executions(decider):
    r = ControlledRuntime(decider())
    body = _locked_increments()
    sizes = set()
    activate(r)
    try:
        for _ in range(2000):
            out = r.run(body)
            assert out.ok, out
            assert out.result == 6
            sizes.add(len(r._pool))
    finally:
        deactivate(r)
    # main + 3 workers + 1 daemon: never more greenlets than tasks of one execution
    assert max(sizes) <= 5


def test_greenlets_are_reused_across_executions():
    seen: set[int] = set()
    keep: list[Any] = []

    def body():
        def child():
            g = getcurrent()
            seen.add(id(g))
            keep.append(g)  # keep alive so ids are not recycled by the allocator
            rt().point("x", None, WRITE)

        a = dmabuf.spawn(child)
        b = dmabuf.spawn(child)
        a.join()
        b.join()

    r, out = run_with(First(), body, times=200)
    assert out.ok
    assert len(seen) <= 3


def test_five_thousand_executions_complete_quickly():
    """Exhaustive DFS on a small program; executions reuse greenlets, so thousands take well under the
    generous bound here (the benchmark measures the real rate)."""
    body = _locked_increments(tasks=3, rounds=1)
    t0 = time.perf_counter()
    total = 0
    while total < 5000:
        res = dmabuf.explore(body, strategy="dfs")
        assert res.ok and res.complete
        total += res.executions
    assert time.perf_counter() - t0 < 20


def test_pool_reuse_within_one_execution_join_then_spawn():
    """A task that finished returns its greenlet to the pool; the next spawn takes it again."""

    def body():
        out = []
        for i in range(10):

            def work(i: int = i) -> int:
                rt().point("work", None, WRITE)
                return i * i

            t = dmabuf.spawn(work, name=f"w{i}")
            out.append(t.join())
        assert out == [i * i for i in range(10)]

    r, o = run_with(First(), body)
    assert o.ok, o
    assert len(r._pool) <= 2
    res = dmabuf.explore(body, strategy="dfs")
    assert res.ok and res.complete and res.executions == 1


# ---------------------------------------------------------------------------------------------- killing
def test_killed_task_runs_finally_without_model_operations():
    log: list[str] = []

    def body():
        gate = object()

        def daemon():
            try:
                rt().wait("idle", gate, READ, lambda: False)
            except Exception:  # noqa: BLE001 - TaskKilled must not be an Exception
                log.append("swallowed")
            finally:
                log.append("finally")
                for what, op in (
                    ("point", lambda: rt().point("late", gate, WRITE)),
                    ("wait", lambda: rt().wait("late", gate, READ, lambda: True)),
                    ("spawn", lambda: rt().spawn(lambda: None)),
                    ("choose", lambda: rt().choose(2)),
                    ("lock", lambda: Mutex().lock()),
                ):
                    try:
                        op()
                        log.append(what + " ran")
                    except TaskKilled:
                        log.append(what + " killed")

        rt().spawn(daemon, (), "daemon", daemon=True)

    _, out = run_with(First(), body)
    assert out.ok, out
    assert log == ["finally", "point killed", "wait killed", "spawn killed", "choose killed", "lock killed"]


def test_killed_tasks_at_end_of_each_explored_execution():
    finals: list[int] = []

    def body():
        m = Mutex()

        def daemon(i: int) -> None:
            try:
                while True:
                    with m:
                        rt().point("spin", m, READ)
                    rt().wait("idle", m, READ, lambda: False)
            finally:
                finals.append(i)

        for i in range(2):
            rt().spawn(daemon, (i,), f"d{i}", daemon=True)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.ok and res.complete
    assert sorted(finals) == sorted([0, 1] * res.executions)


def test_execution_after_failure_starts_clean():
    """A failing execution (tasks still blocked at the point of failure) is torn down; the next execution
    of the same runtime object starts from fresh state."""
    state = {"fail": True}

    def body():
        def blocked():
            rt().wait("never", None, READ, lambda: False)

        t = dmabuf.spawn(blocked, name="blocked")
        if state["fail"]:
            raise RuntimeError("first execution fails")
        rt().point("x", None, WRITE)
        _ = t

    r = ControlledRuntime(First())
    activate(r)
    try:
        out = r.run(body)
        assert out.kind == "exception" and out.task is not None and out.task.name == "main"
        state["fail"] = False
        out = r.run(body)
        # now `blocked` is never joined and blocked forever: a deadlock of the new execution
        assert out.kind == "deadlock"
        assert [t.name for t in r.tasks()] == ["main", "blocked"]
        assert r.now == 0 and r.steps >= 1
    finally:
        deactivate(r)


# ---------------------------------------------------------------------------------------------- spawn shapes
def test_spawn_starts_the_new_task_at_the_spawners_next_point():
    """A spawned task starts at its spawner's next scheduling point, before the decision made there: by
    the time any task goes on, it has run up to its own first point (code before it is local)."""

    def body():
        seen: list[str] = []

        def child():
            seen.append("before first point")
            rt().point("x", None, WRITE)
            seen.append("after")

        t = dmabuf.spawn(child)
        assert seen == []
        rt().point("y", None, WRITE)
        assert seen[0] == "before first point"
        t.join()
        assert seen == ["before first point", "after"]

    res = dmabuf.explore(body, strategy="dfs")
    assert res.ok and res.complete and res.executions == 2, res  # x before y, or y before x


def test_nested_spawn(run_on):
    def body():
        def leaf(x: int) -> int:
            rt().point("leaf", None, WRITE)
            return x + 1

        def mid(x: int) -> int:
            rt().point("mid", None, WRITE)
            a = dmabuf.spawn(leaf, x, name=f"leaf{x}a")
            b = dmabuf.spawn(leaf, 10 * x, name=f"leaf{x}b")
            return a.join() + b.join()

        ts = [dmabuf.spawn(mid, i, name=f"mid{i}") for i in (1, 2)]
        assert [t.join() for t in ts] == [2 + 11, 3 + 21]
        assert len(rt().tasks()) == 7

    run_on(body)


def test_deeply_nested_spawn_chain(run_on):
    def body():
        def level(n: int) -> int:
            rt().point("level", None, WRITE)
            if n == 0:
                return 0
            return 1 + dmabuf.spawn(level, n - 1, name=f"level{n - 1}").join()

        assert dmabuf.spawn(level, 30).join() == 30

    run_on(body)


def test_join_then_spawn_sequences(run_on):
    def body():
        m = Mutex()
        box = {"n": 0}

        def inc(k: int) -> int:
            for _ in range(k):
                with m:
                    rt().point("inc", box, WRITE)
                    box["n"] += 1
            return k

        a = dmabuf.spawn(inc, 1)
        assert a.join() == 1
        b = dmabuf.spawn(inc, 2)
        c = dmabuf.spawn(inc, 1)
        assert b.join() == 2
        d = dmabuf.spawn(inc, 1)
        assert c.join() + d.join() == 2
        assert box["n"] == 5

    run_on(body)


def test_spawn_inside_an_advancing_task(run_on):
    """``sleeper`` wakes from msleep (a LOCAL step) while ``main`` is the task making the decision, so the
    runtime advances ``sleeper`` from ``main``'s greenlet; ``sleeper`` then spawns and joins a child."""

    def body():
        log: list[str] = []

        def child() -> str:
            rt().point("child", None, WRITE)
            log.append("child")
            return "from child"

        def sleeper() -> str:
            msleep(1)
            t = dmabuf.spawn(child, name="child")
            got = t.join()
            log.append("sleeper")
            return got

        s = dmabuf.spawn(sleeper, name="sleeper")
        rt().point("main", None, WRITE)
        assert s.join() == "from child"
        assert log == ["child", "sleeper"]

    run_on(body)


def test_spawn_from_task_woken_by_local_join(run_on):
    """A task whose join becomes ready when its target finishes (a LOCAL step run by the finishing task's
    greenlet) spawns more tasks."""

    def body():
        def leaf(i: int) -> int:
            rt().point("leaf", None, WRITE)
            return i

        def parent() -> int:
            first = dmabuf.spawn(leaf, 1)
            total = first.join()
            more = [dmabuf.spawn(leaf, i) for i in (2, 3)]
            return total + sum(t.join() for t in more)

        ps = [dmabuf.spawn(parent) for _ in range(2)]
        assert [p.join() for p in ps] == [6, 6]

    run_on(body)


class Boom(Exception):
    pass


def test_exception_in_grandchild_is_reported():
    def body():
        def grandchild():
            rt().point("gc", None, WRITE)
            raise Boom("deep")

        def child():
            rt().point("c", None, WRITE)
            return dmabuf.spawn(grandchild, name="grandchild").join()

        dmabuf.spawn(child, name="child").join()

    with pytest.raises(Boom, match="deep"):
        dmabuf.run_threads(body, timeout=30)
    res = dmabuf.explore(body, strategy="dfs")
    f = res.failure
    assert f is not None and f.kind == "exception" and f.task == "grandchild"
    assert isinstance(f.exception, Boom)


def test_exception_in_task_spawned_by_advanced_task():
    def body():
        def bad():
            raise Boom("spawned by a sleeper")

        def sleeper():
            msleep(1)
            dmabuf.spawn(bad, name="bad").join()

        s = dmabuf.spawn(sleeper, name="sleeper")
        rt().point("main", None, WRITE)
        s.join()

    with pytest.raises(Boom):
        dmabuf.run_threads(body, timeout=30)
    res = dmabuf.explore(body, strategy="dfs")
    f = res.failure
    assert f is not None and f.kind == "exception" and f.task == "bad"


def test_exception_before_first_point_of_spawned_task():
    """The task fails as it starts (before its first point), at its spawner's next scheduling point."""

    def body():
        def bad():
            raise Boom("at once")

        t = dmabuf.spawn(bad, name="bad")
        rt().point("after", None, WRITE)
        t.join()

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "exception" and res.failure.task == "bad"


def test_a_task_spawned_just_before_the_execution_ends_never_runs_and_its_greenlet_is_reused():
    """The spawner fails before its next scheduling point: the queued task never started, so it has
    nothing to unwind; the failure is the spawner's, and the runtime's next execution runs normally."""
    from dmabuf.explore.strategies import DFS

    ran: list[str] = []

    def child() -> None:
        ran.append("child")
        rt().point("c", None, WRITE)

    def failing() -> None:
        dmabuf.spawn(child, name="never")
        raise Boom("before any point")

    def fine() -> None:
        ts = [dmabuf.spawn(child, name=f"c{k}") for k in range(3)]
        for t in ts:
            t.join()

    r = ControlledRuntime(DFS())
    activate(r)
    try:
        r.decider.start()
        o = r.run(failing)
        assert o.kind == "exception" and o.task is not None and o.task.name == "main"
        assert ran == [] and all(t.done for t in r.tasks())
        pooled = len(r._pool)
        r.decider.start()
        assert r.run(fine).kind == "ok"
        assert ran == ["child"] * 3 and len(r._pool) >= pooled
    finally:
        deactivate(r)


# ---------------------------------------------------------------------------------------------- decisions
def test_counts_two_tasks_three_points():
    def body():
        def work():
            for _ in range(3):
                rt().point("w", None, WRITE)

        a, b = dmabuf.spawn(work), dmabuf.spawn(work)
        a.join()
        b.join()

    assert dmabuf.explore(body, strategy="dfs").executions == 20
    assert dmabuf.explore(body, strategy="dfs", preemption_bound=0).executions == 2


def test_decider_sees_enabled_tasks_in_id_order_and_current():
    def body():
        def work():
            rt().point("w", None, WRITE)

        a, b = dmabuf.spawn(work), dmabuf.spawn(work)
        rt().point("main", None, WRITE)
        a.join()
        b.join()

    d = First()
    _, out = run_with(d, body)
    assert out.ok
    assert d.sched_calls[0] == ([0, 1, 2], 0)
    for ids, _cur in d.sched_calls:
        assert ids == sorted(ids) and len(ids) > 1


def test_decider_data_choice_and_single_choice_is_free():
    d = First()

    def body():
        assert dmabuf.choose(1) == 0
        assert dmabuf.choose(4, "colour") == 3

    _, out = run_with(d, body)
    assert out.ok
    assert d.data_calls == [(4, "colour")]


def test_preemptions_are_counted():
    def body():
        def work():
            for _ in range(2):
                rt().point("w", None, WRITE)

        a, b = dmabuf.spawn(work), dmabuf.spawn(work)
        a.join()
        b.join()

    r, out = run_with(First(), body)
    assert out.ok and r.preemptions == 0
    r, out = run_with(Other(), body)
    # main blocks in join: a: w; b: w (preempts a); a: w (preempts b); a exits; b is alone: b: w
    assert out.ok and r.preemptions == 2


def test_outcome_kinds_from_run():
    def deadlock():
        m = Mutex("only")
        m.lock()

        def other():
            m.lock()

        dmabuf.spawn(other, name="other").join()

    _, out = run_with(First(), deadlock)
    assert out.kind == "deadlock"
    assert sorted(out.extra["cycle"]) == ["main", "other"]
    assert "wait-for cycle" in out.message

    def spin():
        while True:
            rt().point("spin", None, WRITE)

    _, out = run_with(First(), spin, max_steps=50)
    assert out.kind == "livelock" and "50" in out.message

    _, out = run_with(First(), lambda: "value")
    assert out.ok and out.result == "value" and repr(out).startswith("<Outcome ok")


def test_virtual_clock_restarts_each_execution():
    starts: list[int] = []

    def body():
        starts.append(rt().now_ns())
        msleep(5)
        assert rt().now_ns() >= 5 * MS

    _, out = run_with(First(), body, times=3)
    assert out.ok
    assert starts == [0, 0, 0]


def test_only_one_task_runs_between_points():
    """Code between two points of one task is atomic: interleaving never splits it."""

    def body():
        box = {"n": 0, "bad": False}

        def work():
            for _ in range(2):
                rt().point("w", box, WRITE)
                v = box["n"]
                box["n"] = v + 1  # no point in between: atomic
                if box["n"] != v + 1:
                    box["bad"] = True

        ts = [dmabuf.spawn(work) for _ in range(3)]
        for t in ts:
            t.join()
        assert box["n"] == 6 and not box["bad"]
        assert current_task().name == "main"

    res = dmabuf.explore(body, strategy="dfs")
    assert res.ok and res.complete and res.executions == 90  # 6! / (2! 2! 2!)
