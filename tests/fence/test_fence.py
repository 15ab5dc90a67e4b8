"""Unit tests of dma_fence: one body per function, return codes and misuse WARNs, on both runtimes."""

from __future__ import annotations

from typing import Any

import pytest
from _helpers import OPS, make_fence

import dmabuf
from dmabuf.errors import InvalidArgument, KernelBug, KernelWarning
from dmabuf.fence import DmaFenceCb
from dmabuf.kernel import (
    DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT,
    DMA_FENCE_FLAG_SIGNALED_BIT,
    DMA_FENCE_FLAG_TIMESTAMP_BIT,
    EDEADLK,
    EINVAL,
    EIO,
    ENOENT,
    ERESTARTSYS,
    HZ,
    MAX_SCHEDULE_TIMEOUT,
    DmaFence,
    DmaFenceOps,
    SpinLock,
    current,
    dma_fence_add_callback,
    dma_fence_allocate_private_stub,
    dma_fence_begin_signalling,
    dma_fence_context_alloc,
    dma_fence_end_signalling,
    dma_fence_get,
    dma_fence_get_rcu,
    dma_fence_get_rcu_safe,
    dma_fence_get_status,
    dma_fence_get_status_locked,
    dma_fence_get_stub,
    dma_fence_init,
    dma_fence_is_later,
    dma_fence_is_later_or_same,
    dma_fence_is_signaled,
    dma_fence_is_signaled_locked,
    dma_fence_later,
    dma_fence_put,
    dma_fence_remove_callback,
    dma_fence_set_deadline,
    dma_fence_set_error,
    dma_fence_signal,
    dma_fence_signal_locked,
    dma_fence_signal_timestamp,
    dma_fence_signal_timestamp_locked,
    dma_fence_timestamp,
    dma_fence_wait,
    dma_fence_wait_any_timeout,
    dma_fence_wait_timeout,
    kref_read,
    send_sig,
    set_warn_mode,
    spin_lock_irqsave,
    spin_unlock_irqrestore,
)


class RecCb(DmaFenceCb):
    def __init__(self, log: list[Any], tag: Any) -> None:
        self.log = log
        self.tag = tag


def rec(f: DmaFence, cb: DmaFenceCb) -> None:
    assert isinstance(cb, RecCb)
    cb.log.append((cb.tag, f, current().atomic_depth > 0))


def on_both(run_on: Any, body: Any) -> None:
    run_on(body)


def test_init_and_fields(run_on: Any) -> None:
    def body() -> None:
        f = DmaFence()
        assert f.flags == 0
        lock = SpinLock()
        dma_fence_init(f, OPS, lock, 7, 3)
        assert (f.context, f.seqno, f.error, f.flags, f.lock, f.ops) == (7, 3, 0, 0, lock, OPS)
        assert kref_read(f.refcount) == 1 and f.cb_list == []
        dma_fence_put(f)

    run_on(body)


def test_init_bugs_without_lock_or_ops(run_on: Any) -> None:
    def body() -> None:
        with pytest.raises(KernelBug):
            dma_fence_init(DmaFence(), OPS, None, 0, 0)  # type: ignore[arg-type]
        with pytest.raises(KernelBug):
            dma_fence_init(DmaFence(), DmaFenceOps(get_driver_name=lambda f: "x"), SpinLock(), 0, 0)
        with pytest.raises(KernelBug):
            dma_fence_init(DmaFence(), None, SpinLock(), 0, 0)  # type: ignore[arg-type]

    run_on(body)


def test_wrong_types_are_invalid_argument(run_on: Any) -> None:
    def body() -> None:
        with pytest.raises(InvalidArgument):
            dma_fence_is_signaled(None)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            dma_fence_get_status("fence")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            dma_fence_signal(DmaFence())  # never initialised
        with pytest.raises(InvalidArgument):
            DmaFenceOps(signaled=3)  # type: ignore[arg-type]
        f = make_fence()
        with pytest.raises(InvalidArgument):
            dma_fence_add_callback(f, object(), rec)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            dma_fence_wait_timeout(f, False, 1.5)  # type: ignore[arg-type]
        dma_fence_put(f)

    run_on(body)


