"""``dmabuf.sync.SpinLock`` and its kernel names (``spin_*``): atomic context, irqsave flags, the debug
WARNs in ``raise`` and ``log`` warn mode, and the wrappers' type checks, on both runtimes."""

from __future__ import annotations

import re

import pytest

import dmabuf
from dmabuf.errors import InvalidArgument, KernelWarning
from dmabuf.kernel import (
    DEFINE_SPINLOCK,
    TASK_RUNNING,
    TASK_UNINTERRUPTIBLE,
    current,
    in_atomic,
    might_sleep,
    msleep,
    schedule,
    set_current_state,
    set_warn_mode,
    spin_is_locked,
    spin_lock,
    spin_lock_bh,
    spin_lock_init,
    spin_lock_irq,
    spin_lock_irqsave,
    spin_trylock,
    spin_unlock,
    spin_unlock_bh,
    spin_unlock_irq,
    spin_unlock_irqrestore,
)
from dmabuf.runtime import READ, WRITE, rt
from dmabuf.sync import Mutex, SpinLock


def _depth() -> int:
    return current().atomic_depth


def _warns(body, *, match: str):
    """Run ``body`` in log warn mode on both runtimes: it runs to its end, and the logged warning is
    reported at the end (run_threads raises it, explore reports kind ``kernel-warning``)."""
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
    assert isinstance(f.exception, KernelWarning) and re.search(match, str(f.exception))
    assert "returned" in finished


# ---------------------------------------------------------------------------------------------- basics
def test_lock_unlock_atomic_context(run_on):
    def body():
        s = SpinLock("s")
        assert s.is_locked() is False and not in_atomic() and _depth() == 0
        s.lock()
        assert s.is_locked() is True and s.owner is current()
        assert s.held_by_current() is True
        assert in_atomic() and _depth() == 1
        assert s._dm_holders() == [current()]
        s.unlock()
        assert s.is_locked() is False and s.held_by_current() is False
        assert not in_atomic() and _depth() == 0

    run_on(body)


def test_context_manager(run_on):
    def body():
        s = SpinLock()
        with s as got:
            assert got is s and in_atomic()
        assert not in_atomic() and s.owner is None
        with pytest.raises(KeyError), s:
            raise KeyError("inside")
        assert s.owner is None and _depth() == 0

    run_on(body)


def test_nested_spinlocks_count_depth(run_on):
    def body():
        a, b = SpinLock("a"), SpinLock("b")
        with a:
            with b:
                assert _depth() == 2
            assert _depth() == 1
        assert _depth() == 0

    run_on(body)


def test_mutual_exclusion(run_on):
    def body():
        s = SpinLock("counter")
        box = {"n": 0}

        def inc() -> None:
            for _ in range(2):
                with s:
                    rt().point("read", box, READ)
                    v = box["n"]
                    rt().point("write", box, WRITE)
                    box["n"] = v + 1

        ts = [dmabuf.spawn(inc) for _ in range(3)]
        for t in ts:
            t.join()
        assert box["n"] == 6

    run_on(body)


def test_trylock(run_on):
    def body():
        s = SpinLock()
        assert s.trylock() is True and _depth() == 1
        assert s.trylock() is False and _depth() == 1

        def other() -> bool:
            got = s.trylock()
            return got

        assert dmabuf.spawn(other).join() is False
        s.unlock()
        assert _depth() == 0

        def other2() -> int:
            got = spin_trylock(s)
            if got:
                assert in_atomic()
                spin_unlock(s)
            return got

        assert dmabuf.spawn(other2).join() == 1

    run_on(body)


def test_repr():
    def body():
        s = SpinLock("repr_s")
        assert repr(s) == "<SpinLock repr_s owner=None>"
        with s:
            assert repr(s) == "<SpinLock repr_s owner=main>"

    dmabuf.run_threads(body)


