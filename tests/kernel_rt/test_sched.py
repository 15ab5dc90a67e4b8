"""``dmabuf.kernel.sched``: jiffies and conversions, wrap-safe comparisons, schedule_timeout return values,
the ``set_current_state``/``schedule`` idiom with ``wake_up_process``, and signals."""

from __future__ import annotations

import pytest

import dmabuf
from dmabuf.errors import InvalidArgument, KernelWarning
from dmabuf.kernel import (
    HZ,
    MAX_SCHEDULE_TIMEOUT,
    READ_ONCE,
    TASK_INTERRUPTIBLE,
    TASK_RUNNING,
    TASK_UNINTERRUPTIBLE,
    WRITE_ONCE,
    current,
    flush_signals,
    in_atomic,
    jiffies,
    jiffies_to_msecs,
    msecs_to_jiffies,
    msleep,
    msleep_interruptible,
    schedule,
    schedule_timeout,
    schedule_timeout_interruptible,
    schedule_timeout_uninterruptible,
    send_sig,
    set_current_state,
    set_warn_mode,
    signal_pending,
    time_after,
    time_after_eq,
    time_before,
    time_before_eq,
    usecs_to_jiffies,
    wake_up_process,
)
from dmabuf.runtime import WRITE, rt

SIGTERM = 15
WRAP = 1 << 64


def _explore_ok(body) -> dmabuf.ExploreResult:
    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is None, str(res.failure)
    assert res.complete
    return res


# ---------------------------------------------------------------------------------------------- time units
def test_hz_and_conversions():
    assert HZ == 250
    assert msecs_to_jiffies(0) == 0
    assert msecs_to_jiffies(1) == 1  # rounded up
    assert msecs_to_jiffies(4) == 1
    assert msecs_to_jiffies(5) == 2
    assert msecs_to_jiffies(1000) == HZ
    assert msecs_to_jiffies(-1) == MAX_SCHEDULE_TIMEOUT
    assert usecs_to_jiffies(0) == 0
    assert usecs_to_jiffies(1) == 1
    assert usecs_to_jiffies(4000) == 1
    assert usecs_to_jiffies(4001) == 2
    assert usecs_to_jiffies(1_000_000) == HZ
    assert jiffies_to_msecs(1) == 4
    assert jiffies_to_msecs(HZ) == 1000
    for ms in (0, 4, 8, 1000, 123_456):
        assert jiffies_to_msecs(msecs_to_jiffies(ms)) == ms


def test_time_after_and_friends():
    assert time_after(2, 1) and not time_after(1, 2) and not time_after(1, 1)
    assert time_before(1, 2) and not time_before(2, 1) and not time_before(1, 1)
    assert time_after_eq(1, 1) and time_after_eq(2, 1) and not time_after_eq(1, 2)
    assert time_before_eq(1, 1) and time_before_eq(1, 2) and not time_before_eq(2, 1)


@pytest.mark.parametrize("before", [WRAP - 1, WRAP - 10, WRAP - HZ])
def test_time_after_is_wrap_safe(before):
    after = (before + 2 * HZ) % WRAP  # a small count past the wrap
    assert after < before  # numerically smaller ...
    assert time_after(after, before)  # ... but later
    assert time_before(before, after)
    assert time_after_eq(after, before) and time_before_eq(before, after)
    assert not time_after(before, after)
    assert not time_before(after, before)


def test_time_after_half_range():
    """More than half the range apart, the comparison flips, as with the kernel's signed difference."""
    assert time_after(1 << 62, 0)
    assert not time_after((1 << 63) + 1, 0)
    assert time_before((1 << 63) + 1, 0)


def test_jiffies_on_threads_follows_real_time():
    def body():
        j0 = jiffies()
        msleep(20)
        assert jiffies() - j0 >= msecs_to_jiffies(20) - 1

    dmabuf.run_threads(body, timeout=30)


def test_jiffies_under_explorer_starts_at_zero_and_is_exact():
    def body():
        assert jiffies() == 0
        msleep(100)
        assert jiffies() == 25
        msleep(1)
        assert jiffies() == 26

    _explore_ok(body)


