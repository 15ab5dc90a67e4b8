"""End to end: a TTM-like exporter, a dynamic (amdgpu-like) and a static importer share a buffer while a third
task evicts it; the data-integrity oracle (stale mapping, stale content, no byte lost via check_all) must stay
silent on the correct drivers and catch each deliberately broken one.

Search bounds (the full space is ~10k executions at preemption bound 2): every test names its bound. The
scenario's tasks start behind a barrier so that DPOR sees all of them enabled before the first conflicting
step (see the report: DPOR misses reversals whose later task is spawned after the earlier task's step)."""

from __future__ import annotations

from typing import Any

import pytest
from _scenario import DYN, INIT, shared_eviction

import dmabuf
from dmabuf.errors import LostWrite, StaleContent, StaleMapping


def _explore(body: Any, **kw: Any) -> dmabuf.ExploreResult:
    return dmabuf.explore(body, database=None, **kw)


# ------------------------------------------------------------------ the correct drivers
def test_clean_scenario_on_real_threads() -> None:
    for seed in range(3):
        dmabuf.run_threads(shared_eviction(), seed=seed, timeout=60)


def test_clean_scenario_exhaustive_at_preemption_bound_1() -> None:
    rec: dict[str, Any] = {}
    res = _explore(shared_eviction(record=rec), preemption_bound=1)
    assert res.ok and res.complete, res.failure
    # ~270 (~370 while a ghost's pages were freed by the evicting task's reclaim under lru_lock; now the
    # copy task frees them once the move fence signalled, so fewer steps conflict)
    assert res.executions > 200
    # the search went through every interesting path of the drivers
    assert rec["x_evicted"] and rec["notified"] and rec["remapped"] and rec["skipped_pinned"], rec
    assert rec["x_evicted"] < rec["executions"]  # ...and through the ones where W was the victim


def test_clean_scenario_preemption_bound_2_first_1000_executions() -> None:
    rec: dict[str, Any] = {}
    res = _explore(shared_eviction(record=rec), preemption_bound=2, max_executions=1000)
    assert res.ok, res.failure
    assert res.executions == 1000
    assert rec.get("x_evicted") and rec.get("notified"), rec


@pytest.mark.slow
def test_clean_scenario_exhaustive_at_preemption_bound_2() -> None:
    res = _explore(shared_eviction(), preemption_bound=2)
    assert res.ok and res.complete, res.failure
    assert res.executions > 4000  # ~4,800 (~9,800 before ghosts were freed by their copy task)


def test_clean_scenario_with_separate_display_engine() -> None:
    body = shared_eviction(two_engines=True)
    dmabuf.run_threads(body, timeout=60)
    res = _explore(body, preemption_bound=1, max_executions=400)
    assert res.ok, res.failure


# ------------------------------------------------------------------ broken importers are caught
def _failure(body: Any, **kw: Any) -> Any:
    res = _explore(body, preemption_bound=2, max_executions=3000, **kw)
    assert res.failure is not None, "the oracle missed the bug"
    assert res.failure.kind == "exception", res.failure
    return res.failure


def test_importer_forgetting_the_move_fence_is_stale_content() -> None:
    # W pinned: X is the only victim; the job's dependencies leave out the KERNEL (move) fence
    f = _failure(shared_eviction(static=False, pin_w=True, wait_move_fence=False))
    assert isinstance(f.exception, StaleContent), f
    msg = str(f.exception)
    assert "move#1(X VRAM->GTT)" in msg and "X@GTT/gen1" in msg, msg


def test_importer_forgetting_the_move_fence_in_the_full_scenario() -> None:
    f = _failure(shared_eviction(wait_move_fence=False))
    assert isinstance(f.exception, StaleContent), f


def test_importer_not_adding_its_job_fence_loses_the_write() -> None:
    # the eviction's copy does not wait for the job: its write lands in the old pages after the copy
    # (lost write) or after they were freed (stale mapping)
    f = _failure(shared_eviction(static=False, pin_w=True, add_job_fence=False))
    assert isinstance(f.exception, (LostWrite, StaleMapping)), f
    assert "X" in str(f.exception)


def test_importer_unmapping_in_move_notify_while_its_job_runs() -> None:
    f = _failure(shared_eviction(static=False, pin_w=True, unmap_in_move_notify=True))
    assert isinstance(f.exception, StaleMapping), f
    assert "after it was unmapped" in str(f.exception)


def test_static_importer_detaching_before_its_job_finished() -> None:
    # the detach unmaps and unpins the cached mapping while the read job still uses it
    f = _failure(shared_eviction(static_kw={"wait_before_detach": False}))
    assert isinstance(f.exception, StaleMapping), f
    assert "dma_buf_detach" in str(f.exception)


def test_values() -> None:
    assert INIT != DYN and len(INIT) == len(DYN) == 4
