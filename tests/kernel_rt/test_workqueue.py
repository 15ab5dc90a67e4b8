"""Workqueues: queueing, flushing, cancelling, delayed work, destroy, non-reentrancy, misuse."""

from __future__ import annotations

import pytest

import dmabuf
from dmabuf.errors import InvalidArgument, KernelWarning
from dmabuf.kernel import (
    HZ,
    INIT_DELAYED_WORK,
    INIT_WORK,
    Completion,
    DelayedWork,
    Mutex,
    SpinLock,
    WorkStruct,
    alloc_ordered_workqueue,
    alloc_workqueue,
    cancel_delayed_work,
    cancel_delayed_work_sync,
    cancel_work,
    cancel_work_sync,
    complete,
    delayed_work_pending,
    destroy_workqueue,
    drain_workqueue,
    flush_delayed_work,
    flush_work,
    flush_workqueue,
    mod_delayed_work,
    mutex_lock,
    mutex_unlock,
    queue_delayed_work,
    queue_work,
    schedule_work,
    spin_lock,
    system_wq,
    try_wait_for_completion,
    wait_for_completion,
    work_pending,
)


class CountWork(WorkStruct):
    """A work item embedded in a struct."""

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0
        self.active = 0
        self.max_active = 0


def _count(w: CountWork) -> None:
    w.active += 1
    w.max_active = max(w.max_active, w.active)
    dmabuf.rt().point("work_body", w)
    w.runs += 1
    w.active -= 1


def test_queue_and_flush(run_on):
    def body():
        wq = alloc_workqueue("test", 0, 0)
        w = CountWork()
        INIT_WORK(w, _count)
        assert work_pending(w) is False
        assert queue_work(wq, w) is True
        flush_work(w)
        assert w.runs == 1
        assert flush_work(w) is False  # idle: nothing to wait for
        destroy_workqueue(wq)

    run_on(body)


def test_queue_returns_false_while_pending(run_on):
    def body():
        wq = alloc_ordered_workqueue("ord", 0)
        block = Completion()
        gate = CountWork()
        INIT_WORK(gate, lambda w: wait_for_completion(block))
        w = CountWork()
        INIT_WORK(w, _count)
        queue_work(wq, gate)  # keeps the single worker busy
        assert queue_work(wq, w) is True
        assert queue_work(wq, w) is False
        assert work_pending(w) is True
        complete(block)
        flush_workqueue(wq)
        assert w.runs == 1
        destroy_workqueue(wq)

    run_on(body)


def _flush_running_body(rets: list[bool]) -> None:
    wq = alloc_workqueue("test", 0, 2)
    started = Completion()
    go = Completion()
    log = []

    def fn(work):
        complete(started)
        wait_for_completion(go)
        log.append("work finished")

    w = WorkStruct()
    INIT_WORK(w, fn)
    queue_work(wq, w)
    wait_for_completion(started)  # the work is running now, not pending
    assert work_pending(w) is False
    releaser = dmabuf.spawn(complete, go)
    ret = flush_work(w)
    rets.append(ret)
    assert log == ["work finished"]  # whether or not flush had to wait, the work is done now
    releaser.join()
    destroy_workqueue(wq)


def test_flush_work_waits_for_running_work(run_on):
    run_on(lambda: _flush_running_body([]))


def test_flush_work_reports_whether_it_waited():
    rets: list[bool] = []
    res = dmabuf.explore(lambda: _flush_running_body(rets), strategy="dfs")
    assert res.failure is None
    assert set(rets) == {True, False}


def test_work_never_runs_concurrently_with_itself(run_on):
    def body():
        wq = alloc_workqueue("multi", 0, 0)  # two workers
        w = CountWork()
        INIT_WORK(w, _count)
        n = 0
        for _ in range(3):
            if queue_work(wq, w):
                n += 1
            dmabuf.rt().point("between", w)
        flush_workqueue(wq)
        assert w.runs == n
        assert w.max_active == 1
        destroy_workqueue(wq)

    run_on(body)


def test_different_works_run_concurrently():
    seen = set()

    def body():
        wq = alloc_workqueue("multi", 0, 0)
        a, b = CountWork(), CountWork()
        shared = [0, 0]

        def fn(w):
            shared[0] += 1
            shared[1] = max(shared[1], shared[0])
            dmabuf.rt().point("work_body", w)
            shared[0] -= 1

        INIT_WORK(a, fn)
        INIT_WORK(b, fn)
        queue_work(wq, a)
        queue_work(wq, b)
        flush_workqueue(wq)
        seen.add(shared[1])
        destroy_workqueue(wq)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is None
    assert seen == {1, 2}


