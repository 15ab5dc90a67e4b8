"""``struct dma_fence_chain``: a timeline of fences, one node per point, linked to the previous node.

A node owns a reference to ``prev`` (the previous node or a plain fence) and to ``fence`` (the fence it
stands for); it signals once its own fence and every earlier one signaled. Walking the chain drops nodes
whose fence already signaled (garbage collection by ``cmpxchg`` on ``prev``), so long-lived timelines stay
short. Signalling is lazy: enabling it hangs one callback on the first unsignaled fence; that callback
re-arms (through an ``irq_work``) on the next one until none is left.

Kernel: drivers/dma-buf/dma-fence-chain.c, include/linux/dma-fence-chain.h (v6.12).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import InvalidArgument
from ..kernel._warn import WARN
from ..runtime import WRITE, rt
from ..sync.spinlock import SpinLock
from .fence import DmaFence, DmaFenceCb, DmaFenceOps, check_fence, context_alloc, get_rcu_safe, irq_work_queue
from .fence import is_later_seqno as _is_later_seqno

__all__ = [
    "CHAIN_OPS",
    "DmaFenceChain",
    "chain_contained",
    "chain_find_seqno",
    "chain_for_each",
    "chain_walk",
    "is_chain",
    "to_chain",
]


class _ChainCb(DmaFenceCb):
    chain: DmaFenceChain | None = None


def _name(f: DmaFence) -> str:
    return "dma_fence_chain"


def _timeline(f: DmaFence) -> str:
    return "unbound"


def _get_prev(chain: DmaFenceChain) -> DmaFence | None:
    """``dma_fence_chain_get_prev``: a reference to ``chain.prev`` (RCU-safe)."""
    return get_rcu_safe(chain, "prev")


def chain_walk(fence: DmaFence | None) -> DmaFence | None:
    """Step from ``fence`` (whose reference is consumed) to the previous unsignaled node, unlinking
    signaled nodes on the way; returns it with a reference, or ``None`` at the end of the chain.

    Kernel: ``dma_fence_chain_walk``."""
    chain = to_chain(fence)
    if chain is None:
        if fence is not None:
            fence.put()
        return None
    r = rt()
    while True:
        prev = _get_prev(chain)
        if prev is None:
            break
        prev_chain = to_chain(prev)
        replacement: DmaFence | None
        if prev_chain is not None:
            inner = prev_chain.fence
            assert inner is not None
            if not inner.is_signaled():
                break
            replacement = _get_prev(prev_chain)
        else:
            if not prev.is_signaled():
                break
            replacement = None
        r.point("dma_fence_chain_cmpxchg", chain, WRITE)
        tmp = chain.prev
        if tmp is prev:
            chain.prev = replacement
            tmp.put()
        elif replacement is not None:
            replacement.put()
        prev.put()
    chain.put()
    return prev


def chain_for_each(head: DmaFence | None) -> Iterator[DmaFence]:
    """Yield ``head`` and then every earlier unsignaled node (``dma_fence_chain_walk``); each yielded
    node is referenced by the iteration and released when it steps on. A caller that breaks out keeps
    the current node's reference and must put it. Kernel: ``dma_fence_chain_for_each``."""
    it = head.get() if head is not None else None
    while it is not None:
        yield it
        it = chain_walk(it)


def chain_find_seqno(fence: DmaFence | None, seqno: int) -> tuple[int, DmaFence | None]:
    """Find the node that signals timeline point ``seqno``, starting at ``fence``.

    Returns ``(0, fence)`` unchanged for ``seqno == 0``; ``(-EINVAL, fence)`` unchanged if ``fence`` is
    not a chain or ``seqno`` is beyond it; else ``(0, node)`` where ``node`` carries a reference (``None``
    if everything up to ``seqno`` signaled) and the caller's reference on ``fence`` is consumed.

    Kernel: ``dma_fence_chain_find_seqno``."""
    from ..kernel.errno import EINVAL

    if isinstance(seqno, bool) or not isinstance(seqno, int) or seqno < 0:
        raise InvalidArgument(f"dma_fence_chain_find_seqno needs a u64 seqno, got {seqno!r}")
    if not seqno:
        return 0, fence
    chain = to_chain(fence)
    if chain is None or chain.seqno < seqno:
        return -EINVAL, fence
    found: DmaFence | None = None
    for it in chain_for_each(chain):
        node = to_chain(it)
        if it.context != chain.context or node is None or node.prev_seqno < seqno:
            found = it
            break
    chain.put()
    return 0, found


def _cb(f: DmaFence, cb: DmaFenceCb) -> None:
    assert isinstance(cb, _ChainCb) and cb.chain is not None
    irq_work_queue(_irq_work, cb.chain, "dma_fence_chain_irq_work")
    f.put()


