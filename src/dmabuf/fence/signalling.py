"""The context fences are signalled in: fence signalling sections, the wait annotation, irq_work.

* :func:`begin_signalling` / :func:`end_signalling` open and close a fence signalling critical section:
  inside one, waiting on a fence is a possible deadlock (WARN), and every lock taken is recorded by
  lockdep-lite as taken under :data:`FENCE_MAP`;
* :func:`might_wait` annotates a fence wait: WARN inside a section, and record that the locks held now are
  held around a fence wait, so a lock also taken inside a section shows up as a lock-order cycle;
* :func:`irq_work_queue` runs a function asynchronously in atomic (hard-irq) context: a detached task. The
  containers (array, chain) signal out of a member's callback through it, after the signaller dropped the
  member fence's lock.

Kernel: ``dma_fence_begin_signalling``, ``dma_fence_end_signalling``, ``__dma_fence_might_wait``
(drivers/dma-buf/dma-fence.c), ``irq_work_queue``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import lockdep
from ..errors import InvalidArgument
from ..kernel import config
from ..kernel._warn import WARN
from ..runtime import Task, active, rt

__all__ = [
    "FENCE_MAP",
    "begin_signalling",
    "end_signalling",
    "in_signalling_section",
    "irq_work_queue",
    "might_wait",
]


_SIGNALLING = "dma_fence_signalling"


# ---------------------------------------------------------------------- signalling annotations
class _FenceMap:
    """The lockdep map ``dma_fence_map``: held (for read) inside signalling sections."""

    _dm_label = "dma_fence_map"
    _dm_class = "dma_fence_map"


FENCE_MAP = _FenceMap()


def begin_signalling() -> bool:
    """Open a fence signalling critical section in the running task; returns the cookie for
    :func:`end_signalling` (``True``: nested or in atomic context, nothing to undo).

    Inside a section, waiting on a fence is a possible deadlock (WARN), and every lock taken is recorded
    by lockdep-lite as taken under ``dma_fence_map``, so a lock that is also held around a fence wait
    elsewhere shows up as a lock-order cycle.

    Kernel: ``dma_fence_begin_signalling`` (drivers/dma-buf/dma-fence.c).
    """
    r = active()
    if r is None:
        return True
    t = r.current()
    if t.extra.get(_SIGNALLING, 0) > 0:
        return True
    if t.atomic_depth > 0 or t.rcu_depth > 0:
        return True
    t.extra[_SIGNALLING] = 1
    # a read-trylock in the kernel: no dependency from the locks already held
    t.held.append(FENCE_MAP)
    return False


def end_signalling(cookie: bool) -> None:
    """Close the section opened by the :func:`begin_signalling` that returned ``cookie``.
    Kernel: ``dma_fence_end_signalling``."""
    if not isinstance(cookie, bool):
        raise InvalidArgument(f"dma_fence_end_signalling needs the bool cookie, got {cookie!r}")
    if cookie:
        return
    r = active()
    if r is None:
        return
    t = r.current()
    if WARN(
        t.extra.get(_SIGNALLING, 0) <= 0,
        f"dma_fence_end_signalling in {t.name!r} without a matching dma_fence_begin_signalling",
        "dma_fence_end_signalling: unbalanced",
    ):
        return
    t.extra[_SIGNALLING] = 0
    lockdep.release(t, FENCE_MAP)


def in_signalling_section(task: Task) -> bool:
    """True if ``task`` is inside a fence signalling section."""
    return bool(task.extra.get(_SIGNALLING, 0))


def might_wait() -> None:
    """Annotate a fence wait: WARN inside a signalling section, and record (lockdep-lite) that every
    lock held now is held around a fence wait. Kernel: ``__dma_fence_might_wait``."""
    r = active()
    if r is None:
        return
    t = r.current()
    if in_signalling_section(t):
        WARN(
            True,
            f"possible deadlock: wait inside fence signalling critical section (task {t.name!r}): the fence "
            "waited on may need this very section to finish before it can signal",
            "dma_fence: wait inside signalling section",
        )
        return
    if config.CONFIG_PROVE_LOCKING and t.held:
        lockdep.acquire(t, FENCE_MAP)
        lockdep.release(t, FENCE_MAP)


# ---------------------------------------------------------------------- irq_work
def irq_work_queue(fn: Callable[[Any], object], arg: Any, name: str = "irq_work") -> None:
    """Run ``fn(arg)`` soon, asynchronously, in atomic (hard-irq) context: a detached task.
    Kernel: ``irq_work_queue`` as used by the fence containers."""
    if not isinstance(name, str):
        raise InvalidArgument(f"irq_work_queue: name must be a str, got {type(name).__name__}")
    r = rt()

    def run() -> None:
        t = rt().current()
        t.atomic_depth += 1
        try:
            fn(arg)
        finally:
            t.atomic_depth -= 1

    r.spawn(run, (), name, detached=True)
