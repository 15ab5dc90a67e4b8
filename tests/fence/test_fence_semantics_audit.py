"""Audit of documented dma_fence / array / chain / unwrap behaviours (kernel-semantics.md section 3) that no
other test pins down. Black-box, through the kernel names; each body runs on both runtimes."""

from __future__ import annotations

from typing import Any

from _helpers import make_fence

from dmabuf.fence import DmaFenceCb
from dmabuf.kernel import (
    DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT,
    DMA_FENCE_FLAG_SIGNALED_BIT,
    EINVAL,
    EIO,
    ENOENT,
    ERESTARTSYS,
    ETIME,
    DmaFence,
    DmaFenceChain,
    DmaFenceOps,
    DmaFenceUnwrap,
    current,
    dma_fence_add_callback,
    dma_fence_array_create,
    dma_fence_chain_alloc,
    dma_fence_chain_for_each,
    dma_fence_chain_init,
    dma_fence_context_alloc,
    dma_fence_dedup_array,
    dma_fence_enable_sw_signaling,
    dma_fence_get,
    dma_fence_get_status,
    dma_fence_is_array,
    dma_fence_is_signaled,
    dma_fence_put,
    dma_fence_set_deadline,
    dma_fence_set_error,
    dma_fence_signal,
    dma_fence_signal_timestamp,
    dma_fence_timestamp,
    dma_fence_unwrap_for_each,
    dma_fence_unwrap_merge,
    dma_fence_wait,
    dma_fence_wait_any_timeout,
    dma_fence_wait_timeout,
    kref_read,
    send_sig,
    to_dma_fence_chain,
)

_ENABLE = 1 << DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT
_SIGNALED = 1 << DMA_FENCE_FLAG_SIGNALED_BIT


def _ops(**kw: Any) -> DmaFenceOps:
    return DmaFenceOps(get_driver_name=lambda f: "audit", get_timeline_name=lambda f: "audit", **kw)


def _chain(prev: DmaFence | None, fence: DmaFence, seqno: int) -> DmaFenceChain:
    """A new chain node after ``prev`` (None: the first node) for ``fence``; it takes a reference to each."""
    c = dma_fence_chain_alloc()
    dma_fence_chain_init(c, None if prev is None else dma_fence_get(prev), dma_fence_get(fence), seqno)
    return c


class LogCb(DmaFenceCb):
    def __init__(self, log: list[Any], tag: Any) -> None:
        self.log = log
        self.tag = tag


def _log(f: DmaFence, cb: DmaFenceCb) -> None:
    assert isinstance(cb, LogCb)
    cb.log.append((cb.tag, f.error))


# ---------------------------------------------------------------------- enable_sw_signaling
def test_enable_sw_signaling_calls_op_once_and_sets_bit(run_on: Any) -> None:
    """kernel-semantics 3.2 ``__dma_fence_enable_signaling``: sets ENABLE_SIGNAL; ``ops.enable_signaling`` is
    called only the first time; returning true leaves the fence pending."""

    def body() -> None:
        calls: list[DmaFence] = []

        def enable(f: DmaFence) -> bool:
            calls.append(f)
            return True

        f = make_fence(_ops(enable_signaling=enable))
        assert not f.flags & _ENABLE
        dma_fence_enable_sw_signaling(f)
        assert f.flags & _ENABLE and calls == [f]
        dma_fence_enable_sw_signaling(f)
        assert dma_fence_add_callback(f, LogCb([], 0), _log) == 0
        assert dma_fence_wait_timeout(f, False, 0) == 0
        assert calls == [f]  # never again
        assert not dma_fence_is_signaled(f)
        dma_fence_signal(f)
        dma_fence_put(f)

    run_on(body)


def test_enable_sw_signaling_false_signals_at_once(run_on: Any) -> None:
    """kernel-semantics 3.2: ``ops.enable_signaling`` returning false makes the core signal the fence
    (``signal_locked``), running the callbacks already queued."""

    def body() -> None:
        f = make_fence(_ops(enable_signaling=lambda f: False))
        dma_fence_enable_sw_signaling(f)
        assert f.flags & _SIGNALED
        assert dma_fence_get_status(f) == 1
        assert dma_fence_signal(f) == -EINVAL
        dma_fence_put(f)

    run_on(body)


