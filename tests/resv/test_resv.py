"""Unit tests of reservation objects: one behaviour per test, on the kernel names unless the Pythonic API is
the subject. Single-task tests run on real threads only (no interleaving to explore); misuse must raise the
kernel's WARN/BUG as KernelWarning/KernelBug.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import dmabuf
from dmabuf.errors import InvalidArgument, KernelBug, KernelWarning
from dmabuf.kernel import (
    DMA_RESV_USAGE_BOOKKEEP,
    DMA_RESV_USAGE_KERNEL,
    DMA_RESV_USAGE_READ,
    DMA_RESV_USAGE_WRITE,
    DmaFence,
    DmaFenceOps,
    DmaResv,
    DmaResvIter,
    SpinLock,
    WWAcquireCtx,
    dma_fence_array_create,
    dma_fence_context_alloc,
    dma_fence_get,
    dma_fence_init,
    dma_fence_is_array,
    dma_fence_put,
    dma_fence_signal,
    dma_resv_add_fence,
    dma_resv_assert_held,
    dma_resv_copy_fences,
    dma_resv_fini,
    dma_resv_for_each_fence,
    dma_resv_for_each_fence_unlocked,
    dma_resv_get_fences,
    dma_resv_get_singleton,
    dma_resv_init,
    dma_resv_is_locked,
    dma_resv_iter_begin,
    dma_resv_iter_end,
    dma_resv_iter_is_restarted,
    dma_resv_iter_usage,
    dma_resv_lock,
    dma_resv_lock_slow,
    dma_resv_locking_ctx,
    dma_resv_replace_fences,
    dma_resv_reserve_fences,
    dma_resv_set_deadline,
    dma_resv_test_signaled,
    dma_resv_trylock,
    dma_resv_unlock,
    dma_resv_usage_rw,
    dma_resv_wait_timeout,
    kref_read,
    reservation_ww_class,
    set_warn_mode,
    ww_acquire_fini,
    ww_acquire_init,
)
from dmabuf.resv import ReservationObject, Usage


def _name(f: DmaFence) -> str:
    return "resv-test"


OPS = DmaFenceOps(get_driver_name=_name, get_timeline_name=_name)


def fence(context: int | None = None, seqno: int = 1, ops: DmaFenceOps = OPS) -> DmaFence:
    f = DmaFence()
    ctx = dma_fence_context_alloc(1) if context is None else context
    dma_fence_init(f, ops, SpinLock(lock_class="resv_test.fence_lock"), ctx, seqno)
    return f


def resv() -> DmaResv:
    obj = DmaResv()
    dma_resv_init(obj)
    return obj


def run(body: Callable[[], Any]) -> Any:
    return dmabuf.run_threads(body, timeout=30)


def entries(obj: DmaResv) -> list[tuple[DmaFence, Usage]]:
    return list(obj.fences.entries()) if obj.fences is not None else []


def refs(f: DmaFence) -> int:
    return kref_read(f.refcount)


# ---------------------------------------------------------------------- usages
def test_usage_order_and_rw() -> None:
    assert DMA_RESV_USAGE_KERNEL < DMA_RESV_USAGE_WRITE < DMA_RESV_USAGE_READ < DMA_RESV_USAGE_BOOKKEEP
    assert [int(u) for u in Usage] == [0, 1, 2, 3]
    assert dma_resv_usage_rw(True) == DMA_RESV_USAGE_READ
    assert dma_resv_usage_rw(False) == DMA_RESV_USAGE_WRITE


def test_queries_return_usages_up_to_u() -> None:
    def body() -> None:
        obj = resv()
        fs = {u: fence() for u in Usage}
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 4) == 0
        for u, f in fs.items():
            dma_resv_add_fence(obj, f, u)
        for u in Usage:
            want = [fs[v] for v in Usage if v <= u]
            cur = DmaResvIter()
            assert list(dma_resv_for_each_fence(cur, obj, u)) == want
            ret, got = dma_resv_get_fences(obj, u)
            assert ret == 0 and got == want
            for g in got:
                dma_fence_put(g)
        dma_resv_unlock(obj)
        dma_resv_fini(obj)
        for f in fs.values():
            assert refs(f) == 1
            dma_fence_put(f)

    run(body)


def test_bad_usage_and_types_are_invalid_argument() -> None:
    def body() -> None:
        obj = resv()
        with pytest.raises(InvalidArgument):
            dma_resv_test_signaled(obj, 4)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            dma_resv_lock(None, None)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            dma_resv_lock(DmaResv(), None)  # never initialised
        with pytest.raises(InvalidArgument):
            dma_resv_reserve_fences(obj, -1)
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 1) == 0
        with pytest.raises(InvalidArgument):
            dma_resv_add_fence(obj, None, DMA_RESV_USAGE_READ)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            dma_resv_iter_first_unlocked_of_nothing()
        dma_resv_unlock(obj)

    def dma_resv_iter_first_unlocked_of_nothing() -> None:
        from dmabuf.kernel import dma_resv_iter_first_unlocked

        dma_resv_iter_first_unlocked(DmaResvIter())

    run(body)


# ---------------------------------------------------------------------- locking
def test_lock_functions() -> None:
    def body() -> None:
        obj = resv()
        assert obj.lock.ww_class is reservation_ww_class and reservation_ww_class.is_wait_die
        assert not dma_resv_is_locked(obj)
        assert dma_resv_trylock(obj)
        assert dma_resv_is_locked(obj)
        assert dma_resv_locking_ctx(obj) is None
        dma_resv_assert_held(obj)
        dma_resv_unlock(obj)
        ctx = WWAcquireCtx()
        ww_acquire_init(ctx, reservation_ww_class)
        assert dma_resv_lock(obj, ctx) == 0
        assert dma_resv_locking_ctx(obj) is ctx
        assert dma_resv_lock(obj, ctx) == -114  # -EALREADY
        dma_resv_unlock(obj)
        ww_acquire_fini(ctx)
        dma_resv_fini(obj)

    run(body)


def test_lock_slow_without_deadlk_warns() -> None:
    def body() -> None:
        obj = resv()
        ctx = WWAcquireCtx()
        ww_acquire_init(ctx, reservation_ww_class)
        with pytest.raises(KernelWarning, match="without a prior -EDEADLK"):
            dma_resv_lock_slow(obj, ctx)
        ww_acquire_fini(ctx)

    run(body)


def test_assert_held_warns_for_other_task() -> None:
    def body() -> None:
        obj = resv()
        with pytest.raises(KernelWarning):
            dma_resv_assert_held(obj)
        assert dma_resv_lock(obj, None) == 0

        def other() -> None:
            with pytest.raises(KernelWarning):
                dma_resv_assert_held(obj)

        dmabuf.spawn(other).join()
        dma_resv_unlock(obj)

    run(body)


def test_pythonic_with_and_reservation_object() -> None:
    def body() -> None:
        obj = ReservationObject("bo")
        f = fence()
        with obj:
            obj.reserve_fences(1)
            obj.add_fence(f, Usage.WRITE)
            assert list(obj.iter_fences(Usage.READ)) == [(f, Usage.WRITE)]
        with obj.iter_fences_unlocked(Usage.KERNEL) as cur:
            assert list(cur) == []
        with obj.iter_fences_unlocked(Usage.WRITE) as cur:
            got = [(g, cur.fence_usage, cur.is_restarted) for g in cur]
        assert got == [(f, Usage.WRITE, True)]
        assert obj.get_singleton(Usage.BOOKKEEP) is f
        dma_fence_put(f)
        dma_fence_signal(f)
        assert obj.wait(Usage.BOOKKEEP) == 0
        obj.fini()
        dma_fence_put(f)

    run(body)


# ---------------------------------------------------------------------- reserve_fences
def test_reserve_capacity_growth_and_noop() -> None:
    def body() -> None:
        obj = resv()
        assert dma_resv_lock(obj, None) == 0
        assert obj.fences is None
        assert dma_resv_reserve_fences(obj, 1) == 0
        first = obj.fences
        assert first is not None and first.num_fences == 0
        assert first.max_fences == 5  # max(4, 1) slots, rounded up to the 64-byte kmalloc bucket
        assert dma_resv_reserve_fences(obj, 5) == 0
        assert obj.fences is first  # fits: no reallocation
        fs = [fence() for _ in range(5)]
        for f in fs:
            dma_resv_add_fence(obj, f, DMA_RESV_USAGE_READ)
        assert dma_resv_reserve_fences(obj, 1) == 0
        grown = obj.fences
        assert grown is not None and grown.num_fences == 5
        assert grown.max_fences >= max(5 + 1, 2 * 5)
        dma_resv_unlock(obj)
        assert grown.max_fences == 5  # unlock drops the unused reservation
        dma_resv_fini(obj)
        for f in fs:
            dma_fence_put(f)

    run(body)


def test_reserve_compacts_signaled_fences() -> None:
    def body() -> None:
        obj = resv()
        a, b, c = fence(), fence(), fence()
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 3) == 0
        for f in (a, b, c):
            dma_resv_add_fence(obj, f, DMA_RESV_USAGE_WRITE)
        dma_resv_unlock(obj)
        dma_fence_signal(b)
        assert dma_resv_lock(obj, None) == 0
        assert refs(b) == 2
        assert dma_resv_reserve_fences(obj, 1) == 0  # max_fences == num_fences after unlock: reallocates
        assert entries(obj) == [(a, Usage.WRITE), (c, Usage.WRITE)]
        assert refs(b) == 1  # the resv's reference on the signaled fence was dropped
        dma_resv_unlock(obj)
        dma_resv_fini(obj)
        for f in (a, b, c):
            assert refs(f) == 1
            dma_fence_put(f)

    run(body)


def test_reserve_without_lock_warns() -> None:
    def body() -> None:
        obj = resv()
        with pytest.raises(KernelWarning, match="must be held"):
            dma_resv_reserve_fences(obj, 1)

    run(body)


# ---------------------------------------------------------------------- add_fence misuse
def test_add_without_reserve_bugs() -> None:
    def body() -> None:
        obj = resv()
        f = fence()
        assert dma_resv_lock(obj, None) == 0
        with pytest.raises(KernelBug, match="reserve"):
            dma_resv_add_fence(obj, f, DMA_RESV_USAGE_READ)
        dma_resv_unlock(obj)

    run(body)


def test_add_beyond_reservation_and_after_unlock_bugs() -> None:
    def body() -> None:
        obj = resv()
        fs = [fence() for _ in range(6)]
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 1) == 0
        for f in fs[:5]:  # 5 slots from the allocator bucket
            dma_resv_add_fence(obj, f, DMA_RESV_USAGE_READ)
        with pytest.raises(KernelBug, match="reserved slot"):
            dma_resv_add_fence(obj, fs[5], DMA_RESV_USAGE_READ)
        dma_resv_unlock(obj)
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 1) == 0
        dma_resv_unlock(obj)  # the reservation does not survive the unlock
        assert dma_resv_lock(obj, None) == 0
        with pytest.raises(KernelBug):
            dma_resv_add_fence(obj, fs[5], DMA_RESV_USAGE_READ)
        dma_resv_unlock(obj)

    run(body)


def test_add_without_lock_warns() -> None:
    def body() -> None:
        obj = resv()
        with pytest.raises(KernelWarning, match="must be held"):
            dma_resv_add_fence(obj, fence(), DMA_RESV_USAGE_READ)

    run(body)


def test_add_container_warns_but_adds() -> None:
    seen: dict[str, Any] = {}

    def body() -> None:
        obj = resv()
        arr = dma_fence_array_create(2, [fence(), fence()], dma_fence_context_alloc(1), 1, False)
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 1) == 0
        dma_resv_add_fence(obj, arr, DMA_RESV_USAGE_READ)
        seen["entries"] = entries(obj)
        seen["arr"] = arr
        dma_resv_unlock(obj)

    set_warn_mode("log")
    with pytest.raises(KernelWarning, match="container"):
        run(body)
    assert seen["entries"] == [(seen["arr"], Usage.READ)]

    def raising() -> None:
        obj = resv()
        arr = dma_fence_array_create(1, [fence()], dma_fence_context_alloc(1), 1, False)
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 1) == 0
        with pytest.raises(KernelWarning, match="container"):
            dma_resv_add_fence(obj, arr, DMA_RESV_USAGE_READ)
        dma_resv_unlock(obj)

    set_warn_mode("raise")
    run(raising)


# ---------------------------------------------------------------------- replacement rules
@pytest.mark.parametrize(
    ("old_usage", "new_usage", "new_seqno", "replaced"),
    [
        (Usage.READ, Usage.READ, 2, True),  # later fence, same usage
        (Usage.BOOKKEEP, Usage.READ, 2, True),  # old usage >= new usage
        (Usage.READ, Usage.WRITE, 2, True),
        (Usage.WRITE, Usage.READ, 2, False),  # never degrade a writer to a reader: both kept
        (Usage.READ, Usage.READ, 0, False),  # an older fence of the context does not replace
        (Usage.READ, Usage.READ, 1, True),  # the same fence re-added (is_later_or_same)
    ],
)
def test_add_replacement_rules(old_usage: Usage, new_usage: Usage, new_seqno: int, replaced: bool) -> None:
    def body() -> None:
        obj = resv()
        ctx = dma_fence_context_alloc(1)
        old = fence(ctx, 1)
        new = old if new_seqno == 1 else fence(ctx, new_seqno)
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 2) == 0
        dma_resv_add_fence(obj, old, old_usage)
        dma_resv_add_fence(obj, new, new_usage)
        if replaced:
            assert entries(obj) == [(new, new_usage)]
        else:
            assert entries(obj) == [(old, old_usage), (new, new_usage)]
        dma_resv_unlock(obj)
        dma_resv_fini(obj)
        assert refs(old) == 1 and refs(new) == 1

    run(body)


def test_add_replaces_any_signaled_entry() -> None:
    def body() -> None:
        obj = resv()
        a, b = fence(), fence()
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 1) == 0
        dma_resv_add_fence(obj, a, DMA_RESV_USAGE_KERNEL)
        dma_fence_signal(a)
        before = obj.fences
        dma_resv_add_fence(obj, b, DMA_RESV_USAGE_BOOKKEEP)  # other context, other usage: slot reused
        assert entries(obj) == [(b, Usage.BOOKKEEP)]
        assert obj.fences is before  # v6.12 replaces the slot in place: the same list, no restart
        assert refs(a) == 1
        dma_resv_unlock(obj)
        dma_resv_fini(obj)

    run(body)


def test_replace_fences() -> None:
    def body() -> None:
        obj = resv()
        ctx = dma_fence_context_alloc(1)
        a1, a2, other, repl = fence(ctx, 1), fence(ctx, 2), fence(), fence()
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 3) == 0
        dma_resv_add_fence(obj, a1, DMA_RESV_USAGE_WRITE)
        dma_resv_add_fence(obj, other, DMA_RESV_USAGE_READ)
        dma_resv_add_fence(obj, a2, DMA_RESV_USAGE_BOOKKEEP)  # WRITE < BOOKKEEP: not replaced, appended
        dma_resv_replace_fences(obj, ctx, repl, DMA_RESV_USAGE_KERNEL)
        assert entries(obj) == [(repl, Usage.KERNEL), (other, Usage.READ), (repl, Usage.KERNEL)]
        assert refs(repl) == 3 and refs(a1) == 1 and refs(a2) == 1
        dma_resv_unlock(obj)
        with pytest.raises(KernelWarning):
            dma_resv_replace_fences(obj, ctx, repl, DMA_RESV_USAGE_KERNEL)
        dma_resv_fini(obj)
        assert refs(repl) == 1

    run(body)


# ---------------------------------------------------------------------- iterators
def test_locked_iterator_yields_signaled_and_flags_restart() -> None:
    def body() -> None:
        obj = resv()
        a, b = fence(), fence()
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 2) == 0
        dma_resv_add_fence(obj, a, DMA_RESV_USAGE_READ)
        dma_resv_add_fence(obj, b, DMA_RESV_USAGE_WRITE)
        dma_fence_signal(a)
        cur = DmaResvIter()
        seen = [
            (f, dma_resv_iter_usage(cur), dma_resv_iter_is_restarted(cur))
            for f in dma_resv_for_each_fence(cur, obj, DMA_RESV_USAGE_BOOKKEEP)
        ]
        assert seen == [(a, Usage.READ, True), (b, Usage.WRITE, False)]
        assert refs(a) == 2  # no references taken
        dma_resv_unlock(obj)
        with pytest.raises(KernelWarning):
            list(dma_resv_for_each_fence(DmaResvIter(), obj, DMA_RESV_USAGE_BOOKKEEP))

    run(body)


def test_unlocked_iterator_skips_signaled_holds_refs() -> None:
    def body() -> None:
        obj = resv()
        a, b = fence(), fence()
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 2) == 0
        dma_resv_add_fence(obj, a, DMA_RESV_USAGE_READ)
        dma_resv_add_fence(obj, b, DMA_RESV_USAGE_READ)
        dma_resv_unlock(obj)
        dma_fence_signal(a)
        cur = DmaResvIter()
        dma_resv_iter_begin(cur, obj, DMA_RESV_USAGE_READ)
        got = []
        for f in dma_resv_for_each_fence_unlocked(cur):
            assert refs(f) == 3  # ours, the resv's, the cursor's
            got.append(f)
        dma_resv_iter_end(cur)
        assert got == [b] and refs(b) == 2

    run(body)


def test_unlocked_iterator_restarts_when_list_replaced() -> None:
    def body() -> None:
        obj = resv()
        a, b = fence(), fence()
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 2) == 0
        dma_resv_add_fence(obj, a, DMA_RESV_USAGE_READ)
        dma_resv_unlock(obj)
        cur = DmaResvIter()
        dma_resv_iter_begin(cur, obj, DMA_RESV_USAGE_READ)
        seen = []
        for f in dma_resv_for_each_fence_unlocked(cur):
            seen.append((f, dma_resv_iter_is_restarted(cur)))
            if len(seen) == 1:  # a writer publishes a new list in the middle of the walk
                assert dma_resv_lock(obj, None) == 0
                assert dma_resv_reserve_fences(obj, 1) == 0
                dma_resv_add_fence(obj, b, DMA_RESV_USAGE_READ)
                dma_resv_unlock(obj)
        dma_resv_iter_end(cur)
        assert seen == [(a, True), (a, True), (b, False)]
        dma_resv_fini(obj)

    run(body)


# ---------------------------------------------------------------------- copy, get, singleton, wait
def test_copy_fences() -> None:
    def body() -> None:
        src, dst = resv(), resv()
        a, b, old = fence(), fence(), fence()
        assert dma_resv_lock(src, None) == 0
        assert dma_resv_reserve_fences(src, 2) == 0
        dma_resv_add_fence(src, a, DMA_RESV_USAGE_KERNEL)
        dma_resv_add_fence(src, b, DMA_RESV_USAGE_BOOKKEEP)
        dma_resv_unlock(src)
        dma_fence_signal(a)
        assert dma_resv_lock(dst, None) == 0
        assert dma_resv_reserve_fences(dst, 1) == 0
        dma_resv_add_fence(dst, old, DMA_RESV_USAGE_WRITE)
        assert dma_resv_copy_fences(dst, src) == 0
        assert entries(dst) == [(b, Usage.BOOKKEEP)]
        assert refs(old) == 1 and refs(b) == 3
        dma_resv_unlock(dst)
        with pytest.raises(KernelWarning):
            dma_resv_copy_fences(dst, src)
        empty = resv()
        assert dma_resv_lock(dst, None) == 0
        assert dma_resv_copy_fences(dst, empty) == 0
        assert dst.fences is None
        dma_resv_unlock(dst)

    run(body)


def test_get_fences_and_singleton() -> None:
    def body() -> None:
        obj = resv()
        assert dma_resv_get_fences(obj, DMA_RESV_USAGE_BOOKKEEP) == (0, [])
        assert dma_resv_get_singleton(obj, DMA_RESV_USAGE_BOOKKEEP) == (0, None)
        a, b = fence(), fence()
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 2) == 0
        dma_resv_add_fence(obj, a, DMA_RESV_USAGE_WRITE)
        dma_resv_add_fence(obj, b, DMA_RESV_USAGE_READ)
        dma_resv_unlock(obj)
        ret, one = dma_resv_get_singleton(obj, DMA_RESV_USAGE_WRITE)
        assert ret == 0 and one is a and refs(a) == 3
        dma_fence_put(one)
        ret, arr = dma_resv_get_singleton(obj, DMA_RESV_USAGE_READ)
        assert ret == 0 and arr is not None and dma_fence_is_array(arr)
        assert arr.seqno == 1 and arr.context not in (a.context, b.context)
        assert list(arr.fences) == [a, b]  # type: ignore[attr-defined]
        dma_fence_signal(a)
        dma_fence_signal(b)
        dma_fence_put(arr)
        dma_resv_fini(obj)
        assert refs(a) == 1 and refs(b) == 1

    run(body)


def test_wait_timeout_and_test_signaled() -> None:
    def body() -> None:
        obj = resv()
        assert dma_resv_wait_timeout(obj, DMA_RESV_USAGE_BOOKKEEP, False, 0) == 1
        assert dma_resv_wait_timeout(obj, DMA_RESV_USAGE_BOOKKEEP, False, 10) == 10
        w, r = fence(), fence()
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 2) == 0
        dma_resv_add_fence(obj, w, DMA_RESV_USAGE_WRITE)
        dma_resv_add_fence(obj, r, DMA_RESV_USAGE_READ)
        dma_resv_unlock(obj)
        assert not dma_resv_test_signaled(obj, DMA_RESV_USAGE_WRITE)
        assert dma_resv_test_signaled(obj, DMA_RESV_USAGE_KERNEL)
        assert dma_resv_wait_timeout(obj, DMA_RESV_USAGE_READ, False, 0) == 0
        assert dma_resv_wait_timeout(obj, DMA_RESV_USAGE_READ, True, 2) == 0  # virtual-time timeout
        dma_fence_signal(w)
        assert dma_resv_test_signaled(obj, DMA_RESV_USAGE_WRITE)
        assert not dma_resv_test_signaled(obj, DMA_RESV_USAGE_READ)

        def signaller() -> None:
            dma_fence_signal(r)

        t = dmabuf.spawn(signaller)
        assert dma_resv_wait_timeout(obj, DMA_RESV_USAGE_READ, False, 1000) > 0
        t.join()
        assert dma_resv_test_signaled(obj, DMA_RESV_USAGE_BOOKKEEP)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is None, str(res.failure)


def test_set_deadline_reaches_unsignaled_fences() -> None:
    hits: list[tuple[DmaFence, int]] = []

    def set_deadline(f: DmaFence, deadline: int) -> None:
        hits.append((f, deadline))

    ops = DmaFenceOps(get_driver_name=_name, get_timeline_name=_name, set_deadline=set_deadline)

    def body() -> None:
        obj = resv()
        a, b = fence(ops=ops), fence(ops=ops)
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 2) == 0
        dma_resv_add_fence(obj, a, DMA_RESV_USAGE_WRITE)
        dma_resv_add_fence(obj, b, DMA_RESV_USAGE_BOOKKEEP)
        dma_resv_unlock(obj)
        dma_resv_set_deadline(obj, DMA_RESV_USAGE_READ, 1234)
        assert hits == [(a, 1234)]

    run(body)


def test_fini_puts_fences() -> None:
    def body() -> None:
        obj = resv()
        f = fence()
        dma_fence_get(f)
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 1) == 0
        dma_resv_add_fence(obj, f, DMA_RESV_USAGE_READ)
        dma_resv_unlock(obj)
        assert refs(f) == 3
        dma_resv_fini(obj)
        assert refs(f) == 2

    run(body)


def test_fini_while_locked_warns() -> None:
    def body() -> None:
        obj = resv()
        assert dma_resv_lock(obj, None) == 0
        with pytest.raises(KernelWarning):
            dma_resv_fini(obj)
        dma_resv_unlock(obj)

    run(body)


def test_unlock_by_a_non_holder_warns_in_the_reset_first() -> None:
    """dma_resv_unlock resets max_fences under dma_resv_assert_held before the ww_mutex unlock: that
    assertion is the first WARN; in log mode the reset and the unlock still happen, as in the kernel."""

    def body() -> tuple[int, int, bool]:
        obj = DmaResv()
        dma_resv_init(obj)
        dma_resv_lock(obj, None)
        assert dma_resv_reserve_fences(obj, 3) == 0
        dmabuf.spawn(dma_resv_unlock, obj, name="thief").join()
        lst = obj.fences
        assert lst is not None
        return lst.max_fences, lst.num_fences, dma_resv_is_locked(obj)

    res = dmabuf.explore(body, database=None)
    assert res.failure is not None and res.failure.kind == "kernel-warning"
    assert "must be held by 'thief'" in res.failure.message
    set_warn_mode("log")
    try:
        with pytest.raises(KernelWarning, match="must be held by 'thief'"):
            dmabuf.run_threads(body)
        seen: list[Any] = []
        res = dmabuf.explore(lambda: seen.append(body()), database=None)
        assert res.failure is not None and res.failure.kind == "kernel-warning"
        assert seen and set(seen) == {(0, 0, False)}  # reservations dropped, lock released anyway
    finally:
        set_warn_mode("raise")
