"""What a search starts from: the failures stored for its body, replayed first (:func:`replay_stored`), and
a frontier saved by an interrupted search (:func:`restore_frontier`), checked before it is trusted: a
frontier of another body, or one that is not well-formed, gives a ``DatabaseWarning`` and a fresh start."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from ..errors import ReplayFormatError
from ..runtime.controlled import ControlledRuntime
from .database import DatabaseWarning, FailureDatabase
from .failure import Failure
from .replaying import _effective, _replay_runs, _to_failure
from .schedule import decode_runs, encode_runs
from .strategies import PathStrategy

__all__ = ["STALE_FRONTIER", "replay_stored", "restore_frontier"]

#: the warning (a ``DatabaseWarning``) when a saved frontier cannot be resumed for this body
STALE_FRONTIER = "saved frontier does not fit this body; starting afresh"


def replay_stored(
    rt: ControlledRuntime,
    body: Callable[[], Any],
    db: FailureDatabase,
    key: str,
    notes: list[str],
    preemption_bound: int | None = None,
) -> Failure | None:
    """Replay the failures stored for ``key`` (the database's entries): the first that still
    fails the same way is returned (with a note); one that no longer does is deleted; one that needs more
    preemptions than ``preemption_bound`` is kept and skipped."""
    for path, kind, schedule in db.load(key):
        try:
            runs = decode_runs(schedule)
        except ReplayFormatError as e:
            warnings.warn(f"dmabuf failure database: skipping {path}: {e}", DatabaseWarning, stacklevel=3)
            continue
        rt.lockdep_graph = None  # type: ignore[attr-defined]
        outcome, rep, trained = _replay_runs(rt, body, runs)  # several: a lock-order report (dmabuf-s2)
        rt.lockdep_graph = None  # type: ignore[attr-defined]  # the search starts on a graph of its own
        outcome = _effective(outcome)
        if outcome.kind == kind and preemption_bound is not None and rt.preemptions > preemption_bound:
            # a real failure, but outside the bounds this search was asked for: keep it for unbounded runs
            notes.append(
                f"stored failure {path.name} needs {rt.preemptions} preemptions, more than preemption_bound="
                f"{preemption_bound}: kept, not reported"
            )
            continue
        if outcome.kind == kind:
            f = _to_failure(rt, outcome, rep)
            if trained:
                f.schedule = encode_runs([*trained, list(rep.recorded)])
            f.shrink_note = f"Replayed from the failure database ({path})."
            notes.append(f"stored failure {path.name} still fails: returned without searching")
            return f
        db.delete(path)
        notes.append(f"stored failure {path.name} no longer reproduces ({outcome.kind}): deleted")
    return None


def restore_frontier(strat: PathStrategy, db: FailureDatabase, key: str, notes: list[str]) -> tuple[int, bool]:
    """Restore ``strat`` from the frontier saved for ``key``. Returns (executions it had run, restored). Not
    restored: the caller must make a fresh strategy (a failed restore may have changed it half-way). A
    frontier of another body, or one that is not well-formed, gives a ``DatabaseWarning``."""
    fr = db.load_frontier(key)
    if fr is None:
        notes.append("resume: no saved frontier for this body; starting from the beginning")
        return 0, False
    restore = getattr(strat, "restore", None)
    if fr.get("body") != key:
        return _stale(notes, f"it was saved for body {fr.get('body')!r}, not {key!r}"), False
    if fr.get("strategy") != strat.name or restore is None:
        notes.append(f"resume: the saved frontier is for strategy {fr.get('strategy')!r}; starting afresh")
        return 0, False
    problem = _frontier_problem(fr, strat.name)
    if problem is not None:
        return _stale(notes, problem), False
    try:
        restore(fr["state"])
    except ValueError as e:  # the strategy's own check: saved with other bounds (a well-formed frontier)
        notes.append(f"resume: saved frontier unusable ({e}); starting afresh")
        return 0, False
    except Exception as e:  # anything else the validation let through: still not the user's problem
        return _stale(notes, f"{type(e).__name__}: {e}"), False
    n = fr["executions"]
    notes.append(f"resumed after {n} executions from the saved frontier")
    return n, True


def _stale(notes: list[str], why: str) -> int:
    warnings.warn(f"dmabuf: {STALE_FRONTIER} ({why})", DatabaseWarning, stacklevel=4)
    notes.append(f"resume: {STALE_FRONTIER} ({why})")
    return 0


def _is_int(v: Any, minimum: int | None = None) -> bool:
    return type(v) is int and (minimum is None or v >= minimum)


def _int_list(v: Any, minimum: int | None = 0) -> bool:
    return isinstance(v, list) and all(_is_int(x, minimum) for x in v)


def _frontier_problem(fr: dict[str, Any], strategy: str) -> str | None:
    """What is wrong with a saved frontier's structure (None: well-formed for ``strategy``'s ``restore``)."""
    if not _is_int(fr.get("executions"), 0):
        return f"executions must be an int >= 0, got {fr.get('executions')!r}"
    state = fr.get("state")
    if not isinstance(state, dict):
        return "state must be an object"
    bound = state.get("bound")
    if bound is not None and not _is_int(bound, 0):
        return f"bound must be an int >= 0 or null, got {bound!r}"
    field, width = ("nodes", 10) if strategy == "dpor" else ("path", 9)
    items = state.get(field)
    if not isinstance(items, list):
        return f"state.{field} must be a list"
    for i, item in enumerate(items):
        if not isinstance(item, list) or len(item) != width:
            return f"state.{field}[{i}] must be a list of {width} values"
        kind, tids, n, cur, pre, chosen, op = item[:7]
        ok = (
            kind in ("t", "c")
            and _int_list(tids)
            and _is_int(n, 1)
            and _is_int(cur, -1)
            and _is_int(pre, 0)
            and _is_int(chosen, 0)
            and isinstance(op, str)
        )
        if ok and kind == "c":
            ok = chosen < n
        elif ok:  # dpor names the chosen task by its id, dfs by its index among the options
            ok = len(tids) == n and (chosen in tids if strategy == "dpor" else chosen < n)
        if ok and strategy == "dpor":
            ok = all(_int_list(x) for x in item[7:])
        elif ok:
            k, order = item[7], item[8]
            ok = _is_int(k, 0) and k < n and (
                order is None or (_int_list(order) and len(set(order)) == len(order) and all(x < n for x in order))
            )
        if not ok:
            return f"state.{field}[{i}] is not a saved {'node' if strategy == 'dpor' else 'branch'}"
    stats = state.get("stats", {})
    if not isinstance(stats, dict) or not all(_is_int(v) for v in stats.values()):
        return "state.stats must map names to ints"
    return None