def test_enable_sw_signaling_on_signaled_fence_skips_op(run_on: Any) -> None:
    """kernel-semantics 3.2: on an already signaled fence the ENABLE_SIGNAL bit is set but
    ``ops.enable_signaling`` is not called."""

    def body() -> None:
        calls: list[DmaFence] = []

        def enable(f: DmaFence) -> bool:
            calls.append(f)
            return True

        f = make_fence(_ops(enable_signaling=enable))
        dma_fence_signal(f)
        dma_fence_enable_sw_signaling(f)
        assert f.flags & _ENABLE and calls == []
        dma_fence_put(f)

    run_on(body)


def test_is_signaled_does_not_enable_signaling(run_on: Any) -> None:
    """kernel-semantics 3.2 ``dma_fence_is_signaled``: polls ``ops.signaled`` but does not enable signaling."""

    def body() -> None:
        calls: list[str] = []

        def enable(f: DmaFence) -> bool:
            calls.append("enable")
            return True

        def signaled(f: DmaFence) -> bool:
            calls.append("signaled")
            return False

        f = make_fence(_ops(enable_signaling=enable, signaled=signaled))
        assert not dma_fence_is_signaled(f)
        assert calls == ["signaled"]
        assert not f.flags & _ENABLE
        dma_fence_signal(f)
        dma_fence_put(f)

    run_on(body)


# ---------------------------------------------------------------------- signal once
def test_second_signal_changes_nothing(run_on: Any) -> None:
    """kernel-semantics 3.2 ``dma_fence_signal*``: only the first signal counts; a second one returns -EINVAL
    and neither re-runs the callbacks nor moves the timestamp."""

    def body() -> None:
        f = make_fence()
        log: list[Any] = []
        assert dma_fence_add_callback(f, LogCb(log, "a"), _log) == 0
        assert dma_fence_signal_timestamp(f, 100) == 0
        assert dma_fence_signal_timestamp(f, 200) == -EINVAL
        assert dma_fence_signal(f) == -EINVAL
        assert dma_fence_timestamp(f) == 100
        assert log == [("a", 0)]
        dma_fence_put(f)

    run_on(body)


def test_callback_node_is_reinitialised_before_it_runs(run_on: Any) -> None:
    """kernel-semantics 3.2: each callback runs with its node re-initialised, so it may queue itself on
    another fence from inside the callback (a cb is on one fence at a time)."""

    def body() -> None:
        f, g = make_fence(), make_fence()
        seen: list[Any] = []

        def hop(fence: DmaFence, cb: DmaFenceCb) -> None:
            seen.append((fence, cb.pending()))
            if fence is f:
                seen.append(dma_fence_add_callback(g, cb, hop))

        cb = DmaFenceCb()
        assert dma_fence_add_callback(f, cb, hop) == 0
        dma_fence_signal(f)
        assert seen == [(f, False), 0]
        assert cb.pending()
        dma_fence_signal(g)
        assert seen[-1] == (g, False)
        for x in (f, g):
            dma_fence_put(x)

    run_on(body)


def test_error_set_before_signal_is_seen_by_callbacks(run_on: Any) -> None:
    """kernel-semantics 3.2 ``dma_fence_set_error``: the error must be set before signaling; callbacks and
    ``get_status`` then see it."""

    def body() -> None:
        f = make_fence()
        log: list[Any] = []
        dma_fence_add_callback(f, LogCb(log, 0), _log)
        dma_fence_set_error(f, -EIO)
        assert dma_fence_get_status(f) == 0  # still pending
        dma_fence_signal(f)
        assert log == [(0, -EIO)]
        assert dma_fence_get_status(f) == -EIO
        dma_fence_put(f)

    run_on(body)


# ---------------------------------------------------------------------- waits
def test_wait_timeout_zero_enables_signaling_without_queueing(run_on: Any) -> None:
    """kernel-semantics 3.2 ``dma_fence_wait_timeout``: enables signaling before waiting; with timeout 0 the
    default wait returns 0 at once on a pending fence and leaves no waiter on the callback list."""

    def body() -> None:
        calls: list[DmaFence] = []

        def enable(f: DmaFence) -> bool:
            calls.append(f)
            return True

        f = make_fence(_ops(enable_signaling=enable))
        assert dma_fence_wait_timeout(f, True, 0) == 0
        assert calls == [f] and f.flags & _ENABLE
        assert f.cb_list == []
        dma_fence_signal(f)
        assert dma_fence_wait_timeout(f, False, 0) == 1
        dma_fence_put(f)

    run_on(body)


