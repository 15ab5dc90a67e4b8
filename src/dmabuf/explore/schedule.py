"""Replay strings: compact, versioned, and labelled with the operation chosen at each branch.

Format ``dmabuf-s1:<entries>`` where entries are separated by ``;``:

* ``t<tid>:<op>@<obj>``: at a scheduling branch, task ``<tid>`` executes ``<op>`` on ``<obj>``;
* ``c<value>/<n>``: a data choice ``choose(n)`` returned ``<value>``.

Only real branches (more than one option) are recorded. Object names are the deterministic trace names
(``Mutex#1``); ``;``, ``:``, ``@`` and ``%`` inside names are percent-encoded. Strings longer than
:data:`COMPRESS_ABOVE` characters are stored as ``dmabuf-z1:<base64 of zlib of the plain form>``.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import NamedTuple
from urllib.parse import quote, unquote

from ..errors import ReplayFormatError

__all__ = ["COMPRESS_ABOVE", "Entry", "decode", "encode"]

PLAIN = "dmabuf-s1:"
ZIPPED = "dmabuf-z1:"
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
    plain = ";".join(e.text() for e in entries)
    if len(plain) > COMPRESS_ABOVE:
        return ZIPPED + base64.urlsafe_b64encode(zlib.compress(plain.encode(), 9)).decode()
    return PLAIN + plain


def decode(schedule: str) -> list[Entry]:
    """Parse a replay string; raises :class:`ReplayFormatError` naming what is wrong."""
    if not isinstance(schedule, str):
        raise ReplayFormatError(f"a replay string must be a str, got {type(schedule).__name__}")
    s = schedule.strip()
    if s.startswith(ZIPPED):
        try:
            s = PLAIN + zlib.decompress(base64.urlsafe_b64decode(s[len(ZIPPED) :].encode())).decode()
        except (binascii.Error, zlib.error, UnicodeDecodeError, ValueError) as e:
            raise ReplayFormatError(
                f"corrupt compressed replay string ({e}); copy it again in full"
            ) from None
    if not s.startswith(PLAIN):
        head = s.split(":", 1)[0] if ":" in s else s[:20]
        if head.startswith("dmabuf-"):
            raise ReplayFormatError(
                f"replay string has format {head!r}, but this version of dmabuf reads {PLAIN[:-1]!r} and "
                f"{ZIPPED[:-1]!r}; record the failure again with this version"
            )
        raise ReplayFormatError(
            f"not a dmabuf replay string (it must start with {PLAIN!r}); pass failure.schedule unchanged"
        )
    body = s[len(PLAIN) :]
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
            raise ReplayFormatError(f"replay string entry {i + 1} ({part!r}) is malformed: {err}") from None
        out.append(entry)
    return out
