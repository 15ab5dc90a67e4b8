"""The runtime seam: the one interface all model code calls.

Model code (locks, fences, dma-buf core, drivers) never imports ``threading`` or ``greenlet``. It calls the
current :class:`Runtime` for the few things that depend on *how* the program is executed:

* ``spawn`` a task, ``current`` task, ``join`` (via :meth:`Task.join`);
* ``point(op, obj, access)``: a **scheduling point**, called *before* an operation on shared state. Under the
  controlled runtime the explorer decides here which task executes its next operation. Code between two
  points of one task is treated as one atomic step, so every shared access must be preceded by a point;
* ``wait(op, obj, access, ready, timeout_ns)``: a scheduling point that is only *enabled* once ``ready()`` is
  true (or the timeout expired). This is the only way to block. ``notify(obj)`` must be called after a
  state change that may make a waiter's ``ready()`` true: the threads runtime relies on it to wake threads
  (a forgotten ``notify`` leaves the waiter asleep until every task is blocked, when the deadlock check
  re-evaluates all predicates once more and rescues it: slow, but not a hang); the controlled runtime
  re-evaluates every predicate at every decision;
* a clock (``now_ns``), and ``choose(n)``, a recorded data choice.

Both implementations guarantee that model code between two scheduling points runs atomically with respect
to other tasks' model code (the controlled runtime runs one greenlet at a time; the threads runtime holds a
single model lock except at scheduling points and while blocked).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Final

# the package, partly initialised at this point: ``rt`` is looked up on it at call time
from .. import runtime as _runtime_pkg
from ..errors import InvalidArgument

__all__ = [
    "LOCAL",
    "READ",
    "RELEASE",
    "WRITE",
    "FieldIsNone",
    "Predicate",
    "Runtime",
    "Task",
    "TaskDone",
    "describe_wait",
    "holders_of",
    "leak_problems",
]

# Final: compiled (setup.py), the core modules use these as constants instead of looking them up
#: Access kind of a scheduling point that only observes the object.
READ: Final = "read"
#: Access kind of a scheduling point that may modify the object.
WRITE: Final = "write"
#: Access kind of an operation that only releases an object others wait for (unlock). It conflicts like a
#: WRITE, but a *waiting* acquisition is never considered for reordering before it (it could not run there),
#: so DPOR races an acquisition with the previous acquisition instead.
RELEASE: Final = "release"
#: Access kind of a step that neither changes shared state nor observes anything that can still change once
#: it is enabled (joining a finished task). The controlled runtime runs such steps eagerly, without making a
#: scheduling decision, so they never multiply the number of explored executions.
LOCAL: Final = "local"

Ready = Callable[[], bool]


class Predicate:
    """A wait predicate the compiled runtime evaluates natively: a ``ready`` callable whose test is
    :meth:`check`. The controlled runtime re-evaluates the predicates of the waiting tasks at every
    decision; for a :class:`Predicate` (compiled with the runtime, setup.py) that runs no Python frame and no
    call through ``tp_call``. Any other callable still works as a ``ready``; it is simply called.

    Internal to the runtime: model code uses the two kinds below, or passes any callable. (Compiled,
    CPython refuses classes written in Python as subclasses of it, so it is not part of the public seam.)"""

    def check(self) -> bool:
        """True when the waiter may proceed. Subclasses override it; it must be pure (no side effects)."""
        raise NotImplementedError("[internal bug] Predicate.check() is abstract")

    def __call__(self) -> bool:
        return self.check()


class FieldIsNone(Predicate):
    """A wait predicate: true when ``holder.<field>`` is ``None`` (a lock whose owner left). A lock keeps
    one and passes it to every ``wait``."""

    def __init__(self, holder: object, field: str) -> None:
        self.holder = holder
        self.field = field

    def check(self) -> bool:
        # getattr, not the instance's __dict__: asking for __dict__ would make CPython 3.11 give the object
        # a real dict, and every attribute access of the model code on it slower
        return getattr(self.holder, self.field) is None

    def __repr__(self) -> str:
        return f"<{type(self.holder).__name__}.{self.field} is None>"


class TaskDone(Predicate):
    """The wait predicate of :meth:`Task.join`: true once ``task`` finished."""

    def __init__(self, task: Task) -> None:
        self.task = task

    def check(self) -> bool:
        return self.task.done

    def __repr__(self) -> str:
        return f"<task {self.task.name!r} done>"


class Task:
    """One schedulable thread of model code (a kernel ``task_struct``).

    Besides scheduling state, a task carries the per-task kernel context the primitives need: locks held
    (``held``), atomic-context depth (spinlocks, irqs off, timer callbacks), RCU read-side nesting, the kernel
    task state used by ``set_current_state``/``schedule``, pending signals and the kthread stop flag.
    """

    # no __slots__: setup.py compiles this module with mypyc, which refuses them (compiled, the
    # attributes are fixed C fields anyway)

    def __init__(
        self, tid: int, name: str, fn: Callable[..., Any], args: tuple[Any, ...], daemon: bool, detached: bool
    ) -> None:
        self.id = tid
        self.name = name
        self.fn = fn
        self.args = args
        self.daemon = daemon
        self.detached = detached
        self.done = False
        self.joined = False
        self.result: Any = None
        self.exc: BaseException | None = None
        self.held: list[Any] = []
        self.atomic_depth = 0
        self.rcu_depth = 0
        self.rcu_gen = 0
        self.kstate = 0
        self.sigpending = False
        self.should_stop = False
        self.extra: dict[str, Any] = {}
        # what the task is about to do / waiting for
        self.op = ""
        self.obj: object = None
        self.access = WRITE
        self.ready: Ready | None = None
        self.deadline: int | None = None

    @property
    def sleep_forbidden(self) -> bool:
        """True in atomic context, in an RCU read-side section, or with a task state other than
        TASK_RUNNING (between ``set_current_state`` and ``schedule``): a blocking call WARNs there. One
        native read for the model's sleeping-lock fast paths instead of three."""
        return bool(self.atomic_depth or self.rcu_depth or self.kstate)

    def join(self, timeout: float | None = None) -> Any:
        """Wait until the task finished and return its function's result.

        Args:
            timeout: seconds to wait at most (``None``: forever). On timeout :class:`TimeoutError` is raised.

        Locking: may sleep; must not be called in atomic context.
        """
        # the active runtime, read from the package (not ``from . import rt``: a function-level import costs
        # ~1 us per join); rt() only to raise outside one
        r = _runtime_pkg._current or _runtime_pkg.rt()
        if r.current() is self:
            raise InvalidArgument(f"task {self.name!r} cannot join itself: that would wait forever")
        ok = r.wait("join", self, LOCAL, TaskDone(self), None if timeout is None else int(timeout * 1e9))
        if not ok:
            raise TimeoutError(f"task {self.name!r} did not finish within {timeout} s")
        self.joined = True
        return self.result

    def __repr__(self) -> str:
        state = "done" if self.done else ("waiting" if self.ready is not None else "live")
        return f"<Task {self.id} {self.name!r} {state}>"


