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

The buggy side of the hazard is the pre-v2 core itself, so it ships as a third variant, ``"pre-v2"`` (not part
of the table, like H9's ``"careful-ignores-pins"``): the importers detach the way ``dma_buf_detach`` did before
v2 -- ``list_del`` and ``kfree(attach)`` under ``dmabuf->lock`` only, not the resv. The explorer then finds the
exporter's walk (resv held) calling ``move_notify`` on the freed attachment (``UsageError``, use after free).
That the naive variant is clean is therefore the core's resv in attach/detach, not a walk nobody could race
with. It fails under options 1 and 5, which notify every dynamic attachment. Under options 2 and 4 it is clean:
only mapped attachments are notified, a detaching importer unmaps (under the resv) first, and the model takes
the walk's snapshot at one scheduling point -- it does not model ``list_for_each`` following a freed node's
``next`` pointer past an attachment it does not notify. Under option 3 the variant cannot be expressed
(``dma_buf_unmap_and_detach`` is one core call under the resv) and behaves as the naive one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import spawn
from ..buf import MemoryExporter
from ..errors import UsageError
from ..kernel.once import READ_ONCE, WRITE_ONCE
from ..runtime import WRITE, label_of, rt
from ..sync import Mutex
from .base import Importer, Scenario, finish, move_locked, register

__all__ = ["H4", "CarefulImporter", "NaiveImporter", "PreV2Importer"]


def _freed(attach: Any) -> UsageError:
    return UsageError(
        f"move_notify on {label_of(attach)}, which dma_buf_detach already unlinked and freed (use after free): "
        "the exporter's walk of dmabuf->attachments raced with a detach"
    )


class NaiveImporter(Importer):
    """Detaches whenever it is done (``dma_buf_detach`` takes the resv itself)."""

    def move_notify(self, attach: Any) -> None:
        if getattr(attach, "detached", False):
            raise _freed(attach)
        super().move_notify(attach)


class PreV2Importer(NaiveImporter):
    """Detaches the pre-v2 way (variant ``"pre-v2"``): unmap under the resv, then ``list_del`` and the exporter's
    ``detach`` under the buffer's own lock (``dmabuf->lock``) only, then ``kfree(attach)``."""

    def __init__(self, *a: Any, lock: Mutex, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.lock = lock

    def move_notify(self, attach: Any) -> None:
        if READ_ONCE(attach, "detached"):  # the freed node (written with WRITE_ONCE below)
            raise _freed(attach)
        Importer.move_notify(self, attach)

    def teardown(self) -> None:
        if self.one_shot:  # unmap_and_detach is one core call under the resv: nothing to get wrong
            super().teardown()
            return
        with self.buf.resv:
            sgt, self.sgt = self.sgt, None
            if sgt is not None:
                self.retire(sgt)
        a, buf = self.attach, self.buf
        with self.lock:  # mutex_lock(&dmabuf->lock): not the lock the exporter's walk holds
            rt().point("list_del attachments", buf, WRITE)
            buf.attachments.remove(a)
            if buf.ops is not None and buf.ops.detach is not None:
                buf.ops.detach(buf, a)
        WRITE_ONCE(a, "detached", True)  # kfree(attach)


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
        def run() -> None:
            exp = MemoryExporter(4, "VRAM", policy=policy, name="A")
            if variant == "pre-v2":
                lock = Mutex(name="A.lock")  # dmabuf->lock
                a: NaiveImporter = PreV2Importer(exp.buf, name="impA", lock=lock)
                b: NaiveImporter = PreV2Importer(exp.buf, name="impB", dev="gpu2", lock=lock)
            else:
                cls = CarefulImporter if variant == "careful" else NaiveImporter
                a, b = cls(exp.buf, name="impA"), cls(exp.buf, name="impB", dev="gpu2")
            a.attach_()
            a.read_job()  # A has a mapping, so every design notifies it

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
