"""Audit of documented dma_resv behaviours (kernel-semantics.md section 2) that no other test pins down.
Black-box, through the kernel names; each body runs on both runtimes."""

from __future__ import annotations

from typing import Any

import pytest
from test_resv import entries, fence, resv

from dmabuf.errors import KernelBug
from dmabuf.kernel import (
    DMA_FENCE_FLAG_SIGNALED_BIT,
    DMA_RESV_USAGE_BOOKKEEP,
    DMA_RESV_USAGE_KERNEL,
    DMA_RESV_USAGE_READ,
    DMA_RESV_USAGE_WRITE,
    ERESTARTSYS,
    HZ,
    DmaFence,
    DmaFenceOps,
    DmaResv,
    DmaResvIter,
    current,
    dma_fence_context_alloc,
    dma_fence_is_array,
    dma_fence_is_signaled,
    dma_fence_put,
    dma_fence_signal,
    dma_fence_wait_timeout,
    dma_resv_add_fence,
    dma_resv_fini,
    dma_resv_for_each_fence,
    dma_resv_for_each_fence_unlocked,
    dma_resv_get_fences,
    dma_resv_get_singleton,
    dma_resv_iter_begin,
    dma_resv_iter_end,
    dma_resv_iter_usage,
    dma_resv_lock,
    dma_resv_reserve_fences,
    dma_resv_test_signaled,
    dma_resv_unlock,
    dma_resv_wait_timeout,
    kref_read,
    send_sig,
)
from dmabuf.resv import Usage


def one_fence_per_usage(obj: DmaResv) -> dict[Usage, DmaFence]:
    fs = {u: fence() for u in Usage}
    assert dma_resv_lock(obj, None) == 0
    assert dma_resv_reserve_fences(obj, len(fs)) == 0
    for u in reversed(Usage):  # table order BOOKKEEP, READ, WRITE, KERNEL
        dma_resv_add_fence(obj, fs[u], u)
    dma_resv_unlock(obj)
    return fs


@pytest.mark.parametrize("usage", list(Usage), ids=lambda u: u.name)
def test_every_unlocked_query_honours_usage_order(run_on: Any, usage: Usage) -> None:
    """kernel-semantics 2.1/2.2: querying usage *u* covers exactly the fences with usage <= u
    (KERNEL < WRITE < READ < BOOKKEEP) for the unlocked iterator, get_fences, get_singleton, test_signaled and
    wait_timeout; fences of a larger usage neither block nor appear."""

    def body() -> None:
        obj = resv()
        fs = one_fence_per_usage(obj)
        want = [fs[u] for u in reversed(Usage) if u <= usage]
        others = [fs[u] for u in Usage if u > usage]

        cur = DmaResvIter()
        dma_resv_iter_begin(cur, obj, usage)
        got = [(f, dma_resv_iter_usage(cur)) for f in dma_resv_for_each_fence_unlocked(cur)]
        dma_resv_iter_end(cur)
        assert got == [(f, u) for u, f in fs.items() if u <= usage][::-1]

        ret, fences = dma_resv_get_fences(obj, usage)
        assert ret == 0 and fences == want
        for f in fences:
            dma_fence_put(f)

        ret, single = dma_resv_get_singleton(obj, usage)
        assert ret == 0 and single is not None
        if len(want) == 1:
            assert single is want[0]
        else:
            assert dma_fence_is_array(single) and list(single.fences) == want  # type: ignore[attr-defined]
        dma_fence_put(single)

        assert not dma_resv_test_signaled(obj, usage)
        assert dma_resv_wait_timeout(obj, usage, False, 0) == 0

        for f in want:
            dma_fence_signal(f)
        assert dma_resv_test_signaled(obj, usage)
        assert dma_resv_wait_timeout(obj, usage, False, 0) == 1
        assert dma_resv_wait_timeout(obj, usage, False, 5) == 5
        assert dma_resv_get_singleton(obj, usage) == (0, None)
        assert dma_resv_get_fences(obj, usage) == (0, [])
        assert not any(dma_fence_is_signaled(f) for f in others)
        if others:
            assert not dma_resv_test_signaled(obj, DMA_RESV_USAGE_BOOKKEEP)

        dma_resv_fini(obj)
        for f in fs.values():
            dma_fence_signal(f)
            dma_fence_put(f)

    run_on(body)


