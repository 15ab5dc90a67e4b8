"""ww_mutex: return codes, debug WARNs, lockdep nesting, Wait-Die and Wound-Wait, and the explorer finding
programs that do not back off.

Behaviour tests run through ``run_on`` (real threads, then every interleaving under the explorer).
"""

from __future__ import annotations

from typing import Any

import pytest

import dmabuf
from dmabuf import lockdep
from dmabuf.errors import Deadlk, InvalidArgument, KernelWarning
from dmabuf.kernel import (
    DEFINE_WD_CLASS,
    DEFINE_WW_CLASS,
    Completion,
    WWAcquireCtx,
    WWClass,
    WWMutex,
    complete,
    config,
    init_completion,
    send_sig,
    set_warn_mode,
    wait_for_completion,
    ww_acquire_done,
    ww_acquire_fini,
    ww_acquire_init,
    ww_mutex_destroy,
    ww_mutex_init,
    ww_mutex_is_locked,
    ww_mutex_lock,
    ww_mutex_lock_interruptible,
    ww_mutex_lock_slow,
    ww_mutex_lock_slow_interruptible,
    ww_mutex_trylock,
    ww_mutex_unlock,
)
from dmabuf.kernel.errno import EALREADY, EDEADLK, EINTR
from dmabuf.runtime import current_task

BOTH = pytest.mark.parametrize("wait_die", [False, True], ids=["wound-wait", "wait-die"])


def _cls(wait_die: bool) -> WWClass:
    return DEFINE_WD_CLASS("wd_test") if wait_die else DEFINE_WW_CLASS("ww_test")


def _warns(rule: str, fn: Any, *args: Any) -> None:
    with pytest.raises(KernelWarning) as ei:
        fn(*args)
    assert ei.value.rule == rule, ei.value


def _completion() -> Completion:
    c = Completion()
    init_completion(c)
    return c


# ---------------------------------------------------------------------------------------------- classes
def test_define_classes() -> None:
    assert not DEFINE_WW_CLASS("a").is_wait_die
    assert DEFINE_WD_CLASS("b").is_wait_die
    assert WWClass("c", wait_die=True).is_wait_die
    with pytest.raises(InvalidArgument):
        WWClass("")


def test_stamps_restart_in_every_execution(run_on: Any) -> None:
    cls = DEFINE_WW_CLASS("stamps")  # created once, like a module-level class

    def body() -> None:
        b = WWAcquireCtx()

        def other() -> None:
            ww_acquire_init(b, cls)
            ww_acquire_fini(b)

        t = dmabuf.spawn(other)
        a = WWAcquireCtx(cls)  # races with `other` for stamp 1
        t.join()
        assert {a.stamp, b.stamp} == {1, 2}
        assert cls.stamp == 2
        a.fini()

    res = run_on(body)
    if res is not None:
        assert res.executions >= 2


def test_acquire_init_fields(run_on: Any) -> None:
    cls = DEFINE_WD_CLASS("fields")

    def body() -> None:
        ctx = WWAcquireCtx()
        ww_acquire_init(ctx, cls)
        assert ctx.stamp == 1 and ctx.acquired == 0 and not ctx.wounded
        assert ctx.is_wait_die and ctx.ww_class is cls and not ctx.done_acquire
        assert ctx.contending_lock is None and ctx.task is current_task()
        assert (ctx.deadlock_inject_interval, ctx.deadlock_inject_countdown) == (1, 1)
        assert lockdep.class_of(ctx) == "fields_acquire"
        ww_acquire_done(ctx)
        assert ctx.done_acquire
        ww_acquire_fini(ctx)

    run_on(body)


