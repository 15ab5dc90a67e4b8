"""DPOR sees every workqueue race DFS sees, and workqueues start workers on demand.

Every operation on workqueue state (a work item's PENDING bit and queue membership, a workqueue's queue,
its running items and idle workers, the delay timers of delayed work) is a scheduling point on one object,
the worker pool, with the right access kind. A worker taking an item used to be a point on its workqueue
while queue/cancel/flush/work_pending were points on the pool, so DPOR never ordered them: it reported a
cancel_work_sync race as complete and clean in 2 executions where DFS found the refcount underflow. Each
small program below must give the same set of outcomes under DPOR and DFS.

A workqueue used to have a fixed two workers, so three items of which two wait for the third deadlocked;
it now starts a worker for every runnable item no free worker can take, up to its limit.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import pytest

import dmabuf
from dmabuf.kernel import (
    INIT_DELAYED_WORK,
    INIT_WORK,
    READ_ONCE,
    WRITE_ONCE,
    Completion,
    DelayedWork,
    Kref,
    WaitQueueHead,
    WorkStruct,
    alloc_ordered_workqueue,
    alloc_workqueue,
    cancel_delayed_work,
    cancel_delayed_work_sync,
    cancel_work,
    cancel_work_sync,
    complete_all,
    delayed_work_pending,
    destroy_workqueue,
    drain_workqueue,
    flush_delayed_work,
    flush_work,
    flush_workqueue,
    kref_init,
    kref_put,
    mod_delayed_work,
    queue_delayed_work,
    queue_work,
    schedule_timeout_uninterruptible,
    schedule_work,
    wait_event,
    wait_for_completion,
    waitqueue_active,
    wake_up,
    work_pending,
)
from dmabuf.kernel.workqueue_struct import Workqueue


class _S:
    """A plain struct for the programs' shared fields."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


def _outcomes(program: Callable[[], Hashable], strategy: str) -> set[Hashable]:
    seen: set[Hashable] = set()

    def body() -> None:
        seen.add(program())  # only main adds, after every other task finished

    res = dmabuf.explore(body, strategy=strategy, max_executions=20_000, database=None)
    assert res.failure is None, str(res.failure)
    assert res.complete, (strategy, res.executions)
    return seen


def _work(fn: Callable[[Any], Any]) -> WorkStruct:
    w = WorkStruct()
    INIT_WORK(w, fn)
    return w


def _dwork(fn: Callable[[Any], Any]) -> DelayedWork:
    d = DelayedWork()
    INIT_DELAYED_WORK(d, fn)
    return d


# ---------------------------------------------------------------------- the programs
def queue_twice() -> Hashable:
    wq = alloc_workqueue("x", 0, 0)
    w = _work(lambda _: None)
    r = (queue_work(wq, w), queue_work(wq, w))
    destroy_workqueue(wq)
    return r


def queue_then_cancel() -> Hashable:
    wq = alloc_workqueue("x", 0, 0)
    ran: list[int] = []
    w = _work(lambda _: ran.append(1))
    queue_work(wq, w)
    r = cancel_work(w)
    destroy_workqueue(wq)
    return (r, len(ran))


def ordered_cancel_sync() -> Hashable:
    wq = alloc_ordered_workqueue("x", 0)
    ran: list[int] = []
    w = _work(lambda _: ran.append(1))
    queue_work(wq, w)
    r = cancel_work_sync(w)
    n = len(ran)
    destroy_workqueue(wq)
    return (r, n)


def system_wq_cancel_sync() -> Hashable:
    ran: list[int] = []
    w = _work(lambda _: ran.append(1))
    schedule_work(w)
    r = cancel_work_sync(w)
    return (r, len(ran))


def queue_then_pending() -> Hashable:
    wq = alloc_workqueue("x", 0, 0)
    w = _work(lambda _: None)
    queue_work(wq, w)
    r = work_pending(w)
    destroy_workqueue(wq)
    return r


def queue_then_flush() -> Hashable:
    wq = alloc_workqueue("x", 0, 0)
    ran: list[int] = []
    w = _work(lambda _: ran.append(1))
    queue_work(wq, w)
    r = flush_work(w)
    n = len(ran)
    destroy_workqueue(wq)
    return (r, n)


def _at_expiry(act: Callable[[DelayedWork, Workqueue], Hashable]) -> Callable[[], Hashable]:
    """Queue a delayed work for 1 jiffy, sleep 1 jiffy, then ``act``: the timer fires at the same jiffy."""

    def program() -> Hashable:
        wq = alloc_workqueue("x", 0, 0)
        s = _S(ran=0)
        d = _dwork(lambda _: WRITE_ONCE(s, "ran", READ_ONCE(s, "ran") + 1))
        queue_delayed_work(wq, d, 1)
        schedule_timeout_uninterruptible(1)
        r = act(d, wq)
        cancel_delayed_work_sync(d)
        destroy_workqueue(wq)
        return (r, s.ran)

    program.__name__ = f"at_expiry_{getattr(act, '__name__', 'act')}"
    return program


