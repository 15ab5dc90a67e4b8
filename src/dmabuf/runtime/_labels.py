"""Readable, deterministic names for objects in traces and replay strings.

An object may carry an explicit name in ``_dm_label`` (primitives accept ``name=``). Otherwise it is named
``<TypeName>#<k>`` where ``k`` counts objects of that type in the order a run first names them, so the same
schedule gives the same names in every run.
"""

from __future__ import annotations

from typing import Any

# the package, partly initialised at this point: ``active`` is looked up on it at call time (a function-level
# import cost ~1 us per call)
from .. import runtime as _runtime_pkg
from ._api import Task

__all__ = ["Labeler", "label_of"]


class Labeler:
    """Per-run naming table."""

    __slots__ = ("_counts", "_names")  # one is made per execution

    def __init__(self) -> None:
        self._names: dict[int, tuple[Any, str]] = {}
        self._counts: dict[str, int] = {}

    def name(self, obj: object) -> str:
        if obj is None:
            return "-"
        if isinstance(obj, str):
            return obj
        explicit = getattr(obj, "_dm_label", None)
        if isinstance(explicit, str) and explicit:
            return explicit
        hit = self._names.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        if isinstance(obj, Task):
            return obj.name
        kind = type(obj).__name__
        k = self._counts.get(kind, 0) + 1
        self._counts[kind] = k
        name = f"{kind}#{k}"
        self._names[id(obj)] = (obj, name)  # keep obj alive so its id is not reused during the run
        return name


_fallback = Labeler()


def label_of(obj: object) -> str:
    """The name of ``obj`` in the active run (or a process-wide table outside any run)."""
    r = _runtime_pkg.active()
    lab = getattr(r, "labeler", None) if r is not None else None
    if isinstance(lab, Labeler):
        return lab.name(obj)
    return _fallback.name(obj)
