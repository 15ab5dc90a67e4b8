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
reordering executing ``j`` before ``i``) are computed under the happens-before of the *reordered* trace
(prefix, then ``v``: two steps of ``v`` may be ordered in this execution only through a step that happens
after ``i``, which ``v`` leaves out); if none of them is already in the backtrack or sleep set of the node
before ``i``, one that is enabled there is added (a source set). Sleep sets prevent exploring the same
Mazurkiewicz trace twice: a task explored at a node sleeps in the sibling subtrees until a dependent event
wakes it; an execution in which every enabled task sleeps is abandoned (*sleep-set blocked*, counted in
``stats`` but not as an execution) -- its races are still analysed. The steps the live tasks were about to
take when an execution ended (pruned, or with blocked daemons) race too: a task that never got to run may
be the one to reorder.

Incremental analysis
--------------------
Vector clocks are computed step by step; every change of the analysis state is logged, so the next
execution rewinds to the node whose choice changed and replays the prefix before it without recording
anything (the prefix is deterministic; its new objects are aliased to the keys the recorded events used).

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

from ...runtime import LOCAL, READ, RELEASE, Task
from ...runtime.controlled import ControlledRuntime, Outcome
from ..schedule import Entry

__all__ = ["DPOR"]


class _Node:
    """A node of the DPOR tree: the state before one step (``kind == "t"``) or a data choice (``"c"``)."""

    __slots__ = (
        "backtrack",
        "chosen",
        "cur",
        "done",
        "ev",
        "fixed",
        "kind",
        "mark",
        "n",
        "op",
        "pre",
        "sleep",
        "tids",
    )

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
        #: (number of events, length of the undo log) when the node was reached; None until recorded
        self.mark: tuple[int, int] | None = None
        self.ev = -1  # index of the event of this node's step (scheduling nodes)

    def entry(self) -> Entry:
        if self.kind == "c":
            return Entry("c", self.chosen, self.n)
        return Entry("t", self.chosen, 0, self.op, "")


class _Ev:
    __slots__ = (
        "access",
        "enabler",
        "key",
        "kind",
        "node",
        "obj",
        "other",
        "pred",
        "prev_obj",
        "prev_task",
        "tid",
        "vc",
        "wait",
    )

    def __init__(
        self, kind: str, tid: int, obj: Any, key: Any, access: str, node: int, other: int = -1
    ) -> None:
        self.kind = kind  # "s" step, "spawn" (other = child), "join" (other = joined task)
        self.tid = tid
        self.obj = obj  # kept alive: its id may be the history key of later executions' objects
        self.key = key
        self.access = access
        self.node = node
        self.other = other
        self.enabler = -1
        self.wait = False
        self.vc: list[int] = _EMPTY
        self.pred: list[int] = _EMPTY  # the task's clock before this step
        self.prev_obj = -1  # previous event on the same object
        self.prev_task = -1  # previous step of the same task


_EMPTY: list[int] = []
_MISSING = object()


def _conflict(a1: str, o1: Any, a2: str, o2: Any) -> bool:
    return (a1 != READ or a2 != READ) and (o1 is o2 or (type(o1) is str and o1 == o2))


