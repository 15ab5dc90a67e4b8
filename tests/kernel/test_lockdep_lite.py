"""lockdep-lite end to end, through the kernel names.

A lock-order inversion is reported from executions that did *not* deadlock (tasks serialised by joins, or
no preemptions allowed), the class order graph carries over between the executions of one search, trylocks
add no order edges, the ww_mutex nesting rules hold, fence waits inside signalling sections and sleeping in
atomic context are caught, and ``dma_resv_assert_held`` fires without the lock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import dmabuf
import dmabuf.kernel as K
from dmabuf.kernel import config


def _explore_failure(body: Callable[[], Any], **kw: Any) -> dmabuf.Failure:
    res = dmabuf.explore(body, **kw)
    assert res.failure is not None, f"no finding in {res.executions} executions"
    return res.failure


def _explore_ok(body: Callable[[], Any], **kw: Any) -> dmabuf.ExploreResult:
    res = dmabuf.explore(body, **kw)
    assert res.failure is None, str(res.failure)
    return res


# --------------------------------------------------------------------------- ABBA without a deadlock


def _take(first: K.Mutex, second: K.Mutex) -> None:
    K.mutex_lock(first)
    K.mutex_lock(second)
    K.mutex_unlock(second)
    K.mutex_unlock(first)


def _abba_sequential() -> None:
    a = K.Mutex("lock_A")
    b = K.Mutex("lock_B")
    t1 = K.kthread_run(lambda _: _take(a, b), None, "ab")
    K.kthread_stop(t1)  # waits for it: the two orders never overlap, so no execution can deadlock
    t2 = K.kthread_run(lambda _: _take(b, a), None, "ba")
    K.kthread_stop(t2)


def _assert_abba_message(msg: str) -> None:
    assert "circular locking dependency" in msg
    assert "lock_A" in msg and "lock_B" in msg
    # both chains: the one being taken now and the earlier, opposite one
    assert "lock_B -> lock_A" in msg and "lock_A -> lock_B" in msg, msg


def test_abba_reported_from_sequential_tasks_explorer() -> None:
    f = _explore_failure(_abba_sequential)
    assert f.kind == "kernel-warning", f
    _assert_abba_message(f.message)


def test_abba_reported_from_sequential_tasks_threads() -> None:
    with pytest.raises(dmabuf.KernelWarning) as ei:
        dmabuf.run_threads(_abba_sequential, timeout=30)
    _assert_abba_message(str(ei.value))


def test_abba_reported_with_preemption_bound_zero() -> None:
    """Concurrent tasks, but with no preemptions the explorer never interleaves them into the deadlock:
    the inversion is still reported, as lockdep does on the first run."""

    def body() -> None:
        a = K.Mutex("lock_A")
        b = K.Mutex("lock_B")
        t1 = dmabuf.spawn(_take, a, b, name="ab")
        t2 = dmabuf.spawn(_take, b, a, name="ba")
        t1.join()
        t2.join()

    f = _explore_failure(body, preemption_bound=0)
    assert f.kind == "kernel-warning", f
    _assert_abba_message(f.message)


def test_abba_unbounded_prefers_the_real_deadlock() -> None:
    """With preemptions the explorer reaches the actual deadlock, which it prefers over the lockdep report."""

    def body() -> None:
        a = K.Mutex("lock_A")
        b = K.Mutex("lock_B")
        t1 = dmabuf.spawn(_take, a, b, name="ab")
        t2 = dmabuf.spawn(_take, b, a, name="ba")
        t1.join()
        t2.join()

    f = _explore_failure(body)
    assert f.kind == "deadlock", f


def test_order_graph_carries_over_between_executions() -> None:
    """One task, one order per execution (chosen by the search): no execution alone has both orders, the
    search as a whole does."""

    def body() -> None:
        a = K.Mutex("lock_A")
        b = K.Mutex("lock_B")
        if dmabuf.choose(2, "order") == 0:
            _take(a, b)
        else:
            _take(b, a)

    f = _explore_failure(body)
    assert f.kind == "kernel-warning", f
    _assert_abba_message(f.message)


def test_order_graph_is_per_search() -> None:
    """Two searches, each with one order: nothing to report (the graph does not leak between searches)."""

    def ab() -> None:
        _take(K.Mutex("lock_A"), K.Mutex("lock_B"))

    def ba() -> None:
        _take(K.Mutex("lock_B"), K.Mutex("lock_A"))

    _explore_ok(ab)
    _explore_ok(ba)


def test_class_is_the_init_site_without_a_name() -> None:
    """Unnamed locks are classed by init site, stable across executions: ABBA between two init sites."""

    def body() -> None:
        first = K.Mutex()  # class "Mutex@test_lockdep_lite.py:<this line>"
        second = K.Mutex()  # another init site, another class
        if dmabuf.choose(2) == 0:
            _take(first, second)
        else:
            _take(second, first)

    f = _explore_failure(body)
    assert f.kind == "kernel-warning", f
    assert "Mutex@test_lockdep_lite.py:" in f.message


def test_prove_locking_off_reports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "CONFIG_PROVE_LOCKING", False)
    _explore_ok(_abba_sequential)


# --------------------------------------------------------------------------- trylock adds no edges


def test_trylock_adds_no_order_edge() -> None:
    """A -> trylock(B) in one task and B -> A in another is not an inversion: the trylock cannot block."""

    def try_ab(a: K.Mutex, b: K.Mutex) -> None:
        K.mutex_lock(a)
        if K.mutex_trylock(b):
            K.mutex_unlock(b)
        K.mutex_unlock(a)

    def body() -> None:
        a = K.Mutex("lock_A")
        b = K.Mutex("lock_B")
        t1 = dmabuf.spawn(try_ab, a, b, name="a_try_b")
        t1.join()
        t2 = dmabuf.spawn(_take, b, a, name="ba")
        t2.join()

    _explore_ok(body)
    dmabuf.run_threads(body)


def test_locks_taken_under_a_trylocked_lock_do_add_edges() -> None:
    """trylock(B) then lock(A) records B -> A; a later A -> B is an inversion."""

    def try_b_then_a(a: K.Mutex, b: K.Mutex) -> None:
        assert K.mutex_trylock(b)
        K.mutex_lock(a)
        K.mutex_unlock(a)
        K.mutex_unlock(b)

    def body() -> None:
        a = K.Mutex("lock_A")
        b = K.Mutex("lock_B")
        dmabuf.spawn(try_b_then_a, a, b, name="tryb_a").join()
        dmabuf.spawn(_take, a, b, name="ab").join()

    f = _explore_failure(body)
    assert f.kind == "kernel-warning", f
    _assert_abba_message(f.message)


def test_spin_trylock_adds_no_edge() -> None:
    def body() -> None:
        s = K.SpinLock("spin_S")
        m = K.Mutex("mutex_M")
        K.mutex_lock(m)
        assert K.spin_trylock(s)
        K.spin_unlock(s)
        K.mutex_unlock(m)
        K.spin_lock(s)  # S -> nothing: taking M here would sleep in atomic, so only check no cycle so far
        K.spin_unlock(s)

    _explore_ok(body)


# --------------------------------------------------------------------------- ww_mutex nesting


def _ww_pair(cls: K.WWClass) -> tuple[K.WWMutex, K.WWMutex]:
    a, b = K.WWMutex(), K.WWMutex()
    K.ww_mutex_init(a, cls)
    K.ww_mutex_init(b, cls)
    return a, b


def test_ww_two_locks_of_a_class_under_one_ctx_is_fine(run_on: Any) -> None:
    cls = K.DEFINE_WW_CLASS("nest_ok")

    def body() -> None:
        a, b = _ww_pair(cls)
        ctx = K.WWAcquireCtx()
        K.ww_acquire_init(ctx, cls)
        assert K.ww_mutex_lock(a, ctx) == 0
        assert K.ww_mutex_lock(b, ctx) == 0
        K.ww_acquire_done(ctx)
        K.ww_mutex_unlock(b)
        K.ww_mutex_unlock(a)
        K.ww_acquire_fini(ctx)

    run_on(body)


def test_ww_two_locks_of_a_class_without_ctx_is_recursive_locking() -> None:
    cls = K.DEFINE_WW_CLASS("nest_noctx")

    def body() -> None:
        a, b = _ww_pair(cls)
        assert K.ww_mutex_lock(a, None) == 0
        K.ww_mutex_lock(b, None)

    f = _explore_failure(body)
    assert f.kind == "kernel-warning", f
    assert "recursive locking" in f.message
    with pytest.raises(dmabuf.KernelWarning, match="recursive locking"):
        dmabuf.run_threads(body)


def test_ww_second_ctx_while_holding_a_lock_of_the_class() -> None:
    """Nesting two acquire contexts of one class (or a ctx lock under a lock held by another ctx)."""
    cls = K.DEFINE_WW_CLASS("nest_twoctx")

    def body() -> None:
        a, b = _ww_pair(cls)
        c1, c2 = K.WWAcquireCtx(), K.WWAcquireCtx()
        K.ww_acquire_init(c1, cls)
        assert K.ww_mutex_lock(a, c1) == 0
        K.ww_acquire_init(c2, cls)
        K.ww_mutex_lock(b, c2)

    f = _explore_failure(body)
    assert f.kind == "kernel-warning", f


def test_ww_class_against_a_mutex_is_an_ordinary_order() -> None:
    """ww locks take part in the class order like any lock: resv -> M in one task, M -> resv in another."""

    def resv_then_m(r: K.DmaResv, m: K.Mutex) -> None:
        assert K.dma_resv_lock(r, None) == 0
        K.mutex_lock(m)
        K.mutex_unlock(m)
        K.dma_resv_unlock(r)

    def m_then_resv(r: K.DmaResv, m: K.Mutex) -> None:
        K.mutex_lock(m)
        assert K.dma_resv_lock(r, None) == 0
        K.dma_resv_unlock(r)
        K.mutex_unlock(m)

    def body() -> None:
        r = K.DmaResv()
        K.dma_resv_init(r)
        m = K.Mutex("driver_lock")
        dmabuf.spawn(resv_then_m, r, m).join()
        dmabuf.spawn(m_then_resv, r, m).join()
        K.dma_resv_fini(r)

    f = _explore_failure(body)
    assert f.kind == "kernel-warning", f
    assert "reservation_ww_class" in f.message and "driver_lock" in f.message


# --------------------------------------------------------------------------- fence signalling sections


def _fence() -> K.DmaFence:
    f = K.DmaFence()
    ops = K.DmaFenceOps(get_driver_name=lambda f: "lockdep", get_timeline_name=lambda f: "t")
    K.dma_fence_init(f, ops, K.SpinLock(), K.dma_fence_context_alloc(1), 1)
    return f


def test_wait_inside_signalling_section() -> None:
    def body() -> None:
        f = _fence()
        cookie = K.dma_fence_begin_signalling()
        try:
            K.dma_fence_wait_timeout(f, False, 0)
        finally:
            K.dma_fence_end_signalling(cookie)

    f = _explore_failure(body)
    assert f.kind == "kernel-warning", f
    assert "signalling" in f.message
    with pytest.raises(dmabuf.KernelWarning, match="signalling"):
        dmabuf.run_threads(body)


def test_wait_inside_signalling_section_log_mode_returns() -> None:
    K.set_warn_mode("log")
    got: list[int] = []

    def body() -> None:
        f = _fence()
        K.dma_fence_signal(f)
        cookie = K.dma_fence_begin_signalling()
        got.append(K.dma_fence_wait_timeout(f, False, 5))
        K.dma_fence_end_signalling(cookie)

    with pytest.raises(dmabuf.KernelWarning):
        dmabuf.run_threads(body)
    assert got == [5]


def test_lock_held_around_a_wait_and_taken_in_a_signalling_section() -> None:
    """The classic: a lock held while waiting for a fence, and taken by the code that signals fences."""

    def waiter(m: K.Mutex, f: K.DmaFence) -> None:
        K.mutex_lock(m)
        K.dma_fence_wait_timeout(f, False, 0)
        K.mutex_unlock(m)

    def signaller(m: K.Mutex, f: K.DmaFence) -> None:
        cookie = K.dma_fence_begin_signalling()
        K.mutex_lock(m)
        K.mutex_unlock(m)
        K.dma_fence_signal(f)
        K.dma_fence_end_signalling(cookie)

    def body() -> None:
        m = K.Mutex("driver_lock")
        f = _fence()
        dmabuf.spawn(waiter, m, f).join()
        dmabuf.spawn(signaller, m, f).join()

    f = _explore_failure(body)
    assert f.kind == "kernel-warning", f
    assert "driver_lock" in f.message and "dma_fence_map" in f.message, f.message


def _resv_in_signalling_section(trylock: bool) -> Callable[[], None]:
    def body() -> None:
        obj = K.DmaResv()
        K.dma_resv_init(obj)
        cookie = K.dma_fence_begin_signalling()
        if trylock:
            assert K.dma_resv_trylock(obj)
        else:
            K.dma_resv_lock(obj, None)
        K.dma_resv_unlock(obj)
        K.dma_fence_end_signalling(cookie)

    return body


def test_resv_lock_in_signalling_section_is_known_at_boot() -> None:
    """dma_resv_lockdep() teaches resv -> fence wait at boot: a resv lock inside a signalling section is a
    report although the program never waits for a fence under a resv."""
    f = _explore_failure(_resv_in_signalling_section(trylock=False), database=None)
    assert f.kind == "kernel-warning", f
    assert "takes reservation_ww_class while holding dma_fence_map" in f.message, f.message
    assert "dma_resv_lockdep at boot" in f.message, f.message
    with pytest.raises(dmabuf.KernelWarning, match="dma_resv_lockdep at boot"):
        dmabuf.run_threads(_resv_in_signalling_section(trylock=False))


def test_resv_trylock_in_signalling_section_is_fine(run_on: Any) -> None:
    """A trylock cannot block: no order edge, so no report (ww_mutex_trylock is a lockdep trylock)."""
    run_on(_resv_in_signalling_section(trylock=True))


def test_wait_under_resv_is_the_legal_order(run_on: Any) -> None:
    def body() -> None:
        obj = K.DmaResv()
        K.dma_resv_init(obj)
        f = _fence()
        K.dma_resv_lock(obj, None)
        K.dma_fence_wait_timeout(f, False, 0)
        K.dma_resv_unlock(obj)

    run_on(body)


def test_signalling_section_nests_and_atomic_is_exempt(run_on: Any) -> None:
    def body() -> None:
        outer = K.dma_fence_begin_signalling()
        inner = K.dma_fence_begin_signalling()
        assert inner is True and outer is False
        K.dma_fence_end_signalling(inner)
        K.dma_fence_end_signalling(outer)
        s = K.SpinLock()
        K.spin_lock(s)
        assert K.dma_fence_begin_signalling() is True
        K.spin_unlock(s)

    run_on(body)


# --------------------------------------------------------------------------- atomic context


#: calls that may sleep, for the might_sleep checks below
SLEEPERS = pytest.mark.parametrize(
    "sleeper",
    [
        lambda: K.mutex_lock(K.Mutex("m")),
        lambda: K.msleep(1),
        lambda: K.might_sleep(),
        lambda: K.dma_fence_wait(_fence(), False),
    ],
    ids=["mutex_lock", "msleep", "might_sleep", "dma_fence_wait"],
)


@SLEEPERS
def test_sleeping_in_atomic_context(sleeper: Callable[[], Any]) -> None:
    def body() -> None:
        s = K.SpinLock("spin_S")
        K.spin_lock(s)
        sleeper()

    f = _explore_failure(body)
    assert f.kind == "kernel-warning", f
    assert "sleeping function called from invalid context" in f.message
    with pytest.raises(dmabuf.KernelWarning, match="invalid context"):
        dmabuf.run_threads(body)


@SLEEPERS
def test_blocking_op_when_not_task_running(sleeper: Callable[[], Any]) -> None:
    """__might_sleep: a blocking call between set_current_state() and schedule() would reset the state
    the caller's own wait loop set (the classic lost wake-up in a hand-written wait loop)."""

    def body() -> None:
        K.set_current_state(K.TASK_INTERRUPTIBLE)
        sleeper()

    f = _explore_failure(body, database=None)
    assert f.kind == "kernel-warning", f
    assert "do not call blocking ops when !TASK_RUNNING" in f.message, f.message
    with pytest.raises(dmabuf.KernelWarning, match="TASK_RUNNING"):
        dmabuf.run_threads(body)