# ---------------------------------------------------------------------------------------------- schedule_timeout
def test_schedule_timeout_times_out_and_returns_zero(run_on):
    def body():
        set_current_state(TASK_UNINTERRUPTIBLE)
        assert schedule_timeout(2) == 0
        assert current().kstate == TASK_RUNNING
        assert schedule_timeout_uninterruptible(1) == 0
        assert schedule_timeout_interruptible(1) == 0

    run_on(body)


def test_schedule_timeout_while_running_returns_at_once(run_on):
    """In TASK_RUNNING the sleep ends at once: all of the timeout is left."""

    def body():
        assert current().kstate == TASK_RUNNING
        assert schedule_timeout(100 * HZ) == 100 * HZ
        assert schedule_timeout(MAX_SCHEDULE_TIMEOUT) == MAX_SCHEDULE_TIMEOUT

    run_on(body)


def test_schedule_timeout_woken_early_returns_remaining_exactly():
    results: list[int] = []

    def body():
        def sleeper() -> int:
            set_current_state(TASK_UNINTERRUPTIBLE)
            return schedule_timeout(100)

        s = dmabuf.spawn(sleeper, name="sleeper")
        msleep(40)  # 10 jiffies
        assert wake_up_process(s) == 1
        results.append(s.join())

    _explore_ok(body)
    assert results and set(results) == {90}


def test_schedule_timeout_woken_early_on_threads():
    def body():
        def sleeper() -> int:
            set_current_state(TASK_UNINTERRUPTIBLE)
            return schedule_timeout(30 * HZ)

        s = dmabuf.spawn(sleeper, name="sleeper")
        while s.kstate != TASK_UNINTERRUPTIBLE:
            msleep(1)
        msleep(5)
        wake_up_process(s)
        left = s.join()
        assert 0 < left <= 30 * HZ

    dmabuf.run_threads(body, timeout=30)


def test_schedule_timeout_max_waits_for_wake_up(run_on):
    def body():
        def sleeper() -> int:
            set_current_state(TASK_UNINTERRUPTIBLE)
            return schedule_timeout(MAX_SCHEDULE_TIMEOUT)

        s = dmabuf.spawn(sleeper)
        msleep(1)
        wake_up_process(s)
        assert s.join() == MAX_SCHEDULE_TIMEOUT

    run_on(body)


def test_schedule_timeout_bad_values(run_on):
    def body():
        with pytest.raises(InvalidArgument):
            schedule_timeout(1.5)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            schedule_timeout("10")  # type: ignore[arg-type]
        set_current_state(TASK_INTERRUPTIBLE)
        with pytest.raises(KernelWarning, match="wrong timeout value"):
            schedule_timeout(-1)
        set_current_state(TASK_RUNNING)

    run_on(body)


def test_schedule_timeout_negative_in_log_mode_returns_zero_and_runs():
    set_warn_mode("log")

    def body():
        set_current_state(TASK_INTERRUPTIBLE)
        assert schedule_timeout(-5) == 0
        assert current().kstate == TASK_RUNNING

    with pytest.raises(KernelWarning, match="wrong timeout value"):
        dmabuf.run_threads(body)
    f = dmabuf.explore(body, strategy="dfs").failure
    assert f is not None and f.kind == "kernel-warning"


def test_set_current_state_rejects_unknown_state(run_on):
    def body():
        with pytest.raises(InvalidArgument):
            set_current_state(42)

    run_on(body)


# ---------------------------------------------------------------------------------------------- the idiom
class Box:
    cond = False


def _idiom_body(correct: bool):
    def body():
        box = Box()

        def waiter() -> None:
            if correct:
                while True:
                    set_current_state(TASK_UNINTERRUPTIBLE)
                    if READ_ONCE(box, "cond"):
                        break
                    schedule()
                set_current_state(TASK_RUNNING)
            else:
                # the classic lost wake-up: test the condition before announcing the sleep
                while not READ_ONCE(box, "cond"):
                    set_current_state(TASK_UNINTERRUPTIBLE)
                    schedule()

        w = dmabuf.spawn(waiter, name="waiter")
        WRITE_ONCE(box, "cond", True)
        wake_up_process(w)
        w.join()

    return body


def test_set_current_state_schedule_idiom_never_loses_a_wake_up(run_on):
    run_on(_idiom_body(correct=True))


