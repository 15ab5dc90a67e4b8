"""Shared fixtures. ``run_on`` runs one test body on both runtimes (the Trio ``generic_lock_test`` idea):

    def test_x(run_on):
        def body(): ...
        run_on(body)          # real threads once, then every interleaving under the explorer (DFS)

Under the explorer the body must pass on *every* execution; a failure raises AssertionError with the story.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

import pytest

import dmabuf
from dmabuf.kernel import set_warn_mode

# The failure database of the test session lives in a temporary directory: runs stay independent of
# earlier runs and the working tree stays clean. Tests of the database pass database=<dir> explicitly.
os.environ.setdefault("DMABUF_DATABASE", tempfile.mkdtemp(prefix="dmabuf-test-db-"))


class Runner:
    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __call__(
        self,
        body: Callable[[], Any],
        *,
        max_executions: int | None = 20_000,
        strategy: str = "dfs",
        preemption_bound: int | None = None,
    ) -> Any:
        if self.kind == "threads":
            return dmabuf.run_threads(body, timeout=60)
        res = dmabuf.explore(
            body, strategy=strategy, max_executions=max_executions, preemption_bound=preemption_bound
        )
        if res.failure is not None:
            raise AssertionError(str(res.failure))
        return res

    def __repr__(self) -> str:
        return self.kind


@pytest.fixture(params=["threads", "controlled"])
def run_on(request: pytest.FixtureRequest) -> Runner:
    """Run a body on real threads or under the explorer."""
    return Runner(request.param)


@pytest.fixture(autouse=True)
def _reset_warn_mode() -> Any:
    yield
    set_warn_mode("raise")
