"""dmabuf: the Linux kernel's buffer-sharing protocol (dma-buf, dma-resv, dma-fence, ww_mutex), executable
and checkable.

The public entry points of the explorer (see ``shared/reference/explorer-api.md``)::

    result = dmabuf.explore(body, strategy="dfs")
    dmabuf.replay(body, result.failure.schedule)
    dmabuf.run_threads(body)

Inside a body, tasks are started with :func:`spawn` and data choices made with :func:`choose`.
Kernel-named functions live in :mod:`dmabuf.kernel`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _core as _core  # first of all: decides whether the compiled core or its sources load
from . import kernel as kernel  # the kernel layer underlies sync/, fence/ and resv
from ._core import core_build
from .errors import (
    Deadlk,
    DeadlockDetected,
    DmabufError,
    InvalidArgument,
    KernelBug,
    KernelWarning,
    LeakDetected,
    NotInRuntime,
    UsageError,
)
from .explore import ExploreResult, Failure, explore, replay
from .runtime import Task, rt, spawn

__all__ = [
    "Deadlk",
    "DeadlockDetected",
    "DmabufError",
    "ExploreResult",
    "Failure",
    "InvalidArgument",
    "KernelBug",
    "KernelWarning",
    "LeakDetected",
    "NotInRuntime",
    "Task",
    "UsageError",
    "choose",
    "core_build",
    "explore",
    "replay",
    "run_threads",
    "spawn",
]

__version__ = "0.1.0"

_core.restore_class_docs()


def choose(n: int, label: str = "") -> int:
    """A recorded data choice: an int in ``range(n)``. The explorer tries every value; on real threads it
    comes from the run's seeded RNG.

    Raises:
        InvalidArgument: ``n`` is not a positive int.
        NotInRuntime: called outside ``run_threads``/``explore``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidArgument(f"choose(n) needs a positive int n, got {n!r}")
    return rt().choose(n, label)


def run_threads(
    body: Callable[[], Any], *, seed: int = 0, jitter: bool = False, timeout: float | None = None
) -> Any:
    """Run ``body`` once on real OS threads and return its result.

    Every task spawned inside runs on its own thread. Raises the first task's exception,
    :class:`DeadlockDetected` when every task is blocked for good, :class:`LeakDetected` for tasks never
    joined or locks held at the end, :class:`KernelWarning` for warnings logged in ``log`` warn mode.

    Args:
        seed: seeds ``choose`` and the jitter.
        jitter: yield the CPU at scheduling points at random, to shake out races in soak tests.
        timeout: give up (``TimeoutError``) if tasks are still running after this many seconds.
    """
    from .runtime import activate, deactivate
    from .runtime.threads import ThreadRuntime

    if not callable(body):
        raise InvalidArgument(f"run_threads needs a zero-argument callable, got {type(body).__name__}")
    r = ThreadRuntime(seed=seed, jitter=jitter, timeout=timeout)
    activate(r)
    try:
        return r.run(body)
    finally:
        deactivate(r)
