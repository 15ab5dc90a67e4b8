"""The reports of the controlled runtime's failed executions: deadlock (with the wait-for cycle) and
livelock (a step bound exceeded).

Cold code, kept out of the compiled scheduling core (``controlled.py``): it runs once per failing execution.
``find_wait_cycle`` also serves the threaded runtime's watchdog.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._api import Task, holders_of
from ._decider import Outcome

__all__ = ["deadlock_outcome", "find_wait_cycle", "livelock_outcome"]


def find_wait_cycle(blocked: list[Any]) -> list[Any]:
    """A cycle in the wait-for graph (task -> holders of the object it waits on), or ``[]``."""
    blocked_set = {id(t) for t in blocked}
    for start in blocked:
        path: list[Any] = []
        seen: dict[int, int] = {}
        t = start
        while t is not None and id(t) in blocked_set and id(t) not in seen:
            seen[id(t)] = len(path)
            path.append(t)
            nxt = None
            for h in holders_of(t.obj):
                if h is not t and id(h) in blocked_set:
                    nxt = h
                    break
            t = nxt
        if t is not None and id(t) in seen:
            return path[seen[id(t)] :]
    return []


def deadlock_outcome(blocked: list[Any], describe: Callable[[Task], str]) -> Outcome:
    """The ``deadlock`` outcome of an execution in which the tasks ``blocked`` wait and nothing can wake
    them: the wait-for cycle if there is one (also as ``extra["cycle"]``, task names), else every
    non-daemon waiter. ``describe`` says what a task waits for and who holds it."""
    cycle = find_wait_cycle(blocked)
    if cycle:
        parts = [describe(t) for t in cycle]
        msg = "deadlock: wait-for cycle: " + "; ".join(parts) + "."
    else:
        parts = [describe(t) for t in blocked if not t.daemon]
        msg = "deadlock: every live task is blocked and nothing can wake them: " + "; ".join(parts) + "."
    o = Outcome("deadlock", msg, blocked[0] if blocked else None)
    o.extra["cycle"] = [t.name for t in cycle]
    return o


def livelock_outcome(
    t: Task, own_bound: bool, max_steps: int, max_total: int, factor: int, ntasks: int
) -> Outcome:
    """The ``livelock`` outcome when task ``t`` took a step over a bound: its own ``max_steps``
    (``own_bound``), or the execution's ``max_total`` (``factor`` x ``max_steps``) over ``ntasks`` tasks."""
    if own_bound:
        what = f"task {t.name!r} exceeded its bound of {max_steps} scheduling steps in one execution without finishing"
    else:
        what = (
            f"the execution exceeded its bound of {max_total} scheduling steps in all "
            f"({factor} x max_steps={max_steps}) over {ntasks} tasks"
        )
    return Outcome(
        "livelock",
        f"livelock: {what}; tasks keep running without finishing (a retry loop that never succeeds, "
        "polling time without sleeping, or tasks spawning tasks forever). Raise max_steps if the program "
        "really needs that many steps.",
        t,
    )
