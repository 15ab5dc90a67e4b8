"""The mapping-tracking policy: who tracks mappings, who gets ``move_notify``, what invalidation means.

The 2019 debate (seed thread, Daniel Vetter's options 1-5) never settled "who tracks mappings" by proof; this
package makes the answer a pluggable :class:`Policy` the dma-buf core consults at fixed hooks, so the same
scenarios can be checked against each option:

=========================  ==============================================================================
``importer-tracks``        mainline v6.12 (option 1/5 as merged): every dynamic attachment is notified on a
                           move; importers track their own mappings. The core records nothing.
``core-tracks-mappings``   option 2: the core records every mapping; invalidation is per mapping and
                           one-shot; attachments without a live mapping are not notified.
``one-shot-attachments``   option 3: attach_and_map / unmap_and_detach; an invalidation kills the attachment.
``exporter-tracks``        option 4: the exporter tracks which attachments have mappings and frees old pages
                           only after the resv's fences signalled.
``core-filters-reentry``   option 5 as first proposed: like 1, but the core skips the attachment that is
                           inside its own map call.
=========================  ==============================================================================

Policies are stateless: per-attachment and per-mapping state lives in ``attach.policy_data`` /
``sgt.invalidated_by``. Every hook is called by the core with the buffer's resv held, except
:meth:`Policy.check_use` (called at every DMA/CPU access through a mapping).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument, UsageError

if TYPE_CHECKING:
    from ..buf.core import DmaBuf, DmaBufAttachment
    from ..buf.sg_table import PageMapping, SgTable
    from ..fence.fence import DmaFence

__all__ = [
    "Policy",
    "default_policy",
    "get_policy",
    "policy_names",
    "register_policy",
    "resolve_policy",
    "set_default_policy",
]


class Policy:
    """Base class: the hooks, each a no-op that gives the mainline v6.12 behaviour.

    Subclasses set :attr:`name` and override what they change. Hooks:

    * :meth:`on_attach` / :meth:`on_detach`: the attachment joins / leaves ``buf.attachments``.
    * :meth:`check_map`: before a map reaches the exporter (may refuse, e.g. a dead one-shot attachment).
    * :meth:`before_map` / :meth:`after_map`: around the exporter's ``map_dma_buf`` (``after_map`` also runs,
      with ``sgt=None``, when the map failed); a policy records the mapping or the re-entry window here.
    * :meth:`on_unmap`: before the exporter's ``unmap_dma_buf``.
    * :meth:`notify_targets`: which attachments ``dma_buf_move_notify`` calls, in order.
    * :meth:`before_notify` / :meth:`after_notify`: around each importer ``move_notify`` call
      (invalidate the attachment's recorded mappings, kill a one-shot attachment...).
    * :meth:`check_use`: at every access through a mapping; raise
      :class:`~dmabuf.errors.MappingInvalidated` to make invalidated mappings unusable.
    * :meth:`free_old_after`: the fences an exporter must wait for before freeing a move's old pages.
    * :meth:`mark_unmapped`: how an unmapped table is retired (default: at once, any later access is stale).
    * :meth:`on_attach_and_map` / :meth:`on_unmap_and_detach`: around the combined entry points
      ``dma_buf_attach_and_map`` / ``dma_buf_unmap_and_detach`` (option 3's one-shot attachments).

    Attributes:
        name: the registry name.
        tracks_mappings: the core records every live mapping in ``attach.policy_data["mappings"]``.
        invalidation_kills_mapping: an invalidated mapping is unusable (one-shot).
    """

    name = "base"
    tracks_mappings = False
    invalidation_kills_mapping = False

    # ---------------------------------------------------------------- attachment life
    def on_attach(self, attach: DmaBufAttachment) -> None:
        """The attachment was added to ``buf.attachments`` (resv held)."""

    def on_detach(self, attach: DmaBufAttachment) -> None:
        """The attachment is about to leave ``buf.attachments`` (resv held)."""

    # ---------------------------------------------------------------- map / unmap
    def check_map(self, attach: DmaBufAttachment) -> None:
        """Before any map of ``attach`` (resv held). Raise to refuse."""

    def before_map(self, attach: DmaBufAttachment) -> None:
        """Right before the exporter's ``map_dma_buf`` (resv held)."""

    def after_map(self, attach: DmaBufAttachment, sgt: SgTable | None) -> None:
        """Right after the exporter's ``map_dma_buf`` returned ``sgt`` (``None``: it failed). Resv held."""

    def on_unmap(self, attach: DmaBufAttachment, sgt: SgTable) -> None:
        """Before the exporter's ``unmap_dma_buf`` of ``sgt`` (resv held)."""

    # ---------------------------------------------------------------- move_notify
    def notify_targets(self, buf: DmaBuf) -> list[DmaBufAttachment]:
        """The attachments ``dma_buf_move_notify`` notifies, in order (resv held). Default (v6.12): every
        attachment with ``importer_ops``, in list order."""
        return [a for a in buf.attachments if a.importer_ops is not None]

    def before_notify(self, attach: DmaBufAttachment) -> None:
        """Before ``attach.importer_ops.move_notify(attach)`` (resv held)."""

    def after_notify(self, attach: DmaBufAttachment) -> None:
        """After ``attach.importer_ops.move_notify(attach)`` returned (resv held)."""

    # ---------------------------------------------------------------- use of mappings
    def check_use(self, mapping: PageMapping) -> None:
        """At every DMA/CPU access through ``mapping``; raise to forbid it."""

    # ---------------------------------------------------------------- exporter side
    def free_old_after(self, buf: DmaBuf) -> list[DmaFence]:
        """Fences an exporter waits for before it frees the old pages of a move (resv held). Default: none,
        the exporter decides alone."""
        return []

    def mark_unmapped(self, sgt: SgTable, by: str) -> None:
        """The exporter's ``unmap_dma_buf`` of ``sgt`` returned (resv held); ``by`` names the unmap. Default:
        ``sgt.unmapped_by = by`` (any later access is a stale mapping, a second unmap a double free). A policy
        may retire the table later (exporter-tracks: once the in-flight jobs' fences signalled)."""
        sgt.unmapped_by = by

    # ---------------------------------------------------------------- combined entry points
    def on_attach_and_map(self, attach: DmaBufAttachment, sgt: SgTable) -> None:
        """``dma_buf_attach_and_map`` made ``attach`` and its mapping ``sgt`` visible together (resv held,
        after :meth:`on_attach`)."""

    def on_unmap_and_detach(self, attach: DmaBufAttachment, sgt: SgTable) -> None:
        """``dma_buf_unmap_and_detach`` is about to unmap ``sgt`` and detach ``attach`` (resv held)."""

    def __repr__(self) -> str:
        return f"<Policy {self.name}>"


# ---------------------------------------------------------------------- registry
_REGISTRY: dict[str, type[Policy]] = {}
#: names of the policies shipped with the package -> the module that registers each one
BUILTIN_MODULES = {
    "importer-tracks": "importer_tracks",
    "core-tracks-mappings": "core_tracks_mappings",
    "one-shot-attachments": "one_shot_attachments",
    "exporter-tracks": "exporter_tracks",
    "core-filters-reentry": "core_filters_reentry",
}
_default = "importer-tracks"


def register_policy(cls: type[Policy]) -> type[Policy]:
    """Class decorator: make ``cls`` available as ``get_policy(cls.name)``."""
    if not (isinstance(cls, type) and issubclass(cls, Policy)) or not cls.name or cls.name == "base":
        raise InvalidArgument(f"register_policy needs a Policy subclass with its own name, got {cls!r}")
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtins() -> None:
    for name, mod in BUILTIN_MODULES.items():
        if name not in _REGISTRY:
            try:
                importlib.import_module(f"{__package__}.{mod}")
            except ImportError:
                pass


def policy_names() -> list[str]:
    """Every policy name that :func:`get_policy` accepts, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def get_policy(name: str) -> Policy:
    """A new instance of the policy called ``name``.

    Raises:
        UsageError: unknown name (the message lists the valid ones).
    """
    if name not in _REGISTRY:
        _load_builtins()
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        raise UsageError(
            f"unknown mapping-tracking policy {name!r}; valid policies are: {', '.join(policy_names())}"
        )
    return cls()


def set_default_policy(name: str) -> None:
    """Make ``name`` the process-wide default for buffers exported without a policy.

    Raises:
        UsageError: unknown name.
    """
    global _default
    get_policy(name)
    _default = name


def default_policy() -> str:
    """The name of the process-wide default policy (initially ``"importer-tracks"``)."""
    return _default


def resolve_policy(policy: Any) -> Policy:
    """A :class:`Policy` from a name, an instance, a Policy subclass or ``None`` (the default)."""
    if policy is None:
        return get_policy(_default)
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, type) and issubclass(policy, Policy):
        return policy()
    if isinstance(policy, str):
        return get_policy(policy)
    raise InvalidArgument(f"a policy is a name, a Policy or None, got {type(policy).__name__}")
