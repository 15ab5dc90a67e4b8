"""RCU: read-side sections, grace periods (synchronize_rcu, call_rcu, rcu_barrier) and their misuse."""

import pytest

import dmabuf
from dmabuf.errors import InvalidArgument
from dmabuf.kernel import (
    READ_ONCE,
    WRITE_ONCE,
    RcuHead,
    call_rcu,
    kfree_rcu,
    might_sleep,
    rcu_access_pointer,
    rcu_assign_pointer,
    rcu_barrier,
    rcu_dereference,
    rcu_dereference_check,
    rcu_dereference_protected,
    rcu_read_lock,
    rcu_read_lock_held,
    rcu_read_unlock,
    rcu_replace_pointer,
    set_warn_mode,
    synchronize_rcu,
)
from dmabuf.runtime import READ, rt


class St:
    def __init__(self):
        self.phase = 0
        self.started = False
        self.gp_started = False
        self.gp_done = False


def _wait_for(st, field):
    r = rt()
    r.wait("wait " + field, st, READ, lambda: getattr(st, field))


def _set(st, field):
    WRITE_ONCE(st, field, True)
    rt().notify(st)


def test_nesting_and_lock_held(run_on):
    def body():
        assert not rcu_read_lock_held()
        rcu_read_lock()
        rcu_read_lock()
        assert rt().current().rcu_depth == 2
        rcu_read_unlock()
        assert rcu_read_lock_held()
        rcu_read_unlock()
        assert not rcu_read_lock_held()
        synchronize_rcu()  # no readers: returns at once

    run_on(body)


def test_synchronize_rcu_waits_for_preexisting_reader():
    seen = set()

    def body():
        st = St()

        def reader():
            rcu_read_lock()
            WRITE_ONCE(st, "phase", 1)  # inside
            WRITE_ONCE(st, "phase", 2)  # about to leave
            rcu_read_unlock()

        def updater():
            p = READ_ONCE(st, "phase")
            synchronize_rcu()  # the grace period starts right after the read above
            after = READ_ONCE(st, "phase")
            seen.add((p, after))
            if p == 1:
                assert after == 2, "synchronize_rcu returned while a pre-existing reader was inside"

        ts = [dmabuf.spawn(reader, name="reader"), dmabuf.spawn(updater, name="updater")]
        for t in ts:
            t.join()

    res = dmabuf.explore(body, strategy="dfs")
    assert res.ok and res.complete, res.failure
    # the explorer did cover the case that matters: the reader was inside when the grace period started
    assert (1, 2) in seen and (0, 0) in seen and (2, 2) in seen
    dmabuf.run_threads(body)


def _wait_until_in_grace_period(task, st):
    """Block until ``task`` sits in synchronize_rcu's wait (its grace period has started) or went past it.
    On threads the runtime re-checks predicates when every task is blocked, which wakes us without a
    notify; the task's exit wakes us too."""
    rt().wait(
        "wait gp start", task, READ, lambda: (task.op == "rcu_gp" and task.ready is not None) or st.gp_done
    )


def test_synchronize_rcu_does_not_wait_for_later_readers(run_on):
    def body():
        st = St()
        tasks = {}

        def reader():
            _wait_until_in_grace_period(tasks["updater"], st)
            rcu_read_lock()  # strictly after the grace period started
            _wait_for(st, "gp_done")  # would deadlock if synchronize_rcu waited for this section
            rcu_read_unlock()

        def updater():
            synchronize_rcu()
            _set(st, "gp_done")

        tasks["updater"] = dmabuf.spawn(updater, name="updater")
        r = dmabuf.spawn(reader, name="reader")
        r.join()
        tasks["updater"].join()

    run_on(body)


def test_reader_that_reenters_does_not_block_grace_period(run_on):
    def body():
        st = St()
        tasks = {}

        def reader():
            rcu_read_lock()
            _set(st, "started")
            _wait_until_in_grace_period(tasks["updater"], st)  # the grace period waits for this section...
            rcu_read_unlock()
            rcu_read_lock()  # ...but not for this new one
            _wait_for(st, "gp_done")
            rcu_read_unlock()

        def updater():
            _wait_for(st, "started")
            synchronize_rcu()
            _set(st, "gp_done")

        tasks["updater"] = dmabuf.spawn(updater, name="updater")
        r = dmabuf.spawn(reader, name="reader")
        r.join()
        tasks["updater"].join()

    run_on(body)


class Node:
    def __init__(self, v):
        self.v = v
        self.freed = False
        self.rcu = RcuHead()


class Global:
    def __init__(self):
        self.ptr = None


def _free_node(head):
    # the callback gets the head; find the node through the closure-free attribute we set
    WRITE_ONCE(head.owner, "freed", True)


