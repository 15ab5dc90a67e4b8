"""Kernel return conventions: negative errno values and error pointers (``ERR_PTR``)."""

from __future__ import annotations

import errno as _errno
from typing import Any

__all__ = [
    "EAGAIN",
    "EALREADY",
    "EBADF",
    "EBUSY",
    "EDEADLK",
    "EINTR",
    "EINVAL",
    "EIO",
    "ENOENT",
    "ENOMEM",
    "EOVERFLOW",
    "EPERM",
    "ERESTARTSYS",
    "ERR_PTR",
    "ETIME",
    "ETIMEDOUT",
    "IS_ERR",
    "IS_ERR_OR_NULL",
    "MAX_ERRNO",
    "PTR_ERR",
    "PTR_ERR_OR_ZERO",
    "ErrPtr",
]

EPERM = _errno.EPERM
ENOENT = _errno.ENOENT
EINTR = _errno.EINTR
EIO = _errno.EIO
EBADF = _errno.EBADF
EAGAIN = _errno.EAGAIN
ENOMEM = _errno.ENOMEM
EBUSY = _errno.EBUSY
EINVAL = _errno.EINVAL
EDEADLK = _errno.EDEADLK
EOVERFLOW = _errno.EOVERFLOW
EALREADY = _errno.EALREADY
ETIME = _errno.ETIME
ETIMEDOUT = _errno.ETIMEDOUT
#: kernel-internal: restart the system call after the signal was handled
ERESTARTSYS = 512
MAX_ERRNO = 4095


class ErrPtr:
    """An error pointer: what ``ERR_PTR(-e)`` returns. Any attribute access on it is a bug in the caller
    (the kernel would crash dereferencing it), so it has none besides ``err``."""

    __slots__ = ("err",)

    def __init__(self, err: int) -> None:
        if isinstance(err, bool) or not isinstance(err, int):
            from ..errors import InvalidArgument

            raise InvalidArgument(f"ERR_PTR needs a negative errno int, got {err!r}")
        self.err = err

    def __repr__(self) -> str:
        return f"ERR_PTR({self.err})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErrPtr) and other.err == self.err

    def __hash__(self) -> int:
        return hash(("ErrPtr", self.err))

    def __bool__(self) -> bool:
        return True


def ERR_PTR(err: int) -> ErrPtr:
    """Encode a negative errno as a pointer value."""
    from ..errors import InvalidArgument

    if not isinstance(err, int) or not -MAX_ERRNO <= err < 0:
        raise InvalidArgument(f"ERR_PTR needs a negative errno in [-{MAX_ERRNO}, -1], got {err!r}")
    return ErrPtr(err)


def IS_ERR(p: Any) -> bool:
    """True if ``p`` is an error pointer."""
    return isinstance(p, ErrPtr)


def IS_ERR_OR_NULL(p: Any) -> bool:
    """True if ``p`` is ``None`` or an error pointer."""
    return p is None or isinstance(p, ErrPtr)


def PTR_ERR(p: Any) -> int:
    """The errno inside an error pointer (the kernel returns garbage for a valid pointer; we raise)."""
    from ..errors import InvalidArgument

    if not isinstance(p, ErrPtr):
        raise InvalidArgument(f"PTR_ERR on a pointer that is not an error pointer: {p!r}; check IS_ERR first")
    return p.err


def PTR_ERR_OR_ZERO(p: Any) -> int:
    """``PTR_ERR(p)`` if it is an error pointer, else 0."""
    return p.err if isinstance(p, ErrPtr) else 0
