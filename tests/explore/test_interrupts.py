"""Interrupted runs (Ctrl-C: KeyboardInterrupt) give clear notes and lose nothing already found, and lock-order
(lockdep) reports are kept whichever execution found them (search, probe). docs/explorer.md, "Across runs"."""

from __future__ import annotations

import json
import os
import signal
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

import dmabuf
from dmabuf.examples.classic import locked_family
from dmabuf.explore import database
from dmabuf.explore.database import DatabaseWarning
from dmabuf.kernel import READ_ONCE, WRITE_ONCE, Mutex, mutex_lock, mutex_unlock


class Box:
    v = 0


def _explore(*args: Any, **kw: Any) -> Any:
    """explore, but a KeyboardInterrupt that escapes it fails the test (instead of stopping pytest)."""
    try:
        return dmabuf.explore(*args, **kw)
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped explore")


def _entries(root: Path) -> list[Path]:
    return [p for p in root.glob("*/*.json") if p.name != "frontier.json"]


# --------------------------------------------------------------------------- D1: lockdep found by a probe
def _nest_in_chosen_order(a: Mutex, b: Mutex) -> None:
    """Take a then b, or b then a (a data choice): two executions whose lock orders close a cycle."""
    first, second = (a, b) if dmabuf.choose(2) else (b, a)
    mutex_lock(first)
    mutex_lock(second)
    mutex_unlock(second)
    mutex_unlock(first)


def inversion_then_two_writers() -> None:
    a, b = Mutex(name="A"), Mutex(name="B")
    c = Box()
    c.v = 0
    _nest_in_chosen_order(a, b)

    def w() -> None:
        WRITE_ONCE(c, "v", READ_ONCE(c, "v") + 1)

    ts = [dmabuf.spawn(w) for _ in range(2)]
    for t in ts:
        t.join()


@pytest.mark.parametrize(
    "kw", [{}, {"probes": False}, {"strategy": "dfs"}, {"preemption_bound": 2}], ids=lambda kw: str(kw)
)
def test_lock_order_report_is_kept_whichever_execution_finds_it(kw: dict[str, Any]) -> None:
    """A lock-order report across executions (choose() takes A->B, later B->A) is the result with or without
    probes: with probes, a probe execution may be the one that closes the cycle, and the shared order
    graph never reports that cycle again, so the probe's report must be kept (deferred like the search's)."""
    res = dmabuf.explore(inversion_then_two_writers, database=None, **kw)
    assert not res.ok, res.notes
    assert res.failure is not None and res.failure.kind == "kernel-warning"
    assert "A" in res.failure.message and "B" in res.failure.message
    again = dmabuf.replay(inversion_then_two_writers, res.failure.schedule)
    assert again is not None and again.kind == "kernel-warning"


def test_probe_lock_order_report_still_prefers_a_real_deadlock() -> None:
    """Deferred the same way: a body with a real ABBA deadlock reports the deadlock, probes or not."""
    from dmabuf.examples.classic import abba_deadlock

    for probes in (True, False):
        res = dmabuf.explore(abba_deadlock, database=None, probes=probes)
        assert res.failure is not None and res.failure.kind == "deadlock", (probes, res.failure)


# --------------------------------------------------------------------------- D3: Ctrl-C while shrinking
_calls = {"n": 0, "at": -1}


def racy_interruptible() -> None:
    _calls["n"] += 1
    if _calls["n"] == _calls["at"]:
        raise KeyboardInterrupt
    c = Box()
    c.v = 0

    def inc() -> None:
        WRITE_ONCE(c, "v", READ_ONCE(c, "v") + 1)

    ts = [dmabuf.spawn(inc) for _ in range(3)]
    for t in ts:
        t.join()
    assert READ_ONCE(c, "v") == 3


