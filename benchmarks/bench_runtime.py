"""Runtime benchmark: the cost of a controlled scheduling point and the explorer's execution rate.

Run: ``python benchmarks/bench_runtime.py [--profile]``. Not a test: it prints measurements next to their
targets and whether each is met; nothing here asserts on time.

Measured in one run (so the ratios compare numbers taken on the same machine in the same state):

* a raw greenlet round trip (switch to a greenlet and back): the unit of the ratios below;
* a controlled scheduling point *without* a task switch: one task calling ``rt().point`` in a loop
  (target <= 1x a round trip);
* a controlled scheduling point *with* a task switch: two tasks calling ``rt().point`` in a loop, with a
  decider that always picks the other task (target <= 3x a round trip);
* executions per second of plain DFS (``dmabuf.explore(body, strategy="dfs")``) on 3 tasks x 2 locked
  increments (``with Mutex: point READ; point WRITE``) (target >= 20,000/s).

``--profile`` adds a cProfile of each measurement (top functions by own time).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections.abc import Callable
from typing import Any

from greenlet import GreenletExit, getcurrent, greenlet

import dmabuf
from dmabuf.runtime import READ, WRITE, Task, activate, deactivate, rt
from dmabuf.runtime.controlled import ControlledRuntime
from dmabuf.sync import Mutex

REPEATS = 5


def best_of(fn: Callable[[], float], repeats: int = REPEATS) -> float:
    """Smallest of several measurements (least disturbed by the rest of the machine)."""
    return min(fn() for _ in range(repeats))


# ---------------------------------------------------------------------------------------------- raw greenlet
def greenlet_round_trip(n: int) -> float:
    """Seconds per round trip: switch into a greenlet and back to the caller."""
    main = getcurrent()

    def loop() -> None:
        while True:
            main.switch()

    g = greenlet(loop)
    g.switch()  # start it
    sw = g.switch
    t0 = time.perf_counter()
    for _ in range(n):
        sw()
    dt = time.perf_counter() - t0
    g.throw(GreenletExit)
    return dt / n


# ---------------------------------------------------------------------------------------------- controlled points
class FirstDecider:
    """Picks the first enabled task (never needed by a single-task body)."""

    def sched(self, r: ControlledRuntime, options: list[Task], cur: Task | None) -> int:
        return 0

    def data(self, r: ControlledRuntime, n: int, label: str) -> int:
        return 0


class AlternateDecider(FirstDecider):
    """Always switches to a task other than the one that reached the point."""

    def sched(self, r: ControlledRuntime, options: list[Task], cur: Task | None) -> int:
        return 1 if options[0] is cur else 0


def _run_controlled(decider: Any, body: Callable[[], Any], max_steps: int) -> None:
    r = ControlledRuntime(decider, max_steps=max_steps)
    activate(r)
    try:
        out = r.run(body)
    finally:
        deactivate(r)
    if not out.ok:
        raise SystemExit(f"benchmark body failed: {out.kind}: {out.message}")


def point_no_switch(n: int) -> float:
    """Seconds per point of a single task: a scheduling decision with one option, no switch."""
    elapsed = [0.0]

    def body() -> None:
        point = rt().point
        obj = object()
        t0 = time.perf_counter()
        for _ in range(n):
            point("op", obj, WRITE)
        elapsed[0] = time.perf_counter() - t0

    _run_controlled(FirstDecider(), body, max_steps=n + 100)
    return elapsed[0] / n


def point_with_switch(n: int) -> float:
    """Seconds per point when every point switches to the other task (two tasks, alternating)."""
    stamps: dict[str, float] = {}

    def worker() -> None:
        point = rt().point
        obj = object()
        for _ in range(n):
            point("op", obj, WRITE)

    def body() -> None:
        a = dmabuf.spawn(worker, name="a")
        b = dmabuf.spawn(worker, name="b")
        stamps["t0"] = time.perf_counter()
        a.join()
        b.join()
        stamps["t1"] = time.perf_counter()

    _run_controlled(AlternateDecider(), body, max_steps=2 * n + 100)
    return (stamps["t1"] - stamps["t0"]) / (2 * n)


# ---------------------------------------------------------------------------------------------- DFS rate
def locked_increments(tasks: int = 3, rounds: int = 2) -> Callable[[], None]:
    def body() -> None:
        m = Mutex("m")
        box = {"n": 0}

        def inc() -> None:
            for _ in range(rounds):
                with m:
                    rt().point("read", box, READ)
                    v = box["n"]
                    rt().point("write", box, WRITE)
                    box["n"] = v + 1

        ts = [dmabuf.spawn(inc) for _ in range(tasks)]
        for t in ts:
            t.join()
        assert box["n"] == tasks * rounds

    return body


def dfs_rate(min_executions: int) -> tuple[float, dmabuf.ExploreResult, int]:
    """Executions per second of complete DFS searches of the program, repeated until at least
    ``min_executions`` executions ran (one search has only 6!/(2!2!2!) = 90 executions: the critical
    sections serialise the tasks, so only the order of the six sections is a choice)."""
    body = locked_increments()
    total = 0
    searches = 0
    res = None
    t0 = time.perf_counter()
    while total < min_executions:
        res = dmabuf.explore(body, strategy="dfs")
        if res.failure is not None:
            raise SystemExit(f"benchmark body failed under DFS:\n{res.failure}")
        total += res.executions
        searches += 1
    dt = time.perf_counter() - t0
    assert res is not None
    return total / dt, res, searches


# ---------------------------------------------------------------------------------------------- report
def profile(label: str, fn: Callable[[], Any], top: int = 12) -> None:
    """Print where the time of ``fn`` goes: own time grouped by module, then the top functions."""
    pr = cProfile.Profile()
    pr.enable()
    fn()
    pr.disable()
    st = pstats.Stats(pr)
    by_module: dict[str, float] = {}
    total = 0.0
    for (filename, _line, func), (_cc, _nc, tt, _ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        if "/dmabuf/" in filename:
            key = "dmabuf/" + filename.split("/dmabuf/")[-1]
        elif "importlib" in filename:
            key = "importlib (imports inside functions)"
        elif filename == "~":
            key = func
        else:
            key = filename.rsplit("/", 1)[-1]
        by_module[key] = by_module.get(key, 0.0) + tt
        total += tt
    print(f"\n--- cProfile: {label} ---")
    print("own time by module:")
    for key, tt in sorted(by_module.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {tt / total * 100:5.1f}%  {key}")
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(top)
    lines = s.getvalue().splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    print("\n".join(lines[start : start + top + 1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=200_000, help="points per point measurement")
    ap.add_argument(
        "--executions", type=int, default=30_000, help="at least this many DFS executions are timed"
    )
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of each measurement")
    args = ap.parse_args(argv)

    n = args.points
    print(f"python {sys.version.split()[0]}, dmabuf {dmabuf.__version__}; best of {REPEATS} runs\n")

    rt_cost = best_of(lambda: greenlet_round_trip(n))
    no_sw = best_of(lambda: point_no_switch(n))
    sw = best_of(lambda: point_with_switch(n // 2))
    rate, res, searches = max((dfs_rate(args.executions) for _ in range(3)), key=lambda x: x[0])

    rows = [
        ("raw greenlet round trip", f"{rt_cost * 1e9:8.0f} ns", "(unit)", "", None),
        (
            "controlled point, no switch",
            f"{no_sw * 1e9:8.0f} ns",
            f"{no_sw / rt_cost:5.2f}x",
            "<= 1x",
            no_sw / rt_cost <= 1.0,
        ),
        (
            "controlled point, with switch",
            f"{sw * 1e9:8.0f} ns",
            f"{sw / rt_cost:5.2f}x",
            "<= 3x",
            sw / rt_cost <= 3.0,
        ),
        (
            "DFS executions/s (3 tasks x 2 locked incs)",
            f"{rate:8.0f} /s",
            "",
            ">= 20000/s",
            rate >= 20_000,
        ),
    ]
    print(f"{'measurement':<44}{'value':>12}  {'ratio':>7}  {'target':<12} met")
    for name, value, ratio, target, met in rows:
        verdict = "" if met is None else ("yes" if met else "NO")
        print(f"{name:<44}{value:>12}  {ratio:>7}  {target:<12} {verdict}")
    print(
        f"\nDFS: {searches} complete searches of {res.executions} executions each "
        f"(complete={res.complete}), explore() set-up included"
    )

    if args.profile:
        profile("controlled point, no switch", lambda: point_no_switch(n))
        profile("controlled point, with switch", lambda: point_with_switch(n // 2))
        profile("DFS", lambda: dfs_rate(min(args.executions, 10_000)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