# ---------------------------------------------------------------------------------------------- irq variants
def test_irqsave_flags_and_depth(run_on):
    def body():
        s = SpinLock("irq")
        flags = s.lock_irqsave()
        assert isinstance(flags, int)
        assert _depth() == 2  # the lock and irqs off
        s.unlock_irqrestore(flags)
        assert _depth() == 0 and s.owner is None
        f2 = spin_lock_irqsave(s)
        assert f2 != flags  # every save gives fresh flags
        spin_unlock_irqrestore(s, f2)
        assert _depth() == 0

    run_on(body)


def test_nested_irqsave_restored_in_order(run_on):
    def body():
        a, b = SpinLock("a"), SpinLock("b")
        fa = spin_lock_irqsave(a)
        fb = spin_lock_irqsave(b)
        assert _depth() == 4
        spin_unlock_irqrestore(b, fb)
        assert _depth() == 2
        spin_unlock_irqrestore(a, fa)
        assert _depth() == 0

    run_on(body)


def test_irqrestore_with_foreign_flags_warns(run_on):
    def body():
        s = SpinLock("irq")
        flags = spin_lock_irqsave(s)
        with pytest.raises(KernelWarning, match="flags") as ei:
            spin_unlock_irqrestore(s, flags + 100)
        assert ei.value.rule == "spinlock: irqrestore with foreign flags"
        spin_unlock_irqrestore(s, flags)  # still held: the right flags release it
        assert s.owner is None and _depth() == 0

    run_on(body)


def test_irqrestore_with_non_int_flags_warns(run_on):
    def body():
        s = SpinLock("irq")
        flags = spin_lock_irqsave(s)
        with pytest.raises(KernelWarning, match="flags"):
            spin_unlock_irqrestore(s, "flags")  # type: ignore[arg-type]
        spin_unlock_irqrestore(s, flags)

    run_on(body)


def test_swapped_irqsave_flags_of_two_locks_warn():
    def body():
        a, b = SpinLock("a"), SpinLock("b")
        fa = spin_lock_irqsave(a)
        fb = spin_lock_irqsave(b)
        assert fa != fb
        with pytest.raises(KernelWarning, match="flags"):
            spin_unlock_irqrestore(b, fa)
        # the failed restore changed nothing: the right flags still work
        spin_unlock_irqrestore(b, fb)
        spin_unlock_irqrestore(a, fa)
        assert _depth() == 0

    dmabuf.run_threads(body)


def test_log_mode_foreign_flags():
    def body():
        s = SpinLock("irq")
        flags = spin_lock_irqsave(s)
        spin_unlock_irqrestore(s, flags + 1)  # logged; released anyway
        assert s.owner is None and _depth() == 0

    _warns(body, match="did not return")


def test_lock_irq(run_on):
    def body():
        s = SpinLock()
        spin_lock_irq(s)
        assert _depth() == 2
        spin_unlock_irq(s)
        assert _depth() == 0

    run_on(body)


def test_lock_bh_is_a_plain_spinlock(run_on):
    def body():
        s = DEFINE_SPINLOCK("bh")
        spin_lock_bh(s)
        assert _depth() == 1 and spin_is_locked(s)
        spin_unlock_bh(s)
        assert _depth() == 0 and not spin_is_locked(s)

    run_on(body)


# ---------------------------------------------------------------------------------------------- misuse WARNs
def test_recursion_warns(run_on):
    def body():
        s = SpinLock("rec")
        s.lock()
        with pytest.raises(KernelWarning, match="spinlock recursion") as ei:
            s.lock()
        assert ei.value.rule == "spinlock: recursion"
        assert _depth() == 1
        s.unlock()

    run_on(body)


def test_unlock_of_unheld_lock_warns(run_on):
    def body():
        s = SpinLock("unheld")
        with pytest.raises(KernelWarning, match="already unlocked") as ei:
            s.unlock()
        assert ei.value.rule == "spinlock: unlock of a lock not held by the caller"
        assert _depth() == 0

    run_on(body)


def test_unlock_by_other_task_warns(run_on):
    def body():
        s = SpinLock("foreign")
        s.lock()

        def thief() -> str:
            try:
                s.unlock()
            except KernelWarning as e:
                return str(e)
            return "no warning"

        msg = dmabuf.spawn(thief, name="thief").join()
        assert "wrong owner ('main')" in msg and "'thief'" in msg
        assert s.owner is current()
        s.unlock()

    run_on(body)


