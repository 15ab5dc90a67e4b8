"""Trace events recorded by the controlled runtime when tracing is on (replays of failures)."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["TraceEvent"]


class TraceEvent(NamedTuple):
    """One event of an execution.

    Attributes:
        step: index of the scheduling step the event belongs to (1-based; 0 before the first step).
        task: name of the task.
        op: the operation (``"lock"``, ``"read"``...) or a runtime event (``"spawn"``, ``"block"``, ``"exit"``,
            ``"time"``, ``"choose"``).
        obj: readable name of the object (``"Mutex#1"``), or ``"-"``.
        access: ``"read"``, ``"write"``, ``"local"`` or ``""`` for runtime events.
        note: extra words for the story (``"preempts task-1"``, ``"timed out"``, ``"chose 2 of 3"``).
    """

    step: int
    task: str
    op: str
    obj: str
    access: str = ""
    note: str = ""

    @property
    def operation(self) -> str:
        """The operation (the contract's name for :attr:`op`)."""
        return self.op

    @property
    def object(self) -> str:
        """The object's readable name (the contract's name for :attr:`obj`)."""
        return self.obj

    def __str__(self) -> str:
        head = f"{self.step:>4}  {self.task:<12} {self.op:<14} {self.obj}"
        return f"{head}   ({self.note})" if self.note else head
