"""``struct dma_fence_array``: one fence that signals when all (or any) of its member fences signal.

The array takes ownership of the member list and its references. Signalling is lazy: only when someone
enables signaling on the array (a waiter, a callback) does it hang one callback on every member; each
member's callback records the first error and counts ``num_pending`` down; the last one queues an
``irq_work`` that signals the array. ``ops.signaled`` answers polls without callbacks.

Kernel: drivers/dma-buf/dma-fence-array.c, include/linux/dma-fence-array.h (v6.12).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import InvalidArgument
from ..kernel._warn import WARN
from ..runtime import WRITE, label_of, rt
from ..sync.spinlock import SpinLock
from .fence import (
    DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT,
    DmaFence,
    DmaFenceCb,
    DmaFenceOps,
    check_fence,
    irq_work_queue,
)

__all__ = [
    "PENDING_ERROR",
    "DmaFenceArray",
    "DmaFenceArrayCb",
    "array_first",
    "array_for_each",
    "array_next",
    "is_array",
    "is_container",
    "match_context",
    "to_array",
]

#: ``base.error`` while no member reported an error and the array has not signaled.
PENDING_ERROR = 1


class DmaFenceArrayCb(DmaFenceCb):
    """The callback an array hangs on each member (``struct dma_fence_array_cb``)."""

    array: DmaFenceArray | None = None


def _name(f: DmaFence) -> str:
    return "dma_fence_array"


def _timeline(f: DmaFence) -> str:
    return "unbound"


def _set_pending_error(array: DmaFenceArray, error: int) -> None:
    # the first member error wins, and only while the array is still pending (a cmpxchg)
    if error and array.error == PENDING_ERROR:
        array.error = error


def _clear_pending_error(array: DmaFenceArray) -> None:
    if array.error == PENDING_ERROR:
        array.error = 0


def _irq_work(array: DmaFenceArray) -> None:
    _clear_pending_error(array)
    array.signal()
    array.put()


def _cb_func(f: DmaFence, cb: DmaFenceCb) -> None:
    assert isinstance(cb, DmaFenceArrayCb) and cb.array is not None
    array = cb.array
    rt().point("dma_fence_array_cb", array, WRITE)
    _set_pending_error(array, f.error)
    array.num_pending -= 1
    if array.num_pending == 0:
        irq_work_queue(_irq_work, array, "dma_fence_array_irq_work")
    else:
        array.put()


def _enable_signaling(fence: DmaFence) -> bool:
    array = to_array(fence)
    assert array is not None
    for i in range(array.num_fences):
        cb = array.callbacks[i]
        cb.array = array
        # the core only keeps its reference until the array signals, but callbacks may still be running
        # then: each callback holds one of its own
        array.get()
        member = array.fences[i]
        if not member.add_callback(cb, _cb_func):
            rt().point("dma_fence_array_pending", array, WRITE)
            _set_pending_error(array, member.error)
            array.put()
            array.num_pending -= 1
            if array.num_pending == 0:
                _clear_pending_error(array)
                return False
    return True


def _signaled(fence: DmaFence) -> bool:
    array = to_array(fence)
    assert array is not None
    num_pending = array.num_pending
    if array.flags & (1 << DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT):
        if num_pending <= 0:
            _clear_pending_error(array)
            return True
        return False
    for member in array.fences[: array.num_fences]:
        if member.is_signaled():
            num_pending -= 1
            if num_pending == 0:
                _clear_pending_error(array)
                return True
    return False


def _release(fence: DmaFence) -> None:
    array = to_array(fence)
    assert array is not None
    for member in array.fences[: array.num_fences]:
        member.put()
    array.free()


def _set_deadline(fence: DmaFence, deadline: int) -> None:
    array = to_array(fence)
    assert array is not None
    for member in array.fences[: array.num_fences]:
        member.set_deadline(deadline)


#: ``dma_fence_array_ops``
ARRAY_OPS = DmaFenceOps(
    get_driver_name=_name,
    get_timeline_name=_timeline,
    enable_signaling=_enable_signaling,
    signaled=_signaled,
    release=_release,
    set_deadline=_set_deadline,
)


class DmaFenceArray(DmaFence):
    """A fence over a list of fences (``struct dma_fence_array``); build it with :meth:`create`
    (``dma_fence_array_create``). Fields: ``num_fences``, ``fences``, ``num_pending``, ``callbacks``; the
    array's own spinlock is its ``lock``.

    Kernel: ``struct dma_fence_array`` (include/linux/dma-fence-array.h).
    """

    def __init__(self) -> None:
        super().__init__()
        self.num_fences = 0
        self.fences: list[DmaFence] = []
        self.num_pending = 0
        self.callbacks: list[DmaFenceArrayCb] = []

    def arm(
        self, num_fences: int, fences: list[DmaFence], context: int, seqno: int, signal_on_any: bool
    ) -> None:
        """Initialise the array over ``fences[:num_fences]`` (ownership of the references is taken).

        ``context`` is a u64 but ``seqno`` an ``unsigned`` (32 bits) in C: the stored ``seqno`` is
        ``seqno & 0xFFFFFFFF``. WARNs if the list is empty or holds a container (arrays and chains must be
        flattened first). Kernel: ``dma_fence_array_init``."""
        if isinstance(num_fences, bool) or not isinstance(num_fences, int) or num_fences < 0:
            raise InvalidArgument(f"dma_fence_array_create needs a count, got {num_fences!r}")
        WARN(
            not num_fences or not fences,
            "dma_fence_array_create with no fences",
            "dma_fence_array_create: empty array",
        )
        fences = fences if fences is not None else []
        if not isinstance(fences, list):
            raise InvalidArgument(
                f"dma_fence_array_create needs a list of fences, got {type(fences).__name__}"
            )
        if num_fences > len(fences):
            raise InvalidArgument(
                f"dma_fence_array_create: num_fences {num_fences} > {len(fences)} fences given"
            )
        for f in fences[:num_fences]:
            check_fence(f, "dma_fence_array_create")
        if isinstance(seqno, bool) or not isinstance(seqno, int) or seqno < 0:
            raise InvalidArgument(f"dma_fence_array_create: seqno must be an unsigned int, got {seqno!r}")
        seqno &= 0xFFFFFFFF  # unsigned seqno
        self.num_fences = num_fences
        lock = SpinLock(
            lock_class="dma_fence_array.lock"
        )  # one lockdep class, like spin_lock_init's call site
        self.init(ARRAY_OPS, lock, context, seqno)
        self.num_pending = 1 if signal_on_any else num_fences
        self.fences = fences
        self.callbacks = [DmaFenceArrayCb() for _ in range(num_fences)]
        self.error = PENDING_ERROR
        for f in fences[:num_fences]:
            WARN(
                is_container(f),
                f"dma_fence_array member {label_of(f)} is itself a container",
                "dma_fence_array: nested container",
            )

    @classmethod
    def create(
        cls, num_fences: int, fences: list[DmaFence], context: int, seqno: int, signal_on_any: bool
    ) -> DmaFenceArray:
        """Allocate and initialise an array. Kernel: ``dma_fence_array_create``."""
        array = cls()
        array.arm(num_fences, fences, context, seqno, signal_on_any)
        return array


def to_array(f: object) -> DmaFenceArray | None:
    """The array if ``f`` is one, else ``None``. Kernel: ``to_dma_fence_array``."""
    if isinstance(f, DmaFenceArray) and f.ops is ARRAY_OPS:
        return f
    return None


def is_array(f: object) -> bool:
    """Kernel: ``dma_fence_is_array``."""
    return to_array(f) is not None


def is_container(f: object) -> bool:
    """An array or a chain. Kernel: ``dma_fence_is_container``."""
    from .chain import is_chain

    return is_array(f) or is_chain(f)


def match_context(fence: DmaFence, context: int) -> bool:
    """True if ``fence`` (every member, for an array) is on ``context``. Kernel:
    ``dma_fence_match_context``."""
    array = to_array(fence)
    if array is None:
        return fence.context == context
    return all(f.context == context for f in array.fences[: array.num_fences])


def array_first(head: DmaFence | None) -> DmaFence | None:
    """``head`` itself if not an array, else its first member (``None`` for an empty array or no head).
    Kernel: ``dma_fence_array_first``."""
    if head is None:
        return None
    array = to_array(head)
    if array is None:
        return head
    if not array.num_fences:
        return None
    return array.fences[0]


def array_next(head: DmaFence | None, index: int) -> DmaFence | None:
    """Member ``index`` of the array ``head``, or ``None`` if ``head`` is not an array or ``index`` is not
    in ``[0, num_fences)`` (an unsigned index in C: a negative one is huge, never Python's from-the-end
    indexing). Kernel: ``dma_fence_array_next``."""
    array = to_array(head)
    if array is None or index < 0 or index >= array.num_fences:
        return None
    return array.fences[index]


def array_for_each(head: DmaFence | None) -> Iterator[tuple[int, DmaFence]]:
    """Yield ``(index, fence)`` for each member (``head`` itself as index 0 if not an array).
    Kernel: ``dma_fence_array_for_each``."""
    index = 0
    fence = array_first(head)
    while fence is not None:
        yield index, fence
        index += 1
        fence = array_next(head, index)
