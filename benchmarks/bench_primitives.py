"""Primitive benchmark: what the kernel-named primitives cost on real threads, as ratios to plain Python.

Run: ``python benchmarks/bench_primitives.py [--profile] [-n N]``. Not a test: it prints measurements next to
their targets; nothing here asserts on time. All numbers are taken in one run, so the ratios compare numbers
from the same machine in the same state.

* ww_mutex lock+unlock: one task inside ``dmabuf.run_threads`` running the acquire-context loop
  (``ww_acquire_init``; ``ww_mutex_lock(lock, ctx)``; ``ww_mutex_unlock``; ``ww_acquire_fini``), per
  lock+unlock pair, against ``threading.Lock`` acquire+release (target <= 10x). The context is set up once
  per 16 lock/unlock pairs, as a driver locking a handful of buffers would.
* fence signal with one callback: ``dma_fence_init`` + ``dma_fence_add_callback`` + ``dma_fence_signal`` per
  op, and its ratio to a plain Python function call (no target: reported for scale).
* resv add_fence + iteration: ``dma_resv_lock``; ``dma_resv_reserve_fences(1)``; ``dma_resv_add_fence``;
  ``for f in dma_resv_for_each_fence(...)``; ``dma_resv_unlock`` per op, over a resv holding a few fences.

If the ww_mutex target is missed, a cProfile of that loop is printed (``--profile`` prints all three).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import threading
import time
from collections.abc import Callable
from typing import Any

import dmabuf
import dmabuf.kernel as K

REPEATS = 5
WW_TARGET = 10.0
PER_CTX = 16


def best_of(fn: Callable[[], float], repeats: int = REPEATS) -> float:
    """Smallest of several measurements (least disturbed by the rest of the machine)."""
    return min(fn() for _ in range(repeats))


def in_threads(fn: Callable[[], float]) -> float:
    """Run ``fn`` as the body of a real-threads run and return what it measured."""
    out: list[float] = []
    dmabuf.run_threads(lambda: out.append(fn()))
    return out[0]


# --------------------------------------------------------------------------- baselines
def threading_lock(n: int) -> float:
    """Seconds per ``threading.Lock`` acquire+release."""
    lk = threading.Lock()
    acq, rel = lk.acquire, lk.release
    t0 = time.perf_counter()
    for _ in range(n):
        acq()
        rel()
    return (time.perf_counter() - t0) / n


def plain_call(n: int) -> float:
    """Seconds per call of a plain two-argument Python function."""

    def func(a: object, b: object) -> None:
        return None

    t0 = time.perf_counter()
    for _ in range(n):
        func(None, None)
    return (time.perf_counter() - t0) / n


# --------------------------------------------------------------------------- primitives
def ww_lock_unlock(n: int) -> float:
    """Seconds per ww_mutex lock+unlock pair under an acquire context (inside the runtime)."""
    lock = K.WWMutex()
    K.ww_mutex_init(lock, K.reservation_ww_class)
    ctx = K.WWAcquireCtx()
    rounds = max(1, n // PER_CTX)
    t0 = time.perf_counter()
    for _ in range(rounds):
        K.ww_acquire_init(ctx, K.reservation_ww_class)
        for _ in range(PER_CTX):
            K.ww_mutex_lock(lock, ctx)
            K.ww_mutex_unlock(lock)
        K.ww_acquire_fini(ctx)
    return (time.perf_counter() - t0) / (rounds * PER_CTX)


def ww_lock_unlock_noctx(n: int) -> float:
    """Seconds per ww_mutex lock+unlock without a context (a plain mutex), for comparison."""
    lock = K.WWMutex()
    K.ww_mutex_init(lock, K.reservation_ww_class)
    t0 = time.perf_counter()
    for _ in range(n):
        K.ww_mutex_lock(lock, None)
        K.ww_mutex_unlock(lock)
    return (time.perf_counter() - t0) / n


def fence_signal_one_cb(n: int) -> float:
    """Seconds per fence init + add_callback + signal (+ put)."""
    ops = K.DmaFenceOps(get_driver_name=lambda f: "bench", get_timeline_name=lambda f: "tl")
    lock = K.SpinLock()
    ctx = K.dma_fence_context_alloc(1)
    seen = [0]

    def func(fence: K.DmaFence, cb: K.DmaFenceCb) -> None:
        seen[0] += 1

    t0 = time.perf_counter()
    for i in range(n):
        f = K.DmaFence()
        K.dma_fence_init(f, ops, lock, ctx, i + 1)
        K.dma_fence_add_callback(f, K.DmaFenceCb(), func)
        K.dma_fence_signal(f)
        K.dma_fence_put(f)
    dt = time.perf_counter() - t0
    assert seen[0] == n
    return dt / n


def resv_add_iterate(n: int) -> float:
    """Seconds per lock + reserve + add_fence + locked iteration + unlock on a resv with a few contexts."""
    ops = K.DmaFenceOps(get_driver_name=lambda f: "bench", get_timeline_name=lambda f: "tl")
    lock = K.SpinLock()
    contexts = [K.dma_fence_context_alloc(1) for _ in range(4)]
    r = K.DmaResv()
    K.dma_resv_init(r)
    cursor = K.DmaResvIter()
    fences = []
    for i in range(n):  # built outside the timed loop
        f = K.DmaFence()
        K.dma_fence_init(f, ops, lock, contexts[i % 4], i + 1)
        fences.append(f)
    t0 = time.perf_counter()
    seen = 0
    for f in fences:
        K.dma_resv_lock(r, None)
        K.dma_resv_reserve_fences(r, 1)
        K.dma_resv_add_fence(r, f, K.DMA_RESV_USAGE_READ)  # replaces the older fence of its context
        for _ in K.dma_resv_for_each_fence(cursor, r, K.DMA_RESV_USAGE_BOOKKEEP):
            seen += 1
        K.dma_resv_unlock(r)
    dt = time.perf_counter() - t0
    for f in fences:
        K.dma_fence_signal(f)
        K.dma_fence_put(f)
    K.dma_resv_fini(r)
    return dt / n


# --------------------------------------------------------------------------- reporting
def profile(title: str, fn: Callable[[], Any], top: int = 22) -> None:
    """cProfile ``fn`` inside the run's task thread (cProfile only sees the thread that enables it)."""
    pr = cProfile.Profile()

    def body() -> float:
        pr.enable()
        try:
            fn()
        finally:
            pr.disable()
        return 0.0

    in_threads(body)
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(top)
    print(f"\n--- cProfile: {title} (by own time) ---")
    lines = s.getvalue().splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    print("\n".join(lines[start : start + top + 1]))


