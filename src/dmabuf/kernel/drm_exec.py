"""Kernel names for drm_exec (``drm/drm_exec.h``) and the GEM object bits it uses, over
:mod:`dmabuf.drm_exec`.

The C retry loop becomes a generator plus an explicit ``continue``::

    for _ in drm_exec_until_all_locked(exec):
        ret = drm_exec_lock_obj(exec, obj)
        if drm_exec_retry_on_contention(exec):
            continue
        ...

and ``drm_exec_for_each_locked_object(exec)`` yields ``(index, obj)`` like the macro's two loop variables.

Kernel: include/drm/drm_exec.h, drivers/gpu/drm/drm_exec.c, drivers/gpu/drm/drm_gem.c.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..drm_exec import (
    DRM_EXEC_IGNORE_DUPLICATES,
    DRM_EXEC_INTERRUPTIBLE_WAIT,
    DrmExec,
    DrmGemObject,
    DrmGemObjectFuncs,
    check_exec,
    check_gem,
)
from ..errors import InvalidArgument

__all__ = [
    "DRM_EXEC_IGNORE_DUPLICATES",
    "DRM_EXEC_INTERRUPTIBLE_WAIT",
    "DrmExec",
    "DrmGemObject",
    "DrmGemObjectFuncs",
    "drm_exec_cleanup",
    "drm_exec_fini",
    "drm_exec_for_each_locked_object",
    "drm_exec_for_each_locked_object_reverse",
    "drm_exec_init",
    "drm_exec_is_contended",
    "drm_exec_lock_obj",
    "drm_exec_obj",
    "drm_exec_prepare_array",
    "drm_exec_prepare_obj",
    "drm_exec_retry_on_contention",
    "drm_exec_unlock_obj",
    "drm_exec_until_all_locked",
    "drm_gem_object_get",
    "drm_gem_object_put",
    "drm_gem_private_object_fini",
    "drm_gem_private_object_init",
]


# ---------------------------------------------------------------------- GEM objects
def drm_gem_private_object_init(dev: Any, obj: DrmGemObject, size: int) -> None:
    """One reference, the embedded resv unless ``obj.resv`` was set; BUGs for a size that is not a
    multiple of PAGE_SIZE. Kernel: ``drm_gem_private_object_init``."""
    if not isinstance(obj, DrmGemObject):
        raise InvalidArgument(f"drm_gem_private_object_init needs a DrmGemObject, got {type(obj).__name__}")
    obj.private_init(dev, size)


def drm_gem_private_object_fini(obj: DrmGemObject) -> None:
    """Finalise the embedded resv. Kernel: ``drm_gem_private_object_fini``."""
    check_gem(obj, "drm_gem_private_object_fini").private_fini()


def drm_gem_object_get(obj: DrmGemObject) -> None:
    """Take a reference. Kernel: ``drm_gem_object_get``."""
    check_gem(obj, "drm_gem_object_get").get()


def drm_gem_object_put(obj: DrmGemObject | None) -> None:
    """Drop a reference (``NULL`` is ignored); the last calls ``obj.funcs.free``. Kernel:
    ``drm_gem_object_put``."""
    if obj is None:
        return
    if not isinstance(obj, DrmGemObject):
        raise InvalidArgument(f"drm_gem_object_put needs a DrmGemObject, got {type(obj).__name__}")
    obj.put()


# ---------------------------------------------------------------------- drm_exec
def drm_exec_init(exec: DrmExec, flags: int, nr: int) -> None:
    """Kernel: ``drm_exec_init``."""
    check_exec(exec, "drm_exec_init").init(flags, nr)


def drm_exec_fini(exec: DrmExec) -> None:
    """Unlock everything, drop references, end the ticket. Kernel: ``drm_exec_fini``."""
    check_exec(exec, "drm_exec_fini").fini()


def drm_exec_cleanup(exec: DrmExec) -> bool:
    """The retry loop's condition. Kernel: ``drm_exec_cleanup``."""
    return check_exec(exec, "drm_exec_cleanup").cleanup()


def drm_exec_until_all_locked(exec: DrmExec) -> Iterator[DrmExec]:
    """``for _ in drm_exec_until_all_locked(exec):`` Kernel: ``drm_exec_until_all_locked``."""
    return check_exec(exec, "drm_exec_until_all_locked").until_all_locked()


def drm_exec_retry_on_contention(exec: DrmExec) -> bool:
    """True when the loop body must ``continue``. Kernel: ``drm_exec_retry_on_contention``."""
    return check_exec(exec, "drm_exec_retry_on_contention").retry_on_contention()


def drm_exec_is_contended(exec: DrmExec) -> bool:
    """Kernel: ``drm_exec_is_contended``."""
    return check_exec(exec, "drm_exec_is_contended").is_contended()


def drm_exec_lock_obj(exec: DrmExec, obj: DrmGemObject) -> int:
    """0, ``-EDEADLK``, ``-EALREADY``, ``-EINTR``. Kernel: ``drm_exec_lock_obj``."""
    return check_exec(exec, "drm_exec_lock_obj").lock_obj(check_gem(obj, "drm_exec_lock_obj"))


def drm_exec_unlock_obj(exec: DrmExec, obj: DrmGemObject) -> None:
    """Kernel: ``drm_exec_unlock_obj``."""
    check_exec(exec, "drm_exec_unlock_obj").unlock_obj(check_gem(obj, "drm_exec_unlock_obj"))


def drm_exec_prepare_obj(exec: DrmExec, obj: DrmGemObject, num_fences: int) -> int:
    """Lock and reserve fence slots. Kernel: ``drm_exec_prepare_obj``."""
    return check_exec(exec, "drm_exec_prepare_obj").prepare_obj(
        check_gem(obj, "drm_exec_prepare_obj"), num_fences
    )


def drm_exec_prepare_array(
    exec: DrmExec, objects: list[DrmGemObject], num_objects: int, num_fences: int
) -> int:
    """Prepare ``objects[:num_objects]``, stopping at the first error. Kernel: ``drm_exec_prepare_array``."""
    fn = "drm_exec_prepare_array"
    for what, v in (("num_objects", num_objects), ("num_fences", num_fences)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise InvalidArgument(f"{fn}: {what} must be an int, got {v!r}")
    if not isinstance(objects, list) or num_objects > len(objects):
        raise InvalidArgument(f"{fn} needs a list of at least num_objects GEM objects")
    return check_exec(exec, fn).prepare_array([check_gem(o, fn) for o in objects[:num_objects]], num_fences)


def drm_exec_obj(exec: DrmExec, index: int) -> DrmGemObject | None:
    """Kernel: ``drm_exec_obj``."""
    if isinstance(index, bool) or not isinstance(index, int):
        raise InvalidArgument(f"drm_exec_obj needs an int index, got {index!r}")
    return check_exec(exec, "drm_exec_obj").obj(index)


def drm_exec_for_each_locked_object(exec: DrmExec) -> Iterator[tuple[int, DrmGemObject]]:
    """``for index, obj in drm_exec_for_each_locked_object(exec)``. Kernel:
    ``drm_exec_for_each_locked_object``."""
    return check_exec(exec, "drm_exec_for_each_locked_object").locked_objects()


def drm_exec_for_each_locked_object_reverse(exec: DrmExec) -> Iterator[tuple[int, DrmGemObject]]:
    """Newest first. Kernel: ``drm_exec_for_each_locked_object_reverse``."""
    ex = check_exec(exec, "drm_exec_for_each_locked_object_reverse")
    index = ex.num_objects - 1
    while (o := ex.obj(index)) is not None:
        yield index, o
        index -= 1
