"""``workers=N`` for ``"dpor"``: the coordinator owns the top of the DPOR tree and hands out its branches
while the search runs, so the processes explore the executions one process would.

Why not a static split
----------------------
Cutting the top levels into one unit per enabled task (as for ``dfs``) runs branches DPOR never needs: on
tasks that do not conflict, one execution suffices, but a static split runs one per task; the split levels
also lose their sleep sets, so units repeat each other's traces. Which branches DPOR needs at a node is only
known from the races found *below* it, so the split has to grow with the search.

Protocol
--------
* The coordinator owns the first ``fixed_depth`` real branches (scheduling branches with several enabled
  tasks, and ``choose`` nodes) of every execution: the *top nodes*. A work unit is a path down the top nodes
  (``[kind, value, n, done]`` per level: JSON-able, so a cluster backend such as Ray can ship it); ``done`` is
  the tasks other units took at that node before this one. They sleep there, exactly as after a sequential
  backtrack, so a unit never re-runs a trace another unit covers.
* A worker runs sequential DPOR below the unit's path. Past the path, down to ``fixed_depth``, it takes its
  default choice and reports the new top nodes (``"path"``). It never backtracks a top node: a race that
  asks for a reversal at one becomes a request (``"race"``: the level and the initials, the requests of one
  execution in one message; the coordinator picks the task, the first initial enabled at the node).
* The coordinator applies DPOR's source-set rule to each request against the node's assigned tasks and sleep
  set (if none of the initials is there, the task is assigned) and queues a unit for each new branch; every
  alternative of a top ``choose`` node is a unit. Idle workers take the next queued unit.
* The search is over when every unit is done and the queue is empty.

With sleep sets across units, each unit's executions are traces no other unit runs, and the source-set rule
gives every race its reversal: the executions are those of one process (one per Mazurkiewicz trace; the
order differs, and so can the number of sleep-set-blocked runs, which are not executions).

With a preemption bound
-----------------------
That argument needs every trace to be explored: bounded DPOR explores a subset that depends on the order
(a reversal the bound drops below one branch may be explored from a later branch, whose sleep set is the
branches taken before it), so branches handed out in the order requests happened to arrive ran a different
subset from run to run (the audit's three writers at bound 2: 134 or 118 executions, against 134). A bounded
search is coordinated by :class:`_Ordered` instead: a unit's executions depend only on its spec (its path
and, per level, the branches taken before it), so the coordinator replays one process's backtracking over
the top nodes, taking the units' reports (their top nodes, and the races at them, which the coordinator
rules on with the bound) in one process's order; the next unit in that order is known once the one before
it is done. Idle workers run the units the order predicts from the reports so far; a unit a later report
proves mispredicted is discarded, so the executions (and ``bound_skipped``) are exactly those of one process.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from .parallel import _JOB, Found, Tally, UnitResult, _make, drive_unit, receive, stop_workers
from .schedule import Entry

__all__ = ["FIXED_DEPTH", "fixed_depth", "run_dpor_workers"]

#: top nodes owned by the coordinator with two workers (one more per doubling of the workers): deep enough
#: for a few units per worker, shallow enough that a unit (a subtree) is worth a process round trip. On
#: locked 3x3 and 4x2, depth 2 ran 9 and 16 units and gave the best speed-up of depths 1-4 (1.6-2.1x).
FIXED_DEPTH = 2


def fixed_depth(workers: int) -> int:
    """The coordinator's depth for ``workers`` processes."""
    return FIXED_DEPTH + max(0, (workers - 1).bit_length() - 1)


#: a work unit: one [kind, value, n, done-before] per top node of its path
Spec = list[list[Any]]


class _TopNode:
    """A top node of the coordinator's tree: what a worker reported of it, and the tasks assigned there."""

    __slots__ = ("assigned", "kind", "n", "sleep", "spec", "tids")

    def __init__(self, kind: str, tids: list[int], n: int, sleep: list[int], spec: Spec) -> None:
        self.kind = kind
        self.tids = tids
        self.n = n
        self.sleep = set(sleep)
        self.assigned: set[int] = set()
        self.spec = spec  # the path down to this node (a unit for a branch here is spec + [branch])


def _path(strat: Any) -> list[list[Any]]:
    """The top nodes the last execution went through (not a node the execution was pruned at: it has no
    chosen branch)."""
    out = []
    for nd in strat.nodes[: strat.pos]:
        if nd.fixed and (nd.kind == "c" or nd.ev >= 0):
            out.append([nd.kind, list(nd.tids), nd.n, nd.chosen, sorted(nd.sleep), nd.cur, nd.pre])
    return out


