"""Export of a TTM BO as a **dynamic** dma-buf: the exporter's operations (detach, pin, unpin, map, unmap,
release) and :func:`ttm_bo_export`. The dma-buf shares the BO's resv and holds a GEM reference
[``amdgpu_dma_buf_ops``, ``drm_gem_prime_export``]. The BO keeps its live mappings (``live_maps``); detaching
an attachment with a mapping never unmapped raises ``MappingLeak`` (``amdgpu_dma_buf_unmap`` frees the sg
table: a forgotten unmap leaks it).
"""

from __future__ import annotations

from typing import Any

from ..buf.core import DmaBuf, DmaBufAttachment
from ..buf.ops import DmaBufOps
from ..runtime import label_of
from .ttm import TtmBo, ttm_bo_move_to_lru_tail, ttm_bo_pin, ttm_bo_unpin

__all__ = ["TTM_DMABUF_OPS", "ttm_bo_export"]

# ---------------------------------------------------------------------- dma-buf export
def _bo_of(attach: DmaBufAttachment) -> TtmBo:
    buf = attach.dmabuf
    assert buf is not None and isinstance(buf.priv, TtmBo)
    return buf.priv


def _ttm_dmabuf_pin(attach: DmaBufAttachment) -> int:
    """``amdgpu_dma_buf_pin`` (pins in place; amdgpu would first move a non-p2p BO to GTT)."""
    ttm_bo_pin(_bo_of(attach))
    return 0


def _ttm_dmabuf_unpin(attach: DmaBufAttachment) -> None:
    ttm_bo_unpin(_bo_of(attach))


def _ttm_dmabuf_map(attach: DmaBufAttachment, direction: int) -> Any:
    """``amdgpu_dma_buf_map``: the current placement's pages (and the BO is now recently used)."""
    bo = _bo_of(attach)
    assert bo.bo is not None
    ttm_bo_move_to_lru_tail(bo)
    sgt = bo.bo.sg_table()
    bo.live_maps.append((attach, sgt))
    return sgt


def _ttm_dmabuf_unmap(attach: DmaBufAttachment, sgt: Any, direction: int) -> None:
    """``amdgpu_dma_buf_unmap``: the table (and its IOMMU mapping) is given back (``sg_free_table``)."""
    bo = _bo_of(attach)
    for k, (a, s) in enumerate(bo.live_maps):
        if a is attach and s is sgt:
            del bo.live_maps[k]
            break


def _ttm_dmabuf_detach(dmabuf: DmaBuf, attach: DmaBufAttachment) -> None:
    """The exporter's ``detach`` (unlocked, after the core released a cached mapping): a mapping of this
    attachment that was never unmapped is leaked -- in the kernel ``amdgpu_dma_buf_unmap`` frees the sg
    table and the IOMMU mapping, so a forgotten unmap leaks them (CONFIG_DMA_API_DEBUG reports the leaked
    mapping). Raises :class:`~dmabuf.errors.MappingLeak` (as the scenario harness does for ``MemoryExporter``)."""
    bo = dmabuf.priv
    assert isinstance(bo, TtmBo)
    left = [s for a, s in bo.live_maps if a is attach]
    if left:
        from ..errors import MappingLeak

        raise MappingLeak(
            f"mapping leak: {label_of(attach)} was detached from {label_of(dmabuf)} with {len(left)} mapping(s) "
            f"of the TTM exporter never unmapped ({', '.join(label_of(s) for s in left)}): every "
            "dma_buf_map_attachment needs its dma_buf_unmap_attachment before dma_buf_detach"
        )


def _ttm_dmabuf_release(dmabuf: DmaBuf) -> None:
    """``drm_gem_dmabuf_release``: drop the dma-buf's GEM reference."""
    bo = dmabuf.priv
    assert isinstance(bo, TtmBo)
    bo.dma_buf = None
    bo.put()


TTM_DMABUF_OPS = DmaBufOps(
    detach=_ttm_dmabuf_detach,
    pin=_ttm_dmabuf_pin,
    unpin=_ttm_dmabuf_unpin,
    map_dma_buf=_ttm_dmabuf_map,
    unmap_dma_buf=_ttm_dmabuf_unmap,
    release=_ttm_dmabuf_release,
)


def ttm_bo_export(bo: TtmBo, *, policy: Any = None, name: str | None = None) -> DmaBuf:
    """Export ``bo`` as a dynamic dma-buf sharing its resv; the dma-buf holds a GEM reference.
    Locking: none held. Kernel: ``amdgpu_gem_prime_export`` / ``drm_gem_prime_export``."""
    if isinstance(bo.dma_buf, DmaBuf):
        return bo.dma_buf
    assert bo.bo is not None
    bo.get()
    buf = DmaBuf.export(
        TTM_DMABUF_OPS,
        bo.bo.size,
        bo,
        resv=bo.resv,
        exp_name="ttm",
        policy=policy,
        name=name or f"{label_of(bo)}.dmabuf",
    )
    bo.dma_buf = buf
    return buf