def test_context_alloc_per_execution(run_on: Any) -> None:
    def body() -> None:
        assert dma_fence_context_alloc(1) == 1
        assert dma_fence_context_alloc(3) == 2
        assert dma_fence_context_alloc(1) == 5
        with pytest.raises(KernelWarning):
            dma_fence_context_alloc(0)

    run_on(body)
    run_on(body)  # a second run starts from 1 again


def test_signal_return_codes_and_timestamps(run_on: Any) -> None:
    def body() -> None:
        f = make_fence()
        assert not dma_fence_is_signaled(f)
        assert dma_fence_signal(f) == 0
        assert f.flags & (1 << DMA_FENCE_FLAG_SIGNALED_BIT)
        assert f.flags & (1 << DMA_FENCE_FLAG_TIMESTAMP_BIT)
        assert dma_fence_signal(f) == -EINVAL
        assert dma_fence_signal_timestamp(f, 5) == -EINVAL
        dma_fence_put(f)

        g = make_fence()
        assert dma_fence_signal_timestamp(g, 12345) == 0
        assert dma_fence_timestamp(g) == 12345
        dma_fence_put(g)

        h = make_fence()
        assert h.lock is not None
        flags = spin_lock_irqsave(h.lock)
        assert dma_fence_signal_timestamp_locked(h, 77) == 0
        assert dma_fence_signal_locked(h) == -EINVAL
        spin_unlock_irqrestore(h.lock, flags)
        assert dma_fence_timestamp(h) == 77
        dma_fence_put(h)

    run_on(body)


def test_signal_null_returns_einval_without_warn(run_on: Any) -> None:
    """v6.12 ``dma_fence_signal``/``_timestamp``: ``if (!fence) return -EINVAL;`` (no WARN)."""

    def body() -> None:
        assert dma_fence_signal(None) == -EINVAL
        assert dma_fence_signal_timestamp(None, 5) == -EINVAL

    run_on(body)  # raise mode: a WARN would raise KernelWarning


def test_signal_null_log_mode_logs_nothing() -> None:
    got: list[int] = []

    def body() -> None:
        got.append(dma_fence_signal(None))
        got.append(dma_fence_signal_timestamp(None, 5))

    set_warn_mode("log")
    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is None, res.failure
    assert got and set(got) == {-EINVAL}


def test_locked_variants_assert_lock_held(run_on: Any) -> None:
    def body() -> None:
        f = make_fence()
        with pytest.raises(KernelWarning):
            dma_fence_signal_locked(f)
        with pytest.raises(KernelWarning):
            dma_fence_get_status_locked(f)

    run_on(body)


def test_callbacks_fifo_in_signaller_under_lock(run_on: Any) -> None:
    def body() -> None:
        f = make_fence()
        log: list[Any] = []
        cbs = [RecCb(log, i) for i in range(3)]
        for cb in cbs:
            assert dma_fence_add_callback(f, cb, rec) == 0
            assert cb.pending()
        assert dma_fence_signal(f) == 0
        assert [t for t, _, _ in log] == [0, 1, 2]
        assert all(fe is f and atomic for _, fe, atomic in log)
        assert not any(cb.pending() for cb in cbs)
        # after signal: -ENOENT and the callback is not called
        late = RecCb(log, "late")
        assert dma_fence_add_callback(f, late, rec) == -ENOENT
        assert len(log) == 3
        assert not dma_fence_remove_callback(f, cbs[0])
        dma_fence_put(f)

    run_on(body)


def test_add_callback_null_warns(run_on: Any) -> None:
    def body() -> None:
        f = make_fence()
        with pytest.raises(KernelWarning):
            dma_fence_add_callback(f, RecCb([], 0), None)
        with pytest.raises(KernelWarning):
            dma_fence_add_callback(None, RecCb([], 0), rec)
        dma_fence_put(f)

    run_on(body)


