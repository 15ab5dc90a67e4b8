"""The threads runtime: one OS thread per task, one model lock, real time, deadlock detection instead of
hangs, clean tear-down after failures."""

from __future__ import annotations

import threading
import time

import pytest

import dmabuf
from dmabuf.errors import DeadlockDetected, InternalError, InvalidArgument, LeakDetected
from dmabuf.kernel import msleep
from dmabuf.runtime import READ, WRITE, current_task, rt
from dmabuf.runtime.threads import ThreadRuntime
from dmabuf.sync import Mutex

MS = 1_000_000


class Obj:
    def __init__(self, name: str) -> None:
        self._dm_label = name


def _no_dmabuf_threads_left() -> bool:
    return not any(t.name.startswith("dmabuf:") and t.is_alive() for t in threading.enumerate())


def test_each_task_is_an_os_thread():
    caller = threading.get_ident()
    idents: dict[str, int] = {}

    def body():
        idents["main"] = threading.get_ident()
        assert threading.current_thread().name == "dmabuf:main"

        def child(name: str) -> None:
            rt().point("x", None, WRITE)
            idents[name] = threading.get_ident()
            assert threading.current_thread().name == f"dmabuf:{name}"

        ts = [dmabuf.spawn(child, f"c{i}", name=f"c{i}") for i in range(3)]
        for t in ts:
            t.join()

    dmabuf.run_threads(body)
    # main runs on a thread of its own too (so run_threads(timeout=) can bound a body that never returns)
    assert caller not in idents.values()
    assert len(set(idents.values())) == 4
    assert _no_dmabuf_threads_left()


def test_code_between_points_is_atomic():
    """Under the model lock a read-modify-write without a point in between never loses an update."""

    def body() -> int:
        box = {"n": 0}

        def inc() -> None:
            for _ in range(2000):
                rt().point("inc", box, WRITE)
                v = box["n"]
                for _ in range(3):
                    pass
                box["n"] = v + 1

        ts = [dmabuf.spawn(inc) for _ in range(4)]
        for t in ts:
            t.join()
        return box["n"]

    for seed in range(3):
        assert dmabuf.run_threads(body, seed=seed, jitter=True, timeout=60) == 8000


def test_real_time_clock():
    def body():
        t0 = rt().now_ns()
        msleep(20)
        assert rt().now_ns() - t0 >= 20 * MS
        w0 = time.monotonic_ns()
        assert rt().wait("never", Obj("never"), READ, lambda: False, 30 * MS) is False
        assert time.monotonic_ns() - w0 >= 30 * MS

    dmabuf.run_threads(body, timeout=30)


def test_notify_wakes_blocked_thread_promptly():
    def body():
        obj = Obj("flag")
        state = {"v": False}
        woke_at: list[int] = []

        def waiter() -> None:
            assert rt().wait("flag", obj, READ, lambda: state["v"]) is True
            woke_at.append(time.monotonic_ns())

        w = dmabuf.spawn(waiter)
        msleep(10)
        rt().point("set", obj, WRITE)
        state["v"] = True
        set_at = time.monotonic_ns()
        rt().notify(obj)
        w.join()
        assert woke_at[0] - set_at < 5_000 * MS

    dmabuf.run_threads(body, timeout=30)


def test_notify_of_unrelated_object_does_not_release_waiter():
    def body():
        obj, other = Obj("obj"), Obj("other")
        state = {"v": 0}
        seen: list[int] = []

        def waiter() -> None:
            rt().wait("w", obj, READ, lambda: state["v"] == 2)
            seen.append(state["v"])

        w = dmabuf.spawn(waiter)
        rt().point("set", obj, WRITE)
        state["v"] = 1
        rt().notify(other)
        rt().notify(obj)
        msleep(5)
        rt().point("set", obj, WRITE)
        state["v"] = 2
        rt().notify(obj)
        w.join()
        assert seen == [2]

    dmabuf.run_threads(body, timeout=30)


def test_missing_notify_is_rescued_when_every_task_blocks():
    """The waiter is never notified; when main blocks in join, every task is blocked, and the runtime
    re-checks the predicates before it declares a deadlock: the waiter runs."""

    def body():
        state = {"v": False}

        def waiter() -> bool:
            return rt().wait("w", Obj("o"), READ, lambda: state["v"])

        w = dmabuf.spawn(waiter)
        rt().point("set", None, WRITE)
        state["v"] = True  # no notify
        assert w.join() is True

    dmabuf.run_threads(body, timeout=30)


def test_three_task_cycle_is_detected():
    def body():
        locks = [Mutex(f"L{i}") for i in range(3)]
        gate = Obj("gate")
        holding = [False, False, False]

        def worker(i: int) -> None:
            locks[i].lock()
            rt().point("hold", gate, WRITE)
            holding[i] = True
            rt().notify(gate)
            rt().wait("all_hold", gate, READ, lambda: all(holding))
            locks[(i + 1) % 3].lock()

        ts = [dmabuf.spawn(worker, i, name=f"W{i}") for i in range(3)]
        for t in ts:
            t.join()

    with pytest.raises(DeadlockDetected) as ei:
        dmabuf.run_threads(body, timeout=30)
    msg = str(ei.value)
    assert "wait-for cycle" in msg
    for i in range(3):
        assert f"W{i} waits to lock L{(i + 1) % 3} held by W{(i + 1) % 3}" in msg
    assert _no_dmabuf_threads_left()


