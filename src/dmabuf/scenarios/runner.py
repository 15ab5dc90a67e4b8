"""Verdicts: one scenario under one policy, explored, turned into a cell of the ``dmabuf check`` table.

For ``(scenario, policy)``:

1. the policy is a built-in design whose module does not import -> ``not available`` (names the module);
2. ``scenario.applicable(policy)`` gives a reason -> ``n/a``;
3. explore the naive driver (DPOR, the strongest strategy; budgets from :class:`Budget`):
   clean -> ``safe by design`` if the search was complete, ``safe (bounded)`` if a budget stopped it;
4. else explore the careful driver: clean -> ``driver duty`` (the naive counterexample, already shrunk by
   the explorer, is kept for ``--explain``), failing -> ``unsafe``.

A search that hit its budget is never reported as complete: :attr:`Verdict.label` says ``(bounded)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from ..explore import explore
from ..policies.base import BUILTIN_MODULES, get_policy, policy_names
from .base import Scenario, get_scenario, scenarios

__all__ = [
    "DESIGNS",
    "Budget",
    "Run",
    "Verdict",
    "check",
    "known_policies",
    "missing_module",
    "verdict",
]

#: the five designs of the seed thread, in the order of the table's columns
DESIGNS = (
    "importer-tracks",
    "core-tracks-mappings",
    "one-shot-attachments",
    "exporter-tracks",
    "core-filters-reentry",
)

SAFE = "safe by design"
SAFE_BOUNDED = "safe (bounded)"
DUTY = "driver duty"
UNSAFE = "unsafe"
NA = "n/a"
NOT_AVAILABLE = "not available"
ERROR = "error"


@dataclass(frozen=True)
class Budget:
    """Per-search budget (each cell runs one or two searches).

    The default is DPOR with at most 3 preemptions per execution: every bug the scenarios can show needs at
    most 2 (the shrunk counterexamples have 1-2), and a bound-3 search of a scenario completes in a few
    hundred executions, where the unbounded search of the same body needs thousands. ``preemption_bound=None``
    asks for the unbounded search (then ``max_executions``/``time_budget`` usually cut it short, and the
    cell says so).

    Attributes:
        max_executions: executions per search.
        time_budget: seconds per search.
        preemption_bound: involuntary switches per execution (``None``: unbounded).
    """

    max_executions: int = 3000
    time_budget: float = 8.0
    preemption_bound: int | None = 3

    def describe(self) -> str:
        pb = "unbounded preemptions" if self.preemption_bound is None else f"<= {self.preemption_bound} preemptions"
        return f"DPOR, {pb}, <= {self.max_executions} executions and {self.time_budget:g} s per search"


@dataclass
class Run:
    """One explorer search of one variant."""

    variant: str
    ok: bool
    complete: bool
    executions: int
    elapsed: float
    failure: Any = None  # dmabuf.Failure
    #: reorderings the bounded DPOR search dropped because they need more preemptions than the bound
    #: (``result.stats["bound_skipped"]``): 0 means the bounded search left nothing out that DPOR asked for
    bound_skipped: int = 0

    def to_json(self) -> dict[str, Any]:
        f = self.failure
        return {
            "variant": self.variant,
            "ok": self.ok,
            "complete": self.complete,
            "bound_skipped": self.bound_skipped,
            "executions": self.executions,
            "seconds": round(self.elapsed, 3),
            "failure": None if f is None else {
                "kind": f.kind,
                "message": f.message,
                "schedule": f.schedule,
                "steps": f.steps,
                "preemptions": f.preemptions,
            },
        }


@dataclass
class Verdict:
    """One cell: ``kind`` is one of ``safe by design``, ``safe (bounded)``, ``driver duty``, ``unsafe``,
    ``n/a``, ``not available``, ``error``; ``reason`` explains n/a / not available / error; ``duty`` names the
    duty of a ``driver duty`` cell; ``runs`` the searches behind it."""

    scenario: str
    policy: str
    kind: str
    reason: str = ""
    duty: str = ""
    runs: list[Run] = field(default_factory=list)

    @property
    def naive(self) -> Run | None:
        return next((r for r in self.runs if r.variant == "naive"), None)

    @property
    def careful(self) -> Run | None:
        return next((r for r in self.runs if r.variant == "careful"), None)

    @property
    def bounded(self) -> bool:
        """Some clean search behind this verdict stopped at its budget."""
        return any(r.ok and not r.complete for r in self.runs)

    @property
    def label(self) -> str:
        """The cell text: the kind, the duty, ``(bounded)`` where a clean search was cut short."""
        if self.kind == DUTY:
            b = " (careful: bounded)" if self.careful is not None and not self.careful.complete else ""
            return f"{DUTY}: {self.duty}{b}"
        if self.kind in (NA, NOT_AVAILABLE, ERROR):
            return f"{self.kind}: {self.reason}" if self.reason else self.kind
        return self.kind

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "policy": self.policy,
            "verdict": self.kind,
            "label": self.label,
            "reason": self.reason,
            "duty": self.duty,
            "runs": [r.to_json() for r in self.runs],
        }


def missing_module(policy: str) -> str | None:
    """``None`` if ``policy`` can be loaded, else the module that is missing (for "not available")."""
    try:
        get_policy(policy)
        return None
    except UsageError:
        mod = BUILTIN_MODULES.get(policy)
        return f"dmabuf.policies.{mod}" if mod else f"a policy named {policy!r}"


def _run(scn: Scenario, policy: str, variant: str, budget: Budget) -> Run:
    t0 = time.perf_counter()
    res = explore(
        scn.body(policy, variant),
        strategy="dpor",
        preemption_bound=budget.preemption_bound,
        max_executions=budget.max_executions,
        time_budget=budget.time_budget,
        database=None,  # verdicts depend on the search only, and checking leaves no files behind
    )
    return Run(variant, res.ok, bool(res.complete and res.ok), res.executions, time.perf_counter() - t0,
               res.failure, 0 if res.stats.get("bound_certified") else int(res.stats.get("bound_skipped", 0)))


def _broken(run: Run) -> str:
    """A failure that is no counterexample: the scenario body is not deterministic (fix the scenario)."""
    f = run.failure
    if f is not None and f.kind == "nondeterminism":
        return f"the {run.variant} body is nondeterministic: {f.message}"
    return ""


def verdict(scenario: Scenario | str, policy: str, budget: Budget | None = None) -> Verdict:
    """Explore ``scenario`` under ``policy`` and return the cell (see the module docstring)."""
    scn = get_scenario(scenario) if isinstance(scenario, str) else scenario
    budget = budget or Budget()
    if policy not in BUILTIN_MODULES:
        get_policy(policy)  # a name that is no design at all is bad input: UsageError listing the valid ones
    missing = missing_module(policy)
    if missing is not None:  # a built-in design whose module does not import in this install
        return Verdict(scn.id, policy, NOT_AVAILABLE, reason=f"{missing} does not import")
    pol = get_policy(policy)
    why = scn.applicable(pol)
    if why:
        return Verdict(scn.id, policy, NA, reason=why)
    try:
        naive = _run(scn, policy, "naive", budget)
        if _broken(naive):
            return Verdict(scn.id, policy, ERROR, reason=_broken(naive), runs=[naive])
        if naive.ok:
            return Verdict(scn.id, policy, SAFE if naive.complete else SAFE_BOUNDED, runs=[naive])
        careful = _run(scn, policy, "careful", budget)
        if _broken(careful):
            return Verdict(scn.id, policy, ERROR, reason=_broken(careful), runs=[naive, careful])
    except Exception as e:  # a scenario or policy bug, not a verdict: show it in the cell
        return Verdict(scn.id, policy, ERROR, reason=f"{type(e).__name__}: {e}")
    if careful.ok:
        return Verdict(scn.id, policy, DUTY, duty=scn.duty_for(pol), runs=[naive, careful])
    return Verdict(scn.id, policy, UNSAFE, runs=[naive, careful])


def check(
    scenario_ids: list[str] | None = None,
    policies: list[str] | None = None,
    budget: Budget | None = None,
    progress: Any = None,
) -> list[Verdict]:
    """Every (scenario, policy) verdict, scenario-major. ``progress(verdict)`` is called after each cell.

    Policies default to the five designs (:data:`DESIGNS`); other registered policies run when named.
    """
    scns = [get_scenario(s) for s in scenario_ids] if scenario_ids else scenarios()
    pols = list(policies) if policies else list(DESIGNS)
    out = []
    for s in scns:
        for p in pols:
            v = verdict(s, p, budget)
            out.append(v)
            if progress is not None:
                progress(v)
    return out


def known_policies() -> list[str]:
    """The five designs first, then any other registered policy."""
    return list(DESIGNS) + [p for p in policy_names() if p not in DESIGNS]
