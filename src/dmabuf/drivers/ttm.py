"""A TTM-like exporter: buffer objects in memory domains with capacity, per-domain LRU eviction, pinning,
and export as a dynamic dma-buf.

Objects (kernel names in brackets):

* :class:`TtmDevice` [``struct ttm_device`` + its ``ttm_resource_manager``\\ s]: one
  :class:`TtmResourceManager` per domain (``VRAM``, ``GTT``, ``SYSTEM``) with a capacity in pages, a usage
  count, an LRU list of the unpinned BOs placed there, and the *ghosts* of moves out of it (old placements
  whose copy has not finished: they still occupy their pages). ``lru_lock`` (a spinlock) protects the LRU
  lists, the usage counts and the ghost lists.
* :class:`TtmBo` [``struct ttm_buffer_object``, embedding ``struct drm_gem_object``]: a
  :class:`~dmabuf.buf.memory.BufferObject` (the pages), ``mem_type`` (the domain), ``pin_count`` and, once
  exported, ``dma_buf``. The BO's resv (the GEM object's) protects ``mem_type``, ``pin_count`` and the
  placement; an exported BO shares it with its dma-buf (``drm_gem_prime_export``).

Operations (``bo.resv`` held unless said otherwise):

* :func:`ttm_bo_pin` / :func:`ttm_bo_unpin`: ``pin_count`` +/-1; a pinned BO leaves the LRU, so eviction never
  sees it (WARN on unpinning an unpinned BO) [``ttm_bo_pin``, ``ttm_bo_unpin``].
* :func:`ttm_bo_validate`: place the BO in one of ``domains`` (first that fits). First pass without
  eviction; second pass makes room: it reclaims ghosts (waits for their move fence and frees the pages) and
  evicts LRU victims of the domain [``ttm_bo_validate`` -> ``ttm_bo_mem_space`` -> ``ttm_bo_evict_alloc`` /
  ``ttm_lru_walk``]. A victim's resv is locked through the caller's drm_exec (the ww acquire context, a
  sleeping lock): ``-EDEADLK`` is returned to the caller, whose drm_exec loop backs off and retries (the
  victim becomes its contended object). Without an exec the victim is only trylocked (busy ones skipped),
  as TTM does without a ticket. BOs locked by the caller's own ticket are not victims (its working set).
  After locking, the victim is re-checked (still in that domain, not pinned since) and evicted:
* eviction = :func:`_ttm_bo_move` to the next lower domain with room (VRAM -> GTT -> SYSTEM): the copy is
  **pipelined** behind every fence of the victim's resv (BOOKKEEP: importers' jobs, earlier moves), the
  move fence is added to the resv with KERNEL usage, the old pages become a ghost whose pages the copy task
  frees as soon as the move fence (and the policy's ``free_old_after`` fences) signalled -- DMA through the
  old mapping after that is a use-after-free [``ttm_bo_move_to_ghost`` + delayed delete]; its usage is
  given back by the next reclaim -- and for an exported BO ``dma_buf_move_notify`` is
  called under the victim's resv -- on every move: amdgpu skips moves out of SYSTEM, whose pages no importer
  maps, but this model maps SYSTEM pages and copies them away [``ttm_bo_move_accel_cleanup``,
  ``amdgpu_bo_move_notify``].
* :func:`~dmabuf.drivers.ttm_dmabuf.ttm_bo_export` (in :mod:`.ttm_dmabuf`): a **dynamic** dma-buf sharing
  the BO's resv. The BO keeps its live mappings (``live_maps``); ``TtmDevice.fini`` reports one left.

What differs from TTM (the memory model cannot share a page between two placements): TTM hands the
evicted range to the new BO at once and orders the new BO's use after the eviction with the manager's
``move`` fence; here the evicting task waits for the eviction's move fence and frees the old pages before
it allocates (a ghost reclaim). No recursive eviction of the target domain (no ``-EMULTIHOP`` bounce), no
per-BO allowed ranges, no swapout.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import Any

from ..buf.core import DmaBufAttachment, dma_buf_move_notify
from ..buf.memory import DEFAULT_DOMAINS, BufferObject, Move, configure_memory, memory
from ..drm_exec import PAGE_SIZE as GEM_PAGE_SIZE
from ..drm_exec import DrmExec, DrmGemObject, DrmGemObjectFuncs
from ..errors import InvalidArgument, UsageError
from ..fence.fence import DmaFence
from ..kernel._warn import WARN
from ..kernel.errno import EDEADLK
from ..resv import Usage
from ..runtime import label_of
from ..sync.spinlock import SpinLock

__all__ = [
    "TtmBo",
    "TtmDevice",
    "TtmResourceManager",
    "ttm_bo_move_to_lru_tail",
    "ttm_bo_pin",
    "ttm_bo_unpin",
    "ttm_bo_validate",
    "ttm_exec_validate",
]

#: Domains from fastest to slowest; eviction moves a BO to the next one with room.
DOMAIN_ORDER = ("VRAM", "GTT", "SYSTEM")


class _Ghost:
    """The old placement of a move (a TTM ghost object): its pages go back to the pool as soon as the move
    fence and the policy's ``free_old_after`` fences signalled (the copy task frees them); its usage in the
    manager is given back by the next :meth:`TtmDevice.reclaim`. Owns references on ``fences``."""

    def __init__(self, bo: TtmBo, move: Move, fences: list[DmaFence]) -> None:
        self.bo = bo
        self.move = move
        self.fences = fences
        self.npages = bo.npages

    def __repr__(self) -> str:
        return f"<ghost of {self.move.name}>"


class TtmResourceManager:
    """One domain: capacity and usage in pages, LRU of unpinned BOs (least recently used first), ghosts.
    Kernel: ``struct ttm_resource_manager`` with its ``lru[]`` lists."""

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self.usage = 0
        self.lru: list[TtmBo] = []
        self.ghosts: list[_Ghost] = []
        #: ghosts reclaimed so far: a task that found no room and then no ghost to wait for retries if another
        #: task reclaimed one in between
        self.ghosts_freed = 0
        self._dm_label = f"ttm.{name}"

    def __repr__(self) -> str:
        return f"<TtmResourceManager {self.name} {self.usage}/{self.capacity} lru={[label_of(b) for b in self.lru]}>"


class TtmDevice:
    """A device with TTM memory management (see the module docstring).

    Args:
        vram, gtt, system: capacity of each domain in pages (model pages of 4 bytes). The execution's memory
            pools are configured with ``max`` of them (or must already be at least that big).

    Attributes:
        evictions: how many evictions happened; ``backoffs``: how many ``-EDEADLK`` an eviction returned;
        ``skipped_pinned``: victims found pinned after locking them. For tests and reports.
    """

    def __init__(self, vram: int = 2, gtt: int = 4, system: int = 8, *, name: str = "ttm") -> None:
        caps = {"VRAM": vram, "GTT": gtt, "SYSTEM": system}
        for d, c in caps.items():
            if isinstance(c, bool) or not isinstance(c, int) or c <= 0:
                raise InvalidArgument(f"TtmDevice: capacity of {d} must be a positive page count, got {c!r}")
        pages = max(caps.values())
        try:
            configure_memory(pages=pages, domains=DEFAULT_DOMAINS)
        except UsageError:
            mem = memory()
            for d, c in caps.items():
                if len(mem.domain(d).pages) < c:
                    raise UsageError(
                        f"TtmDevice: the memory pool of {d} has {len(mem.domain(d).pages)} pages, the device "
                        f"needs {c}; create the TtmDevice before the first buffer (or configure_memory bigger)"
                    ) from None
        self.name = name
        self._dm_label = name
        self.man = {d: TtmResourceManager(d, c) for d, c in caps.items()}
        self.lru_lock = SpinLock(f"{name}.lru_lock", lock_class="ttm_device.lru_lock")
        self.bos: list[TtmBo] = []
        self.evictions = 0
        self.backoffs = 0
        self.skipped_pinned = 0

    # ------------------------------------------------------------------ BOs
    def bo_create(
        self,
        size: int,
        domains: Sequence[str] = ("VRAM", "GTT"),
        *,
        name: str | None = None,
        init: bytes | None = None,
    ) -> TtmBo:
        """Create a BO of ``size`` bytes in the first of ``domains`` with room (evicting if needed, victims
        trylocked). Returns it with one GEM reference. Raises :class:`OSError` (``ENOSPC``) if no domain has
        room. Locking: none held. Kernel: ``ttm_bo_init_reserved`` + ``ttm_bo_validate`` + unreserve."""
        bo = TtmBo(self, size, name=name)
        resv = bo.resv
        assert resv is not None
        if not resv.trylock():  # a new object: nobody else can hold it
            raise UsageError(f"new BO {label_of(bo)} is locked")
        try:
            ret, dom = _mem_space(bo, list(domains), None)
            if ret:
                raise OSError(-ret, f"bo_create: no room for {label_of(bo)} in {list(domains)}")
            bo.bo = BufferObject(size, dom, name=name, init=init)
            self.lru_lock.lock()
            bo.mem_type = dom
            self.man[dom].lru.append(bo)
            self.bos.append(bo)
            self.lru_lock.unlock()
        finally:
            resv.unlock()
        return bo

    def validate(self, bo: TtmBo, domains: Sequence[str], fallback: Sequence[str] = ()) -> int:
        """Lock ``bo`` in a drm_exec loop and :func:`ttm_bo_validate` it into ``domains`` (else
        ``fallback``; victims locked through the exec, with back-off). Returns 0 or the error.
        Locking: none held."""
        return ttm_exec_validate([bo], bo, domains, fallback)

    # ------------------------------------------------------------------ ghosts
    def reclaim(self, man: TtmResourceManager, since: int | None = None) -> bool:
        """Wait for the oldest ghost of ``man`` to be gone (its move fence and ``free_old_after`` fences
        signalled, its copy task freed the pages), then give back its usage, unless another task did
        meanwhile (every task short of space waits for the same ghost, as TTM's allocations wait for the
        manager's move fence). False if ``man`` has no ghost -- unless ``since`` (``man.ghosts_freed`` read
        when the caller found no room) is given and a ghost was reclaimed since then by another task (the
        caller should retry). Locking: may sleep; no spinlock held."""
        self.lru_lock.lock()
        g = man.ghosts[0] if man.ghosts else None
        freed_since = since is not None and man.ghosts_freed != since
        self.lru_lock.unlock()
        if g is None:
            return freed_since
        # the copy task waits for the move fence and the ghost's fences, then frees the old pages
        g.move.task.join()
        self.lru_lock.lock()
        if g in man.ghosts:
            man.ghosts.remove(g)
            man.usage -= g.npages
            man.ghosts_freed += 1
            for f in g.fences:
                f.put()
        self.lru_lock.unlock()
        return True

    def fini(self) -> None:
        """Free every ghost still there (waits for the moves and their fences), then check that no mapping
        the exporter handed out is still live. Call at the end, without locks held.

        Raises:
            MappingLeak: a mapping was never unmapped (its attachment never detached either, or the
                detach would have said so): the DMA-API debug report of a mapping leaked at teardown.

        Kernel: ``ttm_device_fini`` (after ``ttm_bo_delayed_delete`` flushed)."""
        for man in self.man.values():
            while self.reclaim(man):
                pass
        left = [(bo, a, sgt) for bo in self.bos for a, sgt in bo.live_maps]
        if left:
            from ..errors import MappingLeak

            raise MappingLeak(
                f"mapping leak at {label_of(self)} teardown: {len(left)} mapping(s) of the TTM exporter never "
                "unmapped (" + ", ".join(f"{label_of(s)} of {label_of(a)}" for _bo, a, s in left) + "): "
                "every dma_buf_map_attachment needs its dma_buf_unmap_attachment, and every attachment its "
                "dma_buf_detach"
            )

    def __repr__(self) -> str:
        return f"<TtmDevice {self.name} {list(self.man.values())}>"


class TtmBo(DrmGemObject):
    """A TTM buffer object (see the module docstring). Create with :meth:`TtmDevice.bo_create`.

    Fields: ``device``, ``bo`` (the :class:`~dmabuf.buf.memory.BufferObject`), ``mem_type``, ``pin_count``,
    ``dma_buf`` (set by :func:`~dmabuf.drivers.ttm_dmabuf.ttm_bo_export`), ``npages``. ``resv`` and the reference count come from
    :class:`~dmabuf.drm_exec.DrmGemObject` (its ``size`` counts kernel pages, one per model page).
    """

    def __init__(self, device: TtmDevice, size: int, *, name: str | None = None) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise InvalidArgument(f"a TTM BO needs a positive size in bytes, got {size!r}")
        from ..buf.memory import PAGE_SIZE

        self.npages = -(-size // PAGE_SIZE)
        super().__init__(self.npages * GEM_PAGE_SIZE, name=name or f"ttmbo{len(device.bos) + 1}")
        self.funcs = DrmGemObjectFuncs(free=_ttm_bo_release)
        self.device = device
        self.bo: BufferObject | None = None
        self.mem_type: str | None = None
        self.pin_count = 0
        self.released = False
        #: the exporter's live mappings ``(attachment, sg table)``: ``map_dma_buf`` adds, ``unmap_dma_buf``
        #: removes; the exporter's ``detach`` reports the attachment's leftovers (a leaked sg table / IOMMU
        #: mapping)
        self.live_maps: list[tuple[DmaBufAttachment, Any]] = []

    def __repr__(self) -> str:
        return f"<TtmBo {label_of(self)} {self.mem_type} pin={self.pin_count}>"


# ---------------------------------------------------------------------- LRU, pin
def ttm_bo_move_to_lru_tail(bo: TtmBo) -> None:
    """Mark ``bo`` most recently used in its domain (unpinned BOs only). Locking: resv held; takes
    ``lru_lock``. Kernel: ``ttm_bo_move_to_lru_tail``."""
    dev = bo.device
    dev.lru_lock.lock()
    if bo.pin_count == 0 and bo.mem_type is not None:
        lru = dev.man[bo.mem_type].lru
        if bo in lru:
            lru.remove(bo)
        lru.append(bo)
    dev.lru_lock.unlock()


def ttm_bo_pin(bo: TtmBo) -> None:
    """Pin: ``pin_count += 1``; the first pin takes the BO off its LRU so no eviction can see it.
    Locking: resv held (asserted). Kernel: ``ttm_bo_pin``."""
    resv = bo.resv
    assert resv is not None
    resv.assert_held()
    dev = bo.device
    dev.lru_lock.lock()
    bo.pin_count += 1
    if bo.pin_count == 1 and bo.mem_type is not None and bo in dev.man[bo.mem_type].lru:
        dev.man[bo.mem_type].lru.remove(bo)
    if bo.bo is not None:
        bo.bo.pin_count = bo.pin_count
    dev.lru_lock.unlock()


def ttm_bo_unpin(bo: TtmBo) -> None:
    """Unpin: ``pin_count -= 1`` (WARN at 0); the last unpin puts the BO back at its LRU's tail.
    Locking: resv held (asserted). Kernel: ``ttm_bo_unpin``."""
    resv = bo.resv
    assert resv is not None
    resv.assert_held()
    if WARN(bo.pin_count == 0, f"ttm_bo_unpin: {label_of(bo)} is not pinned", "ttm_bo_unpin: pin_count 0"):
        return
    dev = bo.device
    dev.lru_lock.lock()
    bo.pin_count -= 1
    if bo.pin_count == 0 and bo.mem_type is not None:
        dev.man[bo.mem_type].lru.append(bo)
    if bo.bo is not None:
        bo.bo.pin_count = bo.pin_count
    dev.lru_lock.unlock()


# ---------------------------------------------------------------------- space and eviction
def _reserve(dev: TtmDevice, man: TtmResourceManager, n: int) -> bool:
    """Account ``n`` pages in ``man`` if they fit (``ttm_resource_alloc``)."""
    return _reserve_stamp(dev, man, n)[0]


def _reserve_stamp(dev: TtmDevice, man: TtmResourceManager, n: int) -> tuple[bool, int]:
    """:func:`_reserve`, also returning ``man.ghosts_freed`` as seen under the same lock."""
    dev.lru_lock.lock()
    ok = man.usage + n <= man.capacity
    if ok:
        man.usage += n
    stamp = man.ghosts_freed
    dev.lru_lock.unlock()
    return ok, stamp


def _mem_space(bo: TtmBo, domains: list[str], exec: DrmExec | None) -> tuple[int, str]:
    """Find room for ``bo`` in one of ``domains``: ``(0, domain)`` with the pages accounted there, or
    ``(-EDEADLK, "")`` (back off), ``(-ENOSPC, "")``. Kernel: ``ttm_bo_mem_space``."""
    dev = bo.device
    for d in domains:
        if d not in dev.man:
            raise InvalidArgument(f"ttm_bo_validate: unknown domain {d!r}; the device has {sorted(dev.man)}")
    for d in domains:  # first pass: no eviction
        if _reserve(dev, dev.man[d], bo.npages):
            return 0, d
    for d in domains:  # second pass: make room
        man = dev.man[d]
        while True:
            ok, stamp = _reserve_stamp(dev, man, bo.npages)
            if ok:
                return 0, d
            if dev.reclaim(man, stamp):
                continue
            ret = _evict_first(dev, man, bo, exec)
            if ret == -EDEADLK:
                return ret, ""
            if ret:
                break  # nothing evictable here: next domain
    return -errno.ENOSPC, ""


def _evict_first(dev: TtmDevice, man: TtmResourceManager, bo: TtmBo, exec: DrmExec | None) -> int:
    """Evict the least recently used BO of ``man`` that can go: 0 (a ghost now waits in ``man``),
    ``-EDEADLK`` (back off: the victim is the exec's contended object) or ``-EBUSY`` (none).
    Kernel: ``ttm_bo_evict_alloc`` / ``ttm_lru_walk_for_evict`` / ``ttm_bo_evict_cb``."""
    ticket = exec.ticket if exec is not None else None
    tried: list[TtmBo] = []
    while True:
        dev.lru_lock.lock()
        victim = None
        for v in man.lru:
            # the caller's own working set is not evictable (its resv is locked by our ticket: only we
            # could unlock it, so reading lock.ctx without a point is stable for this comparison)
            if (
                v is bo
                or v in tried
                or (ticket is not None and v.resv is not None and v.resv.lock.ctx is ticket)
            ):
                continue
            if v.refcount.get_unless_zero():
                victim = v
                break
        dev.lru_lock.unlock()
        if victim is None:
            return -errno.EBUSY
        tried.append(victim)
        resv = victim.resv
        assert resv is not None
        if exec is not None:
            ret = exec.lock_obj(victim)
            victim.put()  # the exec holds its own reference now (or the contended one)
            if ret == -EDEADLK:
                dev.backoffs += 1
                return ret
            if ret:
                continue
        else:
            if not resv.trylock():
                victim.put()
                continue
        # re-check under the victim's lock: it may have been pinned or moved meanwhile
        if victim.pin_count or victim.mem_type != man.name or victim.released:
            if victim.pin_count:
                dev.skipped_pinned += 1
            _unlock_victim(victim, exec)
            continue
        ret = _ttm_bo_evict(victim)
        _unlock_victim(victim, exec)
        if ret == 0:
            return 0


def _unlock_victim(victim: TtmBo, exec: DrmExec | None) -> None:
    if exec is not None:
        exec.unlock_obj(victim)
    else:
        resv = victim.resv
        assert resv is not None
        resv.unlock()
        victim.put()


def _ttm_bo_evict(bo: TtmBo) -> int:
    """Move ``bo`` (resv held) to the next lower domain with room: 0 or ``-ENOSPC``. Kernel: ``ttm_bo_evict``."""
    dev = bo.device
    assert bo.mem_type is not None
    lower = DOMAIN_ORDER[DOMAIN_ORDER.index(bo.mem_type) + 1 :]
    for d in lower:
        if _reserve(dev, dev.man[d], bo.npages):
            _ttm_bo_move(bo, d)
            dev.evictions += 1
            return 0
    return -errno.ENOSPC


def _ttm_bo_move(bo: TtmBo, domain: str) -> None:
    """Move ``bo`` to ``domain`` (pages already accounted there). The copy waits for every fence of the
    resv (pipelined), the move fence goes in the resv (KERNEL), the old pages become a ghost, exported BOs
    are move_notified -- on every move, also out of SYSTEM: amdgpu skips SYSTEM because no importer maps a
    SYSTEM BO there (``amdgpu_dma_buf_map`` validates it into GTT first) and a SYSTEM -> GTT move keeps the
    ``ttm_tt`` pages; here ``map_dma_buf`` maps SYSTEM pages and a move copies them to new pages, so an
    importer's SYSTEM mapping goes stale like any other. Locking: resv held (asserted).
    Kernel: ``ttm_bo_handle_move_mem`` -> ``amdgpu_bo_move`` -> ``ttm_bo_move_accel_cleanup``, then
    ``amdgpu_bo_move_notify``."""
    resv = bo.resv
    assert resv is not None and bo.bo is not None and bo.mem_type is not None
    resv.assert_held()
    dev = bo.device
    old = bo.mem_type
    fences = resv.get_fences(Usage.BOOKKEEP)
    after: list[DmaFence] = [f.get() for f in fences]
    policy: list[DmaFence] = []
    if bo.dma_buf is not None:
        policy = list(bo.dma_buf.policy.free_old_after(bo.dma_buf))
        after += [f.get() for f in policy]
    man = dev.man[old]
    # the copy task frees the old pages once the move fence and the policy's fences signalled (the ghost's
    # references keep those fences alive until a reclaim, which first joins the copy task):
    # ttm_bo_move_to_ghost + delayed delete; ttm_bo_move_pipeline_evict frees at once
    mv = bo.bo.move(domain, wait=fences, free_after=policy, resv=resv)
    ghost = _Ghost(bo, mv, after)
    dev.lru_lock.lock()
    if bo in man.lru:
        man.lru.remove(bo)
    bo.mem_type = domain
    if bo.pin_count == 0:
        dev.man[domain].lru.append(bo)
    man.ghosts.append(ghost)
    dev.lru_lock.unlock()
    # the ghost holds its own reference on every fence the copy waits for, so these can go now
    for f in fences:
        f.put()
    if bo.dma_buf is not None:
        dma_buf_move_notify(bo.dma_buf)


# ---------------------------------------------------------------------- validate
def ttm_bo_validate(
    bo: TtmBo, domains: Sequence[str], exec: DrmExec | None = None, *, fallback: Sequence[str] = ()
) -> int:
    """Place ``bo`` in one of ``domains`` (preferred, in order), else in one of ``fallback`` (amdgpu's
    preferred vs allowed domains: a BO already in a fallback domain stays there when no preferred domain
    has room). See the module docstring for the eviction. Returns 0, ``-EDEADLK`` (back off: restart the
    caller's drm_exec loop), ``-ENOSPC`` or ``-EINVAL`` (pinned elsewhere).

    Locking: ``bo.resv`` held (asserted) — through ``exec`` when given, whose ticket then locks victims.
    May sleep (ghost reclaim waits for move fences). Kernel: ``ttm_bo_validate``.
    """
    resv = bo.resv
    assert resv is not None
    resv.assert_held()
    doms, fb = list(domains), list(fallback)
    if not doms:
        raise InvalidArgument("ttm_bo_validate needs at least one domain")
    if bo.mem_type in doms:
        ttm_bo_move_to_lru_tail(bo)
        return 0
    if bo.pin_count:
        return -errno.EINVAL
    ret, dom = _mem_space(bo, doms, exec)
    if ret == -errno.ENOSPC and fb:
        if bo.mem_type in fb:
            ttm_bo_move_to_lru_tail(bo)
            return 0
        ret, dom = _mem_space(bo, fb, exec)
    if ret:
        return ret
    _ttm_bo_move(bo, dom)
    return 0


def ttm_exec_validate(
    lock: Sequence[TtmBo], bo: TtmBo, domains: Sequence[str], fallback: Sequence[str] = ()
) -> int:
    """A command submission's validation: a drm_exec loop that locks every BO of ``lock`` (one fence slot
    each) and validates ``bo`` into ``domains`` (else ``fallback``), backing off and retrying on
    ``-EDEADLK`` (from locking the working set or an eviction victim). Returns 0 or the error.
    Locking: none held. Kernel: ``amdgpu_cs_parser_bos`` / ``amdgpu_cs_validate``."""
    ex = DrmExec(0, 0)
    ret = 0
    try:
        for _ in ex.until_all_locked():
            ret = 0
            for o in lock:
                ret = ex.prepare_obj(o, 1)
                if ret:
                    break
            if ex.retry_on_contention():
                continue
            if ret:
                break
            ret = ttm_bo_validate(bo, domains, ex, fallback=fallback)
            if ex.retry_on_contention():
                continue
    finally:
        ex.fini()
    return ret


# ---------------------------------------------------------------------- release
def _ttm_bo_release(obj: DrmGemObject) -> None:
    """The last GEM reference is gone: off the LRU, wait for every fence (delayed destroy, simplified to a
    wait), free the pages and the accounting. Kernel: ``ttm_bo_release`` / ``ttm_bo_delayed_delete``."""
    assert isinstance(obj, TtmBo)
    bo = obj
    dev = bo.device
    resv = bo.resv
    assert resv is not None
    resv.wait(Usage.BOOKKEEP)
    dev.lru_lock.lock()
    bo.released = True
    if bo.mem_type is not None:
        man = dev.man[bo.mem_type]
        if bo in man.lru:
            man.lru.remove(bo)
        man.usage -= bo.npages
    dev.lru_lock.unlock()
    if bo.bo is not None:
        bo.bo.release()
    bo.private_fini()