def test_remove_callback(run_on: Any) -> None:
    def body() -> None:
        f = make_fence()
        log: list[Any] = []
        a, b = RecCb(log, "a"), RecCb(log, "b")
        dma_fence_add_callback(f, a, rec)
        dma_fence_add_callback(f, b, rec)
        assert dma_fence_remove_callback(f, a)
        assert not dma_fence_remove_callback(f, a)
        dma_fence_signal(f)
        assert [t for t, _, _ in log] == ["b"]
        dma_fence_put(f)

    run_on(body)


def test_enable_signaling_op(run_on: Any) -> None:
    def body() -> None:
        calls: list[DmaFence] = []

        def enable(f: DmaFence) -> bool:
            calls.append(f)
            return False  # "already done": the core signals now

        ops = DmaFenceOps(
            get_driver_name=lambda f: "d", get_timeline_name=lambda f: "t", enable_signaling=enable
        )
        f = make_fence(ops)
        log: list[Any] = []
        assert dma_fence_add_callback(f, RecCb(log, 0), rec) == -ENOENT
        assert calls == [f] and log == []
        assert f.flags & (1 << DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT)
        assert dma_fence_is_signaled(f)
        dma_fence_put(f)

        g = make_fence(ops)
        assert dma_fence_wait_timeout(g, False, 0) == 1  # enable signaled it: 1 for a zero timeout
        dma_fence_put(g)

    run_on(body)


def test_signaled_op_polled(run_on: Any) -> None:
    def body() -> None:
        done = [False]
        ops = DmaFenceOps(
            get_driver_name=lambda f: "d", get_timeline_name=lambda f: "t", signaled=lambda f: done[0]
        )
        f = make_fence(ops)
        log: list[Any] = []
        dma_fence_add_callback(f, RecCb(log, 0), rec)
        assert not dma_fence_is_signaled(f)
        assert dma_fence_get_status(f) == 0
        done[0] = True
        assert dma_fence_is_signaled(f)  # signals it, running the callback
        assert len(log) == 1
        assert dma_fence_get_status(f) == 1
        dma_fence_put(f)

        g = make_fence(ops)
        assert g.lock is not None
        flags = spin_lock_irqsave(g.lock)
        assert dma_fence_is_signaled_locked(g)
        assert dma_fence_get_status_locked(g) == 1
        spin_unlock_irqrestore(g.lock, flags)
        dma_fence_put(g)

    run_on(body)


def test_status_and_error(run_on: Any) -> None:
    def body() -> None:
        f = make_fence()
        dma_fence_set_error(f, -EIO)
        assert dma_fence_get_status(f) == 0
        dma_fence_signal(f)
        assert dma_fence_get_status(f) == -EIO
        with pytest.raises(KernelWarning):
            dma_fence_set_error(f, -EIO)  # already signaled
        dma_fence_put(f)
        g = make_fence()
        with pytest.raises(KernelWarning):
            dma_fence_set_error(g, 0)
        with pytest.raises(KernelWarning):
            dma_fence_set_error(g, -5000)
        dma_fence_signal(g)
        dma_fence_put(g)

    run_on(body)


def test_wait_return_values(run_on: Any) -> None:
    def body() -> None:
        f = make_fence()
        assert dma_fence_wait_timeout(f, False, 0) == 0
        assert dma_fence_wait_timeout(f, True, 1) == 0  # times out after one jiffy
        with pytest.raises(KernelWarning):
            dma_fence_wait_timeout(f, False, -1)
        dma_fence_signal(f)
        assert dma_fence_wait_timeout(f, False, 0) == 1
        assert dma_fence_wait_timeout(f, False, 10) == 10
        assert dma_fence_wait_timeout(f, False, MAX_SCHEDULE_TIMEOUT) == MAX_SCHEDULE_TIMEOUT
        assert dma_fence_wait(f, True) == 0
        dma_fence_put(f)

    run_on(body)


def test_negative_timeout_log_mode_returns_einval() -> None:
    out: list[int] = []

    def body() -> None:
        f = make_fence()
        out.append(dma_fence_wait_timeout(f, False, -1))
        dma_fence_signal(f)
        dma_fence_put(f)

    set_warn_mode("log")
    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "kernel-warning"
    assert out and out[0] == -EINVAL


