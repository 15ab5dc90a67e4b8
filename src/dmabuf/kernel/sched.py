"""Tasks, sleeping and time: ``current``, ``might_sleep``, the ``set_current_state``/``schedule`` idiom,
``wake_up_process``, signals, jiffies, ``msleep`` and ``schedule_timeout``.

Time comes from the runtime clock: real monotonic time on threads, virtual time under the explorer (where
it only advances when every task is blocked). Reading ``jiffies()`` is a step of access kind LOCAL: it counts
towards the step bound (so polling time without sleeping is reported as a livelock) but never creates a
scheduling branch, because virtual time cannot change while the reading task is runnable.
"""

from __future__ import annotations

from ..errors import InvalidArgument
from ..runtime import LOCAL, READ, WRITE, Task, rt
from . import config
from ._warn import WARN

__all__ = [
    "HZ",
    "MAX_SCHEDULE_TIMEOUT",
    "TASK_INTERRUPTIBLE",
    "TASK_RUNNING",
    "TASK_UNINTERRUPTIBLE",
    "allow_signal",
    "current",
    "disallow_signal",
    "flush_signals",
    "in_atomic",
    "jiffies",
    "jiffies_to_msecs",
    "might_sleep",
    "msecs_to_jiffies",
    "msleep",
    "msleep_interruptible",
    "schedule",
    "schedule_timeout",
    "schedule_timeout_interruptible",
    "schedule_timeout_uninterruptible",
    "send_sig",
    "set_current_state",
    "signal_pending",
    "time_after",
    "time_after_eq",
    "time_before",
    "time_before_eq",
    "usecs_to_jiffies",
    "wake_up_process",
]

HZ = config.HZ
TASK_RUNNING = 0
TASK_INTERRUPTIBLE = 1
TASK_UNINTERRUPTIBLE = 2
#: ``LONG_MAX``: wait forever.
MAX_SCHEDULE_TIMEOUT = (1 << 63) - 1
_NS = 1_000_000_000


class _Clock:
    _dm_label = "jiffies"


_CLOCK = _Clock()


def current() -> Task:
    """The running task (``current``)."""
    return rt().current()


def in_atomic() -> bool:
    """True inside a spinlock, irq-disabled section, RCU read-side section or timer callback."""
    t = rt().current()
    return t.atomic_depth > 0 or t.rcu_depth > 0


def might_sleep() -> None:
    """Warn (``BUG: sleeping function called from invalid context``) if the caller may not sleep.

    Also warns (``do not call blocking ops when !TASK_RUNNING``) if the task state is not TASK_RUNNING: the
    caller is between ``set_current_state`` and its ``schedule``.

    Locking: none held that forbids sleeping: no spinlock, no irqs off, no RCU read-side section.
    Kernel: ``might_sleep()`` in include/linux/kernel.h (``__might_sleep``, CONFIG_DEBUG_ATOMIC_SLEEP).
    """
    t = rt().current()
    if t.atomic_depth > 0 or t.rcu_depth > 0:
        where = (
            "atomic context (spinlock held, irqs off or timer callback)"
            if t.atomic_depth
            else ("an RCU read-side critical section")
        )
        WARN(
            True,
            f"sleeping function called from invalid context: task {t.name!r} is in {where}",
            "might_sleep: sleeping in atomic context",
        )
    elif t.kstate != TASK_RUNNING:
        # __might_sleep: a blocking call would reset the state set for the caller's own wait loop, so the
        # wait that follows could miss its wake-up (set_current_state(); mutex_lock(); schedule();)
        WARN(
            True,
            f"do not call blocking ops when !TASK_RUNNING: task {t.name!r} set state={t.kstate} with "
            "set_current_state and then called a function that may sleep; set TASK_RUNNING first "
            "(__set_current_state(TASK_RUNNING)) or move the call out of the wait loop",
            "might_sleep: blocking op when !TASK_RUNNING",
        )


def jiffies() -> int:
    """The jiffies counter now (``jiffies``). A step, but never a scheduling branch."""
    r = rt()
    r.point("jiffies", _CLOCK, LOCAL)
    return r.now_ns() * HZ // _NS


def _int(v: object, fn: str, what: str = "an int") -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise InvalidArgument(f"{fn} needs {what}, got {v!r}")
    return v


def _task(t: object, fn: str) -> Task:
    if not isinstance(t, Task):
        raise InvalidArgument(f"{fn} needs a task (current(), kthread_run(...)), got {type(t).__name__}")
    return t


