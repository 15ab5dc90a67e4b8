"""Atomic integers (``linux/atomic.h``): ``atomic_t`` and ``atomic64_t`` and their operations.

Every operation is exactly one scheduling point: reads are ``READ`` points, everything else (including a
``cmpxchg`` that fails, as on real hardware where the cache line is taken exclusively) is a ``WRITE`` point,
and the whole read-modify-write runs atomically after it. ``atomic_t`` wraps like a two's-complement 32-bit
``int``, ``atomic64_t`` like a 64-bit ``s64``. The model is sequentially consistent, so the
``_relaxed``/``_acquire``/``_release`` variants are the same operation and are provided as aliases.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import InvalidArgument
from ..runtime import READ, WRITE, rt

__all__ = [
    "ATOMIC64_INIT",
    "ATOMIC_INIT",
    "Atomic",
    "Atomic64",
    "AtomicLong",
    "atomic64_add",
    "atomic64_add_return",
    "atomic64_cmpxchg",
    "atomic64_dec",
    "atomic64_dec_and_test",
    "atomic64_dec_return",
    "atomic64_fetch_add",
    "atomic64_inc",
    "atomic64_inc_return",
    "atomic64_read",
    "atomic64_set",
    "atomic64_sub",
    "atomic64_xchg",
    "atomic_add",
    "atomic_add_return",
    "atomic_add_unless",
    "atomic_cmpxchg",
    "atomic_dec",
    "atomic_dec_and_test",
    "atomic_dec_return",
    "atomic_fetch_add",
    "atomic_fetch_add_relaxed",
    "atomic_fetch_inc",
    "atomic_fetch_sub",
    "atomic_fetch_sub_release",
    "atomic_inc",
    "atomic_inc_and_test",
    "atomic_inc_not_zero",
    "atomic_inc_return",
    "atomic_read",
    "atomic_read_acquire",
    "atomic_set",
    "atomic_set_release",
    "atomic_sub",
    "atomic_sub_and_test",
    "atomic_sub_return",
    "atomic_try_cmpxchg",
    "atomic_xchg",
]


class Atomic:
    """A 32-bit atomic integer (``atomic_t``). ``Atomic()`` holds 0; ``Atomic(5)`` is ``ATOMIC_INIT(5)``.

    The methods are the Pythonic API; the ``atomic_*`` functions below are the kernel names over them.
    Each method is one scheduling point on this object.

    Kernel: ``atomic_t`` (include/linux/types.h, include/linux/atomic/atomic-instrumented.h).
    """

    __slots__ = ("_dm_label", "counter")

    #: number of bits of the counter; values wrap modulo ``2**BITS`` into the signed range.
    BITS = 32

    def __init__(self, value: int = 0, *, name: str | None = None) -> None:
        self.counter = self._wrap(_check_int(value, "Atomic()"))
        self._dm_label = name

    @classmethod
    def _wrap(cls, v: int) -> int:
        half = 1 << (cls.BITS - 1)
        return ((v + half) & ((1 << cls.BITS) - 1)) - half

    def _rmw(self, op: str, fn: Callable[[int], int]) -> int:
        """One WRITE point, then ``counter = fn(counter)``; returns the old value."""
        rt().point(op, self, WRITE)
        old = self.counter
        self.counter = self._wrap(fn(old))
        return old

    def read(self) -> int:
        """The current value (``atomic_read``)."""
        rt().point("atomic_read", self, READ)
        return self.counter

    def set(self, value: int) -> None:
        """Store ``value`` (``atomic_set``)."""
        v = _check_int(value, "atomic_set")
        rt().point("atomic_set", self, WRITE)
        self.counter = self._wrap(v)

    def fetch_add(self, i: int) -> int:
        """Add ``i``; returns the old value (``atomic_fetch_add``)."""
        i = _check_int(i, "atomic_fetch_add")
        return self._rmw("atomic_add", lambda v: v + i)

    def add_return(self, i: int) -> int:
        """Add ``i``; returns the new value (``atomic_add_return``)."""
        i = _check_int(i, "atomic_add_return")
        return self._wrap(self._rmw("atomic_add", lambda v: v + i) + i)

    def xchg(self, new: int) -> int:
        """Store ``new``; returns the old value (``atomic_xchg``)."""
        new = _check_int(new, "atomic_xchg")
        return self._rmw("atomic_xchg", lambda v: new)

    def cmpxchg(self, old: int, new: int) -> int:
        """Store ``new`` if the value is ``old``; returns the value found (``atomic_cmpxchg``)."""
        old = self._wrap(_check_int(old, "atomic_cmpxchg"))
        new = _check_int(new, "atomic_cmpxchg")
        return self._rmw("atomic_cmpxchg", lambda v: new if v == old else v)

    def add_unless(self, a: int, u: int) -> bool:
        """Add ``a`` unless the value is ``u``; True if it added (``atomic_add_unless``)."""
        a = _check_int(a, "atomic_add_unless")
        u = self._wrap(_check_int(u, "atomic_add_unless"))
        return self._rmw("atomic_add_unless", lambda v: v if v == u else v + a) != u

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.counter})"


class Atomic64(Atomic):
    """A 64-bit atomic integer (``atomic64_t``); the same operations as :class:`Atomic`.

    Kernel: ``atomic64_t`` (include/linux/types.h).
    """

    __slots__ = ()
    BITS = 64


#: ``atomic_long_t`` is 64 bits on the 64-bit machines the model stands for.
AtomicLong = Atomic64


def ATOMIC_INIT(i: int) -> Atomic:
    """A new ``atomic_t`` holding ``i`` (``ATOMIC_INIT(i)``)."""
    return Atomic(i)


def ATOMIC64_INIT(i: int) -> Atomic64:
    """A new ``atomic64_t`` holding ``i`` (``ATOMIC64_INIT(i)``)."""
    return Atomic64(i)


def _check_int(v: object, fn: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise InvalidArgument(f"{fn} needs an int value, got {type(v).__name__}: {v!r}")
    return v


def _a(v: object, fn: str) -> Atomic:
    if not isinstance(v, Atomic) or isinstance(v, Atomic64):
        raise InvalidArgument(f"{fn} needs an Atomic (atomic_t), got {type(v).__name__}")
    return v


def _a64(v: object, fn: str) -> Atomic:
    if not isinstance(v, Atomic64):
        raise InvalidArgument(f"{fn} needs an Atomic64 (atomic64_t), got {type(v).__name__}")
    return v


# ---------------------------------------------------------------------------------------------- atomic_t


def atomic_read(v: Atomic) -> int:
    """Kernel: ``atomic_read``. One READ point."""
    return _a(v, "atomic_read").read()


def atomic_set(v: Atomic, i: int) -> None:
    """Kernel: ``atomic_set``. One WRITE point."""
    _a(v, "atomic_set").set(i)


def atomic_add(i: int, v: Atomic) -> None:
    """Kernel: ``atomic_add(i, v)``."""
    _a(v, "atomic_add").fetch_add(i)


def atomic_sub(i: int, v: Atomic) -> None:
    """Kernel: ``atomic_sub(i, v)``."""
    _a(v, "atomic_sub").fetch_add(-_check_int(i, "atomic_sub"))


def atomic_inc(v: Atomic) -> None:
    """Kernel: ``atomic_inc``."""
    _a(v, "atomic_inc").fetch_add(1)


def atomic_dec(v: Atomic) -> None:
    """Kernel: ``atomic_dec``."""
    _a(v, "atomic_dec").fetch_add(-1)


def atomic_add_return(i: int, v: Atomic) -> int:
    """Kernel: ``atomic_add_return``: the new value."""
    return _a(v, "atomic_add_return").add_return(i)


def atomic_sub_return(i: int, v: Atomic) -> int:
    """Kernel: ``atomic_sub_return``: the new value."""
    return _a(v, "atomic_sub_return").add_return(-_check_int(i, "atomic_sub_return"))


def atomic_inc_return(v: Atomic) -> int:
    """Kernel: ``atomic_inc_return``: the new value."""
    return _a(v, "atomic_inc_return").add_return(1)


def atomic_dec_return(v: Atomic) -> int:
    """Kernel: ``atomic_dec_return``: the new value."""
    return _a(v, "atomic_dec_return").add_return(-1)


def atomic_fetch_add(i: int, v: Atomic) -> int:
    """Kernel: ``atomic_fetch_add``: the old value."""
    return _a(v, "atomic_fetch_add").fetch_add(i)


def atomic_fetch_sub(i: int, v: Atomic) -> int:
    """Kernel: ``atomic_fetch_sub``: the old value."""
    return _a(v, "atomic_fetch_sub").fetch_add(-_check_int(i, "atomic_fetch_sub"))


def atomic_fetch_inc(v: Atomic) -> int:
    """Kernel: ``atomic_fetch_inc``: the old value."""
    return _a(v, "atomic_fetch_inc").fetch_add(1)


def atomic_dec_and_test(v: Atomic) -> bool:
    """Kernel: ``atomic_dec_and_test``: True if the new value is 0."""
    return _a(v, "atomic_dec_and_test").add_return(-1) == 0


def atomic_inc_and_test(v: Atomic) -> bool:
    """Kernel: ``atomic_inc_and_test``: True if the new value is 0."""
    return _a(v, "atomic_inc_and_test").add_return(1) == 0


def atomic_sub_and_test(i: int, v: Atomic) -> bool:
    """Kernel: ``atomic_sub_and_test``: True if the new value is 0."""
    return _a(v, "atomic_sub_and_test").add_return(-_check_int(i, "atomic_sub_and_test")) == 0


def atomic_cmpxchg(v: Atomic, old: int, new: int) -> int:
    """Kernel: ``atomic_cmpxchg``: stores ``new`` if the value was ``old``; returns the value found."""
    return _a(v, "atomic_cmpxchg").cmpxchg(old, new)


def atomic_try_cmpxchg(v: Atomic, old: int, new: int) -> tuple[bool, int]:
    """Kernel: ``atomic_try_cmpxchg(v, &old, new)``; the in/out ``old`` comes back after the result
    (rule 2): ``ok, old = atomic_try_cmpxchg(v, old, new)``."""
    found = _a(v, "atomic_try_cmpxchg").cmpxchg(old, new)
    return found == v._wrap(old), found


def atomic_xchg(v: Atomic, new: int) -> int:
    """Kernel: ``atomic_xchg``: the old value."""
    return _a(v, "atomic_xchg").xchg(new)


def atomic_add_unless(v: Atomic, a: int, u: int) -> bool:
    """Kernel: ``atomic_add_unless``: adds ``a`` unless the value is ``u``; True if it added."""
    return _a(v, "atomic_add_unless").add_unless(a, u)


def atomic_inc_not_zero(v: Atomic) -> bool:
    """Kernel: ``atomic_inc_not_zero``: True if it incremented (the value was not 0)."""
    return _a(v, "atomic_inc_not_zero").add_unless(1, 0)


# ordering variants: the model is sequentially consistent
atomic_read_acquire = atomic_read
atomic_set_release = atomic_set
atomic_fetch_add_relaxed = atomic_fetch_add
atomic_fetch_sub_release = atomic_fetch_sub


# ---------------------------------------------------------------------------------------------- atomic64_t


def atomic64_read(v: Atomic64) -> int:
    """Kernel: ``atomic64_read``."""
    return _a64(v, "atomic64_read").read()


def atomic64_set(v: Atomic64, i: int) -> None:
    """Kernel: ``atomic64_set``."""
    _a64(v, "atomic64_set").set(i)


def atomic64_add(i: int, v: Atomic64) -> None:
    """Kernel: ``atomic64_add``."""
    _a64(v, "atomic64_add").fetch_add(i)


def atomic64_sub(i: int, v: Atomic64) -> None:
    """Kernel: ``atomic64_sub``."""
    _a64(v, "atomic64_sub").fetch_add(-_check_int(i, "atomic64_sub"))


def atomic64_inc(v: Atomic64) -> None:
    """Kernel: ``atomic64_inc``."""
    _a64(v, "atomic64_inc").fetch_add(1)


def atomic64_dec(v: Atomic64) -> None:
    """Kernel: ``atomic64_dec``."""
    _a64(v, "atomic64_dec").fetch_add(-1)


def atomic64_add_return(i: int, v: Atomic64) -> int:
    """Kernel: ``atomic64_add_return``: the new value."""
    return _a64(v, "atomic64_add_return").add_return(i)


def atomic64_inc_return(v: Atomic64) -> int:
    """Kernel: ``atomic64_inc_return``: the new value."""
    return _a64(v, "atomic64_inc_return").add_return(1)


def atomic64_dec_return(v: Atomic64) -> int:
    """Kernel: ``atomic64_dec_return``: the new value."""
    return _a64(v, "atomic64_dec_return").add_return(-1)


def atomic64_fetch_add(i: int, v: Atomic64) -> int:
    """Kernel: ``atomic64_fetch_add``: the old value."""
    return _a64(v, "atomic64_fetch_add").fetch_add(i)


def atomic64_dec_and_test(v: Atomic64) -> bool:
    """Kernel: ``atomic64_dec_and_test``."""
    return _a64(v, "atomic64_dec_and_test").add_return(-1) == 0


def atomic64_cmpxchg(v: Atomic64, old: int, new: int) -> int:
    """Kernel: ``atomic64_cmpxchg``: the value found."""
    return _a64(v, "atomic64_cmpxchg").cmpxchg(old, new)


def atomic64_xchg(v: Atomic64, new: int) -> int:
    """Kernel: ``atomic64_xchg``: the old value."""
    return _a64(v, "atomic64_xchg").xchg(new)
