"""lockdep-lite's workqueue annotations (kernel/workqueue.c): a worker holds the workqueue's and the work's
lockdep maps around the work function, and flush_work/cancel_work_sync (the work's map) and
flush_workqueue/drain_workqueue (the workqueue's map) take them for a moment. So "flush W while holding L"
against "W's function takes L" is reported as a possible circular locking dependency even when the two
never overlap in time (the work was idle at the flush), as the kernel's lockdep does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import dmabuf
from dmabuf.kernel import (
    Mutex,
    WorkStruct,
    alloc_workqueue,
    cancel_work_sync,
    config,
    destroy_workqueue,
    drain_workqueue,
    flush_work,
    flush_workqueue,
    mutex_lock,
    mutex_unlock,
    queue_work,
)


def _program(flush: Callable[[Any, Any], Any], *, under_lock: bool, work_locks: bool = True) -> Callable[[], None]:
    """The work takes M; main waits for it to finish (flush_workqueue, no lock held), then flushes again
    with ``flush`` while holding M (``under_lock``) or not. The work is idle at the second flush: only
    lockdep can see the inversion."""

    def body() -> None:
        m = Mutex(name="M")
        wq = alloc_workqueue("wq", 0, 0)

        def fn(w: Any) -> None:
            if work_locks:
                mutex_lock(m)
                mutex_unlock(m)

        w = WorkStruct(fn)
        queue_work(wq, w)
        flush_workqueue(wq)  # the work ran: lockdep learnt (wq) -> (work) -> M
        if under_lock:
            mutex_lock(m)
        flush(w, wq)
        if under_lock:
            mutex_unlock(m)
        destroy_workqueue(wq)

    return body


FLUSHES = {
    "flush_work": lambda w, wq: flush_work(w),
    "cancel_work_sync": lambda w, wq: cancel_work_sync(w),
    "flush_workqueue": lambda w, wq: flush_workqueue(wq),
    "drain_workqueue": lambda w, wq: drain_workqueue(wq),
}


@pytest.mark.parametrize("name", list(FLUSHES))
def test_flushing_under_a_lock_the_work_takes_is_a_lockdep_report(name: str) -> None:
    res = dmabuf.explore(_program(FLUSHES[name], under_lock=True), database=None)
    f = res.failure
    assert f is not None and f.kind == "kernel-warning", res
    assert "possible circular locking dependency" in f.message and "while holding M" in f.message
    assert ("(work_completion)" if name in ("flush_work", "cancel_work_sync") else "(wq_completion)wq") in f.message


@pytest.mark.parametrize("name", list(FLUSHES))
def test_no_report_without_the_inversion(name: str) -> None:
    """The same flush without the lock held, or under a lock the work does not take, is fine."""
    assert dmabuf.explore(_program(FLUSHES[name], under_lock=False), database=None).ok
    assert dmabuf.explore(_program(FLUSHES[name], under_lock=True, work_locks=False), database=None).ok


def test_the_annotations_follow_config_prove_locking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "CONFIG_PROVE_LOCKING", False)
    assert dmabuf.explore(_program(FLUSHES["flush_work"], under_lock=True), database=None).ok


def test_the_worker_releases_its_maps() -> None:
    """The maps are held only around the work function: after it, the worker holds nothing (a map left on
    its held list would be reported as a lock held at exit, and would order later work after this one)."""
    seen: list[int] = []

    def body() -> None:
        wq = alloc_workqueue("wq", 0, 0)
        held_in_fn: list[int] = []

        def fn(w: Any) -> None:
            held_in_fn.append(len(dmabuf.runtime.rt().current().held))

        w = WorkStruct(fn)
        queue_work(wq, w)
        flush_work(w)
        queue_work(wq, w)
        flush_work(w)
        destroy_workqueue(wq)
        seen.extend(held_in_fn)

    assert dmabuf.explore(body, database=None).ok
    assert seen and all(n == 2 for n in seen)  # the workqueue's map and the work's, nothing else
