"""Concurrency of fences under the explorer (every interleaving) and on real threads."""

from __future__ import annotations

import time
from typing import Any

from _helpers import make_fence

import dmabuf
from dmabuf.fence import DmaFenceCb
from dmabuf.kernel import (
    ENOENT,
    HZ,
    DmaFence,
    Mutex,
    dma_fence_add_callback,
    dma_fence_array_create,
    dma_fence_begin_signalling,
    dma_fence_chain_alloc,
    dma_fence_chain_init,
    dma_fence_context_alloc,
    dma_fence_end_signalling,
    dma_fence_get,
    dma_fence_is_signaled,
    dma_fence_put,
    dma_fence_signal,
    dma_fence_wait,
    dma_fence_wait_timeout,
    mutex_lock,
    mutex_unlock,
)


def test_signaller_and_waiter_10s_timeout_is_fast(run_on: Any) -> None:
    def body() -> None:
        f = make_fence()

        def signaller() -> None:
            dma_fence_signal(f)

        t = dmabuf.spawn(signaller)
        ret = dma_fence_wait_timeout(f, False, 10 * HZ)
        assert 0 < ret <= 10 * HZ
        t.join()
        dma_fence_put(f)

    start = time.monotonic()
    res = run_on(body)
    assert time.monotonic() - start < 2.0  # never sleeps the 10 s (virtual time, or woken at once)
    if res is not None and hasattr(res, "complete"):
        assert res.complete


def test_wait_times_out_in_virtual_time() -> None:
    def body() -> None:
        f = make_fence()
        assert dma_fence_wait_timeout(f, False, 10 * HZ) == 0
        dma_fence_signal(f)
        dma_fence_put(f)

    start = time.monotonic()
    res = dmabuf.explore(body, strategy="dfs")
    assert res.ok and time.monotonic() - start < 2.0


class CountCb(DmaFenceCb):
    calls = 0


def _count(f: DmaFence, cb: DmaFenceCb) -> None:
    assert isinstance(cb, CountCb)
    cb.calls += 1


def test_add_callback_racing_signal_never_loses_it(run_on: Any) -> None:
    def body() -> None:
        f = make_fence()
        cb = CountCb()
        ret: list[int] = []

        def adder() -> None:
            ret.append(dma_fence_add_callback(f, cb, _count))

        t = dmabuf.spawn(adder)
        dma_fence_signal(f)
        t.join()
        assert ret[0] in (0, -ENOENT)
        assert cb.calls == (1 if ret[0] == 0 else 0)
        dma_fence_put(f)

    res = run_on(body)
    if res is not None and hasattr(res, "complete"):
        assert res.complete and res.executions > 1


def test_two_waiters_and_array_chain_propagation(run_on: Any) -> None:
    def body() -> None:
        a, b = make_fence(), make_fence()
        arr = dma_fence_array_create(
            2, [dma_fence_get(a), dma_fence_get(b)], dma_fence_context_alloc(1), 1, False
        )
        chain = dma_fence_chain_alloc()
        dma_fence_chain_init(chain, None, arr, 1)

        def waiter() -> int:
            return dma_fence_wait(chain, False)

        w = dmabuf.spawn(waiter)

        def sig_b() -> None:
            dma_fence_signal(b)

        s = dmabuf.spawn(sig_b)
        dma_fence_signal(a)
        s.join()
        assert w.join() == 0
        assert dma_fence_is_signaled(chain)
        for x in (a, b, chain):
            dma_fence_put(x)

    res = run_on(body, preemption_bound=2)
    if res is not None and hasattr(res, "complete"):
        assert res.complete


def test_explorer_finds_wait_under_lock_taken_in_signalling_section() -> None:
    # The cross-driver deadlock the annotations exist for: one task waits on a fence while holding a lock
    # that the signalling path of that fence takes.
    def body() -> None:
        m = Mutex(lock_class="driver_lock")
        f = make_fence()

        def signaller() -> None:
            cookie = dma_fence_begin_signalling()
            mutex_lock(m)
            mutex_unlock(m)
            dma_fence_signal(f)
            dma_fence_end_signalling(cookie)

        t = dmabuf.spawn(signaller)
        mutex_lock(m)
        dma_fence_wait(f, False)
        mutex_unlock(m)
        t.join()
        dma_fence_put(f)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None
    assert res.failure.kind in ("deadlock", "kernel-warning")


def test_explorer_finds_wait_inside_signalling_section() -> None:
    def body() -> None:
        f, g = make_fence(), make_fence()
        cookie = dma_fence_begin_signalling()
        dma_fence_signal(g)
        dma_fence_wait(f, False)
        dma_fence_end_signalling(cookie)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "kernel-warning"
    assert "signalling critical section" in res.failure.message