def _run_unit(uid: int, spec: Spec, results: Any) -> UnitResult:
    """Run DPOR below the unit's path; stream its top nodes and its requests to the coordinator."""
    job = _JOB
    strat = _make("dpor", job["bound"], job["seed"], job["depth"], [Entry(e[0], e[1], e[2]) for e in spec])
    strat.forced_done = [list(e[3]) for e in spec]
    strat.fixed_depth = job["fixed_depth"]
    reported = 0

    def report_path(s: Any) -> None:
        nonlocal reported
        path = _path(s)
        if len(path) > reported:
            results.put(("path", uid, path))
            reported = len(path)

    def report_requests(s: Any) -> None:
        if s.requests:  # one message per execution, in the order the races were found
            results.put(("race", uid, [[level, list(initials)] for level, initials in s.requests]))
            del s.requests[:]

    return drive_unit(strat, report_path, report_requests)


def _worker(tasks: Any, results: Any) -> None:
    """A worker process: run the units the coordinator queues until it says stop (``None``)."""
    while True:
        item = tasks.get()
        if item is None:
            results.put(None)
            return
        uid, spec = item
        results.put(("done", uid, _run_unit(uid, spec, results)))


class _Coordinator:
    """The coordinator's half: the top tree, the queue of units, and the source-set rule at top nodes."""

    def __init__(self, tasks: Any) -> None:
        self.tasks = tasks
        self.nodes: dict[tuple[tuple[str, int], ...], _TopNode] = {}
        self.specs: dict[int, Spec] = {}
        self.keys: dict[int, list[tuple[tuple[str, int], ...]]] = {}  # unit -> key of its top node per level
        self.outstanding: set[int] = set()
        self.units = 0

    def queue(self, spec: Spec) -> None:
        uid = self.units
        self.units += 1
        self.specs[uid] = spec
        self.outstanding.add(uid)
        self.tasks.put((uid, spec))

    def on_path(self, uid: int, path: list[list[Any]]) -> None:
        spec = self.specs[uid]
        keys: list[tuple[tuple[str, int], ...]] = []
        down: Spec = []
        for level, (kind, tids, n, chosen, sleep, _cur, _pre) in enumerate(path):
            key = tuple((e[0], e[1]) for e in down)
            keys.append(key)
            node = self.nodes.get(key)
            if node is None:
                node = self.nodes[key] = _TopNode(kind, tids, n, sleep, list(down))
                node.assigned.add(chosen)
                if kind == "c":
                    for v in range(n):  # every value of a data choice is explored
                        if v != chosen:
                            node.assigned.add(v)
                            self.queue([*down, ["c", v, n, []]])
            down.append(spec[level] if level < len(spec) else [kind, chosen, n, []])
        self.keys[uid] = keys

    def on_race(self, uid: int, level: int, initials: list[int]) -> None:
        node = self.nodes[self.keys[uid][level]]
        if any(p in node.assigned or p in node.sleep for p in initials):
            return  # a unit already starts (or a sleeping task stands for) one of the reversal's initials
        task = next((p for p in initials if p in node.tids), -1)
        if task < 0:
            return
        done = sorted(node.assigned)
        node.assigned.add(task)
        self.queue([*node.spec, ["t", task, node.n, done]])


#: a unit's identity: its path with the branches taken before it at each level (its executions depend on both)
Key = tuple[tuple[str, int, tuple[int, ...]], ...]


def _key(spec: Spec) -> Key:
    return tuple((str(e[0]), int(e[1]), tuple(e[3])) for e in spec)


class _Unit:
    """A unit of the ordered search: its spec, what it reported so far (path and race messages, in order),
    and its result once done."""

    __slots__ = ("log", "result", "spec")

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.log: list[Any] = []
        self.result: UnitResult | None = None


