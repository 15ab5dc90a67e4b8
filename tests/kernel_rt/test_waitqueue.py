"""Wait queues: conditions re-checked only on wake-ups, timeouts, signals, lost wake-ups."""

from __future__ import annotations

import pytest

import dmabuf
from dmabuf.errors import InvalidArgument, KernelWarning
from dmabuf.kernel import (
    ERESTARTSYS,
    HZ,
    MAX_SCHEDULE_TIMEOUT,
    SpinLock,
    WaitQueueHead,
    init_waitqueue_head,
    jiffies,
    send_sig,
    spin_lock,
    spin_unlock,
    wait_event,
    wait_event_interruptible,
    wait_event_interruptible_timeout,
    wait_event_timeout,
    waitqueue_active,
    wake_up,
    wake_up_all,
    wake_up_interruptible,
    wake_up_process,
)


def test_wait_event_woken(run_on):
    def body():
        wq = WaitQueueHead()
        init_waitqueue_head(wq)
        flag = [False]

        def waiter():
            wait_event(wq, lambda: flag[0])
            return "ok"

        t = dmabuf.spawn(waiter)
        flag[0] = True
        wake_up(wq)
        assert t.join() == "ok"

    run_on(body)


def test_wake_up_all_wakes_every_waiter(run_on):
    def body():
        wq = WaitQueueHead()
        flag = [False]
        ts = [dmabuf.spawn(wait_event, wq, lambda: flag[0], name=f"w{i}") for i in range(2)]
        flag[0] = True
        wake_up_all(wq)
        for t in ts:
            t.join()

    run_on(body)


def test_lost_wakeup_is_a_deadlock():
    def body():
        wq = WaitQueueHead()
        flag = [False]
        t = dmabuf.spawn(wait_event, wq, lambda: flag[0])
        dmabuf.rt().point("set", flag)
        flag[0] = True  # forgot wake_up(wq)
        t.join()

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "deadlock"


def test_lost_wakeup_found_on_threads_too():
    def body():
        wq = WaitQueueHead()
        t = dmabuf.spawn(wait_event, wq, lambda: False)
        t.join()

    with pytest.raises(dmabuf.DeadlockDetected):
        dmabuf.run_threads(body, timeout=30)


def test_wake_up_without_condition_keeps_waiting(run_on):
    def body():
        wq = WaitQueueHead()
        state = [0]

        def waiter():
            wait_event(wq, lambda: state[0] == 2)
            return state[0]

        t = dmabuf.spawn(waiter)
        state[0] = 1
        wake_up(wq)  # condition still false: the waiter sleeps again
        state[0] = 2
        wake_up(wq)
        assert t.join() == 2

    run_on(body)


def test_timeout_return_values(run_on):
    def body():
        wq = WaitQueueHead()
        assert wait_event_timeout(wq, lambda: True, 5) == 5
        assert wait_event_timeout(wq, lambda: True, 0) == 1
        assert wait_event_timeout(wq, lambda: False, 0) == 0
        assert wait_event_timeout(wq, lambda: False, 2) == 0
        flag = [False]

        def waker():
            flag[0] = True
            wake_up(wq)

        t = dmabuf.spawn(waker)
        left = wait_event_timeout(wq, lambda: flag[0], 60 * HZ)
        t.join()
        assert 1 <= left <= 60 * HZ

    run_on(body)


def test_timeout_is_virtual_under_explorer():
    out = []

    def body():
        wq = WaitQueueHead()
        j = jiffies()
        out.append(wait_event_timeout(wq, lambda: False, 10 * HZ))
        out.append(jiffies() - j)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is None and out == [0, 10 * HZ]


def test_condition_true_at_timeout_counts():
    # the condition changes without a wake_up, but is re-checked once the timeout expired: returns 1
    out = []

    def body():
        wq = WaitQueueHead()
        flag = [False]

        def setter():
            dmabuf.rt().point("set", flag)
            flag[0] = True  # no wake_up

        t = dmabuf.spawn(setter)
        out.append(wait_event_timeout(wq, lambda: flag[0], HZ))
        t.join()

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is None
    assert set(out) == {HZ, 1}  # true at the first check, or only at the timeout


def test_interruptible(run_on):
    def body():
        wq = WaitQueueHead()
        t = dmabuf.spawn(wait_event_interruptible, wq, lambda: False)
        t2 = dmabuf.spawn(wait_event_interruptible_timeout, wq, lambda: False, 30 * HZ)
        send_sig(9, t)
        send_sig(9, t2)
        assert t.join() == -ERESTARTSYS
        assert t2.join() == -ERESTARTSYS
        me = dmabuf.rt().current()
        send_sig(9, me)
        assert wait_event_interruptible(wq, lambda: True) == 0  # true condition wins
        me.sigpending = False

    run_on(body)


def test_wake_up_interruptible_skips_uninterruptible_waiters():
    def body():
        wq = WaitQueueHead()
        flag = [False]
        t = dmabuf.spawn(wait_event, wq, lambda: flag[0])
        dmabuf.rt().point("set", flag)
        flag[0] = True
        wake_up_interruptible(wq)
        t.join()

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "deadlock"


def test_wake_up_interruptible(run_on):
    def body():
        wq = WaitQueueHead()
        flag = [False]
        t = dmabuf.spawn(wait_event_interruptible, wq, lambda: flag[0])
        flag[0] = True
        wake_up_interruptible(wq)
        assert t.join() == 0

    run_on(body)


def test_wake_up_process_makes_waiter_recheck(run_on):
    def body():
        wq = WaitQueueHead()
        flag = [False]
        t = dmabuf.spawn(wait_event, wq, lambda: flag[0])
        flag[0] = True
        wake_up_process(t)  # a direct wake-up of the task also re-checks (kthread_stop relies on it)
        t.join()

    run_on(body)


def test_waitqueue_active(run_on):
    def body():
        wq = WaitQueueHead()
        assert waitqueue_active(wq) is False
        flag = [False]
        t = dmabuf.spawn(wait_event, wq, lambda: flag[0])
        seen = waitqueue_active(wq)
        flag[0] = True
        wake_up(wq)
        t.join()
        assert seen in (True, False)
        assert waitqueue_active(wq) is False

    run_on(body)


def test_misuse(run_on):
    def body():
        wq = WaitQueueHead()
        with pytest.raises(InvalidArgument, match="callable"):
            wait_event(wq, True)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="WaitQueueHead"):
            wake_up(None)  # type: ignore[arg-type]
        lock = SpinLock()
        spin_lock(lock)
        with pytest.raises(KernelWarning, match="invalid context"):
            wait_event(wq, lambda: True)
        spin_unlock(lock)
        assert wait_event_timeout(wq, lambda: True, MAX_SCHEDULE_TIMEOUT) == MAX_SCHEDULE_TIMEOUT

    run_on(body)
