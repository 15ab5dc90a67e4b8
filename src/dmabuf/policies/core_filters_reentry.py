"""``core-filters-reentry``: option 5 of the 2019 thread, the implementation as it stood then.

As ``importer-tracks`` (every dynamic attachment is notified on a move; importers track and filter their own
mappings), except that the core skips the attachment that is currently inside its own map call: a move the
exporter makes *while* mapping for attachment A (to satisfy A's constraints) is not sent back to A. This is
the re-entry avoidance of the 2018-2019 series ("Mapping a DMA-buf can trigger its invalidation, prevent
sending this event to the caller", v2), dropped in v11 ("drop automatically re-entry avoidance").

Contract:

* **importers**: as option 1 (the notification is per attachment, may come without a mapping or for a mapping
  already invalidated: filter). In addition, a move that happens inside your own ``dma_buf_map_attachment``
  is *not* reported to you: the table the exporter returns must already point at the new placement, and any
  *older* mapping you hold on the same attachment is not notified about that move either (Daniel: "fix it
  everywhere, not just for the specific case of a recursion into the same caller"); do not keep an older
  mapping alive across a new map of the same attachment.
* **exporters**: as option 1; a move made from ``map_dma_buf`` must hand out a table of the new placement.

State: ``attach.policy_data["in_map"]``, the depth of map calls of that attachment in progress (resv held).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Policy, register_policy

if TYPE_CHECKING:
    from ..buf.core import DmaBuf, DmaBufAttachment
    from ..buf.sg_table import SgTable

__all__ = ["CoreFiltersReentry"]


@register_policy
class CoreFiltersReentry(Policy):
    """Option 5: mainline notification minus the attachment inside its own map call."""

    name = "core-filters-reentry"

    def on_attach(self, attach: DmaBufAttachment) -> None:
        attach.policy_data["in_map"] = 0

    def before_map(self, attach: DmaBufAttachment) -> None:
        attach.policy_data["in_map"] = attach.policy_data.get("in_map", 0) + 1

    def after_map(self, attach: DmaBufAttachment, sgt: SgTable | None) -> None:
        attach.policy_data["in_map"] = attach.policy_data.get("in_map", 1) - 1

    def notify_targets(self, buf: DmaBuf) -> list[DmaBufAttachment]:
        return [
            a for a in buf.attachments if a.importer_ops is not None and not a.policy_data.get("in_map", 0)
        ]
