"""A live progress line for long searches, drawn with rich on a terminal only."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["progress_bar"]


class _Bar:
    def __init__(self, progress: Any, task: Any, total: int | None) -> None:
        self.progress = progress
        self.task = task
        self.total = total
        self.t0 = time.perf_counter()

    def update(self, executions: int, frontier: int, classes: int) -> None:
        rate = executions / max(1e-9, time.perf_counter() - self.t0)
        extra = f"{rate:,.0f}/s  frontier depth {frontier}"
        if classes:
            extra += f"  classes {classes}"
        self.progress.update(self.task, completed=executions, info=extra)


@contextmanager
def progress_bar(enabled: bool | None, strategy: str, total: int | None) -> Iterator[_Bar | None]:
    """Yield an object with ``update(executions, frontier, classes)``, or None when disabled. ``enabled=None``
    means: only if stderr is a terminal."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn(f"[bold]explore ({strategy})"),
        BarColumn() if total else TextColumn(""),
        MofNCompleteColumn() if total else TextColumn("{task.completed} executions"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with progress:
        task = progress.add_task("explore", total=total, info="")
        yield _Bar(progress, task, total)