# ---------------------------------------------------------------------------------------------- return codes
@BOTH
def test_lock_unlock_and_ealready(run_on: Any, wait_die: bool) -> None:
    cls = _cls(wait_die)

    def body() -> None:
        m = WWMutex()
        ww_mutex_init(m, cls)
        assert lockdep.class_of(m) == cls.name
        ctx = WWAcquireCtx(cls)
        assert not ww_mutex_is_locked(m)
        assert ww_mutex_lock(m, ctx) == 0
        assert m.ctx is ctx and ctx.acquired == 1 and ww_mutex_is_locked(m)
        assert lockdep.is_held(m)
        assert ww_mutex_lock(m, ctx) == -EALREADY
        assert ww_mutex_lock_interruptible(m, ctx) == -EALREADY
        assert ctx.acquired == 1
        ww_mutex_unlock(m)
        assert m.ctx is None and ctx.acquired == 0 and not ww_mutex_is_locked(m)
        assert ww_mutex_lock_interruptible(m, ctx) == 0
        ww_mutex_unlock(m)
        ww_acquire_fini(ctx)
        assert ww_mutex_lock(m, None) == 0  # a plain mutex
        assert m.ctx is None and m.owner is current_task()
        ww_mutex_unlock(m)
        ww_mutex_destroy(m)

    run_on(body)


def test_trylock(run_on: Any) -> None:
    cls = DEFINE_WW_CLASS("try")

    def body() -> None:
        m = WWMutex(cls)
        ctx = WWAcquireCtx(cls)
        assert ww_mutex_trylock(m, ctx) == 1
        assert m.ctx is ctx and ctx.acquired == 1
        assert ww_mutex_trylock(m, ctx) == 0  # never -EALREADY
        assert ww_mutex_trylock(m, None) == 0
        ww_mutex_unlock(m)
        ww_acquire_fini(ctx)
        assert ww_mutex_trylock(m, None) == 1
        assert m.ctx is None
        ww_mutex_unlock(m)

    run_on(body)


def test_wounded_is_reset_when_nothing_held(run_on: Any) -> None:
    cls = DEFINE_WW_CLASS("reset")

    def body() -> None:
        a, b = WWMutex(cls), WWMutex(cls)
        ctx = WWAcquireCtx(cls)
        ctx.wounded = True
        assert ww_mutex_lock(a, ctx) == 0
        assert not ctx.wounded
        ctx.wounded = True
        assert ww_mutex_lock(b, ctx) == 0  # uncontended: a wounded context still gets free locks
        assert ctx.wounded
        ww_mutex_unlock(b)
        ww_mutex_unlock(a)
        ctx.wounded = True
        assert ww_mutex_trylock(a, ctx) == 1
        assert not ctx.wounded
        ww_mutex_unlock(a)
        ww_acquire_fini(ctx)

    run_on(body)


def test_type_checks() -> None:
    def body() -> None:
        cls = DEFINE_WW_CLASS("types")
        m = WWMutex(cls)
        ctx = WWAcquireCtx(cls)
        for call in (
            lambda: ww_mutex_lock(None, ctx),  # type: ignore[arg-type]
            lambda: ww_mutex_lock(m, "ctx"),  # type: ignore[arg-type]
            lambda: ww_mutex_lock(WWMutex(), ctx),
            lambda: ww_mutex_lock(m, WWAcquireCtx()),
            lambda: ww_mutex_trylock(object(), None),  # type: ignore[arg-type]
            lambda: ww_mutex_unlock(None),  # type: ignore[arg-type]
            lambda: ww_mutex_is_locked(3),  # type: ignore[arg-type]
            lambda: ww_mutex_init(m, None),  # type: ignore[arg-type]
            lambda: ww_acquire_init(ctx, "cls"),  # type: ignore[arg-type]
            lambda: ww_acquire_init(None, cls),  # type: ignore[arg-type]
            lambda: ww_acquire_done(None),  # type: ignore[arg-type]
            lambda: ww_acquire_fini(WWAcquireCtx()),
            lambda: ww_mutex_lock_slow(m, None),  # type: ignore[arg-type]
            lambda: ww_mutex_lock_slow_interruptible(m, None),  # type: ignore[arg-type]
            lambda: ww_mutex_destroy(None),  # type: ignore[arg-type]
        ):
            with pytest.raises(InvalidArgument):
                call()
        ww_acquire_fini(ctx)

    dmabuf.run_threads(body, timeout=10)


