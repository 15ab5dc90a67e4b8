"""The fence list is changed in place, as in v6.12, and the unlocked walk restarts only on reallocation.

kernel-semantics 2.2 and drivers/dma-buf/dma-resv.c (v6.12): ``dma_resv_reserve_fences`` allocates a new
``struct dma_resv_list`` only when ``num_fences + n > max_fences`` (published with ``rcu_assign_pointer``);
``dma_resv_add_fence`` replaces a slot in place (``dma_resv_list_set``) or stores the next slot and then
publishes the count (``smp_store_mb(fobj->num_fences, count)``); ``dma_resv_replace_fences`` stores slots
in place. The unlocked cursor saves ``cursor->fences`` and ``cursor->num_fences`` when it (re)starts, walks
indices below that count, and restarts only when ``dma_resv_fences_list(obj) != cursor->fences``.

So a lock-free reader (i) never walks entries appended after its (re)start, (ii) sees an entry replaced
ahead of its cursor and misses one replaced behind it, without restarting, and (iii) can therefore return
a mix of two states of the list (the torn pair below). Before the in-place model every change published a
new list: (i) returned ``f1`` twice and (iii) was unreachable.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_resv import fence, resv

import dmabuf
from dmabuf.kernel import (
    DMA_RESV_USAGE_BOOKKEEP,
    DMA_RESV_USAGE_READ,
    DMA_RESV_USAGE_WRITE,
    DmaFence,
    DmaResv,
    DmaResvIter,
    dma_fence_context_alloc,
    dma_fence_put,
    dma_fence_signal,
    dma_resv_add_fence,
    dma_resv_fini,
    dma_resv_get_fences,
    dma_resv_iter_begin,
    dma_resv_iter_end,
    dma_resv_iter_first_unlocked,
    dma_resv_iter_is_restarted,
    dma_resv_iter_next_unlocked,
    dma_resv_lock,
    dma_resv_replace_fences,
    dma_resv_reserve_fences,
    dma_resv_test_signaled,
    dma_resv_unlock,
)


def _walk_rest(cur: DmaResvIter) -> list[tuple[DmaFence, bool]]:
    out: list[tuple[DmaFence, bool]] = []
    while True:
        g = dma_resv_iter_next_unlocked(cur)
        if g is None:
            return out
        out.append((g, dma_resv_iter_is_restarted(cur)))


def _teardown(obj: DmaResv, *fences: DmaFence) -> None:
    dma_resv_fini(obj)
    for f in fences:
        dma_fence_signal(f)
        dma_fence_put(f)


# ---------------------------------------------------------------------- single task
def test_unlocked_walk_skips_an_entry_appended_after_its_start(run_on: Any) -> None:
    """The audit's repro: f2 goes into a reserved slot of the same list, at index 1 >= the cursor's saved
    ``num_fences`` (1): the kernel's walk ends after f1, without a restart. (The copy-on-write model
    restarted and returned [(f1, True), (f1, True), (f2, False)].)"""

    def body() -> None:
        obj = resv()
        f1, f2 = fence(), fence()
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 4) == 0
        dma_resv_add_fence(obj, f1, DMA_RESV_USAGE_WRITE)
        before = obj.fences
        cur = DmaResvIter()
        dma_resv_iter_begin(cur, obj, DMA_RESV_USAGE_BOOKKEEP)
        assert dma_resv_iter_first_unlocked(cur) is f1
        assert dma_resv_iter_is_restarted(cur)
        dma_resv_add_fence(obj, f2, DMA_RESV_USAGE_WRITE)  # reserved slot: the same list
        assert _walk_rest(cur) == []
        assert obj.fences is before
        dma_resv_iter_end(cur)
        # a walk started now sees both
        ret, got = dma_resv_get_fences(obj, DMA_RESV_USAGE_BOOKKEEP)
        assert ret == 0 and got == [f1, f2]
        for f in got:
            dma_fence_put(f)
        dma_resv_unlock(obj)
        _teardown(obj, f1, f2)

    run_on(body)


def test_unlocked_walk_sees_replacement_ahead_and_misses_it_behind(run_on: Any) -> None:
    """[A, B] (two contexts): after the cursor returned A, the later A' and B' replace both slots in place.
    The next step reads slot 1 (B') and returns it without a restart; A' (slot 0, behind the cursor) is
    never returned: the walk returned the torn pair (A, B')."""

    def body() -> None:
        obj = resv()
        ca, cb = dma_fence_context_alloc(1), dma_fence_context_alloc(1)
        a, b, a2, b2 = fence(ca, 1), fence(cb, 1), fence(ca, 2), fence(cb, 2)
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 2) == 0
        dma_resv_add_fence(obj, a, DMA_RESV_USAGE_WRITE)
        dma_resv_add_fence(obj, b, DMA_RESV_USAGE_WRITE)
        cur = DmaResvIter()
        dma_resv_iter_begin(cur, obj, DMA_RESV_USAGE_READ)
        assert dma_resv_iter_first_unlocked(cur) is a
        dma_resv_add_fence(obj, a2, DMA_RESV_USAGE_WRITE)  # replaces slot 0 in place
        dma_resv_add_fence(obj, b2, DMA_RESV_USAGE_WRITE)  # replaces slot 1 in place
        assert _walk_rest(cur) == [(b2, False)]
        dma_resv_iter_end(cur)
        dma_resv_unlock(obj)
        _teardown(obj, a, b, a2, b2)

    run_on(body)


def test_unlocked_walk_restarts_only_when_the_list_is_reallocated(run_on: Any) -> None:
    """A reservation with room, an in-place add, a replacement and ``replace_fences`` keep the list (no
    restart); a reservation without room publishes a new list and the next step restarts from index 0."""

    def body() -> None:
        obj = resv()
        ctx = dma_fence_context_alloc(1)
        a, b, b2, c = fence(), fence(ctx, 1), fence(ctx, 2), fence()
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 2) == 0
        lst = obj.fences
        assert lst is not None
        dma_resv_add_fence(obj, a, DMA_RESV_USAGE_READ)
        dma_resv_add_fence(obj, b, DMA_RESV_USAGE_READ)
        cur = DmaResvIter()
        dma_resv_iter_begin(cur, obj, DMA_RESV_USAGE_BOOKKEEP)
        assert dma_resv_iter_first_unlocked(cur) is a
        assert dma_resv_reserve_fences(obj, 1) == 0  # room left: no new list
        dma_resv_replace_fences(obj, ctx, b2, DMA_RESV_USAGE_READ)  # in place
        assert obj.fences is lst
        assert dma_resv_iter_next_unlocked(cur) is b2 and not dma_resv_iter_is_restarted(cur)
        # reallocation: reserving more than the room left publishes a new list
        assert dma_resv_reserve_fences(obj, lst.max_fences) == 0
        assert obj.fences is not lst
        dma_resv_add_fence(obj, c, DMA_RESV_USAGE_READ)
        assert _walk_rest(cur) == [(a, True), (b2, False), (c, False)]
        dma_resv_iter_end(cur)
        dma_resv_unlock(obj)
        _teardown(obj, a, b, b2, c)

    run_on(body)


