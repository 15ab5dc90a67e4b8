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
from ._warn import __all__ as __warn_all
from .atomic import *  # noqa: F403
from .atomic import __all__ as _atomic_all
from .completion import *  # noqa: F403
from .completion import __all__ as _completion_all
from .dma_buf import *  # noqa: F403
from .dma_buf import __all__ as _dma_buf_all
from .dma_fence import *  # noqa: F403
from .dma_fence import __all__ as _dma_fence_all
from .dma_fence_array import *  # noqa: F403
from .dma_fence_array import __all__ as _dma_fence_array_all
from .dma_fence_chain import *  # noqa: F403
from .dma_fence_chain import __all__ as _dma_fence_chain_all
from .dma_fence_unwrap import *  # noqa: F403
from .dma_fence_unwrap import __all__ as _dma_fence_unwrap_all
from .dma_resv import *  # noqa: F403
from .dma_resv import __all__ as _dma_resv_all
from .drm_exec import *  # noqa: F403
from .drm_exec import __all__ as _drm_exec_all
from .errno import *  # noqa: F403
from .errno import __all__ as _errno_all
from .kref import *  # noqa: F403
from .kref import __all__ as _kref_all
from .kthread import *  # noqa: F403
from .kthread import __all__ as _kthread_all
from .list import *  # noqa: F403
from .list import __all__ as _list_all
from .locking import *  # noqa: F403
from .locking import __all__ as _locking_all
from .once import *  # noqa: F403
from .once import __all__ as _once_all
from .rcu import *  # noqa: F403
from .rcu import __all__ as _rcu_all
from .sched import *  # noqa: F403
from .sched import __all__ as _sched_all
from .seqcount import *  # noqa: F403
from .seqcount import __all__ as _seqcount_all
from .timer import *  # noqa: F403
from .timer import __all__ as _timer_all
from .waitqueue import *  # noqa: F403
from .waitqueue import __all__ as _waitqueue_all
from .workqueue import *  # noqa: F403
from .workqueue import __all__ as _workqueue_all
from .ww_mutex import *  # noqa: F403
from .ww_mutex import __all__ as _ww_mutex_all

__all__ = [
    "config",
    *__warn_all,
    *_errno_all,
    *_locking_all,
    *_sched_all,
    *_completion_all,
    *_kthread_all,
    *_workqueue_all,
    *_timer_all,
    *_waitqueue_all,
    *_atomic_all,
    *_rcu_all,
    *_once_all,
    *_list_all,
    *_seqcount_all,
    *_kref_all,
    *_dma_fence_all,
    *_dma_fence_array_all,
    *_dma_fence_chain_all,
    *_dma_fence_unwrap_all,
    *_ww_mutex_all,
    *_dma_resv_all,
    *_drm_exec_all,
    *_dma_buf_all,
]