# ---------------------------------------------------------------------------------------------- debug WARNs
def test_warn_fini_with_locks_held_and_double_fini(run_on: Any) -> None:
    cls = DEFINE_WW_CLASS("fini")

    def body() -> None:
        m = WWMutex(cls)
        ctx = WWAcquireCtx(cls)
        ww_mutex_lock(m, ctx)
        _warns("ww_mutex: fini with locks held", ww_acquire_fini, ctx)
        ww_mutex_unlock(m)
        ctx2 = WWAcquireCtx(cls)
        ww_acquire_fini(ctx2)
        _warns("ww_mutex: double fini", ww_acquire_fini, ctx2)

    run_on(body)


def test_warn_lock_after_done_and_double_done(run_on: Any) -> None:
    cls = DEFINE_WW_CLASS("done")

    def body() -> None:
        a, b = WWMutex(cls), WWMutex(cls)
        ctx = WWAcquireCtx(cls)
        ww_mutex_lock(a, ctx)
        ww_acquire_done(ctx)
        _warns("ww_mutex: lock after acquire_done", ww_mutex_lock, b, ctx)
        _warns("ww_mutex: lock after acquire_done", ww_mutex_trylock, b, ctx)
        assert not ww_mutex_is_locked(b)
        assert ww_mutex_lock(a, ctx) == -EALREADY  # no acquisition, no WARN
        _warns("ww_mutex: double acquire_done", ww_acquire_done, ctx)
        ww_mutex_unlock(a)
        ww_acquire_fini(ctx)
        _warns("ww_mutex: lock after acquire_done", ww_mutex_lock, b, ctx)  # after fini as well

    run_on(body)


def test_warn_context_of_another_class(run_on: Any) -> None:
    c1, c2 = DEFINE_WW_CLASS("one"), DEFINE_WW_CLASS("two")

    def body() -> None:
        m = WWMutex(c2)
        ctx = WWAcquireCtx(c1)
        _warns("ww_mutex: context of another class", ww_mutex_lock, m, ctx)
        assert not ww_mutex_is_locked(m) and ctx.acquired == 0
        ww_acquire_fini(ctx)

    run_on(body)


def test_warn_unlock_not_held_and_destroy_locked(run_on: Any) -> None:
    cls = DEFINE_WW_CLASS("unheld")

    def body() -> None:
        m = WWMutex(cls)
        _warns("mutex: unlock of a mutex not held by the caller", ww_mutex_unlock, m)
        ww_mutex_lock(m, None)

        def other() -> None:
            _warns("mutex: unlock of a mutex not held by the caller", ww_mutex_unlock, m)

        t = dmabuf.spawn(other)
        t.join()
        assert m.owner is current_task()
        _warns("mutex: destroy while locked", ww_mutex_destroy, m)
        ww_mutex_unlock(m)
        ww_mutex_destroy(m)

    run_on(body)


def test_warn_log_mode_returns_and_reports() -> None:
    cls = DEFINE_WW_CLASS("logmode")

    def body() -> None:
        set_warn_mode("log")
        m = WWMutex(cls)
        ww_mutex_unlock(m)  # WARNs, then returns like the kernel
        assert m.owner is None

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "kernel-warning"
    assert "ww_mutex_unlock" in res.failure.message


def test_log_mode_foreign_unlock_releases_and_drops_the_ctx_count() -> None:
    """Log mode: __ww_mutex_unlock and the mutex release run after the WARN, as in the kernel."""
    cls = DEFINE_WW_CLASS("logforeign")
    seen: list[tuple[bool, int, bool]] = []

    def body() -> None:
        seen.clear()
        set_warn_mode("log")
        m = WWMutex(cls)
        ctx = WWAcquireCtx(cls)
        assert ww_mutex_lock(m, ctx) == 0 and ctx.acquired == 1
        dmabuf.spawn(ww_mutex_unlock, m, name="thief").join()
        seen.append((ww_mutex_is_locked(m), ctx.acquired, m.ctx is None))
        ww_mutex_unlock(m)  # the owner's own unlock WARNs again (nobody holds it) and drops its record
        assert m not in current_task().held
        ww_acquire_fini(ctx)

    res = dmabuf.explore(body, strategy="dfs", database=None)
    assert res.failure is not None and res.failure.kind == "kernel-warning", res.failure
    assert "by 'thief'" in res.failure.message
    assert seen == [(False, 0, True)]