def test_ordered_workqueue_runs_in_order(run_on):
    def body():
        wq = alloc_ordered_workqueue("ord", 0)
        log = []
        works = []
        for i in range(3):
            w = WorkStruct(name=f"w{i}")
            INIT_WORK(w, lambda work, i=i: log.append(i))
            works.append(w)
        for w in works:
            queue_work(wq, w)
        flush_workqueue(wq)
        assert log == [0, 1, 2]
        destroy_workqueue(wq)

    run_on(body)


def test_self_requeue_and_cancel_sync(run_on):
    def body():
        wq = alloc_workqueue("test", 0, 0)
        w = CountWork()

        def fn(work):
            work.runs += 1
            if work.runs < 3:
                # PENDING was cleared before we ran: requeueing succeeds, unless a cancel is under way
                work.active += queue_work(wq, work)

        INIT_WORK(w, fn)
        queue_work(wq, w)
        dmabuf.rt().point("let_it_run", w)
        cancel_work_sync(w)
        n = w.runs
        assert 0 <= n <= 3
        assert work_pending(w) is False
        dmabuf.rt().point("later", w)
        assert w.runs == n  # stopped for good
        destroy_workqueue(wq)

    run_on(body)


def test_cancel_return_values(run_on):
    def body():
        wq = alloc_ordered_workqueue("ord", 0)
        block = Completion()
        gate = WorkStruct()
        INIT_WORK(gate, lambda w: wait_for_completion(block))
        w = CountWork()
        INIT_WORK(w, _count)
        queue_work(wq, gate)
        queue_work(wq, w)
        assert cancel_work(w) is True
        assert cancel_work(w) is False
        queue_work(wq, w)
        assert cancel_work_sync(w) is True
        complete(block)
        flush_workqueue(wq)
        assert w.runs == 0
        destroy_workqueue(wq)

    run_on(body)


def test_schedule_work_uses_system_wq(run_on):
    def body():
        done = Completion()
        w = WorkStruct()
        INIT_WORK(w, lambda work: complete(done))
        assert schedule_work(w) is True
        wait_for_completion(done)
        flush_work(w)
        assert queue_work(system_wq, w) is True
        flush_workqueue(system_wq)
        assert w._done_inst == 2

    run_on(body)


def test_delayed_work(run_on):
    def body():
        wq = alloc_workqueue("dw", 0, 0)
        d = DelayedWork()
        ran = Completion()
        INIT_DELAYED_WORK(d, lambda work: complete(ran))
        assert d.work is d
        assert queue_delayed_work(wq, d, 2) is True
        assert delayed_work_pending(d) is True
        assert queue_delayed_work(wq, d, 2) is False
        wait_for_completion(ran)
        flush_work(d)
        assert delayed_work_pending(d) is False
        # cancel before it fires
        assert queue_delayed_work(wq, d, 100 * HZ) is True
        assert mod_delayed_work(wq, d, 200 * HZ) is True
        assert cancel_delayed_work(d) is True
        assert cancel_delayed_work(d) is False
        assert mod_delayed_work(wq, d, 100 * HZ) is False  # idle: newly queued
        assert cancel_delayed_work_sync(d) is True
        # flush_delayed_work runs it now
        assert queue_delayed_work(wq, d, 100 * HZ) is True
        flush_delayed_work(d)  # True only if the work was still queued or running when flush looked
        assert try_wait_for_completion(ran) is True
        destroy_workqueue(wq)

    run_on(body)


def test_delayed_work_zero_delay_and_virtual_time():
    out = []

    def body():
        wq = alloc_workqueue("dw", 0, 0)
        d = DelayedWork()
        ran = Completion()
        INIT_DELAYED_WORK(d, lambda work: complete(ran))
        queue_delayed_work(wq, d, 30 * HZ)
        wait_for_completion(ran)
        out.append(dmabuf.rt().now_ns())
        destroy_workqueue(wq)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is None
    assert set(out) == {30 * 1_000_000_000}


def test_pending_delayed_work_at_end_is_a_leak():
    def body():
        wq = alloc_workqueue("dw", 0, 0)
        d = DelayedWork()
        INIT_DELAYED_WORK(d, lambda work: None)
        queue_delayed_work(wq, d, 100 * HZ)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "leak"


def test_stuck_work_at_end_is_a_leak():
    # Under the explorer idle daemons run until they block, so unflushed work still runs; a work item that
    # is still blocked when the run ends is reported (otherwise its hang would go unnoticed).
    def body():
        never = Completion()
        w = WorkStruct()
        INIT_WORK(w, lambda work: wait_for_completion(never))
        schedule_work(w)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "leak"
    assert "queued" in res.failure.message or "running" in res.failure.message


