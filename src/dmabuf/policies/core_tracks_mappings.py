"""``core-tracks-mappings``: option 2 of the 2019 thread, "dma-buf.c keeps track of all the mappings".

The core records every mapping it hands out (from the moment the exporter's ``map_dma_buf`` returned: "this is
where the mapping starts to exist", Daniel's step 6) until it is unmapped. A move invalidates mappings, not
attachments, and the invalidation is one-shot: an invalidated mapping can only be unmapped, never used again
(a new mapping must be made). ``dma_buf_move_notify`` calls ``move_notify`` only for attachments that have at
least one live mapping not yet invalidated; an attachment without one hears nothing (so H1 "notified without a
mapping" and H8 "invalidated twice" cannot happen).

Contract:

* **importers**: in ``move_notify(attach)`` (resv held), the mappings just invalidated are
  :func:`invalidated_mappings` ``(attach)`` (each also has ``sgt.invalidated_by`` set). Unmap each once the
  jobs that use it have signalled (H6), and map again for new work. Submitting new DMA through an invalidated
  mapping raises :class:`~dmabuf.errors.MappingInvalidated` (rule ``core-tracks-mappings: an invalidated
  mapping can only be unmapped``). Detaching with mappings still live is a ``KernelWarning`` (rule
  ``core-tracks-mappings: detach with live mappings``): the core knows, so it tells.
* **exporters**: unchanged from option 1 (call ``dma_buf_move_notify`` under the resv after a move; free the old
  pages only once nothing can use them).

In-flight work: DMA that was already submitted when the mapping was invalidated may finish (its fence is in
the resv, and a correct exporter's move waits for it). The model cannot see submissions, so an access after
the invalidation is allowed while at least one non-KERNEL fence that was pending in the resv at the
invalidation is still unsignaled; once they have all signalled, any access is new work and raises.

State: ``attach.policy_data["mappings"]`` (live tables, in map order), ``attach.policy_data["invalidated"]``
(what the running notification invalidated), ``sgt.invalidated_by`` and ``sgt.policy_inflight`` (the fences
in-flight work may still finish under).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import MappingInvalidated
from ..kernel._warn import WARN
from ..resv import Usage
from ..runtime import label_of, rt
from .base import Policy, register_policy

if TYPE_CHECKING:
    from ..buf.core import DmaBuf, DmaBufAttachment
    from ..buf.sg_table import PageMapping, SgTable
    from ..fence.fence import DmaFence

__all__ = ["CoreTracksMappings", "inflight_fences", "invalidated_mappings", "live_mappings"]

RULE_USE = "core-tracks-mappings: an invalidated mapping can only be unmapped"
RULE_DETACH = "core-tracks-mappings: detach with live mappings"


def live_mappings(attach: DmaBufAttachment) -> list[SgTable]:
    """The mappings of ``attach`` the core has recorded and that are not unmapped yet (resv held)."""
    return list(attach.policy_data.get("mappings", ()))


def invalidated_mappings(attach: DmaBufAttachment) -> list[SgTable]:
    """Inside ``move_notify(attach)``: the mappings this notification invalidated (resv held)."""
    return list(attach.policy_data.get("invalidated", ()))


def inflight_fences(buf: DmaBuf) -> list[DmaFence]:
    """The unsignaled non-KERNEL fences of ``buf.resv`` (jobs that may still use the current mappings); resv
    held. No references are taken: the list is only read by :func:`inflight_pending`."""
    out = []
    for f, usage in buf.resv.iter_fences(Usage.BOOKKEEP):
        if usage != Usage.KERNEL and not f.test_signaled_flag():
            out.append(f)
    return out


def inflight_pending(mapping: PageMapping) -> bool:
    """True while some fence recorded in ``mapping.policy_inflight`` has not signalled."""
    return any(not f.test_signaled_flag() for f in getattr(mapping, "policy_inflight", ()))


def check_invalidated_use(mapping: PageMapping, rule: str, what: str) -> None:
    """Raise :class:`MappingInvalidated` for new work through an invalidated ``mapping``."""
    if mapping.invalidated_by is None or inflight_pending(mapping):
        return
    raise MappingInvalidated(
        f"{rule}: DMA through {label_of(mapping)} after {what} was invalidated by {mapping.invalidated_by} "
        "(and every job submitted before that has finished, so this is new work); unmap it and map again"
    )


def _who() -> str:
    return f"task {rt().current().name!r}"


@register_policy
class CoreTracksMappings(Policy):
    """Option 2: the core tracks mappings; invalidation is per mapping and one-shot."""

    name = "core-tracks-mappings"
    tracks_mappings = True
    invalidation_kills_mapping = True

    def on_attach(self, attach: DmaBufAttachment) -> None:
        attach.policy_data["mappings"] = []
        attach.policy_data["invalidated"] = []

    def after_map(self, attach: DmaBufAttachment, sgt: SgTable | None) -> None:
        if sgt is not None:
            attach.policy_data.setdefault("mappings", []).append(sgt)

    def on_unmap(self, attach: DmaBufAttachment, sgt: SgTable) -> None:
        live: list[Any] = attach.policy_data.setdefault("mappings", [])
        if sgt in live:
            live.remove(sgt)

    def on_detach(self, attach: DmaBufAttachment) -> None:
        live = attach.policy_data.get("mappings", [])
        WARN(
            bool(live),
            f"{RULE_DETACH}: {label_of(attach)} is detached with {len(live)} mapping(s) never unmapped "
            f"({', '.join(label_of(s) for s in live)}); unmap every mapping before dma_buf_detach",
            RULE_DETACH,
        )

    def notify_targets(self, buf: DmaBuf) -> list[DmaBufAttachment]:
        return [
            a
            for a in buf.attachments
            if a.importer_ops is not None
            and any(s.invalidated_by is None for s in a.policy_data.get("mappings", ()))
        ]

    def before_notify(self, attach: DmaBufAttachment) -> None:
        buf = attach._buf()
        inflight = inflight_fences(buf)
        now = []
        for s in attach.policy_data.get("mappings", ()):
            if s.invalidated_by is None:
                s.invalidated_by = f"dma_buf_move_notify of {label_of(buf)} in {_who()}"
                s.policy_inflight = inflight
                now.append(s)
        attach.policy_data["invalidated"] = now

    def after_notify(self, attach: DmaBufAttachment) -> None:
        attach.policy_data["invalidated"] = []

    def check_use(self, mapping: PageMapping) -> None:
        check_invalidated_use(mapping, RULE_USE, "the mapping")