def test_wait_timeout_uses_ops_wait_after_enabling(run_on: Any) -> None:
    """kernel-semantics 3.2 ``dma_fence_wait_timeout``: enable_sw_signaling, then ``ops->wait`` (whose
    result is returned as is) instead of the default wait."""

    def body() -> None:
        order: list[Any] = []

        def enable(f: DmaFence) -> bool:
            order.append("enable")
            return True

        def wait(f: DmaFence, intr: bool, timeout: int) -> int:
            order.append(("wait", intr, timeout))
            return -ETIME

        f = make_fence(_ops(enable_signaling=enable, wait=wait))
        assert dma_fence_wait_timeout(f, True, 7) == -ETIME
        assert order == ["enable", ("wait", True, 7)]
        assert dma_fence_wait(f, False) == -ETIME  # negative results pass through dma_fence_wait
        dma_fence_signal(f)
        dma_fence_put(f)

    run_on(body)


def test_wait_any_zero_timeout_polls_ops_signaled(run_on: Any) -> None:
    """kernel-semantics 3.2 ``dma_fence_wait_any_timeout``: with t == 0 returns 1 and the index of the first
    fence for which ``dma_fence_is_signaled`` (which polls ``ops.signaled``) is true."""

    def body() -> None:
        done = make_fence(_ops(signaled=lambda f: True))
        pending = make_fence()
        assert dma_fence_wait_any_timeout([pending, done], 2, False, 0) == (1, 1)
        assert done.flags & _SIGNALED  # the poll signaled it
        dma_fence_signal(pending)
        for x in (pending, done):
            dma_fence_put(x)

    run_on(body)


def test_wait_any_early_exit_removes_its_callbacks(run_on: Any) -> None:
    """kernel-semantics 3.2 ``dma_fence_wait_any_timeout``: a fence already signaled when its callback is
    added ends the wait at once with the full timeout and its index; the callbacks added before are removed."""

    def body() -> None:
        a, b, c = make_fence(), make_fence(), make_fence()
        dma_fence_signal(b)
        assert dma_fence_wait_any_timeout([a, b, c], 3, False, 9) == (9, 1)
        assert a.cb_list == [] and c.cb_list == []
        for x in (a, b, c):
            dma_fence_signal(x)
            dma_fence_put(x)

    run_on(body)


# ---------------------------------------------------------------------- dma_fence_array
def test_array_signal_on_any_takes_the_first_error(run_on: Any) -> None:
    """kernel-semantics 3.3: ``signal_on_any`` (num_pending 1) signals with the first member's error."""

    def body() -> None:
        fs = [make_fence() for _ in range(2)]
        arr = dma_fence_array_create(2, [dma_fence_get(f) for f in fs], dma_fence_context_alloc(1), 1, True)
        dma_fence_enable_sw_signaling(arr)
        dma_fence_set_error(fs[1], -EIO)
        dma_fence_signal(fs[1])
        assert dma_fence_wait(arr, False) == 0
        assert dma_fence_get_status(arr) == -EIO
        dma_fence_signal(fs[0])
        for f in fs:
            dma_fence_put(f)
        dma_fence_put(arr)

    run_on(body)


def test_array_all_members_already_signaled_at_enable(run_on: Any) -> None:
    """kernel-semantics 3.3 ``enable_signaling``: members already signaled are counted down with their
    error; reaching 0 signals the array at once (so add_callback returns -ENOENT), keeping a member error."""

    def body() -> None:
        a, b = make_fence(), make_fence()
        dma_fence_set_error(a, -EIO)
        dma_fence_signal(a)
        dma_fence_signal(b)
        arr = dma_fence_array_create(
            2, [dma_fence_get(a), dma_fence_get(b)], dma_fence_context_alloc(1), 1, False
        )
        log: list[Any] = []
        assert dma_fence_add_callback(arr, LogCb(log, 0), _log) == -ENOENT
        assert log == [] and arr.flags & _SIGNALED
        assert dma_fence_get_status(arr) == -EIO
        for f in (a, b, arr):
            dma_fence_put(f)

    run_on(body)


