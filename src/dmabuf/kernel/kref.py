"""Reference counts: ``refcount_t`` (``linux/refcount.h``) and ``struct kref`` (``linux/kref.h``) over it.

``refcount_t`` is an :class:`~dmabuf.kernel.atomic.Atomic` with the kernel's saturation checks: an
increment from 0 (a use-after-free: the object may already be released), a decrement below 0 and an
overflow set the counter to ``REFCOUNT_SATURATED`` -- so the object leaks instead of being freed twice --
and ``WARN``. Each operation is one atomic read-modify-write, i.e. one scheduling point on the counter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgument
from ..runtime import READ, WRITE, rt
from ._warn import WARN
from .atomic import Atomic
from .list import _guess_container

__all__ = [
    "KREF_INIT",
    "REFCOUNT_MAX",
    "REFCOUNT_SATURATED",
    "Kref",
    "Refcount",
    "kref_get",
    "kref_get_unless_zero",
    "kref_init",
    "kref_put",
    "kref_read",
    "refcount_add",
    "refcount_dec",
    "refcount_dec_and_test",
    "refcount_inc",
    "refcount_inc_not_zero",
    "refcount_read",
    "refcount_set",
    "refcount_sub_and_test",
]

#: ``INT_MAX``.
REFCOUNT_MAX = (1 << 31) - 1
#: ``INT_MIN / 2``: the value a counter is stuck at after a misuse was detected.
REFCOUNT_SATURATED = -(1 << 30)

_ADD_UAF = "refcount_t: addition on 0; use-after-free."
_ADD_OVF = "refcount_t: saturated; leaking memory."
_SUB_UAF = "refcount_t: underflow; use-after-free."
_DEC_LEAK = "refcount_t: decrement hit 0; leaking memory."


class Refcount:
    """A saturating reference counter (``refcount_t``). ``Refcount()`` holds 0, ``Refcount(n)`` is
    ``REFCOUNT_INIT(n)``.

    Kernel: ``refcount_t`` (include/linux/refcount.h, lib/refcount.c).
    """

    __slots__ = ("refs",)

    def __init__(self, n: int = 0) -> None:
        self.refs = Atomic(n)

    def _warn_saturate(self, what: str, rule: str) -> None:
        # like refcount_warn_saturate(): park the counter at SATURATED first, then WARN
        self.refs.counter = REFCOUNT_SATURATED
        WARN(True, what, rule)

    def read(self) -> int:
        """The counter as the kernel's ``unsigned int`` (a saturated counter reads as 0xc0000000).

        Kernel: ``refcount_read``."""
        rt().point("refcount_read", self.refs, READ)
        return self.refs.counter & 0xFFFFFFFF

    def set(self, n: int) -> None:
        """Kernel: ``refcount_set``."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise InvalidArgument(f"refcount_set needs an int, got {type(n).__name__}")
        rt().point("refcount_set", self.refs, WRITE)
        self.refs.counter = Atomic._wrap(n)

    def add(self, i: int, rule: str = "refcount: addition on 0") -> None:
        """Add ``i``; WARNs and saturates when the old value was 0 (use-after-free) or on overflow.

        Kernel: ``refcount_add`` / ``refcount_inc``."""
        old = self.refs._rmw("refcount_inc", lambda v: v + i)
        if old == 0:
            self._warn_saturate(_ADD_UAF, rule)
        elif old < 0 or old + i > REFCOUNT_MAX:
            self._warn_saturate(_ADD_OVF, "refcount: overflow")

    def add_not_zero(self, i: int) -> bool:
        """Add ``i`` unless the counter is 0; True if it added. Kernel: ``refcount_add_not_zero``."""
        old = self.refs._rmw("refcount_inc_not_zero", lambda v: v if v == 0 else v + i)
        if old != 0 and (old < 0 or old + i > REFCOUNT_MAX):
            self._warn_saturate(_ADD_OVF, "refcount: overflow")
        return old != 0

    def sub_and_test(self, i: int, rule: str = "refcount: underflow") -> bool:
        """Subtract ``i``; True if the counter dropped to 0. On underflow (or a saturated counter) WARNs,
        saturates and returns False, so the object leaks instead of being freed twice.

        Kernel: ``refcount_sub_and_test`` / ``refcount_dec_and_test``."""
        old = self.refs._rmw("refcount_dec", lambda v: v - i)
        if old > 0 and old == i:
            return True
        if old <= 0 or old - i < 0:
            self._warn_saturate(_SUB_UAF, rule)
        return False

    def dec(self) -> None:
        """Drop one reference that must not be the last. Kernel: ``refcount_dec``."""
        old = self.refs._rmw("refcount_dec", lambda v: v - 1)
        if old <= 1:
            self._warn_saturate(_DEC_LEAK, "refcount: refcount_dec hit 0")

    def __repr__(self) -> str:
        return f"Refcount({self.refs.counter})"


def _rc(r: object, fn: str) -> Refcount:
    if not isinstance(r, Refcount):
        raise InvalidArgument(f"{fn} needs a Refcount (refcount_t), got {type(r).__name__}")
    return r


def _int(i: object, fn: str) -> int:
    if isinstance(i, bool) or not isinstance(i, int):
        raise InvalidArgument(f"{fn} needs an int, got {type(i).__name__}")
    return i


