"""Classic concurrency bugs and their fixes, written on the kernel-named API.

Each function is a *body*: run it with ``dmabuf.explore(body)`` or ``dmabuf.run_threads(body)``.
"""

from __future__ import annotations

from collections.abc import Callable

import dmabuf
from dmabuf.kernel import READ_ONCE, WRITE_ONCE, Mutex, mutex_lock, mutex_unlock


class Counter:
    """A shared counter; racy fields go through READ_ONCE/WRITE_ONCE so the explorer sees them."""

    def __init__(self) -> None:
        self.value = 0


def abba_deadlock() -> None:
    """Two tasks take two mutexes in opposite orders: the explorer finds the deadlock and names the cycle."""
    a, b = Mutex(name="A"), Mutex(name="B")

    def t1() -> None:
        mutex_lock(a)
        mutex_lock(b)
        mutex_unlock(b)
        mutex_unlock(a)

    def t2() -> None:
        mutex_lock(b)
        mutex_lock(a)
        mutex_unlock(a)
        mutex_unlock(b)

    x, y = dmabuf.spawn(t1, name="t1"), dmabuf.spawn(t2, name="t2")
    x.join()
    y.join()


def lost_update() -> None:
    """Two unsynchronised read-modify-write increments: one update can be lost."""
    c = Counter()

    def inc() -> None:
        WRITE_ONCE(c, "value", READ_ONCE(c, "value") + 1)

    x, y = dmabuf.spawn(inc, name="inc1"), dmabuf.spawn(inc, name="inc2")
    x.join()
    y.join()
    assert c.value == 2, f"lost update: counter is {c.value}, expected 2"


def locked_family(tasks: int, per_task: int, *, once: bool = True) -> Callable[[], None]:
    """A body in which ``tasks`` tasks each do ``per_task`` mutex-protected increments: always correct.
    DPOR runs exactly one execution per order of the critical sections, (N*K)!/(K!)^N (6 for 2 x 2, 90 for
    3 x 2, 24 for 4 x 1, 1,680 for 3 x 3): the family the explorer's tests and benchmarks count.

    ``once=True`` (the default) reads and writes the counter with READ_ONCE/WRITE_ONCE, so each critical
    section is four scheduling points (lock, read, write, unlock). ``once=False`` is the kernel's usual
    ``counter++`` under the mutex: the mutex protects the field, the access is plain, and a critical
    section is two points (lock, unlock), as in loom's ``Mutex<usize>`` version of this program."""

    def body() -> None:
        c = Counter()
        m = Mutex(name="M")

        def worker() -> None:
            for _ in range(per_task):
                mutex_lock(m)
                if once:
                    WRITE_ONCE(c, "value", READ_ONCE(c, "value") + 1)
                else:
                    c.value += 1
                mutex_unlock(m)

        ts = [dmabuf.spawn(worker, name=f"w{i}") for i in range(tasks)]
        for t in ts:
            t.join()
        assert c.value == tasks * per_task

    body.__qualname__ = f"locked_family_{tasks}x{per_task}" + ("" if once else "_plain")
    return body


def locked_increments() -> None:
    """3 tasks x 2 mutex-protected increments (see :func:`locked_family`): 90 executions under DPOR."""
    locked_family(3, 2)()
