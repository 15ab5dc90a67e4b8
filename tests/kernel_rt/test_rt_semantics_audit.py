"""Audit of the kernel runtime primitives against their v6.12 documented behaviour.

Each test pins one behaviour a driver relies on that no other test checked, and names the kernel source
that documents it. Several of them failed before the model was fixed (flush_work after a cancelled requeue,
del_timer_sync of a self-re-arming timer, kthread_stop and interruptible/killable waits, call_rcu callbacks
in atomic context, the condition re-check of wait_event after joining the queue, schedule() inside an RCU
read-side section, max_active == 1 treated as ordered).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import dmabuf
from dmabuf.errors import KernelBug, KernelWarning
from dmabuf.kernel import (
    EINTR,
    ERESTARTSYS,
    HZ,
    INIT_LIST_HEAD,
    INIT_WORK,
    READ_ONCE,
    TASK_INTERRUPTIBLE,
    WRITE_ONCE,
    Completion,
    Kref,
    ListHead,
    Mutex,
    RcuHead,
    SpinLock,
    TimerList,
    WaitQueueHead,
    WorkStruct,
    alloc_workqueue,
    call_rcu,
    cancel_work,
    cancel_work_sync,
    complete,
    complete_all,
    current,
    del_timer_sync,
    destroy_workqueue,
    drain_workqueue,
    flush_work,
    flush_workqueue,
    in_atomic,
    jiffies,
    jiffies_to_msecs,
    kref_get_unless_zero,
    kref_init,
    kref_put,
    kthread_run,
    kthread_should_stop,
    kthread_stop,
    list_add_tail,
    list_del,
    list_del_init,
    list_empty,
    list_for_each_entry,
    mod_timer,
    msleep,
    mutex_lock,
    mutex_lock_interruptible,
    mutex_unlock,
    queue_work,
    rcu_barrier,
    rcu_read_lock,
    rcu_read_unlock,
    reinit_completion,
    schedule_timeout,
    set_current_state,
    signal_pending,
    spin_lock,
    spin_unlock,
    synchronize_rcu,
    timer_pending,
    timer_setup,
    wait_event,
    wait_event_interruptible,
    wait_event_timeout,
    wait_for_completion,
    wait_for_completion_interruptible,
    wait_for_completion_killable,
    wait_for_completion_timeout,
    wake_up,
    work_pending,
)

# --------------------------------------------------------------------------------------------- workqueues


def _start_gated_work(wq, log: list[str], *, log_start: bool) -> tuple[WorkStruct, Completion]:
    """Queue on ``wq`` a work whose function logs "start" (if ``log_start``), waits for the returned gate,
    then logs "end"; return (work, gate) once the function is running."""
    started, gate = Completion(), Completion()

    def fn(work):
        if log_start:
            log.append("start")
        complete(started)
        wait_for_completion(gate)
        log.append("end")

    w = WorkStruct()
    INIT_WORK(w, fn)
    queue_work(wq, w)
    wait_for_completion(started)
    return w, gate


def test_flush_work_after_cancelling_a_requeue_waits_for_the_running_instance(run_on):
    """kernel/workqueue.c (start_flush_work): a work that is not queued but executing is waited for (the
    flush finds the worker executing it), so flush_work returns only after the running instance returned,
    even if a later queueing of it was just cancelled with cancel_work."""

    def body():
        wq = alloc_workqueue("audit", 0, 0)
        log: list[str] = []
        w, gate = _start_gated_work(wq, log, log_start=True)
        assert queue_work(wq, w) is True  # PENDING was cleared when it started: a second instance
        assert cancel_work(w) is True  # ... which is cancelled again; the first still runs
        seen: list[list[str]] = []

        def flusher():
            flush_work(w)
            seen.append(list(log))

        f = dmabuf.spawn(flusher, name="flusher")
        complete(gate)
        f.join()
        assert seen == [["start", "end"]]
        destroy_workqueue(wq)

    run_on(body)


def test_cancel_work_sync_of_running_work_waits_and_returns_false(run_on):
    """kernel/workqueue.c (cancel_work_sync): returns whether the work was *pending*; a work that is only
    running is not pending (False) but is still waited for."""

    def body():
        wq = alloc_workqueue("audit", 0, 0)
        log: list[str] = []
        w, gate = _start_gated_work(wq, log, log_start=False)
        assert work_pending(w) is False
        opener = dmabuf.spawn(complete, gate, name="opener")
        assert cancel_work_sync(w) is False
        assert log == ["end"]
        opener.join()
        destroy_workqueue(wq)

    run_on(body)


def test_flush_workqueue_does_not_wait_for_work_queued_after_it_started():
    """kernel/workqueue.c (__flush_workqueue): waits for the work queued *before* the call; an instance a
    work item queues of itself while the flush waits is not waited for."""
    runs_at_return: set[int] = set()

    def body():
        wq = alloc_workqueue("audit", 0, 0)
        runs = [0]

        def fn(work):
            runs[0] += 1
            if runs[0] == 1:
                queue_work(wq, work)  # requeue once

        w = WorkStruct()
        INIT_WORK(w, fn)
        queue_work(wq, w)
        flush_workqueue(wq)
        runs_at_return.add(runs[0])
        flush_work(w)
        assert runs[0] == 2
        destroy_workqueue(wq)

    res = dmabuf.explore(body, strategy="dfs", max_executions=3000)
    assert res.failure is None, str(res.failure)
    assert runs_at_return == {1, 2}  # 1: the requeued instance was still pending when the flush returned


def test_max_active_one_does_not_serialise_a_workqueue():
    """Documentation/core-api/workqueue.rst (max_active, "always a per-CPU attribute") and
    include/linux/workqueue.h (alloc_ordered_workqueue): max_active == 1 limits the work items in flight
    per CPU, so two work items queued from two tasks (CPUs) may run at the same time; only an ordered
    workqueue runs one at a time."""
    overlaps: set[int] = set()

    def body():
        wq = alloc_workqueue("audit-ma1", 0, 1)
        state = {"active": 0, "max": 0}

        def fn(work):
            state["active"] += 1
            state["max"] = max(state["max"], state["active"])
            dmabuf.rt().point("work_body", work)
            state["active"] -= 1

        ws = [WorkStruct() for _ in range(2)]
        for w in ws:
            INIT_WORK(w, fn)
        ts = [dmabuf.spawn(queue_work, wq, w, name=f"cpu{i}") for i, w in enumerate(ws)]
        for t in ts:
            t.join()
        flush_workqueue(wq)
        overlaps.add(state["max"])
        destroy_workqueue(wq)

    res = dmabuf.explore(body, strategy="dfs", max_executions=3000)
    assert res.failure is None, str(res.failure)
    assert 2 in overlaps


def test_queueing_from_outside_while_draining_warns():
    """kernel/workqueue.c (__queue_work, drain_workqueue): while a workqueue drains, only its own work
    items may queue (chained work); queueing from elsewhere WARNs ("cannot queue ... on wq")."""

    def body():
        wq = alloc_workqueue("audit-drain", 0, 0)
        gate = Completion()
        a, b = WorkStruct(), WorkStruct()
        INIT_WORK(a, lambda work: wait_for_completion(gate))
        INIT_WORK(b, lambda work: None)
        queue_work(wq, a)
        outsider = dmabuf.spawn(queue_work, wq, b, name="outsider")
        opener = dmabuf.spawn(complete, gate, name="opener")
        drain_workqueue(wq)
        outsider.join()
        opener.join()
        flush_workqueue(wq)
        destroy_workqueue(wq)

    res = dmabuf.explore(body, strategy="dfs", max_executions=3000)
    assert res.failure is not None and res.failure.kind == "kernel-warning", str(res.failure)
    assert "being drained" in res.failure.message


# --------------------------------------------------------------------------------------------- timers


def test_del_timer_sync_stops_a_self_rearming_timer(run_on):
    """kernel/time/timer.c (__timer_delete_sync): retries until the callback is not running and then
    detaches the timer, so on return "the timer is not queued and the handler is not running", also for a
    periodic timer whose callback re-arms it; the result is 1 when it was re-armed (pending)."""

    def body():
        t = TimerList()
        fired = Completion()

        def cb(timer):
            complete(fired)
            mod_timer(timer, jiffies() + 1)

        timer_setup(t, cb, 0)
        mod_timer(t, jiffies() + 1)
        wait_for_completion(fired)
        # the timer is pending, or its callback runs and re-arms it: either way it was pending
        assert del_timer_sync(t) == 1
        assert timer_pending(t) is False

    run_on(body, max_executions=3000)


def test_timer_is_not_pending_inside_its_own_callback(run_on):
    """kernel/time/timer.c (expire_timers/mod_timer): the timer is detached before its callback runs, so
    inside the callback timer_pending() is false and re-arming with mod_timer returns 0 (was inactive)."""

    def body():
        t = TimerList()
        seen: list[tuple[bool, int, bool]] = []
        done = Completion()

        def cb(timer):
            if not seen:
                pend = timer_pending(timer)
                ret = mod_timer(timer, jiffies() + 1)
                seen.append((pend, ret, in_atomic()))
            else:
                complete(done)

        timer_setup(t, cb, 0)
        mod_timer(t, jiffies() + 1)
        wait_for_completion(done)
        assert seen == [(False, 0, True)]
        del_timer_sync(t)

    run_on(body)


# --------------------------------------------------------------------------------------------- kthreads


def test_kthread_stop_interrupts_an_interruptible_wait(run_on):
    """kernel/kthread.c (kthread_stop): sets TIF_NOTIFY_SIGNAL before waking the thread, so signal_pending()
    is true for it and an interruptible wait whose condition does not test kthread_should_stop() returns
    -ERESTARTSYS; kthread_stop returns the thread function's result."""

    def body():
        wq = WaitQueueHead()
        c = Completion()

        def fn(data):
            ret = wait_event_interruptible(wq, lambda: False)
            return (ret, kthread_should_stop(), signal_pending(current()))

        k = kthread_run(fn, None, "audit-waiter")
        t2 = kthread_run(lambda d: wait_for_completion_interruptible(c), None, "audit-completion")
        assert kthread_stop(k) == (-ERESTARTSYS, True, True)
        assert kthread_stop(t2) == -ERESTARTSYS

    run_on(body)


