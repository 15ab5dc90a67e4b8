"""What the controlled runtime and the explorer's strategies exchange: the :class:`Decider` the runtime asks
at every branch, the :class:`ObservingDecider` base of a decider that sees every step (DPOR), the
:class:`Outcome` of an execution, and :class:`Abort`, by which a decider ends one. Compiled with the runtime
(setup.py), so the runtime calls an observing decider natively."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ._api import Task

if TYPE_CHECKING:
    from .controlled import ControlledRuntime

__all__ = ["Abort", "Decider", "ObservingDecider", "Outcome", "forwarding"]


class Decider(Protocol):
    """What the runtime asks at a branch. Implemented by the explorer's strategies."""

    def sched(self, rt: ControlledRuntime, options: Sequence[Task], cur: Task | None) -> int:
        """Index into ``options`` (enabled tasks in id order) of the task that executes next.
        ``cur`` is the task that reached the point (``None`` if it finished)."""
        ...

    def data(self, rt: ControlledRuntime, n: int, label: str) -> int:
        """A value in ``range(n)`` for ``choose(n)``."""
        ...


class ObservingDecider:
    """Base class of a decider that observes every step (``observe = True``: DPOR). The runtime calls such
    a decider directly; compiled with it (setup.py), that is a native call instead of a Python method
    lookup, at every step of every execution. Other deciders need only the :class:`Decider` methods."""

    observe = True

    def sched(self, rt: ControlledRuntime, options: Sequence[Task], cur: Task | None) -> int:
        """As :meth:`Decider.sched`."""
        raise NotImplementedError

    def data(self, rt: ControlledRuntime, n: int, label: str) -> int:
        """As :meth:`Decider.data`."""
        raise NotImplementedError

    def on_spawn(self, rt: ControlledRuntime, parent: Task | None, child: Task) -> None:
        """Task ``parent`` spawned ``child`` (``parent`` is ``None`` for the first task)."""

    def on_local(self, rt: ControlledRuntime, t: Task) -> None:
        """Task ``t`` takes a LOCAL step (run eagerly, without a decision)."""

    def on_end(self, rt: ControlledRuntime) -> None:
        """The execution ended (finished, failed or aborted)."""


class Outcome:
    """How one execution ended.

    ``kind`` is ``"ok"`` or a failure kind of the public contract; ``message`` is the human explanation;
    ``task`` the task that failed (if any); ``exception`` the exception raised in it.
    """

    # no __slots__: setup.py compiles this module with mypyc, which refuses them (compiled, the
    # attributes are fixed C fields anyway)

    def __init__(
        self, kind: str, message: str = "", task: Task | None = None, exception: BaseException | None = None
    ) -> None:
        self.kind = kind
        self.message = message
        self.task = task
        self.exception = exception
        self.result: Any = None
        self.extra: dict[str, Any] = {}

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    def __repr__(self) -> str:
        return f"<Outcome {self.kind}: {self.message[:60]}>"


class Abort(BaseException):
    """Raised by a decider (through :meth:`ControlledRuntime.abort`) to end the execution with ``outcome``."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.kind)
        self.outcome = outcome


class _Forward(ObservingDecider):
    """An observing decider that does not derive from :class:`ObservingDecider` (a duck-typed one, such as
    a test's): the runtime calls it through this, which forwards every call."""

    def __init__(self, decider: Any) -> None:
        self.decider = decider

    def sched(self, rt: ControlledRuntime, options: Sequence[Task], cur: Task | None) -> int:
        idx: int = self.decider.sched(rt, options, cur)
        return idx

    def data(self, rt: ControlledRuntime, n: int, label: str) -> int:
        v: int = self.decider.data(rt, n, label)
        return v

    def on_spawn(self, rt: ControlledRuntime, parent: Task | None, child: Task) -> None:
        self.decider.on_spawn(rt, parent, child)

    def on_local(self, rt: ControlledRuntime, t: Task) -> None:
        self.decider.on_local(rt, t)

    def on_end(self, rt: ControlledRuntime) -> None:
        self.decider.on_end(rt)


def forwarding(decider: Decider) -> ObservingDecider:
    """``decider`` as an :class:`ObservingDecider`: itself if it is one, else a forwarder to it."""
    return decider if isinstance(decider, ObservingDecider) else _Forward(decider)