def test_warn_lock_slow_without_edeadlk(run_on: Any) -> None:
    cls = DEFINE_WW_CLASS("slow")

    def body() -> None:
        m = WWMutex(cls)
        ctx = WWAcquireCtx(cls)
        _warns("ww_mutex: lock_slow without -EDEADLK", ww_mutex_lock_slow, m, ctx)
        _warns("ww_mutex: lock_slow without -EDEADLK", ww_mutex_lock_slow_interruptible, m, ctx)
        _warns("ww_mutex: lock_slow without -EDEADLK", m.lock_slow, ctx)
        assert not ww_mutex_is_locked(m)
        ww_acquire_fini(ctx)

    run_on(body)


def test_warn_nesting_without_one_context(run_on: Any) -> None:
    cls = DEFINE_WW_CLASS("nest")
    other_cls = DEFINE_WW_CLASS("nest_other")

    def body() -> None:
        a, b, c = WWMutex(cls), WWMutex(cls), WWMutex(other_cls)
        ctx = WWAcquireCtx(cls)
        ww_mutex_lock(a, ctx)
        _warns("ww_mutex: nesting without one acquire context", ww_mutex_lock, b, None)
        _warns("ww_mutex: nested acquire contexts", ww_acquire_init, WWAcquireCtx(), cls)
        assert ww_mutex_trylock(b, None) == 1  # trylock cannot deadlock: lockdep does not object
        ww_mutex_unlock(b)
        assert ww_mutex_lock(c, None) == 0  # another ww class: fine
        ww_mutex_unlock(c)
        ww_mutex_unlock(a)
        ww_acquire_fini(ctx)

    run_on(body)


def test_warn_second_context_in_one_task(run_on: Any) -> None:
    cls = DEFINE_WW_CLASS("twoctx")

    def body() -> None:
        ctx = WWAcquireCtx(cls)
        _warns("ww_mutex: nested acquire contexts", WWAcquireCtx, cls)
        ww_acquire_fini(ctx)
        ctx2 = WWAcquireCtx(cls)  # after fini a new transaction is fine
        ww_acquire_fini(ctx2)

    run_on(body)


def test_lockdep_leak_when_task_exits_holding_ctx() -> None:
    cls = DEFINE_WW_CLASS("leaky")

    def body() -> None:
        m = WWMutex(cls)
        ctx = WWAcquireCtx(cls)
        ww_mutex_lock(m, ctx)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "leak"


# ---------------------------------------------------------------------------------------------- slowpath injection
def test_slowpath_injection_and_edeadlk_warns(run_on: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "CONFIG_DEBUG_WW_MUTEX_SLOWPATH", True)
    cls = DEFINE_WW_CLASS("inject")

    def body() -> None:
        locks = [WWMutex(cls, name=f"L{i}") for i in range(5)]
        l0, l1, l2, l3, l4 = locks
        ctx = WWAcquireCtx(cls)
        assert ctx.stamp == 1 and ctx.deadlock_inject_countdown == 1
        assert ww_mutex_lock(l0, ctx) == 0  # acquired 1: never injected
        assert ww_mutex_lock(l1, ctx) == 0  # countdown 1 -> 0
        assert ww_mutex_lock(l2, ctx) == -EDEADLK  # countdown hit 0: fake contention
        assert ctx.contending_lock is l2 and not ww_mutex_is_locked(l2) and ctx.acquired == 2
        assert (ctx.deadlock_inject_interval, ctx.deadlock_inject_countdown) == (3, 3)
        # after -EDEADLK: lock_slow with other locks still held
        _warns("ww_mutex: locks held after -EDEADLK", ww_mutex_lock_slow, l2, ctx)
        ww_mutex_unlock(l1)
        ww_mutex_unlock(l0)
        # ... or another lock than the contended one
        _warns("ww_mutex: wrong lock after -EDEADLK", ww_mutex_lock, l3, ctx)
        ww_mutex_lock_slow(l2, ctx)  # the right way
        assert ctx.contending_lock is None and ctx.acquired == 1
        for m in (l0, l1, l3):
            assert ww_mutex_lock(m, ctx) == 0
        assert ww_mutex_lock(l4, ctx) == -EDEADLK  # countdown 3 -> 0 after three more locks
        assert ctx.deadlock_inject_interval == 10  # 3*2 + 3 + 3//2
        ctx.unlock_all()
        ww_acquire_fini(ctx)

    run_on(body)