def test_condition_checked_before_set_current_state_loses_the_wake_up():
    f = dmabuf.explore(_idiom_body(correct=False), strategy="dfs").failure
    assert f is not None and f.kind == "deadlock"
    assert "waiter" in f.message
    again = dmabuf.replay(_idiom_body(correct=False), f.schedule)
    assert again is not None and again.kind == "deadlock"


def test_schedule_when_already_woken_returns_at_once(run_on):
    """The wake-up came between set_current_state and schedule: schedule does not sleep."""

    def body():
        me = current()
        set_current_state(TASK_UNINTERRUPTIBLE)
        assert wake_up_process(me) == 1
        assert me.kstate == TASK_RUNNING
        schedule()  # returns at once

    run_on(body)


def test_wake_up_process_return_values(run_on):
    def body():
        def sleeper() -> None:
            set_current_state(TASK_UNINTERRUPTIBLE)
            schedule()

        s = dmabuf.spawn(sleeper)
        # wait until it announced its sleep
        while True:
            rt().point("poll", s, WRITE)
            if s.kstate == TASK_UNINTERRUPTIBLE:
                break
            msleep(1)
        assert wake_up_process(s) == 1
        s.join()
        assert wake_up_process(s) == 0  # finished
        assert wake_up_process(current()) == 0  # running

    run_on(body)


def test_wake_up_process_type_check(run_on):
    def body():
        for fn in (wake_up_process, signal_pending, lambda t: send_sig(SIGTERM, t)):
            with pytest.raises(InvalidArgument):
                fn(None)
            with pytest.raises(InvalidArgument):
                fn("task")

    run_on(body)


def test_current_and_in_atomic(run_on):
    def body():
        assert current() is rt().current() and current().name == "main"
        assert in_atomic() is False

    run_on(body)


# ---------------------------------------------------------------------------------------------- signals
def test_signal_pending_and_flush(run_on):
    def body():
        me = current()
        assert signal_pending(me) is False
        assert send_sig(SIGTERM, me) == 0
        assert signal_pending(me) is True
        flush_signals(me)
        assert signal_pending(me) is False

    run_on(body)


def test_signal_wakes_interruptible_schedule(run_on):
    def body():
        def sleeper() -> bool:
            set_current_state(TASK_INTERRUPTIBLE)
            schedule()
            return signal_pending(current())

        s = dmabuf.spawn(sleeper)
        send_sig(SIGTERM, s)
        assert s.join() is True

    run_on(body)


def test_signal_interrupts_schedule_timeout_interruptible():
    results: list[int] = []

    def body():
        def sleeper() -> int:
            return schedule_timeout_interruptible(100)

        s = dmabuf.spawn(sleeper)
        msleep(40)
        send_sig(SIGTERM, s)
        results.append(s.join())

    _explore_ok(body)
    assert set(results) == {90}


def test_signal_does_not_interrupt_uninterruptible_sleep(run_on):
    def body():
        def sleeper() -> int:
            return schedule_timeout_uninterruptible(3)

        s = dmabuf.spawn(sleeper)
        send_sig(SIGTERM, s)
        assert s.join() == 0  # slept the full timeout

    run_on(body)


def test_pending_signal_makes_interruptible_sleep_return_at_once(run_on):
    def body():
        me = current()
        send_sig(SIGTERM, me)
        assert schedule_timeout_interruptible(10 * HZ) > 0
        assert msleep_interruptible(10_000) > 0
        flush_signals(me)
        assert schedule_timeout_interruptible(1) == 0

    run_on(body)


def test_msleep_interruptible_returns_milliseconds_left():
    results: list[int] = []

    def body():
        def sleeper() -> int:
            return msleep_interruptible(100)

        s = dmabuf.spawn(sleeper)
        msleep(40)
        send_sig(SIGTERM, s)
        results.append(s.join())
        assert msleep_interruptible(8) == 0

    _explore_ok(body)
    assert set(results) == {60}


def test_msleep_interruptible_on_threads():
    def body():
        def sleeper() -> int:
            return msleep_interruptible(20_000)

        s = dmabuf.spawn(sleeper)
        msleep(10)
        send_sig(SIGTERM, s)
        left = s.join()
        assert 0 < left < 20_000
        assert msleep_interruptible(5) == 0

    dmabuf.run_threads(body, timeout=30)
