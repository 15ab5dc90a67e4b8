"""WARN and BUG: how the model reports kernel misuse conditions.

By default a ``WARN`` condition raises :class:`~dmabuf.errors.KernelWarning` (a model checker treats it as a
found bug). ``set_warn_mode("log")`` records the warning instead (reported when the run ends) and lets the
kernel-named function return what the kernel returns after its WARN. ``BUG`` always raises
:class:`~dmabuf.errors.KernelBug`: the kernel does not continue after it either.
"""

from __future__ import annotations

from typing import NoReturn

from ..errors import InvalidArgument, KernelBug, KernelWarning

__all__ = ["BUG", "BUG_ON", "WARN", "WARN_ON", "WARN_ON_ONCE", "get_warn_mode", "set_warn_mode"]

_mode = "raise"
_MODES = ("raise", "log")


def set_warn_mode(mode: str) -> None:
    """``"raise"`` (default): WARN conditions raise KernelWarning. ``"log"``: they are recorded, reported as
    a ``kernel-warning`` finding when the run ends, and the function returns the kernel's value."""
    global _mode
    if mode not in _MODES:
        raise InvalidArgument(f"warn mode must be one of {_MODES}, got {mode!r}")
    _mode = mode


def get_warn_mode() -> str:
    """The current warn mode."""
    return _mode


def WARN(cond: object, msg: str, rule: str = "") -> bool:
    """If ``cond`` holds: raise (or log) a :class:`KernelWarning` naming ``rule``. Returns ``bool(cond)``
    like the kernel macro."""
    if not cond:
        return False
    exc = KernelWarning(f"WARNING: {msg}", rule or msg)
    if _mode == "raise":
        raise exc
    from ..runtime import active

    r = active()
    if r is None:
        raise exc
    r.log_warning(exc)
    return True


def WARN_ON(cond: object, rule: str = "WARN_ON") -> bool:
    """``WARN_ON(cond)``."""
    return WARN(cond, rule, rule)


WARN_ON_ONCE = WARN_ON


def BUG(msg: str) -> NoReturn:
    """The kernel would stop here: always raises :class:`KernelBug`."""
    raise KernelBug(f"BUG: {msg}", msg)


def BUG_ON(cond: object, msg: str = "BUG_ON") -> None:
    """``BUG_ON(cond)``."""
    if cond:
        BUG(msg)
