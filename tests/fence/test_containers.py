"""Unit tests of dma_fence_array, dma_fence_chain and dma_fence_unwrap (kernel names), on both runtimes."""

from __future__ import annotations

from typing import Any

import pytest
from _helpers import make_fence

from dmabuf.errors import InvalidArgument, KernelWarning
from dmabuf.kernel import (
    EINVAL,
    EIO,
    DmaFence,
    DmaFenceChain,
    DmaFenceUnwrap,
    dma_fence_array_create,
    dma_fence_array_first,
    dma_fence_array_for_each,
    dma_fence_array_next,
    dma_fence_chain_alloc,
    dma_fence_chain_contained,
    dma_fence_chain_find_seqno,
    dma_fence_chain_for_each,
    dma_fence_chain_init,
    dma_fence_chain_walk,
    dma_fence_context_alloc,
    dma_fence_dedup_array,
    dma_fence_get,
    dma_fence_get_status,
    dma_fence_is_array,
    dma_fence_is_chain,
    dma_fence_is_container,
    dma_fence_is_signaled,
    dma_fence_match_context,
    dma_fence_put,
    dma_fence_set_error,
    dma_fence_signal,
    dma_fence_unwrap_for_each,
    dma_fence_unwrap_merge,
    dma_fence_wait,
    kref_read,
    to_dma_fence_array,
    to_dma_fence_chain,
)


def test_array_signal_on_all_with_error(run_on: Any) -> None:
    def body() -> None:
        fs = [make_fence() for _ in range(3)]
        arr = dma_fence_array_create(3, [dma_fence_get(f) for f in fs], dma_fence_context_alloc(1), 1, False)
        assert dma_fence_is_array(arr) and to_dma_fence_array(arr) is arr and dma_fence_is_container(arr)
        assert arr.error == 1 and arr.num_pending == 3  # PENDING_ERROR
        assert not dma_fence_is_signaled(arr)
        dma_fence_set_error(fs[1], -EIO)
        dma_fence_signal(fs[1])
        dma_fence_signal(fs[0])
        assert not dma_fence_is_signaled(arr)
        dma_fence_signal(fs[2])
        assert dma_fence_wait(arr, False) == 0
        assert dma_fence_get_status(arr) == -EIO  # first member error wins
        for f in fs:
            dma_fence_put(f)
        dma_fence_put(arr)

    run_on(body)


def test_array_signal_on_any(run_on: Any) -> None:
    def body() -> None:
        fs = [make_fence() for _ in range(3)]
        arr = dma_fence_array_create(3, [dma_fence_get(f) for f in fs], dma_fence_context_alloc(1), 1, True)
        assert arr.num_pending == 1
        dma_fence_signal(fs[2])
        assert dma_fence_wait(arr, False) == 0
        assert dma_fence_get_status(arr) == 1  # the pending error was cleared
        for f in fs:
            dma_fence_signal(f)
            dma_fence_put(f)
        dma_fence_put(arr)

    run_on(body)


def test_array_polling_without_enable(run_on: Any) -> None:
    def body() -> None:
        fs = [make_fence() for _ in range(2)]
        arr = dma_fence_array_create(2, [dma_fence_get(f) for f in fs], dma_fence_context_alloc(1), 1, False)
        dma_fence_signal(fs[0])
        assert not dma_fence_is_signaled(arr)
        dma_fence_signal(fs[1])
        assert dma_fence_is_signaled(arr) and arr.error == 0
        for f in fs:
            dma_fence_put(f)
        dma_fence_put(arr)

    run_on(body)


def test_array_helpers_and_warns(run_on: Any) -> None:
    def body() -> None:
        ctx = dma_fence_context_alloc(1)
        a, b = make_fence(context=ctx, seqno=1), make_fence(context=ctx, seqno=2)
        arr = dma_fence_array_create(2, [a, b], dma_fence_context_alloc(1), 1, False)
        assert dma_fence_match_context(arr, ctx) and not dma_fence_match_context(arr, ctx + 99)
        assert dma_fence_match_context(a, ctx)
        assert dma_fence_array_first(None) is None and dma_fence_array_first(a) is a
        assert dma_fence_array_first(arr) is a and dma_fence_array_next(arr, 1) is b
        assert dma_fence_array_next(arr, 2) is None and dma_fence_array_next(a, 0) is None
        assert list(dma_fence_array_for_each(arr)) == [(0, a), (1, b)]
        assert list(dma_fence_array_for_each(a)) == [(0, a)]
        with pytest.raises(KernelWarning):
            dma_fence_array_create(0, [], 1, 1, False)
        with pytest.raises(KernelWarning):
            dma_fence_array_create(1, [arr], 1, 1, False)  # container inside an array
        dma_fence_signal(a)
        dma_fence_signal(b)
        dma_fence_put(arr)

    run_on(body)