def holders_of(obj: object) -> list[Task]:
    """Tasks that hold ``obj`` (for wait-for graphs): a task "holds" itself until it finishes; a lock object
    reports its owner(s) through a ``_dm_holders()`` method."""
    if isinstance(obj, Task):
        return [] if obj.done else [obj]
    h = getattr(obj, "_dm_holders", None)
    if h is None:
        return []
    result: list[Task] = h()
    return result


def describe_wait(t: Task, name_of: Callable[[object], str]) -> str:
    """One clause of a deadlock report: what ``t`` waits for and who holds it."""
    name = name_of(t.obj)
    all_holders = holders_of(t.obj)
    holders = [h for h in all_holders if h is not t]
    if t in all_holders and not holders:
        return f"{t.name} waits to {t.op} {name}, which it holds itself (self-deadlock)"
    if holders:
        return f"{t.name} waits to {t.op} {name} held by {', '.join(h.name for h in holders)}"
    return f"{t.name} waits to {t.op} {name} (no task will make it ready)"


def leak_problems(tasks: Sequence[Task], ended_holding: list[str], run_globals: dict[str, Any]) -> list[str]:
    """What a finished run left behind: joinable tasks never joined, locks held at task exit, and the messages
    of the end checks registered with :meth:`Runtime.add_end_check`."""
    problems = []
    for t in tasks:  # a loop rather than a list comprehension: cheaper for the few tasks of a run
        if t.id and not (t.daemon or t.detached or t.joined):
            problems.append(f"task {t.name!r} was spawned but never joined")
    problems.extend(ended_holding)
    checks = run_globals.get("_end_checks")
    if checks:
        for check in checks:
            msg = check()
            if msg:
                problems.append(msg)
    return problems


class Runtime(ABC):
    """Abstract runtime. See the module docstring for the contract."""

    #: "threads" or "controlled"
    kind: str = ""
    #: per-run global state of the modelled kernel (fence context counter, system workqueue...).
    globals: dict[str, Any]

    @abstractmethod
    def spawn(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        name: str | None = None,
        *,
        daemon: bool = False,
        detached: bool = False,
    ) -> Task:
        """Start a task running ``fn(*args)``.

        ``daemon`` tasks (workqueue workers, timer softirqs) are killed when every other task finished and
        never count towards a deadlock on their own. ``detached`` tasks (kthreads, RCU callbacks) run to
        completion but need not be joined.
        """

    @abstractmethod
    def current(self) -> Task:
        """The task running this code."""

    @abstractmethod
    def point(self, op: str, obj: object, access: str = WRITE) -> None:
        """A scheduling point before operation ``op`` on ``obj`` with access kind READ or WRITE."""

    @abstractmethod
    def wait(self, op: str, obj: object, access: str, ready: Ready, timeout_ns: int | None = None) -> bool:
        """A scheduling point that blocks until ``ready()`` holds; returns its value when the task resumes
        (``False`` only if the timeout expired first)."""

    @abstractmethod
    def notify(self, obj: object) -> None:
        """Tell the runtime that tasks waiting on ``obj`` may now be ready."""

    @abstractmethod
    def notify_task(self, task: Task) -> None:
        """Tell the runtime that ``task``'s wait predicate may now be true (signals, wake_up_process)."""

    @abstractmethod
    def now_ns(self) -> int:
        """Monotonic time in nanoseconds since the start of the run (virtual under the explorer)."""

    @abstractmethod
    def choose(self, n: int, label: str = "") -> int:
        """A recorded data choice in ``range(n)``."""

    @abstractmethod
    def log_warning(self, exc: BaseException) -> None:
        """Record a kernel warning raised in ``log`` warn mode; it is reported as a finding at the end."""

    @abstractmethod
    def tasks(self) -> list[Task]:
        """All tasks of this run, in creation order."""

    def add_end_check(self, check: Callable[[], str | None]) -> None:
        """Register a check run when every task has finished; a returned string is reported as a leak."""
        self.globals.setdefault("_end_checks", []).append(check)
