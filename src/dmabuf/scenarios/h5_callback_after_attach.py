"""H5: the importer's callback becomes ready only after the attachment is visible to the exporter.

Daniel Vetter, 2018-03-12, on a callback set after attaching: "This doesn't work, it must be set before the
attachment is created, otherwise you race with your invalidate callback." Hence ``dma_buf_dynamic_attach(dmabuf,
dev, importer_ops, importer_priv)``. A driver can still reopen the window: ``importer_priv`` set after the
attach, with a handler that returns early while it is NULL (real instance I4 of design-hazards.md).

Steps: T1 attaches with ``importer_priv = NULL``, maps S1 for its first job, and only then sets
``importer_priv``; T2 (exporter) moves inside that window: the handler finds no importer and returns, S1 is
never retired; T1's second job reads through S1 -> pages the move freed (``StaleMapping``). The careful
importer passes ``importer_priv`` to the attach call itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import spawn
from ..buf import DmaBufAttachOps
from ..kernel.once import READ_ONCE, WRITE_ONCE
from .base import Importer, Scenario, attached, finish, move_locked, register

__all__ = ["H5", "CarefulImporter", "NaiveImporter"]


def _dispatch(attach: Any) -> None:
    """The driver's ``move_notify``: find the importer through ``importer_priv``."""
    imp = READ_ONCE(attach, "importer_priv")
    if imp is None:  # "not initialised yet": nothing to invalidate -- or so the driver thinks
        return
    imp.move_notify(attach)


class NaiveImporter(Importer):
    """Attaches with ``importer_priv = NULL`` and fills it in after its first mapping is set up."""

    priv_at_attach = False

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.ops = DmaBufAttachOps(move_notify=_dispatch)

    def attach_(self) -> Any:
        if self.one_shot:
            return None
        self.attach = self.buf.attach(self.dev, self.ops, self if self.priv_at_attach else None)
        return self.attach

    def attach_and_map(self) -> None:
        self.teardown()
        self.attach, self.sgt = self.buf.attach_and_map(self.dev, self.ops, self if self.priv_at_attach else None)

    def ready(self) -> None:
        """The driver's init is done: publish the importer for the callback."""
        if self.attach is not None and READ_ONCE(self.attach, "importer_priv") is None:
            WRITE_ONCE(self.attach, "importer_priv", self)


class CarefulImporter(NaiveImporter):
    """Passes ``importer_priv`` to the attach call: the callback works from the first moment the
    attachment is on the list."""

    priv_at_attach = True


@register
class H5(Scenario):
    id = "H5"
    title = "callback ready after attach"
    prop = "no move between attach and callback readiness goes unnoticed (no missed notify)"
    duty = "set importer ops/priv in the attach call"
    source = "Daniel Vetter 2018-03-12 -> dma_buf_dynamic_attach(importer_ops)"

    def body(self, policy: str, variant: str) -> Callable[[], None]:
        cls = CarefulImporter if variant == "careful" else NaiveImporter

        def run() -> None:
            exp, imp = attached(policy, cls)

            t = spawn(move_locked, exp, name="exporter")
            imp.read_job()  # first job: maps S1
            imp.ready()  # importer_priv published only now
            imp.read_job()  # second job: reuses S1 unless it was retired
            t.join()
            imp.teardown()
            finish(exp)

        return run