def test_kthread_stop_interrupts_schedule_and_mutex_lock_interruptible(run_on):
    """kernel/kthread.c (kthread_stop) with kernel/sched/core.c (signal_pending_state): after the stop,
    an interruptible sleep in the thread returns at once and mutex_lock_interruptible on a held mutex
    returns -EINTR instead of waiting."""

    def body():
        m = Mutex()
        mutex_lock(m)

        def fn(data):
            while not kthread_should_stop():
                set_current_state(TASK_INTERRUPTIBLE)
                if kthread_should_stop():
                    set_current_state(0)
                    break
                schedule_timeout(10 * HZ)
            left = schedule_timeout_interruptible_now()
            return (left, mutex_lock_interruptible(m))

        k = kthread_run(fn, None, "audit-loop")
        assert kthread_stop(k) == (10 * HZ, -EINTR)
        mutex_unlock(m)

    run_on(body)


def test_kthread_stop_does_not_interrupt_a_killable_wait(run_on):
    """kernel/kthread.c (kthread_stop sets TIF_NOTIFY_SIGNAL) with include/linux/sched/signal.h
    (signal_pending_state): the notification is not a fatal signal, so a TASK_KILLABLE wait
    (wait_for_completion_killable) in the stopped thread keeps sleeping until the completion comes."""

    def body():
        c = Completion()
        started = Completion()

        def fn(data):
            complete(started)
            return wait_for_completion_killable(c)

        k = kthread_run(fn, None, "audit-killable")
        wait_for_completion(started)
        opener = dmabuf.spawn(complete, c, name="completer")
        assert kthread_stop(k) == 0
        opener.join()

    run_on(body)


