"""The failure database skips "a corrupt or foreign entry ... with a warning" and leaves it in place; ""
means no database; explore's flags and its body are checked up front. docs/explorer.md, "Across runs"."""

from __future__ import annotations

import functools
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import dmabuf
from dmabuf.errors import InvalidArgument
from dmabuf.examples.classic import lost_update as racy
from dmabuf.explore import database
from dmabuf.explore.database import DatabaseWarning
from dmabuf.kernel import WRITE_ONCE


class Box:
    v = 0


def clean() -> None:
    c = Box()
    c.v = 0

    def inc() -> None:
        WRITE_ONCE(c, "v", 1)

    t = dmabuf.spawn(inc)
    t.join()


def _stored_entry(tmp_path: Path) -> dict[str, Any]:
    """A real entry of ``racy`` (its failing schedule), as JSON data."""
    res = dmabuf.explore(racy, database=tmp_path / "src")
    assert res.failure is not None
    (entry,) = [p for p in (tmp_path / "src").glob("*/*.json") if p.name != "frontier.json"]
    data: dict[str, Any] = json.loads(entry.read_text())
    return data


def _put(root: Path, body: Any, name: str, text: str) -> Path:
    d = database._dir_of(root, database.body_key(body))
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    p.write_text(text)
    return p


def _explore_new_process(body: Any, root: Path) -> Any:
    database._WRITTEN.clear()
    return dmabuf.explore(body, database=root)


# --------------------------------------------------------------------------- D8: foreign / unknown entries
def test_another_bodys_entry_is_skipped_with_a_warning_and_kept(tmp_path: Path) -> None:
    data = _stored_entry(tmp_path)
    assert data["body"] == database.body_key(racy)
    p = _put(tmp_path / "db", clean, "0123456789abcdef.json", json.dumps(data))  # copied into clean's dir
    with pytest.warns(DatabaseWarning, match="another body"):
        res = _explore_new_process(clean, tmp_path / "db")
    assert res.ok and p.exists()
    assert not any("no longer reproduces" in n for n in res.notes)


@pytest.mark.parametrize(
    "change,match",
    [({"kind": "boom"}, "unknown failure kind"), ({"format": True}, "format"), ({"format": 1.0}, "format")],
)
def test_unknown_kind_or_format_is_skipped_with_a_warning_and_kept(
    tmp_path: Path, change: dict[str, Any], match: str
) -> None:
    data = _stored_entry(tmp_path) | change
    p = _put(tmp_path / "db", racy, "0123456789abcdef.json", json.dumps(data))
    with pytest.warns(DatabaseWarning, match=match):
        res = _explore_new_process(racy, tmp_path / "db")
    assert p.exists() and json.loads(p.read_text()) == data
    assert not res.stats.get("from_database")
    assert not any("no longer reproduces" in n for n in res.notes)


def test_an_entry_of_this_body_is_still_replayed(tmp_path: Path) -> None:
    data = _stored_entry(tmp_path)
    _put(tmp_path / "db", racy, "0123456789abcdef.json", json.dumps(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DatabaseWarning)
        res = _explore_new_process(racy, tmp_path / "db")
    assert res.stats.get("from_database")


# --------------------------------------------------------------------------- D14: temp files, deep JSON
def test_leftover_temp_file_is_ignored_and_removed_once_stale(tmp_path: Path) -> None:
    fresh = _put(tmp_path, clean, ".tmp-abc.json", '{"form')
    stale = _put(tmp_path, clean, ".tmp-old.json", '{"form')
    old = time.time() - database.STALE_TMP_SECONDS - 60
    os.utime(stale, (old, old))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DatabaseWarning)
        res = _explore_new_process(clean, tmp_path)
    assert res.ok
    assert fresh.exists()  # may be a write in progress of another process
    assert not stale.exists()


def test_deeply_nested_entry_is_skipped_with_a_warning(tmp_path: Path) -> None:
    p = _put(tmp_path, clean, "0123456789abcdef.json", "[" * 100_000 + "]" * 100_000)
    with pytest.warns(DatabaseWarning, match="skipping"):
        res = _explore_new_process(clean, tmp_path)
    assert res.ok and p.exists()


def test_deeply_nested_frontier_is_ignored_with_a_warning(tmp_path: Path) -> None:
    _put(tmp_path, clean, "frontier.json", "[" * 100_000 + "]" * 100_000)
    with pytest.warns(DatabaseWarning, match="frontier"):
        res = dmabuf.explore(clean, database=tmp_path, resume=True)
    assert res.ok and res.complete


@pytest.mark.parametrize("value", ["", "  ", "off", "None"])
def test_empty_database_string_means_no_database(tmp_path: Path, monkeypatch: Any, value: str) -> None:
    monkeypatch.chdir(tmp_path)
    res = dmabuf.explore(racy, database=value)
    assert not res.ok
    assert not list(tmp_path.rglob("*.json")) and not list(tmp_path.rglob("body.txt"))
    assert database.resolve(value) is None


def test_empty_environment_database_means_no_database(monkeypatch: Any) -> None:
    monkeypatch.setenv("DMABUF_DATABASE", "")
    assert database.resolve(True) is None


@pytest.mark.parametrize(
    "kw",
    [
        {"shrink": "no"},
        {"shrink": None},
        {"shrink": 1},
        {"resume": "yes"},
        {"resume": None},
        {"probes": "x"},
        {"probes": 0},
        {"progress": "yes"},
        {"progress": 1},
    ],
    ids=lambda kw: repr(kw),
)
def test_flags_must_be_bools(kw: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument, match=next(iter(kw))):
        dmabuf.explore(clean, database=None, **kw)


@pytest.mark.parametrize("kw", [{"progress": None}, {"probes": None}, {"progress": False, "probes": True}])
def test_none_is_accepted_where_it_means_the_default(kw: dict[str, Any]) -> None:
    assert dmabuf.explore(clean, database=None, **kw).complete


# --------------------------------------------------------------------------- D11: bodies that need arguments
def _one_arg(x: int) -> None:
    pass


def _kw_only(*, x: int) -> None:
    pass


class _NeedsArg:
    def __call__(self, a: int) -> None:
        pass


@pytest.mark.parametrize(
    "body", [lambda y: None, _one_arg, _kw_only, _NeedsArg()], ids=["lambda", "positional", "kw-only", "__call__"]
)
def test_body_that_needs_arguments_is_rejected_up_front(tmp_path: Path, body: Any) -> None:
    with pytest.raises(InvalidArgument, match="explore needs a zero-argument callable"):
        dmabuf.explore(body, database=tmp_path)
    assert not list(tmp_path.rglob("*.json"))


def _defaults(x: int = 1, *rest: Any, **kw: Any) -> None:
    pass


@pytest.mark.parametrize(
    "body", [_defaults, functools.partial(_one_arg, 1), lambda *a, **k: None], ids=["defaults", "partial", "varargs"]
)
def test_body_callable_without_arguments_is_accepted(body: Any) -> None:
    assert dmabuf.explore(body, database=None).ok