def test_interruptible_wait(run_on: Any) -> None:
    def body() -> None:
        f = make_fence()
        me = current()
        send_sig(9, me)
        assert dma_fence_wait_timeout(f, True, HZ) == -ERESTARTSYS
        assert dma_fence_wait(f, True) == -ERESTARTSYS

        def killer() -> None:
            send_sig(9, me)

        me.sigpending = False
        t = dmabuf.spawn(killer)
        assert dma_fence_wait_timeout(f, True, 10 * HZ) == -ERESTARTSYS
        t.join()
        dma_fence_signal(f)
        dma_fence_put(f)

    run_on(body)


def test_wait_inside_signalling_section_warns(run_on: Any) -> None:
    def body() -> None:
        f = make_fence()
        cookie = dma_fence_begin_signalling()
        assert cookie is False
        assert dma_fence_begin_signalling() is True  # nested
        dma_fence_end_signalling(True)
        dma_fence_signal(f)  # signalling inside a section is fine
        with pytest.raises(KernelWarning, match="signalling critical section"):
            dma_fence_wait(f, False)
        dma_fence_end_signalling(cookie)
        assert dma_fence_wait(f, False) == 0
        with pytest.raises(KernelWarning):
            dma_fence_end_signalling(False)  # unbalanced
        dma_fence_put(f)

    run_on(body)


def test_wait_any(run_on: Any) -> None:
    def body() -> None:
        fs = [make_fence() for _ in range(3)]
        assert dma_fence_wait_any_timeout(fs, 3, False, 0) == (0, None)
        assert dma_fence_wait_any_timeout(fs, 3, False, 2) == (0, None)
        dma_fence_signal(fs[1])
        assert dma_fence_wait_any_timeout(fs, 3, False, 0) == (1, 1)
        assert dma_fence_wait_any_timeout(fs, 3, False, 5) == (5, 1)
        with pytest.raises(KernelWarning):
            dma_fence_wait_any_timeout(fs, 0, False, 5)
        with pytest.raises(KernelWarning):
            dma_fence_wait_any_timeout(None, 3, False, 5)
        for bad in (-1, 4):  # a negative count must not slice from the end; more than given is a bug
            with pytest.raises(InvalidArgument, match=r"count must be in 1\.\.3"):
                dma_fence_wait_any_timeout(fs, bad, False, 0)

        def signaller() -> None:
            dma_fence_signal(fs[2])

        t = dmabuf.spawn(signaller)
        ret, idx = dma_fence_wait_any_timeout(fs[::2], 2, False, 10 * HZ)
        assert ret > 0 and idx == 1
        t.join()
        assert all(f.cb_list == [] for f in fs)  # the waiter's callbacks are gone
        for f in fs:
            dma_fence_signal(f)
            dma_fence_put(f)

    run_on(body)


def test_release_with_pending_signals() -> None:
    seen: list[int] = []

    def body() -> None:
        f = make_fence()

        def cb_fn(fe: DmaFence, cb: DmaFenceCb) -> None:
            seen.append(fe.error)

        dma_fence_add_callback(f, DmaFenceCb(), cb_fn)
        dma_fence_put(f)

    set_warn_mode("log")
    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and "released with pending signals" in res.failure.message
    assert seen and set(seen) == {-EDEADLK}  # (the explorer may re-run the failing execution)


def test_release_calls_ops_release_and_use_after_free(run_on: Any) -> None:
    def body() -> None:
        released: list[DmaFence] = []
        ops = DmaFenceOps(
            get_driver_name=lambda f: "d", get_timeline_name=lambda f: "t", release=released.append
        )
        f = make_fence(ops)
        dma_fence_get(f)
        dma_fence_put(f)
        assert released == []
        dma_fence_put(f)
        assert released == [f]

        g = make_fence()
        dma_fence_signal(g)
        dma_fence_put(g)  # default release: dma_fence_free
        with pytest.raises(KernelBug, match="use after free"):
            dma_fence_is_signaled(g)
        assert dma_fence_get_rcu(g) is None  # refcount is zero

    run_on(body)