def msecs_to_jiffies(ms: int) -> int:
    """Milliseconds to jiffies, rounded up (``msecs_to_jiffies``)."""
    if _int(ms, "msecs_to_jiffies", "an int number of milliseconds") < 0:
        return MAX_SCHEDULE_TIMEOUT
    return (int(ms) * HZ + 999) // 1000


def usecs_to_jiffies(us: int) -> int:
    """Microseconds to jiffies, rounded up."""
    return (_int(us, "usecs_to_jiffies") * HZ + 999_999) // 1_000_000


def jiffies_to_msecs(j: int) -> int:
    """Jiffies to milliseconds."""
    return _int(j, "jiffies_to_msecs") * 1000 // HZ


def time_after(a: int, b: int) -> bool:
    """``time_after(a, b)``: a is later than b (wrap-safe on 64 bits)."""
    return ((_int(b, "time_after") - _int(a, "time_after")) & ((1 << 64) - 1)) >= (1 << 63)


def time_before(a: int, b: int) -> bool:
    """``time_before(a, b)``."""
    return time_after(b, a)


def time_after_eq(a: int, b: int) -> bool:
    """``time_after_eq(a, b)``."""
    return time_after(a, b) or a == b


def time_before_eq(a: int, b: int) -> bool:
    """``time_before_eq(a, b)``."""
    return time_after_eq(b, a)


def _timeout_ns(timeout: int) -> int | None:
    if timeout >= MAX_SCHEDULE_TIMEOUT:
        return None
    return timeout * _NS // HZ


def set_current_state(state: int) -> None:
    """Set the running task's state before sleeping (``set_current_state``): the first half of the
    ``set_current_state(); if (!cond) schedule();`` idiom. A write the waker races with."""
    if state not in (TASK_RUNNING, TASK_INTERRUPTIBLE, TASK_UNINTERRUPTIBLE):
        raise InvalidArgument(f"unknown task state {state!r}")
    r = rt()
    t = r.current()
    r.point("set_state", t, WRITE)
    t.kstate = state


def _sleep(timeout_ns: int | None) -> bool:
    """Sleep in the current task state until woken (state back to RUNNING), signalled (interruptible) or
    the timeout. Returns True if woken before the timeout. Scheduling in atomic context or in an RCU
    read-side section WARNs (the kernel's ``schedule_debug``/``rcu_note_context_switch``)."""
    r = rt()
    t = r.current()
    if t.atomic_depth > 0:
        WARN(True, f"scheduling while atomic: task {t.name!r}", "schedule: scheduling while atomic")
    elif t.rcu_depth > 0:
        # rcu_note_context_switch (PREEMPT_RCU) / schedule_debug (!PREEMPT_RCU): a WARN in either build
        WARN(
            True,
            f"Voluntary context switch within RCU read-side critical section! (task {t.name!r})",
            "schedule: sleeping in an RCU read-side section",
        )
    if t.kstate == TASK_RUNNING:
        r.point("schedule", t, READ)
        return True

    def ready() -> bool:
        return t.kstate == TASK_RUNNING or (t.kstate == TASK_INTERRUPTIBLE and t.sigpending)

    ok = r.wait("schedule", t, READ, ready, timeout_ns)
    t.kstate = TASK_RUNNING
    return ok


def schedule() -> None:
    """Sleep until ``wake_up_process`` (or a signal, for TASK_INTERRUPTIBLE). Returns at once if the
    state is already TASK_RUNNING (the wake-up came first)."""
    _sleep(None)


def schedule_timeout(timeout: int) -> int:
    """Sleep in the current state for at most ``timeout`` jiffies; returns the jiffies left (0 on timeout).

    Kernel: ``schedule_timeout`` (kernel/time/sleep_timeout.c). A negative timeout is an error the kernel
    prints and treats as 0.
    """
    if not isinstance(timeout, int):
        raise InvalidArgument(f"schedule_timeout needs an int number of jiffies, got {timeout!r}")
    r = rt()
    if timeout < 0:
        WARN(True, f"schedule_timeout: wrong timeout value {timeout:x}", "schedule_timeout: negative timeout")
        r.current().kstate = TASK_RUNNING
        return 0
    start = r.now_ns()
    ok = _sleep(_timeout_ns(timeout))
    if timeout >= MAX_SCHEDULE_TIMEOUT:
        return MAX_SCHEDULE_TIMEOUT
    if not ok:
        return 0
    elapsed = (r.now_ns() - start) * HZ // _NS
    return max(0, timeout - elapsed)


def schedule_timeout_interruptible(timeout: int) -> int:
    """``set_current_state(TASK_INTERRUPTIBLE); schedule_timeout(timeout)``."""
    set_current_state(TASK_INTERRUPTIBLE)
    return schedule_timeout(timeout)