def test_blocking_op_after_the_state_is_running_again(run_on: Any) -> None:
    def body() -> None:
        K.set_current_state(K.TASK_UNINTERRUPTIBLE)
        K.set_current_state(K.TASK_RUNNING)  # __set_current_state(TASK_RUNNING) before leaving the loop
        m = K.Mutex("m")
        K.mutex_lock(m)
        K.mutex_unlock(m)

    run_on(body)


def test_sleeping_under_irqsave_and_rcu() -> None:
    def irqsave() -> None:
        s = K.SpinLock()
        K.spin_lock_irqsave(s)
        K.msleep(1)

    def rcu() -> None:
        K.rcu_read_lock()
        K.msleep(1)

    for body in (irqsave, rcu):
        f = _explore_failure(body)
        assert f.kind == "kernel-warning", f
        assert "invalid context" in f.message


# --------------------------------------------------------------------------- assert_held


def test_dma_resv_assert_held_without_the_lock() -> None:
    def body() -> None:
        r = K.DmaResv()
        K.dma_resv_init(r)
        K.dma_resv_assert_held(r)

    f = _explore_failure(body)
    assert f.kind == "kernel-warning", f
    assert "lockdep_assert_held" in f.message or "must be held" in f.message
    with pytest.raises(dmabuf.KernelWarning):
        dmabuf.run_threads(body)


