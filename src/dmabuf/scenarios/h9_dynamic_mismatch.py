"""H9: importer and exporter disagree on dynamic-ness -> resv recursion, or exporter calls without the resv.

Daniel Vetter / Christian König, 2019-05-22 (v8 review, CAKMK7uHL6pouBwM3-srbdBUOD1BbWFobiALp3VVu3ohyFEK9bQ):
a dynamic importer is already "holding the lock the exporter wants to take", and a non-dynamic importer calls a
dynamic exporter without the resv. v9 of the series: "always cache when export/importer don't agree on dynamic
handling" (and pin for static importers of a dynamic exporter). v6.2 (Dmitry Osipenko's "Move
dma_buf_map_attachment() to dynamic locking specification") then made one convention for everybody
(dma-buf.c DOC "locking convention"): importers hold the resv for ``dma_buf_map_attachment`` and use the
``_unlocked`` variants otherwise; the exporter's ``pin``/``unpin``/``map_dma_buf``/``unmap_dma_buf`` are
invoked *with* the resv held and must not take it. In v6.12 a mismatched attachment is pinned (dynamic
exporter) and mapped under the resv at attach time, and every later map returns that cached table.

The body picks one of the two mismatches with :func:`dmabuf.choose` (the explorer runs both):

* **A** (dynamic importer, static exporter): the importer attaches and maps holding the resv as its contract
  says. The naive exporter is written for static importers only, the pre-v6.2 way (i915's ``map_dma_buf``
  took the object's ww lock itself): its ``map_dma_buf`` locks the resv -> recursive locking on the resv the
  core already holds for the mismatched attach's map (lockdep's "possible recursive locking", a
  self-deadlock without lockdep). The careful exporter follows the locking convention: ``map_dma_buf`` runs
  with the resv held (asserts it) and never takes it.
* **B** (static importer, dynamic exporter moving concurrently): the naive importer is written for static
  exporters, the pre-v6.2 way: it calls ``dma_buf_map_attachment`` without the resv -> the convention's WARN
  (LOCK-NOT-HELD). The careful importer uses ``dma_buf_map_attachment_unlocked``. Its data is safe in both
  cases because the core pinned the buffer at attach (the exporter's move returns ``-EBUSY``) -- the variant
  ``"careful-ignores-pins"`` (not part of the table; ``"<variant>:A"``/``":B"`` run one step only) lets the exporter move a pinned buffer and shows that
  pin is what keeps the static importer's cached mapping valid.

Per design: the naive and careful drivers are the same under all five designs, because dynamic-ness mismatch
is settled by the shared core (v9 caching/pinning, v6.2 locking convention), not by who tracks mappings; under
option 3 the dynamic importer of step A gets its mapping from ``dma_buf_attach_and_map``, which calls the
exporter's ``map_dma_buf`` under the resv just the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import choose, spawn
from ..buf import DMA_BIDIRECTIONAL, MemoryExporter
from ..buf.core import dma_buf_map_attachment
from .base import Importer, Scenario, finish, move_locked, register

__all__ = ["H9", "ConventionExporter", "LegacyExporter", "StaticImporter"]


class LegacyExporter(MemoryExporter):
    """A static exporter (no pin/unpin) whose ``map_dma_buf`` takes the resv itself: right when only static
    importers called map without any lock (pre-v6.2), wrong once the core calls it with the resv held."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, dynamic=False, **kw)

    def map_dma_buf(self, attach: Any, direction: int) -> Any:
        with self.buf.resv:  # dma_resv_lock(obj->base.resv, NULL)
            return super().map_dma_buf(attach, direction)


class ConventionExporter(LegacyExporter):
    """The same static exporter following the v6.2 convention: ``map_dma_buf`` is called with the resv held."""

    def map_dma_buf(self, attach: Any, direction: int) -> Any:
        self.buf.resv.assert_held()  # dma_resv_assert_held(): the importer (or the core) holds it
        return MemoryExporter.map_dma_buf(self, attach, direction)


class StaticImporter:
    """A static importer (no ``importer_ops``): attach, map, one DMA read, unmap, detach."""

    def __init__(self, buf: Any, *, convention: bool) -> None:
        self.buf = buf
        self.convention = convention

    def run(self) -> bytes:
        attach = self.buf.attach("dev")  # v6.12: pinned and mapped (cached) by the core here
        if self.convention:
            sgt = attach.map_unlocked(DMA_BIDIRECTIONAL)  # takes the resv itself
        else:
            sgt = dma_buf_map_attachment(attach, DMA_BIDIRECTIONAL)  # pre-v6.2: no lock for static importers
        data = sgt.dma_read(0, 4)
        attach.unmap_unlocked(sgt)
        attach.detach()
        return bytes(data)


@register
class H9(Scenario):
    id = "H9"
    title = "dynamic-ness mismatch"
    prop = "no resv recursion (A) and no exporter call without the resv (B) when importer and exporter differ"
    duty = "follow the locking convention whatever the peer's dynamic-ness"
    source = "Daniel Vetter / Christian König 2019-05-22 (v8); v9 'always cache'; v6.2 dynamic locking convention"

    def body(self, policy: str, variant: str) -> Callable[[], None]:
        variant, _, only = variant.partition(":")  # "naive:B": only step B (for tests)
        careful = variant.startswith("careful")
        honour_pins = variant != "careful-ignores-pins"

        def step_a() -> None:
            exp = (ConventionExporter if careful else LegacyExporter)(4, "VRAM", policy=policy, name="A")
            imp = Importer(exp.buf)  # dynamic; under option 3 attach_and_map on its first job
            imp.attach_()  # mismatch: the core maps (and caches) with the resv held
            imp.read_job()  # the importer maps holding the resv
            imp.teardown()
            finish(exp)

        def step_b() -> None:
            exp = MemoryExporter(4, "VRAM", policy=policy, name="A")  # dynamic
            imp = StaticImporter(exp.buf, convention=careful)

            def evict() -> None:  # the dynamic exporter moves whenever it likes (under the resv)
                move_locked(exp, honour_pins=honour_pins)

            t = spawn(evict, name="exporter")
            imp.run()
            t.join()
            finish(exp)

        def run() -> None:
            if only:
                (step_a if only == "A" else step_b)()
                return
            (step_a, step_b)[choose(2, "mismatch: A dynamic importer/static exporter, B static/dynamic")]()

        return run
