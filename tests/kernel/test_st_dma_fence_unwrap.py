"""Port of drivers/dma-buf/st-dma-fence-unwrap.c (v6.x, with the merge subtests) onto the kernel names.

Every subtest is single-threaded and small, so each runs on threads and exhaustively under the explorer.
"""

from __future__ import annotations

from typing import Any

import pytest

from dmabuf.kernel import (
    EINVAL,
    ENOMEM,
    DmaFence,
    DmaFenceChain,
    DmaFenceOps,
    DmaFenceUnwrap,
    SpinLock,
    dma_fence_array_create,
    dma_fence_chain_init,
    dma_fence_context_alloc,
    dma_fence_enable_sw_signaling,
    dma_fence_get,
    dma_fence_get_stub,
    dma_fence_init,
    dma_fence_put,
    dma_fence_unwrap_for_each,
    dma_fence_unwrap_merge,
    spin_lock_init,
)


class MockFence(DmaFence):
    def __init__(self) -> None:
        super().__init__()
        self.mock_lock = SpinLock(lock_class="mock_fence.lock")


def mock_name(f: DmaFence) -> str:
    return "mock"


mock_ops = DmaFenceOps(get_driver_name=mock_name, get_timeline_name=mock_name)


def __mock_fence(context: int, seqno: int) -> DmaFence:
    f = MockFence()
    spin_lock_init(f.mock_lock)
    dma_fence_init(f, mock_ops, f.mock_lock, context, seqno)
    return f


def mock_fence() -> DmaFence:
    return __mock_fence(dma_fence_context_alloc(1), 1)


def mock_array(num_fences: int, *fences: DmaFence) -> DmaFence:
    array = dma_fence_array_create(num_fences, list(fences), dma_fence_context_alloc(1), 1, False)
    return array


def mock_chain(prev: DmaFence | None, fence: DmaFence) -> DmaFence:
    f = DmaFenceChain()  # dma_fence_chain_alloc()
    dma_fence_chain_init(f, prev, fence, 1)
    return f


def sanitycheck(arg: Any = None) -> int:
    err = 0
    f = mock_fence()

    dma_fence_enable_sw_signaling(f)

    array = mock_array(1, f)

    chain = mock_chain(None, array)

    dma_fence_put(chain)
    return err


def unwrap_array(arg: Any = None) -> int:
    err = 0
    f1: DmaFence | None = mock_fence()
    dma_fence_enable_sw_signaling(f1)  # type: ignore[arg-type]
    f2: DmaFence | None = mock_fence()
    dma_fence_enable_sw_signaling(f2)  # type: ignore[arg-type]

    array = mock_array(2, f1, f2)  # type: ignore[arg-type]

    for fence in dma_fence_unwrap_for_each(DmaFenceUnwrap(), array):
        if fence is f1:
            f1 = None
        elif fence is f2:
            f2 = None
        else:
            print("Unexpected fence!")
            err = -EINVAL

    if f1 or f2:
        print("Not all fences seen!")
        err = -EINVAL

    dma_fence_put(array)
    return err


def unwrap_chain(arg: Any = None) -> int:
    err = 0
    f1: DmaFence | None = mock_fence()
    dma_fence_enable_sw_signaling(f1)  # type: ignore[arg-type]
    f2: DmaFence | None = mock_fence()
    dma_fence_enable_sw_signaling(f2)  # type: ignore[arg-type]

    chain = mock_chain(f1, f2)  # type: ignore[arg-type]

    for fence in dma_fence_unwrap_for_each(DmaFenceUnwrap(), chain):
        if fence is f1:
            f1 = None
        elif fence is f2:
            f2 = None
        else:
            print("Unexpected fence!")
            err = -EINVAL

    if f1 or f2:
        print("Not all fences seen!")
        err = -EINVAL

    dma_fence_put(chain)
    return err


def unwrap_chain_array(arg: Any = None) -> int:
    err = 0
    f1: DmaFence | None = mock_fence()
    dma_fence_enable_sw_signaling(f1)  # type: ignore[arg-type]
    f2: DmaFence | None = mock_fence()
    dma_fence_enable_sw_signaling(f2)  # type: ignore[arg-type]

    array = mock_array(2, f1, f2)  # type: ignore[arg-type]

    chain = mock_chain(None, array)

    for fence in dma_fence_unwrap_for_each(DmaFenceUnwrap(), chain):
        if fence is f1:
            f1 = None
        elif fence is f2:
            f2 = None
        else:
            print("Unexpected fence!")
            err = -EINVAL

    if f1 or f2:
        print("Not all fences seen!")
        err = -EINVAL

    dma_fence_put(chain)
    return err


