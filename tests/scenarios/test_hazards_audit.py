"""Audit of the hazard scenarios against ``design-hazards.md``: the documented steps and properties that the
cell tests (test_h1_h5.py, test_h6_h10.py) do not reach.

Each test is black-box: it runs a scenario's drivers (or the scenario itself) in the explorer and asserts the
documented step happened or the documented property holds / is broken for the documented reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import dmabuf
from dmabuf.buf import DMA_BIDIRECTIONAL, DmaBufAttachOps, MemoryExporter
from dmabuf.errors import MappingInvalidated
from dmabuf.policies import get_policy
from dmabuf.resv import Usage
from dmabuf.scenarios import contract_of, get_scenario, runner
from dmabuf.scenarios import h1_notify_without_mapping as h1
from dmabuf.scenarios import h2_notify_during_map as h2
from dmabuf.scenarios import h3_map_recorded_late as h3
from dmabuf.scenarios import h5_callback_after_attach as h5
from dmabuf.scenarios.base import attached, finish, make_fence, move_locked

NOT_ONE_SHOT = [p for p in runner.DESIGNS if p != "one-shot-attachments"]


def _explore(body: Callable[[], None]) -> Any:
    """The runner's default search (DPOR, <= 3 preemptions, 3000 executions, 8 s)."""
    b = runner.Budget()
    return dmabuf.explore(body, strategy="dpor", preemption_bound=b.preemption_bound,
                          max_executions=b.max_executions, time_budget=b.time_budget, database=None)


# ---------------------------------------------------------------------- H1
def _h1_two_moves(policy: str, cls: type) -> Callable[[], None]:
    def run() -> None:
        exp, imp = attached(policy, cls)
        imp.read_job()  # mapped
        move_locked(exp)  # notify #1: the handler retires S1 -> the importer's mapping is invalidated
        move_locked(exp, "VRAM")  # notify #2 reaches the handler in the invalidated state (options 1, 5)
        imp.read_job()
        imp.teardown()
        finish(exp)

    return run


@pytest.mark.parametrize("policy", NOT_ONE_SHOT)
def test_h1_handler_is_total_over_the_invalidated_state(policy: str) -> None:
    """design-hazards H1, property "handler must be total over {unmapped, mapped, invalidated}": the shipped
    scenario races one move with the first map (unmapped/mapped); here the second notification arrives after
    the first one invalidated the mapping. Where the design notifies such attachments the naive handler
    unmaps NULL (the kernel's WARN), the careful one is clean; elsewhere both are clean."""
    naive = _explore(_h1_two_moves(policy, h1.NaiveImporter))
    careful = _explore(_h1_two_moves(policy, h1.CarefulImporter))
    assert careful.ok and careful.complete
    if contract_of(policy).notifies_unmapped:
        assert not naive.ok and naive.failure.kind == "kernel-warning", naive.failure
        assert "dma_buf_unmap_attachment: NULL attachment or sg_table" in naive.failure.message
    else:
        assert naive.ok and naive.complete, naive.failure and naive.failure.story()


# ---------------------------------------------------------------------- H2
@pytest.mark.parametrize("policy", NOT_ONE_SHOT)
def test_h2_mapping_returned_is_not_invalidated_by_the_nested_call(policy: str) -> None:
    """design-hazards H2, property "the mapping returned must not be marked invalid by the nested call": the
    careful importer's map migrates the buffer (VRAM -> GTT) and re-enters move_notify; the table it gets is
    of the new placement, not invalidated by the core, and usable for a job."""
    seen: list[str] = []

    def run() -> None:
        exp, imp = attached(policy, h2.CarefulImporter, h2.MigratingExporter)
        sgt, job = imp.submit()
        assert exp.bo.placement.domain.name == "GTT", "the map did not migrate: no re-entry exercised"
        assert sgt.invalidated_by is None, f"the nested notification invalidated the new mapping: {sgt.invalidated_by}"
        assert sgt.placement is exp.bo.placement
        sgt.dma_read(0, 4)
        job.signal()
        seen.append(exp.bo.placement.domain.name)
        imp.teardown()
        finish(exp)

    r = _explore(run)
    assert r.ok and r.complete, r.failure and r.failure.story()
    assert seen and set(seen) == {"GTT"}


