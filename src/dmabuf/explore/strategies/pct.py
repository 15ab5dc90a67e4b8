"""PCT: probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi, Nagarakatte, ASPLOS 2010,
"A randomized scheduler with probabilistic guarantees of finding bugs").

One execution
-------------
* Every task gets a random priority the first time it shows up at a branch. Priorities are drawn from a
  seeded RNG as ``depth + U[0, 1)``, so they are distinct and their order is a uniformly random permutation
  however many tasks appear (a task seen later is inserted at a uniformly random rank).
* ``depth - 1`` *priority change points* ``c_1 .. c_{d-1}`` are drawn uniformly (without repetition where
  possible) from ``1 .. k``, where ``k`` estimates the number of steps of an execution.
* At every branch the enabled task with the highest priority runs. When the ``i``-th step is a change point
  ``c_j``, the task that runs it gets priority ``j`` afterwards (below every initial priority), so the next
  branch goes to someone else -- that is the only way PCT preempts.
* Data choices (``dmabuf.choose``) are uniformly random and are not steps.

What a *step* is here
---------------------
A step is a scheduling *branch*: a point where the runtime asks the strategy because more than one task is
enabled. Forced steps (one enabled task) cannot be reordered, so counting them would only dilute ``k`` and
lower the chance of placing a change point where it matters. ``k`` is the largest number of branches of any
execution seen so far (``DEFAULT_STEPS`` before the first execution finishes).

Guarantee
---------
For a program with at most ``n`` tasks and ``k`` steps, each execution finds a given bug of depth ``d``
(``d`` ordering constraints between events) with probability at least ``p = 1 / (n * k^(d-1))``; ``R =
ceil(ln 0.01 / ln(1 - p))`` executions find it with probability >= 99%. :meth:`PCT.bound_text` says so in
words and ``result.stats`` carries the numbers (``pct_bound``, ``pct_runs_for_99``, ``tasks``, ``steps``).
The bound is computed from the largest ``n`` and ``k`` seen, so it is only as good as those estimates: an
execution longer than any seen before may have had its change points drawn from too short a range.

PCT is never complete: the search runs until ``max_executions``, ``time_budget`` or the first failure.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from ...errors import InvalidArgument
from ...runtime import Task
from ...runtime.controlled import ControlledRuntime, Outcome
from .base import Branch, PathStrategy

__all__ = ["DEFAULT_DEPTH", "DEFAULT_STEPS", "MAX_DEPTH", "PCT", "pct_bound", "runs_for", "runs_for_99"]

#: ``k`` before any execution has finished (typical model programs have tens of branches).
DEFAULT_STEPS = 64
#: the bug depth PCT targets when ``explore`` is given none (explorer-api.md lists no ``depth``): two change
#: points, so the guarantee covers bugs of up to three ordering constraints (up to two preemptions)
DEFAULT_DEPTH = 3
#: the deepest bug PCT is asked to target (each execution draws ``depth - 1`` change points)
MAX_DEPTH = 100


def _denominator(n: int, k: int, d: int) -> int:
    """``n * k^(d-1)``, exactly (a Python int: no overflow however deep)."""
    return max(1, n) * int(max(1, k) ** (d - 1))  # (int ** int is typed Any: a negative power is a float)


def pct_bound(n: int, k: int, d: int) -> float:
    """The per-execution probability PCT guarantees for a depth-``d`` bug: ``1 / (n * k^(d-1))`` (0.0 when
    that is below the smallest float)."""
    denom = _denominator(n, k, d)
    return 1.0 / denom if denom.bit_length() <= 1000 else 0.0


def runs_for(p: float, confidence: float = 0.99) -> int:
    """Executions needed to see an event of per-run probability ``p`` with the given confidence."""
    if p >= 1.0:
        return 1
    if p <= 0.0:
        raise ValueError("probability must be positive")
    return math.ceil(math.log(1.0 - confidence) / math.log1p(-p))


def runs_for_99(n: int, k: int, d: int) -> int:
    """:func:`runs_for` at 99% of :func:`pct_bound`, exact for any depth: for a bound too small for a float,
    ``ceil(ln(100) * n * k^(d-1))`` (the limit of the formula, an upper bound on it) in integers."""
    denom = _denominator(n, k, d)
    if denom.bit_length() <= 50:
        return runs_for(1.0 / denom)
    return denom * 4_605_170_186 // 1_000_000_000 + 1  # ln(100) = 4.605170186...


def check_depth(depth: Any) -> int:
    """Validate PCT's ``depth`` argument (``None``: :data:`DEFAULT_DEPTH`); the message says what to pass."""
    if depth is None:
        return DEFAULT_DEPTH
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise InvalidArgument(
            f"depth must be an int >= 1 (the PCT bug depth, e.g. depth=2), got {type(depth).__name__} {depth!r}"
        )
    if depth < 1:
        raise InvalidArgument(f"depth must be an int >= 1 (the PCT bug depth, e.g. depth=2), got {depth}")
    if depth > MAX_DEPTH:
        raise InvalidArgument(
            f"depth={depth} makes no sense for PCT: a bug of depth d needs d ordering constraints, and the "
            f"guarantee 1/(n*k^(d-1)) vanishes long before d={MAX_DEPTH}; pass 1..{MAX_DEPTH} (2 or 3 finds "
            "most bugs), or use strategy='dpor' to cover every order"
        )
    return depth


