"""CPU access to a dma-buf: begin/end CPU access, the kernel virtual mapping (vmap), user mappings (mmap).

:func:`dma_buf_begin_cpu_access` waits (interruptibly) for the fences the access must not overtake; it and
:func:`dma_buf_end_cpu_access` tell lockdep-lite they might take the resv (``might_lock``);
:func:`dma_buf_vmap` / :func:`dma_buf_vunmap` (resv held; the ``_unlocked`` variants take it) refcount one
kernel mapping per buffer in ``vmap_ptr``; :func:`dma_buf_mmap` checks the range and calls the exporter's
``mmap``.

Kernel: ``dma_buf_begin_cpu_access``, ``dma_buf_end_cpu_access``, ``dma_buf_vmap``, ``dma_buf_vunmap``,
their ``_unlocked`` variants, ``dma_buf_mmap`` (drivers/dma-buf/dma-buf.c).
"""

from __future__ import annotations

import errno

from .. import lockdep
from ..errors import InvalidArgument
from ..kernel._warn import BUG_ON, WARN
from ..kernel.sched import MAX_SCHEDULE_TIMEOUT
from ..resv import usage_rw
from ..runtime import WRITE, active, label_of, rt
from .memory import PAGE_SHIFT
from .objects import (
    DmaBuf,
    VmAreaStruct,
    _alive,
    _chk,
    _forbids_resv,
    _lock,
    _op_ret,
    _ops,
    _requires_resv,
    _unlock,
)
from .sg_table import DMA_BIDIRECTIONAL, DMA_TO_DEVICE, CpuMapping, IosysMap, check_dir

__all__ = [
    "dma_buf_begin_cpu_access",
    "dma_buf_end_cpu_access",
    "dma_buf_mmap",
    "dma_buf_vmap",
    "dma_buf_vmap_unlocked",
    "dma_buf_vunmap",
    "dma_buf_vunmap_unlocked",
]

_U64 = 1 << 64


# ---------------------------------------------------------------------- CPU access
def _write_dir(direction: int) -> bool:
    return direction in (DMA_BIDIRECTIONAL, DMA_TO_DEVICE)


def _cpu_access_checks(dmabuf: DmaBuf | None, direction: int, fn: str) -> tuple[DmaBuf, int] | None:
    """The checks both CPU-access calls start with: the argument types, a WARN (and ``None``) for a ``NULL``
    buffer, the direction, a live buffer, and the resv not held by the caller."""
    _chk(dmabuf, DmaBuf, fn, "dmabuf")
    if WARN(dmabuf is None, f"{fn}(NULL)", f"{fn}: NULL"):
        return None
    assert dmabuf is not None
    direction = check_dir(direction, fn)
    _alive(dmabuf, fn)
    r = active()
    if not _forbids_resv(dmabuf.resv, fn) and r is not None:
        # might_lock(&resv->lock.base): every lock the caller holds gets an order edge to the resv class, so
        # a driver that calls CPU access under its own lock and elsewhere takes that lock under the resv gets
        # the circular-locking report even when its exporter's op never locks the resv
        lockdep.might_lock(r.current(), dmabuf.resv.lock)
    return dmabuf, direction


def dma_buf_begin_cpu_access(dmabuf: DmaBuf | None, direction: int) -> int:
    """Prepare CPU access: the exporter's ``begin_cpu_access`` (unlocked), then wait (interruptible) for the
    fences the access must not overtake (``dma_resv_usage_rw(write)``, write = BIDIRECTIONAL or TO_DEVICE).
    Returns 0, the exporter's error, ``-ERESTARTSYS``, or ``-EINVAL`` after a WARN for ``None``. The
    exporter's ``None`` is 0; any result but an int or ``None`` raises :class:`InvalidArgument` (no wait).

    Locking: must not hold the resv; ``might_lock`` records the order "held locks -> resv" for lockdep-lite.
    Kernel: ``dma_buf_begin_cpu_access``.
    """
    checked = _cpu_access_checks(dmabuf, direction, "dma_buf_begin_cpu_access")
    if checked is None:
        return -errno.EINVAL
    dmabuf, direction = checked
    ops = _ops(dmabuf)
    ret = 0
    if ops.begin_cpu_access is not None:
        ret = _op_ret(ops.begin_cpu_access(dmabuf, direction), dmabuf, "begin_cpu_access")
    if ret == 0:
        w = dmabuf.resv.wait_timeout(usage_rw(_write_dir(direction)), True, MAX_SCHEDULE_TIMEOUT)
        ret = w if w < 0 else 0
    return ret


