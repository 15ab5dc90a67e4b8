"""Source-set DPOR with sleep sets (Abdulla, Aronis, Jonsson, Sagonas 2014), stateless.

Model
-----
Every executed (non-LOCAL) scheduling step is an *event* ``(task, obj, access)``; two events *conflict* when
they touch the same object and at least one writes. Happens-before (HB) is program order plus conflicts in
execution order, plus spawn (parent before child) and join (child before joiner) edges; it is tracked with
clocks: bit sets over event indices (bit ``k`` set: event ``k`` happens before), so a join is one ``|``.

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
Clocks are computed step by step; a branching node keeps a copy of the analysis state as it was
when the node was reached (a few small dicts), so the next execution restores the state of the node whose
choice changed and replays the prefix before it without recording anything (the prefix is deterministic;
its new objects are aliased to the keys the recorded events used). Steps with one enabled task never
branch and get a light node (:class:`.dpor_events.Node1`).

Blocking
--------
A task waiting on a predicate is disabled. When an event ``i`` *enables* a task (it was disabled at the node
before ``i`` and enabled after), the pair ``(i, j)`` for that task's next event ``j`` is an HB edge but not a
reversible race (``j`` could not run before ``i``), so race detection skips it and looks further back -- this
is how a lock acquisition races with the previous *acquisition* of the same lock rather than with the unlock
that let it in. Reversals whose initial task is disabled at the target node are not reversible and skipped.

For N tasks each doing K lock-protected increments this explores exactly one execution per order of the
critical sections ((N*K)! / (K!)^N: 6 for 2x2, 90 for 3x2, 24 for 4x1, 1,680 for 3x3).

Files: this module holds the search (the tree, scheduling, backtracking, resume); :mod:`.dpor_events` the
nodes, events and clock helpers; :mod:`.dpor_races` the race detection.

Data choices (``choose``) are nodes whose alternatives are all explored. With a preemption bound, backtrack
points that would exceed it are not added (a subset of the unbounded search, so never more executions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from ...errors import InternalError
from ...runtime import LOCAL, READ, Task
from ...runtime.controlled import ControlledRuntime, Outcome
from ..schedule import Entry
from .dpor_events import NO_SLEEP, Ev, Node, Node1, conflict
from .dpor_races import RaceAnalysis

__all__ = ["DPOR", "bound_skipped_note"]


def bound_skipped_note(bound: int | None) -> str:
    """The note of a bounded DPOR search that dropped reversals for the bound: ``complete`` then means the
    bounded tree was finished, not that every schedule within the bound ran."""
    return (
        f"dpor with preemption_bound={bound} skipped reversals that need more preemptions than the bound "
        "(stats['bound_skipped']), and a schedule within the bound equivalent to a skipped one may not have "
        "run: 'complete' means the bounded search finished, not that every schedule within the bound ran. "
        "For that, use strategy='dfs' with the bound, or dpor without one"
    )


class DPOR(RaceAnalysis):
    """The ``"dpor"`` strategy (the default). See the module docstring."""

    name = "dpor"
    exhaustive = True  # and ``observe`` (ObservingDecider): it sees every step

    def __init__(self, preemption_bound: int | None = None) -> None:
        self.bound = preemption_bound
        self.nodes: list[Node | Node1] = []
        self.pos = 0
        self.events: list[Ev] = []
        self.sleep: set[int] | frozenset[int] = NO_SLEEP
        self.stats = {"sleep_blocked": 0, "bound_blocked": 0, "bound_skipped": 0, "races": 0}
        self._pruned = False
        #: decisions the first real branches must take (a work unit of a parallel search), and for each the
        #: tasks other work units explore at that branch before this one (they sleep here, as after a
        #: sequential backtrack)
        self.forced: list[Entry] = []
        self.forced_done: list[list[int]] = []
        #: the first ``fixed_depth`` real branches belong to the coordinator of a parallel search: this
        #: search never backtracks them (past ``forced`` it takes its default choice there) and reports
        #: each reversal a race asks of them as a request (level, initials) in ``requests``
        self.fixed_depth = 0
        self.requests: list[tuple[int, tuple[int, ...]]] = []
        self._requested: set[tuple[int, tuple[int, ...]]] = set()
        self._nfixed = 0
        self._fpos = 0
        # Analysis state, kept up to date step by step. A branching node keeps a copy of it (see _mark),
        # so that the next execution can go back to the node whose choice changed and replay the prefix
        # before it without recording anything (the prefix is deterministic: same steps, same events).
        # Happens-before clocks are bit sets over event indices (Python ints: a join is one ``|``).
        # per task (lists indexed by task id: ids are dense): the events that happen before its next step
        # (0: none yet), and its last step event (-1: none)
        self._clock: list[int] = []
        self._last_w: dict[Any, int] = {}  # object key -> the clock of its last write
        self._reads: dict[Any, int] = {}  # object key -> the joined clocks of its reads since that write
        self._head: dict[Any, int] = {}  # object key -> its last event
        self._last_ev: list[int] = []
        self._spawned_at: dict[int, tuple[int, int]] = {}  # child -> (spawn event, parent)
        #: id(object of this execution) -> (its history key, the object): objects of the replayed prefix
        #: are new objects standing for the ones the recorded events saw
        self._alias: dict[int, tuple[Any, Any]] = {}
        #: the history key of an object is a slot number, given in the order objects are first touched
        #: (so a replayed prefix gives its objects the same slots; and small ints are shared objects, so
        #: the dicts keyed by them hit by identity): the next free slot
        self._nslots = 0
        #: (task, object, access, waits) of the steps the live tasks were about to take when it ended
        self._pending: list[tuple[int, Any, str, bool]] = []
        self._keep = -1  # nodes before this one are replayed without recording
        self._scan_node = 0  # races are looked for in events at or after this node
        self._fresh_ev = 0  # first event recorded by this execution

    # ------------------------------------------------------------------ execution
    def start(self) -> None:
        self._fpos = 0
        self._nfixed = max(len(self.forced), self.fixed_depth)
        self.pos = 0
        nodes = self.nodes
        # nodes before the last one are replayed unchanged: the races of their events were already
        # processed by the execution that created them (the last node's choice was just changed)
        self._scan_node = max(0, len(nodes) - 1)
        mark = nodes[-1].mark if nodes else None
        if mark is None:
            self._keep = -1
            del self.events[:]
            self._set_state(([], {}, {}, {}, [], {}, 0))
        else:
            self._keep = len(nodes) - 1
            del self.events[mark[0] :]
            self._set_state(mark[1])
        self._fresh_ev = len(self.events)
        self._alias = {}
        self.sleep = NO_SLEEP
        self._pruned = False
        self._pending = []

    def _mark(self) -> tuple[int, tuple[Any, ...]]:
        """What a branching node keeps to be returned to: the number of events and a copy of the state."""
        return (
            len(self.events),
            (
                self._clock.copy(),
                self._last_w.copy(),
                self._reads.copy(),
                self._head.copy(),
                self._last_ev.copy(),
                self._spawned_at.copy(),
                self._nslots,
            ),
        )

    def _set_state(self, st: tuple[Any, ...]) -> None:
        """Make a copy of a node's saved state the current analysis state (the node keeps its own)."""
        # typed locals: compiled, each copy is a native call instead of a method looked up by name
        clock: list[int] = st[0]
        last_w: dict[Any, int] = st[1]
        reads: dict[Any, int] = st[2]
        head: dict[Any, int] = st[3]
        last_ev: list[int] = st[4]
        spawned_at: dict[int, tuple[int, int]] = st[5]
        self._clock, self._last_w, self._reads = clock.copy(), last_w.copy(), reads.copy()
        self._head, self._last_ev, self._spawned_at = head.copy(), last_ev.copy(), spawned_at.copy()
        self._nslots = st[6]

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
            if t.at_point and t.access != LOCAL
        ]

    def on_spawn(self, rt: ControlledRuntime, parent: Task | None, child: Task) -> None:
        if parent is None or self.pos <= self._keep:
            return
        j = len(self.events)
        self.events.append(Ev("spawn", parent.id, None, None, "", self.pos, child.id))
        clock = self._clock
        self._grow(child.id)
        clock[child.id] = clock[parent.id] if parent.id < len(clock) else 0
        self._spawned_at[child.id] = (j, parent.id)

    def on_local(self, rt: ControlledRuntime, t: Task) -> None:
        if not isinstance(t.obj, Task) or self.pos <= self._keep:
            return
        self.events.append(Ev("join", t.id, None, None, "", self.pos, t.obj.id))
        clock = self._clock
        self._grow(max(t.id, t.obj.id))
        clock[t.id] |= clock[t.obj.id]

    def _grow(self, tid: int) -> None:
        """Make room in the per-task lists for task ``tid`` (ids are dense: one new task at a time)."""
        clock, last = self._clock, self._last_ev
        while len(clock) <= tid:
            clock.append(0)
            last.append(-1)

    def sched(self, rt: ControlledRuntime, opts: Sequence[Task], cur: Task | None) -> int:
        # the runtime passes a list: as one, compiled (setup.py), indexing it is a native list operation
        options = cast("list[Task]", opts)
        pos = self.pos
        self.pos = pos + 1
        nodes = self.nodes
        if pos < len(nodes):
            node = nodes[pos]
            if pos < self._keep and node.n == 1 and len(options) == 1:
                # the commonest replayed step, inline (see _replayed)
                chosen = options[0]
                if chosen.id != node.chosen or chosen.op != node.op or node.kind != "t":
                    self._diverged(rt, pos, node, options)
                obj = chosen.obj
                if type(obj) is not str:
                    self._alias[id(obj)] = (self.events[node.ev].key, obj)
                return 0
            return self._replayed(rt, options, pos, node)
        n = len(options)
        if n == 1:
            # one enabled task: no branch, no preemption; only the sleep set can stop it
            t = options[0]
            tid = t.id
            if self.sleep and tid in self.sleep:
                nodes.append(Node1(tid, t.op, -1))
                self._prune(rt, "sleep_blocked")
            nodes.append(Node1(tid, t.op, len(self.events)))
            self._record(rt, t, pos)
            return 0
        ids = tuple([t.id for t in options])
        cur_id = cur.id if cur is not None and cur.id in ids else -1
        node = Node("t", ids, n, cur_id, rt.preemptions)
        node.sleep = frozenset(self.sleep) if self.sleep else NO_SLEEP
        node.mark = self._mark()
        if self._fpos < self._nfixed:
            node.fixed = True
            k = self._fpos
            self._fpos = k + 1
            if k < len(self.forced):
                e = self.forced[k]
                if e.kind != "t" or e.value not in ids:
                    self._diverged(rt, pos, node, options)
                pick = e.value
                if k < len(self.forced_done) and self.forced_done[k]:
                    # explored by other units before this one: asleep here, as after a backtrack
                    done = set(self.forced_done[k])
                    node.done |= done
                    node.backtrack |= done
                    self.sleep = set(self.sleep) | done
            else:
                pick = self._default_pick(rt, node, ids, cur_id)
        else:
            pick = self._default_pick(rt, node, ids, cur_id)
        node.chosen = pick
        node.backtrack.add(pick)
        idx = ids.index(pick)
        chosen = options[idx]
        node.op = chosen.op
        node.ev = len(self.events)
        nodes.append(node)
        self._record(rt, chosen, pos)
        return idx

    def _default_pick(self, rt: ControlledRuntime, node: Node, ids: tuple[int, ...], cur_id: int) -> int:
        """The task a new branching node tries first: the current task if it is awake (no preemption), else
        the first awake one; prunes the execution when every task sleeps or the bound forbids the switch."""
        sleep = self.sleep
        awake = [i for i in ids if i not in sleep] if sleep else ids
        if not awake:
            self.nodes.append(node)
            self._prune(rt, "sleep_blocked")
        if cur_id in awake:
            return cur_id
        if cur_id >= 0 and self.bound is not None and node.pre + 1 > self.bound:
            self.nodes.append(node)
            self._prune(rt, "bound_blocked")
        return awake[0]

    def _replayed(self, rt: ControlledRuntime, options: list[Task], pos: int, node: Node | Node1) -> int:
        """A step of the prefix the execution replays: check it is the recorded one, then take the recorded
        choice; at the node whose choice changed (``pos == _keep``; every node of a frontier restored by
        :meth:`restore`, which has no marks) record it again. Those nodes always branch: :meth:`advance`
        never leaves a :class:`Node1` last, and :meth:`restore` makes full nodes."""
        if node.n == 1:
            chosen = options[0]
            if len(options) != 1 or chosen.id != node.chosen or node.kind != "t":
                self._diverged(rt, pos, node, options)
            idx = 0
        else:
            # the enabled tasks must be the recorded ones (in id order); compared in place, without a tuple
            tids = node.tids
            if node.kind != "t" or len(options) != len(tids):
                self._diverged(rt, pos, node, options)
            idx = -1
            want = node.chosen
            for k in range(len(tids)):
                tid = options[k].id
                if tid != tids[k]:
                    self._diverged(rt, pos, node, options)
                if tid == want:
                    idx = k
            if idx < 0:
                self._diverged(rt, pos, node, options)
            chosen = options[idx]
        if node.op and chosen.op != node.op:
            self._diverged(rt, pos, node, options)
        if node.fixed:
            self._fpos += 1
        if pos < self._keep:
            # replayed: the events are already recorded; map this execution's object to the key
            obj = chosen.obj
            if type(obj) is not str:
                self._alias[id(obj)] = (self.events[node.ev].key, obj)
            return idx
        if not isinstance(node, Node):
            raise InternalError(f"[internal bug] DPOR: node {pos} is recorded again but has no branch data")
        node.op = chosen.op
        if node.mark is None:
            node.mark = self._mark()
        self.sleep = set(node.sleep) | node.done
        node.ev = len(self.events)
        self._record(rt, chosen, pos)
        return idx

    def _record(self, rt: ControlledRuntime, chosen: Task, pos: int) -> None:
        """Record the step ``chosen`` takes now at node ``pos``: its event and clock, and the sleep
        set of the next node. This runs at every new step: keep it lean."""
        q = chosen.id
        ca, co = chosen.access, chosen.obj
        # sleep set of the child: sleepers whose pending event is independent of the chosen one
        sleep = self.sleep
        if sleep:
            tasks = rt._tasks
            keep = set()
            for tid in sleep:
                if tid == q:
                    continue
                t = tasks[tid]
                if t.done or not t.at_point:
                    continue
                if not conflict(ca, co, t.access, t.obj):
                    keep.add(tid)
            self.sleep = keep or NO_SLEEP
        events = self.events
        j = len(events)
        if type(co) is str:
            key: Any = co
        else:
            key = self._slot_of(co)
        # the enabler: the event executed at the last node where this task was disabled (it has been at
        # this point since its previous step, or since it was spawned)
        last = self._last_ev
        if q >= len(last):
            self._grow(q)
        prev = last[q]
        enabler = -1
        wait = chosen.ready is not None
        if wait:
            if prev >= 0:
                stop = events[prev].node
            else:
                sp = self._spawned_at.get(q)
                stop = -1 if sp is None else events[sp[0]].node - 1
            nodes = self.nodes
            for k in range(pos - 1, stop, -1):
                nk = nodes[k]
                if nk.kind == "t" and q not in nk.tids:
                    enabler = nk.ev
                    break
        # the step's clock, then the state it changes
        clock = self._clock
        pred = clock[q]
        vc = clock[q] = self._clock_of(pred, key, ca, j)
        reads = self._reads
        if ca != READ:
            self._last_w[key] = vc
            if reads and key in reads:  # usually empty: no method call for nothing
                del reads[key]
        else:
            reads[key] = reads.get(key, 0) | vc
        head = self._head
        # positional on purpose (keywords cost ~4% of an execution here): other, wait, enabler, vc, pred,
        # prev_obj, prev_task
        events.append(Ev("s", q, co, key, ca, pos, -1, wait, enabler, vc, pred, head.get(key, -1), prev))
        head[key] = j
        last[q] = j

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
                node.mark = self._mark()
            if pos == self._keep and node.sleep:
                # the next value of a data choice: the tasks asleep when it was first reached still sleep
                # (their subtrees covered every value); without this, the value reran their traces
                self.sleep = set(node.sleep)
            return node.chosen
        node = Node("c", (), n, -1, rt.preemptions)
        node.chosen = 0
        node.sleep = frozenset(self.sleep) if self.sleep else NO_SLEEP
        node.mark = self._mark()
        if self._fpos < self._nfixed:
            k = self._fpos
            self._fpos = k + 1
            node.fixed = True
            if k < len(self.forced):
                e = self.forced[k]
                if e.kind != "c" or not 0 <= e.value < n:
                    self._diverged(rt, pos, node, None, n)
                node.chosen = e.value
        self.nodes.append(node)
        return node.chosen

    def _diverged(
        self, rt: ControlledRuntime, pos: int, node: Node | Node1, options: Sequence[Task] | None, n: int = 0
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
        nodes: list[Node | Node1] = []
        for kind, tids, n, cur, pre, chosen, op, bt, done, sleep in state["nodes"]:
            nd = Node(str(kind), tuple(int(t) for t in tids), int(n), int(cur), int(pre))
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
            if node.n == 1:
                nodes.pop()  # one enabled task: nothing else to try
                continue
            assert isinstance(node, Node)
            done = node.done
            done.add(node.chosen)
            # the next task to try: the current one (no preemption) if it is still to do, else the lowest id
            # still to do (neither done nor asleep); a loop, not sorted(set differences): this runs at every
            # backtrack
            sleep = node.sleep
            pick = -1
            cur = node.cur
            for p in node.backtrack:
                if p in done or p in sleep:
                    continue
                if p == cur:
                    pick = p
                    break
                if pick < 0 or p < pick:
                    pick = p
            if pick >= 0:
                node.chosen = pick
                node.op = ""
                return True
            nodes.pop()
        return False