def test_array_partly_signaled_at_enable_waits_for_the_rest(run_on: Any) -> None:
    """kernel-semantics 3.3 ``enable_signaling``: a signaled member decrements num_pending; the array stays
    pending until the others signal, then signals with error 0."""

    def body() -> None:
        a, b = make_fence(), make_fence()
        dma_fence_signal(a)
        arr = dma_fence_array_create(
            2, [dma_fence_get(a), dma_fence_get(b)], dma_fence_context_alloc(1), 1, False
        )
        log: list[Any] = []
        assert dma_fence_add_callback(arr, LogCb(log, "arr"), _log) == 0
        assert arr.num_pending == 1  # type: ignore[attr-defined]
        assert not dma_fence_is_signaled(arr)
        dma_fence_signal(b)
        assert dma_fence_wait(arr, False) == 0
        assert log == [("arr", 0)]
        for f in (a, b, arr):
            dma_fence_put(f)

    run_on(body)


# ---------------------------------------------------------------------- dma_fence_chain
def test_chain_after_plain_fence_keeps_its_seqno(run_on: Any) -> None:
    """kernel-semantics 3.4 ``dma_fence_chain_init``: ``prev`` not a chain -> a new context and
    ``prev_seqno`` 0; the ``max(prev.seqno, seqno)`` clamp applies only after a chain node."""

    def body() -> None:
        plain = make_fence(seqno=10)
        f = make_fence()
        c = _chain(plain, f, 3)
        node = to_dma_fence_chain(c)
        assert node is not None
        assert c.seqno == 3 and node.prev_seqno == 0 and c.context != plain.context
        for x in (plain, f):
            dma_fence_signal(x)
        for x in (c, plain, f):
            dma_fence_put(x)

    run_on(body)


def test_chain_lower_seqno_after_chain_starts_new_context_at_max(run_on: Any) -> None:
    """kernel-semantics 3.4 ``dma_fence_chain_init``: a seqno not later than the previous chain node gets a
    new context, ``seqno = max(prev.seqno, seqno)`` and ``prev_seqno = 0``."""

    def body() -> None:
        f1, f2 = make_fence(), make_fence()
        c1 = _chain(None, f1, 5)
        c2 = _chain(c1, f2, 3)
        node = to_dma_fence_chain(c2)
        assert node is not None
        assert c2.context != c1.context and c2.seqno == 5 and node.prev_seqno == 0
        for x in (f1, f2):
            dma_fence_signal(x)
        for x in (c2, c1, f1, f2):
            dma_fence_put(x)

    run_on(body)


def test_chain_node_signals_only_after_every_earlier_fence(run_on: Any) -> None:
    """kernel-semantics 3.4: a node is signaled when its fence and every earlier contained fence signaled;
    its own fence signaling first is not enough."""

    def body() -> None:
        f1, f2 = make_fence(), make_fence()
        c1 = _chain(None, f1, 1)
        c2 = _chain(c1, f2, 2)
        dma_fence_signal(f2)
        assert not dma_fence_is_signaled(c2)
        log: list[Any] = []
        assert dma_fence_add_callback(c2, LogCb(log, "c2"), _log) == 0
        dma_fence_signal(f1)
        assert dma_fence_wait(c2, False) == 0
        assert log == [("c2", 0)]
        for x in (c2, c1, f1, f2):
            dma_fence_put(x)

    run_on(body)


# ---------------------------------------------------------------------- dedup
def test_dedup_keeps_latest_by_wrapping_seqno(run_on: Any) -> None:
    """kernel-semantics 3.5 ``dma_fence_dedup_array``: per context the latest fence by
    ``dma_fence_is_later`` (32-bit wrapping compare without use_64bit_seqno) is kept, the others put."""

    def body() -> None:
        ctx = dma_fence_context_alloc(1)
        old = make_fence(context=ctx, seqno=0xFFFFFFFF)
        new = make_fence(context=ctx, seqno=0x1_0000_0001)  # lower 32 bits: 1, after 0xffffffff
        arr = [dma_fence_get(old), dma_fence_get(new)]
        assert dma_fence_dedup_array(arr, 2) == 1
        assert arr[0] is new
        assert kref_read(old.refcount) == 1 and kref_read(new.refcount) == 2
        for x in (arr[0], old, new):
            dma_fence_put(x)

    run_on(body)