def dma_buf_end_cpu_access(dmabuf: DmaBuf | None, direction: int) -> int:
    """End CPU access: the exporter's ``end_cpu_access`` (unlocked) or 0. The exporter's ``None`` is 0; any
    result but an int or ``None`` raises :class:`InvalidArgument`.

    Locking: must not hold the resv; ``might_lock`` records the order "held locks -> resv" for lockdep-lite.
    Kernel: ``dma_buf_end_cpu_access``.
    """
    checked = _cpu_access_checks(dmabuf, direction, "dma_buf_end_cpu_access")
    if checked is None:
        return -errno.EINVAL
    dmabuf, direction = checked
    ops = _ops(dmabuf)
    if ops.end_cpu_access is None:
        return 0
    return _op_ret(ops.end_cpu_access(dmabuf, direction), dmabuf, "end_cpu_access")


def _call_vmap(buf: DmaBuf) -> tuple[int, IosysMap]:
    """The exporter's ``vmap`` as ``(ret, map)``: a ``(ret, map)`` pair (``ret`` an int or ``None``), an
    ``IosysMap`` or mapping alone (0), or an int alone (the error, no map). InvalidArgument otherwise."""
    res = _ops(buf).vmap(buf)
    if isinstance(res, tuple):
        if len(res) != 2:
            raise InvalidArgument(
                f"the exporter's vmap of {label_of(buf)} returned a tuple of {len(res)} items; it must return "
                "(ret, map), an IosysMap or mapping alone, or an int error"
            )
        ret, m = res
        return _op_ret(ret, buf, "vmap"), m if isinstance(m, IosysMap) else IosysMap(m)
    if isinstance(res, IosysMap):
        return 0, res
    if isinstance(res, int) and not isinstance(res, bool):
        return res, IosysMap()
    return 0, IosysMap(res)


def dma_buf_vmap(dmabuf: DmaBuf | None) -> tuple[int, IosysMap]:
    """A kernel virtual mapping, refcounted: the first call runs the exporter's ``vmap``, later ones reuse
    ``vmap_ptr``. Returns ``(ret, map)``: ``(-EINVAL, cleared map)`` without a ``vmap`` op or (after a WARN)
    for ``None``; the exporter's error after a WARN. A ``vmap`` result of the wrong shape (a ``ret`` that is
    no int or ``None``, a tuple that is no pair) raises :class:`InvalidArgument`, the buffer not vmapped.

    Locking: resv held (checked). Kernel: ``dma_buf_vmap``.
    """
    _chk(dmabuf, DmaBuf, "dma_buf_vmap", "dmabuf")
    m = IosysMap()
    if WARN(dmabuf is None, "dma_buf_vmap(NULL)", "dma_buf_vmap: NULL"):
        return -errno.EINVAL, m
    assert dmabuf is not None
    _alive(dmabuf, "dma_buf_vmap")
    _requires_resv(dmabuf, "dma_buf_vmap")
    if _ops(dmabuf).vmap is None:
        return -errno.EINVAL, m
    rt().point("vmap", dmabuf, WRITE)
    if dmabuf.vmapping_counter:
        dmabuf.vmapping_counter += 1
        BUG_ON(dmabuf.vmap_ptr.is_null(), "dma_buf_vmap: counter set but vmap_ptr NULL")
        return 0, IosysMap(dmabuf.vmap_ptr.vaddr, dmabuf.vmap_ptr.is_iomem)
    BUG_ON(dmabuf.vmap_ptr.is_set(), "dma_buf_vmap: vmap_ptr set with a zero counter")
    ret, ptr = _call_vmap(dmabuf)
    if WARN(ret, f"dma_buf_vmap: the exporter's vmap of {label_of(dmabuf)} failed with {ret}", "dma_buf_vmap: vmap failed"):
        return ret, m
    if isinstance(ptr.vaddr, CpuMapping):
        ptr.vaddr.policy = dmabuf.policy
    dmabuf.vmap_ptr = ptr
    dmabuf.vmapping_counter = 1
    return 0, IosysMap(ptr.vaddr, ptr.is_iomem)


def dma_buf_vunmap(dmabuf: DmaBuf | None, map: IosysMap) -> None:
    """Drop one vmap reference; the last one runs the exporter's ``vunmap`` and clears ``vmap_ptr``. BUG on
    a NULL ``vmap_ptr``, a zero counter or a map that is not the buffer's.

    Locking: resv held (checked). Kernel: ``dma_buf_vunmap``.
    """
    _chk(dmabuf, DmaBuf, "dma_buf_vunmap", "dmabuf")
    _chk(map, IosysMap, "dma_buf_vunmap", "map", none_ok=False)
    if WARN(dmabuf is None, "dma_buf_vunmap(NULL)", "dma_buf_vunmap: NULL"):
        return
    assert dmabuf is not None
    _alive(dmabuf, "dma_buf_vunmap")
    _requires_resv(dmabuf, "dma_buf_vunmap")
    rt().point("vunmap", dmabuf, WRITE)
    BUG_ON(dmabuf.vmap_ptr.is_null(), f"dma_buf_vunmap: {label_of(dmabuf)} is not vmapped")
    BUG_ON(dmabuf.vmapping_counter == 0, f"dma_buf_vunmap: {label_of(dmabuf)} vmapping_counter is 0")
    BUG_ON(dmabuf.vmap_ptr != map, f"dma_buf_vunmap: {map!r} is not the vmap of {label_of(dmabuf)}")
    dmabuf.vmapping_counter -= 1
    if dmabuf.vmapping_counter == 0:
        ops = _ops(dmabuf)
        if ops.vunmap is not None:
            ops.vunmap(dmabuf, map)
        v = dmabuf.vmap_ptr.vaddr
        if isinstance(v, CpuMapping):
            v.unmapped_by = f"dma_buf_vunmap in task {rt().current().name!r}"
        dmabuf.vmap_ptr = IosysMap()