def _irq_work(chain: DmaFenceChain) -> None:
    # try to re-arm on the next unsignaled fence; none left: the whole chain is done
    if not _enable_signaling(chain):
        chain.signal()
    chain.put()


def _enable_signaling(fence: DmaFence) -> bool:
    head = to_chain(fence)
    assert head is not None
    head.get()
    for it in chain_for_each(head):
        f = chain_contained(it)
        assert f is not None
        f.get()
        if f.add_callback(head.cb, _cb):
            it.put()
            return True
        f.put()
    head.put()
    return False


def _signaled(fence: DmaFence) -> bool:
    for it in chain_for_each(fence):
        f = chain_contained(it)
        assert f is not None
        if not f.is_signaled():
            it.put()
            return False
    return True


def _release(fence: DmaFence) -> None:
    chain = to_chain(fence)
    assert chain is not None
    # unlink iteratively the nodes only we reference, so a long chain does not recurse
    prev = chain.prev
    while prev is not None:
        if prev.refcount.read() > 1:
            break
        prev_chain = to_chain(prev)
        if prev_chain is None:
            break
        chain.prev = prev_chain.prev
        prev_chain.prev = None
        prev.put()
        prev = chain.prev
    if prev is not None:
        prev.put()
    if chain.fence is not None:
        chain.fence.put()
    chain.free()


def _set_deadline(fence: DmaFence, deadline: int) -> None:
    for it in chain_for_each(fence):
        f = chain_contained(it)
        assert f is not None
        f.set_deadline(deadline)


#: ``dma_fence_chain_ops``
CHAIN_OPS = DmaFenceOps(
    get_driver_name=_name,
    get_timeline_name=_timeline,
    enable_signaling=_enable_signaling,
    signaled=_signaled,
    release=_release,
    set_deadline=_set_deadline,
    use_64bit_seqno=True,
)


class DmaFenceChain(DmaFence):
    """A chain node (``struct dma_fence_chain``): fields ``prev``, ``prev_seqno``, ``fence``, ``cb``; its
    own spinlock is its ``lock``. ``DmaFenceChain()`` is ``dma_fence_chain_alloc()``; :meth:`link`
    (``dma_fence_chain_init``) makes it ready.

    Kernel: ``struct dma_fence_chain`` (include/linux/dma-fence-chain.h).
    """

    def __init__(self) -> None:
        super().__init__()
        self.prev: DmaFence | None = None
        self.prev_seqno = 0
        self.fence: DmaFence | None = None
        self.cb = _ChainCb()
        self.cb.chain = self

    def link(self, prev: DmaFence | None, fence: DmaFence, seqno: int) -> None:
        """Initialise the node after ``prev`` for ``fence`` at point ``seqno``; takes over both references.

        If ``prev`` is a chain node and ``seqno`` is later, the node joins ``prev``'s timeline; otherwise it
        starts a new context (and, after a chain, keeps ``seqno`` at least ``prev.seqno``). WARNs if ``fence``
        is itself a chain (flatten into an array instead).

        Kernel: ``dma_fence_chain_init``."""
        if prev is not None:
            check_fence(prev, "dma_fence_chain_init")
        check_fence(fence, "dma_fence_chain_init")
        if isinstance(seqno, bool) or not isinstance(seqno, int) or seqno < 0:
            raise InvalidArgument(f"dma_fence_chain_init needs a u64 seqno, got {seqno!r}")
        prev_chain = to_chain(prev)
        lock = SpinLock(
            lock_class="dma_fence_chain.lock"
        )  # one lockdep class, like spin_lock_init's call site
        self.prev = prev
        self.fence = fence
        self.prev_seqno = 0
        if prev_chain is not None and prev is not None and _is_later_seqno(seqno, prev.seqno, CHAIN_OPS):
            context = prev.context
            self.prev_seqno = prev.seqno
        else:
            context = context_alloc(1)
            if prev_chain is not None and prev is not None:
                seqno = max(prev.seqno, seqno)
        self.init(CHAIN_OPS, lock, context, seqno)
        WARN(
            is_chain(fence),
            "dma_fence_chain_init: the contained fence is itself a chain",
            "dma_fence_chain: chain inside chain",
        )


def to_chain(f: object) -> DmaFenceChain | None:
    """The chain node if ``f`` is one, else ``None``. Kernel: ``to_dma_fence_chain``."""
    if isinstance(f, DmaFenceChain) and f.ops is CHAIN_OPS:
        return f
    return None


def is_chain(f: object) -> bool:
    """Kernel: ``dma_fence_is_chain``."""
    return to_chain(f) is not None


def chain_contained(f: DmaFence | None) -> DmaFence | None:
    """The fence a chain node stands for, or ``f`` itself. Kernel: ``dma_fence_chain_contained``."""
    chain = to_chain(f)
    return chain.fence if chain is not None else f
