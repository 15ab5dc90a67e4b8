"""Virtual time under the explorer: it advances only when every task is blocked, straight to the earliest
deadline; reading it does not advance it; polling it without sleeping is a livelock."""

from __future__ import annotations

import time

import dmabuf
from dmabuf.kernel import (
    HZ,
    TASK_INTERRUPTIBLE,
    TASK_UNINTERRUPTIBLE,
    Completion,
    TimerList,
    complete,
    del_timer_sync,
    jiffies,
    mod_timer,
    msecs_to_jiffies,
    msleep,
    schedule_timeout,
    set_current_state,
    time_before,
    timer_setup,
    wait_for_completion,
    wait_for_completion_timeout,
    wake_up_process,
)
from dmabuf.runtime import READ, WRITE, rt

MS = 1_000_000
JIFFY_NS = 1_000_000_000 // HZ


class DoneTimer(TimerList):
    def __init__(self) -> None:
        super().__init__()
        self.done = Completion()
        self.fired_at: int | None = None


def _fire(t: DoneTimer) -> None:
    t.fired_at = jiffies()
    complete(t.done)


def test_ten_second_timeouts_take_milliseconds():
    """schedule_timeout, a timer and wait_for_completion_timeout of 10 s each, in several tasks: virtual
    time moves by exactly 10*HZ jiffies per sleep; the whole search takes far less than the 10 s."""
    observed: list[tuple[str, int]] = []

    def body():
        start = jiffies()
        assert start == 0

        def sleeper() -> int:
            s = jiffies()
            set_current_state(TASK_UNINTERRUPTIBLE)
            ret = schedule_timeout(10 * HZ)
            observed.append(("sleeper", jiffies() - s))
            return ret

        def timed_waiter() -> int:
            s = jiffies()
            never = Completion()
            ret = wait_for_completion_timeout(never, 10 * HZ)
            observed.append(("completion", jiffies() - s))
            return ret

        a = dmabuf.spawn(sleeper, name="sleeper")
        b = dmabuf.spawn(timed_waiter, name="waiter")
        t = DoneTimer()
        timer_setup(t, _fire, 0)
        mod_timer(t, start + 10 * HZ)
        wait_for_completion(t.done)
        assert t.fired_at == start + 10 * HZ
        assert a.join() == 0 and b.join() == 0
        assert jiffies() == start + 10 * HZ
        assert rt().now_ns() == 10 * 1_000_000_000
        del_timer_sync(t)

    t0 = time.perf_counter()
    res = dmabuf.explore(body, strategy="dfs")
    wall = time.perf_counter() - t0
    assert res.ok, res.failure
    assert res.complete and res.executions >= 1
    assert wall < 2.0
    assert observed and set(observed) == {("sleeper", 10 * HZ), ("completion", 10 * HZ)}


def test_consecutive_sleeps_add_up_exactly():
    def body():
        for k in range(1, 6):
            before = jiffies()
            set_current_state(TASK_UNINTERRUPTIBLE)
            assert schedule_timeout(k * HZ) == 0
            assert jiffies() - before == k * HZ
        assert jiffies() == 15 * HZ

    t0 = time.perf_counter()
    res = dmabuf.explore(body, strategy="dfs")
    assert res.ok and res.executions == 1
    assert time.perf_counter() - t0 < 2.0


def test_time_only_advances_when_every_task_is_blocked():
    """While ``worker`` can run, the sleeper's deadline does not make time move; the sleeper wakes at its
    deadline exactly (not later) once ``worker`` blocks."""
    seen_by_worker: list[int] = []
    wake_times: list[int] = []

    def body():
        gate = {"open": False}

        def sleeper():
            msleep(4)
            wake_times.append(rt().now_ns())

        def worker():
            for _ in range(5):
                rt().point("work", gate, WRITE)
                seen_by_worker.append(rt().now_ns())
            # now block until main opens the gate
            rt().wait("wait_gate", gate, READ, lambda: gate["open"])
            seen_by_worker.append(rt().now_ns())

        s = dmabuf.spawn(sleeper, name="sleeper")
        w = dmabuf.spawn(worker, name="worker")
        s.join()
        rt().point("open", gate, WRITE)
        gate["open"] = True
        rt().notify(gate)
        w.join()

    res = dmabuf.explore(body, strategy="dfs")
    assert res.ok and res.complete, res.failure
    assert res.executions >= 1
    # 5 points before the gate and one after, per execution; before the gate no time passed
    assert len(seen_by_worker) == 6 * res.executions
    assert all(v == 0 for i, v in enumerate(seen_by_worker) if i % 6 != 5)
    assert wake_times == [msecs_to_jiffies(4) * JIFFY_NS] * res.executions


def test_reading_jiffies_does_not_advance_time():
    def body():
        values = {jiffies() for _ in range(200)}
        assert values == {0}
        msleep(8)
        values = {jiffies() for _ in range(200)}
        assert values == {msecs_to_jiffies(8)}

    res = dmabuf.explore(body, strategy="dfs")
    assert res.ok and res.executions == 1