def _cancel_sync(d: DelayedWork, wq: Workqueue) -> Hashable:
    return cancel_delayed_work_sync(d)


def _cancel(d: DelayedWork, wq: Workqueue) -> Hashable:
    return cancel_delayed_work(d)


def _mod_now(d: DelayedWork, wq: Workqueue) -> Hashable:
    return mod_delayed_work(wq, d, 0)


def _pending(d: DelayedWork, wq: Workqueue) -> Hashable:
    return delayed_work_pending(d)


def _flush(d: DelayedWork, wq: Workqueue) -> Hashable:
    return flush_delayed_work(d)


def _requeue(d: DelayedWork, wq: Workqueue) -> Hashable:
    return queue_delayed_work(wq, d, 0)


def flush_workqueue_vs_queue() -> Hashable:
    """Another task queues B while main queues A and flushes: A has run at the return, B may have."""
    wq = alloc_workqueue("x", 0, 0)
    ran: list[str] = []
    a = _work(lambda _: ran.append("a"))
    b = _work(lambda _: ran.append("b"))
    t = dmabuf.spawn(lambda: queue_work(wq, b), name="t")
    queue_work(wq, a)
    flush_workqueue(wq)
    seen = "b" in ran
    t.join()
    destroy_workqueue(wq)
    return ("a" in ran, seen)


def ordered_two_queuers() -> Hashable:
    """Two tasks queue one item each on an ordered workqueue: either runs first."""
    wq = alloc_ordered_workqueue("x", 0)
    order: list[str] = []
    a = _work(lambda _: order.append("a"))
    b = _work(lambda _: order.append("b"))
    t = dmabuf.spawn(lambda: queue_work(wq, b), name="t")
    queue_work(wq, a)
    t.join()
    destroy_workqueue(wq)
    return tuple(order)


def drain_with_chain() -> Hashable:
    """A chains B; another task looks at B meanwhile; drain waits for both."""
    wq = alloc_workqueue("x", 0, 0)
    b = _work(lambda _: None)
    a = _work(lambda _: queue_work(wq, b))
    got: dict[str, bool] = {}
    t = dmabuf.spawn(lambda: got.__setitem__("t", work_pending(b)), name="t")
    queue_work(wq, a)
    drain_workqueue(wq)
    after = work_pending(b)
    t.join()
    destroy_workqueue(wq)
    return (got["t"], after)


def cancel_sync_vs_queue() -> Hashable:
    """One task queues the work while main cancels it synchronously."""
    wq = alloc_workqueue("x", 0, 0)
    s = _S(ran=0)
    w = _work(lambda _: WRITE_ONCE(s, "ran", 1))
    got: dict[str, bool] = {}
    t = dmabuf.spawn(lambda: got.__setitem__("t", queue_work(wq, w)), name="t")
    c = cancel_work_sync(w)
    t.join()
    flush_work(w)
    destroy_workqueue(wq)
    return (got["t"], c, s.ran)


def destroy_vs_pending() -> Hashable:
    wq = alloc_workqueue("x", 0, 0)
    w = _work(lambda _: None)
    queue_work(wq, w)
    got: dict[str, bool] = {}
    t = dmabuf.spawn(lambda: got.__setitem__("t", work_pending(w)), name="t")
    destroy_workqueue(wq)
    t.join()
    return got["t"]


def waitqueue_active_plain_condition() -> Hashable:
    """A waiter joins the queue (its condition is a plain field) while main asks waitqueue_active()."""
    s = _S(c=0)
    wq = WaitQueueHead()
    t = dmabuf.spawn(lambda: wait_event(wq, lambda: s.c), name="waiter")
    a = waitqueue_active(wq)
    WRITE_ONCE(s, "c", 1)
    wake_up(wq)
    t.join()
    return a


PROGRAMS = [
    queue_twice,
    queue_then_cancel,
    ordered_cancel_sync,
    system_wq_cancel_sync,
    queue_then_pending,
    queue_then_flush,
    _at_expiry(_cancel_sync),
    _at_expiry(_cancel),
    _at_expiry(_mod_now),
    _at_expiry(_pending),
    _at_expiry(_flush),
    _at_expiry(_requeue),
    flush_workqueue_vs_queue,
    ordered_two_queuers,
    drain_with_chain,
    cancel_sync_vs_queue,
    destroy_vs_pending,
    waitqueue_active_plain_condition,
]


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.__name__)
def test_dpor_and_dfs_see_the_same_outcomes(program: Callable[[], Hashable]) -> None:
    dfs = _outcomes(program, "dfs")
    dpor = _outcomes(program, "dpor")
    assert dpor == dfs


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        (queue_then_cancel, {(True, 0), (False, 1)}),
        (ordered_cancel_sync, {(True, 0), (False, 1)}),
        (system_wq_cancel_sync, {(True, 0), (False, 1)}),
        (queue_then_pending, {True, False}),
        (_at_expiry(_cancel_sync), {(True, 0), (False, 1)}),
        (ordered_two_queuers, {("a", "b"), ("b", "a")}),
        (waitqueue_active_plain_condition, {True, False}),
    ],
    ids=lambda x: getattr(x, "__name__", "expected"),
)
def test_dpor_sees_the_worker_take_the_item_first(program: Callable[[], Hashable], expected: set[Any]) -> None:
    assert _outcomes(program, "dpor") == expected


