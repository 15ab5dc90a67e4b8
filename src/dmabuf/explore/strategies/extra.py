"""Non-DFS strategies: the seeded random walk, and the factory for ``random``, ``pct`` (pct.py) and ``dpor``."""

from __future__ import annotations

import random
from typing import Any

from ...errors import InvalidArgument
from ...runtime.controlled import Outcome
from .base import Branch, PathStrategy

__all__ = ["RandomWalk", "make"]

# PCT lives in pct.py; make() wires it with its ``depth`` keyword.


class RandomWalk(PathStrategy):
    """Uniformly random choice at every branch, from a seeded RNG; never complete. With a preemption
    ``bound``, a branch where the running task may continue and ``bound`` preemptions were already made
    keeps the running task (the walk stays within the bound, as the contract's ``preemption_bound`` says)."""

    name = "random"
    exhaustive = False

    def __init__(self, seed: int, bound: int | None = None) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.bound = bound
        self._seen: set[int] = set()
        self._runs = 0
        self.stats: dict[str, Any] = {"distinct_schedules": 0, "distinct_ratio": 1.0}

    def first_choice(self, b: Branch) -> int:
        if self.bound is not None and b.kind == "t" and b.cur >= 0 and b.pre >= self.bound:
            return b.cur
        return self.rng.randrange(b.n)

    def advance(self, outcome: Outcome) -> bool:
        # a cheap coverage estimate: how many executions took a schedule (sequence of choices) not seen
        # before; a ratio well below 1 means the random walk keeps re-running the same few schedules
        self._runs += 1
        self._seen.add(hash(tuple(~b.chosen if b.kind == "c" else b.tids[b.chosen] for b in self.path)))
        n = len(self._seen)
        self.stats["distinct_schedules"] = n
        self.stats["distinct_ratio"] = n / self._runs
        self.path.clear()
        return True


def make(strategy: str, preemption_bound: int | None, seed: int, **kw: Any) -> PathStrategy:
    depth = kw.get("depth")
    if strategy == "pct":
        from .pct import PCT

        if preemption_bound is not None:
            raise InvalidArgument(
                "preemption_bound does not apply to strategy='pct' (PCT places depth-1 preemptions at "
                "random); pass depth=d instead, or use strategy='dpor' or 'dfs' with a preemption bound"
            )
        return PCT(depth, seed)
    if depth is not None:
        raise InvalidArgument(
            f"depth={depth!r} only applies to strategy='pct'; drop it or pass strategy='pct'"
        )
    if strategy == "random":
        return RandomWalk(seed, preemption_bound)
    if strategy == "dpor":
        from .dpor import DPOR

        return DPOR(preemption_bound)  # type: ignore[return-value]
    raise InvalidArgument(f"strategy {strategy!r} is not available; use 'dfs', 'dpor', 'random' or 'pct'")
