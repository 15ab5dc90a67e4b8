"""Mapping-tracking policies the dma-buf core consults (see :mod:`dmabuf.policies.base`).

``get_policy(name)``, ``set_default_policy(name)``, ``policy_names()``; a buffer picks its policy at export
(``DmaBufExportInfo.policy`` or ``DmaBuf.export(..., policy=...)``).
"""

from __future__ import annotations

from .base import (
    Policy,
    default_policy,
    get_policy,
    policy_names,
    register_policy,
    resolve_policy,
    set_default_policy,
)
from .importer_tracks import ImporterTracks

__all__ = [
    "ImporterTracks",
    "Policy",
    "default_policy",
    "get_policy",
    "policy_names",
    "register_policy",
    "resolve_policy",
    "set_default_policy",
]