def test_default_dpor_finds_the_cancel_work_sync_refcount_bug() -> None:
    def body() -> None:
        wq = alloc_workqueue("x", 0, 0)
        k = Kref()
        kref_init(k)  # the reference the work owns
        w = _work(lambda _: kref_put(k, lambda _r: None))
        queue_work(wq, w)
        cancel_work_sync(w)
        kref_put(k, lambda _r: None)  # bug: puts the work's reference even if the work ran
        destroy_workqueue(wq)

    res = dmabuf.explore(body, database=None)
    assert res.failure is not None
    assert "refcount_t: underflow" in res.failure.message


# ---------------------------------------------------------------------- workers on demand
def _blocked_pair_body(on_system_wq: bool) -> Callable[[], None]:
    def body() -> None:
        c = Completion()
        a = _work(lambda _: wait_for_completion(c))
        b = _work(lambda _: wait_for_completion(c))
        cc = _work(lambda _: complete_all(c))
        if on_system_wq:
            for w in (a, b, cc):
                schedule_work(w)
            flush_work(cc)
            flush_work(a)
            flush_work(b)
        else:
            wq = alloc_workqueue("x", 0, 0)
            for w in (a, b, cc):
                queue_work(wq, w)
            flush_work(cc)
            flush_workqueue(wq)
            destroy_workqueue(wq)

    return body


@pytest.mark.parametrize("on_system_wq", [False, True], ids=["alloc_workqueue", "system_wq"])
def test_two_items_waiting_for_a_third_complete(on_system_wq: bool) -> None:
    res = dmabuf.explore(_blocked_pair_body(on_system_wq), database=None)
    assert res.ok and res.complete, str(res.failure)
    dmabuf.run_threads(_blocked_pair_body(on_system_wq), timeout=60)


def test_nested_flush_chain_three_deep_on_one_queue() -> None:
    def body() -> None:
        wq = alloc_workqueue("x", 0, 0)
        done: list[str] = []
        c = _work(lambda _: done.append("c"))

        def fb(_: Any) -> None:
            queue_work(wq, c)
            flush_work(c)
            done.append("b")

        b = _work(fb)

        def fa(_: Any) -> None:
            queue_work(wq, b)
            flush_work(b)
            done.append("a")

        a = _work(fa)
        queue_work(wq, a)
        flush_work(a)
        assert done == ["c", "b", "a"], done
        assert len(wq._workers) == 3
        destroy_workqueue(wq)

    res = dmabuf.explore(body, database=None)
    assert res.ok and res.complete, str(res.failure)
    dmabuf.run_threads(body, timeout=60)


def test_ordered_workqueue_still_runs_one_at_a_time_in_order() -> None:
    def body() -> None:
        wq = alloc_ordered_workqueue("o", 0)
        s = _S(active=0, most=0)
        order: list[str] = []

        def fn(w: Any) -> None:
            s.active += 1
            s.most = max(s.most, s.active)
            dmabuf.rt().point("work_body", s)
            order.append(w._dm_label)
            s.active -= 1

        items = [WorkStruct(fn, name=n) for n in "abc"]
        for w in items:
            queue_work(wq, w)
        flush_workqueue(wq)
        assert order == ["a", "b", "c"] and s.most == 1, (order, s.most)
        assert len(wq._workers) == 1
        destroy_workqueue(wq)

    res = dmabuf.explore(body, database=None)
    assert res.ok and res.complete, str(res.failure)


def test_workers_are_started_only_when_needed() -> None:
    def body() -> None:
        wq = alloc_workqueue("x", 0, 0)
        assert wq._workers == []  # no item yet: no worker task
        w = _work(lambda _: None)
        for _ in range(3):
            queue_work(wq, w)
            flush_work(w)
        assert len(wq._workers) == 1  # one item at a time: one worker
        destroy_workqueue(wq)

    res = dmabuf.explore(body, database=None)
    assert res.ok and res.complete, str(res.failure)


def test_max_active_limits_the_workers() -> None:
    # max_active=3 (per CPU): three items wait for a fourth that no worker is left to run, as in the
    # kernel when they are all queued from one CPU
    def body() -> None:
        wq = alloc_workqueue("x", 0, 3)
        c = Completion()
        items = [_work(lambda _: wait_for_completion(c)) for _ in range(3)]
        items.append(_work(lambda _: complete_all(c)))
        for w in items:
            queue_work(wq, w)
        flush_workqueue(wq)
        destroy_workqueue(wq)

    res = dmabuf.explore(body, database=None, preemption_bound=0)
    assert res.failure is not None and res.failure.kind == "deadlock"
