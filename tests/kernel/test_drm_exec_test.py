"""Port of drivers/gpu/drm/tests/drm_exec_test.c (KUnit) onto the kernel names.

The KUnit fixture allocates a DRM device; the model only stores ``dev`` in the GEM object, so a plain object
stands in for ``priv->drm``. ``KUNIT_EXPECT_EQ`` becomes ``assert``. The C ``drm_exec_until_all_locked``
block becomes ``for _ in drm_exec_until_all_locked(exec):`` and ``drm_exec_retry_on_contention`` an
``if ...: continue``. Every case runs on real threads and under the explorer.
"""

from __future__ import annotations

from typing import Any

import pytest

from dmabuf.drm_exec import PAGE_SIZE
from dmabuf.kernel import (
    DRM_EXEC_IGNORE_DUPLICATES,
    DRM_EXEC_INTERRUPTIBLE_WAIT,
    DrmExec,
    DrmGemObject,
    drm_exec_fini,
    drm_exec_init,
    drm_exec_lock_obj,
    drm_exec_prepare_array,
    drm_exec_prepare_obj,
    drm_exec_retry_on_contention,
    drm_exec_unlock_obj,
    drm_exec_until_all_locked,
    drm_gem_private_object_fini,
    drm_gem_private_object_init,
)


class DrmExecPriv:
    """``struct drm_exec_priv``."""

    def __init__(self) -> None:
        self.dev = object()
        self.drm = object()


def drm_exec_test_init() -> DrmExecPriv:
    return DrmExecPriv()


def sanitycheck(priv: DrmExecPriv) -> None:
    exec = DrmExec()

    drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
    drm_exec_fini(exec)


def test_lock(priv: DrmExecPriv) -> None:
    gobj = DrmGemObject()
    exec = DrmExec()

    drm_gem_private_object_init(priv.drm, gobj, PAGE_SIZE)

    drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
    for _ in drm_exec_until_all_locked(exec):
        ret = drm_exec_lock_obj(exec, gobj)
        if drm_exec_retry_on_contention(exec):
            continue
        assert ret == 0
        if ret:
            break
    drm_exec_fini(exec)


def test_lock_unlock(priv: DrmExecPriv) -> None:
    gobj = DrmGemObject()
    exec = DrmExec()

    drm_gem_private_object_init(priv.drm, gobj, PAGE_SIZE)

    drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
    for _ in drm_exec_until_all_locked(exec):
        ret = drm_exec_lock_obj(exec, gobj)
        if drm_exec_retry_on_contention(exec):
            continue
        assert ret == 0
        if ret:
            break

        drm_exec_unlock_obj(exec, gobj)
        ret = drm_exec_lock_obj(exec, gobj)
        if drm_exec_retry_on_contention(exec):
            continue
        assert ret == 0
        if ret:
            break
    drm_exec_fini(exec)


def test_duplicates(priv: DrmExecPriv) -> None:
    gobj = DrmGemObject()
    exec = DrmExec()

    drm_gem_private_object_init(priv.drm, gobj, PAGE_SIZE)

    drm_exec_init(exec, DRM_EXEC_IGNORE_DUPLICATES, 0)
    for _ in drm_exec_until_all_locked(exec):
        ret = drm_exec_lock_obj(exec, gobj)
        if drm_exec_retry_on_contention(exec):
            continue
        assert ret == 0
        if ret:
            break

        ret = drm_exec_lock_obj(exec, gobj)
        if drm_exec_retry_on_contention(exec):
            continue
        assert ret == 0
        if ret:
            break
    drm_exec_unlock_obj(exec, gobj)
    drm_exec_fini(exec)


def test_prepare(priv: DrmExecPriv) -> None:
    gobj = DrmGemObject()
    exec = DrmExec()

    drm_gem_private_object_init(priv.drm, gobj, PAGE_SIZE)

    drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
    for _ in drm_exec_until_all_locked(exec):
        ret = drm_exec_prepare_obj(exec, gobj, 1)
        if drm_exec_retry_on_contention(exec):
            continue
        assert ret == 0
        if ret:
            break
    drm_exec_fini(exec)

    drm_gem_private_object_fini(gobj)


def test_prepare_array(priv: DrmExecPriv) -> None:
    gobj1 = DrmGemObject()
    gobj2 = DrmGemObject()
    array = [gobj1, gobj2]
    exec = DrmExec()
    ret = 0

    drm_gem_private_object_init(priv.drm, gobj1, PAGE_SIZE)
    drm_gem_private_object_init(priv.drm, gobj2, PAGE_SIZE)

    drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
    for _ in drm_exec_until_all_locked(exec):
        ret = drm_exec_prepare_array(exec, array, len(array), 1)
    assert ret == 0
    drm_exec_fini(exec)

    drm_gem_private_object_fini(gobj1)
    drm_gem_private_object_fini(gobj2)


def test_multiple_loops(priv: DrmExecPriv) -> None:
    exec = DrmExec()

    drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
    for _ in drm_exec_until_all_locked(exec):
        break
    drm_exec_fini(exec)

    drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
    for _ in drm_exec_until_all_locked(exec):
        break
    drm_exec_fini(exec)


drm_exec_tests = [
    sanitycheck,
    test_lock,
    test_lock_unlock,
    test_duplicates,
    test_prepare,
    test_prepare_array,
    test_multiple_loops,
]
for _t in drm_exec_tests:
    _t.__test__ = False  # type: ignore[attr-defined]  # KUnit case names, run through test_drm_exec


@pytest.mark.parametrize("case", drm_exec_tests, ids=lambda f: f.__name__)
def test_drm_exec(run_on: Any, case: Any) -> None:
    def body() -> None:
        case(drm_exec_test_init())

    run_on(body)