class _Order:
    """The top of one process's DPOR tree, replayed from the units' reports in one process's order: the
    source-set rule (with the bound) at each top node, and which branch each node takes next."""

    def __init__(self, bound: int | None) -> None:
        self.bound = bound
        self.nodes: dict[Key, _OrderNode] = {}
        self.skipped = 0  # reversals dropped for the bound at top nodes (the units count the others)

    def copy(self) -> _Order:
        other = _Order(self.bound)
        other.nodes = {k: nd.copy() for k, nd in self.nodes.items()}
        other.skipped = self.skipped
        return other

    def apply(self, spec: Spec, levels: list[Key], msg: Any) -> None:
        """Take one message of the unit ``spec`` into account; ``levels`` is the key of its top node at each
        level (grown by its path reports)."""
        if msg[0] == "path":
            down: Spec = []
            for level, (kind, tids, n, chosen, sleep, cur, pre) in enumerate(msg[2]):
                key = _key(down)
                if level == len(levels):
                    levels.append(key)
                if key not in self.nodes:
                    self.nodes[key] = _OrderNode(kind, tids, n, sleep, cur, pre, list(down), chosen)
                down.append(spec[level] if level < len(spec) else [kind, chosen, n, []])
            return
        for level, initials in msg[2]:
            self._race(self.nodes[levels[level]], initials)

    def _race(self, node: _OrderNode, initials: list[int]) -> None:
        """DPOR's source-set rule at a top node, exactly as :meth:`RaceAnalysis._race` applies it."""
        bt, sl = node.backtrack, node.sleep
        if all(p in bt or p in sl for p in node.tids):
            return
        if any(p in bt or p in sl for p in initials):
            return
        bounded = False
        for p in initials:
            if p in node.tids:
                if self.bound is not None and node.cur >= 0 and p != node.cur and node.pre + 1 > self.bound:
                    bounded = True
                    continue
                bt.add(p)
                return
        if bounded:
            self.skipped += 1

    def next(self, levels: list[Key]) -> Spec | None:
        """The unit one process explores after the subtree of the unit whose top nodes are ``levels``: the
        deepest of them with a branch left, and its branch DPOR's backtracking takes next (the current task
        if it is to do, else the lowest id; the next value of a data choice). None: the search is over."""
        for key in reversed(levels):
            node = self.nodes[key]
            if node.kind == "c":
                v = node.started[-1] + 1
                if v < node.n:
                    node.started.append(v)
                    return [*node.spec, ["c", v, node.n, []]]
                continue
            done = set(node.started)
            pick = -1
            for p in node.backtrack:
                if p in done or p in node.sleep:
                    continue
                if p == node.cur:
                    pick = p
                    break
                if pick < 0 or p < pick:
                    pick = p
            if pick >= 0:
                spec = [*node.spec, ["t", pick, node.n, sorted(node.started)]]
                node.started.append(pick)
                return spec
        return None


class _OrderNode:
    """A top node of :class:`_Order`: what a unit reported of it, its backtrack set, and its branches in the
    order they are taken."""

    __slots__ = ("backtrack", "cur", "kind", "n", "pre", "sleep", "spec", "started", "tids")

    def __init__(
        self, kind: str, tids: list[int], n: int, sleep: list[int], cur: int, pre: int, spec: Spec, chosen: int
    ) -> None:
        self.kind = kind
        self.tids = tids
        self.n = n
        self.sleep = frozenset(sleep)
        self.cur = cur
        self.pre = pre
        self.spec = spec
        self.started = [chosen]
        self.backtrack = {chosen}

    def copy(self) -> _OrderNode:
        other = _OrderNode(self.kind, self.tids, self.n, [], self.cur, self.pre, self.spec, 0)
        other.sleep = self.sleep
        other.started = list(self.started)
        other.backtrack = set(self.backtrack)
        return other


def _levels_of(spec: Spec) -> list[Key]:
    return [_key(spec[:level]) for level in range(len(spec))]


class _Ordered:
    """The coordinator of a *bounded* DPOR search. Bounded source-DPOR depends on the order it explores
    branches in (a reversal the bound drops below one branch may be reached from a later one, and a branch's
    sleep set is the branches taken before it), so the units must be exactly the subtrees one process
    explores, each with the branches one process took before it at every top node, and the top nodes must
    see the races in one process's order. A unit's executions depend only on its spec, so the coordinator
    replays one process's order over the units' reports (:class:`_Order`): the next unit in that order is
    known once the one before it is done. Idle workers meanwhile run the units that order predicts from what
    it knows so far; a prediction a later race proves wrong (a branch with a lower id turned up, so the
    branches taken before differ) is discarded unused."""

    def __init__(self, tasks: Any, workers: int, bound: int | None, tally: Tally) -> None:
        self.tasks = tasks
        self.workers = workers
        self.tally = tally
        self.units: dict[Key, _Unit] = {}
        self.by_id: list[_Unit] = []
        self.order = _Order(bound)
        self.in_flight = 0
        self.ran = 0  # executions of every unit done, used or not
        self.committed = 0  # units in one process's order taken into account
        self.cursor: _Unit | None = self.launch([])
        self.applied = 0  # messages of the cursor taken into account
        self.levels: list[Key] = []

    def launch(self, spec: Spec) -> _Unit:
        unit = _Unit(spec)
        self.units[_key(spec)] = unit
        uid = len(self.by_id)
        self.by_id.append(unit)
        self.in_flight += 1
        self.tasks.put((uid, spec))
        return unit

    def on_message(self, msg: Any) -> bool:
        """A worker's message; True when the search must stop at once (a failure)."""
        unit = self.by_id[msg[1]]
        if msg[0] == "done":
            result: UnitResult = msg[2]
            unit.result = result
            self.in_flight -= 1
            self.ran += result[0]
            if result[1] is not None and result[2] not in ("lockdep", "stopped"):
                return self.tally.add(result)  # a real failure: reported even if the order has not reached it
            if result[2] == "stopped":
                self.tally.stopped = True
        else:
            unit.log.append(msg)
        self._commit()
        if not self.tally.stopped:
            self._fill()
        return False

    def _commit(self) -> None:
        """Follow one process's order as far as the units' reports go."""
        while self.cursor is not None:
            u = self.cursor
            while self.applied < len(u.log):
                self.order.apply(u.spec, self.levels, u.log[self.applied])
                self.applied += 1
            if u.result is None or self.tally.stopped:
                return
            self.tally.add(u.result)
            self.committed += 1
            spec = self.order.next(self.levels)
            if spec is None:
                self.cursor = None
                return
            nxt = self.units.get(_key(spec))
            self.cursor = nxt if nxt is not None else self.launch(spec)
            self.applied = 0
            self.levels = _levels_of(spec)

    def _fill(self) -> None:
        """Give idle workers the next units one process's order would run, as predicted from the reports so
        far (the units running count as done, with what they reported)."""
        want = self.workers - self.in_flight
        if want <= 0 or self.cursor is None:
            return
        order = self.order.copy()
        spec = self.cursor.spec
        log = self.cursor.log[self.applied :]
        levels = list(self.levels)
        while want > 0:
            for msg in log:
                order.apply(spec, levels, msg)
            nxt = order.next(levels)
            if nxt is None:
                return
            spec, levels = nxt, _levels_of(nxt)
            u = self.units.get(_key(nxt))
            if u is None:
                self.launch(nxt)
                want -= 1
                log = []
            else:
                log = u.log

    def done(self) -> bool:
        return self.cursor is None or (self.tally.stopped and self.in_flight == 0)