def schedule_timeout_interruptible_now() -> int:
    """An interruptible 10 s sleep: with a signal pending it returns at once with the whole timeout left."""
    set_current_state(TASK_INTERRUPTIBLE)
    return schedule_timeout(10 * HZ)


# --------------------------------------------------------------------------------------------- RCU


def test_call_rcu_callback_runs_in_atomic_context(run_on):
    """kernel/rcu/tree.c (rcu_do_batch, invoked from RCU_SOFTIRQ or an rcuo kthread under
    local_bh_disable): call_rcu callbacks run in softirq context and must not sleep."""

    def body():
        h = RcuHead()
        seen: list[bool] = []
        call_rcu(h, lambda head: seen.append(in_atomic()))
        rcu_barrier()
        assert seen == [True]

    run_on(body)


def test_sleeping_in_call_rcu_callback_warns():
    """kernel/rcu/tree.c, include/linux/kernel.h (might_sleep): a call_rcu callback that sleeps is
    'sleeping function called from invalid context'."""

    def body():
        h = RcuHead()
        call_rcu(h, lambda head: msleep(1))
        rcu_barrier()

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "kernel-warning", str(res.failure)
    assert "invalid context" in res.failure.message


# --------------------------------------------------------------------------------------------- sleeping in atomic


def _idle_work() -> WorkStruct:
    w = WorkStruct()
    INIT_WORK(w, lambda work: None)
    return w