def unwrap_merge(arg: Any = None) -> int:
    err = 0
    f1: DmaFence | None = mock_fence()
    dma_fence_enable_sw_signaling(f1)  # type: ignore[arg-type]
    f2: DmaFence | None = mock_fence()
    dma_fence_enable_sw_signaling(f2)  # type: ignore[arg-type]

    f3 = dma_fence_unwrap_merge(f1, f2)  # type: ignore[arg-type]
    if not f3:
        err = -ENOMEM
    else:
        for fence in dma_fence_unwrap_for_each(DmaFenceUnwrap(), f3):
            if fence is f1:
                dma_fence_put(f1)
                f1 = None
            elif fence is f2:
                dma_fence_put(f2)
                f2 = None
            else:
                print("Unexpected fence!")
                err = -EINVAL

        if f1 or f2:
            print("Not all fences seen!")
            err = -EINVAL

        dma_fence_put(f3)
    dma_fence_put(f2)
    dma_fence_put(f1)
    return err


def unwrap_merge_duplicate(arg: Any = None) -> int:
    err = 0
    f1: DmaFence | None = mock_fence()
    dma_fence_enable_sw_signaling(f1)  # type: ignore[arg-type]

    f2 = dma_fence_unwrap_merge(f1, f1)  # type: ignore[arg-type]
    if not f2:
        err = -ENOMEM
    else:
        for fence in dma_fence_unwrap_for_each(DmaFenceUnwrap(), f2):
            if fence is f1:
                dma_fence_put(f1)
                f1 = None
            else:
                print("Unexpected fence!")
                err = -EINVAL

        if f1:
            print("Not all fences seen!")
            err = -EINVAL

        dma_fence_put(f2)
    dma_fence_put(f1)
    return err


def unwrap_merge_seqno(arg: Any = None) -> int:
    err = 0
    ctx = [dma_fence_context_alloc(1), dma_fence_context_alloc(1)]

    f1 = __mock_fence(ctx[1], 1)
    dma_fence_enable_sw_signaling(f1)
    f2: DmaFence | None = __mock_fence(ctx[1], 2)
    dma_fence_enable_sw_signaling(f2)  # type: ignore[arg-type]
    f3: DmaFence | None = __mock_fence(ctx[0], 1)
    dma_fence_enable_sw_signaling(f3)  # type: ignore[arg-type]

    f4 = dma_fence_unwrap_merge(f1, f2, f3)  # type: ignore[arg-type]
    if not f4:
        err = -ENOMEM
    else:
        for fence in dma_fence_unwrap_for_each(DmaFenceUnwrap(), f4):
            if fence is f3 and f2:
                dma_fence_put(f3)
                f3 = None
            elif fence is f2 and not f3:
                dma_fence_put(f2)
                f2 = None
            else:
                print("Unexpected fence!")
                err = -EINVAL

        if f2 or f3:
            print("Not all fences seen!")
            err = -EINVAL

        dma_fence_put(f4)
    dma_fence_put(f3)
    dma_fence_put(f2)
    dma_fence_put(f1)
    return err


def unwrap_merge_order(arg: Any = None) -> int:
    err = 0
    f1: DmaFence | None = mock_fence()
    dma_fence_enable_sw_signaling(f1)  # type: ignore[arg-type]
    f2: DmaFence | None = mock_fence()
    dma_fence_enable_sw_signaling(f2)  # type: ignore[arg-type]

    a1 = mock_array(2, f1, f2)  # type: ignore[arg-type]

    c1 = mock_chain(None, dma_fence_get(f1))  # type: ignore[arg-type]
    c2 = mock_chain(c1, dma_fence_get(f2))  # type: ignore[arg-type]

    # The fences in the chain are the same as in a1 but in opposite order; the merge must cope with that.
    a2 = dma_fence_unwrap_merge(a1, c2)

    for fence in dma_fence_unwrap_for_each(DmaFenceUnwrap(), a2):
        if fence is f1:
            f1 = None
            if not f2:
                print("Unexpected order!")
        elif fence is f2:
            f2 = None
            if f1:
                print("Unexpected order!")
        else:
            print("Unexpected fence!")
            err = -EINVAL

    if f1 or f2:
        print("Not all fences seen!")
        err = -EINVAL

    dma_fence_put(a2)
    # (the kernel test leaks a1 and c2 here; putting them keeps this port leak-free)
    dma_fence_put(a1)
    dma_fence_put(c2)
    return err


