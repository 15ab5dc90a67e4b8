"""Race detection of the DPOR search (see :mod:`.dpor`): after an execution, every race of a newly
recorded step -- and of the steps the live tasks were about to take when it ended -- becomes a source-set
update of the node before the racing step."""

from __future__ import annotations

from typing import Any

from ...runtime import READ, RELEASE
from ...runtime.controlled import ObservingDecider
from .dpor_events import Ev, Node, Node1

__all__ = ["RaceAnalysis"]


class RaceAnalysis(ObservingDecider):
    """The race half of :class:`.dpor.DPOR`, working on the search's own state (declared here). An
    :class:`ObservingDecider`, so the runtime calls the search directly at every step."""

    nodes: list[Node | Node1]
    events: list[Ev]
    bound: int | None
    stats: dict[str, int]
    _clock: list[int]
    _last_w: dict[Any, int]
    _reads: dict[Any, int]
    _last_ev: list[int]
    _head: dict[Any, int]
    _spawned_at: dict[int, tuple[int, int]]
    _alias: dict[int, tuple[Any, Any]]
    _nslots: int
    _pending: list[tuple[int, Any, str, bool]]
    _scan_node: int
    _fresh_ev: int
    requests: list[tuple[int, tuple[int, ...]]]
    _requested: set[tuple[int, tuple[int, ...]]]

    def _key(self, obj: Any) -> Any:
        """The history key of an object: strings by value (labels), everything else by its slot."""
        if type(obj) is str:
            return obj
        return self._slot_of(obj)

    def _slot_of(self, obj: object) -> int:
        """The slot of ``obj``: the one the recorded events gave the object it stands for (in a replayed
        prefix), or the next free one when this execution touches it first."""
        alias = self._alias
        oid = id(obj)
        a = alias.get(oid)
        if a is not None:
            slot: int = a[0]
            return slot
        slot = self._nslots
        self._nslots = slot + 1
        alias[oid] = (slot, obj)  # keeps obj alive: its id is not reused during the execution
        return slot

    def _races(self) -> None:
        """A source-set update for every race of a step recorded by this execution (the clocks
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
            clock, last = self._clock, self._last_ev
            pred = clock[tid] if tid < len(clock) else 0
            vc = self._clock_of(pred, key, access, len(events))
            prev_obj, prev_task = self._head.get(key, -1), last[tid] if tid < len(last) else -1
            ev = Ev("s", tid, obj, key, access, at, wait=waits, vc=vc, pred=pred, prev_obj=prev_obj, prev_task=prev_task)
            events.append(ev)
            try:
                self._scan(len(events) - 1)
            finally:
                events.pop()

    def _clock_of(self, pred: int, key: Any, access: str, j: int) -> int:
        """The clock of a step taken now as event ``j`` on object ``key``: ``pred`` (its task's clock) joined
        with the clock of the object's last write and, for a write, of the reads since, plus the step itself.
        Clocks are bit sets of event indices, so a join is one ``|``."""
        w = self._last_w.get(key)
        vc = pred if w is None else pred | w
        if access != READ:
            reads = self._reads
            if reads:  # usually empty
                rd = reads.get(key)
                if rd is not None:
                    vc |= rd
        return vc | 1 << j

    def _scan(self, j: int) -> None:
        """Scan the history of step ``j``'s object backwards for the steps it races with."""
        events = self.events
        ev = events[j]
        q = ev.tid
        pred = ev.pred
        i = ev.prev_obj
        while i >= 0:
            ei = events[i]
            nxt = ei.prev_obj
            if ei.tid == q or (ei.access == READ and ev.access == READ):
                i = nxt
                continue
            if pred >> i & 1:  # i happens before j's task got there: ordered, not a race
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

    def _request(self, at: int, initials: tuple[int, ...], once: bool) -> None:
        """Ask the coordinator for a reversal with these initials at fixed node ``at``: it applies the
        source-set rule (and the bound) there, against every branch assigned at the node. ``once``: the
        reversal has an initial the bound allows, so a repeat of it can change nothing (the first one added
        a branch or found one) and is not sent again; a reversal the bound forbids is sent every time, since
        the coordinator counts each one that its node does not cover (``bound_skipped``, as one process
        counts each)."""
        level = sum(1 for nd in self.nodes[:at] if nd.fixed)
        req = (level, initials)
        if once:
            if req in self._requested:
                return
            self._requested.add(req)
        self.requests.append(req)

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
        if node is None or node.kind != "t" or node.n == 1:
            # a node with one enabled task has no alternative (its only initial is already in its backtrack
            # set)
            return
        bt, sl = node.backtrack, node.sleep
        for p in node.tids:
            if p not in bt and p not in sl:
                break
        else:
            return  # every task enabled there is tried or asleep: no reversal can add anything
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
            if k != j and ek.vc >> i & 1:
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
        bounded = False
        for p in initials:
            if p in node.tids:
                if self.bound is not None and node.cur >= 0 and p != node.cur and node.pre + 1 > self.bound:
                    bounded = True
                    continue
                if node.fixed:
                    # a branch of the coordinator's (parallel search): its alternatives are other work
                    # units, so ask for one; the coordinator checks the initials against what it assigned
                    self._request(ei.node, tuple(initials), True)
                else:
                    node.backtrack.add(p)
                return
        if bounded and node.fixed:
            # whether one process would count this depends on the branches assigned at the node, which only
            # the coordinator knows (this unit's node has its own branch and those before it)
            self._request(ei.node, tuple(initials), False)
        elif bounded:
            # the reversal needs a preemption the bound does not allow. A trace equivalent to it may still be
            # within the bound (its representative here just preempts more): counted, and said in the notes
            self.stats["bound_skipped"] += 1
