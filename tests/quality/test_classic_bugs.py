"""Does the explorer find the classic bugs, as the right failure kind, with a replay that reproduces them?"""

import random
import time

import pytest

import dmabuf
from dmabuf.kernel import (
    TASK_UNINTERRUPTIBLE,
    Mutex,
    current,
    jiffies,
    mutex_lock,
    mutex_unlock,
    schedule,
    set_current_state,
    wake_up_process,
)
from dmabuf.runtime import READ, WRITE, rt

STRAT = "dpor"


@pytest.fixture(autouse=True, params=["dfs", "dpor"])
def _strategy(request):
    """Every classic bug must be found by plain DFS and by DPOR (the default)."""
    global STRAT
    STRAT = request.param
    yield
    STRAT = "dpor"


class Box:
    def __init__(self):
        self.value = 0


def rd(box):
    rt().point("read", box, READ)
    return box.value


def wr(box, v):
    rt().point("write", box, WRITE)
    box.value = v


def check_reproduces(body, failure):
    again = dmabuf.replay(body, failure.schedule)
    assert again is not None
    assert again.kind == failure.kind
    assert again.trace == failure.trace


def test_lost_update():
    def body():
        box = Box()

        def inc():
            wr(box, rd(box) + 1)

        a = dmabuf.spawn(inc)
        b = dmabuf.spawn(inc)
        a.join()
        b.join()
        assert box.value == 2, f"lost update: counter is {box.value}"

    res = dmabuf.explore(body, strategy=STRAT)
    f = res.failure
    assert f is not None and f.kind == "exception"
    assert isinstance(f.exception, AssertionError) and "lost update" in str(f.exception)
    assert f.preemptions == 1
    check_reproduces(body, f)


def test_lost_update_with_read_once_write_once():
    from dmabuf.kernel import READ_ONCE, WRITE_ONCE

    def body():
        box = Box()

        def inc():
            WRITE_ONCE(box, "value", READ_ONCE(box, "value") + 1)

        a = dmabuf.spawn(inc)
        b = dmabuf.spawn(inc)
        a.join()
        b.join()
        assert box.value == 2

    f = dmabuf.explore(body, strategy=STRAT).failure
    assert f is not None and f.kind == "exception"
    check_reproduces(body, f)


def test_locked_increment_is_clean():
    def body():
        box = Box()
        m = Mutex()

        def inc():
            for _ in range(2):
                with m:
                    wr(box, rd(box) + 1)

        ts = [dmabuf.spawn(inc) for _ in range(2)]
        for t in ts:
            t.join()
        assert box.value == 4

    res = dmabuf.explore(body, strategy=STRAT)
    assert res.ok and res.complete


def test_abba_deadlock_names_cycle():
    def body():
        a, b = Mutex(name="A"), Mutex(name="B")

        def t1():
            mutex_lock(a)
            mutex_lock(b)
            mutex_unlock(b)
            mutex_unlock(a)

        def t2():
            mutex_lock(b)
            mutex_lock(a)
            mutex_unlock(a)
            mutex_unlock(b)

        x, y = dmabuf.spawn(t1, name="t1"), dmabuf.spawn(t2, name="t2")
        x.join()
        y.join()

    f = dmabuf.explore(body, strategy=STRAT).failure
    assert f is not None and f.kind == "deadlock"
    assert "t1 waits to lock B held by t2" in f.message
    assert "t2 waits to lock A held by t1" in f.message
    check_reproduces(body, f)


def test_lost_wakeup():
    class Flag:
        ready = False

    def body():
        flag = Flag()

        def waiter():
            # BUG: the condition is checked before the task state is set, so a wake-up that lands in
            # between is lost and the waiter sleeps forever.
            rt().point("read", flag, READ)
            if not flag.ready:
                set_current_state(TASK_UNINTERRUPTIBLE)
                schedule()

        w = dmabuf.spawn(waiter, name="waiter")

        def waker():
            rt().point("write", flag, WRITE)
            flag.ready = True
            wake_up_process(w)

        k = dmabuf.spawn(waker, name="waker")
        k.join()
        w.join()

    f = dmabuf.explore(body, strategy=STRAT).failure
    assert f is not None and f.kind == "deadlock"
    assert "waiter waits to schedule" in f.message
    check_reproduces(body, f)


