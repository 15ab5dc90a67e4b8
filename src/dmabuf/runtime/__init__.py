"""The runtime seam. Model code calls :func:`rt` (or the helpers below) and nothing else of the runtime.

Only one runtime is active in a process at a time (``run_threads`` or ``explore`` set it for their duration).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgument, NotInRuntime, UsageError
from ._api import LOCAL, READ, RELEASE, WRITE, FieldIsNone, Runtime, Task, TaskDone, holders_of
from ._labels import label_of

__all__ = [
    "LOCAL",
    "READ",
    "RELEASE",
    "WRITE",
    "FieldIsNone",
    "Runtime",
    "Task",
    "TaskDone",
    "activate",
    "active",
    "check_task_name",
    "current_task",
    "deactivate",
    "holders_of",
    "label_of",
    "rt",
    "spawn",
]

_current: Runtime | None = None
_OUTSIDE = (
    "this operation needs a runtime, but none is active. Call it from inside a body run by "
    "dmabuf.run_threads(body) or dmabuf.explore(body) (for example, create and use locks inside the body)."
)


def rt() -> Runtime:
    """The active runtime; raises :class:`NotInRuntime` outside ``run_threads``/``explore``."""
    r = _current
    if r is None:
        raise NotInRuntime(_OUTSIDE)
    return r


def active() -> Runtime | None:
    """The active runtime or ``None`` (for code that also works outside a runtime)."""
    return _current


def activate(r: Runtime) -> None:
    """Make ``r`` the active runtime (used by the runners only)."""
    global _current
    if _current is not None:
        raise UsageError(
            "a dmabuf runtime is already active in this process: run_threads/explore cannot be nested "
            "or run concurrently from two threads; run them one after the other"
        )
    _current = r


def deactivate(r: Runtime) -> None:
    """Undo :func:`activate`."""
    global _current
    if _current is r:
        _current = None


def current_task() -> Task:
    """The task running the caller."""
    return rt().current()


def spawn(fn: Callable[..., Any], *args: Any, name: str | None = None) -> Task:
    """Start ``fn(*args)`` as a new task of the active runtime; ``task.join()`` returns its result.

    Raises:
        NotInRuntime: outside ``run_threads``/``explore``.
        InvalidArgument: ``fn`` is not callable, or ``name`` is not a str or None.
    """
    if not callable(fn):
        raise InvalidArgument(f"spawn() needs a callable, got {type(fn).__name__}: pass the function itself")
    if name is not None and not isinstance(name, str):  # checked inline: spawn is on every execution's path
        check_task_name(name, "spawn()")
    return (_current or rt()).spawn(fn, args, name)


def check_task_name(name: object, who: str) -> str | None:
    """``name`` if it is a task name (a str, or None for a default one). Callers check it before the
    runtime's ``spawn``, which may be compiled (setup.py) and would reject it with a bare TypeError.

    Raises:
        InvalidArgument: ``name`` is neither; ``who`` names the call in the message.
    """
    if name is not None and not isinstance(name, str):
        raise InvalidArgument(f"{who}: the task name must be a str or None, got {type(name).__name__}")
    return name
