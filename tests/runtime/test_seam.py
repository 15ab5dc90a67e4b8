"""The runtime seam (``dmabuf.runtime._api``): the same bodies on real threads and under the explorer.

Every test either runs one body through the ``run_on`` fixture (real threads once, then every interleaving
under DFS) or checks both runners explicitly where the two report a failure differently (``run_threads``
raises, ``explore`` returns a failure of a given kind).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import dmabuf
from dmabuf.errors import DeadlockDetected, InvalidArgument, LeakDetected, NotInRuntime
from dmabuf.runtime import LOCAL, READ, WRITE, FieldIsNone, Task, TaskDone, current_task, rt
from dmabuf.sync import Mutex

MS = 1_000_000


class Obj:
    """A shared object to wait and notify on."""

    def __init__(self, name: str) -> None:
        self._dm_label = name


def _both(body: Callable[[], Any]) -> tuple[BaseException | None, dmabuf.ExploreResult]:
    """Run ``body`` on threads (capturing what it raises) and under DFS."""
    raised: BaseException | None = None
    try:
        dmabuf.run_threads(body, timeout=30)
    except BaseException as e:  # noqa: BLE001 - the test inspects it
        raised = e
    return raised, dmabuf.explore(body, strategy="dfs")


# ---------------------------------------------------------------------------------------------- spawn/join
def test_spawn_join_returns_result(run_on):
    def body():
        ts = [dmabuf.spawn(lambda a, b: a * b, i, 10) for i in range(3)]
        assert [t.join() for t in ts] == [0, 10, 20]
        # joining twice returns the same result again
        assert ts[2].join() == 20
        return "main-result"

    out = run_on(body)
    if run_on.kind == "threads":
        assert out == "main-result"


def test_body_result_under_explorer_is_ok():
    res = dmabuf.explore(lambda: 42, strategy="dfs")
    assert res.ok and res.complete and res.executions == 1


def test_spawn_with_keyword_name_and_args(run_on):
    def body():
        t = dmabuf.spawn(lambda *a: sum(a), 1, 2, 3, name="adder")
        assert t.name == "adder"
        assert t.join() == 6

    run_on(body)


def test_current_task_identity_and_names(run_on):
    def body():
        me = current_task()
        assert me.name == "main" and me.id == 0
        assert rt().current() is me
        seen: dict[str, Task] = {}

        def child(key: str) -> Task:
            rt().point("child", None, WRITE)
            seen[key] = current_task()
            return current_task()

        a = dmabuf.spawn(child, "a", name="alpha")
        b = dmabuf.spawn(child, "b")
        assert a.name == "alpha"
        assert b.name == f"task-{b.id}"
        assert a.id != b.id and 0 not in (a.id, b.id)
        assert a.join() is a and b.join() is b
        assert seen == {"a": a, "b": b}
        assert current_task() is me
        tasks = rt().tasks()
        assert tasks[0] is me and a in tasks and b in tasks
        assert [t.id for t in tasks] == sorted(t.id for t in tasks)
        assert a.done and b.done and not me.done

    run_on(body)


def test_runtime_kind(run_on):
    kinds: list[str] = []

    def body():
        kinds.append(rt().kind)

    run_on(body)
    assert set(kinds) == {"threads" if run_on.kind == "threads" else "controlled"}


def test_task_cannot_join_itself(run_on):
    def body():
        with pytest.raises(InvalidArgument, match="cannot join itself"):
            current_task().join()

    run_on(body)


def test_spawn_rejects_non_callable(run_on):
    def body():
        with pytest.raises(InvalidArgument, match="callable"):
            dmabuf.spawn(42)  # type: ignore[arg-type]

    run_on(body)


def test_spawn_and_kthreads_reject_a_name_that_is_not_a_str(run_on):
    """A task name is a str or None; anything else is a typed error naming the call (the runtime's own
    spawn may be compiled, where it would be a bare TypeError)."""
    from dmabuf.kernel import kthread_run

    def body():
        with pytest.raises(InvalidArgument, match=r"spawn\(\): the task name must be a str or None, got int"):
            dmabuf.spawn(lambda: None, name=7)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="kthread_run: the task name must be a str or None, got float"):
            kthread_run(lambda d: None, None, 1.5)  # type: ignore[arg-type]
        t = dmabuf.spawn(lambda: None, name="named")
        assert t.name == "named"
        t.join()

    run_on(body)


def test_outside_a_runtime():
    with pytest.raises(NotInRuntime):
        dmabuf.spawn(lambda: None)
    with pytest.raises(NotInRuntime):
        dmabuf.choose(2)
    with pytest.raises(NotInRuntime):
        rt()


# ---------------------------------------------------------------------------------------------- choose
def test_choose_in_range(run_on):
    def body():
        for n in (1, 2, 5):
            v = dmabuf.choose(n)
            assert isinstance(v, int) and 0 <= v < n
        assert dmabuf.choose(1) == 0

    run_on(body)


def test_choose_explores_every_value():
    seen: list[tuple[int, int]] = []

    def body():
        seen.append((dmabuf.choose(3), dmabuf.choose(2, "second")))

    res = dmabuf.explore(body, strategy="dfs")
    assert res.ok and res.complete and res.executions == 6
    assert sorted(seen) == [(a, b) for a in range(3) for b in range(2)]


def test_choose_on_threads_is_seeded():
    def body():
        return [dmabuf.choose(1000) for _ in range(10)]

    a = dmabuf.run_threads(body, seed=7)
    assert a == dmabuf.run_threads(body, seed=7)
    assert all(0 <= v < 1000 for v in a)
    assert a != dmabuf.run_threads(body, seed=8)


@pytest.mark.parametrize("bad", [0, -1, True, 2.0, "3", None])
def test_choose_rejects_bad_n(run_on, bad):
    def body():
        with pytest.raises(InvalidArgument):
            dmabuf.choose(bad)

    run_on(body)


# ---------------------------------------------------------------------------------------------- point/wait/notify
def test_waiter_released_exactly_when_predicate_true(run_on):
    """The waiter's predicate needs two notifies; it must not return after the first one."""

    def body():
        obj = Obj("flag")
        state = {"v": 0}
        seen: list[int] = []

        def waiter():
            ok = rt().wait("wait_flag", obj, READ, lambda: state["v"] >= 2)
            seen.append(state["v"])
            return ok

        w = dmabuf.spawn(waiter, name="waiter")
        for v in (1, 2):
            rt().point("set_flag", obj, WRITE)
            state["v"] = v
            rt().notify(obj)
        assert w.join() is True
        assert seen == [2]

    run_on(body)


