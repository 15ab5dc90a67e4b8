"""Every cell of the H1-H5 rows of ``dmabuf check``, each with the reasoning behind its expected verdict.

Verdicts are computed once per (scenario, design) for the module (DPOR, default budget). A design whose
policy module has not landed is skipped with the module's name.
"""

from __future__ import annotations

import pytest
from _cells import DUTY, NA, SAFE, check_cell, check_counterexample

from dmabuf.scenarios import runner

# (hazard, design) -> (expected verdict, why). The why cites the thread / kernel documentation.
EXPECTED: dict[tuple[str, str], tuple[str, str]] = {
    # ---- H1: notify on an attachment without a mapping
    # Mainline notifies every dynamic attachment ("you get the callback even when there's no mapping to
    # invalidate for you", Daniel 2019-06-25; v15 doc: move_notify is per attachment), so a handler that
    # assumes a mapping unmaps NULL: the importer must filter (Daniel's option 1 "filter out invalidates that
    # aren't for that specific importer ... not yet mapped").
    ("H1", "importer-tracks"): (DUTY, "option 1: every dynamic attachment is notified"),
    # Option 2: "dma-buf.c keeps track of all the mappings" -- only attachments with a live mapping are
    # notified, so the naive handler never sees an unmapped attachment.
    ("H1", "core-tracks-mappings"): (SAFE, "option 2: unmapped attachments are not notified"),
    # Option 3: "dma_buf_attach_and_map_sg, which does both, together, atomically" -- an attachment without
    # a mapping cannot exist, so the hazard cannot be expressed.
    ("H1", "one-shot-attachments"): (NA, "option 3: no attachment without its mapping"),
    # Option 4: "The exporter keeps track of which attachments have a mapping, and invalidates them
    # individually" -- an unmapped attachment is never invalidated.
    ("H1", "exporter-tracks"): (SAFE, "option 4: exporter notifies mapped attachments only"),
    # Option 5 only filters the caller's own map (v2 re-entry avoidance); an attachment that never mapped
    # is still notified, exactly as in mainline.
    ("H1", "core-filters-reentry"): (DUTY, "option 5 filters re-entry only, not unmapped attachments"),
    # ---- H2: notify re-entering the importer's own map
    # v11 "drop automatically re-entry avoidance": mainline sends the move made inside map_dma_buf back to
    # the mapping attachment; Christian: "In the importer I need to ignore invalidations which are caused by
    # creating a mapping" -- a handler that re-maps eagerly leaks the nested mapping.
    ("H2", "importer-tracks"): (DUTY, "v11 dropped re-entry avoidance"),
    # Option 2: Daniel's steps 1-6 -- "conceptually from the dma-buf pov, _this_ is where the mapping starts
    # to exist" (after the exporter returns), so an attachment mid-first-map has no live mapping and hears
    # nothing.
    ("H2", "core-tracks-mappings"): (SAFE, "the mapping exists only after map_dma_buf returns"),
    # Option 3: the attachment joins the list together with its mapping; a move inside attach_and_map cannot
    # reach it.
    ("H2", "one-shot-attachments"): (NA, "option 3: the attachment is not on the list during its map"),
    # Option 4: the exporter notifies attachments it knows to be mapped; the one being mapped is not yet.
    ("H2", "exporter-tracks"): (SAFE, "option 4: not yet mapped, not notified"),
    # Option 5 is precisely the v2 re-entry avoidance ("prevent sending this event to the caller").
    ("H2", "core-filters-reentry"): (SAFE, "option 5 filters the caller"),
    # ---- H3: map recorded after the resv was dropped
    # Daniel in the seed thread: races between invalidate and map are solved "by being really careful when
    # you publish a new $thing ... quench all these races with the ww_mutex"; v15 doc: "no mapping is
    # created concurrently with an ongoing move". Under option 1 only the importer tracks, so a late
    # record misses the notify -> DMA to freed pages.
    ("H3", "importer-tracks"): (DUTY, "only the importer's tracking exists"),
    # Finding: option 2 records the mapping in the core, but the importer still keeps its own pointer to
    # the mapping it uses; a late unlocked publication races with its own handler's clear and loses the
    # mapping (the core's detach check reports it never unmapped). The core's record does not remove the
    # duty of publishing under the lock.
    ("H3", "core-tracks-mappings"): (DUTY, "finding: the importer's own pointer still races"),
    # Option 3: attach_and_map returns the mapping after dropping the resv, so every importer records late,
    # but the core's kill flag (checked under the resv when a job is submitted) is the record that counts.
    ("H3", "one-shot-attachments"): (SAFE, "option 3: the core's kill flag is the record"),
    # Option 4: the exporter tracks mapped attachments but "importer would unmap from its ->invalidate
    # callback"; an importer that has not recorded the mapping cannot unmap it there (the policy WARNs).
    ("H3", "exporter-tracks"): (DUTY, "option 4: importer must unmap in the callback"),
    # Option 5 changes nothing for a racing (not re-entrant) move.
    ("H3", "core-filters-reentry"): (DUTY, "as option 1"),
    # ---- H4: list walk vs attach/detach
    # Daniel 2018-03-12: "require importers to hold the reservation object while attaching/detaching.
    # Otherwise the list walk above could go boom" -- fixed in v2 by the core: dma_buf_dynamic_attach and
    # dma_buf_detach take the resv themselves (kernel-semantics.md 1.2), and every design inherits that core.
    ("H4", "importer-tracks"): (SAFE, "the core takes the resv in attach/detach"),
    ("H4", "core-tracks-mappings"): (SAFE, "the core takes the resv in attach/detach"),
    ("H4", "one-shot-attachments"): (SAFE, "attach_and_map/unmap_and_detach take the resv"),
    ("H4", "exporter-tracks"): (SAFE, "the core takes the resv in attach/detach"),
    ("H4", "core-filters-reentry"): (SAFE, "the core takes the resv in attach/detach"),
    # ---- H5: callback ready only after the attachment is visible
    # Daniel 2018-03-12: "it must be set before the attachment is created, otherwise you race with your
    # invalidate callback" -> dma_buf_dynamic_attach(importer_ops, importer_priv). Option 1 relies entirely
    # on the callback: a dropped notification leaves a stale mapping in use.
    ("H5", "importer-tracks"): (DUTY, "only the callback tells the importer"),
    # Option 2: the core invalidates the mapping itself on the move; the importer checks the core's flag
    # when it submits work (its contract) and re-maps, whatever its callback did.
    ("H5", "core-tracks-mappings"): (SAFE, "the core invalidates the mapping itself"),
    # Option 3: the move kills the attachment in the core; the next job sees it dead and re-attaches.
    ("H5", "one-shot-attachments"): (SAFE, "the core kills the attachment itself"),
    # Option 4: the exporter frees old pages after the fences but expects the importer to unmap from the
    # callback -- a callback that drops the notification leaves the mapping held (WARN) and in use.
    ("H5", "exporter-tracks"): (DUTY, "option 4 needs the callback to unmap"),
    ("H5", "core-filters-reentry"): (DUTY, "as option 1"),
}


@pytest.mark.parametrize(("sid", "policy"), sorted(EXPECTED), ids=[f"{s}-{p}" for s, p in sorted(EXPECTED)])
def test_cell(sid: str, policy: str) -> None:
    check_cell(EXPECTED, sid, policy)


def test_every_h1_h5_cell_is_asserted() -> None:
    assert {(s, p) for s in ("H1", "H2", "H3", "H4", "H5") for p in runner.DESIGNS} == set(EXPECTED)


# ---- what the counterexamples are (the oracle names the right failure)
@pytest.mark.parametrize(
    ("sid", "kind", "text"),
    [
        ("H1", "kernel-warning", "dma_buf_unmap_attachment: NULL"),
        ("H2", "exception", "mapping leak"),
        ("H3", "exception", "stale mapping"),
        ("H5", "exception", "stale mapping"),
    ],
)
def test_mainline_counterexamples(sid: str, kind: str, text: str) -> None:
    check_counterexample(sid, kind, text)
