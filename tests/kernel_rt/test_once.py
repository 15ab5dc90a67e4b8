"""READ_ONCE/WRITE_ONCE, barriers and bit operations on flag words."""

import pytest

import dmabuf
from dmabuf import kernel as K
from dmabuf.errors import InvalidArgument
from dmabuf.kernel import READ_ONCE, WRITE_ONCE, Atomic, atomic_inc, atomic_read, field_key


class Obj:
    def __init__(self):
        self.count = 0
        self.other = 0
        self.flags = 0


def _two_increments(inc):
    def body():
        o = Obj()
        ts = [dmabuf.spawn(inc, o, name=f"inc{i}") for i in range(2)]
        for t in ts:
            t.join()
        assert READ_ONCE(o, "count") == 2

    return body


def test_lost_update_with_read_once_write_once_is_found():
    def inc(o):
        v = READ_ONCE(o, "count")
        WRITE_ONCE(o, "count", v + 1)

    res = dmabuf.explore(_two_increments(inc), strategy="dfs")
    assert res.failure is not None
    assert res.failure.kind == "exception"
    assert isinstance(res.failure.exception, AssertionError)


def test_same_counter_with_atomic_inc_never_fails(run_on):
    def body():
        a = Atomic()
        ts = [dmabuf.spawn(atomic_inc, a, name=f"inc{i}") for i in range(2)]
        for t in ts:
            t.join()
        assert atomic_read(a) == 2

    res = run_on(body)
    if run_on.kind == "controlled":
        assert res.ok and res.complete and res.executions > 1


def test_different_fields_do_not_conflict():
    # each task touches only its own field: the explorer needs no interleaving of the two writes to find
    # every outcome, and the keys for the two fields are distinct and stable
    def body():
        o = Obj()
        assert field_key(o, "count") is field_key(o, "count")
        assert field_key(o, "count") is not field_key(o, "other")
        assert field_key(o, "count") is not field_key(Obj(), "count")
        WRITE_ONCE(o, "other", 7)
        assert READ_ONCE(o, "other") == 7 and o.other == 7

    assert dmabuf.explore(body, strategy="dfs").ok


def test_barriers_are_noops():
    def body():
        K.smp_mb()
        K.smp_rmb()
        K.smp_wmb()
        o = Obj()
        K.smp_store_release(o, "count", 3)
        assert K.smp_load_acquire(o, "count") == 3

    assert dmabuf.explore(body, strategy="dfs").ok


def test_bit_operations(run_on):
    def body():
        o = Obj()
        w = (o, "flags")
        assert K.test_bit(3, w) is False
        K.set_bit(3, w)
        assert o.flags == 8 and K.test_bit(3, w) is True
        assert K.test_and_set_bit(0, w) is False and o.flags == 9
        assert K.test_and_set_bit(0, w) is True and o.flags == 9
        assert K.test_and_clear_bit(3, w) is True and o.flags == 1
        assert K.test_and_clear_bit(3, w) is False and o.flags == 1
        K.clear_bit(0, w)
        assert o.flags == 0
        # the plain-value form only tests
        assert K.test_bit(2, 4) is True and K.test_bit(1, 4) is False

    run_on(body)


def test_test_and_set_bit_exactly_one_winner(run_on):
    def body():
        o = Obj()
        wins = []

        def claim(i):
            if not K.test_and_set_bit(1, (o, "flags")):
                wins.append(i)

        ts = [dmabuf.spawn(claim, i, name=f"c{i}") for i in range(2)]
        for t in ts:
            t.join()
        assert len(wins) == 1 and o.flags == 2

    run_on(body)


def test_bad_arguments():
    def body():
        o = Obj()
        with pytest.raises(InvalidArgument):
            READ_ONCE(None, "count")
        with pytest.raises(InvalidArgument):
            READ_ONCE(o, "nope")
        with pytest.raises(InvalidArgument):
            K.set_bit(1, o)
        with pytest.raises(InvalidArgument):
            K.set_bit(-1, (o, "flags"))
        o.flags = "x"
        with pytest.raises(InvalidArgument):
            K.test_bit(1, (o, "flags"))

    assert dmabuf.explore(body, strategy="dfs").ok