@pytest.mark.parametrize("after", [1, 3, 10])
def test_ctrl_c_while_shrinking_returns_and_stores_the_failure(tmp_path: Path, after: int) -> None:
    _calls.update(n=0, at=-1)
    base = dmabuf.explore(racy_interruptible, database=None, probes=False)
    assert base.failure is not None
    _calls.update(n=0, at=base.executions + after)  # an execution of the replay/shrink phase
    res = _explore(racy_interruptible, database=tmp_path, probes=False)
    assert not res.ok and res.failure is not None and res.failure.kind == "exception"
    assert "interrupted" in res.failure.shrink_note.lower() and "Ctrl-C" in res.failure.shrink_note
    assert any("interrupted" in n and "shrunk" in n for n in res.notes), res.notes
    assert res.stats.get("interrupted")
    assert len(_entries(tmp_path)) == 1
    _calls.update(at=-1)
    again = dmabuf.replay(racy_interruptible, res.failure.schedule)
    assert again is not None and again.kind == "exception"


def test_ctrl_c_while_replaying_stored_failures_is_a_clean_result(tmp_path: Path) -> None:
    _calls.update(n=0, at=-1)
    dmabuf.explore(racy_interruptible, database=tmp_path)
    database._WRITTEN.clear()  # a new process
    _calls.update(n=0, at=1)
    res = _explore(racy_interruptible, database=tmp_path)
    assert res.stats.get("interrupted") and not res.complete
    assert any("interrupted" in n for n in res.notes)
    assert len(_entries(tmp_path)) == 1  # kept


# --------------------------------------------------------------------------- D4: interrupted after a lockdep
_inv = {"n": 0, "at": -1}


def inversion_then_locked_writers() -> None:
    _inv["n"] += 1
    if _inv["n"] == _inv["at"]:
        raise KeyboardInterrupt
    a, b, m = Mutex(name="A"), Mutex(name="B"), Mutex(name="M")
    c = Box()
    c.v = 0
    _nest_in_chosen_order(a, b)

    def w() -> None:
        for _ in range(2):
            mutex_lock(m)
            WRITE_ONCE(c, "v", READ_ONCE(c, "v") + 1)
            mutex_unlock(m)

    ts = [dmabuf.spawn(w) for _ in range(3)]
    for t in ts:
        t.join()


def test_interrupted_search_returns_and_stores_the_lock_order_report_it_found(tmp_path: Path) -> None:
    _inv.update(n=0, at=-1)
    full = dmabuf.explore(inversion_then_locked_writers, database=None, probes=False)
    assert full.failure is not None and full.failure.kind == "kernel-warning"
    # the report is found when choose() takes its second value (after half the executions), then deferred
    _inv.update(n=0, at=full.executions - 10)
    res = _explore(inversion_then_locked_writers, database=tmp_path, probes=False)
    assert res.stats.get("interrupted")
    assert not res.ok and not res.complete
    assert res.failure is not None and res.failure.kind == "kernel-warning"
    assert any("lock-order" in n and "interrupted" in n for n in res.notes), res.notes
    stored = _entries(tmp_path)
    assert len(stored) == 1 and json.loads(stored[0].read_text())["kind"] == "kernel-warning"
    # the next process replays it first
    database._WRITTEN.clear()
    _inv.update(n=0, at=-1)
    nxt = dmabuf.explore(inversion_then_locked_writers, database=tmp_path, resume=True, probes=False)
    assert nxt.failure is not None and nxt.failure.kind == "kernel-warning"
    assert nxt.stats.get("from_database")


# --------------------------------------------------------------------------- D12: Ctrl-C while certifying
_cert = {"n": 0, "at": -1}


def locked_3x2_interruptible() -> None:
    _cert["n"] += 1
    if _cert["n"] == _cert["at"]:
        raise KeyboardInterrupt
    c = Box()
    c.v = 0
    m = Mutex(name="M")

    def w() -> None:
        for _ in range(2):
            mutex_lock(m)
            WRITE_ONCE(c, "v", READ_ONCE(c, "v") + 1)
            mutex_unlock(m)

    ts = [dmabuf.spawn(w) for _ in range(3)]
    for t in ts:
        t.join()