class _Owned:
    def __init__(self) -> None:
        self.owner: object = "someone"


class _OwnedProperty:
    """The field is a property: FieldIsNone must read it through the class, not the instance dict."""

    def __init__(self) -> None:
        self._o: object = "someone"

    @property
    def owner(self) -> object:
        return self._o


def test_field_is_none_and_task_done_predicates():
    plain, prop = _Owned(), _OwnedProperty()
    free, free_prop = FieldIsNone(plain, "owner"), FieldIsNone(prop, "owner")
    assert not free() and not free.check() and not free_prop()
    plain.owner = None
    prop._o = None
    assert free() and free.check() and free_prop()
    assert repr(free) == "<_Owned.owner is None>"
    with pytest.raises(AttributeError):
        FieldIsNone(plain, "no_such_field")()

    def body():
        t = dmabuf.spawn(lambda: None, name="child")
        done = TaskDone(t)
        assert repr(done) == "<task 'child' done>"
        assert not done() and not done.check()  # it starts at main's next point (the join)
        t.join()
        assert done() and done.check()

    assert dmabuf.explore(body, strategy="dfs").ok


def test_wait_already_ready_returns_true(run_on):
    def body():
        assert rt().wait("noop", Obj("o"), READ, lambda: True) is True
        assert rt().wait("noop", Obj("o"), READ, lambda: True, 0) is True
        assert rt().wait("noop", Obj("o"), READ, lambda: True, 10 * MS) is True

    run_on(body)


def test_notify_task_wakes_task_waiting_on_other_object(run_on):
    def body():
        state = {"go": False}

        def waiter():
            return rt().wait("wait_go", Obj("elsewhere"), READ, lambda: state["go"])

        w = dmabuf.spawn(waiter, name="waiter")
        rt().point("set_go", None, WRITE)
        state["go"] = True
        rt().notify_task(w)
        assert w.join() is True

    run_on(body)