def test_same_fence_is_promoted_never_degraded(run_on: Any) -> None:
    """kernel-semantics 2.1: a fence may be promoted (BOOKKEEP -> READ by re-adding it, same entry) but never
    degraded: re-adding it with a larger usage keeps the entry and adds a second one."""

    def body() -> None:
        obj = resv()
        f = fence()
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 2) == 0
        dma_resv_add_fence(obj, f, DMA_RESV_USAGE_BOOKKEEP)
        dma_resv_add_fence(obj, f, DMA_RESV_USAGE_READ)
        assert entries(obj) == [(f, Usage.READ)]
        assert kref_read(f.refcount) == 2  # the resv holds one reference, not two
        dma_resv_add_fence(obj, f, DMA_RESV_USAGE_BOOKKEEP)
        assert entries(obj) == [(f, Usage.READ), (f, Usage.BOOKKEEP)]
        assert list(dma_resv_for_each_fence(DmaResvIter(), obj, DMA_RESV_USAGE_READ)) == [f]
        assert list(dma_resv_for_each_fence(DmaResvIter(), obj, DMA_RESV_USAGE_WRITE)) == []
        dma_resv_unlock(obj)
        dma_resv_fini(obj)
        assert kref_read(f.refcount) == 1
        dma_fence_signal(f)
        dma_fence_put(f)

    run_on(body)


def test_replacement_needs_no_free_slot(run_on: Any) -> None:
    """kernel-semantics 2.2 ``dma_resv_add_fence``: replacing an entry (same context, later fence, old usage
    >= new) or a signaled entry takes no slot, so it works on a full list; only appending BUGs."""

    def body() -> None:
        obj = resv()
        ctx = dma_fence_context_alloc(1)
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 1) == 0
        lst = obj.fences
        assert lst is not None
        first = fence(ctx, 1)
        fill = [first] + [fence() for _ in range(lst.max_fences - 1)]
        for f in fill:
            dma_resv_add_fence(obj, f, DMA_RESV_USAGE_READ)
        later = fence(ctx, 2)
        dma_resv_add_fence(obj, later, DMA_RESV_USAGE_READ)  # replaces `first` in place
        assert entries(obj)[0] == (later, Usage.READ) and len(entries(obj)) == len(fill)
        dma_fence_signal(fill[1])
        other = fence()
        dma_resv_add_fence(obj, other, DMA_RESV_USAGE_KERNEL)  # reuses the signaled slot
        assert entries(obj)[1] == (other, Usage.KERNEL)
        with pytest.raises(KernelBug):
            dma_resv_add_fence(obj, fence(), DMA_RESV_USAGE_READ)
        dma_resv_unlock(obj)
        dma_resv_fini(obj)

    run_on(body)


def test_wait_timeout_interrupted_returns_erestartsys(run_on: Any) -> None:
    """kernel-semantics 2.2 ``dma_resv_wait_timeout``: an interruptible wait with a signal pending returns
    -ERESTARTSYS at once (the fence's wait result, ``ret <= 0`` is returned); an uninterruptible one ignores it
    and times out with 0."""

    def body() -> None:
        obj = resv()
        f = fence()
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 1) == 0
        dma_resv_add_fence(obj, f, DMA_RESV_USAGE_WRITE)
        dma_resv_unlock(obj)
        me = current()
        send_sig(9, me)
        assert dma_resv_wait_timeout(obj, DMA_RESV_USAGE_READ, True, HZ) == -ERESTARTSYS
        assert dma_resv_wait_timeout(obj, DMA_RESV_USAGE_READ, False, 2) == 0
        me.sigpending = False
        dma_fence_signal(f)
        assert dma_resv_wait_timeout(obj, DMA_RESV_USAGE_READ, True, HZ) == HZ
        dma_resv_fini(obj)
        dma_fence_put(f)

    run_on(body)