def test_blocked_with_timeout_pending_is_not_a_deadlock():
    def body():
        def waiter() -> bool:
            return rt().wait("w", Obj("never"), READ, lambda: False, 20 * MS)

        assert dmabuf.spawn(waiter).join() is False

    dmabuf.run_threads(body, timeout=30)


def test_self_deadlock_on_join_cycle():
    """Two tasks join each other: a cycle of joins."""

    def body():
        peers: dict[str, dmabuf.Task] = {}
        ready = Obj("ready")

        def a() -> None:
            rt().wait("peers", ready, READ, lambda: "b" in peers)
            peers["b"].join()

        def b() -> None:
            rt().wait("peers", ready, READ, lambda: "a" in peers)
            peers["a"].join()

        ta = dmabuf.spawn(a, name="A")
        tb = dmabuf.spawn(b, name="B")
        rt().point("publish", ready, WRITE)
        peers["a"], peers["b"] = ta, tb
        rt().notify(ready)
        ta.join()
        tb.join()

    with pytest.raises(DeadlockDetected, match="wait-for cycle"):
        dmabuf.run_threads(body, timeout=30)


class Boom(Exception):
    pass


def test_failure_tears_down_spinning_and_blocked_tasks():
    finals: list[str] = []

    def body():
        def spinner():
            try:
                while True:
                    rt().point("spin", None, WRITE)
            finally:
                finals.append("spinner")

        def blocked():
            try:
                rt().wait("never", Obj("never"), READ, lambda: False)
            finally:
                finals.append("blocked")

        dmabuf.spawn(spinner, name="spinner")
        dmabuf.spawn(blocked, name="blocked")
        msleep(5)
        raise Boom("main fails")

    t0 = time.monotonic()
    with pytest.raises(Boom, match="main fails"):
        dmabuf.run_threads(body, timeout=30)
    assert time.monotonic() - t0 < 10
    assert sorted(finals) == ["blocked", "spinner"]
    assert _no_dmabuf_threads_left()


def test_first_failure_wins():
    def body():
        def first():
            raise Boom("first")

        t = dmabuf.spawn(first, name="first")
        msleep(5)
        t.join()

    with pytest.raises(Boom, match="first"):
        dmabuf.run_threads(body, timeout=30)


def test_leak_reported_only_without_failure():
    def body():
        dmabuf.spawn(lambda: None, name="orphan")
        raise Boom("the exception wins over the leak")

    with pytest.raises(Boom):
        dmabuf.run_threads(body, timeout=30)


def test_leak_lists_every_problem():
    def body():
        dmabuf.spawn(lambda: None, name="orphan1")
        dmabuf.spawn(lambda: None, name="orphan2")
        Mutex("kept").lock()

    with pytest.raises(LeakDetected) as ei:
        dmabuf.run_threads(body, timeout=30)
    msg = str(ei.value)
    assert "orphan1" in msg and "orphan2" in msg and "kept" in msg and "main" in msg


def test_current_from_foreign_thread_is_an_internal_error():
    errors: list[BaseException] = []

    def body():
        r = rt()

        def foreign() -> None:
            try:
                r.current()
            except InternalError as e:
                errors.append(e)

        th = threading.Thread(target=foreign)
        th.start()
        th.join()

    dmabuf.run_threads(body)
    assert len(errors) == 1 and "not a dmabuf task" in str(errors[0])


def test_log_warning_needs_a_kernel_warning():
    def body():
        with pytest.raises(InternalError):
            rt().log_warning(ValueError("not a kernel warning"))

    dmabuf.run_threads(body)


def test_run_threads_rejects_non_callable():
    with pytest.raises(InvalidArgument):
        dmabuf.run_threads(42)  # type: ignore[arg-type]


def test_runtime_object_directly():
    r = ThreadRuntime(seed=3)
    assert r.kind == "threads"
    from dmabuf.runtime import activate, deactivate

    activate(r)
    try:
        assert r.run(lambda: current_task().name) == "main"
    finally:
        deactivate(r)
    assert [t.name for t in r.tasks()] == ["main"]
    assert r.tasks()[0].done


@pytest.mark.parametrize("seed", range(5))
def test_jitter_with_many_tasks_and_waits(seed):
    """Producer/consumer hand-off over wait/notify under jitter: nothing lost, nothing duplicated."""

    def body() -> list[int]:
        q: list[int] = []
        got: list[int] = []
        obj = Obj("queue")
        n = 200

        def producer(base: int) -> None:
            for i in range(n):
                rt().point("push", obj, WRITE)
                q.append(base + i)
                rt().notify(obj)

        def consumer() -> None:
            for _ in range(n):
                rt().wait("pop", obj, WRITE, lambda: bool(q))
                got.append(q.pop(0))

        ts = [dmabuf.spawn(producer, 0), dmabuf.spawn(producer, 1000)]
        cs = [dmabuf.spawn(consumer), dmabuf.spawn(consumer)]
        for t in ts + cs:
            t.join()
        return sorted(got)

    out = dmabuf.run_threads(body, seed=seed, jitter=True, timeout=60)
    assert out == list(range(200)) + list(range(1000, 1200))