def test_ctrl_c_in_the_certifying_dfs_says_what_was_kept(tmp_path: Path) -> None:
    _cert.update(n=0, at=-1)
    base = dmabuf.explore(locked_3x2_interruptible, database=None, preemption_bound=1)
    assert base.stats.get("bound_certified"), base.stats
    _cert.update(n=0, at=_cert["n"] - 5)  # in the certifying dfs, which runs last
    res = _explore(locked_3x2_interruptible, database=tmp_path, preemption_bound=1)
    assert res.stats.get("interrupted") and not res.stats.get("bound_certified")
    note = next(n for n in res.notes if "interrupted" in n)
    assert "certifying" in note and "no frontier saved" in note
    assert "frontier saved to" not in " ".join(res.notes)
    assert not list(tmp_path.glob("*/frontier.json"))
    # complete keeps its documented meaning for an uncertified bounded search (the bounded tree finished),
    # and the note of an uncertified search says schedules within the bound may not have run
    assert res.complete and any("may not have run" in n for n in res.notes)


# --------------------------------------------------------------------------- D5: SIGINT with workers
@pytest.mark.parametrize("strategy", ["dpor", "dfs"])
def test_sigint_with_workers_returns_a_result_with_a_note(tmp_path: Path, strategy: str) -> None:
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default handler here")
    body = locked_family(4, 3)  # 369,600 executions: far longer than the 0.8 s before the SIGINT
    timer = threading.Timer(0.8, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        res = _explore(body, strategy=strategy, workers=2, database=tmp_path)
    finally:
        timer.cancel()
    assert res.ok and not res.complete and res.stats.get("interrupted")
    note = next(n for n in res.notes if "interrupted" in n)
    assert "cannot be resumed" in note and "restart" in note
    res2 = dmabuf.explore(locked_family(2, 1), workers=2, database=tmp_path, resume=True)
    assert res2.complete and any("resume=True ignored" in n for n in res2.notes)


# --------------------------------------------------------------------------- D6: frontier of another body
_variant = {"extra": False, "n": 0, "at": -1}


def edited_body() -> None:
    _variant["n"] += 1
    if _variant["n"] == _variant["at"]:
        raise KeyboardInterrupt
    c = Box()
    c.v = 0
    m = Mutex(name="M")

    def w() -> None:
        for _ in range(2):
            if _variant["extra"]:
                READ_ONCE(c, "v")
            mutex_lock(m)
            WRITE_ONCE(c, "v", READ_ONCE(c, "v") + 1)
            mutex_unlock(m)

    ts = [dmabuf.spawn(w) for _ in range(3)]
    for t in ts:
        t.join()


def other_body() -> None:
    c = Box()
    c.v = 0

    def inc() -> None:
        WRITE_ONCE(c, "v", 1)

    t = dmabuf.spawn(inc)
    t.join()


def test_frontier_stores_the_body_key_and_another_bodys_is_not_resumed(tmp_path: Path) -> None:
    _variant.update(extra=False, n=0, at=30)
    first = dmabuf.explore(edited_body, database=tmp_path)
    assert first.stats.get("interrupted")
    src = next(tmp_path.glob("*/frontier.json"))
    assert json.loads(src.read_text())["body"] == database.body_key(edited_body)
    dst = database._dir_of(tmp_path, database.body_key(other_body))
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "frontier.json").write_text(src.read_text())
    full = dmabuf.explore(other_body, database=None)
    with pytest.warns(DatabaseWarning, match="saved frontier does not fit this body; starting afresh"):
        res = dmabuf.explore(other_body, database=tmp_path, resume=True)
    assert res.ok and res.complete and res.executions == full.executions


def test_frontier_of_an_edited_body_starts_afresh_not_nondeterminism(tmp_path: Path) -> None:
    _variant.update(extra=False, n=0, at=60)
    first = dmabuf.explore(edited_body, database=tmp_path, probes=False)
    assert first.stats.get("interrupted") and list(tmp_path.glob("*/frontier.json"))
    _variant.update(extra=True, n=0, at=-1)  # the same qualname and key, another program
    full = dmabuf.explore(edited_body, database=None, probes=False)
    with pytest.warns(DatabaseWarning, match="saved frontier does not fit this body; starting afresh"):
        res = dmabuf.explore(edited_body, database=tmp_path, resume=True, probes=False)
    assert res.ok and res.failure is None, res.failure
    assert res.complete and res.executions == full.executions
    assert not any(n.startswith("resumed after") for n in res.notes)
    assert not list(tmp_path.glob("*/frontier.json"))


