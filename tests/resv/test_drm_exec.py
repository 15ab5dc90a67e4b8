"""Unit tests of drm_exec and the GEM object helpers (single task; the concurrent retry loop is in
test_resv_explore.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import dmabuf
from dmabuf.drm_exec import PAGE_SIZE
from dmabuf.errors import InvalidArgument, KernelBug, KernelWarning, UsageError
from dmabuf.kernel import (
    DRM_EXEC_IGNORE_DUPLICATES,
    DRM_EXEC_INTERRUPTIBLE_WAIT,
    EALREADY,
    EDEADLK,
    Completion,
    DmaResv,
    DrmExec,
    DrmGemObject,
    WWAcquireCtx,
    complete,
    dma_resv_init,
    dma_resv_is_locked,
    dma_resv_lock,
    dma_resv_unlock,
    drm_exec_cleanup,
    drm_exec_fini,
    drm_exec_for_each_locked_object,
    drm_exec_for_each_locked_object_reverse,
    drm_exec_init,
    drm_exec_is_contended,
    drm_exec_lock_obj,
    drm_exec_prepare_array,
    drm_exec_prepare_obj,
    drm_exec_retry_on_contention,
    drm_exec_unlock_obj,
    drm_exec_until_all_locked,
    drm_gem_object_get,
    drm_gem_object_put,
    drm_gem_private_object_fini,
    drm_gem_private_object_init,
    init_completion,
    kref_read,
    reservation_ww_class,
    send_sig,
    wait_for_completion,
    ww_acquire_fini,
    ww_acquire_init,
)


def run(body: Callable[[], Any]) -> Any:
    return dmabuf.run_threads(body, timeout=30)


def gem(resv: DmaResv | None = None) -> DrmGemObject:
    obj = DrmGemObject()
    obj.resv = resv
    drm_gem_private_object_init(None, obj, PAGE_SIZE)
    return obj


def test_gem_object_init_refs_and_shared_resv() -> None:
    def body() -> None:
        a = gem()
        assert a.resv is a._resv and kref_read(a.refcount) == 1
        shared = DmaResv()
        dma_resv_init(shared)
        b = gem(shared)
        assert b.resv is shared and b._resv is not shared
        drm_gem_object_get(a)
        assert kref_read(a.refcount) == 2
        drm_gem_object_put(a)
        drm_gem_object_put(None)
        with pytest.raises(KernelBug):
            drm_gem_private_object_init(None, DrmGemObject(), 100)
        with pytest.raises(InvalidArgument):
            drm_exec_lock_obj(DrmExec(), DrmGemObject())
        with pytest.raises(KernelWarning, match="funcs->free"):
            drm_gem_object_put(a)  # no funcs->free for a kernel-style object
        drm_gem_private_object_fini(b)

    run(body)


def test_pythonic_gem_object_frees_itself() -> None:
    def body() -> None:
        o = DrmGemObject(PAGE_SIZE, name="bo")
        o.put()
        assert not o._ready

    run(body)


def test_exec_lock_track_unlock_and_fini() -> None:
    def body() -> None:
        objs = [gem() for _ in range(3)]
        exec = DrmExec()
        drm_exec_init(exec, 0, 2)
        assert drm_exec_is_contended(exec)  # the kernel's !!contended: DRM_EXEC_DUMMY before the loop
        loops = 0
        for _ in drm_exec_until_all_locked(exec):
            loops += 1
            for o in objs:
                ret = drm_exec_lock_obj(exec, o)
                if drm_exec_retry_on_contention(exec):
                    break
                assert ret == 0
        assert loops == 1
        assert exec.ticket.done_acquire
        assert [o for _, o in drm_exec_for_each_locked_object(exec)] == objs
        assert [i for i, _ in drm_exec_for_each_locked_object_reverse(exec)] == [2, 1, 0]
        assert exec.num_objects == 3 and exec.max_objects >= 3
        assert all(kref_read(o.refcount) == 2 for o in objs)
        assert drm_exec_lock_obj(exec, objs[0]) == -EALREADY  # no IGNORE_DUPLICATES
        drm_exec_unlock_obj(exec, objs[1])
        assert not dma_resv_is_locked(objs[1].resv)  # type: ignore[arg-type]
        assert [o for _, o in drm_exec_for_each_locked_object(exec)] == [objs[0], objs[2]]
        drm_exec_fini(exec)
        assert all(not dma_resv_is_locked(o.resv) for o in objs)  # type: ignore[arg-type]
        assert all(kref_read(o.refcount) == 1 for o in objs)

    run(body)


def test_prepare_obj_reserves_slots() -> None:
    def body() -> None:
        a, b = gem(), gem()
        exec = DrmExec()
        drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
        for _ in drm_exec_until_all_locked(exec):
            ret = drm_exec_prepare_array(exec, [a, b], 2, 3)
            if drm_exec_retry_on_contention(exec):
                continue
            assert ret == 0
        for o in (a, b):
            assert o.resv is not None and o.resv.fences is not None
            assert o.resv.fences.max_fences >= 3
        assert drm_exec_prepare_obj(exec, a, 1) == -EALREADY
        drm_exec_fini(exec)

    run(body)


def test_contention_backs_off_and_prelocks() -> None:
    """Drive the loop by hand: an older context in another task holds B, so our lock of B returns
    -EDEADLK; the next round slow-locks B first (``prelocked``) and then takes A."""

    def body() -> None:
        a, b = gem(), gem()
        held, release = Completion(), Completion()
        init_completion(held)
        init_completion(release)

        def holder() -> None:
            older = WWAcquireCtx()
            ww_acquire_init(older, reservation_ww_class)  # stamp 1: older than the exec's ticket
            assert dma_resv_lock(b.resv, older) == 0  # type: ignore[arg-type]
            complete(held)
            wait_for_completion(release)
            dma_resv_unlock(b.resv)  # type: ignore[arg-type]
            ww_acquire_fini(older)

        t = dmabuf.spawn(holder)
        wait_for_completion(held)
        exec = DrmExec()
        drm_exec_init(exec, 0, 0)
        assert drm_exec_cleanup(exec)  # enters the loop: the ticket starts
        assert drm_exec_lock_obj(exec, a) == 0
        assert drm_exec_lock_obj(exec, b) == -EDEADLK  # younger and holding A: dies
        assert drm_exec_is_contended(exec) and exec.contended is b
        assert kref_read(b.refcount) == 2  # the exec references the contended object
        complete(release)
        assert drm_exec_cleanup(exec)  # contention: unlock everything, run the body again
        assert exec.num_objects == 0 and not dma_resv_is_locked(a.resv)  # type: ignore[arg-type]
        assert drm_exec_lock_obj(exec, a) == 0  # first slow-locks b (prelocked), then locks a
        assert drm_exec_lock_obj(exec, b) == 0  # b is the prelocked one: just accounted
        assert exec.prelocked is None
        assert not drm_exec_cleanup(exec)
        assert [o for _, o in drm_exec_for_each_locked_object(exec)] == [b, a]
        drm_exec_fini(exec)
        t.join()
        assert kref_read(a.refcount) == 1 and kref_read(b.refcount) == 1

    run(body)
    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is None, str(res.failure)


def test_duplicates_flag() -> None:
    def body() -> None:
        a = gem()
        with DrmExec(DRM_EXEC_IGNORE_DUPLICATES) as ex:
            ex.lock_all([a, a])
            assert ex.num_objects == 1
        with DrmExec() as ex:
            with pytest.raises(UsageError, match="IGNORE_DUPLICATES"):
                ex.lock_all([a, a])
        assert not dma_resv_is_locked(a.resv)  # type: ignore[arg-type]

    run(body)


def test_pythonic_lock_all_and_with() -> None:
    def body() -> None:
        objs = [DrmGemObject(PAGE_SIZE) for _ in range(3)]
        with DrmExec(DRM_EXEC_INTERRUPTIBLE_WAIT) as ex:
            ex.lock_all(objs, num_fences=1)
            assert [o for _, o in ex.locked_objects()] == objs
        assert all(not o.resv.is_locked() for o in objs)  # type: ignore[union-attr]
        for o in objs:
            o.put()

    run(body)


def test_fini_without_loop_and_lock_outside_loop() -> None:
    def body() -> None:
        exec = DrmExec()
        drm_exec_init(exec, 0, 0)
        with pytest.raises(UsageError, match="outside"):
            drm_exec_lock_obj(exec, gem())
        drm_exec_fini(exec)  # never entered the loop: no ticket to finish

    run(body)


def test_interruptible_wait_returns_eintr() -> None:
    """DRM_EXEC_INTERRUPTIBLE_WAIT: a signal while waiting for a busy resv gives -EINTR (lock_all raises)."""

    def body() -> None:
        a = gem()
        assert dma_resv_lock(a.resv, None) == 0  # type: ignore[arg-type]
        got: list[Any] = []

        def locker() -> None:
            with DrmExec(DRM_EXEC_INTERRUPTIBLE_WAIT) as ex:
                try:
                    ex.lock_all([a])
                except InterruptedError:
                    got.append("EINTR")

        t = dmabuf.spawn(locker)
        send_sig(9, t)
        t.join()
        dma_resv_unlock(a.resv)  # type: ignore[arg-type]
        assert got == ["EINTR"]

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is None, str(res.failure)