def test_sleeping_while_holding_spinlock_warns(run_on):
    def body():
        s = SpinLock("spin")
        with s:
            with pytest.raises(KernelWarning, match="invalid context"):
                might_sleep()
            with pytest.raises(KernelWarning, match="invalid context"):
                msleep(1)
            with pytest.raises(KernelWarning, match="invalid context"):
                Mutex().lock()
            set_current_state(TASK_UNINTERRUPTIBLE)
            with pytest.raises(KernelWarning, match="scheduling while atomic"):
                schedule()
            set_current_state(TASK_RUNNING)  # the raised WARN left the state set above
        might_sleep()  # fine outside

    run_on(body)


def test_log_mode_unlock_unheld():
    def body():
        s = SpinLock("unheld")
        s.unlock()
        assert _depth() == 0

    _warns(body, match="already unlocked")


def test_log_mode_unlock_by_other_task():
    def body():
        s = SpinLock("foreign")
        s.lock()
        dmabuf.spawn(s.unlock, name="thief").join()
        assert s.owner is None  # released anyway after the spin_bug, as in the kernel
        assert _depth() == 1  # main took it: still non-preemptible until its own unlock
        s.unlock()  # already unlocked: spin_bug again, and main's record and preemption count go
        assert _depth() == 0 and s not in current().held

    _warns(body, match="wrong owner")


def test_log_mode_might_sleep_in_spinlock():
    def body():
        with SpinLock("spin"):
            might_sleep()

    _warns(body, match="sleeping function called from invalid context")


def test_log_mode_mutex_in_spinlock():
    def body():
        m = Mutex("mtx")
        with SpinLock("spin"):
            m.lock()
            m.unlock()

    _warns(body, match="invalid context")


def test_spinlock_held_at_end_is_a_leak():
    def body():
        spin_lock(DEFINE_SPINLOCK("forgotten"))

    with pytest.raises(dmabuf.LeakDetected, match="forgotten"):
        dmabuf.run_threads(body)
    f = dmabuf.explore(body, strategy="dfs").failure
    assert f is not None and f.kind == "leak" and "forgotten" in f.message


def test_spin_deadlock_found():
    def body():
        a, b = SpinLock("A"), SpinLock("B")

        def ab() -> None:
            with a, b:
                pass

        def ba() -> None:
            with b, a:
                pass

        t1, t2 = dmabuf.spawn(ab), dmabuf.spawn(ba)
        t1.join()
        t2.join()

    f = dmabuf.explore(body, strategy="dfs").failure
    assert f is not None and f.kind == "deadlock"


# ---------------------------------------------------------------------------------------------- kernel names
def test_kernel_names(run_on):
    def body():
        s = DEFINE_SPINLOCK("ks")
        assert isinstance(s, SpinLock)
        spin_lock_init(s)
        assert spin_is_locked(s) is False
        spin_lock(s)
        assert spin_is_locked(s) is True
        assert spin_trylock(s) == 0
        spin_unlock(s)
        assert spin_trylock(s) == 1
        spin_unlock(s)

    run_on(body)


@pytest.mark.parametrize(
    "fn",
    [
        spin_lock_init,
        spin_lock,
        spin_trylock,
        spin_unlock,
        spin_lock_irqsave,
        lambda x: spin_unlock_irqrestore(x, 0),
        spin_lock_irq,
        spin_unlock_irq,
        spin_lock_bh,
        spin_unlock_bh,
        spin_is_locked,
    ],
)
@pytest.mark.parametrize("bad", [None, 0, "lock", "mutex"])
def test_kernel_names_type_check(run_on, fn, bad):
    def body():
        arg = Mutex() if bad == "mutex" else bad
        with pytest.raises(InvalidArgument, match="needs a SpinLock") as ei:
            fn(arg)
        assert isinstance(ei.value, TypeError)
        assert _depth() == 0

    run_on(body)