def _run_ordered(
    ctx: Any, workers: int, bound: int | None, time_budget: float | None, t0: float
) -> tuple[int, Found | None, bool, int, dict[str, int]]:
    tasks, results = ctx.Queue(), ctx.Queue()
    tally = Tally()
    coord = _Ordered(tasks, workers, bound, tally)
    procs = [ctx.Process(target=_worker, args=(tasks, results), daemon=True) for _ in range(workers)]
    try:
        for p in procs:
            p.start()
        coord._fill()
        while not coord.done():
            give_up, msg = receive(results, procs, tally, time_budget, t0)
            if give_up or (msg is not None and coord.on_message(msg)):
                break
    finally:
        stop_workers(procs)
    stopped = tally.stopped or coord.cursor is not None
    used = len(coord.by_id) - sum(1 for u in coord.by_id if u.result is None)
    extra = {
        "units": coord.committed,
        "units_discarded": max(0, used - coord.committed),
        "executions_discarded": max(0, coord.ran - tally.executions),
    }
    executions = coord.ran if stopped or tally.failed is not None else tally.executions
    return executions, tally.failure(), stopped, tally.skipped + coord.order.skipped, extra


def run_dpor_workers(
    workers: int, max_executions: int | None, time_budget: float | None, t0: float
) -> tuple[int, Found | None, bool, int, dict[str, int]]:
    """Fork the workers (they inherit ``_JOB``), coordinate them until the tree is covered, a failure is
    found or a budget is spent. Returns (executions, failure, stopped early, reversals dropped for the
    bound, stats: the units run, and for a bounded search the units and executions discarded)."""
    ctx = multiprocessing.get_context("fork")
    _JOB["slots"] = None if max_executions is None else ctx.Value("q", max_executions)
    _JOB.setdefault("fixed_depth", fixed_depth(workers))
    if _JOB["bound"] is not None:
        return _run_ordered(ctx, workers, _JOB["bound"], time_budget, t0)
    tasks, results = ctx.Queue(), ctx.Queue()
    coord = _Coordinator(tasks)
    coord.queue([])
    procs = [ctx.Process(target=_worker, args=(tasks, results), daemon=True) for _ in range(workers)]
    tally = Tally()
    try:
        for p in procs:
            p.start()
        while coord.outstanding:
            give_up, msg = receive(results, procs, tally, time_budget, t0)
            if give_up:
                break
            if msg is None:
                continue
            if msg[0] == "path":
                coord.on_path(msg[1], msg[2])
                continue
            if msg[0] == "race":
                if not tally.stopped:
                    for level, initials in msg[2]:
                        coord.on_race(msg[1], level, initials)
                continue
            coord.outstanding.discard(msg[1])  # "done": the queued units stop at once if a budget is spent
            if tally.add(msg[2]):
                break
    finally:
        stop_workers(procs)
    return tally.executions, tally.failure(), tally.stopped, tally.skipped, {"units": coord.units}
