"""kthreads: run, create + wake, stop with the thread function's result, should_stop, misuse."""

from __future__ import annotations

import pytest

import dmabuf
from dmabuf.errors import InvalidArgument, KernelWarning
from dmabuf.kernel import (
    EINTR,
    EINVAL,
    TASK_INTERRUPTIBLE,
    Completion,
    WaitQueueHead,
    complete,
    kthread_create,
    kthread_run,
    kthread_should_stop,
    kthread_stop,
    schedule,
    set_current_state,
    wait_event_interruptible,
    wait_for_completion,
    wake_up_process,
)


def _sleeper(data):
    """The canonical kthread loop: sleep until stopped, count the wake-ups."""
    n = 0
    while True:
        set_current_state(TASK_INTERRUPTIBLE)
        if kthread_should_stop():
            set_current_state(0)
            break
        schedule()
        n += 1
    return data + 1000


def test_kthread_stop_returns_result(run_on):
    def body():
        t = kthread_run(_sleeper, 7, "sleeper")
        assert kthread_stop(t) == 1007
        assert t.done

    run_on(body)


def test_kthread_run_to_completion_without_stop(run_on):
    def body():
        c = Completion()

        def fn(data):
            complete(data)
            return 5

        t = kthread_run(fn, c, "oneshot")
        wait_for_completion(c)
        assert kthread_stop(t) == 5  # already exited: still returns its result

    run_on(body)


def test_kthread_create_needs_wake_up(run_on):
    def body():
        c = Completion()
        ran = []

        def fn(data):
            ran.append(data)
            complete(c)
            while not kthread_should_stop():
                set_current_state(TASK_INTERRUPTIBLE)
                if kthread_should_stop():
                    set_current_state(0)
                    break
                schedule()
            return 3

        t = kthread_create(fn, "x", "created")
        assert ran == []
        wake_up_process(t)
        wait_for_completion(c)
        assert ran == ["x"]
        assert kthread_stop(t) == 3

    run_on(body)


def test_kthread_created_and_stopped_never_runs(run_on):
    def body():
        ran = []
        t = kthread_create(ran.append, 1, "never")
        assert kthread_stop(t) == -EINTR
        assert ran == []

    run_on(body)


def test_stop_wakes_wait_event(run_on):
    def body():
        wq = WaitQueueHead()

        def fn(data):
            return wait_event_interruptible(wq, kthread_should_stop)

        t = kthread_run(fn, None, "waiter")
        assert kthread_stop(t) == 0  # kthread_stop's wake_up_process made it re-check

    run_on(body)


def test_unstopped_sleeping_kthread_is_reported():
    def body():
        kthread_run(_sleeper, 0, "forgotten")

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "deadlock"


def test_misuse(run_on):
    def body():
        with pytest.raises(InvalidArgument):
            kthread_run(None, 0)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            kthread_stop(None)  # type: ignore[arg-type]
        with pytest.raises(KernelWarning, match="not a kthread"):
            kthread_should_stop()  # main is not a kthread
        plain = dmabuf.spawn(lambda: 1)
        plain.join()
        with pytest.raises(KernelWarning, match="not a kthread"):
            kthread_stop(plain)
        t = kthread_run(_sleeper, 0)
        assert kthread_stop(t) == 1000
        with pytest.raises(KernelWarning, match="stopped already"):
            kthread_stop(t)

    run_on(body)


def test_log_mode_return_values(run_on):
    def body():
        from dmabuf.kernel import set_warn_mode

        set_warn_mode("log")
        plain = dmabuf.spawn(lambda: 1)
        plain.join()
        assert kthread_stop(plain) == -EINVAL

    with pytest.raises((AssertionError, KernelWarning), match="not a kthread"):
        run_on(body)
