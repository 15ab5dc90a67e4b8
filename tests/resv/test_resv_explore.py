"""Concurrency of reservation objects under the explorer (and once on real threads).

* several drm_exec contexts lock the same resvs in different orders and complete (Wait-Die back-off);
* without an acquire context the same ABBA order deadlocks, and the explorer finds it;
* an unlocked reader racing with a writer that reallocates the list in each lock session restarts and only
  ever returns one state of the list (in-place changes within one session can tear: test_resv_inplace.py).

Sizes are reduced for Python (2-3 tasks, 2-3 objects, a preemption bound where the full tree is too large);
each test says so.
"""

from __future__ import annotations

from typing import Any

import dmabuf
from dmabuf.drm_exec import PAGE_SIZE
from dmabuf.kernel import (
    DMA_RESV_USAGE_READ,
    DMA_RESV_USAGE_WRITE,
    MAX_SCHEDULE_TIMEOUT,
    DmaFence,
    DmaFenceOps,
    DmaResv,
    DmaResvIter,
    DrmExec,
    DrmGemObject,
    SpinLock,
    dma_fence_context_alloc,
    dma_fence_init,
    dma_fence_put,
    dma_fence_signal,
    dma_resv_add_fence,
    dma_resv_for_each_fence_unlocked,
    dma_resv_get_fences,
    dma_resv_init,
    dma_resv_iter_begin,
    dma_resv_iter_end,
    dma_resv_iter_is_restarted,
    dma_resv_lock,
    dma_resv_reserve_fences,
    dma_resv_unlock,
    dma_resv_wait_timeout,
    drm_exec_fini,
    drm_exec_for_each_locked_object,
    drm_exec_init,
    drm_exec_prepare_obj,
    drm_exec_retry_on_contention,
    drm_exec_until_all_locked,
    drm_gem_private_object_init,
)


def _name(f: DmaFence) -> str:
    return "explore"


OPS = DmaFenceOps(get_driver_name=_name, get_timeline_name=_name)


def fence(context: int, seqno: int) -> DmaFence:
    f = DmaFence()
    dma_fence_init(f, OPS, SpinLock(lock_class="explore.fence_lock"), context, seqno)
    return f


def gem() -> DrmGemObject:
    obj = DrmGemObject()
    drm_gem_private_object_init(None, obj, PAGE_SIZE)
    return obj


def submit(objs: list[DrmGemObject], job: DmaFence, log: list[str], name: str) -> None:
    """A command submission: lock every object (drm_exec loop), add the job fence, unlock."""
    exec = DrmExec()
    drm_exec_init(exec, 0, 0)
    for _ in drm_exec_until_all_locked(exec):
        ret = 0
        for o in objs:
            ret = drm_exec_prepare_obj(exec, o, 1)
            if ret:
                break
        if drm_exec_retry_on_contention(exec):
            continue
        assert ret == 0
    for _i, o in drm_exec_for_each_locked_object(exec):
        dma_resv_add_fence(o.resv, job, DMA_RESV_USAGE_WRITE)  # type: ignore[arg-type]
    log.append(name)
    drm_exec_fini(exec)


def check_job_fences(objs: list[DrmGemObject], jobs: list[DmaFence]) -> None:
    for o in objs:
        ret, fences = dma_resv_get_fences(o.resv, DMA_RESV_USAGE_READ)  # type: ignore[arg-type]
        assert ret == 0
        assert sorted(f.context for f in fences) == sorted(j.context for j in jobs)
        for f in fences:
            dma_fence_put(f)


def test_two_execs_opposite_order(run_on: Any) -> None:
    """Two submissions lock {A, B} as A,B and B,A: both complete, each resv gets both job fences."""

    def body() -> None:
        a, b = gem(), gem()
        jobs = [fence(dma_fence_context_alloc(1), 1) for _ in range(2)]
        log: list[str] = []
        t1 = dmabuf.spawn(submit, [a, b], jobs[0], log, "t1", name="t1")
        t2 = dmabuf.spawn(submit, [b, a], jobs[1], log, "t2", name="t2")
        t1.join()
        t2.join()
        assert sorted(log) == ["t1", "t2"]
        check_job_fences([a, b], jobs)

    res = run_on(body, max_executions=20_000, preemption_bound=3)
    if run_on.kind == "controlled":
        assert res.complete


def test_three_execs_three_objects(run_on: Any) -> None:
    """Three submissions lock three objects in three rotations. Reduced for Python: preemption bound 1."""

    def body() -> None:
        objs = [gem() for _ in range(3)]
        jobs = [fence(dma_fence_context_alloc(1), 1) for _ in range(3)]
        log: list[str] = []
        ts = [
            dmabuf.spawn(submit, objs[i:] + objs[:i], jobs[i], log, f"t{i}", name=f"t{i}") for i in range(3)
        ]
        for t in ts:
            t.join()
        assert sorted(log) == ["t0", "t1", "t2"]
        check_job_fences(objs, jobs)

    run_on(body, max_executions=20_000, preemption_bound=1)


