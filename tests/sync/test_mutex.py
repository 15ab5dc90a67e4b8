"""``dmabuf.sync.Mutex`` and its kernel names (``mutex_*``): every method on both runtimes, the debug WARNs
in ``raise`` and ``log`` warn mode, signals, and the wrappers' type checks."""

from __future__ import annotations

import re

import pytest

import dmabuf
from dmabuf.errors import InvalidArgument, KernelWarning
from dmabuf.kernel import (
    DEFINE_MUTEX,
    EINTR,
    config,
    current,
    flush_signals,
    lockdep_assert_held,
    mutex_destroy,
    mutex_init,
    mutex_is_locked,
    mutex_lock,
    mutex_lock_interruptible,
    mutex_lock_nested,
    mutex_trylock,
    mutex_unlock,
    send_sig,
    set_warn_mode,
    signal_pending,
    spin_lock,
    spin_unlock,
)
from dmabuf.runtime import READ, WRITE, rt
from dmabuf.sync import Mutex, SpinLock

SIGKILL = 9


def _warns(body, *, match: str):
    """Run ``body`` in log warn mode on both runtimes; it must run to its end, and the logged warning must
    be reported at the end (run_threads raises it; explore reports kind ``kernel-warning``)."""
    set_warn_mode("log")
    finished: list[str] = []

    def wrapped():
        body()
        finished.append("returned")

    with pytest.raises(KernelWarning, match=match):
        dmabuf.run_threads(wrapped, timeout=30)
    assert finished == ["returned"]
    finished.clear()
    res = dmabuf.explore(wrapped, strategy="dfs")
    f = res.failure
    assert f is not None and f.kind == "kernel-warning", f
    assert isinstance(f.exception, KernelWarning)
    assert re.search(match, str(f.exception))
    assert "returned" in finished
    return f


# ---------------------------------------------------------------------------------------------- basics
def test_lock_unlock_is_locked_owner(run_on):
    def body():
        m = Mutex("m")
        assert m.is_locked() is False and m.owner is None
        m.lock()
        assert m.is_locked() is True and m.owner is current()
        assert m._dm_holders() == [current()]
        assert m in current().held
        m.unlock()
        assert m.is_locked() is False and m.owner is None
        assert m._dm_holders() == []
        assert m not in current().held

    run_on(body)


def test_context_manager(run_on):
    def body():
        m = Mutex()
        with m as got:
            assert got is m
            assert m.owner is current()
        assert m.owner is None
        with pytest.raises(ValueError), m:
            raise ValueError("inside")
        assert m.owner is None  # released on the way out

    run_on(body)


def test_mutual_exclusion(run_on):
    def body():
        m = Mutex("counter")
        box = {"n": 0, "inside": 0}

        def inc() -> None:
            for _ in range(2):
                with m:
                    box["inside"] += 1
                    assert box["inside"] == 1
                    rt().point("read", box, READ)
                    v = box["n"]
                    rt().point("write", box, WRITE)
                    box["n"] = v + 1
                    box["inside"] -= 1

        ts = [dmabuf.spawn(inc) for _ in range(3)]
        for t in ts:
            t.join()
        assert box["n"] == 6

    run_on(body)


def test_blocked_locker_waits_until_unlock(run_on):
    def body():
        m = Mutex()
        log: list[str] = []
        m.lock()

        def other() -> None:
            m.lock()
            log.append("other locked")
            m.unlock()

        t = dmabuf.spawn(other)
        rt().point("work", None, WRITE)
        log.append("main unlocks")
        m.unlock()
        t.join()
        assert log == ["main unlocks", "other locked"]

    run_on(body)


def test_trylock(run_on):
    def body():
        m = Mutex()
        assert m.trylock() is True
        assert m.owner is current()
        assert m.trylock() is False  # already held (by us): no recursion WARN, just busy

        def other() -> bool:
            return m.trylock()

        assert dmabuf.spawn(other).join() is False
        m.unlock()

        def other2() -> bool:
            ok = m.trylock()
            if ok:
                m.unlock()
            return ok

        assert dmabuf.spawn(other2).join() is True

    run_on(body)


def test_trylock_contention_gives_both_outcomes():
    outcomes: list[bool] = []

    def body():
        m = Mutex()

        def holder() -> None:
            with m:
                rt().point("work", None, WRITE)

        t = dmabuf.spawn(holder)
        ok = m.trylock()
        outcomes.append(ok)
        if ok:
            m.unlock()
        t.join()

    res = dmabuf.explore(body, strategy="dfs")
    assert res.ok and res.complete
    assert set(outcomes) == {True, False}