class _RelockingImporter(h2.CarefulImporter):
    """A handler that takes the resv itself (design-hazards H2 step 3: "or re-locks resv")."""

    def move_notify(self, attach: Any) -> None:
        with self.buf.resv:
            super().move_notify(attach)


@pytest.mark.parametrize("policy", NOT_ONE_SHOT)
def test_h2_handler_relocking_the_resv_is_recursion(policy: str) -> None:
    """design-hazards H2, property RECURSION under resv: the notification sent back into the importer's own
    map call finds the resv held by the importer itself; a handler that re-locks it is reported as recursive
    locking. Only the designs that deliver the re-entrant notification (the H2 'driver duty' column,
    importer-tracks) can hit it."""

    def run() -> None:
        exp, imp = attached(policy, _RelockingImporter, h2.MigratingExporter)
        imp.read_job()
        imp.teardown()
        finish(exp)

    r = _explore(run)
    if runner.verdict("H2", policy).kind == "driver duty":
        assert not r.ok and r.failure.kind == "kernel-warning", r.failure
        assert "possible recursive locking" in r.failure.message
    else:
        assert r.ok and r.complete, r.failure and r.failure.story()


# ---------------------------------------------------------------------- H3, H5: the missed notify behind the stale map
def _naive_stale_map(sid: str) -> Any:
    """The naive driver's counterexample of scenario ``sid`` under importer-tracks: a stale mapping."""
    f = _explore(get_scenario(sid).body("importer-tracks", "naive")).failure
    assert f is not None and f.kind == "exception" and "stale mapping" in f.message
    return f


def _assert_replays_to(body: Callable[[], None], f: Any) -> None:
    """``f``'s schedule, replayed on ``body``, fails the same way (kind and message)."""
    again = dmabuf.replay(body, f.schedule)
    assert again is not None and again.kind == f.kind and again.message == f.message


class _H3Recording(h3.NaiveImporter):
    log: list[Any] = []

    def move_notify(self, attach: Any) -> None:
        self.log.append(self._sgt)  # plain read: no scheduling point, the replay stays the same
        super().move_notify(attach)


def test_h3_stale_map_follows_a_missed_notify() -> None:
    """design-hazards H3 steps 2-3: in the naive counterexample the exporter's move_notify found no S1 in the
    importer's tracking (nothing invalidated), and the importer then used S1: MISSED-NOTIFY -> STALE-MAP.
    Replays the shipped counterexample with a handler that only records what it saw."""
    f = _naive_stale_map("H3")

    def run() -> None:  # the H3 body, with the recording importer
        exp, imp = attached("importer-tracks", _H3Recording)
        t = dmabuf.spawn(move_locked, exp, name="exporter")
        imp.read_job()
        t.join()
        imp.teardown()
        finish(exp)

    _H3Recording.log = []
    _assert_replays_to(run, f)
    assert _H3Recording.log == [None], "the notify was not missed: the importer had recorded a mapping"


class _H5Recording(h5.NaiveImporter):
    log: list[Any] = []

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)

        def dispatch(attach: Any) -> None:
            self.log.append(attach.importer_priv)  # plain read: the replay stays the same
            h5._dispatch(attach)

        self.ops = DmaBufAttachOps(move_notify=dispatch)


def test_h5_stale_map_follows_a_notify_before_the_callback_was_ready() -> None:
    """design-hazards H5 steps 1-3: in the naive counterexample the move's notification reached the attachment
    while its callback had no importer yet (skipped), and the importer then kept using its earlier mapping:
    MISSED-NOTIFY -> STALE-MAP."""
    f = _naive_stale_map("H5")

    def run() -> None:  # the H5 body, with the recording importer
        exp, imp = attached("importer-tracks", _H5Recording)
        t = dmabuf.spawn(move_locked, exp, name="exporter")
        imp.read_job()
        imp.ready()
        imp.read_job()
        t.join()
        imp.teardown()
        finish(exp)

    _H5Recording.log = []
    _assert_replays_to(run, f)
    assert _H5Recording.log == [None], "the notification was not dropped for want of the callback's importer"


