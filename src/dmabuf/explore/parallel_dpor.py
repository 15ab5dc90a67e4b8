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
  asks for a reversal at one becomes a request (``"race"``: level, initials, task).
* The coordinator applies DPOR's source-set rule to each request against the node's assigned tasks and sleep
  set (if none of the initials is there, the task is assigned) and queues a unit for each new branch; every
  alternative of a top ``choose`` node is a unit. Idle workers take the next queued unit.
* The search is over when every unit is done and the queue is empty.

With sleep sets across units, each unit's executions are traces no other unit runs, and the source-set rule
gives every race its reversal: the executions are those of one process (one per Mazurkiewicz trace; the
order differs, and so can the number of sleep-set-blocked runs, which are not executions).
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from typing import Any

from .parallel import _JOB, Found, Tally, UnitResult, _check_alive, _make, drive_unit, stop_workers
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
            out.append([nd.kind, list(nd.tids), nd.n, nd.chosen, sorted(nd.sleep)])
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
        for level, initials, task in s.requests:
            results.put(("race", uid, level, list(initials), task))
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
        for level, (kind, tids, n, chosen, sleep) in enumerate(path):
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

    def on_race(self, uid: int, level: int, initials: list[int], task: int) -> None:
        node = self.nodes[self.keys[uid][level]]
        if any(p in node.assigned or p in node.sleep for p in initials):
            return  # a unit already starts (or a sleeping task stands for) one of the reversal's initials
        done = sorted(node.assigned)
        node.assigned.add(task)
        self.queue([*node.spec, ["t", task, node.n, done]])


def run_dpor_workers(
    workers: int, max_executions: int | None, time_budget: float | None, t0: float
) -> tuple[int, Found | None, bool, int, int]:
    """Fork the workers (they inherit ``_JOB``), coordinate them until the tree is covered, a failure is
    found or a budget is spent. Returns (executions, failure, stopped early, reversals dropped for the
    bound, units run)."""
    ctx = multiprocessing.get_context("fork")
    _JOB["slots"] = None if max_executions is None else ctx.Value("q", max_executions)
    _JOB.setdefault("fixed_depth", fixed_depth(workers))
    tasks, results = ctx.Queue(), ctx.Queue()
    coord = _Coordinator(tasks)
    coord.queue([])
    procs = [ctx.Process(target=_worker, args=(tasks, results), daemon=True) for _ in range(workers)]
    tally = Tally()
    try:
        for p in procs:
            p.start()
        while coord.outstanding:
            try:
                msg = results.get(timeout=0.2)
            except queue.Empty:
                _check_alive(procs)
                if time_budget is not None and time.perf_counter() - t0 > time_budget + 1.0:
                    tally.stopped = True  # a worker stuck in one long execution: do not wait for it
                    break
                continue
            if msg is None:
                continue
            if msg[0] == "path":
                coord.on_path(msg[1], msg[2])
                continue
            if msg[0] == "race":
                if not tally.stopped:
                    coord.on_race(msg[1], msg[2], msg[3], msg[4])
                continue
            coord.outstanding.discard(msg[1])  # "done": the queued units stop at once if a budget is spent
            if tally.add(msg[2]):
                break
    finally:
        stop_workers(procs)
    return tally.executions, tally.failure(), tally.stopped, tally.skipped, coord.units
