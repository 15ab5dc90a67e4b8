"""Every cell of the H6-H10 rows of ``dmabuf check``, each with the reasoning behind its expected verdict.

Verdicts are computed once per (scenario, design) for the module (DPOR, default budget). A design whose
policy module has not landed is skipped with the module's name.
"""

from __future__ import annotations

from typing import Any

import pytest
from _cells import DUTY, SAFE, check_cell, check_counterexample

import dmabuf
from dmabuf.scenarios import get_scenario, runner

# (hazard, design) -> (expected verdict, why). The why cites the thread / kernel documentation.
EXPECTED: dict[tuple[str, str], tuple[str, str]] = {
    # ---- H6: an invalidated mapping unmapped while the importer's job still DMAs through it
    # Christian 2018-03-13: the sg list "stays alive until it is explicitly destroyed by the importer using
    # dma_buf_unmap_attachment() which in turn is only allowed after all fences have signaled"; Daniel: "You
    # can't throw the sg list away before the dma stopped". Mainline's move_notify is only a notification
    # ("Mappings stay valid"), the unmap is the importer's and nothing delays it.
    ("H6", "importer-tracks"): (DUTY, "option 1: the importer's unmap is immediate and final"),
    # Option 2: "the invalidate is one-shot (i.e. once unmapped you can never use the same mapping again)" --
    # the core forbids *new* use of an invalidated mapping, but unmapping stays the importer's call and the
    # core does not delay it past the jobs in flight.
    ("H6", "core-tracks-mappings"): (DUTY, "option 2: the core invalidates, the importer still unmaps"),
    # Option 3: the dead attachment can only go with unmap_and_detach outside the resv -- through a release
    # worker (Daniel in the seed thread: "a small helper which puts all these unmaps onto a list with a
    # worker"); a worker that does not wait for the jobs tears the table down under the running DMA.
    ("H6", "one-shot-attachments"): (DUTY, "option 3: the deferred teardown must still wait for the jobs"),
    # Option 4: "importer would unmap from it's ->invalidate callback, but exporter needs to obey the current
    # fences attached to the resv_obj" -- the immediate unmap *is* the contract; the exporter keeps the pages
    # and the table stays usable for the jobs in flight.
    ("H6", "exporter-tracks"): (SAFE, "option 4: the exporter delays the free past the fences"),
    # Option 5 filters only re-entry; a racing move is handled as in mainline.
    ("H6", "core-filters-reentry"): (DUTY, "as option 1"),
    # ---- H7: a new mapping used before the move fence signalled
    # invalidate_mappings v1/v2 doc: "New mappings can be created immediately, but can't be used before the
    # exclusive fence in the dma_bufs reservation object is signaled"; v6.12: the core waits for the KERNEL
    # fences only for *static* importers (__map_dma_buf), dynamic importers wait themselves (RDMA's
    # ib_umem_dmabuf_map_pages: "Wait for the exporter to finish the migration"). No design changes who waits:
    ("H7", "importer-tracks"): (DUTY, "dynamic importers wait for the move fence themselves"),
    ("H7", "core-tracks-mappings"): (DUTY, "the core tracks mappings, not the copy behind them"),
    # option 3's dma_buf_attach_and_map maps a dynamic importer exactly like dma_buf_map_attachment: no wait
    ("H7", "one-shot-attachments"): (DUTY, "attach_and_map does not wait for the KERNEL fences"),
    # option 4 delays freeing the *old* pages; the *new* ones are still being filled
    ("H7", "exporter-tracks"): (DUTY, "a delayed free protects the old pages, not the new ones"),
    ("H7", "core-filters-reentry"): (DUTY, "as option 1"),
    # ---- H8: double invalidate
    # Daniel, option 1: "Importer needs to keep track of all its mappings and filter out invalidates that
    # aren't for that specific importer (either because already invalidated, or not yet mapped, or
    # whatever). Feels fragile." Mainline notifies every dynamic attachment on every move.
    ("H8", "importer-tracks"): (DUTY, "option 1: every move notifies every attachment"),
    # Option 2: the core notifies only attachments with a live mapping not yet invalidated ("the
    # invalidate is one-shot"), so the second move is not sent for S1.
    ("H8", "core-tracks-mappings"): (SAFE, "option 2: invalidation is one-shot per mapping"),
    # Option 3: "you attach_and_map_sg, then you get an invalidate, after that the attachment is dead" --
    # "I think this would neatly solve the "you've invalidated this already" issue".
    ("H8", "one-shot-attachments"): (SAFE, "option 3: a killed attachment is never notified again"),
    # Option 4: Daniel doubted it ("Not sure this would actually solve anything because of the
    # double-invalidate thing"); but with the importer unmapping from the callback, the attachment holds no
    # mapping afterwards and the exporter does not notify it again -- the unmap-in-callback rule is what solves it.
    ("H8", "exporter-tracks"): (SAFE, "option 4: unmapped in the callback, not notified again"),
    ("H8", "core-filters-reentry"): (DUTY, "as option 1: the filter covers re-entry only"),
    # ---- H9: dynamic-ness mismatch (A: dynamic importer + static exporter locking in map_dma_buf;
    # B: static importer calling map without the resv). 2019-05-22: a dynamic importer "holding the lock
    # the exporter wants to take"; v9 "always cache when export/importer don't agree on dynamic handling";
    # v6.2 dma-buf.c DOC "locking convention": map_dma_buf is invoked with the resv held (must not take it),
    # importers hold it for dma_buf_map_attachment or use the _unlocked variant. That is the shared core, so
    # every design gets the same verdict: drivers written for a peer of their own kind fail (recursive
    # locking / lock-not-held WARN), convention-following drivers are clean -- including B's data, which the
    # core's pin at attach protects against the dynamic exporter's concurrent move.
    ("H9", "importer-tracks"): (DUTY, "v6.2 locking convention, shared core"),
    ("H9", "core-tracks-mappings"): (DUTY, "v6.2 locking convention, shared core"),
    ("H9", "one-shot-attachments"): (DUTY, "attach_and_map calls map_dma_buf under the resv too"),
    ("H9", "exporter-tracks"): (DUTY, "v6.2 locking convention, shared core"),
    ("H9", "core-filters-reentry"): (DUTY, "v6.2 locking convention, shared core"),
    # ---- H10: revocation (Leon Romanovsky 2026: lock; revoke; dma_buf_invalidate_mappings();
    # dma_resv_wait_timeout(BOOKKEEP); wait for the importers to unmap) with an INVAL_AND_HOLD exporter and an
    # importer whose callback defers the unmap to an async release worker (the fake_gpu_dmabuf harness).
    # Option 1: only the importer's unmap tells the exporter the mappings are gone, so it waits for unmaps,
    # and the worker needs the resv the exporter holds -> deadlock; "callback must complete invalidation
    # synchronously under the already-held resv" (design-hazards.md H10).
    ("H10", "importer-tracks"): (DUTY, "option 1: revocation waits for the importer's unmap"),
    # Option 2: after move_notify the core refuses new use of every invalidated mapping, and the fence wait
    # covers the jobs in flight: revocation is complete without the unmaps, which may come later.
    ("H10", "core-tracks-mappings"): (SAFE, "option 2: the core's invalidation completes the revocation"),
    # Option 3: the move kills the attachment in the core; the importer's teardown runs later anyway
    # (unmap_and_detach takes the resv, the callback could not do it).
    ("H10", "one-shot-attachments"): (SAFE, "option 3: the killed attachment is the revocation"),
    # Option 4: "importer would unmap from it's ->invalidate callback" -- the contract already is the duty.
    ("H10", "exporter-tracks"): (SAFE, "option 4: importers unmap in the callback by contract"),
    ("H10", "core-filters-reentry"): (DUTY, "as option 1"),
}