# ---------------------------------------------------------------------- more waits
def test_default_wait_order_signaled_then_signal_then_zero_timeout(run_on: Any) -> None:
    """kernel-semantics 3.2 ``dma_fence_default_wait``: a signaled fence returns ``t ?: 1`` even with a signal
    pending; else an interruptible wait with a signal pending returns -ERESTARTSYS, even for t == 0; only then
    does t == 0 return 0."""

    def body() -> None:
        f = make_fence()
        me = current()
        send_sig(9, me)
        assert dma_fence_wait_timeout(f, True, 0) == -ERESTARTSYS
        assert dma_fence_wait_timeout(f, False, 0) == 0  # not interruptible: the signal does not matter
        dma_fence_signal(f)
        assert dma_fence_wait_timeout(f, True, 0) == 1
        assert dma_fence_wait_timeout(f, True, 3) == 3
        me.sigpending = False
        dma_fence_put(f)

    run_on(body)


# ---------------------------------------------------------------------- container details
def test_array_and_chain_names_and_member_references(run_on: Any) -> None:
    """kernel-semantics 3.3/3.4: names "dma_fence_array"/"dma_fence_chain" with timeline "unbound"; an array
    owns the member references it was given and puts them when released."""

    def body() -> None:
        a, b = make_fence(), make_fence()
        arr = dma_fence_array_create(
            2, [dma_fence_get(a), dma_fence_get(b)], dma_fence_context_alloc(1), 1, False
        )
        assert (
            arr.ops is not None
            and arr.ops.get_driver_name is not None
            and arr.ops.get_timeline_name is not None
        )
        assert (arr.ops.get_driver_name(arr), arr.ops.get_timeline_name(arr)) == (
            "dma_fence_array",
            "unbound",
        )
        c = _chain(None, a, 1)
        assert c.ops is not None and c.ops.get_driver_name is not None and c.ops.get_timeline_name is not None
        assert (c.ops.get_driver_name(c), c.ops.get_timeline_name(c)) == ("dma_fence_chain", "unbound")
        assert kref_read(a.refcount) == 3 and kref_read(b.refcount) == 2
        dma_fence_put(arr)
        assert kref_read(a.refcount) == 2 and kref_read(b.refcount) == 1
        dma_fence_signal(a)
        dma_fence_signal(b)
        for x in (c, a, b):
            dma_fence_put(x)

    run_on(body)


def test_containers_forward_deadlines(run_on: Any) -> None:
    """kernel-semantics 3.3/3.4: ``set_deadline`` of an array forwards to all members, of a chain to the
    unsignaled contained fences."""

    def body() -> None:
        got: list[tuple[DmaFence, int]] = []
        ops = _ops(set_deadline=lambda f, d: got.append((f, d)))
        a, b = make_fence(ops), make_fence(ops)
        arr = dma_fence_array_create(
            2, [dma_fence_get(a), dma_fence_get(b)], dma_fence_context_alloc(1), 1, False
        )
        dma_fence_set_deadline(arr, 11)
        assert got == [(a, 11), (b, 11)]
        got.clear()
        c1 = _chain(None, a, 1)
        c2 = _chain(c1, b, 2)
        dma_fence_set_deadline(c2, 22)
        assert sorted(id(f) for f, _ in got) == sorted(id(f) for f in (a, b)) and {d for _, d in got} == {22}
        got.clear()
        dma_fence_signal(a)
        dma_fence_set_deadline(c2, 33)
        assert got == [(b, 33)]
        dma_fence_signal(b)
        for x in (arr, c2, c1, a, b):
            dma_fence_put(x)

    run_on(body)