# ---------------------------------------------------------------------- under the explorer
def _torn_body(
    outcomes: set[tuple[str, ...]], mid_restarts: list[bool], raise_on_torn: bool, cursor: bool
) -> Any:
    """[A (ctx 1), B (ctx 2)], the list holding the only references; a writer replaces both by the later
    A', B' of the same contexts in one lock session (in place, no reservation needed); a lock-free reader
    (``dma_resv_get_fences``, or a cursor walk) runs concurrently. When the writer's store replaces A (or
    B) and puts its last reference between the reader's load of the slot and its ``dma_fence_get_rcu``,
    the get fails and the walk restarts on the same list (``mid_restarts``). ``cursor`` picks the
    reader: a ``dma_resv_iter_*_unlocked`` walk that starts over at each restart, else
    ``dma_resv_get_fences``."""

    def body() -> None:
        obj = resv()
        ca, cb = dma_fence_context_alloc(1), dma_fence_context_alloc(1)
        a, b, a2, b2 = fence(ca, 1), fence(cb, 1), fence(ca, 2), fence(cb, 2)
        names = {id(a): "A", id(b): "B", id(a2): "A'", id(b2): "B'"}
        assert dma_resv_lock(obj, None) == 0
        assert dma_resv_reserve_fences(obj, 2) == 0
        dma_resv_add_fence(obj, a, DMA_RESV_USAGE_WRITE)
        dma_resv_add_fence(obj, b, DMA_RESV_USAGE_WRITE)
        dma_resv_unlock(obj)
        dma_fence_put(a)  # from here on the list's references are the only ones on A and B
        dma_fence_put(b)

        def writer() -> None:
            assert dma_resv_lock(obj, None) == 0
            dma_resv_add_fence(obj, a2, DMA_RESV_USAGE_WRITE)  # replaces slot 0 in place, puts A
            dma_resv_add_fence(obj, b2, DMA_RESV_USAGE_WRITE)  # replaces slot 1 in place, puts B
            dma_resv_unlock(obj)

        def reader() -> tuple[str, ...]:
            cur = DmaResvIter()
            dma_resv_iter_begin(cur, obj, DMA_RESV_USAGE_WRITE)
            seen: list[DmaFence] = []
            f = dma_resv_iter_first_unlocked(cur)
            while f is not None:
                if dma_resv_iter_is_restarted(cur) and seen:
                    mid_restarts.append(True)
                if dma_resv_iter_is_restarted(cur):
                    seen = []
                seen.append(f)
                f = dma_resv_iter_next_unlocked(cur)
            dma_resv_iter_end(cur)
            return tuple(names[id(g)] for g in seen)

        def getter() -> tuple[str, ...]:
            ret, fences = dma_resv_get_fences(obj, DMA_RESV_USAGE_WRITE)
            assert ret == 0
            pair = tuple(names[id(g)] for g in fences)
            for g in fences:
                dma_fence_put(g)
            return pair

        tw = dmabuf.spawn(writer, name="writer")
        p = reader() if cursor else getter()
        tw.join()
        outcomes.add(p)
        assert len(p) == 2, f"lost an entry: {p}"
        if raise_on_torn:
            assert p != ("A", "B'"), f"torn read {p}"
        assert not dma_resv_test_signaled(obj, DMA_RESV_USAGE_WRITE)
        _teardown(obj, a2, b2)

    return body