def _publish_and_retire(immediate):
    def body():
        g = Global()
        old = Node(1)
        old.rcu.owner = old
        g.ptr = old

        def reader():
            rcu_read_lock()
            p = rcu_dereference(g, "ptr")
            if p is not None:
                assert not READ_ONCE(p, "freed"), "reader saw a freed node"
            rcu_read_unlock()

        def updater():
            rcu_assign_pointer(g, "ptr", None)
            if immediate:
                _free_node(old.rcu)
            else:
                call_rcu(old.rcu, _free_node)

        ts = [dmabuf.spawn(reader, name="reader"), dmabuf.spawn(updater, name="updater")]
        for t in ts:
            t.join()
        rcu_barrier()
        assert old.freed

    return body


def test_call_rcu_callback_runs_after_grace_period(run_on):
    run_on(_publish_and_retire(immediate=False))


def test_freeing_without_grace_period_is_found():
    res = dmabuf.explore(_publish_and_retire(immediate=True), strategy="dfs")
    assert res.failure is not None and res.failure.kind == "exception"
    assert "reader saw a freed node" in str(res.failure.exception)


def test_call_rcu_inside_own_read_section_waits_for_it():
    def body():
        n = Node(1)
        n.rcu.owner = n
        rcu_read_lock()
        call_rcu(n.rcu, _free_node)
        assert not READ_ONCE(n, "freed")
        rcu_read_unlock()
        rcu_barrier()
        assert n.freed

    res = dmabuf.explore(body, strategy="dfs")
    assert res.ok and res.complete


def test_rcu_barrier_waits_for_callbacks_and_kfree_rcu(run_on):
    def body():
        ran = []
        heads = [RcuHead() for _ in range(2)]
        for h in heads:
            call_rcu(h, ran.append)
        n = Node(2)
        kfree_rcu(n, "rcu")
        rcu_barrier()
        assert ran == heads or ran == heads[::-1]
        assert sorted(map(id, ran)) == sorted(map(id, heads))
        assert all(h.func is None for h in heads) and n.rcu.func is None

    run_on(body)


def test_pointer_helpers():
    def body():
        g = Global()
        n = Node(1)
        rcu_assign_pointer(g, "ptr", n)
        assert rcu_access_pointer(g, "ptr") is n
        assert rcu_dereference_check(g, "ptr", True) is n
        assert rcu_dereference_protected(g, "ptr", True) is n
        m = Node(2)
        assert rcu_replace_pointer(g, "ptr", m, True) is n
        assert g.ptr is m

    assert dmabuf.explore(body, strategy="dfs").ok


def _warns(body, rule):
    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "kernel-warning", res.failure
    assert res.failure.exception.rule == rule
    return res


def test_synchronize_rcu_inside_read_section_warns():
    def body():
        rcu_read_lock()
        synchronize_rcu()

    _warns(body, "rcu: synchronize_rcu inside a read-side section")


def test_log_mode_synchronize_in_section_does_not_wait_for_itself():
    def body():
        set_warn_mode("log")
        rcu_read_lock()
        synchronize_rcu()
        rcu_read_unlock()

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "kernel-warning"
    assert "Illegal synchronize_rcu()" in res.failure.message


def test_unlock_without_lock_warns():
    _warns(rcu_read_unlock, "rcu: unlock without lock")


def test_sleeping_in_read_section_warns():
    def body():
        rcu_read_lock()
        might_sleep()

    _warns(body, "might_sleep: sleeping in atomic context")


def test_dereference_outside_section_warns():
    def body():
        rcu_dereference(Global(), "ptr")

    _warns(body, "rcu: dereference outside read-side section")


def test_double_call_rcu_warns():
    def body():
        h = RcuHead()
        call_rcu(h, lambda _: None)
        call_rcu(h, lambda _: None)

    _warns(body, "rcu: double call_rcu")


def test_task_exiting_inside_read_section_is_a_leak():
    def body():
        t = dmabuf.spawn(rcu_read_lock, name="forgetful")
        t.join()

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "leak"
    assert "'forgetful'" in res.failure.message and "rcu_read_unlock" in res.failure.message


def test_bad_arguments():
    def body():
        with pytest.raises(InvalidArgument):
            call_rcu(None, lambda _: None)
        with pytest.raises(InvalidArgument):
            call_rcu(RcuHead(), None)
        with pytest.raises(InvalidArgument):
            rcu_assign_pointer(None, "ptr", 1)
        with pytest.raises(InvalidArgument):
            rcu_access_pointer(Global(), "nope")

    assert dmabuf.explore(body, strategy="dfs").ok