# ---------------------------------------------------------------------- H4
@pytest.mark.parametrize("policy", ["importer-tracks", "core-filters-reentry"])
def test_h4_pre_v2_detach_is_found_as_use_after_free(policy: str) -> None:
    """design-hazards H4 steps 1-3 (T2 detaches with only dmabuf->lock, T1's walk under the resv follows the
    freed node), property UAF: the scenario's "pre-v2" variant is found, within the default bound, and its
    schedule replays to the same failure. (The naive variant being clean is then the core's resv in detach.)"""
    scn = get_scenario("H4")
    r = _explore(scn.body(policy, "pre-v2"))
    assert not r.ok and r.failure.kind == "exception", r.failure
    assert "use after free" in r.failure.message and "move_notify on" in r.failure.message
    _assert_replays_to(scn.body(policy, "pre-v2"), r.failure)


# ---------------------------------------------------------------------- every duty cell beyond mainline
# (hazard, design) -> (failure kind, text naming the property). The mainline (importer-tracks) counterexamples
# are checked by test_h1_h5/test_h6_h10; these are the other designs' naive counterexamples.
OTHER_DUTIES: dict[tuple[str, str], tuple[str, str]] = {
    ("H1", "core-filters-reentry"): ("kernel-warning", "dma_buf_unmap_attachment: NULL"),
    # finding (docs/writing-a-scenario.md): the core knows S1, the importer's own late pointer is lost
    ("H3", "core-tracks-mappings"): ("kernel-warning", "detach with live mappings"),
    ("H3", "exporter-tracks"): ("kernel-warning", "the importer must unmap from move_notify"),
    ("H3", "core-filters-reentry"): ("exception", "stale mapping"),
    ("H5", "exporter-tracks"): ("kernel-warning", "the importer must unmap from move_notify"),
    ("H5", "core-filters-reentry"): ("exception", "stale mapping"),
    ("H6", "core-tracks-mappings"): ("exception", "after it was unmapped by dma_buf_unmap_attachment"),
    ("H6", "one-shot-attachments"): ("exception", "after it was unmapped by dma_buf_unmap_attachment"),
    ("H6", "core-filters-reentry"): ("exception", "after it was unmapped by dma_buf_unmap_attachment"),
    ("H7", "core-tracks-mappings"): ("exception", "stale content"),
    ("H7", "one-shot-attachments"): ("exception", "stale content"),
    ("H7", "exporter-tracks"): ("exception", "stale content"),
    ("H7", "core-filters-reentry"): ("exception", "stale content"),
    ("H8", "core-filters-reentry"): ("exception", "unmapping a mapping twice is a double free"),
    ("H9", "core-tracks-mappings"): ("kernel-warning", "possible recursive locking"),
    ("H9", "one-shot-attachments"): ("kernel-warning", "possible recursive locking"),
    ("H9", "exporter-tracks"): ("kernel-warning", "possible recursive locking"),
    ("H9", "core-filters-reentry"): ("kernel-warning", "possible recursive locking"),
    ("H10", "core-filters-reentry"): ("deadlock", "release waits to lock"),
}


@pytest.mark.parametrize(("sid", "policy"), sorted(OTHER_DUTIES), ids=[f"{s}-{p}" for s, p in sorted(OTHER_DUTIES)])
def test_other_designs_counterexamples_name_the_property_and_replay(sid: str, policy: str) -> None:
    """design-hazards H1-H10 (each row's property): under every design where a hazard is a driver duty, the
    naive driver fails for the hazard's reason (kind and message), and its schedule string replays to the same
    failure, twice (deterministic)."""
    scn = get_scenario(sid)
    r = _explore(scn.body(policy, "naive"))
    kind, text = OTHER_DUTIES[(sid, policy)]
    assert not r.ok and r.failure.kind == kind and text in r.failure.message, r.failure
    for _ in range(2):
        again = dmabuf.replay(scn.body(policy, "naive"), r.failure.schedule)
        assert again is not None and again.kind == kind and again.message == r.failure.message


