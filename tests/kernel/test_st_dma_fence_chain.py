"""Port of drivers/dma-buf/st-dma-fence-chain.c onto the kernel names.

Reductions for Python (each noted where it applies): ``CHAIN_SZ`` is 64 instead of 4096 on threads and 3
under the explorer; ``find_race`` runs two threads for 200 ms instead of one per CPU for 5 s; the explorer
runs the waiting subtests with short chains only. ``yield_to`` (a scheduling hint) is left out.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

import dmabuf
from dmabuf.kernel import (
    EINVAL,
    ENOMEM,
    Atomic,
    DmaFence,
    DmaFenceChain,
    DmaFenceOps,
    SpinLock,
    atomic_dec_and_test,
    atomic_inc,
    atomic_read,
    atomic_set,
    dma_fence_chain_find_seqno,
    dma_fence_chain_init,
    dma_fence_get,
    dma_fence_init,
    dma_fence_is_signaled,
    dma_fence_put,
    dma_fence_signal,
    dma_fence_wait,
    kthread_run,
    kthread_should_stop,
    kthread_stop,
    msleep,
    spin_lock_init,
)

CHAIN_SZ = 64  # 4 << 10 in the kernel; reduced for Python


class MockFence(DmaFence):
    def __init__(self) -> None:
        super().__init__()
        self.mock_lock = SpinLock(lock_class="mock_fence.lock")


def mock_name(f: DmaFence) -> str:
    return "mock"


def mock_fence_release(f: DmaFence) -> None:
    pass  # kmem_cache_free(slab_fences, to_mock_fence(f))


mock_ops = DmaFenceOps(get_driver_name=mock_name, get_timeline_name=mock_name, release=mock_fence_release)


def mock_fence() -> DmaFence:
    f = MockFence()
    spin_lock_init(f.mock_lock)
    dma_fence_init(f, mock_ops, f.mock_lock, 0, 0)
    return f


def mock_chain(prev: DmaFence | None, fence: DmaFence, seqno: int) -> DmaFence:
    f = DmaFenceChain()
    dma_fence_chain_init(f, dma_fence_get(prev), dma_fence_get(fence), seqno)
    return f


def sanitycheck(arg: Any = None) -> int:
    err = 0
    f = mock_fence()

    chain = mock_chain(None, f, 1)
    if not chain:
        err = -ENOMEM

    dma_fence_signal(f)
    dma_fence_put(f)

    dma_fence_put(chain)

    return err


class FenceChains:
    def __init__(self) -> None:
        self.chain_length = 0
        self.fences: list[DmaFence] = []
        self.chains: list[DmaFence] = []
        self.tail: DmaFence | None = None


def seqno_inc(i: int) -> int:
    return i + 1


def fence_chains_init(fc: FenceChains, count: int, seqno_fn: Any) -> int:
    fc.chains = []
    fc.fences = []
    fc.tail = None
    for i in range(count):
        fc.fences.append(mock_fence())
        fc.chains.append(mock_chain(fc.tail, fc.fences[i], seqno_fn(i)))
        fc.tail = fc.chains[i]
    fc.chain_length = count
    return 0


def fence_chains_fini(fc: FenceChains) -> None:
    for i in range(fc.chain_length):
        dma_fence_signal(fc.fences[i])
        dma_fence_put(fc.fences[i])

    for i in range(fc.chain_length):
        dma_fence_put(fc.chains[i])


def find_seqno(arg: Any = None, count: int = 64) -> int:
    fc = FenceChains()
    err = fence_chains_init(fc, count, seqno_inc)
    if err:
        return err
    try:
        fence = dma_fence_get(fc.tail)
        err, fence = dma_fence_chain_find_seqno(fence, 0)
        dma_fence_put(fence)
        if err:
            print(f"Reported {err} for find_seqno(0)!")
            return err

        for i in range(fc.chain_length):
            fence = dma_fence_get(fc.tail)
            err, fence = dma_fence_chain_find_seqno(fence, i + 1)
            dma_fence_put(fence)
            if err:
                print(f"Reported {err} for find_seqno({fc.chain_length + 1}:{i + 1})!")
                return err
            if fence is not fc.chains[i]:
                print(f"Incorrect fence reported by find_seqno({fc.chain_length + 1}:{i + 1})")
                return -EINVAL

            dma_fence_get(fence)
            err, fence = dma_fence_chain_find_seqno(fence, i + 1)
            dma_fence_put(fence)
            if err:
                print("Error reported for finding self")
                return err
            if fence is not fc.chains[i]:
                print("Incorrect fence reported by find self")
                return -EINVAL

            dma_fence_get(fence)
            err, fence = dma_fence_chain_find_seqno(fence, i + 2)
            dma_fence_put(fence)
            if not err:
                print(f"Error not reported for future fence: find_seqno({i + 1}:{i + 2})!")
                return -EINVAL

            dma_fence_get(fence)
            err, fence = dma_fence_chain_find_seqno(fence, i)
            dma_fence_put(fence)
            if err:
                print("Error reported for previous fence!")
                return err
            if i > 0 and fence is not fc.chains[i - 1]:
                print(f"Incorrect fence reported by find_seqno({i + 1}:{i})")
                return -EINVAL
        return 0
    finally:
        fence_chains_fini(fc)


def find_signaled(arg: Any = None) -> int:
    fc = FenceChains()
    err = fence_chains_init(fc, 2, seqno_inc)
    if err:
        return err
    try:
        dma_fence_signal(fc.fences[0])

        fence = dma_fence_get(fc.tail)
        err, fence = dma_fence_chain_find_seqno(fence, 1)
        dma_fence_put(fence)
        if err:
            print(f"Reported {err} for find_seqno()!")
            return err

        if fence is not None and fence is not fc.chains[0]:
            print(f"Incorrect chain-fence.seqno:{fence.seqno} reported for completed seqno:1")

            dma_fence_get(fence)
            err, fence = dma_fence_chain_find_seqno(fence, 1)
            dma_fence_put(fence)
            if err:
                print(f"Reported {err} for finding self!")

            err = -EINVAL
        return err
    finally:
        fence_chains_fini(fc)


def find_out_of_order(arg: Any = None) -> int:
    fc = FenceChains()
    err = fence_chains_init(fc, 3, seqno_inc)
    if err:
        return err
    try:
        dma_fence_signal(fc.fences[1])

        fence = dma_fence_get(fc.tail)
        err, fence = dma_fence_chain_find_seqno(fence, 2)
        dma_fence_put(fence)
        if err:
            print(f"Reported {err} for find_seqno()!")
            return err

        # We signaled the middle fence (2) of the 1-2-3 chain: waiting for 2 means waiting for everything up
        # to it, and 1 is still pending, so the walk must stop at chain[0] (node 2 got collected on the way).
        if fence is not fc.chains[0]:
            print(f"Incorrect chain-fence.seqno:{fence.seqno if fence else 0} reported for completed seqno:2")
            err = -EINVAL
        return err
    finally:
        fence_chains_fini(fc)


def seqno_inc2(i: int) -> int:
    return 2 * i + 2


def find_gap(arg: Any = None, count: int = 64) -> int:
    fc = FenceChains()
    err = fence_chains_init(fc, count, seqno_inc2)
    if err:
        return err
    try:
        for i in range(fc.chain_length):
            fence = dma_fence_get(fc.tail)
            err, fence = dma_fence_chain_find_seqno(fence, 2 * i + 1)
            dma_fence_put(fence)
            if err:
                print(f"Reported {err} for find_seqno({fc.chain_length + 1}:{2 * i + 1})!")
                return err
            if fence is not fc.chains[i]:
                print(f"Incorrect fence reported by find_seqno({fc.chain_length + 1}:{2 * i + 1})")
                return -EINVAL

            dma_fence_get(fence)
            err, fence = dma_fence_chain_find_seqno(fence, 2 * i + 2)
            dma_fence_put(fence)
            if err:
                print("Error reported for finding self")
                return err
            if fence is not fc.chains[i]:
                print("Incorrect fence reported by find self")
                return -EINVAL
        return 0
    finally:
        fence_chains_fini(fc)


class FindRace:
    def __init__(self) -> None:
        self.fc = FenceChains()
        self.children = Atomic(0)


def __find_race(arg: Any) -> int:
    data: FindRace = arg
    err = 0
    rng = random.Random(id(data) & 0xFFFF)  # prandom; only used on real threads

    while not kthread_should_stop():
        fence = dma_fence_get(data.fc.tail)

        seqno = rng.randrange(data.fc.chain_length) + 1

        err, fence = dma_fence_chain_find_seqno(fence, seqno)
        if err:
            print(f"Failed to find fence seqno:{seqno}")
            dma_fence_put(fence)
            break
        if fence is not None:
            # We can only find ourselves if we are on fence we were looking for.
            if fence.seqno == seqno:
                err, fence = dma_fence_chain_find_seqno(fence, seqno)
                if err:
                    print(f"Reported an invalid fence for find-self:{seqno}")
                    dma_fence_put(fence)
                    break

            dma_fence_put(fence)

        seqno = rng.randrange(data.fc.chain_length - 1)
        dma_fence_signal(data.fc.fences[seqno])

    atomic_dec_and_test(data.children)  # wake_up_var: the parent polls
    return err


def find_race(arg: Any = None, ncpus: int = 2, msecs: int = 200) -> int:
    data = FindRace()
    err = fence_chains_init(data.fc, CHAIN_SZ, seqno_inc)
    if err:
        return err
    try:
        atomic_set(data.children, 0)
        threads = []
        for i in range(ncpus):
            threads.append(kthread_run(__find_race, data, f"dmabuf/{i}"))
            atomic_inc(data.children)

        # wait_var_event_timeout(&data.children, !atomic_read(&data.children), 5 * HZ), reduced
        for _ in range(msecs // 10):
            if not atomic_read(data.children):
                break
            msleep(10)

        for t in threads:
            ret = kthread_stop(t)
            if ret and not err:
                err = ret

        count = 0
        for i in range(data.fc.chain_length):
            if dma_fence_is_signaled(data.fc.fences[i]):
                count += 1
        return err
    finally:
        fence_chains_fini(data.fc)


def signal_forward(arg: Any = None, count: int = 64) -> int:
    fc = FenceChains()
    err = fence_chains_init(fc, count, seqno_inc)
    if err:
        return err
    try:
        for i in range(fc.chain_length):
            dma_fence_signal(fc.fences[i])

            if not dma_fence_is_signaled(fc.chains[i]):
                print(f"chain[{i}] not signaled!")
                return -EINVAL

            if i + 1 < fc.chain_length and dma_fence_is_signaled(fc.chains[i + 1]):
                print(f"chain[{i}] is signaled!")
                return -EINVAL
        return 0
    finally:
        fence_chains_fini(fc)


def signal_backward(arg: Any = None, count: int = 64) -> int:
    fc = FenceChains()
    err = fence_chains_init(fc, count, seqno_inc)
    if err:
        return err
    try:
        for i in reversed(range(fc.chain_length)):
            dma_fence_signal(fc.fences[i])

            if i > 0 and dma_fence_is_signaled(fc.chains[i]):
                print(f"chain[{i}] is signaled!")
                return -EINVAL

        for i in range(fc.chain_length):
            if not dma_fence_is_signaled(fc.chains[i]):
                print(f"chain[{i}] was not signaled!")
                return -EINVAL
        return 0
    finally:
        fence_chains_fini(fc)


def __wait_fence_chains(arg: Any) -> int:
    fc: FenceChains = arg
    assert fc.tail is not None
    if dma_fence_wait(fc.tail, False):
        return -5  # -EIO
    return 0


def _wait(count: int, order: str) -> int:
    fc = FenceChains()
    err = fence_chains_init(fc, count, seqno_inc)
    if err:
        return err
    try:
        if order == "random":
            randomise_fences(fc)

        tsk = kthread_run(__wait_fence_chains, fc, "dmabuf/wait")
        # yield_to(tsk, true): a scheduling hint, left out

        idx = range(fc.chain_length) if order != "backward" else reversed(range(fc.chain_length))
        for i in idx:
            dma_fence_signal(fc.fences[i])

        return int(kthread_stop(tsk))
    finally:
        fence_chains_fini(fc)


def wait_forward(arg: Any = None, count: int = CHAIN_SZ) -> int:
    return _wait(count, "forward")


def wait_backward(arg: Any = None, count: int = CHAIN_SZ) -> int:
    return _wait(count, "backward")


def randomise_fences(fc: FenceChains) -> None:
    count = fc.chain_length
    rng = random.Random(count)  # prandom, seeded so every execution of an exploration shuffles alike

    # Fisher-Yates shuffle courtesy of Knuth
    count -= 1
    while count:
        swp = rng.randrange(count + 1)
        if swp != count:
            fc.fences[count], fc.fences[swp] = fc.fences[swp], fc.fences[count]
        count -= 1


def wait_random(arg: Any = None, count: int = CHAIN_SZ) -> int:
    return _wait(count, "random")


SUBTESTS = [
    sanitycheck,
    find_seqno,
    find_signaled,
    find_out_of_order,
    find_gap,
    signal_forward,
    signal_backward,
    wait_forward,
    wait_backward,
    wait_random,
]


@pytest.mark.parametrize("subtest", SUBTESTS, ids=lambda f: f.__name__)
def test_dma_fence_chain_threads(subtest: Any) -> None:
    assert dmabuf.run_threads(subtest, timeout=60) == 0


def test_find_race_threads() -> None:
    assert dmabuf.run_threads(find_race, timeout=60) == 0


SMALL = {"find_seqno": 4, "find_gap": 4, "signal_forward": 4, "signal_backward": 4}


@pytest.mark.parametrize("subtest", SUBTESTS, ids=lambda f: f.__name__)
def test_dma_fence_chain_explored(subtest: Any) -> None:
    # Reduced: 4-node chains for the single-task subtests, 3-node chains (below) for the waiting ones.
    name = subtest.__name__
    if name.startswith("wait_"):

        def body() -> None:
            assert subtest(count=3) == 0

        res = dmabuf.explore(body, strategy="dfs", preemption_bound=2)  # ~300 executions
    else:

        def body() -> None:
            assert (subtest(count=SMALL[name]) if name in SMALL else subtest()) == 0

        res = dmabuf.explore(body, strategy="dfs", preemption_bound=2)
    assert res.failure is None, str(res.failure)
    assert res.complete
