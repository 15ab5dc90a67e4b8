"""Shared checks for the hazards x designs cells (used by test_h1_h5.py and test_h6_h10.py)."""

from __future__ import annotations

from typing import Any

import pytest

from dmabuf.scenarios import runner

SAFE = "safe by design"
DUTY = "driver duty"
NA = "n/a"

_cache: dict[tuple[str, str], Any] = {}


def verdict(sid: str, policy: str) -> Any:
    """The runner's verdict for one cell, computed once per test session."""
    missing = runner.missing_module(policy)
    if missing is not None:
        pytest.skip(f"{missing} has not landed yet (the {policy} column is enabled once it does)")
    key = (sid, policy)
    if key not in _cache:
        _cache[key] = runner.verdict(sid, policy)
    return _cache[key]


def check_cell(expected: dict[tuple[str, str], tuple[str, str]], sid: str, policy: str) -> None:
    """Assert a cell's verdict and what that verdict requires (complete searches, a counterexample...)."""
    want, why = expected[(sid, policy)]
    v = verdict(sid, policy)
    assert v.kind == want, f"{sid} x {policy}: expected {want} ({why}), got {v.label}\n" + (
        v.naive.failure.story() if v.naive is not None and v.naive.failure is not None else ""
    )
    if want == SAFE:
        assert v.naive is not None and v.naive.complete, "safe by design needs a complete search"
    if want == DUTY:
        assert v.naive is not None and v.naive.failure is not None
        assert v.careful is not None and v.careful.ok and v.careful.complete
        assert v.duty
    if want == NA:
        assert v.reason and not v.runs


def check_counterexample(sid: str, kind: str, text: str) -> None:
    """The naive driver's counterexample under the mainline design (importer-tracks): the oracle names the
    right failure, within 2 preemptions, and its replay string reproduces it."""
    import dmabuf
    from dmabuf.scenarios import get_scenario

    f = verdict(sid, "importer-tracks").naive.failure
    assert f.kind == kind and text in f.message, f.story()
    assert f.preemptions <= 2
    again = dmabuf.replay(get_scenario(sid).body("importer-tracks", "naive"), f.schedule)
    assert again is not None and again.kind == kind and text in again.message