def fmt(sec: float) -> str:
    return f"{sec * 1e9:9.0f} ns" if sec < 1e-3 else f"{sec * 1e3:9.3f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20_000, help="operations per measurement")
    ap.add_argument("--profile", action="store_true", help="cProfile every measurement")
    args = ap.parse_args()
    n = args.n

    base_lock = best_of(lambda: threading_lock(n * 10))
    base_call = best_of(lambda: plain_call(n * 10))
    ww = best_of(lambda: in_threads(lambda: ww_lock_unlock(n)))
    ww_plain = best_of(lambda: in_threads(lambda: ww_lock_unlock_noctx(n)))
    fence = best_of(lambda: in_threads(lambda: fence_signal_one_cb(n // 4)))
    resv = best_of(lambda: in_threads(lambda: resv_add_iterate(n // 4)))

    ww_ratio = ww / base_lock
    print("dmabuf primitives on real threads (dmabuf.run_threads, one task), best of", REPEATS)
    print(f"  threading.Lock acquire+release           {fmt(base_lock)}")
    print(f"  plain Python function call               {fmt(base_call)}")
    print(
        f"  ww_mutex lock+unlock (ctx)               {fmt(ww)}   {ww_ratio:7.1f}x threading.Lock"
        f"   target <= {WW_TARGET:.0f}x   {'MET' if ww_ratio <= WW_TARGET else 'MISSED'}"
    )
    print(
        f"  ww_mutex lock+unlock (no ctx)            {fmt(ww_plain)}   {ww_plain / base_lock:7.1f}x threading.Lock"
    )
    print(
        f"  fence init+add_callback+signal+put       {fmt(fence)}   {fence / base_call:7.1f}x a plain call"
        "   (no target; per op)"
    )
    print(
        f"  resv lock+reserve+add+for_each+unlock    {fmt(resv)}   {resv / base_call:7.1f}x a plain call"
        "   (no target; per op, 4 fences in the resv)"
    )

    if ww_ratio > WW_TARGET or args.profile:
        profile("ww_mutex lock+unlock (ctx)", lambda: ww_lock_unlock(n))
    if args.profile:
        profile("fence signal with one callback", lambda: fence_signal_one_cb(n // 4))
        profile("resv add+iterate", lambda: resv_add_iterate(n // 4))


if __name__ == "__main__":
    main()
