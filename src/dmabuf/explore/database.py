"""The failure database: failing schedules stored per body and replayed first on the next run.

Layout (like Hypothesis' directory database: a cache you never need to invalidate by hand)::

    <root>/                      default ".dmabuf" in the working directory, or $DMABUF_DATABASE
      <body key>/                sha256 of the body's key (body_key: "module:qualname", plus the values a
                                 closure captured), first 16 hex digits
        body.txt                 the readable "module:qualname" (for people browsing the directory)
        <schedule hash>.json     {"format": 1, "kind": ..., "schedule": ..., "body": <body key>}
        frontier.json            a saved search frontier (interrupted exhaustive search), see resume;
                                 it names its body key too
        .tmp-*.json              a write in progress (ignored; one left by a crashed write is removed
                                 once it is older than STALE_TMP_SECONDS)

Entries are replayed by the *next* run: a process never replays the entries it wrote itself, so repeated
``explore`` calls on one body inside one process (a test suite, a seed sweep) stay independent searches.

Writes are atomic (temporary file + rename). An entry that no longer reproduces is deleted; a corrupt or
foreign entry (unreadable JSON, another format version, an unknown kind, another body's key) is skipped with
a warning (and left alone). A root that cannot be written to gives one warning
and the explorer carries on: nothing it found is lost, it is still returned.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument
from .failure import Failure

__all__ = ["DEFAULT_ROOT", "FORMAT", "DatabaseWarning", "FailureDatabase", "body_key", "resolve"]

FORMAT = 1
DEFAULT_ROOT = ".dmabuf"
#: the failure kinds an entry may hold (``nondeterminism`` is never stored: it does not reproduce)
STORED_KINDS = ("exception", "deadlock", "kernel-warning", "leak", "livelock")
#: a temporary file of an atomic write older than this is what a crashed write left: removed by ``load``
STALE_TMP_SECONDS = 600.0
#: entries written by this process (resolved paths): not replayed by it
_WRITTEN: set[str] = set()


class DatabaseWarning(UserWarning):
    """Something about the failure database needs a person's attention (corrupt entry, unwritable root)."""


def body_key(body: Callable[..., Any]) -> str:
    """A stable name for a body: its module and qualified name, plus what tells apart the bodies one factory
    makes (``make_body(3)`` and ``make_body(5)`` share a qualified name): the values its closure captured
    and, for a ``functools.partial``, the wrapped function and its arguments. Values are shown when they
    are plain data (numbers, strings, None, and small tuples, lists and frozensets of those), functions by
    their qualified name, anything else by its type only (its identity changes from run to run)."""
    if isinstance(body, functools.partial):
        args = [_value_key(a) for a in body.args]
        args += [f"{k}={_value_key(v)}" for k, v in sorted(body.keywords.items())]
        return f"partial({body_key(body.func)}; {', '.join(args)})"
    mod = getattr(body, "__module__", None) or "?"
    qual = getattr(body, "__qualname__", None) or type(body).__qualname__
    key = f"{mod}:{qual}"
    cells = getattr(body, "__closure__", None)
    if cells:
        names = getattr(getattr(body, "__code__", None), "co_freevars", ())
        parts = []
        for name, cell in zip(names, cells, strict=False):
            try:
                v = cell.cell_contents
            except ValueError:  # a cell not filled yet
                continue
            parts.append(f"{name}={_value_key(v)}")
        if parts:
            key += "[" + ", ".join(parts) + "]"
    return key


def _value_key(v: Any, depth: int = 0) -> str:
    if v is None or isinstance(v, (bool, int, float, str, bytes)):
        r = repr(v)
        if len(r) > 80:  # a long string or bytes: its digest, so that the key stays short
            return f"{type(v).__name__}#{hashlib.sha256(r.encode()).hexdigest()[:12]}"
        return r
    if isinstance(v, (tuple, list, frozenset)) and depth < 3 and len(v) <= 64:
        items = [_value_key(x, depth + 1) for x in v]
        if isinstance(v, frozenset):
            return "{" + ", ".join(sorted(items)) + "}"
        return ("(" if isinstance(v, tuple) else "[") + ", ".join(items) + (")" if isinstance(v, tuple) else "]")
    if callable(v) and depth < 2 and hasattr(v, "__qualname__"):
        return f"{getattr(v, '__module__', '?')}:{v.__qualname__}"
    return type(v).__qualname__


def resolve(database: str | os.PathLike[str] | bool | None) -> FailureDatabase | None:
    """``True``/default -> $DMABUF_DATABASE or ``.dmabuf``; ``None``/``False``/``""``/"off"/"none" -> no
    database (the same strings turn it off in $DMABUF_DATABASE, which also takes "0")."""
    if database is None or database is False:
        return None
    if database is True:
        env = os.environ.get("DMABUF_DATABASE", DEFAULT_ROOT)
        if env.strip().lower() in ("", "off", "none", "0"):
            return None
        return FailureDatabase(env)
    if isinstance(database, str) and database.strip().lower() in ("", "off", "none"):
        return None
    if not isinstance(database, (str, os.PathLike)):
        raise InvalidArgument(
            f"database must be True (the default location), a directory path, or None for no database; "
            f"got {type(database).__name__} {database!r}"
        )
    return FailureDatabase(database)


