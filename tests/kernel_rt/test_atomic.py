"""atomic_t / atomic64_t: values, wrap-around, and that each RMW is one indivisible scheduling point."""

import pytest

import dmabuf
from dmabuf.errors import InvalidArgument
from dmabuf.kernel import (
    ATOMIC_INIT,
    Atomic,
    Atomic64,
    atomic64_add_return,
    atomic64_inc,
    atomic64_read,
    atomic_add,
    atomic_add_unless,
    atomic_cmpxchg,
    atomic_dec,
    atomic_dec_and_test,
    atomic_fetch_add,
    atomic_inc,
    atomic_inc_not_zero,
    atomic_inc_return,
    atomic_read,
    atomic_set,
    atomic_sub,
    atomic_try_cmpxchg,
    atomic_xchg,
)


def test_values(run_on):
    def body():
        a = Atomic()
        assert atomic_read(a) == 0
        atomic_set(a, 5)
        atomic_inc(a)
        atomic_add(4, a)
        atomic_sub(3, a)
        atomic_dec(a)
        assert atomic_read(a) == 6
        assert atomic_inc_return(a) == 7
        assert atomic_fetch_add(3, a) == 7
        assert atomic_cmpxchg(a, 1, 99) == 10 and atomic_read(a) == 10
        assert atomic_cmpxchg(a, 10, 1) == 10 and atomic_read(a) == 1
        assert atomic_try_cmpxchg(a, 5, 6) == (False, 1)
        assert atomic_try_cmpxchg(a, 1, 2) == (True, 1)
        assert atomic_xchg(a, 1) == 2
        assert atomic_dec_and_test(a) is True
        assert atomic_inc_not_zero(a) is False and atomic_read(a) == 0
        assert atomic_add_unless(a, 5, 3) is True and atomic_read(a) == 5
        assert atomic_add_unless(a, 5, 5) is False and atomic_read(a) == 5
        assert atomic_read(ATOMIC_INIT(-4)) == -4

    run_on(body)


def test_wraps_32_and_64_bits():
    def body():
        a = Atomic((1 << 31) - 1)
        assert atomic_inc_return(a) == -(1 << 31)
        b = Atomic64((1 << 63) - 1)
        atomic64_inc(b)
        assert atomic64_read(b) == -(1 << 63)
        assert atomic64_add_return(1 << 40, Atomic64()) == 1 << 40

    assert dmabuf.explore(body, strategy="dfs").ok


def test_type_checks():
    def body():
        with pytest.raises(InvalidArgument):
            atomic_inc(None)
        with pytest.raises(InvalidArgument):
            atomic_read(Atomic64())
        with pytest.raises(InvalidArgument):
            atomic64_read(Atomic())
        with pytest.raises(InvalidArgument):
            atomic_set(Atomic(), "1")

    assert dmabuf.explore(body, strategy="dfs").ok


def test_atomic_inc_never_loses_an_update(run_on):
    def body():
        a = Atomic()
        ts = [dmabuf.spawn(atomic_inc, a, name=f"inc{i}") for i in range(2)]
        for t in ts:
            t.join()
        assert atomic_read(a) == 2

    run_on(body)


def test_cmpxchg_loop_increment_is_correct(run_on):
    def body():
        a = Atomic()

        def inc():
            old = atomic_read(a)
            while True:
                ok, old = atomic_try_cmpxchg(a, old, old + 1)
                if ok:
                    return

        ts = [dmabuf.spawn(inc, name=f"inc{i}") for i in range(2)]
        for t in ts:
            t.join()
        assert atomic_read(a) == 2

    run_on(body)
