"""kref / refcount_t: counting, saturation WARNs, and release exactly once under races."""

import pytest

import dmabuf
from dmabuf.errors import InvalidArgument, KernelWarning
from dmabuf.kernel import (
    KREF_INIT,
    REFCOUNT_SATURATED,
    Kref,
    Refcount,
    kref_get,
    kref_get_unless_zero,
    kref_init,
    kref_put,
    kref_read,
    refcount_dec_and_test,
    refcount_inc,
    refcount_read,
    set_warn_mode,
)


def test_get_put_counts(run_on):
    def body():
        k = Kref()
        assert kref_read(k) == 0
        kref_init(k)
        kref_get(k)
        assert kref_read(k) == 2
        released = []
        assert kref_put(k, released.append) == 0
        assert released == []
        assert kref_put(k, released.append) == 1
        assert released == [k]
        assert kref_read(k) == 0
        assert kref_get_unless_zero(k) is False
        assert kref_read(k) == 0

    run_on(body)


def test_kref_init_macro_and_pythonic_api(run_on):
    def body():
        k = KREF_INIT(3)
        assert k.read() == 3
        assert k.get_unless_zero() is True
        assert k.put(lambda _: None) == 0
        assert k.read() == 3

    run_on(body)


def test_get_on_zero_warns():
    def body():
        k = Kref()
        kref_get(k)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "kernel-warning"
    assert res.failure.exception.rule == "kref_get on zero"
    assert "addition on 0; use-after-free" in str(res.failure.exception)


def test_get_on_zero_log_mode_saturates():
    seen = {}

    def body():
        set_warn_mode("log")
        k = Kref()
        kref_get(k)
        seen["read"] = kref_read(k)
        # a saturated counter never reaches zero again: release is never called
        seen["put"] = kref_put(k, lambda _: seen.setdefault("released", True))

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "kernel-warning"
    assert seen == {"read": REFCOUNT_SATURATED & 0xFFFFFFFF, "put": 0}


def test_put_underflow_warns():
    def body():
        k = KREF_INIT(1)
        assert kref_put(k, lambda _: None) == 1
        kref_put(k, lambda _: None)

    res = dmabuf.explore(body, strategy="dfs")
    assert res.failure is not None and res.failure.kind == "kernel-warning"
    assert res.failure.exception.rule == "kref_put underflow"
    assert "underflow; use-after-free" in str(res.failure.exception)


def test_refcount_functions():
    def body():
        r = Refcount(1)
        refcount_inc(r)
        assert refcount_read(r) == 2
        assert refcount_dec_and_test(r) is False
        assert refcount_dec_and_test(r) is True

    res = dmabuf.explore(body, strategy="dfs")
    assert res.ok


def test_release_exactly_once_under_races(run_on):
    def body():
        k = Kref()
        kref_init(k)
        released = []

        def user():
            if kref_get_unless_zero(k):
                kref_put(k, released.append)

        def dropper():
            kref_put(k, released.append)

        ts = [dmabuf.spawn(user, name="user"), dmabuf.spawn(dropper, name="dropper")]
        for t in ts:
            t.join()
        assert released == [k]
        assert kref_read(k) == 0

    res = run_on(body)
    if run_on.kind == "controlled":
        assert res.complete and res.executions >= 3


def test_bad_arguments():
    def body():
        with pytest.raises(InvalidArgument):
            kref_get(None)
        with pytest.raises(InvalidArgument):
            kref_put(Kref(), None)
        with pytest.raises(InvalidArgument):
            refcount_inc(Kref())

    assert dmabuf.explore(body, strategy="dfs").ok


def test_warning_is_kernel_warning_type():
    def body():
        with pytest.raises(KernelWarning):
            kref_get(Kref())

    assert dmabuf.explore(body, strategy="dfs").ok
