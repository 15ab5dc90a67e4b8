"""DPOR agrees with DFS on generated programs written only with the public kernel API: mutexes (lock and
trylock), a spinlock, READ_ONCE/WRITE_ONCE fields, atomics (inc, read, cmpxchg) and ``choose``."""

from _agreement import dpor_agrees_with_dfs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dmabuf
from dmabuf.kernel import (
    ATOMIC_INIT,
    READ_ONCE,
    WRITE_ONCE,
    Mutex,
    SpinLock,
    atomic_cmpxchg,
    atomic_inc,
    atomic_read,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    spin_lock,
    spin_unlock,
)

OPS = st.recursive(
    st.one_of(
        st.tuples(st.just("r"), st.integers(0, 2)),
        st.tuples(st.just("w"), st.integers(0, 2)),
        st.tuples(st.just("ai"), st.integers(0, 1)),
        st.tuples(st.just("ar"), st.integers(0, 1)),
        st.tuples(st.just("cx"), st.integers(0, 1)),
        st.tuples(st.just("choose")),
        st.tuples(st.just("try"), st.integers(0, 1)),
    ),
    lambda inner: st.one_of(
        st.tuples(st.just("m"), st.integers(0, 1), st.lists(inner, min_size=1, max_size=2)),
        st.tuples(
            st.just("s"),
            st.just(0),
            st.lists(inner.filter(lambda o: o[0] in ("r", "w", "ai", "ar", "cx")), min_size=1, max_size=2),
        ),
    ),
    max_leaves=4,
)
PROGRAMS = st.lists(st.lists(OPS, min_size=1, max_size=4), min_size=2, max_size=3)


class V:
    def __init__(self):
        self.x = 0


def nested_locks(ops, held=()):
    for op in ops:
        if op[0] in ("m", "s"):
            k = (op[0], op[1])
            if (
                k in held
                or nested_locks(op[2], held + (k,))
                or (op[0] == "s" and any(o[0] == "m" for o in op[2]))
            ):
                return True
        if op[0] == "try" and ("m", op[1]) in held:
            return True
    return False


def build(program, out):
    def body():
        vs = [V() for _ in range(3)]
        ms = [Mutex(name=f"M{i}") for i in range(2)]
        sl = SpinLock(name="S")
        ats = [ATOMIC_INIT(0) for _ in range(2)]
        logs = {}

        def run(tid, ops):
            for op in ops:
                k = op[0]
                if k == "r":
                    logs[tid].append(READ_ONCE(vs[op[1]], "x"))
                elif k == "w":
                    WRITE_ONCE(vs[op[1]], "x", hash((tid, len(logs[tid]))) % 97)
                elif k == "ai":
                    atomic_inc(ats[op[1]])
                elif k == "ar":
                    logs[tid].append(atomic_read(ats[op[1]]))
                elif k == "cx":
                    logs[tid].append(atomic_cmpxchg(ats[op[1]], 0, 5))
                elif k == "choose":
                    logs[tid].append(("c", dmabuf.choose(3)))
                elif k == "try":
                    got = mutex_trylock(ms[op[1]])
                    logs[tid].append(("try", got))
                    if got:
                        mutex_unlock(ms[op[1]])
                elif k == "m":
                    mutex_lock(ms[op[1]])
                    run(tid, op[2])
                    mutex_unlock(ms[op[1]])
                elif k == "s":
                    spin_lock(sl)
                    run(tid, op[2])
                    spin_unlock(sl)

        def task(tid, ops):
            logs[tid] = []
            run(tid, ops)

        ts = [dmabuf.spawn(task, i, ops) for i, ops in enumerate(program)]
        for t in ts:
            t.join()
        out.add(
            (
                tuple(v.x for v in vs),
                tuple(atomic_read(a) for a in ats),
                tuple(sorted((k, tuple(v)) for k, v in logs.items())),
            )
        )

    return body


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PROGRAMS)
def test_dpor_agrees_with_dfs_on_kernel_api_programs(program):
    if any(nested_locks(ops) for ops in program):
        return  # recursive locking, or a sleeping lock under the spinlock: a WARN in both, nothing to compare
    both = dpor_agrees_with_dfs(lambda out: build(program, out), 5_000)
    if both is not None:
        dfs, dpor = both
        assert dpor.executions <= dfs.executions