def _is_format(v: Any) -> bool:
    """The format field of an entry this version reads: the int FORMAT (``True`` equals 1 but is no format)."""
    return type(v) is int and v == FORMAT


def _short(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def _remove_if_stale(p: Path) -> None:
    """Remove a temporary file of an atomic write that a crashed process left behind (old enough that no
    write in progress can own it)."""
    try:
        if time.time() - p.stat().st_mtime > STALE_TMP_SECONDS:
            p.unlink()
    except OSError:
        pass


@functools.lru_cache(maxsize=1024)
def _dir_of(root: Path, key: str) -> Path:
    """The directory of ``key``'s entries under ``root`` (cached: every explore() call asks)."""
    return root / hashlib.sha256(key.encode()).hexdigest()[:16]


class FailureDatabase:
    """A directory of failing schedules, keyed by body."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._warned_unwritable = False

    def _dir(self, key: str) -> Path:
        return _dir_of(self.root, key)

    # ---------------------------------------------------------------- failures
    def load(self, key: str) -> list[tuple[Path, str, str]]:
        """Stored (path, kind, schedule) for ``key``; corrupt or foreign entries (unreadable, another format
        version, an unknown kind, another body's key) are skipped with a warning and left in place.
        Temporary files of atomic writes are ignored (and removed once stale: a crashed write left them)."""
        d = self._dir(key)
        if not d.is_dir():
            return []
        out = []
        for p in sorted(d.glob("*.json")):
            if p.name.startswith(".tmp-"):
                _remove_if_stale(p)
                continue
            if p.name == "frontier.json" or str(p.resolve()) in _WRITTEN:
                continue
            try:
                data = json.loads(p.read_text())
                if not isinstance(data, dict) or not _is_format(data.get("format")):
                    raise ValueError(f"format {data.get('format') if isinstance(data, dict) else '?'!r}")
                kind, schedule = data["kind"], data["schedule"]
                if not isinstance(kind, str) or not isinstance(schedule, str):
                    raise ValueError("kind and schedule must be strings")
                if kind not in STORED_KINDS:
                    raise ValueError(f"unknown failure kind {kind!r}")
                owner = data.get("body", key)  # entries of older versions name no body: taken as this one's
                if owner != key:
                    raise ValueError(f"it is an entry of another body ({owner!r}), not of {key!r}")
            except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
                warnings.warn(
                    f"dmabuf failure database: skipping unreadable or foreign entry {p} ({_short(e)}); delete "
                    "it if it is stale",
                    DatabaseWarning,
                    stacklevel=3,
                )
                continue
            out.append((p, kind, schedule))
        return out

    def save(self, key: str, kind: str, schedule: str) -> Path | None:
        """Store a failing schedule (atomically). Returns the path, or None if the root is not writable."""
        name = hashlib.sha256(schedule.encode()).hexdigest()[:16] + ".json"
        data = {"format": FORMAT, "kind": kind, "schedule": schedule, "body": key}
        path = self._write(key, name, data)
        if path is not None:
            _WRITTEN.add(str(path.resolve()))
        return path

    def save_failure(self, key: str, failure: Failure) -> Path | None:
        """Store a failure the search found, to be replayed first next time. A ``nondeterminism`` failure is
        not stored: its schedule does not reproduce by definition."""
        if failure.kind == "nondeterminism":
            return None
        return self.save(key, failure.kind, failure.schedule)

    def delete(self, path: Path) -> None:
        """Remove an entry that no longer reproduces."""
        try:
            path.unlink()
        except OSError:
            pass

    # ---------------------------------------------------------------- frontiers
    def save_frontier(self, key: str, frontier: dict[str, Any]) -> Path | None:
        """Store the frontier of an interrupted search."""
        return self._write(key, "frontier.json", {"format": FORMAT, **frontier})

    def load_frontier(self, key: str) -> dict[str, Any] | None:
        """The saved frontier for ``key``, or None (a corrupt one is reported and ignored)."""
        p = self._dir(key) / "frontier.json"
        if not p.exists():
            return None
        try:
            data = json.loads(p.read_text())
            if not isinstance(data, dict) or not _is_format(data.get("format")):
                raise ValueError("foreign format")
        except (OSError, ValueError, RecursionError) as e:
            warnings.warn(
                f"dmabuf failure database: ignoring unreadable frontier {p} ({e})",
                DatabaseWarning,
                stacklevel=3,
            )
            return None
        return data

    def clear_frontier(self, key: str) -> None:
        """Forget a saved frontier (the search it belonged to completed)."""
        try:
            os.unlink(os.path.join(self._dir(key), "frontier.json"))  # no pathlib: every complete search
        except OSError:
            pass

    # ---------------------------------------------------------------- io
    def _write(self, key: str, name: str, data: dict[str, Any]) -> Path | None:
        d = self._dir(key)
        try:
            d.mkdir(parents=True, exist_ok=True)
            (d / "body.txt").write_text(key + "\n")
            fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(data, f)
                os.replace(tmp, d / name)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError as e:
            if not self._warned_unwritable:
                self._warned_unwritable = True
                warnings.warn(
                    f"dmabuf failure database: cannot write to {self.root} ({e.strerror or e}); the failure is "
                    "still returned but will not be replayed first next time. Pass database=<a writable "
                    "directory> or database=None.",
                    DatabaseWarning,
                    stacklevel=3,
                )
            return None
        return d / name
