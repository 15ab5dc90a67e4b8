"""The picture of a failing execution: one column per task, one row per event, time going down.

::

    step | main                     | inc1                       | inc2
    -----+--------------------------+----------------------------+---------------------------
       0 | spawn inc1               |                            |
       0 | spawn inc2               |                            |
       0 | .. waits for join inc1   |                            |
       1 |                          | READ_ONCE Counter#1.value  |
       2 |                          |                            | READ_ONCE Counter#1.value  << preempts inc1
       3 |                          |                            | WRITE_ONCE Counter#1.value
       3 |                          |                            | exit
       4 |                          | WRITE_ONCE Counter#1.value |
       4 |                          | exit                       |
       5 | join inc1                |                            |
       6 | join inc2                |                            |
       6 | !! raised AssertionError |                            |

Preemptions are marked ``<<``, blocking ``..``, failures ``!!``, virtual-time jumps get a row of their own; the picture is plain text so that it reads
the same in a terminal, a log and a bug report.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..runtime._trace import TraceEvent

__all__ = ["lanes"]

#: runtime events drawn as a task waiting (``..``); the others are operations on an object, or marked below
_WAITING = frozenset({"block", "blocked", "timeout"})


def _cell(ev: TraceEvent) -> str:
    if ev.op == "exit":
        return f"!! {ev.note}" if ev.note else "exit"
    if ev.op == "WARN":
        return f"!! WARN {ev.note}"
    obj = "" if ev.obj in ("", "-") else f" {ev.obj}"
    if ev.op in _WAITING:
        return f".. {ev.note or ev.op}{obj}"
    if ev.note and ev.op == "choose":
        return f"choose ({ev.note})"
    return f"{ev.op}{obj}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def lanes(trace: Sequence[TraceEvent], max_width: int = 32) -> str:
    """Draw ``trace`` as one column per task (in order of appearance); each cell at most ``max_width``
    characters. A preemption is shown on the row of the step it starts; virtual-time jumps (task ``-``)
    get a full-width row of their own."""
    tasks: list[str] = []
    for ev in trace:
        if ev.task not in tasks and ev.task != "-":
            tasks.append(ev.task)
    if not tasks:
        return "(empty trace)"
    rows: list[tuple[str, int, str, str]] = []  # (step, column or -1 for a full-width note, text, tail)
    pending_tail = ""
    for ev in trace:
        if ev.op == "preempt":
            pending_tail = f"<< {ev.note}"
            continue
        if ev.task == "-":
            rows.append((str(ev.step), -1, f"-- {ev.note or ev.op} --", ""))
            continue
        tail = ""
        if pending_tail and ev.op != "spawn":
            tail, pending_tail = pending_tail, ""
        rows.append((str(ev.step), tasks.index(ev.task), _cell(ev), tail))
    widths = [min(max_width, max([len(t)] + [len(r[2]) for r in rows if r[1] == c])) for c, t in enumerate(tasks)]
    sw = max([4] + [len(r[0]) for r in rows])
    head = f"{'step':>{sw}} | " + " | ".join(t[: widths[c]].ljust(widths[c]) for c, t in enumerate(tasks))
    rule = "-" * sw + "-+-" + "-+-".join("-" * w for w in widths)
    out = [head.rstrip(), rule]
    for step, col, text, tail in rows:
        if col < 0:
            out.append(f"{step:>{sw}} | {text}")
            continue
        cells = [(_clip(text, widths[c]) if c == col else "").ljust(widths[c]) for c in range(len(tasks))]
        line = f"{step:>{sw}} | " + " | ".join(cells)
        if tail:
            line = line.rstrip() + "  " + tail
        out.append(line.rstrip())
    return "\n".join(out)
