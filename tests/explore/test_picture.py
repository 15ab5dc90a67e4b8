"""The picture of a failing execution: one column per task, time going down."""

from __future__ import annotations

import dmabuf
from dmabuf.examples.classic import abba_deadlock, lost_update
from dmabuf.explore.picture import lanes
from dmabuf.kernel import HZ, Completion
from dmabuf.runtime._trace import TraceEvent


def _columns(line: str) -> list[str]:
    return [c.strip() for c in line.split("|")]


def test_each_event_sits_in_its_tasks_column() -> None:
    f = dmabuf.explore(lost_update, database=None).failure
    assert f is not None
    pic = f.picture()
    lines = pic.splitlines()
    head = _columns(lines[0])
    assert head == ["step", "main", "inc1", "inc2"]
    rows = [_columns(line) for line in lines[2:]]
    # every trace event is one row, in trace order, minus the preemption markers (shown on the next row)
    shown = [e for e in f.trace if e.op != "preempt"]
    assert len(rows) == len(shown)
    for row, ev in zip(rows, shown, strict=True):
        col = head.index(ev.task)
        assert row[col], (row, ev)
        assert all(not cell for k, cell in enumerate(row) if k not in (0, col)), (row, ev)
    assert "<< preempts" in pic
    assert "!! raised AssertionError" in lines[-1]


def test_deadlock_picture_shows_who_waits_for_what() -> None:
    f = dmabuf.explore(abba_deadlock, database=None).failure
    assert f is not None and f.kind == "deadlock"
    pic = f.picture()
    assert ".. still waiting to lock A" in pic and ".. still waiting to lock B" in pic
    assert "Trace (" in f.story() and pic in f.story()


def test_time_jumps_get_a_row_and_long_cells_are_clipped() -> None:
    def body() -> None:
        c = Completion("a_completion_with_a_rather_long_name_indeed")
        assert c.wait_timeout(HZ) != 0, "nobody completed it"

    f = dmabuf.explore(body, database=None).failure
    assert f is not None
    pic = f.picture(max_width=20)
    assert any(line.split("|", 1)[1].strip().startswith("-- virtual time") for line in pic.splitlines()[2:])
    for line in pic.splitlines()[2:]:
        cells = line.split("|")[1:]
        if not cells[0].strip().startswith("--"):
            assert all(len(c.strip()) <= 20 for c in cells), line
    assert "~" in pic  # the clipped cell says so


def test_empty_trace() -> None:
    assert lanes([]) == "(empty trace)"
    assert "x" in lanes([TraceEvent(1, "x", "read", "-")])
