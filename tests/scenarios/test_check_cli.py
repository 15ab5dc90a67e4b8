"""``dmabuf check``: table, summary, --json, --explain, --budget, option errors."""

from __future__ import annotations

import json

from click.testing import CliRunner

import dmabuf
from dmabuf.cli import main


def _run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["check", *args])
    return r.exit_code, r.output


def test_table_and_summary() -> None:
    code, out = _run("--scenario", "H1", "--scenario", "H2", "--policy", "importer-tracks",
                     "--policy", "core-filters-reentry")
    assert code == 0, out
    assert "H1 notify without a" in out and "driver duty" in out and "ignore notify" in out
    assert "importer-tracks        2 driver duties, 0 unsafe, 0 safe" in out
    assert "core-filters-reentry   1 driver duty, 0 unsafe, 1 safe" in out
    assert "DPOR" in out
    # which build of the explorer core ran (a silent fallback to the slower sources shows here)
    assert f"Explorer core: {dmabuf.core_build()}." in " ".join(out.split())


def test_unknown_policy_is_a_usage_error() -> None:
    code, out = _run("--scenario", "H1", "--policy", "importer-tracks", "--policy", "no-such-design")
    assert code == 2, out
    assert "unknown mapping-tracking policy 'no-such-design'" in out and "importer-tracks" in out
    assert "driver duty" not in out  # refused before any search ran


def test_json() -> None:
    code, out = _run("--scenario", "H2", "--policy", "importer-tracks", "--json")
    assert code == 0
    data = json.loads(out)
    (cell,) = data["cells"]
    assert cell["scenario"] == "H2" and cell["verdict"] == "driver duty"
    assert cell["runs"][0]["failure"]["kind"] == "exception"
    assert data["summary"] == [{"policy": "importer-tracks", "driver_duties": 1, "unsafe": 0, "safe": 0}]
    # each run says how many reorderings the bounded search dropped (what "complete" does not cover)
    assert all(isinstance(r["bound_skipped"], int) and r["bound_skipped"] >= 0 for r in cell["runs"])


def test_json_reports_the_reorderings_a_bounded_search_dropped() -> None:
    code, out = _run("--scenario", "H4", "--policy", "importer-tracks", "--json")
    assert code == 0
    (cell,) = json.loads(out)["cells"]
    assert cell["label"].startswith("safe") and cell["runs"][0]["bound_skipped"] > 0


def test_explain_prints_story_and_replay() -> None:
    code, out = _run("--explain", "H3", "--policy", "importer-tracks")
    assert code == 0, out
    assert "H3 (map recorded after unlock) under importer-tracks: driver duty" in out
    assert "stale mapping" in out and "Trace (" in out
    assert "Replay string: dmabuf-" in out and "get_scenario('H3').body('importer-tracks', 'naive')" in out


def test_explain_of_a_safe_cell() -> None:
    code, out = _run("--explain", "H2", "--policy", "core-filters-reentry")
    assert code == 0 and "safe by design" in out and "No counterexample" in out


def test_budget_and_errors() -> None:
    code, out = _run("--scenario", "H4", "--policy", "importer-tracks", "--budget", "executions=2,preemptions=none")
    assert code == 0 and "safe (bounded)" in out and "unbounded preemptions" in out
    code, out = _run("--budget", "bogus=1")
    assert code != 0 and "unknown budget key" in out
    code, out = _run("--explain", "H1")
    assert code != 0 and "exactly one --policy" in out
    code, out = _run("--scenario", "H99")
    assert code != 0 and "unknown scenario" in out


def test_explain_says_what_a_finished_bounded_search_left_out() -> None:
    code, out = _run("--explain", "H4", "--policy", "importer-tracks")
    assert code == 0 and "search complete; it dropped" in out and "may not have run" in out
    code, out = _run("--explain", "H2", "--policy", "core-filters-reentry")
    assert code == 0 and "search complete." in out and "reordering" not in out  # 6 executions, none dropped