def test_wait_timeout_returns_false(run_on):
    def body():
        obj = Obj("never")
        t0 = rt().now_ns()
        assert rt().wait("wait_never", obj, READ, lambda: False, 2 * MS) is False
        assert rt().now_ns() - t0 >= 2 * MS
        assert rt().wait("wait_never", obj, READ, lambda: False, 0) is False
        assert rt().wait("wait_never", obj, READ, lambda: False, -5) is False

    run_on(body)


def test_wait_timeout_in_child_then_join(run_on):
    def body():
        def child():
            return rt().wait("wait_never", Obj("never"), READ, lambda: False, 1 * MS)

        assert dmabuf.spawn(child).join() is False

    run_on(body)


def test_wait_with_timeout_woken_in_time(run_on):
    """A notify well within the timeout releases the waiter with True (on threads the timeout is 30 s,
    under the explorer time cannot advance while the notifier is runnable)."""

    def body():
        obj = Obj("flag")
        state = {"v": False}

        def waiter():
            return rt().wait("wait_flag", obj, READ, lambda: state["v"], 30_000 * MS)

        w = dmabuf.spawn(waiter)
        rt().point("set_flag", obj, WRITE)
        state["v"] = True
        rt().notify(obj)
        assert w.join() is True

    run_on(body)


def test_join_timeout_raises_timeout_error(run_on):
    def body():
        obj = Obj("gate")
        state = {"open": False}

        def slow():
            rt().wait("gate", obj, READ, lambda: state["open"])
            return "done"

        t = dmabuf.spawn(slow, name="slow")
        with pytest.raises(TimeoutError, match="slow"):
            t.join(timeout=0.002)
        rt().point("open", obj, WRITE)
        state["open"] = True
        rt().notify(obj)
        assert t.join() == "done"

    run_on(body)


def test_now_ns_is_monotonic(run_on):
    def body():
        a = rt().now_ns()
        rt().point("x", None, WRITE)
        b = rt().now_ns()
        assert isinstance(a, int) and 0 <= a <= b

    run_on(body)


def test_local_access_kind_is_accepted(run_on):
    def body():
        rt().point("local", None, LOCAL)
        assert rt().wait("local_wait", None, LOCAL, lambda: True) is True

    run_on(body)


# ---------------------------------------------------------------------------------------------- task kinds
def test_unjoined_joinable_task_is_a_leak():
    def body():
        dmabuf.spawn(lambda: None, name="orphan")

    raised, res = _both(body)
    assert isinstance(raised, LeakDetected) and "orphan" in str(raised) and "never joined" in str(raised)
    assert res.failure is not None and res.failure.kind == "leak"
    assert "orphan" in res.failure.message and "never joined" in res.failure.message


def test_detached_task_need_not_be_joined(run_on):
    def body():
        log: list[str] = []

        def work():
            rt().point("work", None, WRITE)
            log.append("ran")

        rt().spawn(work, (), "detached", detached=True)

    run_on(body)


@pytest.mark.parametrize("runner", ["threads", "explore"])
def test_detached_task_runs_to_completion(runner):
    """A detached task is not killed at the end: it runs to its end even after main returned."""
    ran: list[int] = []

    def body():
        def work():
            for i in range(3):
                rt().point("work", None, WRITE)
                ran.append(i)

        rt().spawn(work, (), "detached", detached=True)

    if runner == "threads":
        dmabuf.run_threads(body, timeout=30)
        assert ran == [0, 1, 2]
    else:
        res = dmabuf.explore(body, strategy="dfs")
        assert res.ok and res.complete
        assert len(ran) == 3 * res.executions


def test_daemon_blocked_forever_is_killed_at_end(run_on):
    def body():
        def daemon():
            rt().wait("idle", Obj("never"), READ, lambda: False)

        rt().spawn(daemon, (), "daemon", daemon=True)

    run_on(body)


@pytest.mark.parametrize("runner", ["threads", "explore"])
def test_daemon_killed_at_end_runs_its_finally(runner):
    finals: list[str] = []

    def body():
        def daemon():
            try:
                while True:
                    rt().wait("idle", Obj("never"), READ, lambda: False)
            finally:
                finals.append("finally")

        rt().spawn(daemon, (), "daemon", daemon=True)

    if runner == "threads":
        dmabuf.run_threads(body, timeout=30)
        assert finals == ["finally"]
    else:
        res = dmabuf.explore(body, strategy="dfs")
        assert res.ok
        assert finals == ["finally"] * res.executions