def test_singleton_array_signals_on_all(run_on: Any) -> None:
    """kernel-semantics 2.2 ``dma_resv_get_singleton``: two or more fences become a dma_fence_array with
    ``signal_on_any = false``: it signals only once every fence did."""

    def body() -> None:
        obj = resv()
        a, b = fence(), fence()
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 2) == 0
        dma_resv_add_fence(obj, a, DMA_RESV_USAGE_READ)
        dma_resv_add_fence(obj, b, DMA_RESV_USAGE_READ)
        dma_resv_unlock(obj)
        ret, arr = dma_resv_get_singleton(obj, DMA_RESV_USAGE_READ)
        assert ret == 0 and arr is not None
        dma_fence_signal(a)
        assert dma_fence_wait_timeout(arr, False, 0) == 0
        assert not dma_fence_is_signaled(arr)
        dma_fence_signal(b)
        assert dma_fence_wait_timeout(arr, False, HZ) > 0
        dma_fence_put(arr)
        dma_resv_fini(obj)
        for f in (a, b):
            dma_fence_put(f)

    run_on(body)


def test_locked_walk_sees_in_place_changes_of_its_list(run_on: Any) -> None:
    """kernel-semantics 2.2 locked iterator: it walks the object's table under the lock, re-reading
    ``num_fences`` at each step, and ``dma_resv_add_fence`` changes that table in place (append, or replace
    entry i): a fence appended or replaced ahead of the cursor during the walk is yielded, a replaced entry
    is never yielded after it was put."""

    def body() -> None:
        obj = resv()
        ctx = dma_fence_context_alloc(1)
        a, old, b = fence(), fence(ctx, 1), fence()
        new = fence(ctx, 2)
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 3) == 0
        dma_resv_add_fence(obj, a, DMA_RESV_USAGE_READ)
        dma_resv_add_fence(obj, old, DMA_RESV_USAGE_READ)
        seen = []
        for f in dma_resv_for_each_fence(DmaResvIter(), obj, DMA_RESV_USAGE_BOOKKEEP):
            seen.append(f)
            if f is a:
                dma_resv_add_fence(obj, new, DMA_RESV_USAGE_READ)  # replaces `old` at index 1
                dma_resv_add_fence(obj, b, DMA_RESV_USAGE_READ)  # appended at index 2
        assert seen == [a, new, b]
        assert kref_read(old.refcount) == 1
        dma_resv_unlock(obj)
        dma_resv_fini(obj)
        for f in (a, old, b, new):
            dma_fence_signal(f)
            dma_fence_put(f)

    run_on(body)


def test_unlocked_queries_poll_ops_signaled(run_on: Any) -> None:
    """kernel-semantics 2.2: the unlocked iterator skips fences for which ``dma_fence_is_signaled`` is true,
    and that call polls ``ops.signaled`` (signaling the fence): test_signaled is then true and get_fences
    empty although nobody called dma_fence_signal."""

    def body() -> None:
        done = [False]
        ops = DmaFenceOps(
            get_driver_name=lambda f: "a", get_timeline_name=lambda f: "a", signaled=lambda f: done[0]
        )
        f = fence(ops=ops)
        obj = resv()
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 1) == 0
        dma_resv_add_fence(obj, f, DMA_RESV_USAGE_WRITE)
        dma_resv_unlock(obj)
        assert not dma_resv_test_signaled(obj, DMA_RESV_USAGE_WRITE)
        done[0] = True
        assert dma_resv_test_signaled(obj, DMA_RESV_USAGE_WRITE)
        assert f.flags & (1 << DMA_FENCE_FLAG_SIGNALED_BIT)  # the poll signaled it
        assert dma_resv_get_fences(obj, DMA_RESV_USAGE_BOOKKEEP) == (0, [])
        dma_resv_fini(obj)
        dma_fence_put(f)

    run_on(body)
