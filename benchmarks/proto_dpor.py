"""A minimal pure-Python source-DPOR with sleep sets, for the speed target's yardstick (not part of dmabuf).

The issue states its speed target next to a measurement: "a throwaway pure-Python source-DPOR + sleep-set
prototype reached ~50,000/s on this machine size" against a target of 25,000/s, i.e. half the prototype's
rate. Machines differ (the shared one this project runs on has varied 3x between sessions), so
bench_explorer.py measures this prototype in the same run and prints the ratio as well as the absolute rate.

It is written to be fast, not general: a task is a list of ``("lock", m)`` / ``("unlock", m)`` operations
(the locked N x K family with a plain ``counter++``, whose increments are not scheduling points), there are no
spawns, joins, waits on predicates, checks or reports. Each execution re-runs the program from the start,
replaying the choices of the unchanged prefix, as a stateless search does. Races: a lock of ``m`` races with
the last lock of ``m`` by another task unless that one happens before it (through the task's own earlier
operations); the unlock in between enables it and is skipped. The reversal starts with the locking task,
which is always enabled at the earlier lock (the mutex was free there and the task was at this lock).
Sleep sets: a task explored at a node sleeps in the sibling subtrees until a dependent operation (any
operation on the same mutex) runs.
"""

from __future__ import annotations

from math import factorial


def locked_program(tasks: int, per_task: int) -> list[list[tuple[str, int]]]:
    """The locked family: each task takes mutex 0 ``per_task`` times (its increment is not a point)."""
    return [[("lock", 0), ("unlock", 0)] * per_task for _ in range(tasks)]


def explore(prog: list[list[tuple[str, int]]]) -> tuple[int, int]:
    """Every execution of ``prog`` up to the order of dependent operations. Returns (executions,
    sleep-set blocked executions)."""
    n = len(prog)
    # the stack of nodes of the current execution: [chosen task, backtrack set, done set, sleep set]
    stack: list[list] = []  # type: ignore[type-arg]
    executions = blocked = 0
    while True:
        pc = [0] * n
        owner: dict[int, int] = {}
        clock = [0] * n  # per task: bit set of the events that happen before its next operation
        last_lock: dict[int, int] = {}  # mutex -> index of its last lock event
        lock_task: list[int] = []  # event index -> its task (-1 for unlocks)
        lock_clock: list[int] = []  # event index -> the clock of that event
        sleep: set[int] = set()
        depth = 0
        ok = True
        while True:
            enabled = [
                t for t in range(n) if pc[t] < len(prog[t]) and (prog[t][pc[t]][0] == "unlock" or prog[t][pc[t]][1] not in owner)
            ]
            if not enabled:
                break
            if depth < len(stack):
                node = stack[depth]
                t = node[0]
                if depth == len(stack) - 1:
                    sleep = node[3] | node[2]
            else:
                awake = [t for t in enabled if t not in sleep]
                if not awake:
                    ok = False  # sleep-set blocked
                    break
                t = awake[0]
                node = [t, {t}, set(), set(sleep)]
                stack.append(node)
            op, m = prog[t][pc[t]]
            pc[t] += 1
            j = len(lock_task)
            c = clock[t]
            if op == "lock":
                owner[m] = t
                i = last_lock.get(m, -1)
                if i >= 0 and lock_task[i] != t and not (c >> i) & 1:
                    # race: reverse it at the node of event i (its index is its depth: one event a step)
                    bt = stack[i]
                    if t not in bt[1] and t not in bt[3]:
                        bt[1].add(t)
                if i >= 0:
                    c |= lock_clock[i]
                last_lock[m] = j
                lock_task.append(t)
            else:
                del owner[m]
                lock_task.append(-1)
            c |= 1 << j
            clock[t] = c
            lock_clock.append(c)
            # every operation on the mutex is dependent on every other: the sleepers wake up
            if sleep:
                sleep = {s for s in sleep if s != t and prog[s][pc[s]][1] != m}
            depth += 1
        executions += 1
        blocked += not ok
        del stack[depth:]
        # backtrack: the deepest node with an untried task
        while stack:
            node = stack[-1]
            node[2].add(node[0])
            todo = node[1] - node[2] - node[3]
            if todo:
                node[0] = min(todo)
                break
            stack.pop()
        if not stack:
            return executions, blocked


def ideal(tasks: int, per_task: int) -> int:
    return factorial(tasks * per_task) // factorial(per_task) ** tasks


if __name__ == "__main__":
    import time

    for nk in [(2, 2), (3, 2), (2, 3), (4, 1), (3, 3), (4, 2)]:
        t0 = time.perf_counter()
        e, b = explore(locked_program(*nk))
        dt = time.perf_counter() - t0
        print(f"{nk[0]}x{nk[1]}: {e} executions (ideal {ideal(*nk)}), {b} sleep-blocked, {e / dt:,.0f}/s")