# --------------------------------------------------------------------------- D7: corrupt frontier
def _node(kind: str, tids: list[int], n: int, chosen: int) -> list[Any]:
    return [kind, tids, n, -1, 0, chosen, "lock", [], [], []]


_CORRUPT: dict[str, Any] = {
    "executions_str": {"executions": "abc", "state": {"bound": None, "nodes": []}},
    "executions_list": {"executions": [1], "state": {"bound": None, "nodes": []}},
    "executions_negative": {"executions": -50, "state": {"bound": None, "nodes": []}},
    "executions_bool": {"executions": True, "state": {"bound": None, "nodes": []}},
    "state_list": {"executions": 3, "state": [1, 2]},
    "nodes_none": {"executions": 3, "state": {"bound": None, "nodes": None}},
    "node_short": {"executions": 3, "state": {"bound": None, "nodes": [[1, 2]]}},
    "node_garbage": {"executions": 3, "state": {"bound": None, "nodes": [_node("t", [1, 2], 2, 7)]}},
    "node_types": {"executions": 3, "state": {"bound": None, "nodes": [_node("t", ["1"], 1, 1)]}},
    "node_kind": {"executions": 3, "state": {"bound": None, "nodes": [_node("x", [1], 1, 1)]}},
    "stats_list": {"executions": 3, "state": {"bound": None, "nodes": [], "stats": [1]}},
    "stats_values": {"executions": 3, "state": {"bound": None, "nodes": [], "stats": {"races": "x"}}},
    "bound_str": {"executions": 3, "state": {"bound": "1", "nodes": []}},
}


@pytest.mark.parametrize("case", sorted(_CORRUPT))
def test_corrupt_frontier_warns_and_starts_afresh(tmp_path: Path, case: str) -> None:
    body = locked_family(3, 2)
    key = database.body_key(body)
    d = database._dir_of(tmp_path, key)
    d.mkdir(parents=True)
    data = {"format": 1, "strategy": "dpor", "body": key, **_CORRUPT[case]}
    (d / "frontier.json").write_text(json.dumps(data))
    with pytest.warns(DatabaseWarning, match="starting afresh"):
        res = dmabuf.explore(body, database=tmp_path, resume=True)
    assert res.ok and res.complete and res.executions == 90, (res.notes, res.failure)


def test_well_formed_frontier_still_resumes(tmp_path: Path) -> None:
    _cert.update(n=0, at=40)
    first = dmabuf.explore(locked_3x2_interruptible, database=tmp_path, strategy="dfs")
    assert first.stats.get("interrupted")
    _cert.update(n=0, at=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DatabaseWarning)
        res = dmabuf.explore(locked_3x2_interruptible, database=tmp_path, strategy="dfs", resume=True)
    assert res.complete and any(n.startswith("resumed after") for n in res.notes)


def test_certification_walks_pass_clean_outcomes_on_so_lock_order_reports_are_kept() -> None:
    """estimate_bounded_dfs hands every clean walk to on_clean: a lock-order report riding on an ok
    outcome of a walk reaches the search's _note_lockdep instead of being dropped."""
    from dmabuf.explore.certify import estimate_bounded_dfs
    from dmabuf.explore.replaying import track_lock_orders
    from dmabuf.explore.strategies.dfs import DFS
    from dmabuf.runtime import activate, deactivate
    from dmabuf.runtime.controlled import ControlledRuntime

    def body() -> None:
        _nest_in_chosen_order(Mutex(name="cert_A"), Mutex(name="cert_B"))

    rt = ControlledRuntime(DFS(None))
    track_lock_orders(rt)
    seen: list[object] = []
    activate(rt)
    try:
        _est, walks, failed = estimate_bounded_dfs(
            rt, body, 1, on_clean=lambda outcome, walk: seen.append(outcome.extra.get("lockdep"))
        )
    finally:
        deactivate(rt)
    assert failed is None and len(seen) == walks
    assert any(x is not None and "cert_A" in str(x) for x in seen), seen