def test_slowpath_back_off_loop_completes(run_on: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "CONFIG_DEBUG_WW_MUTEX_SLOWPATH", True)
    cls = DEFINE_WD_CLASS("inject_loop")

    def body() -> None:
        locks = [WWMutex(cls) for _ in range(8)]
        with WWAcquireCtx(cls) as ctx:
            ctx.lock_all(locks)
            assert ctx.acquired == 8
            ctx.unlock_all()

    run_on(body)


# ---------------------------------------------------------------------------------------------- interruptible
def test_interruptible_returns_eintr(run_on: Any) -> None:
    cls = DEFINE_WW_CLASS("intr")

    def body() -> None:
        m = WWMutex(cls)
        ww_mutex_lock(m, None)

        def waiter() -> int:
            ctx = WWAcquireCtx(cls)
            ret = ww_mutex_lock_interruptible(m, ctx)
            ww_acquire_fini(ctx)
            return ret

        t = dmabuf.spawn(waiter)
        send_sig(9, t)
        assert t.join() == -EINTR
        ww_mutex_unlock(m)

    run_on(body)


def test_signal_pending_but_lock_free_acquires(run_on: Any) -> None:
    cls = DEFINE_WW_CLASS("intr_free")

    def body() -> None:
        m = WWMutex(cls)
        me = current_task()
        send_sig(9, me)
        ctx = WWAcquireCtx(cls)
        assert ww_mutex_lock_interruptible(m, ctx) == 0
        ww_mutex_unlock(m)
        ww_acquire_fini(ctx)
        me.sigpending = False

    run_on(body)


def test_pythonic_interruptible_raises(run_on: Any) -> None:
    cls = DEFINE_WW_CLASS("intr_py")

    def body() -> None:
        m = WWMutex(cls)
        m.lock()

        def waiter() -> str:
            with WWAcquireCtx(cls) as ctx:
                try:
                    m.lock_interruptible(ctx)
                except InterruptedError:
                    return "eintr"
            return "locked"

        t = dmabuf.spawn(waiter)
        send_sig(9, t)
        assert t.join() == "eintr"
        m.unlock()

    run_on(body)


# ---------------------------------------------------------------------------------------------- the algorithms
@BOTH
def test_younger_backs_off_older_waits(run_on: Any, wait_die: bool) -> None:
    """ABBA with a fixed age order: the younger context gets -EDEADLK in every interleaving.

    Wait-Die: it dies as soon as it must wait for the older holder. Wound-Wait: the older one, blocking on
    the younger's lock, wounds it; the younger dies at its next contended lock (before or after the wound
    reaches it while it sleeps).
    """
    cls = _cls(wait_die)

    def body() -> None:
        a, b = WWMutex(cls, name="A"), WWMutex(cls, name="B")
        a_locked, go = _completion(), _completion()
        ctx = WWAcquireCtx(cls)  # older: stamp 1
        assert ww_mutex_lock(b, ctx) == 0

        def younger() -> int:
            yctx = WWAcquireCtx(cls)  # stamp 2
            assert ww_mutex_lock(a, yctx) == 0
            complete(a_locked)
            wait_for_completion(go)
            err = ww_mutex_lock(b, yctx)
            if err == -EDEADLK:
                assert yctx.contending_lock is b
                ww_mutex_unlock(a)
                ww_mutex_lock_slow(b, yctx)
                assert ww_mutex_lock(a, yctx) == 0
                ww_mutex_unlock(a)
            ww_mutex_unlock(b)
            ww_acquire_fini(yctx)
            return err

        t = dmabuf.spawn(younger)
        wait_for_completion(a_locked)
        complete(go)
        assert ww_mutex_lock(a, ctx) == 0  # the older never backs off
        ww_mutex_unlock(a)
        ww_mutex_unlock(b)
        ww_acquire_fini(ctx)
        assert t.join() == -EDEADLK

    run_on(body)