def schedule_timeout_uninterruptible(timeout: int) -> int:
    """``set_current_state(TASK_UNINTERRUPTIBLE); schedule_timeout(timeout)``."""
    set_current_state(TASK_UNINTERRUPTIBLE)
    return schedule_timeout(timeout)


def wake_up_process(task: Task) -> int:
    """Wake ``task`` if it is sleeping (state not RUNNING); returns 1 if it was woken, 0 if it was running.

    Kernel: ``wake_up_process`` (kernel/sched/core.c).
    """
    if not isinstance(task, Task):
        raise InvalidArgument(f"wake_up_process needs a task, got {type(task).__name__}")
    r = rt()
    r.point("wake", task, WRITE)
    if task.done or task.kstate == TASK_RUNNING:
        return 0
    task.kstate = TASK_RUNNING
    r.notify_task(task)
    return 1


def msleep(msecs: int) -> None:
    """Sleep at least ``msecs`` milliseconds (uninterruptible). May sleep."""
    _int(msecs, "msleep", "an int number of milliseconds")
    might_sleep()
    r = rt()
    r.wait("msleep", _CLOCK, LOCAL, _never, msecs_to_jiffies(msecs) * _NS // HZ)


def msleep_interruptible(msecs: int) -> int:
    """Sleep ``msecs`` ms unless a signal arrives; returns the milliseconds left."""
    _int(msecs, "msleep_interruptible", "an int number of milliseconds")
    might_sleep()
    r = rt()
    t = r.current()
    start = r.now_ns()
    total = msecs_to_jiffies(msecs) * _NS // HZ
    r.wait("msleep", t, READ, lambda: t.sigpending, total)
    left = total - (r.now_ns() - start)
    return max(0, left // 1_000_000)


def _never() -> bool:
    return False


def signal_pending(task: Task) -> bool:
    """True if a signal is pending for ``task`` (``signal_pending(current)``)."""
    if not isinstance(task, Task):
        raise InvalidArgument(f"signal_pending needs a task, got {type(task).__name__}")
    rt().point("signal_pending", task, READ)
    return task.sigpending


#: ``task.extra`` keys of the signal model. ``task.sigpending`` is ``signal_pending()``: a real signal
#: (REAL_SIGNAL, from send_sig) or kthread_stop's TIF_NOTIFY_SIGNAL (NOTIFY_SIGNAL), which interrupts
#: interruptible waits but is not a fatal signal and survives flush_signals.
KTHREAD_KEY = "kthread"
NOTIFY_SIGNAL = "tif_notify_signal"
REAL_SIGNAL = "signal_real"
ALLOWED_SIGNALS = "allowed_signals"


def send_sig(sig: int, task: Task, priv: int = 0) -> int:
    """Deliver a signal to ``task``: interruptible waits of that task return ``-EINTR``/``-ERESTARTSYS``.
    A kthread ignores every signal it did not :func:`allow_signal` (kthreadd's ``ignore_signals``): the
    signal is dropped. Returns 0 either way, as the kernel's ``send_sig`` does for an ignored signal."""
    _int(sig, "send_sig", "an int signal number")
    _int(priv, "send_sig", "an int priv")
    _task(task, "send_sig")
    r = rt()
    r.point("signal", task, WRITE)
    if KTHREAD_KEY in task.extra and sig not in task.extra.get(ALLOWED_SIGNALS, ()):
        return 0
    task.sigpending = True
    task.extra[REAL_SIGNAL] = True
    r.notify_task(task)
    return 0


def flush_signals(task: Task) -> None:
    """Discard the pending signals of ``task``. kthread_stop's notification (TIF_NOTIFY_SIGNAL) is not a
    queued signal and stays: ``signal_pending`` remains true in a stopped kthread."""
    _task(task, "flush_signals")
    r = rt()
    r.point("signal", task, WRITE)
    task.extra.pop(REAL_SIGNAL, None)
    task.sigpending = bool(task.extra.get(NOTIFY_SIGNAL))


def allow_signal(sig: int) -> None:
    """Let the current kthread receive ``sig`` (kthreads ignore every signal otherwise). No effect on other
    tasks, which receive every signal. Kernel: ``allow_signal``."""
    _int(sig, "allow_signal", "an int signal number")
    allowed = rt().current().extra.setdefault(ALLOWED_SIGNALS, set())
    allowed.add(sig)


def disallow_signal(sig: int) -> None:
    """Ignore ``sig`` again in the current kthread. Kernel: ``disallow_signal``."""
    _int(sig, "disallow_signal", "an int signal number")
    rt().current().extra.get(ALLOWED_SIGNALS, set()).discard(sig)
