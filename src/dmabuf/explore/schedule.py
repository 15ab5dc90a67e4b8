"""Replay strings: compact, versioned, and labelled with the operation chosen at each branch.

Format ``dmabuf-s1:<entries>`` where entries are separated by ``;``:

* ``t<tid>:<op>@<obj>``: at a scheduling branch, task ``<tid>`` executes ``<op>`` on ``<obj>``;
* ``c<value>/<n>``: a data choice ``choose(n)`` returned ``<value>``.

Only real branches (more than one option) are recorded. Object names are the deterministic trace names
(``Mutex#1``); ``;``, ``:``, ``@``, ``|`` and ``%`` inside names are percent-encoded. Strings longer than
:data:`COMPRESS_ABOVE` characters are stored as ``dmabuf-z1:<base64 of zlib of the plain form>``.

Several executions: ``dmabuf-s2:<run>|<run>|...|<run>`` (compressed: ``dmabuf-z2:``). Replay runs them
in order on one lockdep order graph, and the failure is the last run's; the runs before it only teach
lockdep the lock orders the last one contradicts (a lock-order report learnt across executions of a
search, see :mod:`dmabuf.lockdep`). A one-execution failure keeps the ``s1`` form.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import NamedTuple
from urllib.parse import quote, unquote

from ..errors import ReplayFormatError

__all__ = ["COMPRESS_ABOVE", "Entry", "decode", "decode_runs", "encode", "encode_runs"]

PLAIN = "dmabuf-s1:"
ZIPPED = "dmabuf-z1:"
PLAIN_RUNS = "dmabuf-s2:"
ZIPPED_RUNS = "dmabuf-z2:"
COMPRESS_ABOVE = 2000
_SAFE = "#-_.()[]<>!*+,=/ "


class Entry(NamedTuple):
    """One recorded decision. For a data choice ``kind == "c"``, ``value`` is the choice and ``n`` the range;
    for a scheduling branch ``kind == "t"``, ``value`` is the task id and ``op``/``obj`` its labelled op."""

    kind: str
    value: int
    n: int = 0
    op: str = ""
    obj: str = ""

    def text(self) -> str:
        if self.kind == "c":
            return f"c{self.value}/{self.n}"
        return f"t{self.value}:{quote(self.op, safe=_SAFE)}@{quote(self.obj, safe=_SAFE)}"

    def describe(self) -> str:
        if self.kind == "c":
            return f"choose({self.n}) returning {self.value}"
        return f"task {self.value} doing {self.op} on {self.obj}"


def encode(entries: list[Entry]) -> str:
    """The replay string of one execution's decisions."""
    return _pack(";".join(e.text() for e in entries), PLAIN, ZIPPED)


def encode_runs(runs: list[list[Entry]]) -> str:
    """The replay string of several executions replayed in order (see the module docstring); one run is
    written as :func:`encode` writes it."""
    if not runs:
        raise ValueError("[internal bug] encode_runs needs at least one execution")
    if len(runs) == 1:
        return encode(runs[0])
    return _pack("|".join(";".join(e.text() for e in run) for run in runs), PLAIN_RUNS, ZIPPED_RUNS)


def _pack(plain: str, head: str, zipped: str) -> str:
    if len(plain) > COMPRESS_ABOVE:
        return zipped + base64.urlsafe_b64encode(zlib.compress(plain.encode(), 9)).decode()
    return head + plain


def decode(schedule: str) -> list[Entry]:
    """The decisions of the execution a replay string describes (of several, the last one, whose failure
    it is); raises :class:`ReplayFormatError` naming what is wrong."""
    return decode_runs(schedule)[-1]


def decode_runs(schedule: str) -> list[list[Entry]]:
    """The decisions of every execution of a replay string, in replay order (one for an ``s1`` string);
    raises :class:`ReplayFormatError` naming what is wrong."""
    if not isinstance(schedule, str):
        raise ReplayFormatError(f"a replay string must be a str, got {type(schedule).__name__}")
    s = schedule.strip()
    for zipped, plain in ((ZIPPED, PLAIN), (ZIPPED_RUNS, PLAIN_RUNS)):
        if s.startswith(zipped):
            try:
                s = plain + zlib.decompress(base64.urlsafe_b64decode(s[len(zipped) :].encode())).decode()
            except (binascii.Error, zlib.error, UnicodeDecodeError, ValueError) as e:
                raise ReplayFormatError(
                    f"corrupt compressed replay string ({e}); copy it again in full"
                ) from None
    if s.startswith(PLAIN):
        return [_entries(s[len(PLAIN) :], -1)]
    if s.startswith(PLAIN_RUNS):
        runs = s[len(PLAIN_RUNS) :].split("|")
        if len(runs) < 2:
            raise ReplayFormatError(
                f"a {PLAIN_RUNS[:-1]!r} replay string holds several executions separated by '|', and this one "
                "has one; copy it again in full"
            )
        return [_entries(run, k) for k, run in enumerate(runs)]
    head = s.split(":", 1)[0] if ":" in s else s[:20]
    if head.startswith("dmabuf-"):
        raise ReplayFormatError(
            f"replay string has format {head!r}, but this version of dmabuf reads {PLAIN[:-1]!r}, "
            f"{PLAIN_RUNS[:-1]!r} and their compressed forms; record the failure again with this version"
        )
    raise ReplayFormatError(
        f"not a dmabuf replay string (it must start with {PLAIN!r} or {PLAIN_RUNS!r}); pass "
        "failure.schedule unchanged"
    )


def _entries(body: str, run: int) -> list[Entry]:
    where = f" of execution {run + 1}" if run >= 0 else ""
    out: list[Entry] = []
    if not body:
        return out
    for i, part in enumerate(body.split(";")):
        try:
            if part.startswith("c"):
                v, n = part[1:].split("/")
                entry = Entry("c", int(v), int(n))
                if not 0 <= entry.value < entry.n:
                    raise ValueError("choice out of range")
            elif part.startswith("t"):
                tid, rest = part[1:].split(":", 1)
                op, obj = rest.split("@", 1)
                entry = Entry("t", int(tid), 0, unquote(op), unquote(obj))
                if entry.value < 0:
                    raise ValueError("negative task id")
            else:
                raise ValueError("unknown entry kind")
        except ValueError as err:
            raise ReplayFormatError(
                f"replay string entry {i + 1}{where} ({part!r}) is malformed: {err}"
            ) from None
        out.append(entry)
    return out