class PCT(PathStrategy):
    """The ``"pct"`` strategy. See the module docstring."""

    name = "pct"
    exhaustive = False

    def __init__(self, depth: Any, seed: int, default_steps: int = DEFAULT_STEPS) -> None:
        super().__init__()
        self.depth = check_depth(depth)
        if isinstance(default_steps, bool) or not isinstance(default_steps, int) or default_steps < 1:
            raise InvalidArgument(f"default_steps must be an int >= 1, got {default_steps!r}")
        self.rng = random.Random(seed)
        self.default_steps = default_steps
        self.max_steps_seen = 0  # branches of the longest execution so far
        self.max_tasks_seen = 0
        self.executions = 0
        # per execution
        self.prio: dict[int, float] = {}
        self.changes: dict[int, int] = {}  # step number -> new priority
        self.nsteps = 0
        self.stats: dict[str, Any] = {}
        self._new_execution()
        self._update_stats()

    # ------------------------------------------------------------------ estimates and the bound
    @property
    def k(self) -> int:
        """The current estimate of the number of steps of an execution."""
        return self.max_steps_seen or self.default_steps

    @property
    def n(self) -> int:
        return max(1, self.max_tasks_seen)

    def bound(self) -> float:
        return pct_bound(self.n, self.k, self.depth)

    def bound_text(self) -> str:
        """One sentence: the guarantee for the estimates seen so far."""
        d, n, k = self.depth, self.n, self.k
        p = self.bound()
        runs = runs_for_99(n, k, d)
        return (
            f"PCT depth {d}: each execution finds any depth-{d} bug with probability >= 1/(n*k^(d-1)) = "
            f"1/({n}*{k}^{d - 1}) = {p:.3g} (n = {n} tasks, k = {k} scheduling branches, the most seen); "
            f"{runs if runs < 10**15 else f'about 10^{len(str(runs)) - 1}'} executions find it with 99% "
            "probability"
        )

    def _update_stats(self) -> None:
        p = self.bound()
        self.stats.update(
            depth=self.depth,
            tasks=self.n,
            steps=self.k,
            pct_bound=p,
            pct_runs_for_99=runs_for_99(self.n, self.k, self.depth),
            bound_text=self.bound_text(),
        )

    # ------------------------------------------------------------------ per execution
    def _new_execution(self) -> None:
        self.path.clear()
        self.prio = {}
        self.nsteps = 0
        k = self.k
        m = self.depth - 1
        changes: dict[int, int] = {}
        if m:
            if m <= k:
                points = self.rng.sample(range(1, k + 1), m)
            else:  # more change points than steps: some coincide (only the last one of a step counts)
                points = [self.rng.randint(1, k) for _ in range(m)]
            for j, c in enumerate(points, start=1):
                changes[c] = j
        self.changes = changes

    def _fold(self) -> None:
        """Fold the execution that just ran into the estimates."""
        if self.nsteps > self.max_steps_seen:
            self.max_steps_seen = self.nsteps
        if len(self.prio) > self.max_tasks_seen:
            self.max_tasks_seen = len(self.prio)

    def advance(self, outcome: Outcome) -> bool:
        self.executions += 1
        self._fold()
        self._update_stats()
        self._new_execution()
        return True

    def decisions(self) -> list[Branch]:
        # called for the failing execution, which advance() never sees: count it in the stats too
        self._fold()
        self._update_stats()
        return super().decisions()

    # ------------------------------------------------------------------ Decider
    def sched(self, rt: ControlledRuntime, options: Sequence[Task], cur: Task | None) -> int:
        pos = self.pos
        self.pos = pos + 1
        prio = self.prio
        best = -1
        best_p = -1.0
        for i, t in enumerate(options):
            p = prio.get(t.id)
            if p is None:
                p = prio[t.id] = self.depth + self.rng.random()
            if p > best_p:
                best_p = p
                best = i
        self.nsteps += 1
        j = self.changes.get(self.nsteps)
        if j is not None:
            prio[options[best].id] = float(j)
        cur_idx = -1
        if cur is not None:
            for i, t in enumerate(options):
                if t is cur:
                    cur_idx = i
                    break
        b = Branch("t", tuple(t.id for t in options), len(options), cur_idx, rt.preemptions, best)
        b.op = options[best].op
        self.path.append(b)
        return best

    def data(self, rt: ControlledRuntime, n: int, label: str) -> int:
        self.pos += 1
        b = Branch("c", (), n, -1, rt.preemptions, self.rng.randrange(n))
        self.path.append(b)
        return b.chosen
