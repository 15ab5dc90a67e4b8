"""Port of drivers/dma-buf/st-dma-resv.c (v6.x, usage-based) onto the kernel names.

Each subtest keeps the kernel's structure (``goto err_*`` labels become ``try/finally`` blocks) and returns 0
on success. As in the kernel, every subtest runs once per usage (``dma_resv()`` loops KERNEL..BOOKKEEP); pytest
runs each on real threads and under the explorer. ``kmalloc`` failures cannot happen in the model, so the
``-ENOMEM`` branches are kept only where they shape the control flow.
"""

from __future__ import annotations

from typing import Any

import pytest

from dmabuf.kernel import (
    DMA_RESV_USAGE_BOOKKEEP,
    DMA_RESV_USAGE_KERNEL,
    EINVAL,
    ENOENT,
    DmaFence,
    DmaFenceOps,
    DmaResv,
    DmaResvIter,
    SpinLock,
    dma_fence_enable_sw_signaling,
    dma_fence_init,
    dma_fence_put,
    dma_fence_signal,
    dma_resv_add_fence,
    dma_resv_fini,
    dma_resv_for_each_fence,
    dma_resv_for_each_fence_unlocked,
    dma_resv_get_fences,
    dma_resv_init,
    dma_resv_iter_begin,
    dma_resv_iter_end,
    dma_resv_iter_is_restarted,
    dma_resv_iter_usage,
    dma_resv_lock,
    dma_resv_reserve_fences,
    dma_resv_test_signaled,
    dma_resv_unlock,
    spin_lock_init,
)
from dmabuf.resv import Usage

# static struct spinlock fence_lock: module state in C; one per subtest run here (the explorer re-runs
# bodies, and a SpinLock belongs to one runtime run).
_state: dict[str, SpinLock] = {}


def fence_name(f: DmaFence) -> str:
    return "selftest"


fence_ops = DmaFenceOps(get_driver_name=fence_name, get_timeline_name=fence_name)


def alloc_fence() -> DmaFence:
    f = DmaFence()
    dma_fence_init(f, fence_ops, _state["fence_lock"], 0, 0)
    return f


def sanitycheck(arg: Usage) -> int:
    f = alloc_fence()

    dma_fence_enable_sw_signaling(f)

    dma_fence_signal(f)
    dma_fence_put(f)

    resv = DmaResv()
    dma_resv_init(resv)
    r = dma_resv_lock(resv, None)
    if r:
        print("Resv locking failed")
    else:
        dma_resv_unlock(resv)
    dma_resv_fini(resv)
    return r


def test_signaling(arg: Usage) -> int:
    usage = arg
    f = alloc_fence()

    dma_fence_enable_sw_signaling(f)

    resv = DmaResv()
    dma_resv_init(resv)
    try:  # err_free
        r = dma_resv_lock(resv, None)
        if r:
            print("Resv locking failed")
            return r
        try:  # err_unlock
            r = dma_resv_reserve_fences(resv, 1)
            if r:
                print("Resv shared slot allocation failed")
                return r

            dma_resv_add_fence(resv, f, usage)
            if dma_resv_test_signaled(resv, usage):
                print("Resv unexpectedly signaled")
                return -EINVAL
            dma_fence_signal(f)
            if not dma_resv_test_signaled(resv, usage):
                print("Resv not reporting signaled")
                return -EINVAL
            return r
        finally:
            dma_resv_unlock(resv)
    finally:
        dma_resv_fini(resv)
        dma_fence_put(f)


def test_for_each(arg: Usage) -> int:
    usage = arg
    cursor = DmaResvIter()
    f = alloc_fence()

    dma_fence_enable_sw_signaling(f)

    resv = DmaResv()
    dma_resv_init(resv)
    try:  # err_free
        r = dma_resv_lock(resv, None)
        if r:
            print("Resv locking failed")
            return r
        try:  # err_unlock
            r = dma_resv_reserve_fences(resv, 1)
            if r:
                print("Resv shared slot allocation failed")
                return r

            dma_resv_add_fence(resv, f, usage)

            r = -ENOENT
            for fence in dma_resv_for_each_fence(cursor, resv, usage):
                if not r:
                    print("More than one fence found")
                    return -EINVAL
                if f is not fence:
                    print("Unexpected fence")
                    return -EINVAL
                if dma_resv_iter_usage(cursor) != usage:
                    print("Unexpected fence usage")
                    return -EINVAL
                r = 0
            if r:
                print("No fence found")
                return r
            dma_fence_signal(f)
            return r
        finally:
            dma_resv_unlock(resv)
    finally:
        dma_resv_fini(resv)
        dma_fence_put(f)


