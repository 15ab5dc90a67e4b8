"""``dmabuf check``: every hazard scenario under every design, explored, as a hazards x designs table."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .._core import core_build

__all__ = ["check"]


def _parse_budget(value: str | None) -> Any:
    """``--budget``: ``N`` (executions per search) or comma-separated ``executions=N``, ``seconds=S``,
    ``preemptions=K|none``."""
    from ..scenarios.runner import Budget

    b = Budget()
    if not value:
        return b
    kw: dict[str, Any] = {}
    try:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if "=" not in part:
                kw["max_executions"] = int(part)
                continue
            k, v = (x.strip() for x in part.split("=", 1))
            if k in ("executions", "max_executions", "n"):
                kw["max_executions"] = int(v)
            elif k in ("seconds", "time", "s"):
                kw["time_budget"] = float(v)
            elif k in ("preemptions", "preemption_bound", "pb"):
                kw["preemption_bound"] = None if v.lower() in ("none", "unbounded", "inf") else int(v)
            else:
                raise ValueError(f"unknown budget key {k!r}")
    except ValueError as e:
        raise click.BadParameter(
            f"{e}; expected N or executions=N,seconds=S,preemptions=K|none", param_hint="--budget"
        ) from None
    if kw.get("max_executions", 1) < 1 or kw.get("time_budget", 1) <= 0 or (kw.get("preemption_bound") or 0) < 0:
        raise click.BadParameter("budget values must be positive", param_hint="--budget")
    return Budget(**{**b.__dict__, **kw})


_STYLE = {
    "safe by design": "green",
    "safe (bounded)": "yellow",
    "driver duty": "cyan",
    "unsafe": "bold red",
    "n/a": "dim",
    "not available": "dim italic",
    "error": "bold magenta",
}


def _cell(v: Any) -> str:
    from rich.markup import escape

    style = _STYLE.get(v.kind, "")
    if v.kind == "driver duty":
        text = f"[{style}]driver duty[/]\n{escape(v.duty)}"
        if v.careful is not None and not v.careful.complete:
            text += "\n[yellow](careful: bounded)[/]"
        return text
    if v.kind in ("n/a", "not available", "error"):
        return f"[{style}]{v.kind}[/]\n[dim]{escape(v.reason)}[/]"
    return f"[{style}]{v.kind}[/]"


def _summary(verdicts: list[Any], policies: list[str]) -> list[tuple[str, int, int, int]]:
    out = []
    for p in policies:
        vs = [v for v in verdicts if v.policy == p]
        out.append((
            p,
            sum(v.kind == "driver duty" for v in vs),
            sum(v.kind == "unsafe" for v in vs),
            sum(v.kind in ("safe by design", "safe (bounded)") for v in vs),
        ))
    return out


@click.command("check")
@click.option("--scenario", "scenario_ids", multiple=True, metavar="ID",
              help="only this hazard (H1..H10); repeatable")
@click.option("--policy", "policies", multiple=True, metavar="NAME", help="only this design; repeatable")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--explain", metavar="ID", default=None,
              help="print the counterexample of one hazard (with --policy) as a story and its replay string")
@click.option("--budget", default=None, metavar="SPEC",
              help="per search: N executions, or executions=N,seconds=S,preemptions=K|none "
                   "(default executions=3000,seconds=8,preemptions=3)")
def check(
    scenario_ids: tuple[str, ...],
    policies: tuple[str, ...],
    as_json: bool,
    explain: str | None,
    budget: str | None,
) -> None:
    """Run every hazard scenario (H1-H10) under every mapping-tracking design in the explorer and print a
    hazards x designs table: safe by design / driver duty / unsafe / n/a."""
    from ..errors import UsageError
    from ..policies.base import get_policy
    from ..scenarios.base import get_scenario, scenarios
    from ..scenarios.runner import DESIGNS, verdict
    from ..scenarios.runner import check as run_check

    bud = _parse_budget(budget)
    try:
        scns = [get_scenario(s) for s in scenario_ids] if scenario_ids else scenarios()
        if explain is not None:
            scns = [get_scenario(explain)]
    except KeyError as e:
        raise click.BadParameter(str(e.args[0]), param_hint="--scenario/--explain") from None
    pols = list(policies) if policies else list(DESIGNS)
    for p in pols:
        try:
            get_policy(p)
        except UsageError as e:
            raise click.BadParameter(str(e), param_hint="--policy") from None

    if explain is not None:
        if len(pols) != 1:
            raise click.UsageError("--explain needs exactly one --policy (e.g. --policy importer-tracks)")
        v = verdict(scns[0], pols[0], bud)
        _explain(scns[0], v, as_json)
        return

    from rich.console import Console

    err = Console(stderr=True)
    progress = None
    if not as_json and err.is_terminal:
        def progress(v: Any) -> None:
            err.print(f"[dim]{v.scenario} x {v.policy}: {v.kind}[/]")

    verdicts = run_check([s.id for s in scns], pols, bud, progress=progress)
    if as_json:
        click.echo(json.dumps({
            "budget": bud.__dict__,
            "cells": [v.to_json() for v in verdicts],
            "summary": [
                {"policy": p, "driver_duties": d, "unsafe": u, "safe": s} for p, d, u, s in _summary(verdicts, pols)
            ],
        }, indent=2))
        return
    _table(scns, pols, verdicts, bud)


def _table(scns: list[Any], pols: list[str], verdicts: list[Any], bud: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(160, Console().width))
    by = {(v.scenario, v.policy): v for v in verdicts}
    t = Table(title="Design hazards x mapping-tracking designs", show_lines=True)
    t.add_column("hazard", no_wrap=False, max_width=24)
    for p in pols:
        t.add_column(p, max_width=26)
    for s in scns:
        t.add_row(f"[bold]{s.id}[/] {s.title}", *[_cell(by[(s.id, p)]) for p in pols])
    console.print(t)
    console.print("Per design (driver duties / unsafe cells / safe by design):")
    for p, d, u, sf in _summary(verdicts, pols):
        console.print(f"  {p:<22} {d} driver dut{'y' if d == 1 else 'ies'}, {u} unsafe, {sf} safe")
    console.print(f"[dim]Searches: {bud.describe()}. 'safe by design': the naive driver is clean and the "
                  "bounded DPOR search finished (it drops reorderings that need more preemptions than the bound, "
                  "so this is strong evidence, not a proof: see docs/explorer.md); 'driver duty': the naive "
                  "driver fails and the careful one is clean. Counterexamples: dmabuf check --explain ID "
                  f"--policy NAME. Explorer core: {core_build()}.[/]")


def _skipped(r: Any) -> str:
    """What a bounded search's "complete" leaves out (see docs/explorer.md, dpor with preemption_bound)."""
    n = r.bound_skipped
    if not n:
        return ""
    return (f"; it dropped {n} reordering(s) that need more preemptions than the bound, so an equivalent "
            "schedule within the bound may not have run")


