"""Signals and kthreads (kernel/kthread.c, kernel/signal.c): a kthread ignores every signal it did not
allow_signal (kthreadd's ignore_signals); kthread_stop's TIF_NOTIFY_SIGNAL makes signal_pending true, is not
a fatal signal, and is not a queued signal (flush_signals leaves it)."""

from __future__ import annotations

from typing import Any

import dmabuf
from dmabuf.kernel import (
    Completion,
    allow_signal,
    complete,
    current,
    disallow_signal,
    flush_signals,
    kthread_run,
    kthread_stop,
    send_sig,
    signal_pending,
    wait_for_completion,
    wait_for_completion_interruptible,
    wait_for_completion_killable,
)
from dmabuf.kernel.errno import ERESTARTSYS

SIGKILL, SIGTERM = 9, 15


def _signalled_kthread(allow: list[int], sig: int) -> Any:
    """A kthread that (after allowing ``allow``) waits interruptibly for ``go``; main sends it ``sig`` while
    it waits, then completes ``go``. Returns what the wait returned."""
    out: list[Any] = []

    def body() -> None:
        started, go = Completion("started"), Completion("go")

        def fn(_: Any) -> int:
            for s in allow:
                allow_signal(s)
            complete(started)
            return wait_for_completion_interruptible(go)

        t = kthread_run(fn, None, "k")
        wait_for_completion(started)
        send_sig(sig, t)
        complete(go)
        out.append(kthread_stop(t))

    res = dmabuf.explore(body, database=None)
    assert res.ok, res.failure and res.failure.message
    return set(out)


def test_a_kthread_ignores_signals_it_did_not_allow() -> None:
    assert _signalled_kthread([], SIGTERM) == {0}  # the signal was dropped: the wait ends with go
    assert _signalled_kthread([SIGKILL], SIGTERM) == {0}


def test_an_allowed_signal_interrupts_the_kthread() -> None:
    got = _signalled_kthread([SIGTERM], SIGTERM)
    assert -ERESTARTSYS in got  # when the signal comes first; go may also win the race
    assert got <= {0, -ERESTARTSYS}


def test_disallow_signal_ignores_it_again() -> None:
    def body() -> None:
        seen: list[bool] = []
        done = Completion("done")

        def fn(_: Any) -> int:
            allow_signal(SIGTERM)
            disallow_signal(SIGTERM)
            send_sig(SIGTERM, current())
            seen.append(signal_pending(current()))
            complete(done)
            return 0

        t = kthread_run(fn, None, "k")
        wait_for_completion(done)  # kthread_stop before the function ran would skip it
        kthread_stop(t)
        assert seen == [False]

    assert dmabuf.explore(body, database=None).ok


def test_kthread_stop_notification_survives_flush_signals_and_is_not_fatal() -> None:
    def body() -> None:
        started = Completion("started")
        never = Completion("never")
        seen: list[Any] = []

        def fn(_: Any) -> int:
            allow_signal(SIGKILL)
            complete(started)
            # kthread_stop's notification: an interruptible wait ends, a killable one does not
            r1 = wait_for_completion_interruptible(never)
            flush_signals(current())
            seen.append((r1, signal_pending(current())))
            complete(started)  # tell main the killable wait is next
            return wait_for_completion_killable(never)

        t = kthread_run(fn, None, "k")
        wait_for_completion(started)

        def stopper() -> None:
            seen.append(("stopped", kthread_stop(t)))

        s = dmabuf.spawn(stopper, name="stopper")
        wait_for_completion(started)
        send_sig(SIGKILL, t)  # a real (allowed) fatal signal ends the killable wait
        s.join()
        assert seen[0] == (-ERESTARTSYS, True), seen
        assert seen[1] == ("stopped", -ERESTARTSYS), seen

    res = dmabuf.explore(body, database=None)
    assert res.ok, res.failure and res.failure.message
