"""The strategy seam: a strategy proposes the choice at every branch of an execution.

A :class:`PathStrategy` keeps the branches of the current execution in ``self.path``. Branches before
``len(path)`` are *replayed* (and checked: the same tasks must be enabled and the chosen one must be about
to do the same operation, otherwise the body is nondeterministic); new branches are appended with the
choice :meth:`PathStrategy.first_choice` proposes. After an execution, :meth:`PathStrategy.advance` prepares
the next one (DFS backtracks; random search starts afresh).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import InvalidArgument
from ...runtime import Task
from ...runtime.controlled import ControlledRuntime, Outcome
from ..schedule import Entry

__all__ = ["Branch", "PathStrategy", "ReplayStrategy"]


class Branch:
    """One decision of an execution: a scheduling branch (``kind == "t"``) over ``tids`` (enabled task ids
    in id order; ``cur`` is the index of the task that reached the point, or -1) or a data branch
    (``kind == "c"``) over ``range(n)``. ``pre`` counts preemptions before it; ``op`` is the operation
    of the chosen task (checked on replay)."""

    __slots__ = ("chosen", "cur", "k", "kind", "n", "op", "order", "pre", "tids")

    def __init__(self, kind: str, tids: tuple[int, ...], n: int, cur: int, pre: int, chosen: int) -> None:
        self.kind = kind
        self.tids = tids
        self.n = n
        self.cur = cur
        self.pre = pre
        self.chosen = chosen
        self.op = ""
        self.k = 0
        self.order: list[int] | None = None

    def alternatives(self) -> list[int]:
        """All choices in exploration order: the current task first (no preemption), then by task id."""
        if self.order is None:
            if self.cur >= 0:
                self.order = [self.cur] + [i for i in range(self.n) if i != self.cur]
            else:
                self.order = list(range(self.n))
        return self.order

    def entry(self) -> Entry:
        if self.kind == "c":
            return Entry("c", self.chosen, self.n)
        return Entry("t", self.tids[self.chosen], 0, self.op, "")


class PathStrategy:
    """Base of the path-based strategies. Subclasses override :meth:`first_choice` and :meth:`advance`."""

    name = "base"

    def __init__(self) -> None:
        self.path: list[Branch] = []
        self.pos = 0
        #: decisions the first branches must take (a work unit of a parallel search); never backtracked
        self.forced: list[Entry] = []

    # ---------------------------------------------------------------- hooks
    def first_choice(self, b: Branch) -> int:
        """The choice for a branch this execution reaches for the first time."""
        return b.alternatives()[0]

    def advance(self, outcome: Outcome) -> bool:
        """Prepare the next execution; ``False`` when the search is exhausted."""
        raise NotImplementedError

    def start(self) -> None:
        self.pos = 0

    # ---------------------------------------------------------------- Decider
    def sched(self, rt: ControlledRuntime, options: Sequence[Task], cur: Task | None) -> int:
        pos = self.pos
        self.pos = pos + 1
        path = self.path
        if pos < len(path):
            b = path[pos]
            tids = b.tids
            ok = b.kind == "t" and len(tids) == len(options)
            if ok:
                for i, t in enumerate(options):
                    if t.id != tids[i]:
                        ok = False
                        break
            if not ok or (b.op and options[b.chosen].op != b.op):
                self._diverged(rt, pos, b, options)
            b.op = options[b.chosen].op
            return b.chosen
        cur_idx = -1
        if cur is not None:
            for i, t in enumerate(options):
                if t is cur:
                    cur_idx = i
                    break
        b = Branch("t", tuple(t.id for t in options), len(options), cur_idx, rt.preemptions, 0)
        if pos < len(self.forced):
            b.chosen = self._forced_index(rt, pos, b, options)
        else:
            b.chosen = self.first_choice(b)
        b.op = options[b.chosen].op
        path.append(b)
        return b.chosen

    def data(self, rt: ControlledRuntime, n: int, label: str) -> int:
        pos = self.pos
        self.pos = pos + 1
        path = self.path
        if pos < len(path):
            b = path[pos]
            if b.kind != "c" or b.n != n:
                self._diverged(rt, pos, b, None, n)
            return b.chosen
        b = Branch("c", (), n, -1, rt.preemptions, 0)
        if pos < len(self.forced):
            e = self.forced[pos]
            if e.kind != "c" or not 0 <= e.value < n:
                rt.abort(Outcome("nondeterminism", f"work unit prefix does not fit: branch {pos + 1}"))
            b.chosen = e.value
        else:
            b.chosen = self.first_choice(b)
        path.append(b)
        return b.chosen

    def _forced_index(self, rt: ControlledRuntime, pos: int, b: Branch, options: Sequence[Task]) -> int:
        e = self.forced[pos]
        for i, t in enumerate(options):
            if e.kind == "t" and t.id == e.value:
                return i
        rt.abort(Outcome("nondeterminism", f"work unit prefix does not fit: branch {pos + 1}"))

    def _diverged(
        self, rt: ControlledRuntime, pos: int, b: Branch, options: Sequence[Task] | None, n: int = 0
    ) -> None:
        expected = f"choose({b.n})" if b.kind == "c" else f"task {b.tids[b.chosen]} doing {b.op}"
        if options is None:
            got = f"choose({n})" if n else "a scheduling branch"
        else:
            got = "enabled tasks " + ", ".join(f"{t.id} ({t.op} {rt.labeler.name(t.obj)})" for t in options)
        msg = (
            f"nondeterminism: the same schedule gave a different execution; diverged at step {rt.steps + 1} "
            f"(branch {pos + 1}): expected {expected}, got {got}. The body depends on something the runtime "
            "does not control (random, wall-clock time, state kept between executions, hash order): "
            "derive it from dmabuf.choose() or create it inside the body."
        )
        rt.abort(Outcome("nondeterminism", msg))

    def decisions(self) -> list[Branch]:
        """Branches of the execution that just ran (up to where it stopped)."""
        return self.path[: self.pos]


class ReplayStrategy:
    """Follows a recorded list of entries, checking each label, then continues without preemptions.

    Records the labelled entries of the run in ``self.recorded`` (used to print replay strings).
    """

    name = "replay"

    def __init__(self, entries: list[Entry], check_labels: bool = True, lenient: bool = False) -> None:
        self.entries = entries
        self.check_labels = check_labels and not lenient
        #: on a mismatch, fall back to the default choice instead of reporting nondeterminism (shrinking)
        self.lenient = lenient
        self.pos = 0
        self.recorded: list[Entry] = []
        self.divergence: str | None = None

    def start(self) -> None:
        self.pos = 0
        self.recorded = []

    def sched(self, rt: ControlledRuntime, options: Sequence[Task], cur: Task | None) -> int:
        pos = self.pos
        self.pos = pos + 1
        if pos < len(self.entries):
            e = self.entries[pos]
            idx = -1
            for i, t in enumerate(options):
                if t.id == e.value:
                    idx = i
                    break
            if e.kind != "t" or idx < 0:
                if not self.lenient:
                    self._diverged(rt, pos, e, options)
                idx = self._default(options, cur)
            t = options[idx]
            if self.check_labels and e.op and (t.op != e.op or (e.obj and rt.labeler.name(t.obj) != e.obj)):
                self._diverged(rt, pos, e, options)
        else:
            idx = self._default(options, cur)
        t = options[idx]
        self.recorded.append(Entry("t", t.id, 0, t.op, rt.labeler.name(t.obj)))
        return idx

    @staticmethod
    def _default(options: Sequence[Task], cur: Task | None) -> int:
        """No preemption: the current task if it may continue, else the lowest id."""
        if cur is not None:
            for i, t in enumerate(options):
                if t is cur:
                    return i
        return 0

    def data(self, rt: ControlledRuntime, n: int, label: str) -> int:
        pos = self.pos
        self.pos = pos + 1
        v = 0
        if pos < len(self.entries):
            e = self.entries[pos]
            if e.kind != "c" or e.n != n:
                if not self.lenient:
                    self._diverged(rt, pos, e, None, n)
                v = min(e.value, n - 1) if e.kind == "c" else 0
            else:
                v = e.value
        self.recorded.append(Entry("c", v, n))
        return v

    def _diverged(
        self, rt: ControlledRuntime, pos: int, e: Entry, options: Sequence[Task] | None, n: int = 0
    ) -> None:
        if options is None:
            got = f"choose({n})" if n else "a scheduling branch"
        else:
            got = "runnable: " + ", ".join(
                f"task {t.id} doing {t.op} on {rt.labeler.name(t.obj)}" for t in options
            )
        msg = (
            f"nondeterminism: replay diverged at step {rt.steps + 1} (branch {pos + 1}): expected "
            f"{e.describe()}, but {got}. The program changed since the schedule was recorded, or it depends "
            "on something the runtime does not control."
        )
        self.divergence = msg
        rt.abort(Outcome("nondeterminism", msg))


def check_positive_int(name: str, value: Any, allow_none: bool = True, minimum: int = 0) -> None:
    """Validate a bound argument with a message that says what to pass instead."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        what = "an int or None" if allow_none else "an int"
        raise InvalidArgument(f"{name} must be {what}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise InvalidArgument(f"{name} must be >= {minimum}, got {value}")