def _explain(scn: Any, v: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(v.to_json(), indent=2))
        return
    click.echo(f"{scn.id} ({scn.title}) under {v.policy}: {v.label}")
    click.echo(f"Property: {scn.prop}")
    click.echo(f"Source: {scn.source}")
    runs = [r for r in v.runs if r.failure is not None]
    if not runs:
        for r in v.runs:
            click.echo(f"The {r.variant} driver is clean: {r.executions} executions, search "
                       f"{'complete' if r.complete else 'incomplete (budget)'}{_skipped(r)}.")
        if v.kind in ("n/a", "not available", "error"):
            click.echo("No counterexample: " + v.reason)
        else:
            click.echo("No counterexample to explain.")
        return
    for r in runs:
        click.echo("")
        click.echo(f"--- counterexample of the {r.variant} driver ({r.executions} executions searched) ---")
        click.echo(r.failure.story())
        click.echo("")
        click.echo("Replay string: " + r.failure.schedule)
        click.echo("Replay in Python:")
        click.echo("    from dmabuf import replay")
        click.echo("    from dmabuf.scenarios import get_scenario")
        click.echo(f"    replay(get_scenario({scn.id!r}).body({v.policy!r}, {r.variant!r}), {r.failure.schedule!r})")
    if v.kind == "driver duty":
        click.echo("")
        click.echo(f"The careful driver ({v.duty}) is clean: {v.careful.executions} executions, search "
                   f"{'complete' if v.careful.complete else 'incomplete (budget)'}{_skipped(v.careful)}.")
    sys.stdout.flush()
