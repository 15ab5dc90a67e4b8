"""Completions: done counter, waits with timeouts and signals, misuse, virtual time."""

from __future__ import annotations

import time

import pytest

import dmabuf
from dmabuf.errors import InvalidArgument, KernelWarning
from dmabuf.kernel import (
    ERESTARTSYS,
    HZ,
    UINT_MAX,
    Completion,
    SpinLock,
    complete,
    complete_all,
    completion_done,
    init_completion,
    jiffies,
    reinit_completion,
    send_sig,
    spin_lock,
    spin_unlock,
    try_wait_for_completion,
    wait_for_completion,
    wait_for_completion_interruptible,
    wait_for_completion_interruptible_timeout,
    wait_for_completion_timeout,
)


def test_complete_releases_waiter(run_on):
    def body():
        c = Completion()
        init_completion(c)
        seen = []

        def waiter():
            wait_for_completion(c)
            seen.append("woken")
            return c.done

        t = dmabuf.spawn(waiter)
        complete(c)
        assert t.join() == 0  # the wait consumed the one completion
        assert seen == ["woken"]

    run_on(body)


def test_done_counter_and_complete_all(run_on):
    def body():
        c = Completion()
        init_completion(c)
        assert not completion_done(c)
        assert try_wait_for_completion(c) is False
        complete(c)
        complete(c)
        assert c.done == 2
        assert completion_done(c)
        assert try_wait_for_completion(c) is True
        assert try_wait_for_completion(c) is True
        assert try_wait_for_completion(c) is False
        complete_all(c)
        assert c.done == UINT_MAX
        for _ in range(3):
            assert try_wait_for_completion(c) is True
        wait_for_completion(c)  # does not consume after complete_all
        complete(c)  # saturates
        assert c.done == UINT_MAX
        reinit_completion(c)
        assert c.done == 0 and not completion_done(c)

    run_on(body)


def test_double_complete_releases_two_waiters(run_on):
    def body():
        c = Completion()
        ts = [dmabuf.spawn(wait_for_completion, c, name=f"w{i}") for i in range(2)]
        complete(c)
        complete(c)
        for t in ts:
            t.join()
        assert c.done == 0

    run_on(body)


def test_single_complete_leaves_second_waiter_blocked():
    def body():
        c = Completion()
        ts = [dmabuf.spawn(wait_for_completion, c, name=f"w{i}") for i in range(2)]
        complete(c)
        for t in ts:
            t.join()

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "deadlock"


def test_timeout_return_values(run_on):
    def body():
        c = Completion()
        assert wait_for_completion_timeout(c, 0) == 0
        complete(c)
        assert wait_for_completion_timeout(c, 0) == 1  # available: at least 1
        assert wait_for_completion_timeout(c, 2) == 0  # nobody completes: times out (8 ms)
        complete(c)
        left = wait_for_completion_timeout(c, 5 * HZ)
        assert 1 <= left <= 5 * HZ
        assert c.done == 0

    run_on(body)


def test_timeout_with_completer(run_on):
    def body():
        c = Completion()
        t = dmabuf.spawn(complete, c)
        left = wait_for_completion_timeout(c, 60 * HZ)
        t.join()
        assert 1 <= left <= 60 * HZ

    run_on(body)


def test_interruptible(run_on):
    def body():
        c = Completion()

        def waiter():
            return wait_for_completion_interruptible(c)

        t = dmabuf.spawn(waiter)
        send_sig(9, t)
        assert t.join() == -ERESTARTSYS
        assert c.done == 0

    run_on(body)


def test_interruptible_completion_wins_over_signal(run_on):
    def body():
        c = Completion()
        complete(c)
        me = dmabuf.rt().current()
        send_sig(9, me)
        assert wait_for_completion_interruptible(c) == 0
        assert wait_for_completion_interruptible(c) == -ERESTARTSYS
        assert wait_for_completion_interruptible_timeout(c, HZ) == -ERESTARTSYS
        me.sigpending = False
        assert wait_for_completion_interruptible_timeout(c, 1) == 0

    run_on(body)


def test_wait_in_atomic_context_warns(run_on):
    def body():
        c = Completion()
        complete(c)
        lock = SpinLock()
        spin_lock(lock)
        with pytest.raises(KernelWarning, match="sleeping function called from invalid context"):
            wait_for_completion(c)
        with pytest.raises(KernelWarning):
            wait_for_completion_timeout(c, 1)
        complete(c)  # completing is fine in atomic context
        spin_unlock(lock)

    run_on(body)


def test_atomic_wait_is_reported_by_explorer():
    def body():
        c = Completion()
        complete(c)
        lock = SpinLock()
        spin_lock(lock)
        wait_for_completion(c)
        spin_unlock(lock)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "kernel-warning"


def test_type_checks(run_on):
    def body():
        for fn in (complete, complete_all, wait_for_completion, try_wait_for_completion, completion_done):
            with pytest.raises(InvalidArgument, match="Completion"):
                fn(None)
        with pytest.raises(InvalidArgument, match="timeout"):
            wait_for_completion_timeout(Completion(), 1.5)

    run_on(body)


def test_ten_second_timeout_is_virtual_under_explorer():
    out = []

    def body():
        c = Completion()
        start = jiffies()
        out.append(wait_for_completion_timeout(c, 10 * HZ))
        out.append(jiffies() - start)

    t0 = time.perf_counter()
    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is None
    assert time.perf_counter() - t0 < 2.0
    assert out == [0, 10 * HZ]


def test_two_waiters_one_complete_all(run_on):
    def body():
        c = Completion()
        ts = [dmabuf.spawn(wait_for_completion_timeout, c, 30 * HZ, name=f"w{i}") for i in range(2)]
        complete_all(c)
        assert all(t.join() >= 1 for t in ts)
        assert c.done == UINT_MAX

    run_on(body)
