"""Timers: arming, deleting, firing in atomic context, virtual time races, leaks."""

from __future__ import annotations

import time

import pytest

import dmabuf
from dmabuf.errors import InvalidArgument, KernelWarning
from dmabuf.kernel import (
    HZ,
    Completion,
    Mutex,
    TimerList,
    add_timer,
    complete,
    del_timer,
    del_timer_sync,
    jiffies,
    mod_timer,
    mutex_lock,
    mutex_unlock,
    timer_delete_sync,
    timer_pending,
    timer_setup,
    timer_shutdown_sync,
    wait_for_completion,
    wait_for_completion_timeout,
)


class DoneTimer(TimerList):
    """A timer embedded in a struct, by subclassing."""

    def __init__(self) -> None:
        super().__init__()
        self.done = Completion()
        self.fired = 0
        self.atomic = None


def _fire(t: DoneTimer) -> None:
    t.fired += 1
    t.atomic = dmabuf.rt().current().atomic_depth
    complete(t.done)


def test_fires_in_atomic_context(run_on):
    def body():
        t = DoneTimer()
        timer_setup(t, _fire, 0)
        assert mod_timer(t, jiffies() + 1) == 0
        wait_for_completion(t.done)
        assert t.fired == 1 and t.atomic == 1
        assert timer_pending(t) is False
        assert del_timer_sync(t) == 0

    run_on(body)


def test_mod_and_del_return_values(run_on):
    def body():
        t = DoneTimer()
        timer_setup(t, _fire, 0)
        assert timer_pending(t) is False
        assert mod_timer(t, jiffies() + 100 * HZ) == 0
        assert timer_pending(t) is True
        assert mod_timer(t, jiffies() + 200 * HZ) == 1
        assert del_timer(t) == 1
        assert del_timer(t) == 0
        assert timer_pending(t) is False
        t.expires = jiffies() + 100 * HZ
        add_timer(t)
        assert timer_pending(t) is True
        assert timer_delete_sync(t) == 1
        assert t.fired == 0

    run_on(body)


def test_add_timer_on_pending_warns(run_on):
    def body():
        t = DoneTimer()
        timer_setup(t, _fire, 0)
        t.expires = jiffies() + 100 * HZ
        add_timer(t)
        with pytest.raises(KernelWarning, match="already pending"):
            add_timer(t)
        del_timer_sync(t)

    run_on(body)


def test_sleeping_in_callback_warns():
    def body():
        m = Mutex()
        t = TimerList()

        def cb(timer):
            mutex_lock(m)
            mutex_unlock(m)

        timer_setup(t, cb, 0)
        mod_timer(t, jiffies() + 1)
        dmabuf.rt().wait("sleep", t, "read", lambda: False, 10 * 1_000_000_000 // HZ)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "kernel-warning"
    assert "invalid context" in res.failure.message


def test_equal_deadlines_give_both_outcomes():
    outcomes = []

    def body():
        t = DoneTimer()
        timer_setup(t, _fire, 0)
        mod_timer(t, jiffies() + 10 * HZ)
        ret = wait_for_completion_timeout(t.done, 10 * HZ)
        outcomes.append("completed" if ret else "timeout")
        del_timer_sync(t)

    t0 = time.perf_counter()
    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is None, res.failure
    assert set(outcomes) == {"completed", "timeout"}
    assert time.perf_counter() - t0 < 5.0


def test_pending_timer_at_end_is_a_leak():
    def body():
        t = DoneTimer()
        timer_setup(t, _fire, 0)
        mod_timer(t, jiffies() + 60 * HZ)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "leak"
    assert "still pending" in res.failure.message


def test_fired_timer_needs_no_delete():
    def body():
        t = DoneTimer()
        timer_setup(t, _fire, 0)
        mod_timer(t, jiffies() + 1)
        wait_for_completion(t.done)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is None


def test_del_timer_sync_waits_for_running_callback(run_on):
    def body():
        started = Completion()
        release = [False]
        log = []

        def cb(timer):
            complete(started)
            # spin (atomic context may not sleep) until main lets go
            dmabuf.rt().wait("spin", timer, "read", lambda: release[0])
            log.append("cb done")

        t = TimerList()
        timer_setup(t, cb, 0)
        mod_timer(t, jiffies() + 1)
        wait_for_completion(started)
        assert del_timer(t) == 0  # already fired: not pending, callback running

        def releaser():
            dmabuf.rt().point("release", t)
            release[0] = True
            dmabuf.rt().notify(t)

        r = dmabuf.spawn(releaser)
        assert del_timer_sync(t) == 0
        assert log == ["cb done"]
        r.join()

    run_on(body)


def test_del_timer_sync_with_lock_held_deadlocks():
    def body():
        m = Mutex()
        spin = [0]
        t = TimerList()

        def cb(timer):
            # the callback takes "m" as a spinning lock would: wait until free
            dmabuf.rt().wait("spin_on_m", m, "write", lambda: m.owner is None)
            spin[0] += 1

        timer_setup(t, cb, 0)
        mod_timer(t, jiffies() + 1)
        mutex_lock(m)
        dmabuf.rt().wait("sleep", t, "read", lambda: False, 2 * 1_000_000_000 // HZ)
        del_timer_sync(t)
        mutex_unlock(m)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "deadlock"


def test_periodic_timer_and_shutdown(run_on):
    def body():
        count = [0]
        done = Completion()

        def cb(timer):
            count[0] += 1
            if count[0] == 3:
                complete(done)
            mod_timer(timer, jiffies() + 1)

        t = TimerList()
        timer_setup(t, cb, 0)
        mod_timer(t, jiffies() + 1)
        wait_for_completion(done)
        timer_shutdown_sync(t)
        n = count[0]
        assert n >= 3
        assert mod_timer(t, jiffies() + 1) == 0  # shut down: ignored
        assert timer_pending(t) is False
        assert count[0] == n

    run_on(body, max_executions=2000)


def test_del_timer_sync_from_own_callback_warns():
    def body():
        t = TimerList()
        timer_setup(t, lambda tm: del_timer_sync(tm), 0)
        mod_timer(t, jiffies() + 1)
        dmabuf.rt().wait("sleep", t, "read", lambda: False, 4 * 1_000_000_000 // HZ)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "kernel-warning"
    assert "own callback" in res.failure.message


def test_misuse(run_on):
    def body():
        t = TimerList()
        with pytest.raises(InvalidArgument, match="timer_setup"):
            mod_timer(t, 5)
        with pytest.raises(InvalidArgument, match="callable"):
            timer_setup(t, None, 0)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="flags"):
            timer_setup(t, _fire, 1)
        with pytest.raises(InvalidArgument, match="TimerList"):
            mod_timer(None, 5)  # type: ignore[arg-type]
        timer_setup(t, _fire, 0)
        with pytest.raises(InvalidArgument, match="expires"):
            mod_timer(t, 1.5)  # type: ignore[arg-type]

    run_on(body)