@pytest.mark.parametrize("cursor", [False, True], ids=["get_fences", "cursor"])
def test_lock_free_reader_can_return_a_torn_pair(cursor: bool) -> None:
    """kernel-semantics 2.2 / dma-resv.c v6.12: the in-place stores let a reader return (A, B') -- A read
    before the writer replaced slot 0, B' after it replaced slot 1 -- a state the list never had. The
    explorer finds it; the copy-on-write model could only return (A, B), (A', B), (A', B')."""
    res = dmabuf.explore(_torn_body(set(), [], raise_on_torn=True, cursor=cursor), strategy="dpor")
    assert res.failure is not None and res.failure.kind == "exception"
    assert "torn read ('A', \"B'\")" in str(res.failure.exception)


@pytest.mark.parametrize("cursor", [False, True], ids=["get_fences", "cursor"])
def test_lock_free_reader_outcomes_are_the_kernels(cursor: bool) -> None:
    """All four pairs and nothing else (no entry lost, no fence got after it was freed: a failed
    ``dma_fence_get_rcu`` restarts the walk, which the explorer also reaches)."""
    outcomes: set[tuple[str, ...]] = set()
    mid_restarts: list[bool] = []
    res = dmabuf.explore(_torn_body(outcomes, mid_restarts, raise_on_torn=False, cursor=cursor), strategy="dpor")
    assert res.failure is None, res.failure
    assert res.complete
    assert outcomes == {("A", "B"), ("A'", "B"), ("A", "B'"), ("A'", "B'")}
    if cursor:
        assert mid_restarts, "no interleaving made a get fail and the walk restart on the same list"