def test_daemon_alone_is_not_a_deadlock_but_main_waiting_on_it_is():
    def body():
        gate = Obj("gate")

        def daemon():
            rt().wait("idle", gate, READ, lambda: False)

        rt().spawn(daemon, (), "daemon", daemon=True)
        rt().wait("wait_gate", gate, READ, lambda: False)

    raised, res = _both(body)
    assert isinstance(raised, DeadlockDetected)
    assert res.failure is not None and res.failure.kind == "deadlock"


# ---------------------------------------------------------------------------------------------- failures
class Boom(Exception):
    pass


def test_task_exception_is_reported():
    def body():
        def bad():
            rt().point("before", None, WRITE)
            raise Boom("kaputt")

        dmabuf.spawn(bad, name="bad").join()

    raised, res = _both(body)
    assert isinstance(raised, Boom) and str(raised) == "kaputt"
    f = res.failure
    assert f is not None and f.kind == "exception"
    assert isinstance(f.exception, Boom) and str(f.exception) == "kaputt"
    assert f.task == "bad"
    assert "Boom" in f.message and "kaputt" in f.message
    again = dmabuf.replay(body, f.schedule)
    assert again is not None and again.kind == "exception" and isinstance(again.exception, Boom)


def test_exception_in_main_is_reported():
    def body():
        raise KeyError("main-failed")

    raised, res = _both(body)
    assert isinstance(raised, KeyError)
    assert res.failure is not None and res.failure.kind == "exception"
    assert isinstance(res.failure.exception, KeyError) and res.failure.task == "main"


def test_exception_in_unjoined_task_is_reported_before_the_leak():
    def body():
        def bad():
            raise Boom("x")

        dmabuf.spawn(bad)

    raised, res = _both(body)
    assert isinstance(raised, Boom)
    assert res.failure is not None and res.failure.kind == "exception"


def test_exception_kills_blocked_tasks_on_threads():
    """A failing task ends the run; a task blocked forever does not make run_threads hang."""
    finals: list[str] = []

    def body():
        def blocked():
            try:
                rt().wait("never", Obj("never"), READ, lambda: False)
            finally:
                finals.append("killed")

        dmabuf.spawn(blocked, name="blocked")

        def bad():
            raise Boom("stop")

        dmabuf.spawn(bad, name="bad")

    with pytest.raises(Boom):
        dmabuf.run_threads(body, timeout=30)
    assert finals == ["killed"]


def test_lock_held_at_task_exit_is_a_leak():
    def body():
        m = Mutex("held_lock")

        def grab():
            m.lock()

        dmabuf.spawn(grab, name="grabber").join()

    raised, res = _both(body)
    assert isinstance(raised, LeakDetected)
    assert "grabber" in str(raised) and "held_lock" in str(raised)
    assert res.failure is not None and res.failure.kind == "leak"
    assert "grabber" in res.failure.message and "held_lock" in res.failure.message


def test_lock_held_by_main_at_end_is_a_leak():
    def body():
        Mutex("main_lock").lock()

    raised, res = _both(body)
    assert isinstance(raised, LeakDetected) and "main_lock" in str(raised)
    assert res.failure is not None and res.failure.kind == "leak"


def test_end_check_reports_leak():
    def body():
        rt().add_end_check(lambda: "the widget was never freed")
        rt().add_end_check(lambda: None)

    raised, res = _both(body)
    assert isinstance(raised, LeakDetected) and "widget" in str(raised)
    assert res.failure is not None and res.failure.kind == "leak" and "widget" in res.failure.message


def _abba_body() -> None:
    """Two tasks each take one lock, wait until the other holds its lock, then take the other one."""
    a, b = Mutex("lock_A"), Mutex("lock_B")
    flags = {"p": False, "q": False}
    gate = Obj("gate")

    def first(mine: Mutex, other: Mutex, me: str, them: str) -> None:
        mine.lock()
        rt().point("set", gate, WRITE)
        flags[me] = True
        rt().notify(gate)
        rt().wait("wait_other", gate, READ, lambda: flags[them])
        other.lock()
        other.unlock()
        mine.unlock()

    p = dmabuf.spawn(first, a, b, "p", "q", name="P")
    q = dmabuf.spawn(first, b, a, "q", "p", name="Q")
    p.join()
    q.join()


