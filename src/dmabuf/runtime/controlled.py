"""The controlled runtime: every task is a greenlet, exactly one runs at a time, and at every scheduling
point a *decider* (the explorer's strategy) chooses which task executes its next operation.

Execution model
---------------
A task is always in one of these states: running (exactly one), *at a point* (suspended just before an
operation, described by ``task.op/obj/access``; for a wait also ``task.ready`` and ``task.deadline``), or
done. A task at a point is *enabled* when it has no wait predicate, its predicate holds, or its deadline
passed. At each scheduling point the runtime computes the enabled tasks; if more than one is enabled the
decider picks (a *branch*), and the picked task executes its operation and runs on until its next point.

Three rules keep the number of executions equal to the number of interleavings of visible operations:

* a new task starts at its spawner's next scheduling point, before the decision made there, and runs up
  to its own first point (code before a task's first point is local by construction, because every shared
  access is preceded by a point). Tasks spawned together start one after the other, each from the
  previous one's first point, and the last makes the decision on behalf of the spawner: no greenlet
  switch back to the spawner, which a start inside ``spawn`` would cost;
* enabled steps of access kind ``LOCAL`` (joining a finished task) are run eagerly, without a decision;
* ``choose(n)`` is a data branch, not a scheduling point.

So a body that spawns two tasks of three points each and joins them has C(6,3) = 20 executions, and 2 with
preemption bound 0 (the only free choice is which task runs first when the body blocks in ``join``).

Time is virtual (integer nanoseconds). It only advances when no task is enabled, some non-daemon task is
still live and a wait has a deadline: then it jumps to the earliest deadline. No enabled task, no deadline
and a live non-daemon task is a deadlock; the report names the wait-for cycle.

Performance: greenlets are pooled and reused across executions, and the running task switches directly
to the next one (no hub round trip) -- see the Foundation issue's measurements.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, NoReturn

from greenlet import getcurrent, greenlet

from ..errors import InternalError, InvalidArgument, KernelWarning, TaskKilled
from ._api import (
    LOCAL,
    WRITE,
    Predicate,
    Ready,
    Runtime,
    Task,
    describe_wait,
    leak_problems,
)
from ._decider import Abort, Decider, ObservingDecider, Outcome, forwarding
from ._labels import Labeler
from ._reports import deadlock_outcome, livelock_outcome
from ._trace import TraceEvent

__all__ = ["Abort", "ControlledRuntime", "Decider", "ObservingDecider", "Outcome"]

#: Default bound on the scheduling steps one task may take in an execution before it is reported as a
#: livelock (explorer-api.md: "a task that exceeds the step bound").
DEFAULT_MAX_STEPS: Final = 20_000
#: An execution of more than this many times ``max_steps`` steps in all is a livelock too, whatever each
#: task took (many tasks that never finish, or tasks that keep spawning tasks).
TOTAL_STEPS_FACTOR: Final = 8


class _CTask(Task):
    # no __slots__: setup.py compiles this module with mypyc, which refuses them (compiled, the
    # attributes are fixed C fields anyway)

    def __init__(
        self, tid: int, name: str, fn: Callable[..., Any], args: tuple[Any, ...], daemon: bool, detached: bool
    ) -> None:
        super().__init__(tid, name, fn, args, daemon, detached)
        self.g: Any = None
        #: ``g.switch``, bound once per pooled greenlet (a switch then needs no method lookup)
        self.sw: Any = None
        self.nsteps = 0  # scheduling steps this task took (the livelock bound is per task)
        self.at_point = False
        #: the task that ran this one ahead (a LOCAL step) and is resumed at this one's next point
        self.advancer: _CTask | None = None


class ControlledRuntime(Runtime):
    """Deterministic runtime driven by a :class:`Decider`. Reusable across executions (keeps its pool of
    greenlets); call :meth:`run` once per execution."""

    kind = "controlled"

    def __init__(self, decider: Decider, max_steps: int = DEFAULT_MAX_STEPS) -> None:
        self._decider = decider
        #: the decider as an ObservingDecider (itself, or a forwarder for a duck-typed one): the runtime
        #: calls an observing decider at every step through this, natively when both are compiled
        self._observer: ObservingDecider = forwarding(decider)
        #: scheduling steps one task may take in an execution before it is reported as a livelock
        self.max_steps = max_steps
        #: steps of the whole execution before it is a livelock (many tasks, or tasks spawning tasks forever)
        self.max_total_steps = max_steps * TOTAL_STEPS_FACTOR
        self.tracing = False
        #: finished tasks' greenlets for reuse, each with its bound ``switch``
        self._pool: list[tuple[Any, Any]] = []
        self.hub: Any = None
        self._observe = False
        #: when a list, every executed step appends (task id, object, access) (coverage statistics)
        self.step_log: list[tuple[int, Any, str]] | None = None
        self._labeler: Labeler | None = None
        self._reset()

    @property
    def decider(self) -> Decider:
        """The strategy making the decisions (the explorer swaps it for probes, shrinking, certification)."""
        return self._decider

    @decider.setter
    def decider(self, decider: Decider) -> None:
        self._decider = decider
        self._observer = forwarding(decider)

    @property
    def labeler(self) -> Labeler:
        """This execution's naming table (made anew for each execution, on first use): the identity of an
        execution too (lock-order reports name the execution that added an edge by it)."""
        lab = self._labeler
        if lab is None:
            lab = Labeler()
            self._labeler = lab
        return lab

    # ------------------------------------------------------------------ execution lifecycle
    def _reset(self) -> None:
        self._tasks: list[_CTask] = []
        self._live: list[_CTask] = []
        self.current_task: _CTask | None = None
        self.steps = 0
        self.preemptions = 0
        self.now = 0
        self.killing = False
        self.globals: dict[str, Any] = {}
        self.warnings: list[BaseException] = []
        self.trace: list[TraceEvent] = []
        self._labeler = None  # made on first use: most executions never name an object
        self._ended_holding: list[str] = []
        #: spawned tasks not started yet: each starts at the next scheduling point, before the decision
        self._unstarted: list[_CTask] = []
        #: while those start, the task whose scheduling point it is (None: a task that exited): the
        #: decision the last of them makes is taken on its behalf
        self._handing = False
        self._deciding_for: _CTask | None = None

    def run(self, body: Callable[[], Any], tracing: bool = False) -> Outcome:
        """Run one execution of ``body`` as task ``main`` and return its :class:`Outcome`."""
        self._reset()
        self.tracing = tracing
        self._observe = bool(getattr(self.decider, "observe", False))
        self.hub = getcurrent()
        main = self._new_task(body, (), "main", False, False)
        self.current_task = main
        main.g, main.sw = self._greenlet()
        outcome = main.sw(main)
        if not isinstance(outcome, Outcome):
            raise InternalError(f"execution ended without an outcome ({outcome!r})")
        if self._observe:
            self._observer.on_end(self)
        self._kill_all()
        if outcome.kind == "ok":
            outcome.result = main.result
            outcome = self._end_checks(outcome)
        return outcome

    def _greenlet(self) -> tuple[Any, Any]:
        if self._pool:
            return self._pool.pop()
        g = greenlet(self._worker_main, parent=self.hub)
        return g, g.switch

    def _new_task(
        self, fn: Callable[..., Any], args: tuple[Any, ...], name: str | None, daemon: bool, detached: bool
    ) -> _CTask:
        tid = len(self._tasks)
        t = _CTask(tid, name or f"task-{tid}", fn, args, daemon, detached)
        self._tasks.append(t)
        self._live.append(t)
        return t

    def _worker_main(self, task: _CTask) -> None:
        while True:
            try:
                task.result = task.fn(*task.args)
            except TaskKilled:
                pass
            except KeyboardInterrupt:
                raise  # Ctrl-C: out to the explorer (through the hub), which saves the frontier
            except BaseException as e:
                task.exc = e
            task = self._exit(task)

    def _exit(self, task: _CTask) -> Any:
        """The task's function returned. Returns the next task assigned to this greenlet (when reused)."""
        task.done = True
        task.at_point = False
        self._live.remove(task)
        self._pool.append((task.g, task.sw))  # the greenlet running this code
        if self.killing:
            return self.hub.switch(None)
        if self.tracing:
            self._ev(task, "exit", None, "", "raised " + type(task.exc).__name__ if task.exc else "")
        if task.exc is not None:
            kind = "kernel-warning" if isinstance(task.exc, KernelWarning) else "exception"
            msg = f"task {task.name!r} raised {type(task.exc).__name__}: {task.exc}"
            return self.hub.switch(Outcome(kind, msg, task, task.exc))
        if task.held:
            names = ", ".join(self.labeler.name(h) for h in task.held)
            self._ended_holding.append(f"task {task.name!r} exited holding {names}")
        adv = task.advancer
        if adv is not None:
            task.advancer = None
            self.current_task = adv
            return adv.sw()
        return self._reschedule(None)

    def abandon(self) -> None:
        """After an interruption: tear down the tasks of the unfinished execution; the runtime is dropped."""
        self.killing = True
        self._drop_unstarted()
        for t in list(self._live):
            if not t.done and t.g is not None and not t.g.dead:
                try:
                    t.g.throw(TaskKilled)
                except BaseException:
                    pass
        self._pool.clear()

    def _kill_all(self) -> None:
        if not self._live:  # nothing left to kill (the usual end): skip the copy and the try
            self.killing = False
            self.current_task = None
            return
        self.killing = True
        try:
            self._drop_unstarted()
            for t in list(self._live):
                if not t.done and t.g is not None:
                    self.current_task = t
                    t.g.throw(TaskKilled)
                    if not t.done:
                        raise InternalError(f"task {t.name!r} survived being killed")
        finally:
            self.killing = False
            self.current_task = None

    def _drop_unstarted(self) -> None:
        """The execution ended before some spawned tasks started: they never ran, so there is nothing to
        unwind; they end, and their greenlets go back to the pool."""
        for t in self._unstarted:
            t.done = True
            self._live.remove(t)
            self._pool.append((t.g, t.sw))
        self._unstarted.clear()

    def _end_checks(self, outcome: Outcome) -> Outcome:
        warnings = self.warnings
        if warnings:  # the import is skipped when there is nothing to sort (most executions): it costs ~1 us
            from ..lockdep import LockdepWarning

            others = [w for w in warnings if not isinstance(w, LockdepWarning)]
            if others:
                w = others[0]
                return Outcome("kernel-warning", f"kernel warning (logged): {w}", None, w)
        problems = leak_problems(self._tasks, self._ended_holding, self.globals)
        if problems:
            return Outcome("leak", "; ".join(problems))
        if warnings:
            # only lock-order reports: the execution itself was fine; the explorer keeps looking for a real
            # deadlock and reports this one if it finds nothing stronger
            outcome.extra["lockdep"] = self.warnings[0]
        return outcome

    # ------------------------------------------------------------------ scheduling core
    def _reschedule(self, cur: _CTask | None) -> Any:
        """Pick the task that executes next and switch to it. Returns when ``cur`` is picked again (or, if
        ``cur`` is ``None``, when this greenlet is reused for a new task: then the new task is returned)."""
        while True:
            if self._unstarted:
                # tasks spawned since the last decision start now, one after the other, each up to its
                # first point (from where it starts the next); the last one makes the decision, on behalf
                # of ``cur``. This greenlet waits at its point like any task (or, if its task exited, in
                # the pool) and is resumed when picked.
                if not self._handing:
                    self._handing = True
                    self._deciding_for = cur
                t = self._unstarted.pop(0)
                self.current_task = t
                return t.sw(t)
            # the enabled tasks (at a point, and with no wait predicate, a true one or a passed deadline),
            # noting the first enabled LOCAL step; inline: this is the hottest loop of the explorer
            now = self.now
            opts = []
            local = None
            for t in self._live:
                if t.at_point:
                    r = t.ready
                    # a compiled Predicate (a lock's FieldIsNone, join's TaskDone) is checked natively, with
                    # no call through tp_call (~40 an execution on the locked benchmark); any other
                    # predicate is called
                    if r is None or (r.check() if isinstance(r, Predicate) else r()):
                        opts.append(t)
                    else:
                        d = t.deadline
                        if d is None or d > now:
                            continue
                        opts.append(t)
                    if local is None and t.access == LOCAL:
                        local = t
            if opts:
                # eagerly run enabled LOCAL steps: they commute with everything
                if local is None:
                    break
                self.steps += 1
                local.nsteps += 1
                if local.nsteps > self.max_steps or self.steps > self.max_total_steps:
                    return self.hub.switch(self._livelock_outcome(local))
                if self._observe:
                    self._observer.on_local(self, local)
                if local is cur:
                    if self.tracing:
                        self._trace_step(cur)
                    cur.at_point = False
                    return None
                if cur is None:
                    # this greenlet's task has finished and the greenlet is back in the pool: it must not
                    # be resumed as an advancer, so hand control to the LOCAL step for good
                    if self.tracing:
                        self._trace_step(local)
                    local.at_point = False
                    self.current_task = local
                    return local.sw()
                self._advance(local)
                continue
            for t in self._live:  # a loop, not all(<genexpr>): no generator to build at every end
                if not t.daemon:
                    break
            else:
                return self.hub.switch(Outcome("ok"))
            if not self._advance_time():
                return self.hub.switch(self._deadlock_outcome())
        # the task the decision is for: this one, or the one whose point started new tasks (above)
        dcur = cur
        if self._handing:
            self._handing = False
            dcur = self._deciding_for
        try:
            if self._observe:
                # observing strategies (DPOR) see every step, not only branches
                nxt = opts[self._observer.sched(self, opts, dcur)]
            elif len(opts) == 1:
                nxt = opts[0]
            else:
                nxt = opts[self.decider.sched(self, opts, dcur)]
        except Abort as a:
            return self.hub.switch(a.outcome)
        if dcur is not None and nxt is not dcur and dcur in opts:  # (never with one option)
            self.preemptions += 1
            if self.tracing:
                self._ev(nxt, "preempt", None, "", f"preempts {dcur.name}")
        steps = self.steps + 1
        self.steps = steps
        n = nxt.nsteps + 1
        nxt.nsteps = n
        if n > self.max_steps or steps > self.max_total_steps:
            return self.hub.switch(self._livelock_outcome(nxt))
        if self.step_log is not None:
            self.step_log.append((nxt.id, nxt.obj, nxt.access))
        if self.tracing:
            self._trace_step(nxt)
        nxt.at_point = False
        if nxt is cur:
            return None
        self.current_task = nxt
        return nxt.sw()

    def _advance(self, t: _CTask) -> None:
        """Run ``t`` until its next point (or block/exit), then come back here."""
        if self.tracing:
            self._trace_step(t)
        t.at_point = False
        cur = self.current_task
        assert cur is not None  # the task calling _reschedule, whose greenlet runs this code
        t.advancer = cur
        self.current_task = t
        t.sw()

    def _back_to_advancer(self, t: _CTask) -> None:
        """``t`` reached its point while run ahead by an advancer (a LOCAL step): go back to it."""
        adv = t.advancer
        assert adv is not None
        t.advancer = None
        self.current_task = adv
        adv.sw()

    def _advance_time(self) -> bool:
        best: int | None = None
        for t in self._live:
            d = t.deadline
            if t.at_point and d is not None and (best is None or d < best):
                best = d
        if best is None:
            return False
        if best > self.now:
            self.now = best
            if self.tracing:
                self.trace.append(
                    TraceEvent(self.steps, "-", "time", "-", "", f"virtual time -> {best / 1e9:g} s")
                )
        return True

    # ------------------------------------------------------------------ the seam
    def abort(self, outcome: Outcome) -> NoReturn:
        """End the execution now with ``outcome`` (for deciders: divergence, pruning)."""
        raise Abort(outcome)

    def current(self) -> Task:
        t = self.current_task
        if t is None:
            raise InternalError("controlled runtime has no current task")
        return t

    def tasks(self) -> list[Task]:
        return list(self._tasks)

    def point(self, op: str, obj: object, access: str = WRITE) -> None:
        if self.killing:
            raise TaskKilled
        t = self.current_task
        assert t is not None
        t.op = op
        t.obj = obj
        t.access = access
        t.ready = None
        t.deadline = None
        t.at_point = True
        if t.advancer is None:
            self._reschedule(t)
        else:
            self._back_to_advancer(t)

    def wait(self, op: str, obj: object, access: str, ready: Ready, timeout_ns: int | None = None) -> bool:
        if self.killing:
            raise TaskKilled
        t = self.current_task
        assert t is not None
        t.op = op
        t.obj = obj
        t.access = access
        t.ready = ready
        t.deadline = None if timeout_ns is None else self.now + max(0, timeout_ns)
        t.at_point = True
        if self.tracing and not ready():
            self._ev(t, "block", obj, access, f"waits for {op}")
        if t.advancer is None:
            self._reschedule(t)
        else:
            self._back_to_advancer(t)
        # resumed: the task was picked as enabled and no model code ran since. Without a deadline that means
        # ready() was true when it was picked, and so still is (predicates are pure): not evaluated again
        if t.deadline is None:
            t.ready = None
            return True
        t.ready = None
        t.deadline = None
        ok = ready()
        if not ok and self.tracing:
            self._ev(t, "timeout", obj, access, f"{op} timed out")
        return ok

    def notify(self, obj: object) -> None:
        """No-op: the controlled runtime re-evaluates every wait predicate at every decision."""

    def notify_task(self, task: Task) -> None:
        """No-op, as :meth:`notify`."""

    def now_ns(self) -> int:
        return self.now

    def choose(self, n: int, label: str = "") -> int:
        if self.killing:
            raise TaskKilled
        if n == 1:
            return 0
        try:
            v = self.decider.data(self, n, label)
        except Abort as a:
            self.hub.switch(a.outcome)
            raise TaskKilled from None
        if self.tracing:
            t = self.current_task
            assert t is not None
            self._ev(t, "choose", label or None, "", f"chose {v} of {n}")
        return v

    def spawn(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        name: str | None = None,
        *,
        daemon: bool = False,
        detached: bool = False,
    ) -> Task:
        if self.killing:
            raise TaskKilled
        if not callable(fn):
            raise InvalidArgument(f"spawn() needs a callable, got {type(fn).__name__}")
        parent = self.current_task
        t = self._new_task(fn, args, name, daemon, detached)
        if self.tracing and parent is not None:
            self._ev(parent, "spawn", t, "", "")
        if self._observe:
            self._observer.on_spawn(self, parent, t)
        t.g, t.sw = self._greenlet()
        # it starts at the spawner's next scheduling point, before the decision there (see _reschedule)
        self._unstarted.append(t)
        return t

    def log_warning(self, exc: BaseException) -> None:
        self.warnings.append(exc)
        if self.tracing and self.current_task is not None:
            self._ev(self.current_task, "WARN", None, "", str(exc))

    # ------------------------------------------------------------------ reports
    def _ev(self, t: Task, op: str, obj: object, access: str, note: str) -> None:
        self.trace.append(TraceEvent(self.steps, t.name, op, self.labeler.name(obj), access, note))

    def _trace_step(self, t: _CTask) -> None:
        self.trace.append(TraceEvent(self.steps, t.name, t.op, self.labeler.name(t.obj), t.access, ""))

    def describe_wait(self, t: Task) -> str:
        """What ``t`` waits for and who holds it (for deadlock reports)."""
        return describe_wait(t, self.labeler.name)

    def _deadlock_outcome(self) -> Outcome:
        blocked = [t for t in self._live if t.at_point]
        if self.tracing:
            for t in blocked:
                self._ev(t, "blocked", t.obj, "", f"still waiting to {t.op}")
        return deadlock_outcome(blocked, self.describe_wait)

    def _livelock_outcome(self, t: _CTask) -> Outcome:
        own = t.nsteps > self.max_steps
        return livelock_outcome(
            t, own, self.max_steps, self.max_total_steps, TOTAL_STEPS_FACTOR, len(self._tasks)
        )