def test_chain_compares_seqnos_on_64_bits(run_on: Any) -> None:
    """kernel-semantics 3.4: chain ops have ``use_64bit_seqno`` (v6.x), so 2**32 is later than 1 and the node
    joins the previous node's timeline (a wrapping 32-bit compare would say it is earlier)."""

    def body() -> None:
        f1, f2 = make_fence(), make_fence()
        c1 = _chain(None, f1, 1)
        c2 = _chain(c1, f2, 1 << 32)
        node = to_dma_fence_chain(c2)
        assert node is not None
        assert c2.context == c1.context and c2.seqno == 1 << 32 and node.prev_seqno == 1
        assert c2.ops is not None and c2.ops.use_64bit_seqno
        for x in (f1, f2):
            dma_fence_signal(x)
        for x in (c2, c1, f1, f2):
            dma_fence_put(x)

    run_on(body)


def test_merge_builds_signal_on_all_array_on_a_new_context(run_on: Any) -> None:
    """kernel-semantics 3.5 ``dma_fence_unwrap_merge``: with more than one unsignaled leaf left after dedup the
    result is ``dma_fence_array_create(count, ..., dma_fence_context_alloc(1), 1, false)``: a fresh context,
    seqno 1, signaled only once every leaf is; the inputs are not consumed."""

    def body() -> None:
        a, b = make_fence(), make_fence()
        m = dma_fence_unwrap_merge(a, b)
        assert m is not None and dma_fence_is_array(m)
        assert (
            m.seqno == 1 and m.context not in (a.context, b.context) and m.context > max(a.context, b.context)
        )
        assert kref_read(a.refcount) == 2 and kref_read(b.refcount) == 2
        dma_fence_enable_sw_signaling(m)
        dma_fence_signal(b)
        assert not dma_fence_is_signaled(m)
        dma_fence_signal(a)
        assert dma_fence_wait(m, False) == 0
        for x in (m, a, b):
            dma_fence_put(x)

    run_on(body)


def test_chain_walk_drops_a_signaled_plain_prev(run_on: Any) -> None:
    """kernel-semantics 3.4 ``dma_fence_chain_walk``/``for_each``: a plain (non-chain) ``prev`` is yielded
    while unsignaled; once signaled the walk replaces it by NULL (and puts it) and stops at the node."""

    def body() -> None:
        plain, f = make_fence(), make_fence()
        c = _chain(plain, f, 1)
        node = to_dma_fence_chain(c)
        assert node is not None
        assert list(dma_fence_chain_for_each(c)) == [c, plain]
        assert list(dma_fence_unwrap_for_each(DmaFenceUnwrap(), c)) == [f, plain]
        dma_fence_signal(plain)
        assert kref_read(plain.refcount) == 2
        assert list(dma_fence_chain_for_each(c)) == [c]
        assert node.prev is None and kref_read(plain.refcount) == 1
        dma_fence_signal(f)
        for x in (c, plain, f):
            dma_fence_put(x)

    run_on(body)


def test_merge_skips_null_inputs(run_on: Any) -> None:
    """kernel-semantics 3.5 ``dma_fence_unwrap_merge``: every input is unwrapped with
    ``dma_fence_unwrap_for_each``, which yields nothing for NULL, so a NULL input is simply skipped (drivers
    merge into a "last fence" pointer that starts NULL, e.g. ``merge(new, vm->last_fence)``); with nothing
    unsignaled left the result is a signaled private stub."""

    def body() -> None:
        f = make_fence()
        m = dma_fence_unwrap_merge(f, None)
        assert m is f and kref_read(f.refcount) == 2
        stub = dma_fence_unwrap_merge(None)
        assert stub is not None and dma_fence_is_signaled(stub) and dma_fence_timestamp(stub) == 0
        dma_fence_signal(f)
        for x in (m, stub, f):
            dma_fence_put(x)

    run_on(body)


def test_callbacks_run_after_timestamp_is_set(run_on: Any) -> None:
    """kernel-semantics 3.2 ``dma_fence_signal_timestamp_locked``: the SIGNALED bit, the timestamp and the
    TIMESTAMP bit are all set before the first callback runs, so a callback may read them."""

    def body() -> None:
        f = make_fence()
        seen: list[Any] = []

        def read(fence: DmaFence, cb: DmaFenceCb) -> None:
            seen.append((bool(fence.flags & _SIGNALED), dma_fence_timestamp(fence)))

        dma_fence_add_callback(f, DmaFenceCb(), read)
        assert dma_fence_signal_timestamp(f, 4321) == 0
        assert seen == [(True, 4321)]
        dma_fence_put(f)

    run_on(body)
