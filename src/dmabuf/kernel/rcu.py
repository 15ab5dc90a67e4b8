"""Read-copy-update (``linux/rcupdate.h``): read-side sections, grace periods, deferred callbacks and
RCU-protected pointers.

Model:

* ``rcu_read_lock``/``rcu_read_unlock`` nest; the depth is ``task.rcu_depth`` and a read-side section is
  atomic context (``might_sleep`` WARNs inside one). Entering an outermost section gives the task a fresh
  section number in ``task.rcu_gen``. Entering is a READ scheduling point on the RCU state (readers commute
  with each other, not with the start of a grace period: a reader that enters later lets the grace period
  end sooner). Leaving is a step of access kind LOCAL, which never branches: leaving a section earlier only
  lets grace periods end sooner, and a waiter that could go on earlier can still be scheduled later, so no
  behaviour is lost.
* A grace period started at some moment waits for the *sections* open at that moment: a snapshot of
  ``(task, section number)`` pairs. It ends when each of those tasks has left that section (its depth went
  to 0 or it entered a newer section). Sections that start later never delay it.
  :func:`synchronize_rcu` blocks the caller until its grace period ends; :func:`call_rcu` takes the snapshot
  at the call and runs the callback in a detached task once it ends, in atomic context (softirq); :func:`rcu_barrier` waits for every
  callback queued before it.
* A task that finishes inside a read-side section is reported as a leak at the end of the run (and blocks
  every later grace period, as a stalled CPU would).
* RCU-protected pointers are fields named ``(obj, "field")`` like ``READ_ONCE``: :func:`rcu_dereference`
  is a READ point on that field, :func:`rcu_assign_pointer` a WRITE point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgument
from ..runtime import LOCAL, READ, WRITE, Task, rt
from . import config
from ._warn import WARN
from .once import READ_ONCE, WRITE_ONCE, field_key
from .sched import might_sleep

__all__ = [
    "RCU_INIT_POINTER",
    "RcuHead",
    "call_rcu",
    "kfree_rcu",
    "rcu_access_pointer",
    "rcu_assign_pointer",
    "rcu_barrier",
    "rcu_dereference",
    "rcu_dereference_check",
    "rcu_dereference_protected",
    "rcu_read_lock",
    "rcu_read_lock_held",
    "rcu_read_unlock",
    "rcu_replace_pointer",
    "synchronize_rcu",
]

_STATE = "_dm_rcu"

Snapshot = tuple[tuple[Task, int], ...]


class _RcuState:
    """Per-run RCU bookkeeping (kept in ``rt().globals``). Grace-period waiters block on this object."""

    _dm_label = "rcu"

    def __init__(self) -> None:
        self.next_section = 0
        self.next_cb = 0
        self.pending_cbs: set[int] = set()


def _state() -> _RcuState:
    r = rt()
    s = r.globals.get(_STATE)
    if s is None:
        s = _RcuState()
        r.globals[_STATE] = s
        r.add_end_check(_check_readers_closed)
    assert isinstance(s, _RcuState)
    return s


def _check_readers_closed() -> str | None:
    bad = [t.name for t in rt().tasks() if t.rcu_depth > 0]
    if bad:
        return (
            "tasks exited inside an RCU read-side critical section (missing rcu_read_unlock): "
            + ", ".join(repr(n) for n in bad)
        )
    return None


class RcuHead:
    """The link a :func:`call_rcu` callback is queued with (``struct rcu_head``). Embed it as a field or
    subclass it; ``func`` is the queued callback (``None`` when idle).

    Kernel: ``struct rcu_head`` (include/linux/types.h).
    """

    def __init__(self) -> None:
        self.func: Callable[[Any], object] | None = None


# ---------------------------------------------------------------------------------------------- readers


def rcu_read_lock() -> None:
    """Enter an RCU read-side critical section (they nest). Objects reached through
    :func:`rcu_dereference` stay valid until the matching :func:`rcu_read_unlock`.

    Locking: the section is atomic context: do not sleep inside. Kernel: ``rcu_read_lock``.
    """
    s = _state()
    r = rt()
    t = r.current()
    r.point("rcu_read_lock", s, READ)
    if t.rcu_depth == 0:
        s.next_section += 1
        t.rcu_gen = s.next_section
    t.rcu_depth += 1


def rcu_read_unlock() -> None:
    """Leave the innermost read-side section. Unbalanced unlock WARNs and changes nothing.

    Kernel: ``rcu_read_unlock``.
    """
    s = _state()
    r = rt()
    t = r.current()
    r.point("rcu_read_unlock", s, LOCAL)
    if WARN(
        t.rcu_depth <= 0,
        f"rcu_read_unlock() without rcu_read_lock() in task {t.name!r}",
        "rcu: unlock without lock",
    ):
        return
    t.rcu_depth -= 1
    if t.rcu_depth == 0:
        r.notify(s)


def rcu_read_lock_held() -> bool:
    """True inside a read-side section. Kernel: ``rcu_read_lock_held``."""
    return rt().current().rcu_depth > 0


# ---------------------------------------------------------------------------------------------- grace periods


def _snapshot(me: Task | None) -> Snapshot:
    return tuple((t, t.rcu_gen) for t in rt().tasks() if t.rcu_depth > 0 and t is not me)


def _gp_done(snap: Snapshot) -> Callable[[], bool]:
    def ready() -> bool:
        # a reader blocks the grace period while it is still in the section it was in at the start
        return not any(t.rcu_depth > 0 and t.rcu_gen == gen for t, gen in snap)

    return ready


def synchronize_rcu() -> None:
    """Wait for a grace period: return only once every task that was inside a read-side section when the
    call started has left that section. Readers that enter later do not delay it.

    Locking: may sleep. Calling it inside a read-side section WARNs (the kernel would wait for itself
    forever); the model then waits only for the other readers.
    Kernel: ``synchronize_rcu`` (kernel/rcu/tree.c).
    """
    s = _state()
    r = rt()
    t = r.current()
    if t.rcu_depth > 0:
        WARN(
            True,
            f"Illegal synchronize_rcu() in RCU read-side critical section (task {t.name!r})",
            "rcu: synchronize_rcu inside a read-side section",
        )
    else:
        might_sleep()
    r.point("synchronize_rcu", s, WRITE)  # the grace period starts here
    snap = _snapshot(t)
    r.wait("rcu_gp", s, READ, _gp_done(snap))


def _run_callback(
    s: _RcuState, cb_id: int, snap: Snapshot, head: object, func: Callable[[Any], object]
) -> None:
    r = rt()
    r.wait("rcu_gp", s, READ, _gp_done(snap))
    if isinstance(head, RcuHead):
        head.func = None
    # callbacks run from the RCU softirq (or an rcuo kthread with bottom halves disabled): atomic context
    t = r.current()
    t.atomic_depth += 1
    try:
        func(head)
    finally:
        t.atomic_depth -= 1
    r.point("rcu_cb_done", s, WRITE)
    s.pending_cbs.discard(cb_id)
    r.notify(s)


def call_rcu(head: RcuHead, func: Callable[[Any], object]) -> None:
    """Queue ``func(head)`` to run after a grace period (in a detached task, like the kernel's softirq):
    after every reader inside a read-side section at the time of the call has left it.

    The callback runs in atomic context (the kernel invokes it from softirq or with bottom halves
    disabled), so sleeping in it WARNs (``might_sleep``).

    Locking: does not sleep; fine in atomic context and in read-side sections. Queuing a head that is
    already queued is a double ``call_rcu`` and WARNs. Kernel: ``call_rcu`` (kernel/rcu/tree.c).
    """
    if not isinstance(head, RcuHead):
        raise InvalidArgument(f"call_rcu needs an RcuHead, got {type(head).__name__}")
    if not callable(func):
        raise InvalidArgument(f"call_rcu needs a callback function, got {type(func).__name__}")
    if WARN(head.func is not None, "call_rcu: rcu_head queued twice", "rcu: double call_rcu"):
        return
    _queue(head, func, "call_rcu")


def _queue(head: object, func: Callable[[Any], object], what: str) -> None:
    s = _state()
    r = rt()
    r.point(what, s, WRITE)
    if isinstance(head, RcuHead):
        head.func = func
    s.next_cb += 1
    cb_id = s.next_cb
    s.pending_cbs.add(cb_id)
    # the grace period covers readers open now, including the caller's own section if it is in one
    snap = _snapshot(None)
    name = getattr(func, "__name__", "cb")
    r.spawn(_run_callback, (s, cb_id, snap, head, func), f"rcu-cb{cb_id}:{name}", detached=True)


def kfree_rcu(obj: object, field: str) -> None:
    """Free ``obj`` after a grace period (C: ``kfree_rcu(obj, field)``, ``field`` naming its rcu_head).

    Memory is not modelled, so the deferred free does nothing; it still waits for a grace period like the
    kernel, so :func:`rcu_barrier` waits for it. Kernel: ``kfree_rcu`` (include/linux/rcupdate.h).
    """
    head = _field(obj, field, "kfree_rcu")
    if not isinstance(head, RcuHead):
        raise InvalidArgument(f"kfree_rcu: field {field!r} of {type(obj).__name__} is not an RcuHead")
    if WARN(head.func is not None, "kfree_rcu: rcu_head queued twice", "rcu: double call_rcu"):
        return
    _queue(head, _kfree, "kfree_rcu")


def _kfree(head: object) -> None:
    return None


def rcu_barrier() -> None:
    """Wait until every callback queued by :func:`call_rcu` before this call has run.

    Locking: may sleep. Kernel: ``rcu_barrier`` (kernel/rcu/tree.c).
    """
    might_sleep()
    s = _state()
    r = rt()
    waiting = frozenset(s.pending_cbs)
    r.wait("rcu_barrier", s, READ, lambda: waiting.isdisjoint(s.pending_cbs))


# ---------------------------------------------------------------------------------------------- pointers


def _field(obj: object, name: str, fn: str) -> Any:
    if obj is None:
        raise InvalidArgument(f"{fn}: the object is None (NULL)")
    if not isinstance(name, str):
        raise InvalidArgument(f"{fn}: a field is named by a string, got {name!r}")
    try:
        return getattr(obj, name)
    except AttributeError:
        raise InvalidArgument(f"{fn}: {type(obj).__name__} has no field {name!r}") from None


def rcu_dereference_check(obj: object, field: str, c: object) -> Any:
    """Read the RCU-protected pointer ``obj.field`` (one READ point). Legal inside a read-side section or
    when ``c`` is true (the update-side lock is held); otherwise, with ``CONFIG_PROVE_LOCKING``, WARNs
    ``suspicious rcu_dereference_check() usage``.

    Kernel: ``rcu_dereference_check`` (include/linux/rcupdate.h).
    """
    _field(obj, field, "rcu_dereference_check")
    t = rt().current()
    if config.CONFIG_PROVE_LOCKING and t.rcu_depth == 0 and not c:
        WARN(
            True,
            f"suspicious rcu_dereference_check() usage: {type(obj).__name__}.{field} read by {t.name!r} "
            "outside an RCU read-side section and without the update-side lock",
            "rcu: dereference outside read-side section",
        )
    return READ_ONCE(obj, field)


def rcu_dereference(obj: object, field: str) -> Any:
    """Read the RCU-protected pointer ``obj.field`` inside a read-side section (one READ point).

    Kernel: ``rcu_dereference``.
    """
    return rcu_dereference_check(obj, field, False)


def rcu_dereference_protected(obj: object, field: str, c: object) -> Any:
    """Read ``obj.field`` on the update side, where ``c`` states that the update lock is held. A plain
    read, not a scheduling point: the lock excludes concurrent writers. WARNs (with
    ``CONFIG_PROVE_LOCKING``) when ``c`` is false.

    Kernel: ``rcu_dereference_protected``.
    """
    v = _field(obj, field, "rcu_dereference_protected")
    if config.CONFIG_PROVE_LOCKING and not c:
        WARN(
            True,
            f"suspicious rcu_dereference_protected() usage: {type(obj).__name__}.{field}",
            "rcu: dereference_protected without the lock",
        )
    return v


def rcu_access_pointer(obj: object, field: str) -> Any:
    """Read the pointer value without dereferencing it (one READ point; legal anywhere).

    Kernel: ``rcu_access_pointer``.
    """
    _field(obj, field, "rcu_access_pointer")
    return READ_ONCE(obj, field)


def rcu_assign_pointer(obj: object, field: str, value: object) -> None:
    """Publish ``value`` in the RCU-protected pointer ``obj.field`` (one WRITE point; release order is
    implied by the sequentially consistent model). Kernel: ``rcu_assign_pointer``.
    """
    _field(obj, field, "rcu_assign_pointer")
    WRITE_ONCE(obj, field, value)


def RCU_INIT_POINTER(obj: object, field: str, value: object) -> None:
    """Initialise an RCU pointer (no ordering needed: NULL or not yet visible). Kernel: ``RCU_INIT_POINTER``."""
    rcu_assign_pointer(obj, field, value)


def rcu_replace_pointer(obj: object, field: str, value: object, c: object) -> Any:
    """Publish ``value`` in ``obj.field`` under the update lock (``c`` states it is held) and return the
    old pointer. Kernel: ``rcu_replace_pointer``."""
    rcu_dereference_protected(obj, field, c)  # the lockdep check
    rt().point("rcu_replace_pointer", field_key(obj, field), WRITE)
    old = getattr(obj, field)
    setattr(obj, field, value)
    return old