def test_other_duties_are_every_duty_cell_beyond_mainline() -> None:
    """design-hazards H1-H10: OTHER_DUTIES lists exactly the non-mainline 'driver duty' cells the cell tests
    expect (so no duty cell's counterexample goes unchecked)."""
    import test_h1_h5
    import test_h6_h10

    expected = {**test_h1_h5.EXPECTED, **test_h6_h10.EXPECTED}
    duties = {k for k, (v, _) in expected.items() if v == "driver duty" and k[1] != "importer-tracks"}
    assert duties == set(OTHER_DUTIES)


# ---------------------------------------------------------------------- the contracts the naive drivers read
def _probe(policy: str) -> dict[str, bool]:
    """What the policy actually does, measured through the public API."""
    out: dict[str, bool] = {}

    def run() -> None:
        one_shot = policy == "one-shot-attachments"
        # notified without a mapping?
        exp = MemoryExporter(4, "VRAM", policy=policy, name="P")
        heard: list[Any] = []
        a = exp.buf.attach("gpu", DmaBufAttachOps(move_notify=heard.append), None)
        move_locked(exp)
        out["notifies_unmapped"] = bool(heard)
        a.detach()
        # does the core mark a notified mapping invalid, and kill the attachment?
        seen: list[bool] = []
        if one_shot:
            a, sgt = exp.buf.attach_and_map("gpu", DmaBufAttachOps(move_notify=lambda at: seen.append(
                sgt.invalidated_by is not None)), None)
        else:
            def handler(at: Any) -> None:
                seen.append(sgt.invalidated_by is not None)
                at.unmap(sgt)

            a = exp.buf.attach("gpu", DmaBufAttachOps(move_notify=handler), None)
            with exp.buf.resv:
                sgt = a.map(DMA_BIDIRECTIONAL)
        move_locked(exp, "VRAM")
        out["core_invalidates"] = seen == [True]
        with exp.buf.resv:
            try:
                again = a.map(DMA_BIDIRECTIONAL)
                a.unmap(again)
                out["kills_attachment"] = False
            except MappingInvalidated:
                out["kills_attachment"] = True
        if one_shot:
            a.unmap_and_detach(sgt)
        else:
            a.detach()
        # the exporter's delayed free
        with exp.buf.resv:
            job = make_fence()
            exp.buf.resv.reserve_fences(1)
            exp.buf.resv.add_fence(job, Usage.READ)
            out["exporter_delays_free"] = bool(get_policy(policy).free_old_after(exp.buf))
        job.signal()
        finish(exp)
        # re-entry: is the attachment inside its own (first) map call notified of the move made there?
        exp2 = h2.MigratingExporter(4, "VRAM", policy=policy, name="Q")
        heard2: list[Any] = []
        if one_shot:
            b, s2 = exp2.buf.attach_and_map("nic", DmaBufAttachOps(move_notify=heard2.append), None)
            b.unmap_and_detach(s2)
        else:
            b = exp2.buf.attach("nic", DmaBufAttachOps(move_notify=heard2.append), None)
            with exp2.buf.resv:
                b.unmap(b.map(DMA_BIDIRECTIONAL))
            b.detach()
        out["notified_in_own_map"] = bool(heard2)
        finish(exp2)

    r = _explore(run)
    assert r.ok, r.failure and r.failure.story()
    return out


@pytest.mark.parametrize("policy", runner.DESIGNS)
def test_contract_matches_the_policy(policy: str) -> None:
    """The policy matrix (all H1-H10 rows): the naive drivers decide their duties from ``contract_of(policy)``
    (a table of defaults by name), so each flag must match what the policy's hooks do, as its docstring
    claims: notified without a mapping (H1), core invalidation (H3/H5/H10), killed attachments (option 3),
    re-entry into the caller's own map (H2), the exporter's delayed free (H6)."""
    c = contract_of(get_policy(policy))
    got = _probe(policy)
    assert got["notifies_unmapped"] == c.notifies_unmapped, got
    assert got["core_invalidates"] == c.core_invalidates, got
    assert got["kills_attachment"] == c.kills_attachment, got
    assert got["exporter_delays_free"] == c.exporter_delays_free, got
    assert got["notified_in_own_map"] == (c.notifies_unmapped and not c.filters_reentry), got
