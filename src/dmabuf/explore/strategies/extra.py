"""Non-DFS strategies: seeded random walk and PCT; the factory for ``dpor``."""

from __future__ import annotations

import random
from typing import Any

from ...errors import InvalidArgument
from ...runtime.controlled import Outcome
from .base import Branch, PathStrategy

__all__ = ["RandomWalk", "make"]


class RandomWalk(PathStrategy):
    """Uniformly random choice at every branch, from a seeded RNG; never complete."""

    name = "random"
    exhaustive = False

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = random.Random(seed)

    def first_choice(self, b: Branch) -> int:
        return self.rng.randrange(b.n)

    def advance(self, outcome: Outcome) -> bool:
        self.path.clear()
        return True


def make(strategy: str, preemption_bound: int | None, seed: int, **kw: Any) -> PathStrategy:
    if strategy == "random":
        return RandomWalk(seed)
    if strategy == "dpor":
        from .dpor import DPOR

        return DPOR(preemption_bound)  # type: ignore[return-value]
    raise InvalidArgument(f"strategy {strategy!r} is not available in this version; use 'dfs' or 'random'")
