"""``exporter-tracks``: option 4 of the 2019 thread, "the exporter keeps track of which attachments have a
mapping, and invalidates them individually".

Daniel Vetter's sketch: "importer would unmap from it's ->invalidate callback, but exporter needs to obey the
current fences attached to the resv_obj". So:

* ``dma_buf_move_notify`` calls ``move_notify`` only for the dynamic attachments the exporter knows to hold a
  mapping (the bookkeeping an exporter does in its ``map_dma_buf`` / ``unmap_dma_buf``; the policy keeps it
  for every exporter, in ``attach.policy_data["mappings"]``), one by one.
* **importers** unmap every mapping of the attachment *inside* ``move_notify``, without waiting for their
  jobs: after the callback returns the attachment must hold no mapping, else ``KernelWarning`` (rule
  ``exporter-tracks: the importer must unmap from move_notify``). Since it then has none, a second move does
  not notify it again (H8) and an attachment that never mapped is never notified (H1). An unmapped table stays
  usable for the jobs that were in flight when it was unmapped (the non-KERNEL fences pending in the resv
  then); once those have signalled any access is a stale mapping. Unmapping it twice is a ``UsageError``.
* **exporters** must keep a move's old pages until the fences in the resv at the move have signalled:
  :meth:`ExporterTracks.free_old_after` returns them (``MemoryExporter.move`` honours it); an exporter whose
  old pages are gone while such a job still uses them is reported as a ``KernelWarning`` (rule
  ``exporter-tracks: the exporter frees old pages only after the resv's fences``) before the oracle's stale
  mapping.

The weak spot the thread named: it "depends upon the exporter instead of shared code to do the right thing".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import StaleMapping, UsageError
from ..kernel._warn import WARN
from ..resv import Usage
from ..runtime import label_of
from .base import Policy, register_policy
from .core_tracks_mappings import inflight_fences, inflight_pending

if TYPE_CHECKING:
    from ..buf.core import DmaBuf, DmaBufAttachment
    from ..buf.sg_table import PageMapping, SgTable
    from ..fence.fence import DmaFence

__all__ = ["ExporterTracks", "tracked_mappings"]

RULE_UNMAP = "exporter-tracks: the importer must unmap from move_notify"
RULE_FREE = "exporter-tracks: the exporter frees old pages only after the resv's fences"


def tracked_mappings(attach: DmaBufAttachment) -> list[SgTable]:
    """The mappings of ``attach`` the exporter's bookkeeping holds (resv held)."""
    return list(attach.policy_data.get("mappings", ()))


@register_policy
class ExporterTracks(Policy):
    """Option 4: exporter-side tracking, individual notification, unmap in the callback, delayed free."""

    name = "exporter-tracks"
    tracks_mappings = True

    def on_attach(self, attach: DmaBufAttachment) -> None:
        attach.policy_data["mappings"] = []

    def after_map(self, attach: DmaBufAttachment, sgt: SgTable | None) -> None:
        if sgt is not None:
            attach.policy_data.setdefault("mappings", []).append(sgt)

    def on_unmap(self, attach: DmaBufAttachment, sgt: SgTable) -> None:
        by = getattr(sgt, "unmap_deferred_by", None)
        if by is not None:
            raise UsageError(
                f"dma_buf_unmap_attachment: {label_of(sgt)} of {label_of(attach)} was already unmapped by {by}; "
                "unmapping a mapping twice is a double free"
            )
        live: list[Any] = attach.policy_data.setdefault("mappings", [])
        if sgt in live:
            live.remove(sgt)

    def mark_unmapped(self, sgt: SgTable, by: str) -> None:
        att = sgt.attachment
        fences = inflight_fences(att._buf()) if att is not None else []
        if not fences:
            sgt.unmapped_by = by
            return
        sgt.policy_inflight = fences  # type: ignore[attr-defined]
        sgt.unmap_deferred_by = by  # type: ignore[attr-defined]

    def notify_targets(self, buf: DmaBuf) -> list[DmaBufAttachment]:
        return [a for a in buf.attachments if a.importer_ops is not None and a.policy_data.get("mappings")]

    def after_notify(self, attach: DmaBufAttachment) -> None:
        live = attach.policy_data.get("mappings", [])
        WARN(
            bool(live),
            f"{RULE_UNMAP}: {label_of(attach)} still holds {', '.join(label_of(s) for s in live)} after its "
            "move_notify returned; under exporter-tracks the importer unmaps at once (the exporter keeps the "
            "pages until the fences signal)",
            RULE_UNMAP,
        )

    def check_use(self, mapping: PageMapping) -> None:
        pl = mapping.placement
        pending = inflight_pending(mapping)
        if pl is not None and pl.freed and pending:
            WARN(
                True,
                f"{RULE_FREE}: {label_of(mapping)} is used by a job that was in flight at the move, but its pages "
                f"were already freed by {pl.freed_by}; free a move's old pages after free_old_after() fences",
                RULE_FREE,
            )
        by = getattr(mapping, "unmap_deferred_by", None)
        if by is not None and not pending:
            mapping.unmapped_by = by
            raise StaleMapping(
                f"stale mapping: access through {label_of(mapping)} after it was unmapped by {by} and every job "
                "in flight at the unmap has finished (exporter-tracks lets only those finish)"
            )

    def free_old_after(self, buf: DmaBuf) -> list[DmaFence]:
        return [f for f, _ in buf.resv.iter_fences(Usage.BOOKKEEP) if not f.test_signaled_flag()]