def _joined(a: list[int], b: list[int]) -> list[int]:
    """The pointwise maximum of two vector clocks (missing entries are 0), as a new list."""
    if len(a) < len(b):
        a, b = b, a
    r = [x if x > y else y for x, y in zip(a, b, strict=False)]
    if len(a) > len(b):
        r += a[len(b) :]
    return r


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
        self.stats = {"sleep_blocked": 0, "bound_blocked": 0, "races": 0}
        self._pruned = False
        #: decisions the first real branches must take (a work unit of a parallel search)
        self.forced: list[Entry] = []
        self._fpos = 0
        # Analysis state, kept up to date step by step. Every change is logged in ``_undo`` so that the
        # next execution can rewind to the node whose choice changed and replay the prefix before it
        # without recording anything (the prefix is deterministic: same steps, same events).
        self._undo: list[tuple[dict[Any, Any], Any, Any]] = []
        self._clock: dict[int, list[int]] = {}  # task -> vector clock after its last event
        self._last_w: dict[Any, list[int]] = {}  # object key -> clock of its last write
        self._reads: dict[Any, list[int]] = {}  # object key -> join of the reads since that write
        self._head: dict[Any, int] = {}  # object key -> its last event
        self._last_ev: dict[int, int] = {}  # task -> its last step event
        self._spawned_at: dict[int, tuple[int, int]] = {}  # child -> (spawn event, parent)
        #: id(object of this execution) -> (its history key, the object): objects of the replayed prefix
        #: are new objects standing for the ones the recorded events saw
        self._alias: dict[int, tuple[Any, Any]] = {}
        #: (task, object, access, waits) of the steps pending when an execution was pruned
        self._pending: list[tuple[int, Any, str, bool]] = []
        self._keep = -1  # nodes before this one are replayed without recording
        self._scan_node = 0  # races are looked for in events at or after this node
        self._fresh_ev = 0  # first event recorded by this execution

    # ------------------------------------------------------------------ execution
    def start(self) -> None:
        self._fpos = 0
        self.pos = 0
        nodes = self.nodes
        # nodes before the last one are replayed unchanged: the races of their events were already
        # processed by the execution that created them (the last node's choice was just changed)
        self._scan_node = max(0, len(nodes) - 1)
        mark = nodes[-1].mark if nodes else None
        if mark is None:
            ev_mark, undo_mark, self._keep = 0, 0, -1
        else:
            ev_mark, undo_mark = mark
            self._keep = len(nodes) - 1
        self._rewind(undo_mark)
        del self.events[ev_mark:]
        self._fresh_ev = len(self.events)
        self._alias = {}
        self.sleep = set()
        self._pruned = False
        self._pending = []

    def _rewind(self, mark: int) -> None:
        undo = self._undo
        while len(undo) > mark:
            d, k, old = undo.pop()
            if old is _MISSING:
                del d[k]
            else:
                d[k] = old

    def _set(self, d: dict[Any, Any], k: Any, v: Any) -> None:
        self._undo.append((d, k, d.get(k, _MISSING)))
        d[k] = v

    def _key(self, obj: Any) -> Any:
        """The history key of an object: strings by value (labels), everything else by identity (of the
        object the recorded events saw, for objects of a replayed prefix)."""
        if type(obj) is str:
            return obj
        a = self._alias.get(id(obj))
        return id(obj) if a is None else a[0]

    def _prune(self, rt: ControlledRuntime, why: str) -> None:
        self._pruned = True
        self.stats[why] += 1
        rt.abort(Outcome("pruned", why))

    def on_end(self, rt: ControlledRuntime) -> None:
        """The execution ended (finished, pruned, failed): note the steps the live tasks (blocked daemons,
        tasks of a pruned execution) were about to take -- their races count as well (source-DPOR looks at
        every task's next step, not only the executed ones)."""
        self._pending = [
            (t.id, t.obj, t.access, t.ready is not None)
            for t in rt._live
            if t.at_point and t.access is not LOCAL  # type: ignore[attr-defined]
        ]

    def on_spawn(self, rt: ControlledRuntime, parent: Task | None, child: Task) -> None:
        if parent is None or self.pos <= self._keep:
            return
        j = len(self.events)
        self.events.append(_Ev("spawn", parent.id, None, None, "", self.pos, child.id))
        self._set(self._clock, child.id, self._clock.get(parent.id, _EMPTY))
        self._set(self._spawned_at, child.id, (j, parent.id))

    def on_local(self, rt: ControlledRuntime, t: Task) -> None:
        if not isinstance(t.obj, Task) or self.pos <= self._keep:
            return
        self.events.append(_Ev("join", t.id, None, None, "", self.pos, t.obj.id))
        clock = self._clock
        theirs = clock.get(t.obj.id)
        if theirs is not None:
            self._set(clock, t.id, _joined(clock.get(t.id, _EMPTY), theirs))

    def sched(self, rt: ControlledRuntime, options: Sequence[Task], cur: Task | None) -> int:
        pos = self.pos
        self.pos = pos + 1
        nodes = self.nodes
        if pos < len(nodes):
            node = nodes[pos]
            ids = tuple([t.id for t in options])
            if node.kind != "t" or node.tids != ids:
                self._diverged(rt, pos, node, options)
            idx = ids.index(node.chosen)
            chosen = options[idx]
            if node.op and chosen.op != node.op:
                self._diverged(rt, pos, node, options)
            node.op = chosen.op
            if node.fixed:
                self._fpos += 1
            if pos < self._keep:
                # replayed: the events are already recorded; map this execution's object to the key
                obj = chosen.obj
                if type(obj) is not str:
                    self._alias[id(obj)] = (self.events[node.ev].key, obj)
                return idx
            if node.mark is None:
                node.mark = (len(self.events), len(self._undo))
            return self._finish_step(rt, options, idx, pos, node, set(node.sleep) | node.done)
        ids = tuple([t.id for t in options])
        cur_id = cur.id if cur is not None and cur.id in ids else -1
        node = _Node("t", ids, len(ids), cur_id, rt.preemptions)
        node.sleep = frozenset(self.sleep)
        node.mark = (len(self.events), len(self._undo))
        if len(ids) > 1 and self._fpos < len(self.forced):
            e = self.forced[self._fpos]
            self._fpos += 1
            if e.kind != "t" or e.value not in ids:
                self._diverged(rt, pos, node, options)
            node.fixed = True
            node.chosen = e.value
            node.backtrack.add(e.value)
            idx = ids.index(e.value)
            node.op = options[idx].op
            nodes.append(node)
            return self._finish_step(rt, options, idx, pos, node, set(self.sleep))
        sleep = self.sleep
        if sleep:
            awake = [i for i in ids if i not in sleep]
            if not awake:
                nodes.append(node)
                self._prune(rt, "sleep_blocked")
        else:
            awake = list(ids)
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
        return self._finish_step(rt, options, idx, pos, node, set(sleep))

    def _finish_step(
        self, rt: ControlledRuntime, options: Sequence[Task], idx: int, pos: int, node: _Node, sleep: set[int]
    ) -> int:
        chosen = options[idx]
        q = chosen.id
        ca, co = chosen.access, chosen.obj
        # sleep set of the child: sleepers whose pending event is independent of the chosen one
        if sleep:
            tasks = rt._tasks
            keep = set()
            for tid in sleep:
                if tid == q:
                    continue
                t = tasks[tid]
                if t.done or not t.at_point:
                    continue
                if not _conflict(ca, co, t.access, t.obj):
                    keep.add(tid)
            self.sleep = keep
        else:
            self.sleep = set()
        events = self.events
        j = len(events)
        key = self._key(co)
        ev = _Ev("s", q, co, key, ca, pos)
        node.ev = j
        undo = self._undo
        push = undo.append  # every change below is logged as (dict, key, old value) for _rewind
        # the enabler: the event executed at the last node where this task was disabled (it has been at
        # this point since its previous step, or since it was spawned)
        if chosen.ready is not None:
            ev.wait = True
            prev = self._last_ev.get(q, -1)
            if prev >= 0:
                stop = events[prev].node
            else:
                sp = self._spawned_at.get(q)
                stop = -1 if sp is None else events[sp[0]].node - 1
            nodes = self.nodes
            for k in range(pos - 1, stop, -1):
                nk = nodes[k]
                if nk.kind == "t" and q not in nk.tids:
                    ev.enabler = nk.ev
                    break
        # the step's vector clock, then the analysis state it changes (every change logged)
        clock = self._clock
        old = clock.get(q, _MISSING)
        last_w = self._last_w
        reads = self._reads
        lw = last_w.get(key)
        vc = self._clock_of(ev)
        push((clock, q, old))
        clock[q] = vc
        if ca != READ:
            push((last_w, key, _MISSING if lw is None else lw))
            last_w[key] = vc
            if key in reads:
                push((reads, key, reads.pop(key)))
        else:
            rd = reads.get(key)
            push((reads, key, _MISSING if rd is None else rd))
            reads[key] = vc if rd is None else _joined(rd, vc)
        head = self._head
        h = head.get(key, -1)
        ev.prev_obj = h
        push((head, key, _MISSING if h < 0 else h))
        head[key] = j
        last = self._last_ev
        h = last.get(q, -1)
        ev.prev_task = h
        push((last, q, _MISSING if h < 0 else h))
        last[q] = j
        events.append(ev)
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
            if node.mark is None and pos >= self._keep:
                node.mark = (len(self.events), len(self._undo))
            return node.chosen
        node = _Node("c", (), n, -1, rt.preemptions)
        node.chosen = 0
        node.mark = (len(self.events), len(self._undo))
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
        # races of a sleep-set blocked execution count too, with its pending steps: its steps are real, and
        # a reversal may lead to traces no other execution reaches (a task spawned late, whose first step
        # races with a step that left only sleeping tasks enabled)
        self._races()
        if self._pending:
            self._pending_races()
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

    def _races(self) -> None:
        """A source-set update for every race of a step recorded by this execution (the vector clocks
        were computed step by step)."""
        events = self.events
        scan = self._scan_node
        for j in range(self._fresh_ev, len(events)):
            ev = events[j]
            if ev.kind == "s" and ev.node >= scan:
                self._scan(j)

    def _pending_races(self) -> None:
        """The races of the steps pending at the end of a pruned execution, as if each ran next."""
        events = self.events
        at = len(self.nodes)
        for tid, obj, access, waits in self._pending:
            key = self._key(obj)
            ev = _Ev("s", tid, obj, key, access, at)
            ev.wait = waits
            self._clock_of(ev)
            ev.prev_obj = self._head.get(key, -1)
            ev.prev_task = self._last_ev.get(tid, -1)
            events.append(ev)
            try:
                self._scan(len(events) - 1)
            finally:
                events.pop()

    def _clock_of(self, ev: _Ev) -> list[int]:
        """Set ``ev.pred`` and ``ev.vc`` for step ``ev`` taken now: its task's clock, joined with the last
        write of its object (and, for a write, the reads since), plus one for the step."""
        q = ev.tid
        key = ev.key
        pred = self._clock.get(q, _EMPTY)
        lw = self._last_w.get(key)
        vc = list(pred) if lw is None else _joined(pred, lw)
        if ev.access != READ:
            rd = self._reads.get(key)
            if rd is not None:
                vc = _joined(vc, rd)
        if len(vc) <= q:
            vc += [0] * (q + 1 - len(vc))
        vc[q] = (pred[q] if q < len(pred) else 0) + 1
        ev.vc, ev.pred = vc, pred
        return vc

    def _scan(self, j: int) -> None:
        """Scan the history of step ``j``'s object backwards for the steps it races with."""
        events = self.events
        ev = events[j]
        q = ev.tid
        pred = ev.pred
        npred = len(pred)
        i = ev.prev_obj
        while i >= 0:
            ei = events[i]
            nxt = ei.prev_obj
            if ei.tid == q or (ei.access == READ and ev.access == READ):
                i = nxt
                continue
            ti = ei.tid
            if ei.vc[ti] <= (pred[ti] if ti < npred else 0):
                if ei.access != READ:
                    break
                i = nxt
                continue
            if i == ev.enabler or (ev.wait and not self._could_run_before(i, j, ev.prev_task)):
                # the enabling event, or one the waiting step could not have run before: the real
                # race is further back
                i = nxt
                continue
            self._race(i, j)
            if ei.access != READ:
                break
            i = nxt

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
        # v = the steps after i that do not happen after i, then j. The initials of v are the tasks whose
        # first step in v has no predecessor in v, under the happens-before of the reordered trace (prefix
        # up to i, then v) -- not of this execution, where a step of v can follow another only through a
        # step that happens after i (and is not in v). Tracked with bitmasks over the positions in v.
        tmask: dict[int, int] = {}  # task -> steps of v it has seen
        wmask: dict[Any, int] = {}  # object -> steps of v its last write in v has seen
        rmask: dict[Any, int] = {}  # object -> steps of v its reads since that write have seen
        initials: list[int] = []
        bit = 1
        for k in range(i + 1, j + 1):
            ek = events[k]
            kind = ek.kind
            if kind == "spawn":
                m = tmask.get(ek.tid, 0)
                if m:
                    tmask[ek.other] = m
                continue
            if kind == "join":
                m = tmask.get(ek.other, 0)
                if m:
                    tmask[ek.tid] = tmask.get(ek.tid, 0) | m
                continue
            if k != j:
                vk = ek.vc
                if ti < len(vk) and vk[ti] >= ci:
                    continue  # happens after i
            q = ek.tid
            key = ek.key
            m = tmask.get(q, 0) | wmask.get(key, 0)
            if ek.access != READ:
                m |= rmask.get(key, 0)
            if m == 0:
                initials.append(q)
            m |= bit
            bit <<= 1
            tmask[q] = m
            if ek.access != READ:
                wmask[key] = m
                rmask.pop(key, None)
            else:
                rmask[key] = rmask.get(key, 0) | m
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