@pytest.mark.parametrize(("sid", "policy"), sorted(EXPECTED), ids=[f"{s}-{p}" for s, p in sorted(EXPECTED)])
def test_cell(sid: str, policy: str) -> None:
    check_cell(EXPECTED, sid, policy)


def test_every_h6_h10_cell_is_asserted() -> None:
    assert {(s, p) for s in ("H6", "H7", "H8", "H9", "H10") for p in runner.DESIGNS} == set(EXPECTED)


# ---- what the counterexamples are (the oracle names the right failure)
@pytest.mark.parametrize(
    ("sid", "kind", "text"),
    [
        # the importer's job reads through the table its own handler just unmapped
        ("H6", "exception", "after it was unmapped by dma_buf_unmap_attachment in task 'exporter'"),
        # DMA through the new mapping before the move's copy reached the page
        ("H7", "exception", "stale content"),
        # the deferred teardown unmaps S1 once per notification
        ("H8", "exception", "unmapping a mapping twice is a double free"),
        # step A (choose 0): the legacy exporter's dma_resv_lock inside the core's locked map at attach
        ("H9", "kernel-warning", "possible recursive locking"),
        # exporter waits for the unmap holding the resv; the release worker waits for the resv
        ("H10", "deadlock", "release waits to lock"),
    ],
)
def test_mainline_counterexamples(sid: str, kind: str, text: str) -> None:
    check_counterexample(sid, kind, text)


def _explore(sid: str, policy: str, variant: str) -> Any:
    return dmabuf.explore(
        get_scenario(sid).body(policy, variant),
        strategy="dpor",
        preemption_bound=3,
        max_executions=3000,
        time_budget=8.0,
        database=None,
    )


def test_h9_step_b_naive_is_the_locking_convention() -> None:
    # 2019-05-22: "a non-dynamic importer calling a dynamic exporter without the resv"; v6.12 WARNs for it
    # (dma_resv_assert_held in dma_buf_map_attachment, DOC "locking convention" 1.)
    r = _explore("H9", "importer-tracks", "naive:B")
    assert not r.ok and r.failure.kind == "kernel-warning"
    assert "dma_buf_map_attachment requires the reservation lock" in r.failure.message


def test_h9_step_b_data_is_safe_because_the_core_pins() -> None:
    # v9 "always cache when export/importer don't agree" + the pin at attach (kernel-semantics 1.2): with the
    # careful static importer the concurrent move is refused (-EBUSY) and the search is clean ...
    r = _explore("H9", "importer-tracks", "careful:B")
    assert r.ok and r.complete
    # ... and an exporter that moves a pinned buffer anyway turns the cached mapping stale: the pin is
    # what keeps a static importer's mapping valid
    bad = _explore("H9", "importer-tracks", "careful-ignores-pins:B")
    assert not bad.ok and bad.failure.kind == "exception" and "stale mapping" in bad.failure.message


def test_h9_both_steps_are_explored() -> None:
    # the naive body's counterexample is step A; step A alone fails the same way, so both choose() branches
    # are real and the careful search (clean, complete) covered both
    r = _explore("H9", "importer-tracks", "naive:A")
    assert not r.ok and "possible recursive locking" in r.failure.message
    c = _explore("H9", "importer-tracks", "careful")
    assert c.ok and c.complete