def test_correct_sleep_idiom_has_no_lost_wakeup():
    class Flag:
        ready = False

    def body():
        flag = Flag()

        def waiter():
            while True:
                set_current_state(TASK_UNINTERRUPTIBLE)
                rt().point("read", flag, READ)
                if flag.ready:
                    break
                schedule()
            set_current_state(0)

        w = dmabuf.spawn(waiter)

        def waker():
            rt().point("write", flag, WRITE)
            flag.ready = True
            wake_up_process(w)

        k = dmabuf.spawn(waker)
        k.join()
        w.join()

    res = dmabuf.explore(body, strategy=STRAT)
    assert res.ok and res.complete, res


def test_leaked_lock():
    def body():
        m = Mutex(name="M")

        def t():
            mutex_lock(m)  # never unlocked

        x = dmabuf.spawn(t, name="t")
        x.join()

    f = dmabuf.explore(body, strategy=STRAT).failure
    assert f is not None and f.kind == "leak"
    assert "task 't' exited holding M" in f.message
    check_reproduces(body, f)


def test_unjoined_task_is_a_leak():
    def body():
        dmabuf.spawn(lambda: None, name="orphan")

    f = dmabuf.explore(body, strategy=STRAT).failure
    assert f is not None and f.kind == "leak" and "'orphan' was spawned but never joined" in f.message


def test_livelock_two_tasks_retrying_forever():
    class Flags:
        a = False
        b = False

    def body():
        fl = Flags()

        def polite(mine, other):
            # each raises its flag, backs off while the other's flag is up, and retries: with both
            # polite tasks interleaved this never ends
            while True:
                wr_flag(fl, mine, True)
                if not rd_flag(fl, other):
                    break
                wr_flag(fl, mine, False)
            wr_flag(fl, mine, False)

        x = dmabuf.spawn(polite, "a", "b", name="x")
        y = dmabuf.spawn(polite, "b", "a", name="y")
        x.join()
        y.join()

    res = dmabuf.explore(body, strategy=STRAT, max_steps=200)
    f = res.failure
    assert f is not None and f.kind == "livelock"
    assert "exceeded its bound of 200" in f.message
    assert "ends repeating [" in f.message
    check_reproduces_kind(body, f)


def wr_flag(fl, name, v):
    rt().point("write", f"flag-{name}", WRITE)
    setattr(fl, name, v)


def rd_flag(fl, name):
    rt().point("read", f"flag-{name}", READ)
    return getattr(fl, name)


def check_reproduces_kind(body, f):
    again = dmabuf.replay(body, f.schedule, max_steps=200)
    assert again is not None and again.kind == f.kind


def test_polling_time_without_sleeping_is_livelock():
    def body():
        start = jiffies()
        while jiffies() - start < 5:
            pass

    f = dmabuf.explore(body, strategy=STRAT, max_steps=500).failure
    assert f is not None and f.kind == "livelock"


def test_nondeterminism_from_random():
    rng = random.Random(1)

    def body():
        box = Box()

        def t():
            if rng.random() < 0.5:
                wr(box, 1)
            else:
                rd(box)
            wr(box, 2)

        a = dmabuf.spawn(t)
        b = dmabuf.spawn(t)
        a.join()
        b.join()

    res = dmabuf.explore(body, strategy=STRAT)
    f = res.failure
    assert f is not None and f.kind == "nondeterminism"
    assert "diverged at step" in f.message or "replaying the same schedule gave" in f.message


def test_nondeterminism_from_wall_time():
    def body():
        box = Box()

        def t():
            for _ in range(3):  # three wall-clock-dependent branches per task
                if time.perf_counter_ns() // 1000 % 2:
                    wr(box, 1)
                else:
                    rd(box)

        ts = [dmabuf.spawn(t) for _ in range(3)]
        for x in ts:
            x.join()

    for _ in range(10):  # wall time may coincide by chance; ten searches practically never all agree
        f = dmabuf.explore(body, strategy=STRAT).failure
        if f is not None:
            assert f.kind == "nondeterminism"
            return
    raise AssertionError("nondeterminism from wall-clock time was never detected")


def test_current_is_the_spawned_task():
    def body():
        seen = []
        t = dmabuf.spawn(lambda: seen.append(current().name), name="worker")
        t.join()
        assert seen == ["worker"]

    assert dmabuf.explore(body, strategy=STRAT).ok