def _stoppable_kthread() -> Any:
    return kthread_run(lambda d: 0, None, "audit-k")


# name -> (setup run before the spinlock is taken, the call made under it)
_SLEEPERS: dict[str, tuple[Callable[[], Any], Callable[[Any], Any]]] = {
    "wait_event": (WaitQueueHead, lambda wq: wait_event(wq, lambda: True)),
    "wait_for_completion_timeout": (Completion, lambda c: wait_for_completion_timeout(c, 0)),
    "flush_work": (_idle_work, flush_work),
    "cancel_work_sync": (_idle_work, cancel_work_sync),
    "synchronize_rcu": (lambda: None, lambda _: synchronize_rcu()),
    "rcu_barrier": (lambda: None, lambda _: rcu_barrier()),
    "kthread_stop": (_stoppable_kthread, kthread_stop),
}


@pytest.mark.parametrize("name", sorted(_SLEEPERS))
def test_sleeping_primitives_under_a_spinlock_warn(name: str):
    """include/linux/kernel.h (might_sleep): wait_event*, wait_for_completion*, flush_work,
    cancel_work_sync, synchronize_rcu, rcu_barrier and kthread_stop may sleep; under a spinlock they are
    'sleeping function called from invalid context', even when they would not actually block."""
    setup, call = _SLEEPERS[name]

    def body():
        arg = setup()
        s = SpinLock()
        spin_lock(s)
        try:
            call(arg)
        finally:
            spin_unlock(s)

    res = dmabuf.explore(body, strategy="dfs", max_executions=50)
    assert res.failure is not None and res.failure.kind == "kernel-warning", str(res.failure)
    assert "invalid context" in res.failure.message


def test_wait_event_in_rcu_section_warns_even_if_condition_true():
    """include/linux/wait.h (wait_event calls might_sleep first): a wait in an RCU read-side section is a
    WARN even if it would return at once."""

    def body():
        rcu_read_lock()
        try:
            wait_event(WaitQueueHead(), lambda: True)
        finally:
            rcu_read_unlock()

    with pytest.raises(KernelWarning, match="invalid context"):
        dmabuf.run_threads(body)


# --------------------------------------------------------------------------------------------- wait queues


class _Pair:
    def __init__(self) -> None:
        self.a = 0
        self.b = 0


