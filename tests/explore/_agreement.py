"""Shared by the explorer tests: the DPOR-versus-DFS agreement check of the generated-program properties,
and a body of tasks that share nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dmabuf
from dmabuf.runtime import WRITE, rt


class _Box:
    def __init__(self) -> None:
        self.v = 0


def independent_writers(tasks: int, writes: int) -> Callable[[], None]:
    """A body of ``tasks`` tasks that each write their own object ``writes`` times: nothing conflicts, so
    DPOR needs one execution (plain DFS needs every interleaving)."""

    def body() -> None:
        boxes = [_Box() for _ in range(tasks)]

        def w(b: _Box) -> None:
            for _ in range(writes):
                rt().point("write", b, WRITE)
                b.v += 1

        ts = [dmabuf.spawn(w, b) for b in boxes]
        for t in ts:
            t.join()

    return body


def dpor_agrees_with_dfs(
    make_body: Callable[[set[Any]], Callable[[], None]], cap: int
) -> tuple[dmabuf.ExploreResult, dmabuf.ExploreResult] | None:
    """Explore ``make_body(outcomes)`` under plain DFS and under DPOR (without probes, whose outcomes
    would hide a DPOR miss) and assert they agree: both fail with the same kind, or both pass with the same
    set of outcomes. ``None`` when DFS needs ``cap`` executions or more (too big to enumerate: a lock-order
    report after a capped search says nothing either); else both results, for further checks."""
    dfs_out: set[Any] = set()
    dpor_out: set[Any] = set()
    dfs = dmabuf.explore(make_body(dfs_out), strategy="dfs", max_executions=cap, database=None)
    if dfs.executions >= cap:
        return None
    dpor = dmabuf.explore(make_body(dpor_out), strategy="dpor", database=None, probes=False)
    assert (dfs.failure is None) == (dpor.failure is None), (dfs.failure, dpor.failure)
    if dfs.failure is not None:
        assert dpor.failure is not None and dfs.failure.kind == dpor.failure.kind
    else:
        assert dpor.complete
        assert dpor_out == dfs_out
    return dfs, dpor