def test_wound_wait_younger_with_locks_waits_for_older() -> None:
    """Wound-Wait: a younger context blocked on an older holder just waits (it is never wounded by it)."""
    cls = DEFINE_WW_CLASS("ww_wait")

    def body() -> None:
        a, b = WWMutex(cls), WWMutex(cls)
        ctx = WWAcquireCtx(cls)
        ww_mutex_lock(a, ctx)

        def younger() -> int:
            yctx = WWAcquireCtx(cls)
            ww_mutex_lock(b, yctx)
            ret = ww_mutex_lock(a, yctx)
            assert not yctx.wounded
            if ret == 0:
                ww_mutex_unlock(a)
            ww_mutex_unlock(b)
            ww_acquire_fini(yctx)
            return ret

        t = dmabuf.spawn(younger)
        ww_mutex_unlock(a)
        ww_acquire_fini(ctx)
        assert t.join() == 0

    for run in (lambda: dmabuf.run_threads(body, timeout=10), lambda: dmabuf.explore(body, strategy="dfs")):
        res = run()
        assert res is None or res.failure is None, res


def test_wound_sets_wounded_on_younger_holder() -> None:
    cls = DEFINE_WW_CLASS("wound_flag")

    def body() -> None:
        a, b = WWMutex(cls), WWMutex(cls)
        locked, seen = _completion(), _completion()
        ctx = WWAcquireCtx(cls)
        ww_mutex_lock(b, ctx)  # the older holds a lock: only then may it wound

        def younger() -> bool:
            yctx = WWAcquireCtx(cls)
            ww_mutex_lock(a, yctx)
            complete(locked)
            wait_for_completion(seen)
            wounded = yctx.wounded
            ww_mutex_unlock(a)
            ww_acquire_fini(yctx)
            return wounded

        t = dmabuf.spawn(younger)
        wait_for_completion(locked)

        def release_later() -> None:
            complete(seen)

        # the older blocks on A: that wounds the younger, which is not contending, so it just finishes
        r = dmabuf.spawn(release_later)
        assert ww_mutex_lock(a, ctx) == 0
        ww_mutex_unlock(a)
        ww_mutex_unlock(b)
        ww_acquire_fini(ctx)
        r.join()
        t.join()

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is None, res.failure


def test_wait_die_younger_waiter_dies_when_older_queues(run_on: Any) -> None:
    """Wait-Die: a younger waiter holding locks is woken to die when an older context queues ahead of it
    (or dies at queue time if the older one is already waiting)."""
    cls = DEFINE_WD_CLASS("wd_queue")

    def body() -> None:
        lk = WWMutex(cls, name="L")
        m, n = WWMutex(cls, name="M"), WWMutex(cls, name="N")
        o_ready, y_done = _completion(), _completion()
        ww_mutex_lock(lk, None)  # held without a context: nobody can be wounded/killed by the holder

        def older() -> int:
            octx = WWAcquireCtx(cls)
            ww_mutex_lock(m, octx)
            complete(o_ready)
            ret = ww_mutex_lock(lk, octx)
            assert ret == 0
            ww_mutex_unlock(lk)
            ww_mutex_unlock(m)
            ww_acquire_fini(octx)
            return ret

        def younger() -> int:
            wait_for_completion(o_ready)
            yctx = WWAcquireCtx(cls)
            ww_mutex_lock(n, yctx)
            ret = ww_mutex_lock(lk, yctx)
            complete(y_done)
            if ret == -EDEADLK:
                ww_mutex_unlock(n)
                ww_mutex_lock_slow(lk, yctx)
                ww_mutex_lock(n, yctx)
            yctx.unlock_all()
            ww_acquire_fini(yctx)
            return ret

        to = dmabuf.spawn(older, name="older")
        ty = dmabuf.spawn(younger, name="younger")
        wait_for_completion(y_done)  # L stays held until the younger gave up
        ww_mutex_unlock(lk)
        assert to.join() == 0
        assert ty.join() == -EDEADLK

    run_on(body)


