"""H4: the exporter's walk of the attachment list racing with attach and detach.

Daniel Vetter, 2018-03-12: "To make the locking work I think we also need to require importers to hold the
reservation object while attaching/detaching. Otherwise the list walk above could go boom." Fixed in v2 of the
invalidate_mappings series; in v6.12 ``dma_buf_dynamic_attach`` and ``dma_buf_detach`` take the resv
themselves around ``list_add``/``list_del`` (kernel-semantics.md 1.2), and ``dma_buf_move_notify`` walks the
list with the resv held (1.4).

Steps: importer A is attached and mapped; the exporter moves the buffer and walks the list calling
``move_notify``; concurrently importer B attaches and importer A tears down (unmap, detach). Nothing here is a
driver's duty: the walk and the list changes are serialised by the resv the *core* takes, so the naive and the
careful drivers are the same code. Property: no notification reaches a detached attachment, no list corruption.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import spawn
from ..buf import MemoryExporter
from .base import Importer, Scenario, finish, move_locked, register

__all__ = ["H4", "CarefulImporter", "NaiveImporter"]


class NaiveImporter(Importer):
    """Detaches whenever it is done (``dma_buf_detach`` takes the resv itself)."""

    def move_notify(self, attach: object) -> None:
        if getattr(attach, "detached", False):
            raise AssertionError(f"{self.name}: move_notify on an attachment that was already detached")
        super().move_notify(attach)


class CarefulImporter(NaiveImporter):
    """Nothing to add: the core serialises list changes with the walk."""


@register
class H4(Scenario):
    id = "H4"
    title = "list walk vs attach/detach"
    prop = "the exporter's notification walk never sees an attachment being added or freed"
    duty = "none (the core takes the resv in attach/detach)"
    source = "Daniel Vetter 2018-03-12 (invalidate_mappings v1 review), fixed in v2"

    def body(self, policy: str, variant: str) -> Callable[[], None]:
        cls = CarefulImporter if variant == "careful" else NaiveImporter

        def run() -> None:
            exp = MemoryExporter(4, "VRAM", policy=policy, name="A")
            a = cls(exp.buf, name="impA")
            a.attach_()
            a.read_job()  # A has a mapping, so every design notifies it
            b = cls(exp.buf, name="impB", dev="gpu2")

            def join_b() -> None:
                if b.one_shot:  # option 3: an attachment joins the list only with its mapping
                    b.attach_and_map()
                else:
                    b.attach_()
                b.teardown()

            t = spawn(move_locked, exp, name="exporter")  # walks buf.attachments, calling move_notify
            u = spawn(join_b, name="impB")
            a.teardown()  # A leaves while the exporter may be walking the list
            t.join()
            u.join()
            finish(exp)

        return run