def test_wait_event_rechecks_the_condition_after_joining_the_queue(run_on):
    """include/linux/wait.h (___wait_event): the condition is evaluated again after prepare_to_wait, so a
    wake_up that happens while the first (lockless) check runs is not lost, even when the condition reads
    several fields."""

    def body():
        s = _Pair()
        wq = WaitQueueHead()

        def waker():
            WRITE_ONCE(s, "a", 1)
            WRITE_ONCE(s, "b", 1)
            wake_up(wq)

        t = dmabuf.spawn(waker, name="waker")
        wait_event(wq, lambda: READ_ONCE(s, "a") + READ_ONCE(s, "b") == 2)
        t.join()

    run_on(body)


# --------------------------------------------------------------------------------------------- completions


def test_timed_out_completion_wait_consumes_nothing():
    """kernel/sched/completion.c (do_wait_for_common): a wait that returns 0 (timed out) did not consume
    a completion; one that got it returns at least 1 -- also when the completion arrives on the very
    jiffy of the deadline. Both outcomes exist when complete() races with the deadline."""
    outcomes: set[tuple[int, int]] = set()

    def body():
        c, fired = Completion(), Completion()
        t = TimerList()

        def cb(tm):
            complete(c)
            complete(fired)

        timer_setup(t, cb, 0)
        mod_timer(t, jiffies() + 3)
        ret = wait_for_completion_timeout(c, 3)
        wait_for_completion(fired)
        assert (ret == 0) == (c.done == 1), (ret, c.done)
        outcomes.add((min(ret, 1), c.done))

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is None, str(res.failure)
    assert outcomes == {(0, 1), (1, 0)}


def test_completion_timeout_when_already_done_returns_the_whole_timeout():
    """kernel/sched/completion.c (do_wait_for_common): with a completion available the wait does not
    sleep and returns the timeout it was given (or 1 for a zero timeout)."""
    out: list[int] = []

    def body():
        c = Completion()
        complete(c)
        out.append(wait_for_completion_timeout(c, 7))
        complete(c)
        out.append(wait_for_completion_timeout(c, 0))

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is None and out == [7, 1]


def test_timed_waits_return_the_exact_jiffies_left():
    """kernel/sched/completion.c (wait_for_completion_timeout) and include/linux/wait.h
    (wait_event_timeout): a wait satisfied early returns the remaining jiffies of its timeout; in virtual
    time a wake-up 3 jiffies into a 10-jiffy wait leaves exactly 7."""
    out: list[tuple[int, int]] = []

    def body():
        c = Completion()
        wq = WaitQueueHead()
        flag = [False]

        def waker():
            msleep(jiffies_to_msecs(3))
            complete(c)
            flag[0] = True
            wake_up(wq)

        t = dmabuf.spawn(waker, name="waker")
        r1 = wait_for_completion_timeout(c, 10)
        r2 = wait_event_timeout(wq, lambda: flag[0], 10)
        t.join()
        out.append((r1, r2))

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is None, str(res.failure)
    assert set(out) == {(7, 10)}  # the second wait finds its condition true at once: the whole timeout


def test_complete_all_releases_later_waiters_until_reinit(run_on):
    """kernel/sched/completion.c (complete_all, reinit_completion): after complete_all every wait returns
    at once, also of tasks that start waiting later, until reinit_completion makes waits block again."""

    def body():
        c = Completion()
        complete_all(c)
        ts = [dmabuf.spawn(wait_for_completion, c, name=f"late{i}") for i in range(2)]
        for t in ts:
            t.join()
        assert wait_for_completion_timeout(c, 1) >= 1
        reinit_completion(c)
        assert wait_for_completion_timeout(c, 1) == 0

    run_on(body)


# --------------------------------------------------------------------------------------------- kref


class _Obj:
    def __init__(self) -> None:
        self.ref = Kref(self)
        kref_init(self.ref)
        self.released = 0
        self.in_use = 0


