"""Audit of ww_mutex and drm_exec against the behavioural reference (kernel-semantics.md section 4,
kernel-api.md): one black-box test per documented behaviour that the other suites did not pin down.

Races that need a fixed order of "A is already asleep on the lock, then B acts" run under the explorer only:
there, virtual time advances only when every task is blocked, so ``msleep(1)`` returns after every other
task has reached its blocking point (on real threads a sleep is no such guarantee).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import dmabuf
from dmabuf.drm_exec import PAGE_SIZE
from dmabuf.errors import KernelWarning
from dmabuf.kernel import (
    DEFINE_WD_CLASS,
    DEFINE_WW_CLASS,
    DRM_EXEC_INTERRUPTIBLE_WAIT,
    Completion,
    DrmExec,
    DrmGemObject,
    WWAcquireCtx,
    WWClass,
    WWMutex,
    complete,
    dma_resv_is_locked,
    dma_resv_lock,
    dma_resv_unlock,
    drm_exec_cleanup,
    drm_exec_fini,
    drm_exec_for_each_locked_object,
    drm_exec_init,
    drm_exec_is_contended,
    drm_exec_lock_obj,
    drm_exec_prepare_array,
    drm_exec_retry_on_contention,
    drm_exec_until_all_locked,
    drm_gem_private_object_init,
    init_completion,
    kref_read,
    msleep,
    reservation_ww_class,
    send_sig,
    wait_for_completion,
    ww_acquire_fini,
    ww_acquire_init,
    ww_mutex_lock,
    ww_mutex_lock_slow,
    ww_mutex_lock_slow_interruptible,
    ww_mutex_trylock,
    ww_mutex_unlock,
)
from dmabuf.kernel.errno import EALREADY, EDEADLK, EINTR
from dmabuf.runtime import current_task

BOTH = pytest.mark.parametrize("wait_die", [False, True], ids=["wound-wait", "wait-die"])


def _cls(wait_die: bool, name: str) -> WWClass:
    return DEFINE_WD_CLASS(name) if wait_die else DEFINE_WW_CLASS(name)


def _completion() -> Completion:
    c = Completion()
    init_completion(c)
    return c


def _explore_clean(body: Callable[[], None], **kw: Any) -> Any:
    res = dmabuf.explore(body, strategy="dfs", **kw)
    assert res.failure is None, str(res.failure)
    assert res.executions >= 1
    return res


def _gem() -> DrmGemObject:
    obj = DrmGemObject()
    drm_gem_private_object_init(None, obj, PAGE_SIZE)
    return obj


# ---------------------------------------------------------------------------------------------- ww_mutex
@BOTH
def test_null_ctx_lock_waits_for_a_context_holder_like_a_plain_mutex(run_on: Any, wait_die: bool) -> None:
    """kernel-semantics 4.2: ``ww_mutex_lock(lock, NULL)`` is a plain mutex lock returning 0: it sleeps
    until a context holder unlocks, never gets -EDEADLK, and (4.3) never wounds the holder: only a waiter
    with a context (holding locks) wounds."""
    cls = _cls(wait_die, "audit_null_ctx")

    def body() -> None:
        a, b = WWMutex(cls, name="A"), WWMutex(cls, name="B")
        locked, go = _completion(), _completion()

        def holder() -> bool:
            ctx = WWAcquireCtx(cls)  # younger than nobody: the only context
            assert ww_mutex_lock(b, ctx) == 0
            assert ww_mutex_lock(a, ctx) == 0
            complete(locked)
            wait_for_completion(go)
            wounded = ctx.wounded
            ww_mutex_unlock(a)
            ww_mutex_unlock(b)
            ww_acquire_fini(ctx)
            return wounded

        t = dmabuf.spawn(holder, name="holder")
        wait_for_completion(locked)
        complete(go)
        assert ww_mutex_lock(a, None) == 0  # sleeps while the holder has A
        assert a.owner is current_task() and a.ctx is None
        ww_mutex_unlock(a)
        assert t.join() is False

    run_on(body)


@BOTH
def test_context_with_locks_waits_for_a_holder_without_context(run_on: Any, wait_die: bool) -> None:
    """kernel-semantics 4.2/4.3: -EDEADLK needs another *context* to back off for (an older holder or
    older waiter in Wait-Die, a wound in Wound-Wait). A context that holds locks and blocks on a lock held
    without any context simply waits and gets 0."""
    cls = _cls(wait_die, "audit_ctxless_holder")

    def body() -> None:
        a, b = WWMutex(cls, name="A"), WWMutex(cls, name="B")
        assert ww_mutex_lock(a, None) == 0

        def locker() -> int:
            ctx = WWAcquireCtx(cls)
            assert ww_mutex_lock(b, ctx) == 0
            ret = ww_mutex_lock(a, ctx)  # held without a context: wait
            if ret == 0:
                ww_mutex_unlock(a)
            ww_mutex_unlock(b)
            ww_acquire_fini(ctx)
            return ret

        t = dmabuf.spawn(locker, name="locker")
        ww_mutex_unlock(a)
        assert t.join() == 0

    run_on(body)


def _wound_scenario(older_holds_a_lock: bool, expect: dict[str, Any]) -> Callable[[], None]:
    """Wound-Wait: the younger context Y holds A; the older context O blocks on A, holding B or nothing;
    then Y (still holding A) blocks on C, held without a context by the main task, which unlocks C later.
    Every execution checks Y's ``wounded`` flag before its next lock and its result on C against
    ``expect``."""
    cls = DEFINE_WW_CLASS("audit_wound")

    def body() -> None:
        seen: dict[str, Any] = {}
        a, b, c, d = (WWMutex(cls, name=n) for n in "ABCD")
        o_init, y_has_a, go = _completion(), _completion(), _completion()
        assert ww_mutex_lock(c, None) == 0

        def older() -> int:
            octx = WWAcquireCtx(cls)  # stamp 1
            complete(o_init)
            if older_holds_a_lock:
                assert ww_mutex_lock(b, octx) == 0
            wait_for_completion(y_has_a)
            ret = ww_mutex_lock(a, octx)  # Y holds A: O sleeps (and maybe wounds Y)
            assert ret == 0
            octx.unlock_all()
            ww_acquire_fini(octx)
            return ret

        def younger() -> int:
            wait_for_completion(o_init)
            yctx = WWAcquireCtx(cls)  # stamp 2: younger
            assert ww_mutex_lock(a, yctx) == 0
            complete(y_has_a)
            wait_for_completion(go)
            seen["wounded"] = yctx.wounded
            assert ww_mutex_lock(d, yctx) == 0  # uncontended: a wounded context still takes free locks
            ret = ww_mutex_lock(c, yctx)  # contended (held by main without a context)
            seen["ret"] = ret
            if ret == -EDEADLK:
                assert yctx.contending_lock is c
                yctx.unlock_all()  # back off: O gets A
                ww_mutex_lock_slow(c, yctx)
            yctx.unlock_all()
            ww_acquire_fini(yctx)
            return ret

        to = dmabuf.spawn(older, name="older")
        ty = dmabuf.spawn(younger, name="younger")
        msleep(1)  # explorer: returns once O sleeps on A and Y waits for `go`
        complete(go)
        msleep(1)  # ... and once Y sleeps on C (or has died on it)
        ww_mutex_unlock(c)
        to.join()
        ty.join()
        assert seen == expect, seen

    return body


def test_wound_wait_wounded_context_dies_at_its_next_contended_lock() -> None:
    """kernel-semantics 4.3 Wound-Wait: an older context holding locks that blocks on a younger holder
    wounds it; the wounded context dies lazily: a free lock still succeeds, and its next *contended* lock
    (here one held by an unrelated, context-less task) returns -EDEADLK because it holds locks."""
    _explore_clean(_wound_scenario(True, {"wounded": True, "ret": -EDEADLK}))


def test_wound_wait_older_context_without_locks_does_not_wound() -> None:
    """kernel-semantics 4.3 Wound-Wait: only an older context with ``acquired > 0`` wounds
    (``__ww_mutex_wound``). An older context that holds nothing just waits, so the younger holder is not
    wounded and its next contended lock waits and succeeds instead of returning -EDEADLK."""
    _explore_clean(_wound_scenario(False, {"wounded": False, "ret": 0}))


def test_wound_wait_wound_wakes_a_holder_sleeping_on_an_unrelated_lock() -> None:
    """kernel-semantics 4.3 Wound-Wait: a wounded context that is already asleep on another contended lock
    is woken and returns -EDEADLK at once (it does not wait for that lock, whose context-less holder here
    only unlocks after the younger task has finished)."""
    cls = DEFINE_WW_CLASS("audit_wound_wake")

    def body() -> None:
        a, b, c = (WWMutex(cls, name=n) for n in "ABC")
        o_init, y_has_a = _completion(), _completion()
        assert ww_mutex_lock(c, None) == 0

        def older() -> None:
            octx = WWAcquireCtx(cls)
            assert ww_mutex_lock(b, octx) == 0
            complete(o_init)
            wait_for_completion(y_has_a)
            msleep(1)  # explorer: Y is asleep on C now
            assert ww_mutex_lock(a, octx) == 0  # wounds Y and waits for its back-off
            octx.unlock_all()
            ww_acquire_fini(octx)

        def younger() -> int:
            wait_for_completion(o_init)
            yctx = WWAcquireCtx(cls)
            assert ww_mutex_lock(a, yctx) == 0
            complete(y_has_a)
            ret = ww_mutex_lock(c, yctx)
            assert not ww_mutex_trylock(c, None)  # C was never released: we were woken to die
            ww_mutex_unlock(a)
            ww_acquire_fini(yctx)
            return ret

        to = dmabuf.spawn(older, name="older")
        ty = dmabuf.spawn(younger, name="younger")
        assert ty.join() == -EDEADLK  # C stays held until the younger task returned
        ww_mutex_unlock(c)
        to.join()

    _explore_clean(body)


def test_wait_die_older_context_taking_the_lock_wakes_younger_waiters_to_die() -> None:
    """kernel-semantics 4.3 Wait-Die: "When a lock is acquired, younger waiters that hold locks are woken
    so they can die" (``__ww_mutex_check_waiters``). The younger Y, holding A, sleeps on L held without a
    context (so it does not die). The main task, an older context, unlocks L and takes it straight back
    with ``ww_mutex_trylock``: if that wins the race, Y must be woken and return -EDEADLK while L is still
    held; if Y got to L first, it simply has it (0)."""
    cls = DEFINE_WD_CLASS("audit_wd_wake")
    stole: list[bool] = []

    def body() -> None:
        a, b, lk = WWMutex(cls, name="A"), WWMutex(cls, name="B"), WWMutex(cls, name="L")
        fin = _completion()
        octx = WWAcquireCtx(cls)  # stamp 1: older
        assert ww_mutex_lock(lk, None) == 0
        assert ww_mutex_lock(b, octx) == 0

        def younger() -> int:
            yctx = WWAcquireCtx(cls)  # stamp 2
            assert ww_mutex_lock(a, yctx) == 0
            ret = ww_mutex_lock(lk, yctx)  # holder has no context: sleep
            if ret == 0:
                wait_for_completion(fin)  # keep L until the main task has tried it
            yctx.unlock_all()  # on -EDEADLK give up (no lock_slow: the test joins us while holding L)
            ww_acquire_fini(yctx)
            return ret

        t = dmabuf.spawn(younger, name="younger")
        msleep(1)  # explorer: Y is asleep on L
        ww_mutex_unlock(lk)
        took = ww_mutex_trylock(lk, octx) == 1
        stole.append(took)
        if took:  # Y was still waiting: it must be woken to die while L is ours
            assert t.join() == -EDEADLK
            ww_mutex_unlock(lk)
        else:  # Y got L first and keeps it until `fin`
            complete(fin)
            assert t.join() == 0
        ww_mutex_unlock(b)
        ww_acquire_fini(octx)

    _explore_clean(body)
    assert True in stole and False in stole  # both orders were explored


@BOTH
def test_waiters_are_granted_context_less_fifo_then_contexts_oldest_first(wait_die: bool) -> None:
    """kernel-semantics 4.3: the wait list keeps context waiters sorted by stamp (oldest first) and
    context-less waiters in FIFO order between them (``__ww_mutex_add_waiter``). Queue a context-less N,
    then the younger context Y, then the older context O (neither holds other locks, so nobody dies):
    the lock goes to N, then O, then Y."""
    cls = _cls(wait_die, "audit_order")

    def body() -> None:
        order: dict[str, int] = {}
        lk = WWMutex(cls, name="L")
        o_init, o_go = _completion(), _completion()
        assert ww_mutex_lock(lk, None) == 0
        turn = [0]

        def take(name: str, ctx: WWAcquireCtx | None) -> None:
            assert ww_mutex_lock(lk, ctx) == 0
            order[name] = turn[0]  # under L: the grant order
            turn[0] += 1
            ww_mutex_unlock(lk)

        def ctxless() -> None:
            take("N", None)

        def older() -> None:
            octx = WWAcquireCtx(cls)
            complete(o_init)
            wait_for_completion(o_go)
            take("O", octx)
            ww_acquire_fini(octx)

        def younger() -> None:
            wait_for_completion(o_init)
            yctx = WWAcquireCtx(cls)
            take("Y", yctx)
            ww_acquire_fini(yctx)

        tn = dmabuf.spawn(ctxless, name="N")
        msleep(1)  # N queued first
        to = dmabuf.spawn(older, name="O")
        ty = dmabuf.spawn(younger, name="Y")
        msleep(1)  # Y queued, O initialised (older stamp) and waiting for o_go
        complete(o_go)
        msleep(1)  # O queued last
        ww_mutex_unlock(lk)
        for t in (tn, to, ty):
            t.join()
        assert order == {"N": 0, "O": 1, "Y": 2}, order

    _explore_clean(body)


def test_lock_slow_interruptible_returns_eintr() -> None:
    """kernel-semantics 4.2: ``ww_mutex_lock_slow_interruptible`` returns 0 or -EINTR: after -EDEADLK and
    unlocking everything, a signal while sleeping on the contended lock gives -EINTR, the lock is not
    taken and the context holds nothing."""
    cls = DEFINE_WD_CLASS("audit_slow_intr")

    def body() -> None:
        a, b = WWMutex(cls, name="A"), WWMutex(cls, name="B")
        done = _completion()
        octx = WWAcquireCtx(cls)  # older, holds B until the younger is done
        assert ww_mutex_lock(b, octx) == 0

        def younger() -> int:
            yctx = WWAcquireCtx(cls)
            assert ww_mutex_lock(a, yctx) == 0
            assert ww_mutex_lock(b, yctx) == -EDEADLK  # Wait-Die: younger with locks dies
            ww_mutex_unlock(a)
            send_sig(9, current_task())
            ret = ww_mutex_lock_slow_interruptible(b, yctx)
            assert b.owner is not current_task() and yctx.acquired == 0
            ww_acquire_fini(yctx)
            current_task().sigpending = False
            complete(done)
            return ret

        t = dmabuf.spawn(younger, name="younger")
        wait_for_completion(done)
        ww_mutex_unlock(b)
        ww_acquire_fini(octx)
        assert t.join() == -EINTR

    dmabuf.run_threads(body, timeout=30)
    _explore_clean(body)


def test_trylock_with_context_neither_waits_nor_wounds_and_checks_the_class(run_on: Any) -> None:
    """kernel-semantics 4.2: ``ww_mutex_trylock(lock, ctx)`` on a lock held by another context returns 0
    at once: no -EDEADLK, and the (younger) holder is not wounded. 4.4: a successful trylock is an
    acquisition, so a context of another class WARNs as for ``ww_mutex_lock``."""
    cls, other = DEFINE_WW_CLASS("audit_try"), DEFINE_WW_CLASS("audit_try_other")

    def body() -> None:
        a, b = WWMutex(cls, name="A"), WWMutex(cls, name="B")
        c = WWMutex(other, name="C")
        locked, go = _completion(), _completion()
        octx = WWAcquireCtx(cls)  # older
        assert ww_mutex_lock(b, octx) == 0

        def younger() -> bool:
            yctx = WWAcquireCtx(cls)
            assert ww_mutex_lock(a, yctx) == 0
            complete(locked)
            wait_for_completion(go)
            wounded = yctx.wounded
            ww_mutex_unlock(a)
            ww_acquire_fini(yctx)
            return wounded

        t = dmabuf.spawn(younger, name="younger")
        wait_for_completion(locked)
        assert ww_mutex_trylock(a, octx) == 0  # held by the younger: no wait, no wound
        complete(go)
        assert t.join() is False
        with pytest.raises(KernelWarning) as ei:
            ww_mutex_trylock(c, octx)
        assert ei.value.rule == "ww_mutex: context of another class"
        assert not c.is_locked()
        ww_mutex_unlock(b)
        ww_acquire_fini(octx)

    run_on(body)


# ---------------------------------------------------------------------------------------------- drm_exec
def test_drm_exec_locking_after_the_loop_warns(run_on: Any) -> None:
    """kernel-semantics 4.5: when the loop ends without contention ``drm_exec_cleanup`` calls
    ``ww_acquire_done``; 4.4: locking a new object under the ticket afterwards WARNs (lock after
    acquire_done). Re-locking an object already held returns -EALREADY without a WARN."""

    def body() -> None:
        a, b = _gem(), _gem()
        exec = DrmExec()
        drm_exec_init(exec, 0, 0)
        for _ in drm_exec_until_all_locked(exec):
            ret = drm_exec_lock_obj(exec, a)
            if drm_exec_retry_on_contention(exec):
                continue
            assert ret == 0
        with pytest.raises(KernelWarning) as ei:
            drm_exec_lock_obj(exec, b)
        assert ei.value.rule == "ww_mutex: lock after acquire_done"
        assert not dma_resv_is_locked(b.resv)  # type: ignore[arg-type]
        drm_exec_fini(exec)
        assert not dma_resv_is_locked(a.resv)  # type: ignore[arg-type]

    run_on(body)


def test_drm_exec_prepare_array_stops_at_the_first_error(run_on: Any) -> None:
    """kernel-semantics 4.5: ``drm_exec_prepare_array`` prepares the objects in order and stops at the
    first error: a duplicate without DRM_EXEC_IGNORE_DUPLICATES returns -EALREADY and the objects after it
    are neither locked nor given fence slots."""

    def body() -> None:
        a, b = _gem(), _gem()
        exec = DrmExec()
        drm_exec_init(exec, 0, 0)
        ret = 0
        for _ in drm_exec_until_all_locked(exec):
            ret = drm_exec_prepare_array(exec, [a, a, b], 3, 1)
            if drm_exec_retry_on_contention(exec):
                continue
        assert ret == -EALREADY
        assert [o for _, o in drm_exec_for_each_locked_object(exec)] == [a]
        assert not dma_resv_is_locked(b.resv)  # type: ignore[arg-type]
        drm_exec_fini(exec)

    run_on(body)


def _older_holds(obj: DrmGemObject, held: Completion, release: Completion) -> Callable[[], None]:
    def holder() -> None:
        older = WWAcquireCtx()
        ww_acquire_init(older, reservation_ww_class)  # older than any exec ticket made later
        assert dma_resv_lock(obj.resv, older) == 0  # type: ignore[arg-type]
        complete(held)
        wait_for_completion(release)
        dma_resv_unlock(obj.resv)  # type: ignore[arg-type]
        ww_acquire_fini(older)

    return holder


def test_drm_exec_interrupted_slow_lock_of_the_contended_object() -> None:
    """kernel-semantics 4.5: with DRM_EXEC_INTERRUPTIBLE_WAIT the next lock call first slow-locks the
    contended object interruptibly; on -EINTR it returns -EINTR with the contention cleared (so the error
    path runs instead of another retry) and the contended object's reference dropped; ``drm_exec_fini``
    then unlocks everything and ends the ticket without a WARN."""

    def body() -> None:
        a, b = _gem(), _gem()
        held, release = _completion(), _completion()
        t = dmabuf.spawn(_older_holds(b, held, release), name="holder")
        wait_for_completion(held)
        exec = DrmExec()
        drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
        assert drm_exec_cleanup(exec)
        assert drm_exec_lock_obj(exec, a) == 0
        assert drm_exec_lock_obj(exec, b) == -EDEADLK
        assert drm_exec_cleanup(exec)  # contention: back off, run the body again
        send_sig(9, current_task())
        assert drm_exec_lock_obj(exec, a) == -EINTR  # the slow lock of B was interrupted
        current_task().sigpending = False
        assert not drm_exec_is_contended(exec) and exec.prelocked is None
        assert kref_read(b.refcount) == 1  # the exec's reference to the contended object is gone
        assert exec.num_objects == 0 and not dma_resv_is_locked(a.resv)  # type: ignore[arg-type]
        drm_exec_fini(exec)
        assert exec.ticket.acquired == 0
        complete(release)
        t.join()

    dmabuf.run_threads(body, timeout=30)
    _explore_clean(body)


def test_drm_exec_fini_drops_a_pending_contended_object() -> None:
    """kernel-semantics 4.5: ``drm_exec_fini`` after the loop was left with a contention still pending
    (the body gave up instead of retrying) unlocks everything, puts the contended object and ends the
    ticket."""

    def body() -> None:
        a, b = _gem(), _gem()
        held, release = _completion(), _completion()
        t = dmabuf.spawn(_older_holds(b, held, release), name="holder")
        wait_for_completion(held)
        exec = DrmExec()
        drm_exec_init(exec, 0, 0)
        for _ in drm_exec_until_all_locked(exec):
            assert drm_exec_lock_obj(exec, a) == 0
            assert drm_exec_lock_obj(exec, b) == -EDEADLK
            break  # an error path: leave the loop without retrying
        assert drm_exec_is_contended(exec) and kref_read(b.refcount) == 2
        drm_exec_fini(exec)
        assert kref_read(a.refcount) == 1 and kref_read(b.refcount) == 1
        assert not dma_resv_is_locked(a.resv)  # type: ignore[arg-type]
        assert exec.ticket.acquired == 0 and exec.ticket.done_acquire  # finished
        complete(release)
        t.join()

    dmabuf.run_threads(body, timeout=30)
    _explore_clean(body)


def test_drm_exec_is_contended_before_the_loop_is_true() -> None:
    """kernel-semantics 4.5: ``drm_exec_init`` sets ``contended = DRM_EXEC_DUMMY`` (a non-NULL pointer)
    and ``drm_exec_is_contended`` is ``!!exec->contended`` (include/drm/drm_exec.h), so it is true
    between init and the first ``drm_exec_cleanup``, and false inside a loop without contention."""

    def body() -> None:
        exec = DrmExec()
        drm_exec_init(exec, 0, 0)
        before = drm_exec_is_contended(exec)
        assert drm_exec_cleanup(exec)
        inside = drm_exec_is_contended(exec)
        assert not drm_exec_cleanup(exec)
        drm_exec_fini(exec)
        assert (before, inside) == (True, False)

    dmabuf.run_threads(body, timeout=30)