def test_acquired_zero_never_dies(run_on: Any) -> None:
    """A context holding nothing waits instead of getting -EDEADLK, whatever its age."""
    cls = DEFINE_WD_CLASS("wd_zero")

    def body() -> None:
        a = WWMutex(cls)
        ctx = WWAcquireCtx(cls)
        ww_mutex_lock(a, ctx)

        def younger() -> int:
            yctx = WWAcquireCtx(cls)
            ret = ww_mutex_lock(a, yctx)
            ww_mutex_unlock(a)
            ww_acquire_fini(yctx)
            return ret

        t = dmabuf.spawn(younger)
        ww_mutex_unlock(a)
        ww_acquire_fini(ctx)
        assert t.join() == 0

    run_on(body)


# ---------------------------------------------------------------------------------------------- back-off programs
def _backoff_worker(cls: WWClass, order: list[WWMutex]) -> None:
    """The canonical loop on the kernel names (ww-mutex-design.rst, "Method 1")."""
    ctx = WWAcquireCtx()
    ww_acquire_init(ctx, cls)
    contended: WWMutex | None = None
    while True:
        if contended is not None:
            ww_mutex_lock_slow(contended, ctx)
        held = [contended] if contended is not None else []
        err = 0
        for m in order:
            if m is contended:
                continue
            err = ww_mutex_lock(m, ctx)
            if err:
                break
            held.append(m)
        if err == -EDEADLK:
            for h in reversed(held):
                ww_mutex_unlock(h)
            contended = m
            continue
        assert err == 0
        break
    ww_acquire_done(ctx)
    for h in reversed(held):
        ww_mutex_unlock(h)
    ww_acquire_fini(ctx)


@BOTH
def test_two_contexts_abba_with_back_off(run_on: Any, wait_die: bool) -> None:
    cls = _cls(wait_die)

    def body() -> None:
        a, b = WWMutex(cls, name="A"), WWMutex(cls, name="B")
        t1 = dmabuf.spawn(_backoff_worker, cls, [a, b], name="t1")
        t2 = dmabuf.spawn(_backoff_worker, cls, [b, a], name="t2")
        t1.join()
        t2.join()
        assert not a.is_locked() and not b.is_locked()

    res = run_on(body)
    if res is not None:
        assert res.complete  # the whole interleaving space, no bound needed


@BOTH
def test_three_contexts_three_locks_with_back_off(run_on: Any, wait_die: bool) -> None:
    """Three contexts, three locks, three different orders. Bounded to 2 preemptions (the unbounded
    search is too large for a unit test); every execution must finish with all locks free."""
    cls = _cls(wait_die)

    def body() -> None:
        a, b, c = (WWMutex(cls, name=n) for n in "ABC")
        ts = [
            dmabuf.spawn(_backoff_worker, cls, [a, b, c], name="t1"),
            dmabuf.spawn(_backoff_worker, cls, [b, c, a], name="t2"),
            dmabuf.spawn(_backoff_worker, cls, [c, a, b], name="t3"),
        ]
        for t in ts:
            t.join()

    run_on(body, preemption_bound=2, max_executions=20_000)


@BOTH
def test_pythonic_lock_all(run_on: Any, wait_die: bool) -> None:
    cls = _cls(wait_die)

    def body() -> None:
        a, b, c = (WWMutex(cls, name=n) for n in "ABC")

        def worker(order: list[WWMutex]) -> None:
            with WWAcquireCtx(cls) as ctx:
                ctx.lock_all(order + order[:1])  # a duplicate is fine
                assert ctx.acquired == 3 and set(map(id, ctx.locks)) == set(map(id, order))
                ctx.done()
                ctx.unlock_all()

        t1 = dmabuf.spawn(worker, [a, b, c])
        t2 = dmabuf.spawn(worker, [c, b, a])
        t1.join()
        t2.join()

    run_on(body, preemption_bound=2)


