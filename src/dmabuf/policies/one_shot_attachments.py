"""``one-shot-attachments``: option 3 of the 2019 thread, "change the semantics of attachments".

Dynamic importers attach and map in one step, ``dma_buf_attach_and_map`` (``DmaBuf.attach_and_map``), and
unmap and detach in one step, ``dma_buf_unmap_and_detach`` (``attach.unmap_and_detach``). The attachment is
one-shot: "you attach_and_map_sg, then you get an invalidate, after that the attachment is dead. Can't ever
remap it" (Daniel Vetter). A move notifies every live one-shot attachment once and kills it; a dead attachment
is never notified again (no double invalidate, H8) and an attachment without a mapping does not exist (no
notify-without-mapping, H1, and no re-entry during its own map, H2: it joins the list only with its mapping).

Contract:

* **importers (dynamic)**: map only through ``dma_buf_attach_and_map``; ``dma_buf_map_attachment`` on a dynamic
  attachment raises :class:`~dmabuf.errors.UsageError` (rule ``one-shot-attachments: dynamic importers map
  with dma_buf_attach_and_map``), on a killed one raises :class:`~dmabuf.errors.MappingInvalidated` (rule
  ``one-shot-attachments: a killed attachment can never be mapped again``). ``move_notify`` (resv held) only
  records that the attachment is dead: ``dma_buf_unmap_and_detach`` takes the resv, so the teardown happens
  later, outside the lock, after the jobs using the mapping have signalled; then ``dma_buf_attach_and_map``
  a new attachment. New DMA through the dead attachment's mapping raises ``MappingInvalidated`` (in-flight
  jobs submitted before the move may finish, as in ``core-tracks-mappings``). ``dma_buf_unmap_attachment`` of
  a one-shot mapping raises ``UsageError`` (use ``dma_buf_unmap_and_detach``); ``dma_buf_detach`` of a one-shot
  attachment whose mapping is still mapped is a ``KernelWarning``. A dynamic attachment made with
  ``dma_buf_dynamic_attach`` may still exist as a placement hint ("using the attachment to indicate for which
  devices a buffer should be accessible"), but it can never map and is never notified.
* **importers (static)**: unchanged (pinned; mapped at attach).
* **exporters**: as option 1.

State: ``attach.policy_data``: ``one_shot`` (its table), ``killed_by``, ``tearing_down``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import MappingInvalidated, UsageError
from ..kernel._warn import WARN
from ..runtime import label_of, rt
from .base import Policy, register_policy
from .core_tracks_mappings import check_invalidated_use, inflight_fences

if TYPE_CHECKING:
    from ..buf.core import DmaBuf, DmaBufAttachment
    from ..buf.sg_table import PageMapping, SgTable

__all__ = ["OneShotAttachments", "is_killed"]

RULE_KILLED = "one-shot-attachments: a killed attachment can never be mapped again"
RULE_MAP = "one-shot-attachments: dynamic importers map with dma_buf_attach_and_map"
RULE_UNMAP = "one-shot-attachments: a one-shot mapping goes with dma_buf_unmap_and_detach"
RULE_USE = "one-shot-attachments: the mapping of a killed attachment can only be unmapped"


def is_killed(attach: DmaBufAttachment) -> bool:
    """True once a move notification killed the one-shot ``attach``."""
    return attach.policy_data.get("killed_by") is not None


@register_policy
class OneShotAttachments(Policy):
    """Option 3: attach_and_map / unmap_and_detach; an invalidation kills the attachment."""

    name = "one-shot-attachments"
    tracks_mappings = True
    invalidation_kills_mapping = True

    def on_attach_and_map(self, attach: DmaBufAttachment, sgt: SgTable) -> None:
        attach.policy_data["one_shot"] = sgt

    def check_map(self, attach: DmaBufAttachment) -> None:
        killed = attach.policy_data.get("killed_by")
        if killed is not None:
            raise MappingInvalidated(
                f"{RULE_KILLED}: {label_of(attach)} was killed by {killed}; dma_buf_unmap_and_detach it and "
                "dma_buf_attach_and_map a new attachment"
            )
        if attach.importer_ops is not None:
            raise UsageError(
                f"{RULE_MAP}: dma_buf_map_attachment of the dynamic {label_of(attach)}; under this policy a "
                "dynamic importer gets its one mapping from dma_buf_attach_and_map"
            )

    def on_unmap_and_detach(self, attach: DmaBufAttachment, sgt: SgTable) -> None:
        attach.policy_data["tearing_down"] = True

    def on_unmap(self, attach: DmaBufAttachment, sgt: SgTable) -> None:
        if attach.policy_data.get("one_shot") is sgt and not attach.policy_data.get("tearing_down"):
            raise UsageError(
                f"{RULE_UNMAP}: dma_buf_unmap_attachment of {label_of(sgt)}, the one-shot mapping of "
                f"{label_of(attach)}; use dma_buf_unmap_and_detach (without the resv)"
            )

    def on_detach(self, attach: DmaBufAttachment) -> None:
        sgt = attach.policy_data.get("one_shot")
        WARN(
            sgt is not None and sgt.unmapped_by is None and not attach.policy_data.get("tearing_down"),
            f"{RULE_UNMAP}: dma_buf_detach of {label_of(attach)} with its mapping {label_of(sgt)} still mapped; "
            "use dma_buf_unmap_and_detach",
            RULE_UNMAP,
        )

    def notify_targets(self, buf: DmaBuf) -> list[DmaBufAttachment]:
        return [
            a
            for a in buf.attachments
            if a.importer_ops is not None and "one_shot" in a.policy_data and not is_killed(a)
        ]

    def before_notify(self, attach: DmaBufAttachment) -> None:
        buf = attach._buf()
        by = f"dma_buf_move_notify of {label_of(buf)} in task {rt().current().name!r}"
        sgt = attach.policy_data["one_shot"]
        if sgt.invalidated_by is None:
            sgt.policy_inflight = inflight_fences(buf)  # first: the fence walk has scheduling points
            sgt.invalidated_by = by
        attach.policy_data["killed_by"] = by

    def check_use(self, mapping: PageMapping) -> None:
        check_invalidated_use(mapping, RULE_USE, "its attachment")
