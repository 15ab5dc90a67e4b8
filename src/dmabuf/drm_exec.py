"""drm_exec: lock many GEM objects' reservation objects with the ww back-off loop done for you.

A :class:`DrmExec` owns one acquire context (``ticket``) of :data:`~dmabuf.resv.reservation_ww_class` and the
list of objects it locked. Its retry loop locks objects one by one; when a lock returns ``-EDEADLK`` the
contended object is remembered, the next loop iteration unlocks everything, sleeps for the contended object
with ``lock_slow`` (it becomes ``prelocked``) and the body runs again. Kernel style::

    drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
    for _ in drm_exec_until_all_locked(exec):
        ret = drm_exec_prepare_obj(exec, obj, 1)
        if drm_exec_retry_on_contention(exec):
            continue
        if ret: ...
    drm_exec_fini(exec)

Pythonic style: ``with DrmExec() as ex: ex.lock_all(objs, num_fences=1)``.

:class:`DrmGemObject` is the part of ``struct drm_gem_object`` the helper needs: a reference count and
``resv`` (its own embedded ``_resv`` unless the driver pointed ``resv`` at a shared one before init).

Kernel: drivers/gpu/drm/drm_exec.c, include/drm/drm_exec.h, drivers/gpu/drm/drm_gem.c (v6.12).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from .errors import InvalidArgument, UsageError
from .kernel._warn import BUG, WARN
from .kernel.errno import EALREADY, EDEADLK, EINTR
from .kernel.kref import Kref
from .resv import DmaResv, reservation_ww_class
from .runtime import label_of
from .sync.ww_mutex import WWAcquireCtx

__all__ = [
    "DRM_EXEC_IGNORE_DUPLICATES",
    "DRM_EXEC_INTERRUPTIBLE_WAIT",
    "PAGE_SIZE",
    "DrmExec",
    "DrmGemObject",
    "DrmGemObjectFuncs",
    "check_exec",
    "check_gem",
]

#: Wait interruptibly for locks (``-EINTR`` when a signal arrives).
DRM_EXEC_INTERRUPTIBLE_WAIT = 1 << 0
#: Locking an object twice under one exec is not an error (``-EALREADY`` becomes 0).
DRM_EXEC_IGNORE_DUPLICATES = 1 << 1
PAGE_SIZE = 4096


class DrmGemObjectFuncs:
    """The GEM object ops the model needs (``struct drm_gem_object_funcs``): ``free(obj)``, called when
    the last reference is dropped."""

    def __init__(self, free: Callable[[DrmGemObject], object] | None = None) -> None:
        if free is not None and not callable(free):
            raise InvalidArgument(f"DrmGemObjectFuncs: free must be a function, got {type(free).__name__}")
        self.free = free


class DrmGemObject:
    """A GEM buffer object (``struct drm_gem_object``), reduced to what drm_exec and dma-buf need.

    ``DrmGemObject()`` is an empty struct: set ``resv`` to share another object's reservation object, then
    ``drm_gem_private_object_init(dev, obj, size)``. ``DrmGemObject(size)`` (Pythonic) is ready at once and
    frees itself (``drm_gem_private_object_fini``) when its last reference is dropped.

    Fields (kernel names): ``dev``, ``size``, ``refcount`` (a :class:`~dmabuf.kernel.kref.Kref`),
    ``handle_count``, ``resv``, ``_resv`` (the embedded one), ``funcs``, ``dma_buf``, ``import_attach``.

    Kernel: ``struct drm_gem_object`` (include/drm/drm_gem.h).
    """

    def __init__(
        self,
        size: int | None = None,
        *,
        resv: DmaResv | None = None,
        dev: Any = None,
        name: str | None = None,
    ) -> None:
        self.dev: Any = None
        self.size = 0
        self.refcount = Kref(self)
        self.handle_count = 0
        self._resv = DmaResv(None if name is None else f"{name}.resv")
        self.resv: DmaResv | None = resv
        self.funcs: DrmGemObjectFuncs | None = None
        self.dma_buf: Any = None
        self.import_attach: Any = None
        self._ready = False
        self._dm_label = name
        if size is not None:
            self.private_init(dev, size)
            self.funcs = DrmGemObjectFuncs(free=lambda o: o.private_fini())

    def private_init(self, dev: Any, size: int) -> None:
        """Initialise without backing storage: one reference, the embedded resv (used unless ``resv`` was
        set before). BUGs unless ``size`` is a multiple of ``PAGE_SIZE``.

        Kernel: ``drm_gem_private_object_init`` (drivers/gpu/drm/drm_gem.c).
        """
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidArgument(f"drm_gem_private_object_init needs a size in bytes, got {size!r}")
        if size & (PAGE_SIZE - 1):
            BUG(f"drm_gem_private_object_init: size {size} is not a multiple of PAGE_SIZE")
        self.dev = dev
        self.refcount.init()
        self.handle_count = 0
        self.size = size
        self._resv.init()
        if self.resv is None:
            self.resv = self._resv
        self._ready = True

    def private_fini(self) -> None:
        """Undo :meth:`private_init`: WARNs if still exported, finalises the embedded resv.

        Kernel: ``drm_gem_private_object_fini``."""
        WARN(
            self.dma_buf is not None,
            f"drm_gem_private_object_fini of {label_of(self)} while it is still exported as a dma-buf",
            "drm_gem_private_object_fini: dma_buf still set",
        )
        self._resv.fini()
        self._ready = False

    def get(self) -> DrmGemObject:
        """Take a reference. Kernel: ``drm_gem_object_get``."""
        self.refcount.get()
        return self

    def put(self) -> None:
        """Drop a reference; the last one calls ``funcs.free``. Kernel: ``drm_gem_object_put``."""
        self.refcount.put(self._release)

    def _release(self, _kref: object) -> None:
        """``drm_gem_object_free``: WARNs when the object has no ``funcs.free``."""
        funcs = self.funcs
        if WARN(
            funcs is None or funcs.free is None,
            f"drm_gem_object_free of {label_of(self)} without funcs->free",
            "drm_gem_object_free: no free function",
        ):
            return
        assert funcs is not None and funcs.free is not None
        funcs.free(self)

    def check(self, fn: str) -> DmaResv:
        """The object's resv, or InvalidArgument if the object was never initialised."""
        if not self._ready or self.resv is None:
            raise InvalidArgument(
                f"{fn}: GEM object {label_of(self)} is not initialised; call drm_gem_private_object_init"
            )
        return self.resv

    def __repr__(self) -> str:
        return f"<DrmGemObject {label_of(self)} size={self.size}>"


