"""``dmabuf.kernel``: the kernel's own names, so C driver code and kernel selftests port line by line.

A thin layer over the Pythonic classes (see ``shared/reference/kernel-api.md`` for the translation rules:
same names and argument order, ``NULL`` is ``None``, out-parameters are returned after the return value,
``int`` results are 0 or ``-errno``, WARN conditions raise :class:`~dmabuf.errors.KernelWarning` unless
``set_warn_mode("log")``).

Each submodule lists its names in ``__all__``; this module re-exports all of them.
"""

from __future__ import annotations

from . import config
from ._warn import *  # noqa: F403
from ._warn import __all__ as _w
from .errno import *  # noqa: F403
from .errno import __all__ as _e
from .locking import *  # noqa: F403
from .locking import __all__ as _l
from .sched import *  # noqa: F403
from .sched import __all__ as _s

__all__ = ["config", *_w, *_e, *_l, *_s]

# Subsystem modules add themselves below as they land (one import pair per module).