def refcount_set(r: Refcount, n: int) -> None:
    """Kernel: ``refcount_set``."""
    _rc(r, "refcount_set").set(n)


def refcount_read(r: Refcount) -> int:
    """Kernel: ``refcount_read`` (unsigned)."""
    return _rc(r, "refcount_read").read()


def refcount_add(i: int, r: Refcount) -> None:
    """Kernel: ``refcount_add(i, r)``."""
    _rc(r, "refcount_add").add(_int(i, "refcount_add"))


def refcount_inc(r: Refcount) -> None:
    """Kernel: ``refcount_inc``: WARNs (``addition on 0; use-after-free``) when the count was 0."""
    _rc(r, "refcount_inc").add(1)


def refcount_inc_not_zero(r: Refcount) -> bool:
    """Kernel: ``refcount_inc_not_zero``."""
    return _rc(r, "refcount_inc_not_zero").add_not_zero(1)


def refcount_sub_and_test(i: int, r: Refcount) -> bool:
    """Kernel: ``refcount_sub_and_test(i, r)``."""
    return _rc(r, "refcount_sub_and_test").sub_and_test(_int(i, "refcount_sub_and_test"))


def refcount_dec_and_test(r: Refcount) -> bool:
    """Kernel: ``refcount_dec_and_test``."""
    return _rc(r, "refcount_dec_and_test").sub_and_test(1)


def refcount_dec(r: Refcount) -> None:
    """Kernel: ``refcount_dec``."""
    _rc(r, "refcount_dec").dec()


class Kref:
    """An object's reference count (``struct kref``). ``Kref()`` holds 0 until :func:`kref_init`;
    :func:`KREF_INIT` gives a ready one. Embed it as a field (``fence.refcount``) or subclass it.

    A release function finds the object with ``container_of(kref, Type, "member")``.

    Pythonic API: :meth:`init`, :meth:`get`, :meth:`get_unless_zero`, :meth:`put`, :meth:`read`.

    Kernel: ``struct kref`` (include/linux/kref.h).
    """

    def __init__(self, container: object = None) -> None:
        self.refcount = Refcount(0)
        #: the object this kref is a field of, for ``container_of(kref, Type, "member")`` in a release
        #: function (found automatically when the Kref is created in a method of that object).
        self._dm_container = container if container is not None else _guess_container(2)

    def init(self) -> None:
        """Set the count to 1. Locking: none; the object is not yet shared. Kernel: ``kref_init``."""
        self.refcount.set(1)

    def read(self) -> int:
        """The current count. Kernel: ``kref_read``."""
        return self.refcount.read()

    def get(self) -> None:
        """Take a reference. The caller must already hold one: a get on a zero count is a use-after-free
        and WARNs (``kref_get on zero``); the count saturates so the object is never released.

        Kernel: ``kref_get``."""
        self.refcount.add(1, "kref_get on zero")

    def get_unless_zero(self) -> bool:
        """Take a reference unless the count already dropped to 0 (the object is being released): for
        lookups that find the object without holding a reference (under a lock or RCU).

        Kernel: ``kref_get_unless_zero``."""
        return self.refcount.add_not_zero(1)

    def put(self, release: Callable[[Any], object]) -> int:
        """Drop a reference; when it was the last, call ``release(self)``. Returns 1 if released, else 0.
        A put on a zero count WARNs (``kref_put underflow``) and returns 0.

        Locking: ``release`` runs in the caller's context. Kernel: ``kref_put``."""
        if not callable(release):
            raise InvalidArgument(f"kref_put needs a release function, got {type(release).__name__}")
        if self.refcount.sub_and_test(1, "kref_put underflow"):
            release(self)
            return 1
        return 0

    def __repr__(self) -> str:
        return f"Kref({self.refcount.refs.counter})"


def KREF_INIT(n: int = 1) -> Kref:
    """A kref holding ``n`` (``KREF_INIT(n)``)."""
    k = Kref(_guess_container(2))
    k.refcount.refs.counter = Atomic._wrap(_int(n, "KREF_INIT"))
    return k


def _kref(k: object, fn: str) -> Kref:
    if not isinstance(k, Kref):
        raise InvalidArgument(f"{fn} needs a Kref, got {type(k).__name__}")
    return k


def kref_init(kref: Kref) -> None:
    """Kernel: ``kref_init``: count = 1."""
    _kref(kref, "kref_init").init()


def kref_read(kref: Kref) -> int:
    """Kernel: ``kref_read``."""
    return _kref(kref, "kref_read").read()


def kref_get(kref: Kref) -> None:
    """Kernel: ``kref_get``. WARNs on a zero count (``kref_get on zero``)."""
    _kref(kref, "kref_get").get()


def kref_get_unless_zero(kref: Kref) -> bool:
    """Kernel: ``kref_get_unless_zero``: True if a reference was taken."""
    return _kref(kref, "kref_get_unless_zero").get_unless_zero()


def kref_put(kref: Kref, release: Callable[[Any], object]) -> int:
    """Kernel: ``kref_put(kref, release)``: 1 if ``release(kref)`` was called, else 0."""
    return _kref(kref, "kref_put").put(release)