def test_abba_without_acquire_context_deadlocks() -> None:
    """The bug drm_exec prevents: two plain resv locks in opposite orders."""

    def body() -> None:
        a, b = DmaResv(), DmaResv()
        dma_resv_init(a)
        dma_resv_init(b)

        def worker(x: DmaResv, y: DmaResv) -> None:
            assert dma_resv_lock(x, None) == 0
            assert dma_resv_lock(y, None) == 0
            dma_resv_unlock(y)
            dma_resv_unlock(x)

        t1 = dmabuf.spawn(worker, a, b)
        t2 = dmabuf.spawn(worker, b, a)
        t1.join()
        t2.join()

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None
    assert res.failure.kind in ("deadlock", "kernel-warning")


def test_wait_for_submitted_job(run_on: Any) -> None:
    """A submitter adds its job fence under the lock; a waiter that saw it waits until the job signals."""

    def body() -> None:
        obj = gem()
        job = fence(dma_fence_context_alloc(1), 1)
        log: list[str] = []

        def waiter() -> None:
            assert dma_resv_wait_timeout(obj.resv, DMA_RESV_USAGE_READ, False, MAX_SCHEDULE_TIMEOUT) > 0  # type: ignore[arg-type]
            if "submitted" in log:
                pass  # may have seen the fence: then it returned only after the signal
            log.append("waited")

        def submitter() -> None:
            submit([obj], job, log, "submitted")
            dma_fence_signal(job)
            log.append("signaled")

        tw = dmabuf.spawn(waiter)
        ts = dmabuf.spawn(submitter)
        tw.join()
        ts.join()
        assert sorted(log) == ["signaled", "submitted", "waited"]

    run_on(body, preemption_bound=2)


# ---------------------------------------------------------------------- unlocked readers vs writers
def _replacing_writer(obj: DmaResv, olds: list[DmaFence], news: list[DmaFence]) -> None:
    """Replace each fence of ``olds`` by the later fence of its context in ``news``, one lock session each."""
    for new in news:
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 1) == 0
        dma_resv_add_fence(obj, new, DMA_RESV_USAGE_WRITE)
        dma_resv_unlock(obj)


def _setup_two(obj: DmaResv) -> tuple[list[DmaFence], list[DmaFence]]:
    ctxs = [dma_fence_context_alloc(1) for _ in range(2)]
    olds = [fence(c, 1) for c in ctxs]
    news = [fence(c, 2) for c in ctxs]
    assert dma_resv_lock(obj, None) == 0
    assert dma_resv_reserve_fences(obj, 2) == 0
    for f in olds:
        dma_resv_add_fence(obj, f, DMA_RESV_USAGE_WRITE)
    dma_resv_unlock(obj)
    return olds, news


def test_get_fences_racing_replacement_is_a_snapshot(run_on: Any) -> None:
    """The writer replaces [A1, B1] by [A2, B1] then [A2, B2], one lock session each. Each session's
    ``dma_resv_reserve_fences(obj, 1)`` reallocates (unlock reset ``max_fences`` to ``num_fences``), so the
    two replacements land in different lists and a reader on the first list restarts on the pointer check:
    it gets one of these three states, never the torn [A1, B2]. (Two in-place replacements within one
    session can give that tear, as in the kernel: test_resv_inplace.py.)"""
    restarts: list[bool] = []

    def body() -> None:
        obj = DmaResv()
        dma_resv_init(obj)
        olds, news = _setup_two(obj)
        states = [{olds[0], olds[1]}, {news[0], olds[1]}, {news[0], news[1]}]
        got: list[set[DmaFence]] = []

        def reader() -> None:
            ret, fences = dma_resv_get_fences(obj, DMA_RESV_USAGE_READ)
            assert ret == 0
            got.append(set(fences))
            for f in fences:
                dma_fence_put(f)

        def reader_cursor() -> None:
            cur = DmaResvIter()
            dma_resv_iter_begin(cur, obj, DMA_RESV_USAGE_READ)
            seen: list[DmaFence] = []
            for f in dma_resv_for_each_fence_unlocked(cur):
                if dma_resv_iter_is_restarted(cur):
                    restarts.append(bool(seen))
                    seen = []
                seen.append(f)
            dma_resv_iter_end(cur)
            got.append(set(seen))

        tr = dmabuf.spawn(reader)
        tc = dmabuf.spawn(reader_cursor)
        tw = dmabuf.spawn(_replacing_writer, obj, olds, news)
        for t in (tr, tc, tw):
            t.join()
        for g in got:
            assert g in states, f"torn read: {g}"

    run_on(body, max_executions=20_000, preemption_bound=2)
    if run_on.kind == "controlled":
        assert any(restarts), "no interleaving made the unlocked walk restart mid-way"