def test_kref_get_unless_zero_never_revives_a_released_object(run_on):
    """include/linux/kref.h (kref_get_unless_zero, kref_put): a lookup racing with the last put either
    gets a reference (and the release waits for its put) or fails without a WARN; release runs exactly
    once, never while the lookup holds a reference."""

    def body():
        o = _Obj()

        def release(ref):
            assert o.in_use == 0, "released while a lookup holds a reference"
            o.released += 1

        def lookup():
            if kref_get_unless_zero(o.ref):
                o.in_use += 1
                dmabuf.rt().point("use", o)
                o.in_use -= 1
                kref_put(o.ref, release)
                return True
            return False

        t = dmabuf.spawn(lookup, name="lookup")
        kref_put(o.ref, release)
        t.join()
        assert o.released == 1

    run_on(body)


def test_kref_put_release_receives_the_kref_and_returns_one(run_on):
    """include/linux/kref.h (kref_put): returns 1 when it called release (with the kref itself), else 0."""

    def body():
        o = _Obj()
        got: list[Any] = []
        kref_get_unless_zero(o.ref)
        assert kref_put(o.ref, got.append) == 0 and got == []
        assert kref_put(o.ref, got.append) == 1 and got == [o.ref]
        assert kref_get_unless_zero(o.ref) is False

    run_on(body)


# --------------------------------------------------------------------------------------------- schedule()


def _sleep_in(enter: Callable[[], Any], leave: Callable[[Any], Any]) -> Callable[[], None]:
    def body() -> None:
        x = enter()
        try:
            set_current_state(TASK_INTERRUPTIBLE)
            schedule_timeout(1)
        finally:
            leave(x)

    return body


def _spin_enter() -> SpinLock:
    s = SpinLock()
    spin_lock(s)
    return s


@pytest.mark.parametrize(
    ("where", "enter", "leave", "message"),
    [
        ("spinlock", _spin_enter, spin_unlock, "scheduling while atomic"),
        ("rcu", rcu_read_lock, lambda _: rcu_read_unlock(), "RCU read-side critical section"),
    ],
)
def test_schedule_timeout_in_atomic_or_rcu_section_warns(where, enter, leave, message):
    """kernel/sched/core.c (schedule_debug: 'scheduling while atomic') and kernel/rcu/tree_plugin.h
    (rcu_note_context_switch: 'Voluntary context switch within RCU read-side critical section!'):
    the set_current_state()/schedule_timeout() idiom does not call might_sleep, but scheduling under a
    spinlock or inside rcu_read_lock() is still a WARN."""
    res = dmabuf.explore(_sleep_in(enter, leave), strategy="dfs")
    assert res.failure is not None and res.failure.kind == "kernel-warning", str(res.failure)
    assert message in res.failure.message
    with pytest.raises(KernelWarning, match=message):
        dmabuf.run_threads(_sleep_in(enter, leave))


# --------------------------------------------------------------------------------------------- lists


def test_list_del_init_is_idempotent_but_list_del_is_not():
    """include/linux/list.h with lib/list_debug.c (__list_del_entry_valid_or_report): a node unlinked with
    list_del_init points to itself, so list_empty() on it is true and unlinking it again is valid (the
    "if (!list_empty(&x->node)) list_del_init(&x->node)" idiom and its unconditional form both work);
    after list_del the node is poisoned and a second unlink is a BUG."""

    class Item:
        def __init__(self) -> None:
            self.node = ListHead()
            INIT_LIST_HEAD(self.node)

    head = ListHead()
    INIT_LIST_HEAD(head)
    a, b = Item(), Item()
    list_add_tail(a.node, head)
    list_add_tail(b.node, head)
    list_del_init(a.node)
    assert list_empty(a.node) is True
    list_del_init(a.node)  # no BUG: a self-linked node unlinks cleanly
    assert list_empty(a.node) is True
    assert [x.node for x in list_for_each_entry(head, Item, "node")] == [b.node]
    list_del(b.node)
    assert list_empty(head) is True
    with pytest.raises(KernelBug, match="LIST_POISON"):
        list_del(b.node)