def test_for_each_unlocked(arg: Usage) -> int:
    usage = arg
    cursor = DmaResvIter()
    f = alloc_fence()

    dma_fence_enable_sw_signaling(f)

    resv = DmaResv()
    dma_resv_init(resv)
    try:  # err_free
        r = dma_resv_lock(resv, None)
        if r:
            print("Resv locking failed")
            return r

        r = dma_resv_reserve_fences(resv, 1)
        if r:
            print("Resv shared slot allocation failed")
            dma_resv_unlock(resv)
            return r

        dma_resv_add_fence(resv, f, usage)
        dma_resv_unlock(resv)

        r = -ENOENT
        dma_resv_iter_begin(cursor, resv, usage)
        try:  # err_iter_end
            for fence in dma_resv_for_each_fence_unlocked(cursor):
                if not r:
                    print("More than one fence found")
                    return -EINVAL
                if not dma_resv_iter_is_restarted(cursor):
                    print("No restart flag")
                    return r
                if f is not fence:
                    print("Unexpected fence")
                    return -EINVAL
                if dma_resv_iter_usage(cursor) != usage:
                    print("Unexpected fence usage")
                    return -EINVAL

                # We use r as state here
                if r == -ENOENT:
                    r = -EINVAL
                    # That should trigger an restart
                    cursor.fences = ~0
                elif r == -EINVAL:
                    r = 0
            if r:
                print("No fence found")
            return r
        finally:
            dma_resv_iter_end(cursor)
            dma_fence_signal(f)
    finally:
        dma_resv_fini(resv)
        dma_fence_put(f)


def test_get_fences(arg: Usage) -> int:
    usage = arg
    fences: list[DmaFence] = []
    f = alloc_fence()

    dma_fence_enable_sw_signaling(f)

    resv = DmaResv()
    dma_resv_init(resv)
    try:  # err_resv
        r = dma_resv_lock(resv, None)
        if r:
            print("Resv locking failed")
            return r

        r = dma_resv_reserve_fences(resv, 1)
        if r:
            print("Resv shared slot allocation failed")
            dma_resv_unlock(resv)
            return r

        dma_resv_add_fence(resv, f, usage)
        dma_resv_unlock(resv)

        try:  # err_free
            r, fences = dma_resv_get_fences(resv, usage)
            if r:
                print("get_fences failed")
                return r

            if len(fences) != 1 or fences[0] is not f:
                print("get_fences returned unexpected fence")
                return -EINVAL

            dma_fence_signal(f)
            return r
        finally:
            while fences:
                dma_fence_put(fences.pop())
    finally:
        dma_resv_fini(resv)
        dma_fence_put(f)


SUBTESTS = [sanitycheck, test_signaling, test_for_each, test_for_each_unlocked, test_get_fences]
for _t in SUBTESTS:
    _t.__test__ = False  # type: ignore[attr-defined]  # kernel subtest names, run through test_dma_resv

USAGES = list(range(DMA_RESV_USAGE_KERNEL, DMA_RESV_USAGE_BOOKKEEP + 1))


@pytest.mark.parametrize("usage", USAGES, ids=lambda u: Usage(u).name)
@pytest.mark.parametrize("subtest", SUBTESTS, ids=lambda f: f.__name__)
def test_dma_resv(run_on: Any, subtest: Any, usage: int) -> None:
    def body() -> None:
        lock = SpinLock(lock_class="st-dma-resv.fence_lock")
        spin_lock_init(lock)
        _state["fence_lock"] = lock
        assert subtest(Usage(usage)) == 0

    run_on(body)