def test_repr():
    def body():
        m = Mutex("repr_m")
        assert repr(m) == "<Mutex repr_m owner=None>"
        m.lock()
        assert repr(m) == "<Mutex repr_m owner=main>"
        m.unlock()

    dmabuf.run_threads(body)


def test_abba_deadlock_found():
    def body():
        a, b = Mutex("A"), Mutex("B")

        def ab() -> None:
            with a, b:
                pass

        def ba() -> None:
            with b, a:
                pass

        t1, t2 = dmabuf.spawn(ab, name="ab"), dmabuf.spawn(ba, name="ba")
        t1.join()
        t2.join()

    f = dmabuf.explore(body, strategy="dfs").failure
    assert f is not None and f.kind == "deadlock"
    assert "A" in f.message and "B" in f.message


def test_lock_order_inversion_without_deadlock_is_reported():
    """One task takes A then B, later B then A: no execution deadlocks, lockdep reports the order."""

    def body():
        a, b = Mutex("A"), Mutex("B")
        with a, b:
            pass
        with b, a:
            pass

    f = dmabuf.explore(body, strategy="dfs").failure
    assert f is not None and f.kind == "kernel-warning"
    assert "circular locking dependency" in f.message


# ---------------------------------------------------------------------------------------------- signals
def test_lock_interruptible_uncontended_returns_zero(run_on):
    def body():
        m = Mutex()
        assert m.lock_interruptible() == 0
        assert m.owner is current()
        m.unlock()
        assert mutex_lock_interruptible(m) == 0
        mutex_unlock(m)

    run_on(body)


def test_lock_interruptible_with_pending_signal_returns_eintr(run_on):
    def body():
        m = Mutex("contended")
        m.lock()

        def waiter() -> int:
            send_sig(SIGKILL, current())
            assert signal_pending(current())
            return mutex_lock_interruptible(m)

        assert dmabuf.spawn(waiter).join() == -EINTR
        assert m.owner is current()
        m.unlock()

    run_on(body)


def test_signal_while_waiting_interrupts_lock(run_on):
    def body():
        m = Mutex("contended")
        m.lock()

        def waiter() -> int:
            return m.lock_interruptible()

        w = dmabuf.spawn(waiter, name="waiter")
        send_sig(SIGKILL, w)
        assert w.join() == -EINTR
        assert m.owner is current() and m not in w.held
        m.unlock()

    run_on(body)


def test_signal_pending_but_mutex_free_acquires(run_on):
    """As in the kernel, the uncontended fast path takes the mutex even with a signal pending."""

    def body():
        m = Mutex()
        send_sig(SIGKILL, current())
        assert m.lock_interruptible() == 0
        m.unlock()
        flush_signals(current())
        assert not signal_pending(current())

    run_on(body)


def test_lock_interruptible_after_flush_signals_waits_normally(run_on):
    def body():
        m = Mutex()
        m.lock()

        def waiter() -> int:
            send_sig(SIGKILL, current())
            flush_signals(current())
            ret = m.lock_interruptible()
            if ret == 0:
                m.unlock()
            return ret

        w = dmabuf.spawn(waiter)
        rt().point("work", None, WRITE)
        m.unlock()
        assert w.join() == 0

    run_on(body)


# ---------------------------------------------------------------------------------------------- misuse WARNs
def test_unlock_of_unheld_mutex_warns(run_on):
    def body():
        m = Mutex("unheld")
        with pytest.raises(KernelWarning, match="held by nobody") as ei:
            m.unlock()
        assert ei.value.rule == "mutex: unlock of a mutex not held by the caller"
        assert m.owner is None

    run_on(body)


def test_unlock_of_foreign_mutex_warns_and_keeps_owner(run_on):
    def body():
        m = Mutex("foreign")
        m.lock()

        def thief() -> str:
            try:
                m.unlock()
            except KernelWarning as e:
                return str(e)
            return "no warning"

        msg = dmabuf.spawn(thief, name="thief").join()
        assert "by 'thief'" in msg and "held by 'main'" in msg
        assert m.owner is current()
        m.unlock()

    run_on(body)


def test_recursive_locking_warns(run_on):
    def body():
        m = Mutex("rec")
        m.lock()
        with pytest.raises(KernelWarning, match="recursive locking") as ei:
            m.lock()
        assert ei.value.rule == "mutex: recursive locking"
        with pytest.raises(KernelWarning, match="recursive locking"):
            m.lock_interruptible()
        assert m.owner is current()
        m.unlock()

    run_on(body)


