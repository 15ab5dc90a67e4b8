"""Kconfig switches that change behaviour, as module-level settings (``dmabuf.kernel.config``).

Change them at the start of a test or body (``config.CONFIG_DMABUF_MOVE_NOTIFY = False``); they are read at
the moment the behaviour happens.
"""

from __future__ import annotations

__all__ = ["CONFIG_DEBUG_WW_MUTEX_SLOWPATH", "CONFIG_DMABUF_MOVE_NOTIFY", "CONFIG_PROVE_LOCKING", "HZ"]

#: ``CONFIG_DMABUF_MOVE_NOTIFY``: dynamic importers are not pinned on map (they get move_notify instead).
CONFIG_DMABUF_MOVE_NOTIFY = True
#: ``CONFIG_DEBUG_WW_MUTEX_SLOWPATH``: inject fake -EDEADLK back-offs to exercise the slow path.
CONFIG_DEBUG_WW_MUTEX_SLOWPATH = False
#: ``CONFIG_PROVE_LOCKING``: lockdep-lite (lock order graph, context checks) is on.
CONFIG_PROVE_LOCKING = True
#: Timer frequency: jiffies per second.
HZ = 250
