"""What a driver gives a fence and gets back: the flag bits, the ops table, the callback node, seqno order.

* ``DMA_FENCE_FLAG_*``: the bits of ``DmaFence.flags`` (``DMA_FENCE_FLAG_USER_BITS`` is the first bit a
  driver may use);
* :class:`DmaFenceOps`: the driver's operations table (``struct dma_fence_ops``);
* :class:`DmaFenceCb`: a callback node (``struct dma_fence_cb``), and ``FenceFunc``, the type of its
  function;
* :func:`is_later_seqno`: the order of two seqnos on one timeline (``ops.use_64bit_seqno`` or the wrapping
  32-bit compare).

Kernel: include/linux/dma-fence.h.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import InvalidArgument

if TYPE_CHECKING:
    from .base import DmaFence

__all__ = [
    "DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT",
    "DMA_FENCE_FLAG_SIGNALED_BIT",
    "DMA_FENCE_FLAG_TIMESTAMP_BIT",
    "DMA_FENCE_FLAG_USER_BITS",
    "DmaFenceCb",
    "DmaFenceOps",
    "FenceFunc",
    "is_later_seqno",
]


DMA_FENCE_FLAG_SIGNALED_BIT = 0
DMA_FENCE_FLAG_TIMESTAMP_BIT = 1
DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT = 2
DMA_FENCE_FLAG_USER_BITS = 3

_SIGNALED = 1 << DMA_FENCE_FLAG_SIGNALED_BIT
_TIMESTAMP = 1 << DMA_FENCE_FLAG_TIMESTAMP_BIT
_ENABLE = 1 << DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT

FenceFunc = Callable[["DmaFence", "DmaFenceCb"], object]


class DmaFenceOps:
    """The driver's operations table (``struct dma_fence_ops``), built with keywords; a missing member is
    ``None``.

    Members (each called with the fence first):

    * ``get_driver_name(f) -> str``, ``get_timeline_name(f) -> str``: mandatory (``dma_fence_init`` BUGs
      without them);
    * ``enable_signaling(f) -> bool``: called once, with the fence lock held, when someone first needs the
      fence to signal (a waiter or a callback). Returning ``False`` means "already done": the core signals
      the fence at once;
    * ``signaled(f) -> bool``: a cheap completion poll used by ``dma_fence_is_signaled``;
    * ``wait(f, intr, timeout) -> int``: replaces ``dma_fence_default_wait``;
    * ``release(f)``: frees the fence on the last put (default: ``dma_fence_free``);
    * ``set_deadline(f, deadline_ns)``: a hint, only called while the fence is unsignaled;
    * ``use_64bit_seqno``: compare seqnos on 64 bits instead of the wrapping 32-bit compare.

    Kernel: ``struct dma_fence_ops`` (include/linux/dma-fence.h).
    """

    __slots__ = (
        "enable_signaling",
        "get_driver_name",
        "get_timeline_name",
        "release",
        "set_deadline",
        "signaled",
        "use_64bit_seqno",
        "wait",
    )

    def __init__(
        self,
        *,
        get_driver_name: Callable[[DmaFence], str] | None = None,
        get_timeline_name: Callable[[DmaFence], str] | None = None,
        enable_signaling: Callable[[DmaFence], bool] | None = None,
        signaled: Callable[[DmaFence], bool] | None = None,
        wait: Callable[[DmaFence, bool, int], int] | None = None,
        release: Callable[[DmaFence], object] | None = None,
        set_deadline: Callable[[DmaFence, int], object] | None = None,
        use_64bit_seqno: bool = False,
    ) -> None:
        for name, fn in (
            ("get_driver_name", get_driver_name),
            ("get_timeline_name", get_timeline_name),
            ("enable_signaling", enable_signaling),
            ("signaled", signaled),
            ("wait", wait),
            ("release", release),
            ("set_deadline", set_deadline),
        ):
            if fn is not None and not callable(fn):
                raise InvalidArgument(
                    f"DmaFenceOps.{name} must be a function or None, got {type(fn).__name__}"
                )
        self.get_driver_name = get_driver_name
        self.get_timeline_name = get_timeline_name
        self.enable_signaling = enable_signaling
        self.signaled = signaled
        self.wait = wait
        self.release = release
        self.set_deadline = set_deadline
        self.use_64bit_seqno = bool(use_64bit_seqno)

    def __repr__(self) -> str:
        set_ = [n for n in self.__slots__ if n != "use_64bit_seqno" and getattr(self, n) is not None]
        return f"DmaFenceOps({', '.join(set_)}{', 64bit' if self.use_64bit_seqno else ''})"


class DmaFenceCb:
    """A callback node (``struct dma_fence_cb``). Subclass it to carry data (the kernel's
    ``container_of``)::

        class SimpleCb(DmaFenceCb):
            seen = False

    ``func`` is set by ``add_callback`` and called as ``func(fence, cb)``. A node is on at most one fence
    at a time. Class-level defaults make subclasses work without calling ``super().__init__()``.

    Kernel: ``struct dma_fence_cb`` (include/linux/dma-fence.h).
    """

    func: FenceFunc | None = None
    #: the callback list this node is on (``None``: the kernel's empty ``list_head``)
    _on: list[DmaFenceCb] | None = None

    def pending(self) -> bool:
        """True while the node is queued on a fence (``!list_empty(&cb->node)``)."""
        return self._on is not None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'pending' if self._on is not None else 'idle'}>"


# ---------------------------------------------------------------------- seqno order
def is_later_seqno(f1: int, f2: int, ops: DmaFenceOps) -> bool:
    """``__dma_fence_is_later``: ``f1`` after ``f2`` (64-bit compare, or wrapping 32-bit)."""
    if ops.use_64bit_seqno:
        return f1 > f2
    d = ((f1 & 0xFFFFFFFF) - (f2 & 0xFFFFFFFF)) & 0xFFFFFFFF
    return 0 < d < (1 << 31)
