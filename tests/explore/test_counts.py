"""Exact execution counts derived in closed form.

How spawn and join contribute (see dmabuf/runtime/controlled.py): a spawned task starts at its spawner's
next scheduling point, before the decision there, and runs up to its own first point; joining a finished task is a LOCAL step that runs without a decision,
so neither adds branches. The body below therefore contributes no choices of its own: the executions are
exactly the interleavings of the workers' points.
"""

from math import comb, factorial

import pytest

import dmabuf
from dmabuf.runtime import WRITE, rt


def make_body(points_per_task: list[int], choose_in_first: int = 0):
    def worker(k: int, n: int, do_choose: int) -> None:
        if do_choose:
            dmabuf.choose(do_choose)
        for i in range(n):
            rt().point("op", f"x{k}.{i}", WRITE)

    def body() -> None:
        tasks = [
            dmabuf.spawn(worker, k, n, choose_in_first if k == 0 else 0)
            for k, n in enumerate(points_per_task)
        ]
        for t in tasks:
            t.join()

    return body


def multinomial(ns: list[int]) -> int:
    out = factorial(sum(ns))
    for n in ns:
        out //= factorial(n)
    return out


@pytest.mark.parametrize("ns", [[1, 1], [2, 1], [3, 3], [2, 2, 2], [1, 1, 1, 1], [4, 2]])
def test_dfs_counts_are_multinomial(ns):
    res = dmabuf.explore(make_body(ns), strategy="dfs")
    assert res.ok and res.complete
    assert res.executions == multinomial(ns)


def test_two_by_three_is_twenty():
    res = dmabuf.explore(make_body([3, 3]), strategy="dfs")
    assert res.executions == comb(6, 3) == 20


def test_preemption_bound_zero_gives_one_execution_per_task_order():
    assert dmabuf.explore(make_body([3, 3]), strategy="dfs", preemption_bound=0).executions == 2
    assert dmabuf.explore(make_body([2, 2, 2]), strategy="dfs", preemption_bound=0).executions == 6


def test_preemption_bound_one():
    # 2 tasks of n points, at most one preemption: first task chosen (2 ways), then either no preemption
    # (1) or one preemption at one of the n-1 inner points of the running task... plus the points where
    # the other task is later preempted back is a second preemption (not allowed). Counted by brute force below.
    n = 3
    res = dmabuf.explore(make_body([n, n]), strategy="dfs", preemption_bound=1)
    full = dmabuf.explore(make_body([n, n]), strategy="dfs")
    assert res.complete and 2 < res.executions < full.executions
    # closed form: for each first task: 1 (no switch) + (n-1) (switch before one of points 2..n, other task
    # then runs to completion, first resumes without preemption) = n  -> total 2n
    assert res.executions == 2 * n


def test_choose_multiplies_count():
    res = dmabuf.explore(make_body([3, 3], choose_in_first=3), strategy="dfs")
    assert res.executions == 3 * 20


def test_choose_alone():
    seen = []

    def body():
        seen.append((dmabuf.choose(2), dmabuf.choose(3)))

    res = dmabuf.explore(body, strategy="dfs")
    assert res.executions == 6
    assert sorted(seen) == [(a, b) for a in range(2) for b in range(3)]


def test_max_executions_stops_incomplete():
    res = dmabuf.explore(make_body([3, 3]), strategy="dfs", max_executions=5)
    assert res.executions == 5 and not res.complete and res.ok
