"""``dmabuf demo``, ``dmabuf explore`` and ``dmabuf replay``."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

import click

from ..errors import UsageError
from ..explore import STRATEGIES, explore, replay

__all__ = ["demo", "explore_cmd", "load_body", "replay_cmd"]


def load_body(target: str) -> Callable[[], Any]:
    """Import ``package.module:function`` and return the function."""
    if ":" not in target:
        raise click.BadParameter(
            f"expected MODULE:FUNCTION (for example dmabuf.examples.classic:lost_update), got {target!r}"
        )
    mod_name, fn_name = target.split(":", 1)
    if "." not in sys.path:
        sys.path.insert(0, ".")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise click.BadParameter(f"cannot import module {mod_name!r}: {e}") from None
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise click.BadParameter(f"{mod_name} has no callable named {fn_name!r}")
    return fn  # type: ignore[no-any-return]


@click.command("explore")
@click.argument("target")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="dpor", show_default=True)
@click.option("--preemption-bound", type=click.IntRange(min=0), default=None)
@click.option("--max-executions", type=click.IntRange(min=1), default=None)
@click.option("--time-budget", type=float, default=None, help="seconds")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--depth", type=click.IntRange(min=1), default=None, help="PCT bug depth (default 3)")
@click.option(
    "--workers", type=click.IntRange(min=1), default=1, show_default=True, help="local worker processes"
)
@click.option(
    "--database",
    default=None,
    metavar="DIR|none",
    help="failure database directory (default: $DMABUF_DATABASE or .dmabuf/); 'none' for no database",
)
@click.option("--resume", is_flag=True, help="continue an interrupted exhaustive search from its saved frontier")
@click.option(
    "--progress/--no-progress", default=None, help="live progress bar (default: only on a terminal)"
)
@click.option("--no-probes", is_flag=True, help="dpor: no interleaved random and bounded probe executions")
def explore_cmd(
    target: str,
    strategy: str,
    preemption_bound: int | None,
    max_executions: int | None,
    time_budget: float | None,
    seed: int,
    depth: int | None,
    workers: int,
    database: str | None,
    resume: bool,
    progress: bool | None,
    no_probes: bool,
) -> None:
    """Explore the interleavings of the body MODULE:FUNCTION and print the result."""
    body = load_body(target)
    kw: dict[str, Any] = {}
    if depth is not None:
        kw["depth"] = depth
    if database is not None:
        kw["database"] = None if database.lower() == "none" else database
    if no_probes:
        kw["probes"] = False
    try:
        res = explore(
            body,
            strategy=strategy,
            preemption_bound=preemption_bound,
            max_executions=max_executions,
            time_budget=time_budget,
            seed=seed,
            workers=workers,
            resume=resume,
            progress=progress,
            **kw,
        )
    except UsageError as e:  # a bad option combination or value: a usage error, not a traceback
        raise click.UsageError(str(e)) from None
    click.echo(str(res))  # with its notes
    sys.exit(0 if res.ok else 1)


@click.command("replay")
@click.argument("target")
@click.argument("schedule")
def replay_cmd(target: str, schedule: str) -> None:
    """Re-run exactly the execution SCHEDULE (a replay string) of MODULE:FUNCTION and print its story."""
    body = load_body(target)
    try:
        f = replay(body, schedule)
    except UsageError as e:  # a malformed replay string (ReplayFormatError) or another bad input
        raise click.BadParameter(str(e), param_hint="SCHEDULE") from None
    if f is None:
        click.echo("replay ran clean: no failure")
        sys.exit(0)
    click.echo(f.story())
    sys.exit(1)


@click.command("demo")
def demo() -> None:
    """Run the explorer on the shipped classic examples and print what it finds."""
    from ..examples import classic

    cases = [
        ("abba_deadlock", classic.abba_deadlock, "deadlock"),
        ("lost_update", classic.lost_update, "exception"),
        ("locked_increments", classic.locked_increments, None),
    ]
    bad = 0
    for name, body, expected in cases:
        res = explore(body, database=None)  # a demo leaves no .dmabuf/ behind, and runs the same each time
        found = res.failure.kind if res.failure else None
        verdict = "as expected" if found == expected else "UNEXPECTED"
        bad += found != expected
        click.echo(
            f"== {name}: {res.executions} executions ({res.strategy}), "
            f"{'no failure' if found is None else found} -- {verdict}"
        )
        if res.failure is not None:
            click.echo(res.failure.story())
        click.echo("")
    sys.exit(1 if bad else 0)
