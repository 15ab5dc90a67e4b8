"""``importer-tracks``: mainline v6.12 (drivers/dma-buf/dma-buf.c, ``dma_buf_move_notify``).

The core notifies every attachment that has ``importer_ops`` on a move, in list order, including one that is
inside its own map call (re-entry avoidance was dropped in v11 of the dynamic dma-buf series). It records no
mappings and never makes a mapping unusable: "Mappings stay valid and are not directly affected by this
callback" (v15 kerneldoc). Importers track their own mappings and tear them down after their fences signal.
"""

from __future__ import annotations

from .base import Policy, register_policy

__all__ = ["ImporterTracks"]


@register_policy
class ImporterTracks(Policy):
    """Mainline: the base hooks unchanged (every dynamic attachment notified, nothing tracked)."""

    name = "importer-tracks"
