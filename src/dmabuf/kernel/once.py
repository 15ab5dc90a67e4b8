"""Marked accesses to shared fields: ``READ_ONCE``/``WRITE_ONCE`` (``linux/compiler.h``), the memory
barriers (``asm/barrier.h``) and the atomic bit operations on flag words (``asm/bitops.h``).

C names a field by its address (``&obj->field``); Python code names it by the pair ``(obj, "field")``.
Each access is one scheduling point on a *field key*: a small object that stands for that one field of that
one object for the whole run, so accesses to different fields never conflict and the trace reads
``MyObj#1.flags``. Plain Python attribute access is *not* a scheduling point: shared fields that tasks race
on must go through these helpers (or a lock, or an atomic).

The model is sequentially consistent: every access is seen by every task in one global order. So the
barriers ``smp_mb``/``smp_rmb``/``smp_wmb`` (and ``smp_store_release``/``smp_load_acquire``) add no
ordering and cost nothing; they exist so that ported code reads like the original. Bugs that need a weaker
memory model (missing barriers on real hardware) are out of the model's reach.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgument
from ..runtime import READ, WRITE, label_of, rt

__all__ = [
    "READ_ONCE",
    "WRITE_ONCE",
    "FieldKey",
    "__clear_bit",
    "__set_bit",
    "barrier",
    "clear_bit",
    "field_key",
    "set_bit",
    "smp_load_acquire",
    "smp_mb",
    "smp_mb__after_atomic",
    "smp_mb__before_atomic",
    "smp_rmb",
    "smp_store_release",
    "smp_wmb",
    "test_and_clear_bit",
    "test_and_set_bit",
    "test_bit",
]

_KEYS = "_dm_field_keys"


class FieldKey:
    """Stands for the field ``name`` of ``obj`` in scheduling points (the C address ``&obj->name``).

    Obtain it with :func:`field_key`: the same pair gives the same key for the whole run.
    """

    __slots__ = ("name", "obj")

    def __init__(self, obj: object, name: str) -> None:
        self.obj = obj
        self.name = name

    @property
    def _dm_label(self) -> str:
        return f"{label_of(self.obj)}.{self.name}"

    def __repr__(self) -> str:
        return f"<field {self._dm_label}>"


def field_key(obj: object, name: str) -> FieldKey:
    """The run-wide key of field ``name`` of ``obj`` (for scheduling points on that one field).

    Raises:
        InvalidArgument: ``obj`` is ``None`` or ``name`` is not a string.
    """
    if obj is None:
        raise InvalidArgument(f"field {name!r} of None: the object pointer is NULL")
    if not isinstance(name, str):
        raise InvalidArgument(f"a field is named by a string, got {type(name).__name__}: {name!r}")
    return _run_key(rt().globals, obj, name)


def _run_key(run_globals: dict[str, Any], obj: object, name: str) -> FieldKey:
    """:func:`field_key` after its argument checks, in the run whose globals are ``run_globals``."""
    keys: dict[tuple[int, str], FieldKey] | None = run_globals.get(_KEYS)
    if keys is None:
        keys = run_globals[_KEYS] = {}
    k = keys.get((id(obj), name))
    if k is None or k.obj is not obj:
        # the key keeps obj alive, so its id cannot be reused by another object during the run
        k = FieldKey(obj, name)
        keys[(id(obj), name)] = k
    return k


def _get(obj: object, name: str, fn: str) -> Any:
    try:
        return getattr(obj, name)
    except AttributeError:
        raise InvalidArgument(f"{fn}: {type(obj).__name__} has no field {name!r}") from None


def _set(obj: object, name: str, value: object, fn: str) -> None:
    try:
        setattr(obj, name, value)
    except AttributeError:
        raise InvalidArgument(f"{fn}: cannot store field {name!r} of {type(obj).__name__}") from None


def _field_point(obj: object, name: str, op: str, access: str) -> None:
    """The scheduling point of READ_ONCE/WRITE_ONCE on field ``name`` of ``obj``: :func:`field_key` with
    one ``rt()`` call and a known key found without a helper call (these are the model's hottest wrappers).
    """
    if obj is None or not isinstance(name, str):
        field_key(obj, name)  # raises the InvalidArgument
    r = rt()
    keys = r.globals.get(_KEYS)
    k = None if keys is None else keys.get((id(obj), name))
    if k is None or k.obj is not obj:
        k = _run_key(r.globals, obj, name)
    r.point(op, k, access)


def READ_ONCE(obj: object, name: str) -> Any:
    """Read ``obj.name`` as one READ scheduling point (C: ``READ_ONCE(obj->name)``).

    Kernel: ``READ_ONCE`` (include/asm-generic/rwonce.h).
    """
    _field_point(obj, name, "READ_ONCE", READ)
    try:
        return getattr(obj, name)
    except AttributeError:
        raise InvalidArgument(f"READ_ONCE: {type(obj).__name__} has no field {name!r}") from None


def WRITE_ONCE(obj: object, name: str, value: object) -> None:
    """Store ``value`` into ``obj.name`` as one WRITE scheduling point (C: ``WRITE_ONCE(obj->name, v)``).

    Kernel: ``WRITE_ONCE`` (include/asm-generic/rwonce.h).
    """
    _field_point(obj, name, "WRITE_ONCE", WRITE)
    try:
        setattr(obj, name, value)
    except AttributeError:
        raise InvalidArgument(f"WRITE_ONCE: cannot store field {name!r} of {type(obj).__name__}") from None


def smp_load_acquire(obj: object, name: str) -> Any:
    """``smp_load_acquire(&obj->name)``: a :func:`READ_ONCE` (the model is sequentially consistent)."""
    return READ_ONCE(obj, name)


def smp_store_release(obj: object, name: str, value: object) -> None:
    """``smp_store_release(&obj->name, v)``: a :func:`WRITE_ONCE` (the model is sequentially consistent)."""
    WRITE_ONCE(obj, name, value)


def smp_mb() -> None:
    """Full barrier. A no-op: the model is sequentially consistent. Kernel: ``smp_mb``."""


def smp_rmb() -> None:
    """Read barrier. A no-op: the model is sequentially consistent. Kernel: ``smp_rmb``."""


def smp_wmb() -> None:
    """Write barrier. A no-op: the model is sequentially consistent. Kernel: ``smp_wmb``."""


def barrier() -> None:
    """Compiler barrier. A no-op. Kernel: ``barrier``."""


smp_mb__before_atomic = smp_mb
smp_mb__after_atomic = smp_mb


# ---------------------------------------------------------------------------------------------- bitops

Word = tuple[object, str]


def _nr(nr: object, fn: str) -> int:
    if isinstance(nr, bool) or not isinstance(nr, int) or nr < 0:
        raise InvalidArgument(f"{fn} needs a bit number >= 0, got {nr!r}")
    return nr


def _word(word: object, fn: str) -> tuple[object, str, FieldKey]:
    if not isinstance(word, tuple) or len(word) != 2 or not isinstance(word[1], str) or word[0] is None:
        raise InvalidArgument(
            f"{fn} needs the flag word as (obj, 'field') -- the C &obj->field -- got {word!r}"
        )
    obj, name = word
    return obj, name, field_key(obj, name)


def _flags(obj: object, name: str, fn: str) -> int:
    v = _get(obj, name, fn)
    if isinstance(v, bool) or not isinstance(v, int):
        raise InvalidArgument(f"{fn}: field {name!r} of {type(obj).__name__} is not an int flag word: {v!r}")
    return v


def test_bit(nr: int, word: Word | int) -> bool:
    """True if bit ``nr`` is set. ``word`` is ``(obj, "field")`` (one READ point on that field) or a
    plain int value already read (no point).

    Kernel: ``test_bit`` (include/linux/bitops.h).
    """
    nr = _nr(nr, "test_bit")
    if isinstance(word, int) and not isinstance(word, bool):
        return bool((word >> nr) & 1)
    obj, name, key = _word(word, "test_bit")
    rt().point("test_bit", key, READ)
    return bool((_flags(obj, name, "test_bit") >> nr) & 1)


def _rmw_bit(fn: str, nr: int, word: Word, set_it: bool) -> bool:
    nr = _nr(nr, fn)
    obj, name, key = _word(word, fn)
    rt().point(fn, key, WRITE)
    old = _flags(obj, name, fn)
    new = old | (1 << nr) if set_it else old & ~(1 << nr)
    if new != old:
        _set(obj, name, new, fn)
    return bool((old >> nr) & 1)


def set_bit(nr: int, word: Word) -> None:
    """Atomically set bit ``nr`` of the flag word ``(obj, "field")``. Kernel: ``set_bit``."""
    _rmw_bit("set_bit", nr, word, True)


def clear_bit(nr: int, word: Word) -> None:
    """Atomically clear bit ``nr`` of the flag word ``(obj, "field")``. Kernel: ``clear_bit``."""
    _rmw_bit("clear_bit", nr, word, False)


def test_and_set_bit(nr: int, word: Word) -> bool:
    """Atomically set bit ``nr``; returns its old value. Kernel: ``test_and_set_bit``."""
    return _rmw_bit("test_and_set_bit", nr, word, True)


def test_and_clear_bit(nr: int, word: Word) -> bool:
    """Atomically clear bit ``nr``; returns its old value. Kernel: ``test_and_clear_bit``."""
    return _rmw_bit("test_and_clear_bit", nr, word, False)


#: the non-atomic variants: the caller serialises them with a lock; in the model they are the same step.
__set_bit = set_bit
__clear_bit = clear_bit

# ``test_*`` names imported into a test module must not be collected by pytest as tests
for _f in (test_bit, test_and_set_bit, test_and_clear_bit):
    setattr(_f, "__test__", False)  # noqa: B010
del _f