def test_array_create_truncates_seqno_to_unsigned(run_on: Any) -> None:
    """``dma_fence_array_create(..., unsigned seqno, ...)``: a 64-bit value is truncated to 32 bits."""

    def body() -> None:
        ctx = dma_fence_context_alloc(1)
        for seqno, stored in ((1 << 32) + 5, 5), ((1 << 64) - 1, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF):
            f = make_fence()
            arr = dma_fence_array_create(1, [f], ctx, seqno, False)
            assert arr.seqno == stored and arr.context == ctx
            dma_fence_signal(f)
            dma_fence_put(arr)
        for bad in ("1", 1.0, True, None, -1):
            with pytest.raises(InvalidArgument):
                dma_fence_array_create(1, [make_fence()], ctx, bad, False)  # type: ignore[arg-type]

    run_on(body)


def test_array_next_out_of_range_index_is_null(run_on: Any) -> None:
    """``dma_fence_array_next(head, unsigned int index)``: ``index >= num_fences`` (a negative Python
    index is a huge unsigned one) gives ``NULL``, never Python's from-the-end indexing."""

    def body() -> None:
        a, b = make_fence(), make_fence()
        arr = dma_fence_array_create(2, [a, b], dma_fence_context_alloc(1), 1, False)
        assert dma_fence_array_next(arr, 0) is a and dma_fence_array_next(arr, 1) is b
        for index in (-1, -2, -3, 2, 1 << 40):
            assert dma_fence_array_next(arr, index) is None, index
        assert dma_fence_array_next(None, -1) is None
        assert list(dma_fence_array_for_each(arr)) == [(0, a), (1, b)]
        dma_fence_signal(a)
        dma_fence_signal(b)
        dma_fence_put(arr)

    run_on(body)


def chain_of(fences: list[DmaFence], seqnos: list[int]) -> list[DmaFence]:
    chains: list[DmaFence] = []
    prev: DmaFence | None = None
    for f, s in zip(fences, seqnos, strict=True):
        c = dma_fence_chain_alloc()
        dma_fence_chain_init(c, dma_fence_get(prev), dma_fence_get(f), s)
        chains.append(c)
        prev = c
    return chains


def test_chain_init_contexts(run_on: Any) -> None:
    def body() -> None:
        fs = [make_fence() for _ in range(3)]
        c = chain_of(fs, [1, 2, 2])
        assert dma_fence_is_chain(c[0]) and to_dma_fence_chain(c[0]) is c[0]
        assert c[1].context == c[0].context and to_dma_fence_chain(c[1]).prev_seqno == 1  # type: ignore[union-attr]
        # not later than prev: a new context, seqno kept at least prev's
        assert c[2].context != c[1].context and c[2].seqno == 2
        assert dma_fence_chain_contained(c[0]) is fs[0] and dma_fence_chain_contained(fs[0]) is fs[0]
        bad = DmaFenceChain()
        with pytest.raises(KernelWarning):
            dma_fence_chain_init(bad, None, dma_fence_get(c[0]), 9)
        for f in fs:
            dma_fence_signal(f)
            dma_fence_put(f)
        for x in c:
            dma_fence_put(x)

    run_on(body)


