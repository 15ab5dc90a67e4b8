"""The threads runtime: real OS threads, real blocking, real monotonic time.

Model state is protected by one *model lock*. A task holds it while it runs model code and releases it at
every scheduling point (so other threads may run there) and while it is blocked. That gives the same
atomicity guarantee as the controlled runtime -- code between two points is atomic -- while the operating
system decides the interleaving. ``jitter=True`` additionally yields the CPU at scheduling points at random
(from a seeded RNG) to shake out races in soak tests.

Because every blocked task is registered with its wait predicate, the runtime also notices when all live
tasks are blocked with no timeout pending and reports that deadlock instead of hanging.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import (
    DeadlockDetected,
    InternalError,
    InvalidArgument,
    KernelWarning,
    LeakDetected,
    TaskKilled,
)
from ._api import WRITE, Ready, Runtime, Task, describe_wait, leak_problems
from ._labels import Labeler

__all__ = ["ThreadRuntime"]


class _TTask(Task):
    # no __slots__: setup.py compiles this module with mypyc, which refuses them (compiled, the
    # attributes are fixed C fields anyway)

    def __init__(
        self, tid: int, name: str, fn: Callable[..., Any], args: tuple[Any, ...], daemon: bool, detached: bool
    ) -> None:
        # explicit arguments: compiled by mypyc, super().__init__(*a) passes the tuple as the first one
        super().__init__(tid, name, fn, args, daemon, detached)
        self.cond: threading.Condition | None = None
        self.thread: threading.Thread | None = None
        self.blocked = False


class ThreadRuntime(Runtime):
    """Runs a body once on real threads. Use :meth:`run` (or ``dmabuf.run_threads``)."""

    kind = "threads"

    def __init__(self, seed: int = 0, jitter: bool = False, timeout: object = None) -> None:
        # ``timeout: object``: this module may be compiled (setup.py), and a compiled ``float | None``
        # parameter would reject a bad value with a bare TypeError before the check below explains it
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
        ):
            raise InvalidArgument(
                f"run_threads: timeout must be a positive number of seconds or None (no limit), got {timeout!r}"
            )
        self._lock = threading.Lock()
        self._local = threading.local()
        self._rng = random.Random(seed)
        self._jitter = jitter
        self._timeout: int | float | None = timeout if isinstance(timeout, (int, float)) else None
        self._tasks: list[_TTask] = []
        self._active = 0  # tasks neither blocked nor done
        self._failure: BaseException | None = None
        self._killing = False
        self._all_done = threading.Condition(self._lock)
        self._t0 = time.monotonic_ns()
        self.globals: dict[str, Any] = {}
        self.warnings: list[BaseException] = []
        self.labeler = Labeler()
        self._ended_holding: list[str] = []

    # ------------------------------------------------------------------ running
    def run(self, body: Callable[[], Any]) -> Any:
        """Run ``body`` as task ``main`` (on its own thread), wait for every non-daemon task, then check
        for leaks. Returns body's result; re-raises the first task failure. With a ``timeout``, tasks still
        running after it are abandoned (killed at their next scheduling point) and TimeoutError is raised."""
        with self._lock:
            main = self._new_task(body, (), "main", False, False)
            self._active += 1
            th = threading.Thread(target=self._thread_main, args=(main,), name="dmabuf:main", daemon=True)
            main.thread = th
            th.start()
            deadline = None if self._timeout is None else time.monotonic() + self._timeout
            while self._failure is None and any(not t.done and not t.daemon for t in self._tasks):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    self._fail(TimeoutError(f"run_threads: tasks still running after {self._timeout} s"))
                    break
                self._all_done.wait(remaining)
            self._kill_all()
        for t in self._tasks:
            if t.thread is not None:
                t.thread.join(0.5 if self._failure is not None else 5.0)
        if self._failure is not None:
            raise self._failure
        self._check_leaks()
        return main.result

    def _new_task(
        self, fn: Callable[..., Any], args: tuple[Any, ...], name: str | None, daemon: bool, detached: bool
    ) -> _TTask:
        tid = len(self._tasks)
        t = _TTask(tid, name or f"task-{tid}", fn, args, daemon, detached)
        t.cond = threading.Condition(self._lock)
        self._tasks.append(t)
        return t

    def _run_task_body(self, t: _TTask) -> None:
        try:
            t.result = t.fn(*t.args)
        except TaskKilled:
            pass
        except BaseException as e:
            t.exc = e
            if not self._killing:
                self._fail(e)

    def _thread_main(self, t: _TTask) -> None:
        self._local.task = t
        with self._lock:
            try:
                self._run_task_body(t)
            finally:
                self._finish_task(t)

    def _finish_task(self, t: _TTask) -> None:
        t.done = True
        self._active -= 1
        if t.held and not self._killing:
            names = ", ".join(self.labeler.name(h) for h in t.held)
            self._ended_holding.append(f"task {t.name!r} exited holding {names}")
        self._wake_waiters_of(t)
        self._all_done.notify_all()
        self._check_deadlock()

    def _fail(self, e: BaseException) -> None:
        if self._failure is None:
            self._failure = e
        self._kill_all()

    def _kill_all(self) -> None:
        self._killing = True
        for t in self._tasks:
            if not t.done and t.cond is not None:
                t.cond.notify_all()
        self._all_done.notify_all()

    def _check_leaks(self) -> None:
        if self.warnings:
            raise self.warnings[0]
        problems = leak_problems(self._tasks, self._ended_holding, self.globals)
        if problems:
            raise LeakDetected("leak: " + "; ".join(problems))

    # ------------------------------------------------------------------ the seam
    def current(self) -> Task:
        t: Task | None = getattr(self._local, "task", None)
        if t is None:
            raise InternalError("a thread that is not a dmabuf task called into the runtime")
        return t

    def tasks(self) -> list[Task]:
        return list(self._tasks)

    def spawn(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        name: str | None = None,
        *,
        daemon: bool = False,
        detached: bool = False,
    ) -> Task:
        if self._killing:
            raise TaskKilled
        if not callable(fn):
            raise InvalidArgument(f"spawn() needs a callable, got {type(fn).__name__}")
        t = self._new_task(fn, args, name, daemon, detached)
        self._active += 1
        th = threading.Thread(target=self._thread_main, args=(t,), name=f"dmabuf:{t.name}", daemon=True)
        t.thread = th
        th.start()
        return t

    def point(self, op: str, obj: object, access: str = WRITE) -> None:
        if self._killing:
            raise TaskKilled
        lock = self._lock
        lock.release()
        if self._jitter and self._rng.random() < 0.5:
            time.sleep(0)
        lock.acquire()
        if self._killing:
            raise TaskKilled

    def wait(self, op: str, obj: object, access: str, ready: Ready, timeout_ns: int | None = None) -> bool:
        self.point(op, obj, access)
        if ready():
            return True
        if timeout_ns is not None and timeout_ns <= 0:
            return False
        t = self.current()
        assert isinstance(t, _TTask) and t.cond is not None
        deadline = None if timeout_ns is None else time.monotonic_ns() + timeout_ns
        t.op, t.obj, t.access, t.ready, t.deadline = op, obj, access, ready, deadline
        try:
            while True:
                t.blocked = True
                self._active -= 1
                self._check_deadlock()
                if self._killing:
                    raise TaskKilled
                if deadline is None:
                    t.cond.wait()
                else:
                    remaining = (deadline - time.monotonic_ns()) / 1e9
                    if remaining > 0:
                        t.cond.wait(remaining)
                if t.blocked:  # woken by timeout or spuriously, not by a notify
                    t.blocked = False
                    self._active += 1
                if self._killing:
                    raise TaskKilled
                if ready():
                    return True
                if deadline is not None and time.monotonic_ns() >= deadline:
                    return False
        finally:
            t.ready = None
            t.deadline = None

    def _wake(self, t: _TTask) -> None:
        if t.blocked:
            t.blocked = False
            self._active += 1
            assert t.cond is not None
            t.cond.notify()

    def _wake_waiters_of(self, obj: object) -> None:
        for t in self._tasks:
            if t.blocked and t.obj is obj:
                self._wake(t)

    def notify(self, obj: object) -> None:
        self._wake_waiters_of(obj)

    def notify_task(self, task: Task) -> None:
        if isinstance(task, _TTask):
            self._wake(task)

    def _check_deadlock(self) -> None:
        """Called with the model lock held whenever a task blocks or finishes."""
        if self._active > 0 or self._killing:
            return
        blocked = [t for t in self._tasks if t.blocked]
        if not blocked or any(t.deadline is not None for t in blocked):
            return
        if all(t.daemon for t in blocked):
            return  # only idle daemons left: the run is over, not deadlocked
        # a predicate may have become true without a notify: re-check before declaring a deadlock
        for t in blocked:
            if t.ready is not None and t.ready():
                self._wake(t)
                return
        from ._reports import find_wait_cycle

        cycle = find_wait_cycle(blocked)
        waits = [self._describe(t) for t in (cycle or [b for b in blocked if not b.daemon])]
        what = "wait-for cycle: " if cycle else "every live task is blocked and nothing can wake them: "
        self._fail(DeadlockDetected("deadlock: " + what + "; ".join(waits) + "."))

    def _describe(self, t: Task) -> str:
        return describe_wait(t, self.labeler.name)

    def now_ns(self) -> int:
        return time.monotonic_ns() - self._t0

    def choose(self, n: int, label: str = "") -> int:
        return self._rng.randrange(n)

    def log_warning(self, exc: BaseException) -> None:
        if not isinstance(exc, KernelWarning):
            raise InternalError(f"log_warning expects a KernelWarning, got {exc!r}")
        self.warnings.append(exc)
