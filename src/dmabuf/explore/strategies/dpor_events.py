"""The data of the DPOR search: tree nodes, recorded events, and the conflict relation."""

from __future__ import annotations

from typing import Any, Final

from ...runtime import READ
from ..schedule import Entry

__all__ = ["NO_SLEEP", "Ev", "Node", "Node1", "conflict"]


class Node:
    """A node of the DPOR tree: the state before one step (``kind == "t"``) or a data choice (``"c"``)."""

    # no __slots__: setup.py compiles this module with mypyc, which refuses them (compiled, the
    # attributes are fixed C fields anyway)

    def __init__(self, kind: str, tids: tuple[int, ...], n: int, cur: int, pre: int) -> None:
        self.kind = kind
        self.tids = tids  # enabled task ids (scheduling node)
        self.n = n
        self.cur = cur  # task id that reached the point, or -1
        self.pre = pre  # preemptions before this node
        self.chosen = 0  # task id (scheduling) or value (data)
        self.op = ""
        self.backtrack: set[int] = set()
        self.done: set[int] = set()
        self.sleep: frozenset[int] = frozenset()
        self.fixed = False  # part of a work unit's forced prefix: never backtracked
        #: (number of events, copy of the analysis state) when the node was reached; None until recorded
        self.mark: tuple[int, tuple[Any, ...]] | None = None
        self.ev = -1  # index of the event of this node's step (scheduling nodes)

    def entry(self) -> Entry:
        if self.kind == "c":
            return Entry("c", self.chosen, self.n)
        return Entry("t", self.chosen, 0, self.op, "")


class Node1:
    """A scheduling step with one enabled task: it never branches, so it keeps only what the race analysis
    and the replay check read (the other fields are constants). Most steps are such steps, so it is cheap."""

    # no __slots__: setup.py compiles this module with mypyc, which refuses them (compiled, the
    # attributes are fixed C fields anyway)

    kind = "t"
    n = 1
    cur = -1
    pre = 0
    fixed = False
    mark = None
    sleep: frozenset[int] = frozenset()

    def __init__(self, tid: int, op: str, ev: int) -> None:
        self.tids = (tid,)
        self.chosen = tid
        self.op = op
        self.ev = ev

    @property
    def backtrack(self) -> set[int]:
        return {self.chosen}

    @property
    def done(self) -> set[int]:
        return {self.chosen}

    def entry(self) -> Entry:
        return Entry("t", self.chosen, 0, self.op, "")


class Ev:
    """One recorded event: a step (``kind == "s"``), a spawn or a join."""

    # no __slots__: setup.py compiles this module with mypyc, which refuses them (compiled, the
    # attributes are fixed C fields anyway)

    def __init__(
        self,
        kind: str,
        tid: int,
        obj: Any,
        key: Any,
        access: str,
        node: int,
        other: int = -1,
        wait: bool = False,
        enabler: int = -1,
        vc: int = 0,
        pred: int = 0,
        prev_obj: int = -1,
        prev_task: int = -1,
    ) -> None:
        self.kind = kind  # "s" step, "spawn" (other = child), "join" (other = joined task)
        self.tid = tid
        self.obj = obj  # the object itself (for debugging: histories are keyed by ``key``, a slot or label)
        self.key = key
        self.access = access
        self.node = node
        self.other = other
        self.wait = wait  # the step waited on a predicate
        self.enabler = enabler  # the event that enabled it (-1: none, or it was never disabled)
        #: happens-before as a bit set over event indices: bit ``k`` is set when event ``k`` happens before
        #: or is this one (``vc``), or happens before this step of the task (``pred``, the task's clock)
        self.vc = vc
        self.pred = pred
        self.prev_obj = prev_obj  # previous event on the same object
        self.prev_task = prev_task  # previous step of the same task


#: the sleep set of a step with no sleeping task (never mutated)
NO_SLEEP: Final[frozenset[int]] = frozenset()


def conflict(a1: str, o1: Any, a2: str, o2: Any) -> bool:
    return (a1 != READ or a2 != READ) and (o1 is o2 or (type(o1) is str and o1 == o2))