def test_time_jumps_to_earliest_deadline():
    wakes: list[list[tuple[str, int]]] = []

    def body():
        log: list[tuple[str, int]] = []

        def sleep(name: str, jif: int) -> None:
            set_current_state(TASK_UNINTERRUPTIBLE)
            schedule_timeout(jif)
            rt().point("log", log, WRITE)
            log.append((name, jiffies()))

        ts = [dmabuf.spawn(sleep, n, j, name=n) for n, j in (("c", 30), ("a", 10), ("b", 20))]
        for t in ts:
            t.join()
        wakes.append(log)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.ok and res.complete
    assert wakes and all(w == [("a", 10), ("b", 20), ("c", 30)] for w in wakes)


def test_polling_jiffies_without_sleeping_is_a_livelock():
    def body():
        deadline = jiffies() + HZ
        while time_before(jiffies(), deadline):
            pass

    t0 = time.perf_counter()
    res = dmabuf.explore(body, strategy="dfs", max_steps=2000)
    f = res.failure
    assert f is not None and f.kind == "livelock"
    assert "2000" in f.message and "polling time" in f.message
    assert time.perf_counter() - t0 < 5.0
    assert f.steps == 2001


def test_polling_livelock_trace_names_jiffies():
    def body():
        deadline = jiffies() + HZ
        while time_before(jiffies(), deadline):
            pass

    f = dmabuf.explore(body, strategy="dfs", max_steps=2000).failure
    assert f is not None and f.kind == "livelock"
    assert any(ev.op == "jiffies" for ev in f.trace)
    assert "jiffies" in f.message


def test_polling_jiffies_with_a_sleep_terminates():
    def body():
        deadline = jiffies() + HZ
        loops = 0
        while time_before(jiffies(), deadline):
            msleep(100)
            loops += 1
        assert loops == 10  # 100 ms = 25 jiffies; 250 jiffies
        assert jiffies() == deadline

    res = dmabuf.explore(body, strategy="dfs")
    assert res.ok, res.failure


def test_msleep_ordering():
    orders: list[list[str]] = []

    def body():
        order: list[str] = []

        def sleeper(name: str, ms: int) -> None:
            msleep(ms)
            rt().point("record", order, WRITE)
            order.append(name)

        long = dmabuf.spawn(sleeper, "10ms", 10, name="long")
        short = dmabuf.spawn(sleeper, "5ms", 5, name="short")
        rt().point("main", order, WRITE)
        long.join()
        short.join()
        orders.append(order)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.ok and res.complete
    assert orders and all(o == ["5ms", "10ms"] for o in orders)


def test_msleep_ordering_on_threads():
    order: list[str] = []

    def body():
        def sleeper(name: str, ms: int) -> None:
            msleep(ms)
            rt().point("record", order, WRITE)
            order.append(name)

        long = dmabuf.spawn(sleeper, "long", 300)
        short = dmabuf.spawn(sleeper, "short", 5)
        long.join()
        short.join()

    dmabuf.run_threads(body, timeout=30)
    assert order == ["short", "long"]


def test_timeout_fires_before_and_after_wake_up():
    """The set_current_state/schedule_timeout idiom raced against a timer that wakes the sleeper at the
    same jiffy as its timeout: the explorer runs both orders."""
    outcomes: list[str] = []

    def body():
        me = rt().current()

        class WakeTimer(TimerList):
            woke = -1

        def fire(t: WakeTimer) -> None:
            t.woke = wake_up_process(me)

        t = WakeTimer()
        timer_setup(t, fire, 0)
        mod_timer(t, jiffies() + 5)
        set_current_state(TASK_INTERRUPTIBLE)
        schedule_timeout(5)
        del_timer_sync(t)
        outcomes.append("woken by timer" if t.woke == 1 else "timed out first")
        assert jiffies() == 5

    res = dmabuf.explore(body, strategy="dfs")
    assert res.ok and res.complete, res.failure
    assert set(outcomes) == {"woken by timer", "timed out first"}


def test_completion_timeout_races_with_completing_sleeper():
    """wait_for_completion_timeout vs a task that msleeps to the same instant and then completes."""
    outcomes: list[int] = []

    def body():
        done = Completion()

        def completer() -> None:
            msleep(40)  # 10 jiffies
            complete(done)

        c = dmabuf.spawn(completer, name="completer")
        ret = wait_for_completion_timeout(done, msecs_to_jiffies(40))
        outcomes.append(ret)
        c.join()

    res = dmabuf.explore(body, strategy="dfs")
    assert res.ok and res.complete, res.failure
    # 0: the timeout came first; 1: completed at the last jiffy (at least 1 is returned)
    assert set(outcomes) == {0, 1}


def test_early_wake_up_returns_remaining_jiffies():
    results: list[int] = []

    def body():
        def sleeper() -> int:
            set_current_state(TASK_INTERRUPTIBLE)
            return schedule_timeout(100)

        s = dmabuf.spawn(sleeper, name="sleeper")
        msleep(40)  # 10 jiffies
        woke = wake_up_process(s)
        results.append(s.join())
        assert woke == 1

    res = dmabuf.explore(body, strategy="dfs")
    assert res.ok, res.failure
    assert set(results) == {90}
