"""Stateless exhaustive depth-first search over scheduling and data choices, with a preemption bound."""

from __future__ import annotations

from typing import Any

from ...runtime.controlled import Outcome
from .base import Branch, PathStrategy

__all__ = ["DFS"]


class DFS(PathStrategy):
    """Plain DFS: every branch tries every alternative (current task first, then by task id).

    With ``preemption_bound=k`` an alternative that switches away from a task that could have continued
    is only tried while the execution has fewer than ``k`` such preemptions before that branch.
    """

    name = "dfs"

    def __init__(self, preemption_bound: int | None = None) -> None:
        super().__init__()
        self.bound = preemption_bound

    def _allowed(self, b: Branch, choice: int) -> bool:
        if self.bound is None or b.kind == "c" or b.cur < 0 or choice == b.cur:
            return True
        return b.pre + 1 <= self.bound

    def advance(self, outcome: Outcome) -> bool:
        path = self.path
        del path[self.pos :]  # branches after the end of this execution (aborted early) are stale
        floor = len(self.forced)
        while len(path) > floor:
            b = path[-1]
            order = b.alternatives()
            k = b.k + 1
            while k < len(order) and not self._allowed(b, order[k]):
                k += 1
            if k < len(order):
                b.k = k
                b.chosen = order[k]
                b.op = ""  # learnt again when the branch is reached
                return True
            path.pop()
        return False

    def snapshot(self, length: int) -> dict[str, Any]:
        """The frontier (the prefix the next execution replays) as JSON-able data, for resume."""
        return {
            "bound": self.bound,
            "path": [
                [b.kind, list(b.tids), b.n, b.cur, b.pre, b.chosen, b.op, b.k, b.order]
                for b in self.path[:length]
            ],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`snapshot`."""
        if state.get("bound") != self.bound:
            raise ValueError(f"saved with preemption_bound={state.get('bound')}, not {self.bound}")
        path = []
        for kind, tids, n, cur, pre, chosen, op, k, order in state["path"]:
            b = Branch(str(kind), tuple(int(t) for t in tids), int(n), int(cur), int(pre), int(chosen))
            b.op, b.k, b.order = str(op), int(k), None if order is None else [int(x) for x in order]
            path.append(b)
        self.path = path
