"""``workers=N``: placeholder until the parallel search lands (kept importable for the engine)."""

from __future__ import annotations

from typing import Any

from ..errors import UsageError

__all__ = ["explore_parallel"]


def explore_parallel(*args: Any) -> Any:
    raise UsageError("workers > 1 is not available yet; run with workers=1")