def test_get_rcu_safe(run_on: Any) -> None:
    class Holder:
        fence: DmaFence | None = None

    def body() -> None:
        h = Holder()
        assert dma_fence_get_rcu_safe(h, "fence") is None
        h.fence = make_fence()
        got = dma_fence_get_rcu_safe(h, "fence")
        assert got is h.fence and kref_read(got.refcount) == 2
        slots: list[DmaFence | None] = [None, got]
        assert dma_fence_get_rcu_safe(slots, 1) is got
        dma_fence_put(got)
        dma_fence_put(got)
        dma_fence_signal(got)
        dma_fence_put(got)

    run_on(body)


def test_stub_fences(run_on: Any) -> None:
    def body() -> None:
        s1, s2 = dma_fence_get_stub(), dma_fence_get_stub()
        assert s1 is s2 and dma_fence_is_signaled(s1) and s1.context == 0 and s1.seqno == 0
        dma_fence_put(s1)
        dma_fence_put(s2)
        p = dma_fence_allocate_private_stub(4242)
        assert p is not s1 and dma_fence_is_signaled(p) and dma_fence_timestamp(p) == 4242
        assert p.flags & (1 << DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT)
        dma_fence_put(p)
        return None

    run_on(body)
    stubs: list[DmaFence] = []

    def twice() -> None:
        stubs.append(dma_fence_get_stub())

    dmabuf.run_threads(twice)
    dmabuf.run_threads(twice)
    assert stubs[0] is not stubs[1]  # one stub per execution


def test_timestamp_of_unsignaled_warns(run_on: Any) -> None:
    def body() -> None:
        f = make_fence()
        with pytest.raises(KernelWarning):
            dma_fence_timestamp(f)
        dma_fence_signal(f)
        dma_fence_put(f)

    run_on(body)


def test_is_later_wrap_and_64bit(run_on: Any) -> None:
    def body() -> None:
        a, b = make_fence(context=9, seqno=1), make_fence(context=9, seqno=2)
        assert dma_fence_is_later(b, a) and not dma_fence_is_later(a, b)
        assert dma_fence_is_later_or_same(a, a) and not dma_fence_is_later(a, a)
        # 32-bit compare wraps: 0x1 is after 0xffffffff
        w1, w2 = make_fence(context=9, seqno=0xFFFFFFFF), make_fence(context=9, seqno=0x1_0000_0001)
        assert dma_fence_is_later(w2, w1)
        assert dma_fence_is_later(
            make_fence(context=9, seqno=5), make_fence(context=9, seqno=5 + (1 << 31) + 1)
        )
        ops64 = DmaFenceOps(
            get_driver_name=lambda f: "d", get_timeline_name=lambda f: "t", use_64bit_seqno=True
        )
        x, y = make_fence(ops64, context=9, seqno=1 << 40), make_fence(ops64, context=9, seqno=(1 << 40) + 1)
        assert dma_fence_is_later(y, x) and not dma_fence_is_later(x, y)
        big, small = (
            make_fence(ops64, context=9, seqno=0xFFFFFFFF),
            make_fence(ops64, context=9, seqno=1 << 32),
        )
        assert dma_fence_is_later(small, big)  # no wrap on 64 bits
        other = make_fence(context=10, seqno=3)
        with pytest.raises(KernelWarning):
            dma_fence_is_later(a, other)
        assert dma_fence_later(a, b) is b
        dma_fence_signal(b)
        assert dma_fence_later(a, b) is None
        with pytest.raises(KernelWarning):
            dma_fence_later(a, other)

    run_on(body)


def test_set_deadline(run_on: Any) -> None:
    def body() -> None:
        got: list[int] = []
        ops = DmaFenceOps(
            get_driver_name=lambda f: "d",
            get_timeline_name=lambda f: "t",
            set_deadline=lambda f, d: got.append(d),
        )
        f = make_fence(ops)
        dma_fence_set_deadline(f, 100)
        dma_fence_signal(f)
        dma_fence_set_deadline(f, 200)  # signaled: not forwarded
        assert got == [100]
        g = make_fence()
        dma_fence_set_deadline(g, 1)  # no op: nothing happens
        dma_fence_put(f)

    run_on(body)
