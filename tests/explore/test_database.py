"""The failure database (replay stored failures first, atomic writes, stale/corrupt entries) and resuming
an interrupted exhaustive search from its saved frontier."""

import json
import warnings

import pytest

import dmabuf
from dmabuf.explore import database
from dmabuf.explore.database import DatabaseWarning
from dmabuf.kernel import Mutex
from dmabuf.runtime import READ, WRITE, rt

BUGGY = True


class Box:
    def __init__(self):
        self.v = 0


def racy_body():
    box = Box()

    def inc():
        rt().point("read", box, READ)
        x = box.v
        rt().point("write", box, WRITE)
        box.v = x + (1 if BUGGY else 0)

    a, b = dmabuf.spawn(inc), dmabuf.spawn(inc)
    a.join()
    b.join()
    if BUGGY:
        assert box.v == 2, "lost update"


def new_process():
    """What a fresh process sees: entries written by this one become replayable."""
    database._WRITTEN.clear()


def test_failure_is_stored_and_replayed_first(tmp_path):
    res = dmabuf.explore(racy_body, database=tmp_path)
    assert res.failure is not None
    entries = list(tmp_path.glob("*/*.json"))
    assert len(entries) == 1
    data = json.loads(entries[0].read_text())
    assert data["kind"] == "exception" and data["schedule"] == res.failure.schedule
    assert (entries[0].parent / "body.txt").read_text().strip().endswith(":racy_body")
    # same process: an independent search
    again = dmabuf.explore(racy_body, database=tmp_path)
    assert "from_database" not in again.stats
    new_process()
    third = dmabuf.explore(racy_body, database=tmp_path)
    assert third.stats.get("from_database") is True and third.executions == 1
    assert third.failure.schedule == res.failure.schedule
    assert any("still fails" in n for n in third.notes)


def test_stale_entry_is_deleted(tmp_path):
    global BUGGY
    dmabuf.explore(racy_body, database=tmp_path)
    new_process()
    BUGGY = False
    try:
        res = dmabuf.explore(racy_body, database=tmp_path)
    finally:
        BUGGY = True
    assert res.ok and res.complete
    assert not list(tmp_path.glob("*/*.json"))
    assert any("no longer reproduces" in n for n in res.notes)


def test_corrupt_and_foreign_entries_are_skipped_with_a_warning(tmp_path):
    dmabuf.explore(racy_body, database=tmp_path)
    d = next(tmp_path.glob("*/"))
    (d / "0-a.json").write_text("{not json")
    (d / "0-b.json").write_text(json.dumps({"format": 99, "kind": "x", "schedule": "y"}))
    (d / "0-c.json").write_text(json.dumps({"format": 1, "kind": "exception", "schedule": "garbage"}))
    new_process()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = dmabuf.explore(racy_body, database=tmp_path)
    msgs = [str(x.message) for x in w if issubclass(x.category, DatabaseWarning)]
    assert len(msgs) == 3, msgs
    assert res.failure is not None  # the good entry still replays
    assert (d / "0-a.json").exists()  # skipped, not deleted


def test_unwritable_database_warns_and_keeps_the_failure(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.warns(DatabaseWarning, match="cannot write"):
        res = dmabuf.explore(racy_body, database=blocker / "db")
    assert res.failure is not None and res.failure.kind == "exception"


def test_database_none_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DMABUF_DATABASE", raising=False)
    dmabuf.explore(racy_body, database=None)
    assert not (tmp_path / ".dmabuf").exists()
    dmabuf.explore(racy_body)  # default: .dmabuf in the working directory
    assert list((tmp_path / ".dmabuf").glob("*/*.json"))


def locked_3x2():
    box = Box()
    m = Mutex()

    def w():
        for _ in range(2):
            with m:
                rt().point("read", box, READ)
                x = box.v
                rt().point("write", box, WRITE)
                box.v = x + 1

    ts = [dmabuf.spawn(w) for _ in range(3)]
    for t in ts:
        t.join()
    counter["runs"] += 1
    if counter["runs"] == counter["interrupt_at"]:
        raise KeyboardInterrupt


counter = {"runs": 0, "interrupt_at": -1}


@pytest.mark.parametrize("strategy,total", [("dpor", 90), ("dfs", None)])
def test_interrupt_and_resume_cover_the_same_executions(tmp_path, strategy, total):
    counter.update(runs=0, interrupt_at=-1)
    full = dmabuf.explore(locked_3x2, strategy=strategy, database=None)
    assert full.complete
    if total is not None:
        assert full.executions == total
    counter.update(runs=0, interrupt_at=full.executions // 3)
    first = dmabuf.explore(locked_3x2, strategy=strategy, database=tmp_path)
    assert first.stats.get("interrupted") and not first.complete and first.failure is None
    assert any("frontier saved" in n for n in first.notes)
    assert (next(tmp_path.glob("*/")) / "frontier.json").exists()
    counter.update(interrupt_at=-1)
    second = dmabuf.explore(locked_3x2, strategy=strategy, database=tmp_path, resume=True)
    assert second.complete and second.ok
    assert any("resumed after" in n for n in second.notes)
    # the interrupted execution is run again after resuming; nothing is skipped or repeated otherwise
    assert second.executions == full.executions
    assert not (next(tmp_path.glob("*/")) / "frontier.json").exists()


def test_resume_without_frontier_starts_afresh(tmp_path):
    counter.update(runs=0, interrupt_at=-1)
    res = dmabuf.explore(locked_3x2, database=tmp_path, resume=True)
    assert res.complete and res.executions == 90
    assert any("no saved frontier" in n for n in res.notes)


def test_bodies_of_one_factory_get_their_own_entries(tmp_path) -> None:
    """Closures made by one factory share a qualified name; the database must not replay (and then drop)
    one body's stored failure on another: the values the closure captured are part of the body's key."""
    import functools

    from dmabuf.explore.database import body_key

    def make(n, names):
        def body():
            return n, names

        return body

    assert body_key(make(3, ("a",))) != body_key(make(5, ("a",)))
    assert body_key(make(3, ("a",))) == body_key(make(3, ("a",)))
    assert body_key(make(3, ["a", "b"])) != body_key(make(3, ["a"]))
    assert body_key(make(3, object())) == body_key(make(3, object()))  # identity is not part of the key
    long_a, long_b = body_key(make("a" * 10_000, ())), body_key(make("a" * 9_999, ()))
    assert long_a != long_b and len(long_a) < 300  # long values are digested, the key stays short

    def f(x):
        return x

    assert body_key(functools.partial(f, 1)) != body_key(functools.partial(f, 2))

    failing = lost_update_factory(True)
    passing = lost_update_factory(False)
    first = dmabuf.explore(failing, database=tmp_path)
    assert first.failure is not None
    new_process()
    res = dmabuf.explore(passing, database=tmp_path)
    assert res.ok and res.complete and not res.stats.get("from_database")
    new_process()
    again = dmabuf.explore(failing, database=tmp_path)
    assert again.failure is not None and again.stats.get("from_database") is True


def lost_update_factory(racy: bool):
    from dmabuf.kernel import READ_ONCE, WRITE_ONCE, Mutex

    def body():
        class C:
            value = 0

        c = C()
        m = Mutex(name="m")

        def inc():
            if not racy:
                m.lock()
            WRITE_ONCE(c, "value", READ_ONCE(c, "value") + 1)
            if not racy:
                m.unlock()

        ts = [dmabuf.spawn(inc) for _ in range(2)]
        for t in ts:
            t.join()
        assert c.value == 2

    return body