def test_recursive_locking_without_prove_locking_is_a_self_deadlock(monkeypatch):
    monkeypatch.setattr(config, "CONFIG_PROVE_LOCKING", False)

    def body():
        m = Mutex("rec")
        m.lock()
        m.lock()

    f = dmabuf.explore(body, strategy="dfs").failure
    assert f is not None and f.kind == "deadlock" and "rec" in f.message
    with pytest.raises(dmabuf.DeadlockDetected):
        dmabuf.run_threads(body, timeout=30)


def test_mutex_lock_while_holding_spinlock_warns(run_on):
    def body():
        s, m = SpinLock("spin"), Mutex("mtx")
        spin_lock(s)
        with pytest.raises(KernelWarning, match="sleeping function called from invalid context") as ei:
            mutex_lock(m)
        assert ei.value.rule == "might_sleep: sleeping in atomic context"
        with pytest.raises(KernelWarning, match="invalid context"):
            m.lock_interruptible()
        assert m.owner is None
        # trylock does not sleep: allowed in atomic context
        assert mutex_trylock(m) == 1
        mutex_unlock(m)
        spin_unlock(s)
        mutex_lock(m)  # fine again
        mutex_unlock(m)

    run_on(body)


def test_log_mode_unlock_unheld():
    def body():
        m = Mutex("unheld")
        m.unlock()
        assert m.owner is None

    _warns(body, match="held by nobody")


def test_log_mode_foreign_unlock():
    """As __mutex_unlock_slowpath: WARN, then the mutex is released anyway (a waiter gets it); the owner's
    own unlock later WARNs again and drops its lockdep record."""
    got: list[str] = []

    def body():
        got.clear()
        m = Mutex("foreign")
        m.lock()
        waiter = dmabuf.spawn(lambda: (m.lock(), got.append("waiter locked"), m.unlock()), name="waiter")
        dmabuf.spawn(m.unlock, name="thief").join()
        waiter.join()  # it can only finish because the thief's unlock released the mutex
        assert got == ["waiter locked"] and m.owner is None
        m.unlock()  # held by nobody: WARN again
        assert m not in current().held

    _warns(body, match="by 'thief', but it is held by 'main'")


def test_log_mode_sleeping_while_holding_spinlock():
    def body():
        s, m = SpinLock("spin"), Mutex("mtx")
        with s:
            m.lock()  # logged; the lock is taken anyway
            assert m.owner is current()
            m.unlock()

    _warns(body, match="sleeping function called from invalid context")


def test_log_mode_recursive_locking_is_logged_then_self_deadlocks():
    set_warn_mode("log")

    def body():
        m = Mutex("rec")
        m.lock()
        m.lock()

    f = dmabuf.explore(body, strategy="dfs").failure
    assert f is not None and f.kind == "deadlock"
    assert any(ev.op == "WARN" and "recursive locking" in ev.note for ev in f.trace)


# ---------------------------------------------------------------------------------------------- kernel names
def test_kernel_names(run_on):
    def body():
        m = DEFINE_MUTEX("kmutex")
        assert isinstance(m, Mutex)
        mutex_init(m)
        assert mutex_is_locked(m) is False
        mutex_lock(m)
        assert mutex_is_locked(m) is True
        lockdep_assert_held(m)
        assert mutex_trylock(m) == 0
        mutex_unlock(m)
        assert mutex_trylock(m) == 1
        mutex_unlock(m)
        mutex_lock_nested(m, 1)
        mutex_unlock(m)
        mutex_destroy(m)

    run_on(body)


def test_mutex_destroy_of_locked_mutex_warns(run_on):
    def body():
        m = DEFINE_MUTEX("busy")
        mutex_lock(m)
        with pytest.raises(KernelWarning, match="mutex_destroy of locked mutex busy"):
            mutex_destroy(m)
        mutex_unlock(m)

    run_on(body)


def test_lockdep_assert_held_warns_when_not_held(run_on):
    def body():
        m = DEFINE_MUTEX("assert_me")
        with pytest.raises(KernelWarning, match="assert_me must be held"):
            lockdep_assert_held(m)
        with pytest.raises(InvalidArgument):
            lockdep_assert_held(None)

    run_on(body)


@pytest.mark.parametrize(
    "fn",
    [
        mutex_init,
        mutex_lock,
        mutex_unlock,
        mutex_trylock,
        mutex_is_locked,
        mutex_lock_interruptible,
        mutex_destroy,
        lambda x: mutex_lock_nested(x, 0),
    ],
)
@pytest.mark.parametrize("bad", [None, 1, "mutex", "spinlock"])
def test_kernel_names_type_check(run_on, fn, bad):
    def body():
        arg = SpinLock() if bad == "spinlock" else bad
        with pytest.raises(InvalidArgument, match="needs a Mutex") as ei:
            fn(arg)
        assert isinstance(ei.value, TypeError)

    run_on(body)
