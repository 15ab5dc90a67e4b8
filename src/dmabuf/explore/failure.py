"""What the explorer returns: :class:`ExploreResult` and :class:`Failure`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..runtime._trace import TraceEvent
from .picture import lanes

__all__ = ["ExploreResult", "Failure", "repeating_suffix"]


@dataclass
class Failure:
    """A failing execution, ready to read and to replay.

    Attributes:
        kind: ``"exception"``, ``"deadlock"``, ``"kernel-warning"``, ``"leak"``, ``"livelock"`` or
            ``"nondeterminism"``.
        message: one paragraph a person can act on.
        schedule: replay string; ``dmabuf.replay(body, failure.schedule)`` runs the same execution.
        trace: the events of the execution, in order.
        exception: the exception raised in a task, if any.
        steps: scheduling steps in the execution.
        preemptions: involuntary task switches in it.
        task: name of the task that failed, if one did.
    """

    kind: str
    message: str
    schedule: str
    trace: list[TraceEvent] = field(default_factory=list)
    exception: BaseException | None = None
    steps: int = 0
    preemptions: int = 0
    task: str | None = None
    shrink_note: str = ""

    def story(self) -> str:
        """The failure as a readable story: what went wrong, the steps that led there, how to replay it."""
        head = self.message if self.message.startswith(self.kind) else f"{self.kind}: {self.message}"
        lines = [head, ""]
        lines.append(f"Trace ({self.steps} steps, {self.preemptions} preemptions):")
        lines.append(self.picture())
        if self.shrink_note:
            lines.append("")
            lines.append(self.shrink_note)
        lines.append("")
        lines.append(f"Replay: dmabuf.replay(body, {self.schedule!r})")
        return "\n".join(lines)

    def picture(self, max_width: int = 32) -> str:
        """The execution drawn as one column per task, time going down (see :mod:`.picture`)."""
        return lanes(self.trace, max_width)

    def table(self) -> str:
        """The execution as a table, one event per line."""
        head = f"{'step':>4}  {'task':<12} {'operation':<14} object"
        return "\n".join([head, *(str(ev) for ev in self.trace)])

    def __str__(self) -> str:
        return self.story()


@dataclass
class ExploreResult:
    """Result of :func:`dmabuf.explore`.

    Attributes:
        ok: no failure was found.
        complete: every execution within the bounds was covered (exhaustive strategies only).
        executions: executions run.
        failure: the first failure found, or ``None``.
        strategy: the strategy that ran.
        elapsed: wall-clock seconds.
        stats: extra counters (sleep-blocked runs, distinct classes, lock orders seen, ...).
        notes: what happened besides the search (database replays, interruption and where the frontier is).
    """

    ok: bool
    complete: bool
    executions: int
    failure: Failure | None
    strategy: str = ""
    elapsed: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.complete:
            how = "search complete"
        elif self.failure is not None:
            how = "search stopped at the first failure"
        elif self.strategy in ("random", "pct"):
            how = "sampled (not exhaustive)"
        else:
            how = "search incomplete (bounded)"
        head = f"{'ok' if self.ok else 'FAILED'}: {self.executions} executions with {self.strategy} in " + (
            f"{self.elapsed:.3f} s, {how}"
        )
        bound = self.stats.get("bound_text")
        if isinstance(bound, str) and bound:  # PCT's guarantee, printed as the issue asks
            head += f"\n  {bound}"
        if self.notes:
            head += "".join(f"\n  note: {n}" for n in self.notes)
        if self.failure is None:
            return head
        return head + "\n\n" + self.failure.story()


def repeating_suffix(trace: list[TraceEvent], max_period: int = 64) -> tuple[list[TraceEvent], int]:
    """The shortest period ``p`` such that the trace's step events end with at least three repetitions of
    the same ``p`` events; returns (one period, repetitions) or ``([], 0)``."""
    steps = [e for e in trace if e.access]
    keys = [(e.task, e.op, e.obj) for e in steps]
    n = len(keys)
    for p in range(1, min(max_period, n // 3) + 1):
        tail = keys[n - p :]
        reps = 1
        while (reps + 1) * p <= n and keys[n - (reps + 1) * p : n - reps * p] == tail:
            reps += 1
        if reps >= 3:
            return steps[n - p :], reps
    return [], 0
