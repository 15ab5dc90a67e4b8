"""The data-integrity oracle: three checks that turn protocol bugs into findings.

1. **Stale mapping** (at every page access, :func:`~dmabuf.buf.memory.check_page`): a device or the CPU
   touches a page through a mapping whose placement no longer owns it (freed by a move or a release, maybe
   reused by another buffer), or through an unmapped mapping, or reads a page of an old placement (kept
   until freed) that a move already copied away and that no longer holds the buffer's content ->
   :class:`~dmabuf.errors.StaleMapping`.
2. **Stale content** (at every page access): a page of a placement that a move is still filling is read or
   written before the copy reached it (the move fence had not signalled) -> :class:`~dmabuf.errors.StaleContent`.
3. **No byte lost** (:func:`check_all`, at the end of a scenario body): every live buffer's current bytes
   equal the last completed write to each byte, and no write landed in an old placement after its move
   copied it (even if a later write hid it) -> :class:`~dmabuf.errors.LostWrite`, naming the byte or page,
   the writer, the mapping and the move that lost it. A released buffer is checked too: its late writes are
   lost whatever happened to it later, and its bytes are compared as they were at release
   (``BufferObject.released_image``; skipped if a move was still copying then).

Scenario bodies call :func:`check_all` once all their tasks are joined and every move fence they care about
signalled (it waits for pending moves of live buffers first).
"""

from __future__ import annotations

from ..errors import LostWrite
from ..runtime import label_of, rt
from .memory import BufferObject, Memory

__all__ = ["check_all", "check_buffer"]


def check_buffer(bo: BufferObject) -> None:
    """Check the "no byte lost" property of one buffer now.

    Raises:
        LostWrite: some byte differs from its last completed write (for a released buffer: at its release),
            or a write landed in an old placement after its move had copied it.
    """
    pl = bo.placement
    if bo.released:
        # the pages are gone (maybe reused): check the content the buffer had when it was released, and the
        # late writes, which are lost whatever happened to the buffer afterwards
        if bo.released_image is None:
            actual, expected = bo.contents(), bytes(bo.expected)
            bad = []
        else:
            actual, expected = bo.released_image
            bad = [i for i in range(bo.size) if actual[i] != expected[i]]
    else:
        if pl.pending is not None:
            pl.pending.fence.wait(False)
        actual, expected = bo.contents(), bytes(bo.expected)
        bad = [i for i in range(bo.size) if actual[i] != expected[i]]
    if not bad and bo.late_writes:
        page, mapping, late = bo.late_writes[0]
        raise LostWrite(
            f"lost write: {label_of(bo)} page {page} was written through {mapping} after {late.name} had "
            f"copied it away, so the write never reached {late.new!r} ({len(bo.late_writes)} such write(s)); a later "
            "write of the same bytes hides the loss, but a reader in between saw old data (the copy must wait "
            "for the pending writes' fences; importers must re-map after move_notify)"
        )
    if not bad:
        return
    i = bad[0]
    who = bo.last_writer[i]
    if who is None:
        cause = "the initial content was lost"
    else:
        task, mapping, gen = who
        cause = f"last written by task {task!r} through {mapping} (placement generation {gen})"
        if gen < pl.generation and gen < len(bo.moves) + 1:
            mv = bo.moves[gen] if gen < len(bo.moves) else None
            if mv is not None:
                cause += (
                    f"; that write landed in the old pages after {mv.name} had copied them, so the move "
                    "lost it (the copy must wait for the pending writes' fences)"
                )
        elif gen == pl.generation and pl.generation > 0:
            cause += f"; the copy of {bo.moves[gen - 1].name} overwrote it afterwards"
    held = f"held {actual[i]:#04x} when it was released" if bo.released else f"holds {actual[i]:#04x}"
    raise LostWrite(
        f"lost write: {label_of(bo)} byte {i} (page {i // 4} of {pl!r}) {held} but the last "
        f"completed write put {expected[i]:#04x} there ({len(bad)} byte(s) differ: {bad[:8]}); {cause}"
    )


def check_all() -> None:
    """Check every buffer of this execution, live or released (see :func:`check_buffer`). Call at the end
    of a body.

    Raises:
        LostWrite: the first buffer with a lost byte.
    """
    mem = rt().globals.get("dmabuf.memory")
    if not isinstance(mem, Memory):
        return
    for bo in list(mem.buffers):
        check_buffer(bo)
