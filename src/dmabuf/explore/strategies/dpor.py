"""Source-set DPOR with sleep sets (Abdulla, Aronis, Jonsson, Sagonas 2014), stateless.

Model
-----
Every executed (non-LOCAL) scheduling step is an *event* ``(task, obj, access)``; two events *conflict* when
they touch the same object and at least one writes. Happens-before (HB) is program order plus conflicts in
execution order, plus spawn (parent before child) and join (child before joiner) edges; it is tracked with
vector clocks.

After each execution, every *race* -- an event ``i`` conflicting with a later event ``j`` of another task that
is not HB-ordered before ``j``'s program-order predecessor -- is a place where the opposite order might give
a new behaviour. For each race, the *initials* of ``v = notdep(i).j`` (the tasks that could start a
reordering executing ``j`` before ``i``) are computed; if none of them is already in the backtrack or sleep
set of the node before ``i``, one that is enabled there is added (a source set). Sleep sets prevent exploring
the same Mazurkiewicz trace twice: a task explored at a node sleeps in the sibling subtrees until a
dependent event wakes it; an execution in which every enabled task sleeps is abandoned (*sleep-set blocked*,
counted in ``stats`` but not as an execution).

Blocking
--------
A task waiting on a predicate is disabled. When an event ``i`` *enables* a task (it was disabled at the node
before ``i`` and enabled after), the pair ``(i, j)`` for that task's next event ``j`` is an HB edge but not a
reversible race (``j`` could not run before ``i``), so race detection skips it and looks further back -- this
is how a lock acquisition races with the previous *acquisition* of the same lock rather than with the unlock
that let it in. Reversals whose initial task is disabled at the target node are not reversible and skipped.

For N tasks each doing K lock-protected increments this explores exactly one execution per order of the
critical sections ((N*K)! / (K!)^N: 6 for 2x2, 90 for 3x2, 24 for 4x1, 1,680 for 3x3).

Data choices (``choose``) are nodes whose alternatives are all explored. With a preemption bound, backtrack
points that would exceed it are not added (a subset of the unbounded search, so never more executions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...runtime import READ, RELEASE, Task
from ...runtime.controlled import ControlledRuntime, Outcome
from ..schedule import Entry

__all__ = ["DPOR"]


class _Node:
    """A node of the DPOR tree: the state before one step (``kind == "t"``) or a data choice (``"c"``)."""

    __slots__ = ("backtrack", "chosen", "cur", "done", "fixed", "kind", "n", "op", "pre", "sleep", "tids")

    def __init__(self, kind: str, tids: tuple[int, ...], n: int, cur: int, pre: int) -> None:
        self.kind = kind
        self.tids = tids  # enabled task ids (scheduling node)
        self.n = n
        self.cur = cur  # task id that reached the point, or -1
        self.pre = pre  # preemptions before this node
        self.chosen = 0  # task id (scheduling) or value (data)
        self.op = ""
        self.backtrack: set[int] = set()
        self.done: set[int] = set()
        self.sleep: frozenset[int] = frozenset()
        self.fixed = False  # part of a work unit's forced prefix: never backtracked

    def entry(self) -> Entry:
        if self.kind == "c":
            return Entry("c", self.chosen, self.n)
        return Entry("t", self.chosen, 0, self.op, "")


class _Ev:
    __slots__ = ("access", "enabler", "kind", "node", "obj", "other", "tid", "vc", "wait")

    def __init__(self, kind: str, tid: int, obj: Any, access: str, node: int, other: int = -1) -> None:
        self.kind = kind  # "s" step, "spawn" (other = child), "join" (other = joined task)
        self.tid = tid
        self.obj = obj
        self.access = access
        self.node = node
        self.other = other
        self.enabler = -1
        self.wait = False
        self.vc: list[int] = []


def _same(a: Any, b: Any) -> bool:
    return a is b or (type(a) is str and a == b)


def _conflict(a1: str, o1: Any, a2: str, o2: Any) -> bool:
    return (a1 != READ or a2 != READ) and _same(o1, o2)


class DPOR:
    """The ``"dpor"`` strategy (the default). See the module docstring."""

    name = "dpor"
    observe = True
    exhaustive = True

    def __init__(self, preemption_bound: int | None = None) -> None:
        self.bound = preemption_bound
        self.nodes: list[_Node] = []
        self.pos = 0
        self.events: list[_Ev] = []
        self.sleep: set[int] = set()
        # per execution: for each task, the node index since which it has been disabled (or -1)
        self._disabled_since: dict[int, int] = {}
        self.stats = {"sleep_blocked": 0, "bound_blocked": 0, "races": 0}
        self._pruned = False
        #: decisions the first real branches must take (a work unit of a parallel search)
        self.forced: list[Entry] = []
        self._fpos = 0
        self._fresh_from = 0
        self._spawned_at: dict[int, tuple[int, int]] = {}

    # ------------------------------------------------------------------ execution
    def start(self) -> None:
        self._fpos = 0
        self.pos = 0
        # nodes before the last one are replayed unchanged: the races of their events were already
        # processed by the execution that created them (the last node's choice was just changed)
        self._fresh_from = max(0, len(self.nodes) - 1)
        self.events = []
        self.sleep = set()
        self._disabled_since = {}
        self._pruned = False

    def _prune(self, rt: ControlledRuntime, why: str) -> None:
        self._pruned = True
        self.stats[why] += 1
        rt.abort(Outcome("pruned", why))

    def on_spawn(self, rt: ControlledRuntime, parent: Task | None, child: Task) -> None:
        if parent is not None:
            self.events.append(_Ev("spawn", parent.id, None, "", len(self.nodes), child.id))

    def on_local(self, rt: ControlledRuntime, t: Task) -> None:
        if isinstance(t.obj, Task):
            self.events.append(_Ev("join", t.id, None, "", self.pos, t.obj.id))

    def sched(self, rt: ControlledRuntime, options: Sequence[Task], cur: Task | None) -> int:
        pos = self.pos
        self.pos = pos + 1
        nodes = self.nodes
        # tasks disabled right now (live, at a point, not enabled) -- for enabler detection
        ids = [t.id for t in options]
        en = set(ids)
        if pos < len(nodes):
            node = nodes[pos]
            if node.kind != "t" or node.tids != tuple(ids):
                self._diverged(rt, pos, node, options)
            idx = ids.index(node.chosen)
            if node.op and options[idx].op != node.op:
                self._diverged(rt, pos, node, options)
            node.op = options[idx].op
            if node.fixed:
                self._fpos += 1
            sleep = set(node.sleep) | node.done
        else:
            cur_id = cur.id if cur is not None and cur.id in en else -1
            node = _Node("t", tuple(ids), len(ids), cur_id, rt.preemptions)
            node.sleep = frozenset(self.sleep)
            if len(ids) > 1 and self._fpos < len(self.forced):
                e = self.forced[self._fpos]
                self._fpos += 1
                if e.kind != "t" or e.value not in en:
                    self._diverged(rt, pos, node, options)
                node.fixed = True
                node.chosen = e.value
                node.backtrack.add(e.value)
                idx = ids.index(e.value)
                node.op = options[idx].op
                nodes.append(node)
                return self._finish_step(rt, options, idx, pos, en, set(self.sleep))
            awake = [i for i in ids if i not in self.sleep]
            if not awake:
                nodes.append(node)
                self._prune(rt, "sleep_blocked")
            if cur_id in awake:
                pick = cur_id
            else:
                pick = awake[0]
                if cur_id >= 0 and self.bound is not None and node.pre + 1 > self.bound:
                    nodes.append(node)
                    self._prune(rt, "bound_blocked")
            node.chosen = pick
            node.backtrack.add(pick)
            idx = ids.index(pick)
            node.op = options[idx].op
            nodes.append(node)
            sleep = set(self.sleep)
        return self._finish_step(rt, options, idx, pos, en, sleep)

    def _finish_step(
        self,
        rt: ControlledRuntime,
        options: Sequence[Task],
        idx: int,
        pos: int,
        en: set[int],
        sleep: set[int],
    ) -> int:
        chosen = options[idx]
        # sleep set of the child: sleepers whose pending event is independent of the chosen one
        if sleep:
            ca, co = chosen.access, chosen.obj
            tasks = rt._tasks
            keep = set()
            for tid in sleep:
                if tid == chosen.id:
                    continue
                t = tasks[tid]
                if t.done or not t.at_point:
                    continue
                if not _conflict(ca, co, t.access, t.obj):
                    keep.add(tid)
            self.sleep = keep
        else:
            self.sleep = set()
        # event record with its enabler: the event executed at the last node where this task was disabled
        ev_index = len(self.events)
        ev = _Ev("s", chosen.id, chosen.obj, chosen.access, pos)
        ev.wait = chosen.ready is not None
        ds = self._disabled_since
        ev.enabler = ds.pop(chosen.id, -1)
        for t in rt._live:
            if t.at_point and t.id not in en:
                ds[t.id] = ev_index
        self.events.append(ev)
        return idx

    def data(self, rt: ControlledRuntime, n: int, label: str) -> int:
        pos = self.pos
        self.pos = pos + 1
        if pos < len(self.nodes):
            node = self.nodes[pos]
            if node.kind != "c" or node.n != n:
                self._diverged(rt, pos, node, None, n)
            if node.fixed:
                self._fpos += 1
            return node.chosen
        node = _Node("c", (), n, -1, rt.preemptions)
        node.chosen = 0
        if self._fpos < len(self.forced):
            e = self.forced[self._fpos]
            self._fpos += 1
            if e.kind != "c" or not 0 <= e.value < n:
                self._diverged(rt, pos, node, None, n)
            node.chosen = e.value
            node.fixed = True
        self.nodes.append(node)
        return node.chosen

    def _diverged(
        self, rt: ControlledRuntime, pos: int, node: _Node, options: Sequence[Task] | None, n: int = 0
    ) -> None:
        expected = (
            f"choose({node.n})"
            if node.kind == "c"
            else f"task {node.chosen} doing {node.op or 'its next step'}"
        )
        if options is None:
            got = f"choose({n})" if n else "a scheduling step"
        else:
            got = "enabled tasks " + ", ".join(f"{t.id} ({t.op} {rt.labeler.name(t.obj)})" for t in options)
        msg = (
            f"nondeterminism: the same schedule gave a different execution; diverged at step {rt.steps + 1} "
            f"(node {pos + 1}): expected {expected}, got {got}. The body depends on something the runtime does "
            "not control (random, wall-clock time, state kept between executions, hash order): derive it from "
            "dmabuf.choose() or create it inside the body."
        )
        rt.abort(Outcome("nondeterminism", msg))

    def decisions(self) -> list[Any]:
        """Nodes of the execution that just ran that were real branches (for replay strings)."""
        return [nd for nd in self.nodes[: self.pos] if nd.kind == "c" or nd.n > 1]

    # ------------------------------------------------------------------ resume
    def snapshot(self, length: int) -> dict[str, Any]:
        """The frontier (the nodes the next execution replays, with their backtrack/done/sleep sets)."""
        return {
            "bound": self.bound,
            "nodes": [
                [
                    nd.kind,
                    list(nd.tids),
                    nd.n,
                    nd.cur,
                    nd.pre,
                    nd.chosen,
                    nd.op,
                    sorted(nd.backtrack),
                    sorted(nd.done),
                    sorted(nd.sleep),
                ]
                for nd in self.nodes[:length]
            ],
            "stats": dict(self.stats),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`snapshot`."""
        if state.get("bound") != self.bound:
            raise ValueError(f"saved with preemption_bound={state.get('bound')}, not {self.bound}")
        nodes = []
        for kind, tids, n, cur, pre, chosen, op, bt, done, sleep in state["nodes"]:
            nd = _Node(str(kind), tuple(int(t) for t in tids), int(n), int(cur), int(pre))
            nd.chosen, nd.op = int(chosen), str(op)
            nd.backtrack, nd.done, nd.sleep = (
                {int(x) for x in bt},
                {int(x) for x in done},
                frozenset(int(x) for x in sleep),
            )
            nodes.append(nd)
        self.nodes = nodes
        self.stats.update({k: int(v) for k, v in state.get("stats", {}).items() if k in self.stats})

    # ------------------------------------------------------------------ after an execution
    def advance(self, outcome: Outcome) -> bool:
        del self.nodes[self.pos :]
        if not self._pruned:
            self._analyse()
        nodes = self.nodes
        while nodes:
            node = nodes[-1]
            if node.fixed:
                return False  # the rest of the tree belongs to other work units
            if node.kind == "c":
                if node.chosen + 1 < node.n:
                    node.chosen += 1
                    return True
                nodes.pop()
                continue
            node.done.add(node.chosen)
            todo = sorted(node.backtrack - node.done - node.sleep)
            if todo:
                pick = todo[0]
                if node.cur >= 0 and pick != node.cur and node.cur in todo:
                    pick = node.cur
                node.chosen = pick
                node.op = ""
                return True
            nodes.pop()
        return False

    def _analyse(self) -> None:
        """Vector clocks over the events of the execution, then a source-set update for every race."""
        events = self.events
        #: child task id -> (index of its spawn event, parent task id)
        self._spawned_at = {e.other: (k, e.tid) for k, e in enumerate(events) if e.kind == "spawn"}
        ntask = 1 + max((max(e.tid, e.other) for e in events), default=0)
        zero = [0] * ntask
        clock: dict[int, list[int]] = {}
        last_w: dict[int, tuple[Any, list[int]]] = {}
        reads: dict[int, tuple[Any, list[int]]] = {}
        hist: dict[int, list[int]] = {}
        last_ev: dict[int, int] = {}
        fresh = self._fresh_from
        for j, ev in enumerate(events):
            if ev.kind == "spawn":
                clock[ev.other] = list(clock.get(ev.tid, zero))
                continue
            if ev.kind == "join":
                mine = clock.setdefault(ev.tid, list(zero))
                theirs = clock.get(ev.other, zero)
                for k in range(ntask):
                    if theirs[k] > mine[k]:
                        mine[k] = theirs[k]
                continue
            q = ev.tid
            pred = clock.get(q, zero)
            key = _key(ev.obj)
            h = hist.setdefault(key, [])
            vc = list(pred)
            lw = last_w.get(key)
            if lw is not None:
                _join(vc, lw[1])
            if ev.access != READ:
                rd = reads.get(key)
                if rd is not None:
                    _join(vc, rd[1])
            vc[q] = pred[q] + 1
            ev.vc = vc
            clock[q] = vc
            # races: scan the object's history backwards (only for events new in this execution)
            prev = last_ev.get(q, -1)
            last_ev[q] = j
            for i in reversed(h) if ev.node >= fresh else ():
                ei = events[i]
                if ei.tid == q or not _conflict(ei.access, ei.obj, ev.access, ev.obj):
                    continue
                if ei.vc[ei.tid] <= pred[ei.tid]:
                    if ei.access != READ:
                        break
                    continue
                if i == ev.enabler:
                    continue
                if ev.wait and not self._could_run_before(i, j, prev):
                    continue  # a waiting step that could not have run at i: look for the real race further back
                self._race(i, j)
                if ei.access != READ:
                    break
            if ev.access != READ:
                last_w[key] = (ev.obj, vc)
                reads.pop(key, None)
            else:
                rd = reads.get(key)
                if rd is None:
                    reads[key] = (ev.obj, list(vc))
                else:
                    _join(rd[1], vc)
            h.append(j)

    def _could_run_before(self, i: int, j: int, prev: int) -> bool:
        """Could waiting step ``j`` have executed in the state before step ``i``? If its task was already
        at that point there (``prev < i``), exactly when it was enabled there; if its task was still
        earlier, not before a release (``i`` unlocking what ``j`` waits for)."""
        ei = self.events[i]
        tid = self.events[j].tid
        if self._spawned_at.get(tid, (-1, -1))[0] > i:
            prev = i + 1  # the task did not exist yet at i: it was "still earlier"
        if prev < i:
            return tid in self.nodes[ei.node].tids if ei.node < len(self.nodes) else False
        return ei.access != RELEASE

    def _race(self, i: int, j: int) -> None:
        events = self.events
        self.stats["races"] += 1
        ei = events[i]
        node = self.nodes[ei.node] if ei.node < len(self.nodes) else None
        if node is None or node.kind != "t" or node.fixed:
            return  # forced prefix nodes: their alternatives are other work units
        ti = ei.tid
        ci = ei.vc[ti]
        # v = events after i (steps) that do not happen after i, then j; initials = tasks whose first event
        # in v has no HB predecessor in v
        v: list[_Ev] = []
        for k in range(i + 1, j):
            ek = events[k]
            if ek.kind != "s" or ek.vc[ti] >= ci:
                continue
            v.append(ek)
        v.append(events[j])
        initials: list[int] = []
        seen: set[int] = set()
        for idx, ek in enumerate(v):
            if ek.tid in seen:
                continue
            seen.add(ek.tid)
            first = True
            for em in v[:idx]:
                if em.vc[em.tid] <= ek.vc[em.tid]:
                    first = False
                    break
            if first:
                initials.append(ek.tid)
        # a task spawned after i did not exist at node i: the reversal starts with the task that spawns it
        spawned_at = self._spawned_at
        subst = []
        for p in initials:
            while spawned_at.get(p, (-1, -1))[0] > i:
                p = spawned_at[p][1]
            subst.append(p)
        initials = subst
        if any(p in node.backtrack or p in node.sleep for p in initials):
            return
        for p in initials:
            if p in node.tids:
                if self.bound is not None and node.cur >= 0 and p != node.cur and node.pre + 1 > self.bound:
                    continue
                node.backtrack.add(p)
                return


def _key(obj: Any) -> int:
    """The history key of an object: strings by value (labels), everything else by identity."""
    return hash(("str", obj)) if type(obj) is str else id(obj)


def _join(a: list[int], b: list[int]) -> None:
    a[: len(b)] = [x if x > y else y for x, y in zip(a, b, strict=False)]
