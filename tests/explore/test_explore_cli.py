"""``dmabuf explore``: the explorer's options reach the search from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from dmabuf.cli import main


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["explore", *args])
    return r.exit_code, r.output


def test_workers_split_the_search() -> None:
    code, out = run("dmabuf.examples.classic:locked_increments", "--workers", "2", "--database", "none")
    assert code == 0 and "ok: 90 executions" in out and "search complete" in out, out


def test_a_failure_is_stored_in_the_database_directory_and_found_first_next_time(tmp_path: Path) -> None:
    db = tmp_path / "db"
    code, out = run("dmabuf.examples.classic:abba_deadlock", "--database", str(db), "--no-probes")
    assert code == 1 and "deadlock" in out, out
    assert any(db.rglob("*")), "the failing schedule was not stored"
    # a process never replays what it stored itself: the next run is another process
    nxt = subprocess.run(
        [sys.executable, "-m", "dmabuf", "explore", "dmabuf.examples.classic:abba_deadlock", "--database", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert nxt.returncode == 1 and "deadlock" in nxt.stdout and "database" in nxt.stdout, nxt.stdout + nxt.stderr


def test_database_none_leaves_no_files(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DMABUF_DATABASE", raising=False)
    code, out = run("dmabuf.examples.classic:abba_deadlock", "--database", "none")
    assert code == 1 and not any(tmp_path.iterdir()), list(tmp_path.iterdir())


def test_resume_without_a_saved_frontier_says_so(tmp_path: Path) -> None:
    code, out = run("dmabuf.examples.classic:locked_increments", "--database", str(tmp_path), "--resume")
    assert code == 0 and "ok: 90 executions" in out and "note:" in out, out


def test_bad_worker_count_is_refused() -> None:
    code, out = run("dmabuf.examples.classic:locked_increments", "--workers", "0")
    assert code == 2 and "--workers" in out, out


def test_bad_option_values_are_usage_errors_not_tracebacks() -> None:
    for args, said in (
        (["--time-budget", "-1"], "time_budget must be a positive number"),
        (["--strategy", "pct", "--preemption-bound", "1"], "preemption_bound does not apply to strategy='pct'"),
    ):
        code, out = run("dmabuf.examples.classic:lost_update", "--database", "none", *args)
        assert code == 2 and said in out and "Traceback" not in out, out


def test_a_malformed_replay_string_is_a_bad_parameter() -> None:
    r = CliRunner().invoke(main, ["replay", "dmabuf.examples.classic:lost_update", "garbage"])
    assert r.exit_code == 2 and "Invalid value for SCHEDULE" in r.output and "dmabuf replay string" in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception


def test_pct_prints_its_bound() -> None:
    code, out = run("dmabuf.examples.classic:locked_increments", "--strategy", "pct", "--max-executions", "5",
                    "--database", "none")
    assert code == 0 and "sampled (not exhaustive)" in out, out
    assert "PCT depth 3: each execution finds any depth-3 bug with probability >=" in out, out
    assert "executions find it with 99% probability" in out, out


def test_demo_leaves_no_database_and_runs_the_same_twice(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    outs = [CliRunner().invoke(main, ["demo"]).output for _ in range(2)]
    assert outs[0].count("as expected") == 3 and not (tmp_path / ".dmabuf").exists()
    assert [ln for ln in outs[0].splitlines() if ln.startswith("==")] == [
        ln for ln in outs[1].splitlines() if ln.startswith("==")
    ]
