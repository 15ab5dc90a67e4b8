"""Sequence counters (``linux/seqlock.h``): lock-free readers that retry when a writer intervened.

A writer makes the sequence odd (:func:`write_seqcount_begin`), updates the protected data, and makes it
even again (:func:`write_seqcount_end`). A reader takes the sequence with :func:`read_seqcount_begin` --
which spins while a write is in progress, modelled as a *wait* for an even sequence, so a reader never burns
steps -- reads the data, and asks :func:`read_seqcount_retry` whether the sequence moved meanwhile.

Writers must be serialised by the caller (a lock). The model checks it: a ``write_seqcount_begin`` on an
odd sequence (two writers at once) or a ``write_seqcount_end`` on an even one WARNs. The kernel only
catches the first through lockdep on ``seqcount_LOCKNAME_t``; both would corrupt readers.

Each operation is one scheduling point on the counter: READ for readers, WRITE for writers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from ..errors import InvalidArgument
from ..runtime import READ, WRITE, rt
from ._warn import WARN

__all__ = [
    "SEQCNT_ZERO",
    "Seqcount",
    "__read_seqcount_begin",
    "raw_read_seqcount",
    "raw_read_seqcount_begin",
    "raw_write_seqcount_begin",
    "raw_write_seqcount_end",
    "read_seqcount_begin",
    "read_seqcount_retry",
    "seqcount_init",
    "write_seqcount_begin",
    "write_seqcount_end",
]

T = TypeVar("T")


class Seqcount:
    """A sequence counter (``seqcount_t``); ``Seqcount()`` is ready (sequence 0, ``SEQCNT_ZERO``).

    Pythonic API: :meth:`read_begin`, :meth:`read_retry`, :meth:`read` (the whole retry loop),
    :meth:`write_begin`, :meth:`write_end`, and ``with sc.write():``.

    Kernel: ``seqcount_t`` (include/linux/seqlock.h).
    """

    __slots__ = ("_dm_label", "sequence")

    def __init__(self, name: str | None = None) -> None:
        self.sequence = 0
        self._dm_label = name

    def _even(self) -> bool:
        return self.sequence & 1 == 0

    def read_begin(self) -> int:
        """Wait until no write is in progress and return the (even) sequence. Kernel: ``read_seqcount_begin``."""
        rt().wait("read_seqcount_begin", self, READ, self._even)
        return self.sequence

    def raw_read(self) -> int:
        """The sequence now, without waiting (may be odd). Kernel: ``raw_read_seqcount``."""
        rt().point("raw_read_seqcount", self, READ)
        return self.sequence

    def read_retry(self, start: int) -> bool:
        """True if a writer ran since ``read_begin`` returned ``start``: the reader must retry.

        Kernel: ``read_seqcount_retry``."""
        if isinstance(start, bool) or not isinstance(start, int):
            raise InvalidArgument(
                f"read_seqcount_retry needs the int from read_seqcount_begin, got {start!r}"
            )
        rt().point("read_seqcount_retry", self, READ)
        return self.sequence != start

    def read(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` until it ran without a writer intervening; return its last result."""
        while True:
            start = self.read_begin()
            value = fn()
            if not self.read_retry(start):
                return value

    def write_begin(self) -> None:
        """Start a write: the sequence becomes odd. Locking: the caller serialises writers.

        Kernel: ``write_seqcount_begin``."""
        r = rt()
        r.point("write_seqcount_begin", self, WRITE)
        WARN(
            self.sequence & 1,
            f"write_seqcount_begin on {self!r} while another write is in progress: writers are not serialised",
            "seqcount: concurrent writers",
        )
        self.sequence += 1

    def write_end(self) -> None:
        """End a write: the sequence becomes even and waiting readers go on. Kernel: ``write_seqcount_end``."""
        r = rt()
        r.point("write_seqcount_end", self, WRITE)
        if WARN(
            self.sequence & 1 == 0,
            f"write_seqcount_end on {self!r} without write_seqcount_begin",
            "seqcount: end without begin",
        ):
            return
        self.sequence += 1
        r.notify(self)

    @contextmanager
    def write(self) -> Iterator[Seqcount]:
        """``with sc.write():`` brackets a write section."""
        self.write_begin()
        try:
            yield self
        finally:
            self.write_end()

    def __repr__(self) -> str:
        return f"Seqcount({self.sequence})"


def SEQCNT_ZERO(name: str | None = None) -> Seqcount:
    """A ready sequence counter (``SEQCNT_ZERO(name)``)."""
    return Seqcount(name)


def _sc(s: object, fn: str) -> Seqcount:
    if not isinstance(s, Seqcount):
        raise InvalidArgument(f"{fn} needs a Seqcount, got {type(s).__name__}")
    return s


def seqcount_init(s: Seqcount) -> None:
    """Kernel: ``seqcount_init``: sequence 0."""
    _sc(s, "seqcount_init").sequence = 0


def read_seqcount_begin(s: Seqcount) -> int:
    """Kernel: ``read_seqcount_begin``: waits for an even sequence and returns it."""
    return _sc(s, "read_seqcount_begin").read_begin()


def read_seqcount_retry(s: Seqcount, start: int) -> bool:
    """Kernel: ``read_seqcount_retry``: True if the read section must be retried."""
    return _sc(s, "read_seqcount_retry").read_retry(start)


def raw_read_seqcount(s: Seqcount) -> int:
    """Kernel: ``raw_read_seqcount``: the sequence now, possibly odd, without waiting."""
    return _sc(s, "raw_read_seqcount").raw_read()


def write_seqcount_begin(s: Seqcount) -> None:
    """Kernel: ``write_seqcount_begin``."""
    _sc(s, "write_seqcount_begin").write_begin()


def write_seqcount_end(s: Seqcount) -> None:
    """Kernel: ``write_seqcount_end``."""
    _sc(s, "write_seqcount_end").write_end()


#: no lockdep in the model's seqcount: the raw and underscore variants are the same operations.
raw_read_seqcount_begin = read_seqcount_begin
__read_seqcount_begin = read_seqcount_begin
raw_write_seqcount_begin = write_seqcount_begin
raw_write_seqcount_end = write_seqcount_end