def dma_buf_vmap_unlocked(dmabuf: DmaBuf | None) -> tuple[int, IosysMap]:
    """Lock, :func:`dma_buf_vmap`, unlock. Locking: must not hold the resv. Kernel: ``dma_buf_vmap_unlocked``."""
    _chk(dmabuf, DmaBuf, "dma_buf_vmap_unlocked", "dmabuf")
    if WARN(dmabuf is None, "dma_buf_vmap_unlocked(NULL)", "dma_buf_vmap_unlocked: NULL"):
        return -errno.EINVAL, IosysMap()
    assert dmabuf is not None
    held = _forbids_resv(dmabuf.resv, "dma_buf_vmap_unlocked")
    _lock(dmabuf, held)
    try:
        return dma_buf_vmap(dmabuf)
    finally:
        _unlock(dmabuf, held)


def dma_buf_vunmap_unlocked(dmabuf: DmaBuf | None, map: IosysMap) -> None:
    """Lock, :func:`dma_buf_vunmap`, unlock. Locking: must not hold the resv. Kernel:
    ``dma_buf_vunmap_unlocked``."""
    _chk(dmabuf, DmaBuf, "dma_buf_vunmap_unlocked", "dmabuf")
    _chk(map, IosysMap, "dma_buf_vunmap_unlocked", "map", none_ok=False)
    if WARN(dmabuf is None, "dma_buf_vunmap_unlocked(NULL)", "dma_buf_vunmap_unlocked: NULL"):
        return
    assert dmabuf is not None
    held = _forbids_resv(dmabuf.resv, "dma_buf_vunmap_unlocked")
    _lock(dmabuf, held)
    try:
        dma_buf_vunmap(dmabuf, map)
    finally:
        _unlock(dmabuf, held)


def dma_buf_mmap(dmabuf: DmaBuf | None, vma: VmAreaStruct | None, pgoff: int) -> int:
    """Map the buffer to user space: ``-EINVAL`` without an ``mmap`` op, ``-EOVERFLOW`` if ``pgoff +
    pages`` wraps, ``-EINVAL`` if it exceeds the buffer's pages; else sets ``vma.vm_file``/``vm_pgoff``
    and returns the exporter's ``mmap`` (``None`` is 0). An exception from it, such as the
    :class:`InvalidArgument` for a result that is no int or ``None``, propagates with ``vm_file`` /
    ``vm_pgoff`` put back as they were.

    Locking: must not hold the resv. Kernel: ``dma_buf_mmap``.
    """
    _chk(dmabuf, DmaBuf, "dma_buf_mmap", "dmabuf")
    _chk(vma, VmAreaStruct, "dma_buf_mmap", "vma")
    if WARN(dmabuf is None or vma is None, "dma_buf_mmap: NULL buffer or vma", "dma_buf_mmap: NULL"):
        return -errno.EINVAL
    assert dmabuf is not None and vma is not None
    if isinstance(pgoff, bool) or not isinstance(pgoff, int) or not 0 <= pgoff < _U64:
        raise InvalidArgument(f"dma_buf_mmap needs an unsigned long pgoff, got {pgoff!r}")
    _alive(dmabuf, "dma_buf_mmap")
    _forbids_resv(dmabuf.resv, "dma_buf_mmap")
    ops = _ops(dmabuf)
    if ops.mmap is None:
        return -errno.EINVAL
    n = vma.pages()
    if pgoff + n >= _U64:
        return -errno.EOVERFLOW
    if pgoff + n > dmabuf.size >> PAGE_SHIFT:
        return -errno.EINVAL
    old_file, old_pgoff = vma.vm_file, vma.vm_pgoff
    vma.vm_file = dmabuf.file
    vma.vm_pgoff = pgoff
    try:
        return _op_ret(ops.mmap(dmabuf, vma), dmabuf, "mmap")
    except Exception:
        vma.vm_file, vma.vm_pgoff = old_file, old_pgoff
        raise