def unwrap_merge_complex(arg: Any = None) -> int:
    err = -ENOMEM
    f1: DmaFence | None = mock_fence()
    dma_fence_enable_sw_signaling(f1)  # type: ignore[arg-type]
    f2: DmaFence | None = mock_fence()
    dma_fence_enable_sw_signaling(f2)  # type: ignore[arg-type]

    f3 = dma_fence_unwrap_merge(f1, f2)  # type: ignore[arg-type]
    assert f3 is not None

    # The resulting array has the fences in reverse
    f4 = mock_array(2, dma_fence_get(f2), dma_fence_get(f1))  # type: ignore[arg-type]

    # Signaled fences should be filtered, the two arrays merged.
    f5 = dma_fence_unwrap_merge(f3, f4, dma_fence_get_stub())
    if f5:
        err = 0
        for fence in dma_fence_unwrap_for_each(DmaFenceUnwrap(), f5):
            if fence is f1:
                dma_fence_put(f1)
                f1 = None
            elif fence is f2:
                dma_fence_put(f2)
                f2 = None
            else:
                print("Unexpected fence!")
                err = -EINVAL

        if f1 or f2:
            print("Not all fences seen!")
            err = -EINVAL

        dma_fence_put(f5)
    dma_fence_put(f4)
    dma_fence_put(f3)
    dma_fence_put(f2)
    dma_fence_put(f1)
    return err


def unwrap_merge_complex_seqno(arg: Any = None) -> int:
    err = -ENOMEM
    ctx = [dma_fence_context_alloc(1), dma_fence_context_alloc(1)]

    f1: DmaFence | None = __mock_fence(ctx[0], 2)
    dma_fence_enable_sw_signaling(f1)  # type: ignore[arg-type]
    f2 = __mock_fence(ctx[1], 1)
    dma_fence_enable_sw_signaling(f2)
    f3 = __mock_fence(ctx[0], 1)
    dma_fence_enable_sw_signaling(f3)
    f4: DmaFence | None = __mock_fence(ctx[1], 2)
    dma_fence_enable_sw_signaling(f4)  # type: ignore[arg-type]

    f5 = mock_array(2, dma_fence_get(f1), dma_fence_get(f2))  # type: ignore[arg-type]
    f6 = mock_array(2, dma_fence_get(f3), dma_fence_get(f4))  # type: ignore[arg-type]

    f7 = dma_fence_unwrap_merge(f5, f6)
    if f7:
        err = 0
        for fence in dma_fence_unwrap_for_each(DmaFenceUnwrap(), f7):
            if fence is f1 and f4:
                dma_fence_put(f1)
                f1 = None
            elif fence is f4 and not f1:
                dma_fence_put(f4)
                f4 = None
            else:
                print("Unexpected fence!")
                err = -EINVAL

        if f1 or f4:
            print("Not all fences seen!")
            err = -EINVAL

        dma_fence_put(f7)
    dma_fence_put(f6)
    dma_fence_put(f5)
    dma_fence_put(f4)
    dma_fence_put(f3)
    dma_fence_put(f2)
    dma_fence_put(f1)
    return err


SUBTESTS = [
    sanitycheck,
    unwrap_array,
    unwrap_chain,
    unwrap_chain_array,
    unwrap_merge,
    unwrap_merge_duplicate,
    unwrap_merge_seqno,
    unwrap_merge_order,
    unwrap_merge_complex,
    unwrap_merge_complex_seqno,
]


@pytest.mark.parametrize("subtest", SUBTESTS, ids=lambda f: f.__name__)
def test_dma_fence_unwrap(run_on: Any, subtest: Any) -> None:
    def body() -> None:
        assert subtest() == 0

    run_on(body)