def test_dma_resv_assert_held_by_another_task() -> None:
    def body() -> None:
        r = K.DmaResv()
        K.dma_resv_init(r)
        assert K.dma_resv_lock(r, None) == 0
        dmabuf.spawn(K.dma_resv_assert_held, r, name="other").join()
        K.dma_resv_unlock(r)

    f = _explore_failure(body)
    assert f.kind == "kernel-warning", f


def test_dma_resv_assert_held_with_the_lock(run_on: Any) -> None:
    def body() -> None:
        r = K.DmaResv()
        K.dma_resv_init(r)
        assert K.dma_resv_lock(r, None) == 0
        K.dma_resv_assert_held(r)
        K.dma_resv_unlock(r)
        ctx = K.WWAcquireCtx()
        K.ww_acquire_init(ctx, K.reservation_ww_class)
        assert K.dma_resv_lock(r, ctx) == 0
        K.dma_resv_assert_held(r)
        K.dma_resv_unlock(r)
        K.ww_acquire_fini(ctx)
        K.dma_resv_fini(r)

    run_on(body)


def test_lockdep_assert_held_on_a_mutex() -> None:
    def body() -> None:
        m = K.Mutex("m")
        K.mutex_lock(m)
        K.lockdep_assert_held(m)
        K.mutex_unlock(m)
        K.lockdep_assert_held(m)

    f = _explore_failure(body)
    assert f.kind == "kernel-warning", f