def check_gem(obj: Any, fn: str) -> DrmGemObject:
    """Argument check of kernel-named functions: an initialised :class:`DrmGemObject`."""
    if not isinstance(obj, DrmGemObject):
        what = "NULL" if obj is None else type(obj).__name__
        raise InvalidArgument(f"{fn} needs a DrmGemObject, got {what}")
    obj.check(fn)
    return obj


class _Dummy:
    """``DRM_EXEC_DUMMY``: ``contended`` before the retry loop was entered."""

    _dm_label = "DRM_EXEC_DUMMY"

    def __repr__(self) -> str:
        return "DRM_EXEC_DUMMY"


DRM_EXEC_DUMMY: Any = _Dummy()


class DrmExec:
    """An execution context that locks GEM objects (``struct drm_exec``).

    ``DrmExec(flags, nr)`` is initialised (``drm_exec_init``); ``with DrmExec() as ex:`` calls :meth:`fini`
    at the end, unlocking everything.

    Fields (kernel names): ``flags``, ``ticket`` (the :class:`WWAcquireCtx`), ``num_objects``,
    ``max_objects``, ``objects`` (locked objects, each referenced), ``contended`` (``DRM_EXEC_DUMMY`` before
    the loop, ``None``, or the object we must back off for, referenced), ``prelocked``.

    Locking: an exec belongs to the task that uses it; its objects' resvs are held between the end of the
    retry loop and :meth:`fini`.

    Kernel: ``struct drm_exec`` (include/drm/drm_exec.h, drivers/gpu/drm/drm_exec.c).
    """

    def __init__(self, flags: int = 0, nr: int = 0) -> None:
        self.flags = 0
        self.ticket = WWAcquireCtx()
        self.num_objects = 0
        self.max_objects = 0
        self.objects: list[DrmGemObject] = []
        self.contended: Any = DRM_EXEC_DUMMY
        self.prelocked: DrmGemObject | None = None
        self.init(flags, nr)

    # ------------------------------------------------------------------ life cycle
    def init(self, flags: int, nr: int = 0) -> None:
        """Reset to an empty exec that has not entered its loop. Kernel: ``drm_exec_init``."""
        if isinstance(flags, bool) or not isinstance(flags, int) or flags < 0:
            raise InvalidArgument(f"drm_exec_init needs int flags, got {flags!r}")
        if isinstance(nr, bool) or not isinstance(nr, int) or nr < 0:
            raise InvalidArgument(f"drm_exec_init needs an object count >= 0, got {nr!r}")
        self.flags = flags
        self.max_objects = nr if nr else PAGE_SIZE // 8
        self.objects = []
        self.num_objects = 0
        self.contended = DRM_EXEC_DUMMY
        self.prelocked = None
        self.ticket = WWAcquireCtx()

    def fini(self) -> None:
        """Unlock every object, drop the references and, if the loop was entered, end the ticket.

        Kernel: ``drm_exec_fini``."""
        self._unlock_all()
        self.objects = []
        if self.contended is not DRM_EXEC_DUMMY:
            if self.contended is not None:
                self.contended.put()
            self.ticket.fini()

    def __enter__(self) -> DrmExec:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is not None and not issubclass(et, Exception):
            return  # the runtime is tearing the task down
        self.fini()

    # ------------------------------------------------------------------ the retry loop
    def cleanup(self) -> bool:
        """Loop condition: True to run the body (again), False once everything is locked.

        First call: start the ticket. No contention: ``ww_acquire_done``, False. Contention: unlock all,
        True. Kernel: ``drm_exec_cleanup``.
        """
        if self.contended is None:
            self.ticket.done()
            return False
        if self.contended is DRM_EXEC_DUMMY:
            self.contended = None
            self.ticket.init(reservation_ww_class)
            return True
        self._unlock_all()
        self.num_objects = 0
        return True

    def until_all_locked(self) -> Iterator[DrmExec]:
        """``for _ in ex.until_all_locked():`` runs the body until it locked everything without contention.
        Kernel: ``drm_exec_until_all_locked``."""
        while self.cleanup():
            yield self

    def is_contended(self) -> bool:
        """True if a lock hit contention and the loop must restart, and (as in the kernel, where it is
        ``!!contended``) before the loop was entered, while ``contended`` is ``DRM_EXEC_DUMMY``.
        Kernel: ``drm_exec_is_contended``."""
        return self.contended is not None

    def retry_on_contention(self) -> bool:
        """True when the body must ``continue`` (restart the loop). Kernel: ``drm_exec_retry_on_contention``
        (a ``goto`` to the loop head in C)."""
        return self.is_contended()

    # ------------------------------------------------------------------ locking objects
    def _unlock_all(self) -> None:
        """``drm_exec_unlock_all``: unlock in reverse order, drop references (also ``prelocked``'s)."""
        while self.objects:
            obj = self.objects.pop()
            self.num_objects = len(self.objects)
            resv = obj.resv
            assert resv is not None
            resv.unlock()
            obj.put()
        self.num_objects = 0
        if self.prelocked is not None:
            self.prelocked.put()
        self.prelocked = None

    def _obj_locked(self, obj: DrmGemObject) -> int:
        """``drm_exec_obj_locked``: track (and reference) a locked object."""
        if self.num_objects == self.max_objects:
            self.max_objects += PAGE_SIZE // 8
        self.objects.append(obj.get())
        self.num_objects = len(self.objects)
        return 0

    def _lock_contended(self) -> int:
        """``drm_exec_lock_contended``: slow-lock the object we backed off for, before anything else."""
        obj = self.contended
        if obj is None or obj is DRM_EXEC_DUMMY:
            return 0
        self.contended = None
        resv = obj.resv
        if self.flags & DRM_EXEC_INTERRUPTIBLE_WAIT:
            ret = resv.lock_slow_interruptible(self.ticket)
            if ret:
                obj.put()
                return int(ret)
        else:
            resv.lock_slow(self.ticket)
        self._obj_locked(obj)
        self.prelocked = obj
        return 0

    def _check_loop(self, fn: str) -> None:
        if self.contended is DRM_EXEC_DUMMY:
            raise UsageError(f"{fn} outside the drm_exec_until_all_locked loop: the ticket is not started")

    def lock_obj(self, obj: DrmGemObject) -> int:
        """Lock ``obj``'s resv under the ticket and track it (with a reference).

        Returns:
            0; ``-EDEADLK`` on contention (``obj`` becomes ``contended``: restart the loop); ``-EALREADY``
            if already locked (0 with ``DRM_EXEC_IGNORE_DUPLICATES``); ``-EINTR`` if interrupted.

        Locking: inside the retry loop; may sleep. Kernel: ``drm_exec_lock_obj``.
        """
        resv = obj.check("drm_exec_lock_obj")
        self._check_loop("drm_exec_lock_obj")
        ret = self._lock_contended()
        if ret:
            return ret
        if self.prelocked is obj:
            self.prelocked.put()
            self.prelocked = None
            return 0
        ret = resv.lock_errno(self.ticket, interruptible=bool(self.flags & DRM_EXEC_INTERRUPTIBLE_WAIT))
        if ret == -EDEADLK:
            self.contended = obj.get()
            return -EDEADLK
        if ret == -EALREADY and self.flags & DRM_EXEC_IGNORE_DUPLICATES:
            return 0
        if ret:
            return ret
        return self._obj_locked(obj)

    def unlock_obj(self, obj: DrmGemObject) -> None:
        """Unlock ``obj`` and forget it (cheapest for the most recently locked). Kernel:
        ``drm_exec_unlock_obj``."""
        for i in range(len(self.objects) - 1, -1, -1):
            if self.objects[i] is obj:
                resv = obj.resv
                assert resv is not None
                resv.unlock()
                del self.objects[i]
                self.num_objects = len(self.objects)
                obj.put()
                return

    def prepare_obj(self, obj: DrmGemObject, num_fences: int) -> int:
        """Lock ``obj`` and reserve ``num_fences`` fence slots; results as :meth:`lock_obj`.
        Kernel: ``drm_exec_prepare_obj``."""
        ret = self.lock_obj(obj)
        if ret:
            return ret
        resv = obj.resv
        assert resv is not None
        ret = resv.reserve_fences(num_fences)
        if ret:
            self.unlock_obj(obj)
            return ret
        return 0

    def prepare_array(self, objects: Iterable[DrmGemObject], num_fences: int) -> int:
        """:meth:`prepare_obj` each object, stopping at the first error. Kernel: ``drm_exec_prepare_array``."""
        for obj in objects:
            ret = self.prepare_obj(obj, num_fences)
            if ret:
                return ret
        return 0

    def obj(self, index: int) -> DrmGemObject | None:
        """The ``index``-th locked object or ``None``. Kernel: ``drm_exec_obj``."""
        return self.objects[index] if 0 <= index < self.num_objects else None

    def locked_objects(self) -> Iterator[tuple[int, DrmGemObject]]:
        """``(index, obj)`` of each locked object in locking order. Kernel:
        ``drm_exec_for_each_locked_object``."""
        index = 0
        while (o := self.obj(index)) is not None:
            yield index, o
            index += 1

    # ------------------------------------------------------------------ Pythonic helper
    def lock_all(self, objects: Iterable[DrmGemObject], num_fences: int = 0) -> None:
        """Run the retry loop over ``objects`` (prepared with ``num_fences`` slots each when > 0).

        Raises:
            InterruptedError: ``DRM_EXEC_INTERRUPTIBLE_WAIT`` and a signal arrived.
            UsageError: an object appears twice without ``DRM_EXEC_IGNORE_DUPLICATES``.

        Locking: may sleep; on return every object is locked until :meth:`fini`.
        """
        objs = list(objects)
        for _ in self.until_all_locked():
            ret = 0
            for o in objs:
                ret = self.prepare_obj(o, num_fences) if num_fences else self.lock_obj(o)
                if ret:
                    break
            if self.retry_on_contention():
                continue
            if ret == -EINTR:
                raise InterruptedError(EINTR, "signal while locking reservation objects")
            if ret == -EALREADY:
                raise UsageError(
                    "drm_exec: an object was locked twice; pass DRM_EXEC_IGNORE_DUPLICATES to allow it"
                )
            if ret:
                raise UsageError(f"drm_exec: locking failed with {ret}")

    def __repr__(self) -> str:
        return f"<DrmExec {self.num_objects} locked contended={self.contended!r}>"


def check_exec(exec: Any, fn: str) -> DrmExec:
    """Argument check of kernel-named functions."""
    if not isinstance(exec, DrmExec):
        what = "NULL" if exec is None else type(exec).__name__
        raise InvalidArgument(f"{fn} needs a DrmExec, got {what}")
    return exec