def test_chain_walk_gc_and_for_each(run_on: Any) -> None:
    def body() -> None:
        fs = [make_fence() for _ in range(4)]
        c = chain_of(fs, [1, 2, 3, 4])
        assert list(dma_fence_chain_for_each(c[3])) == [c[3], c[2], c[1], c[0]]
        dma_fence_signal(fs[1])
        dma_fence_signal(fs[2])
        # walking from the tail unlinks the signaled nodes 3 and 2
        assert list(dma_fence_chain_for_each(c[3])) == [c[3], c[0]]
        assert to_dma_fence_chain(c[3]).prev is c[0]  # type: ignore[union-attr]
        assert dma_fence_chain_walk(dma_fence_get(fs[0])) is None  # not a chain: put, NULL
        ret, f = dma_fence_chain_find_seqno(dma_fence_get(c[3]), 2)
        assert ret == 0 and f is c[0]  # 1 still pending: wait for it
        dma_fence_put(f)
        ret, f = dma_fence_chain_find_seqno(c[3], 9)
        assert ret == -EINVAL and f is c[3]
        ret, f = dma_fence_chain_find_seqno(fs[0], 1)
        assert ret == -EINVAL and f is fs[0]
        ret, f = dma_fence_chain_find_seqno(c[3], 0)
        assert ret == 0 and f is c[3]
        dma_fence_signal(fs[0])
        ret, f = dma_fence_chain_find_seqno(dma_fence_get(c[3]), 2)
        assert ret == 0 and f is None  # everything up to 2 signaled
        for x in fs:
            dma_fence_signal(x)
            dma_fence_put(x)
        for x in c:
            dma_fence_put(x)

    run_on(body)


def test_chain_walk_null_returns_null(run_on: Any) -> None:
    """``dma_fence_chain_walk(NULL)``: ``to_dma_fence_chain(NULL)`` is NULL, ``dma_fence_put(NULL)`` a
    no-op: returns NULL."""

    def body() -> None:
        assert dma_fence_chain_walk(None) is None

    run_on(body)


def test_chain_signal_propagation_and_release(run_on: Any) -> None:
    def body() -> None:
        fs = [make_fence() for _ in range(3)]
        c = chain_of(fs, [1, 2, 3])
        tail = dma_fence_get(c[2])
        assert tail is not None
        for x in c:
            dma_fence_put(x)  # only the tail is referenced now: release unlinks iteratively
        dma_fence_signal(fs[2])
        dma_fence_signal(fs[0])
        assert not dma_fence_is_signaled(tail)
        dma_fence_signal(fs[1])
        assert dma_fence_wait(tail, False) == 0
        dma_fence_put(tail)
        for f in fs:
            assert kref_read(f.refcount) == 1
            dma_fence_put(f)

    run_on(body)


def test_unwrap_and_merge(run_on: Any) -> None:
    def body() -> None:
        fs = [make_fence() for _ in range(3)]
        arr = dma_fence_array_create(
            2, [dma_fence_get(fs[0]), dma_fence_get(fs[1])], dma_fence_context_alloc(1), 1, False
        )
        c = chain_of([arr, fs[2]], [1, 2])
        assert list(dma_fence_unwrap_for_each(DmaFenceUnwrap(), c[1])) == [fs[2], fs[0], fs[1]]
        assert list(dma_fence_unwrap_for_each(DmaFenceUnwrap(), fs[0])) == [fs[0]]
        assert list(dma_fence_unwrap_for_each(DmaFenceUnwrap(), None)) == []
        m = dma_fence_unwrap_merge(c[1], fs[0])
        assert m is not None and dma_fence_is_array(m)
        assert sorted(id(x) for x in dma_fence_unwrap_for_each(DmaFenceUnwrap(), m)) == sorted(
            id(x) for x in fs
        )
        dma_fence_signal(fs[0])
        dma_fence_signal(fs[1])
        one = dma_fence_unwrap_merge(c[1])
        assert one is fs[2]
        dma_fence_put(one)
        dma_fence_signal(fs[2])
        stub = dma_fence_unwrap_merge(c[1], m)
        assert stub is not None and dma_fence_is_signaled(stub)
        assert stub.timestamp == max(f.timestamp for f in fs)
        for x in (stub, m, c[0], c[1], arr, *fs):
            dma_fence_put(x)

    run_on(body)


def test_dedup_array(run_on: Any) -> None:
    def body() -> None:
        c1, c2 = dma_fence_context_alloc(1), dma_fence_context_alloc(1)
        a1, a2, b1 = (
            make_fence(context=c1, seqno=1),
            make_fence(context=c1, seqno=2),
            make_fence(context=c2, seqno=1),
        )
        arr = [b1, a1, a2]
        n = dma_fence_dedup_array(arr, 3)
        assert n == 2 and arr == [a2, b1]
        assert kref_read(a1.refcount) == 0  # the dropped duplicate was put
        assert dma_fence_dedup_array([], 0) == 0
        for f in (a2, b1):
            dma_fence_put(f)

    run_on(body)