def test_flush_deadlock_with_lock_is_found():
    def body():
        wq = alloc_workqueue("test", 0, 0)
        m = Mutex()
        w = WorkStruct()

        def fn(work):
            mutex_lock(m)
            mutex_unlock(m)

        INIT_WORK(w, fn)
        mutex_lock(m)
        queue_work(wq, w)
        dmabuf.rt().point("let_it_start", w)
        flush_work(w)  # the work waits for m, which we hold
        mutex_unlock(m)
        destroy_workqueue(wq)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "deadlock"


def test_drain_and_destroy(run_on):
    def body():
        wq = alloc_workqueue("test", 0, 0)
        a, b = CountWork(), CountWork()

        def chain(work):
            work.runs += 1
            queue_work(wq, b)  # chained work is allowed while draining

        INIT_WORK(a, chain)
        INIT_WORK(b, _count)
        queue_work(wq, a)
        drain_workqueue(wq)
        assert a.runs == 1 and b.runs == 1
        destroy_workqueue(wq)
        with pytest.raises(KernelWarning, match="cannot queue"):
            queue_work(wq, a)
        with pytest.raises(KernelWarning, match="already destroyed"):
            destroy_workqueue(wq)

    run_on(body)


def test_queue_on_destroyed_wq_in_log_mode_leaves_work_pending():
    def body():
        from dmabuf.kernel import set_warn_mode

        wq = alloc_workqueue("test", 0, 0)
        destroy_workqueue(wq)
        w = WorkStruct()
        INIT_WORK(w, lambda work: None)
        set_warn_mode("log")
        assert queue_work(wq, w) is True
        assert work_pending(w) is True
        assert queue_work(wq, w) is False
        assert flush_work(w) is False

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "kernel-warning"


def test_recursive_flush_warns():
    def body():
        wq = alloc_workqueue("test", 0, 0)
        w = WorkStruct()
        INIT_WORK(w, lambda work: flush_work(work))
        queue_work(wq, w)
        flush_workqueue(wq)
        destroy_workqueue(wq)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "kernel-warning"
    assert "inside its own function" in res.failure.message


def test_work_returning_with_lock_held_warns():
    def body():
        wq = alloc_workqueue("test", 0, 0)
        s = SpinLock()
        w = WorkStruct()
        INIT_WORK(w, lambda work: spin_lock(s))
        queue_work(wq, w)
        flush_workqueue(wq)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "kernel-warning"
    assert "leaked lock" in res.failure.message


def test_misuse(run_on):
    def body():
        wq = alloc_workqueue("test", 0, 0)
        w = WorkStruct()
        with pytest.raises(InvalidArgument, match="INIT_WORK"):
            queue_work(wq, w)
        with pytest.raises(InvalidArgument, match="WorkStruct"):
            queue_work(wq, None)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="workqueue"):
            queue_work(None, w)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="callable"):
            INIT_WORK(w, 3)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="flags"):
            alloc_workqueue("x", 1 << 30, 0)
        with pytest.raises(KernelWarning, match="never initialised"):
            flush_work(w)
        with pytest.raises(InvalidArgument, match="DelayedWork"):
            queue_delayed_work(wq, w, 1)  # type: ignore[arg-type]
        destroy_workqueue(wq)

    run_on(body)


def test_requeue_refused_while_cancel_sync_waits():
    seen = set()

    def body():
        wq = alloc_workqueue("test", 0, 0)
        w = CountWork()
        requeued: list[bool] = []

        def fn(work):
            work.runs += 1
            if work.runs < 3:
                requeued.append(queue_work(wq, work))

        INIT_WORK(w, fn)
        queue_work(wq, w)
        dmabuf.rt().point("let_it_run", w)
        cancel_work_sync(w)
        seen.add((w.runs, tuple(requeued)))
        destroy_workqueue(wq)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is None
    assert (0, ()) in seen  # cancelled before it ran
    assert (1, (False,)) in seen  # ran; its requeue was refused because cancel_work_sync was waiting
    assert (3, (True, True)) in seen  # ran to the end before the cancel


def test_workers_are_woken_on_threads_while_a_timer_is_armed():
    # An armed timer keeps the threads runtime's "everyone blocked" rescue from running, so this only
    # finishes quickly if queueing really wakes a worker.
    import time

    from dmabuf.kernel import TimerList, del_timer_sync, jiffies, mod_timer, timer_setup

    def body():
        t = TimerList()
        timer_setup(t, lambda tm: None, 0)
        mod_timer(t, jiffies() + 20 * HZ)
        wq = alloc_workqueue("x", 0, 0)
        w = WorkStruct()
        INIT_WORK(w, lambda work: None)
        queue_work(wq, w)
        flush_work(w)
        destroy_workqueue(wq)
        del_timer_sync(t)

    t0 = time.monotonic()
    dmabuf.run_threads(body, timeout=60)
    assert time.monotonic() - t0 < 5