def test_pythonic_deadlk_and_context_manager(run_on: Any) -> None:
    cls = DEFINE_WD_CLASS("py")

    def body() -> None:
        a, b = WWMutex(cls, name="A"), WWMutex(cls, name="B")
        older = WWAcquireCtx(cls)
        assert a.lock(older) is True
        assert a.lock(older) is False  # -EALREADY

        def younger() -> str:
            try:
                with WWAcquireCtx(cls) as ctx:
                    b.lock(ctx)
                    a.lock(ctx)  # held by the older: dies
            except Deadlk as e:
                assert e.contended is a
                assert not b.is_locked()  # the with block released B on the way out
                return "deadlk"
            return "locked"

        t = dmabuf.spawn(younger)
        assert t.join() == "deadlk"
        a.unlock()
        older.fini()
        with a:  # a plain mutex
            assert a.owner is current_task() and a.ctx is None

    run_on(body)


# ---------------------------------------------------------------------------------------------- no back-off: found
def _abba_ignoring_edeadlk(cls: WWClass) -> Any:
    def body() -> None:
        a, b = WWMutex(cls, name="A"), WWMutex(cls, name="B")

        def worker(first: WWMutex, second: WWMutex) -> None:
            ctx = WWAcquireCtx(cls)
            ww_mutex_lock(first, ctx)
            if ww_mutex_lock(second, ctx) == -EDEADLK:
                ww_mutex_lock(second, None)  # BUG: keeps `first` and blocks without the context
                ww_mutex_unlock(second)
            else:
                ww_mutex_unlock(second)
            ww_mutex_unlock(first)
            ww_acquire_fini(ctx)

        t1 = dmabuf.spawn(worker, a, b, name="t1")
        t2 = dmabuf.spawn(worker, b, a, name="t2")
        t1.join()
        t2.join()

    return body


@BOTH
def test_no_back_off_is_a_deadlock(wait_die: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "CONFIG_PROVE_LOCKING", False)  # so nothing but the deadlock can stop it
    res = dmabuf.explore(_abba_ignoring_edeadlk(_cls(wait_die)), strategy="dfs")
    assert res.failure is not None and res.failure.kind == "deadlock", res


@BOTH
def test_no_back_off_is_a_lockdep_warning(wait_die: bool) -> None:
    res = dmabuf.explore(_abba_ignoring_edeadlk(_cls(wait_die)), strategy="dfs")
    assert res.failure is not None and res.failure.kind == "kernel-warning", res
    assert "one ww_acquire_ctx" in res.failure.message


def _abba_retrying_without_release(cls: WWClass) -> Any:
    def body() -> None:
        a, b = WWMutex(cls, name="A"), WWMutex(cls, name="B")

        def worker(first: WWMutex, second: WWMutex) -> None:
            ctx = WWAcquireCtx(cls)
            ww_mutex_lock(first, ctx)
            while ww_mutex_lock(second, ctx) == -EDEADLK:
                pass  # BUG: retries while still holding `first`
            ww_mutex_unlock(second)
            ww_mutex_unlock(first)
            ww_acquire_fini(ctx)

        t1 = dmabuf.spawn(worker, a, b, name="t1")
        t2 = dmabuf.spawn(worker, b, a, name="t2")
        t1.join()
        t2.join()

    return body


@BOTH
def test_retry_without_release_warns(wait_die: bool) -> None:
    res = dmabuf.explore(_abba_retrying_without_release(_cls(wait_die)), strategy="dfs")
    assert res.failure is not None and res.failure.kind == "kernel-warning", res
    assert "-EDEADLK" in res.failure.message


@BOTH
def test_retry_without_release_is_a_livelock(wait_die: bool) -> None:
    def body() -> None:
        set_warn_mode("log")  # the debug WARN is logged, the program keeps spinning
        _abba_retrying_without_release(_cls(wait_die))()

    res = dmabuf.explore(body, strategy="dfs", max_steps=2_000)
    assert res.failure is not None and res.failure.kind == "livelock", res