def test_deadlock_detected_on_threads_names_the_cycle():
    with pytest.raises(DeadlockDetected) as ei:
        dmabuf.run_threads(_abba_body, timeout=30)
    msg = str(ei.value)
    assert "wait-for cycle" in msg
    assert "P waits to lock lock_A held by Q" in msg or "P waits to lock lock_B held by Q" in msg
    for part in ("P", "Q", "lock_A", "lock_B"):
        assert part in msg


def test_deadlock_found_by_explorer():
    res = dmabuf.explore(_abba_body, strategy="dfs")
    f = res.failure
    assert f is not None and f.kind == "deadlock"
    assert "wait-for cycle" in f.message and "lock_A" in f.message and "lock_B" in f.message


def test_lost_wakeup_deadlock_without_cycle_on_threads():
    def body():
        rt().wait("forever", Obj("nothing"), READ, lambda: False)

    with pytest.raises(DeadlockDetected, match="nothing can wake them"):
        dmabuf.run_threads(body, timeout=30)
    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "deadlock"


# ---------------------------------------------------------------------------------------------- jitter/timeout
def _counter_body(tasks: int = 4, rounds: int = 25) -> Callable[[], int]:
    def body() -> int:
        m = Mutex("counter_lock")
        box = {"n": 0}

        def inc() -> None:
            for _ in range(rounds):
                with m:
                    rt().point("read", box, READ)
                    v = box["n"]
                    rt().point("write", box, WRITE)
                    box["n"] = v + 1

        ts = [dmabuf.spawn(inc) for _ in range(tasks)]
        for t in ts:
            t.join()
        return box["n"]

    return body


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_jitter_mode_stays_correct(seed):
    assert dmabuf.run_threads(_counter_body(), seed=seed, jitter=True, timeout=60) == 100


def test_jitter_mode_finds_unlocked_race_eventually():
    """With jitter, a lost update in an unlocked read-modify-write shows up on some seed."""

    def body() -> int:
        box = {"n": 0}

        def inc() -> None:
            for _ in range(20):
                rt().point("read", box, READ)
                v = box["n"]
                rt().point("write", box, WRITE)
                box["n"] = v + 1

        ts = [dmabuf.spawn(inc) for _ in range(4)]
        for t in ts:
            t.join()
        return box["n"]

    results = {dmabuf.run_threads(body, seed=s, jitter=True, timeout=60) for s in range(20)}
    assert all(r <= 80 for r in results)
    assert any(r < 80 for r in results)


def test_run_threads_timeout_with_unfinished_task():
    """main returns while a task keeps running: run_threads(timeout=) gives up with TimeoutError."""

    def body():
        def spin():
            while True:
                rt().point("spin", None, WRITE)

        dmabuf.spawn(spin, name="spinner")

    with pytest.raises(TimeoutError, match="still running"):
        dmabuf.run_threads(body, timeout=0.2)


_HANGING_JOIN = """
import dmabuf
from dmabuf.runtime import rt, WRITE

def body():
    def spin():
        while True:
            rt().point("spin", None, WRITE)
    dmabuf.spawn(spin).join()

try:
    dmabuf.run_threads(body, timeout=0.2)
except TimeoutError:
    print("TIMEOUT")
"""

_HANGING_MAIN = """
import dmabuf
from dmabuf.runtime import rt, WRITE

def body():
    while True:
        rt().point("spin", None, WRITE)

try:
    dmabuf.run_threads(body, timeout=0.2)
except TimeoutError:
    print("TIMEOUT")
"""


def _run_script(src: str) -> str:
    import subprocess
    import sys

    try:
        p = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        return "HUNG"
    return p.stdout.strip()


def test_run_threads_timeout_while_main_joins_forever():
    assert _run_script(_HANGING_JOIN) == "TIMEOUT"


def test_run_threads_timeout_while_main_never_returns():
    assert _run_script(_HANGING_MAIN) == "TIMEOUT"


def test_nested_runtimes_are_rejected():
    from dmabuf.errors import UsageError

    def inner():
        with pytest.raises(UsageError, match="already active"):
            dmabuf.run_threads(lambda: None)
        with pytest.raises(UsageError, match="already active"):
            dmabuf.explore(lambda: None)

    dmabuf.run_threads(inner)
    assert dmabuf.explore(inner, strategy="dfs").ok
