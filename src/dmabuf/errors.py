"""Every exception the package raises, in one place.

The hierarchy follows three purposes:

* **Misuse** of the API by the caller (:class:`UsageError` and its subclasses). The message names the rule
  that was broken and what to do instead. These are also ``RuntimeError`` (and ``TypeError`` for a wrong
  argument type) so generic handlers keep working.
* **Kernel conditions** that the modelled kernel code would report: :class:`KernelWarning` where the kernel
  ``WARN``\\ s (and, in ``log`` warn mode, carries on), :class:`KernelBug` where it ``BUG``\\ s. A model checker
  treats both as found bugs.
* **Findings of the runtime** (deadlock, livelock, nondeterminism, leaks) and internal errors.

Control-flow exceptions used by the runtime itself derive from ``BaseException`` so that user code's
``except Exception`` cannot swallow them.
"""

from __future__ import annotations

__all__ = [
    "CoreBuildWarning",
    "DataIntegrityError",
    "Deadlk",
    "DeadlockDetected",
    "DidNotReproduce",
    "DmabufError",
    "InternalError",
    "InvalidArgument",
    "KernelBug",
    "KernelWarning",
    "LeakDetected",
    "LivelockDetected",
    "LostWrite",
    "MappingInvalidated",
    "MappingLeak",
    "Nondeterminism",
    "NotInRuntime",
    "OutOfPages",
    "ReplayFormatError",
    "StaleContent",
    "StaleMapping",
    "TaskKilled",
    "UsageError",
]


class DmabufError(Exception):
    """Base class of every error this package raises on purpose."""


class UsageError(DmabufError, RuntimeError):
    """The caller broke a rule of the API; the message says which rule and what to do instead."""


class InvalidArgument(UsageError, TypeError):
    """An argument has the wrong type or an impossible value (a ``None`` where an object is needed...)."""


class NotInRuntime(UsageError):
    """A runtime operation (spawn, choose, a lock...) was called outside ``run_threads`` / ``explore``."""


class ReplayFormatError(UsageError, ValueError):
    """A replay string is malformed or was written by an incompatible version of the format."""


class KernelWarning(DmabufError):
    """A condition on which the Linux kernel prints a ``WARN`` (recoverable misuse).

    Attributes:
        rule: short name of the kernel rule that was broken (for example ``"ww_mutex: lock after
            acquire_done"``).
    """

    def __init__(self, message: str, rule: str = "") -> None:
        super().__init__(message)
        self.rule = rule


class KernelBug(KernelWarning):
    """A condition on which the kernel would ``BUG()`` (an invariant broken beyond recovery)."""


class Deadlk(DmabufError):
    """Back-off signal of the Pythonic ww_mutex API: the Python form of ``-EDEADLK``.

    Raised by :meth:`WWMutex.lock` when the acquire context must release all its locks and retry, taking the
    contended lock with ``lock_slow`` first. ``contended`` is that lock.
    """

    def __init__(self, message: str, contended: object = None) -> None:
        super().__init__(message)
        self.contended = contended


class DeadlockDetected(DmabufError):
    """Every live task is blocked and nothing (no timeout, no timer) can wake any of them."""


class LivelockDetected(DmabufError):
    """An execution exceeded its step bound: tasks keep running without making progress."""


class LeakDetected(DmabufError):
    """At the end of a run, tasks were never joined or locks are still held."""


class MappingLeak(DmabufError):
    """Mappings an exporter handed out were never unmapped: at detach of their attachment (the TTM
    exporter, as ``amdgpu_dma_buf_unmap`` would free the sg table) or at a scenario's end
    (``MemoryExporter``)."""


class Nondeterminism(DmabufError):
    """Re-running the same schedule gave a different execution (the body depends on something the
    runtime does not control, such as ``random`` or wall-clock time)."""


class DidNotReproduce(DmabufError):
    """A replayed schedule ran to the end without the failure it was recorded with."""


class DataIntegrityError(DmabufError):
    """The memory model's oracle saw a data bug (stale mapping, stale content, lost bytes)."""


class InternalError(DmabufError):
    """An invariant of dmabuf itself failed. Messages start with ``[internal bug]``; please report it."""

    def __init__(self, message: str) -> None:
        if not message.startswith("[internal bug]"):
            message = "[internal bug] " + message
        super().__init__(message)


class CoreBuildWarning(UserWarning):
    """The compiled (mypyc) explorer core is present but was built from other sources than the ones beside
    it (an edited checkout): dmabuf runs the sources, correctly but slower. Reinstall to rebuild."""


class TaskKilled(BaseException):
    """Raised inside a task that the runtime is tearing down (end of an execution, failure elsewhere).

    Derives from ``BaseException`` so model code's ``except Exception`` does not swallow it.
    """


class StaleMapping(DataIntegrityError):
    """Device or CPU access through a mapping whose pages no longer belong to its buffer (freed or reused by
    a move or a release), or through a mapping that was already unmapped. The message names the buffer, the
    mapping, the page and the move that freed it."""


class StaleContent(DataIntegrityError):
    """Access to a page of a new placement that the move's copy has not filled yet (the move fence had not
    signalled): the reader sees old garbage, a writer's bytes would be overwritten by the copy."""


class LostWrite(DataIntegrityError):
    """At the end of an execution a buffer's bytes differ from the last completed writes to it: a write landed
    in pages that a move had already copied (or was never copied)."""


class MappingInvalidated(UsageError):
    """A mapping or attachment was used after the mapping-tracking policy made it unusable (one-shot
    invalidation); the importer must map again."""


class OutOfPages(DmabufError):
    """A memory domain's page pool has too few free pages for an allocation."""
