"""A simulated GPU ring: jobs run in submission order and each produces a fence.

:class:`GpuEngine` is a scheduler entity and a hardware ring in miniature (``drm_sched`` + a ring buffer):

* :meth:`GpuEngine.submit` appends a :class:`GpuJob` to the ring and returns it at once. The job carries its
  *dependencies* (fences it must not overtake: the resv's fences the submitter collected under the lock) and
  what the hardware does (a function that DMAs through a mapping). ``job.fence`` is a new fence on the
  engine's timeline (one context, seqnos 1, 2, ...), unsignaled.
* One worker task per engine (``<name>.completion``) takes the jobs in order. It first waits for the job's
  dependencies (the scheduler's dependency stage; in ``drm_sched`` this is a callback, here a blocking wait,
  outside any signalling section), then enters ``dma_fence_begin_signalling()``, runs the job (the hardware's
  DMA: page accesses the oracle checks), signals the job's fence and leaves the section. So everything
  between "the job may run" and "its fence signalled" is a fence signalling critical section: a wait on a
  fence or a lock that is held around fence waits elsewhere is reported there (as lockdep does for
  ``drm_sched_main``/``run_job``).
* :meth:`GpuEngine.fini` stops the worker after the ring drained and joins it (``kthread_stop``).

A job's function raising (a stale mapping found by the oracle) fails the execution like any task exception.

Kernel: drivers/gpu/drm/scheduler/sched_main.c (``drm_sched_job_add_dependency``, ``run_job``,
``drm_sched_fence``), a driver's ring + fence IRQ handler (``amdgpu_fence_process``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..buf.sg_table import SgTable
from ..errors import UsageError
from ..fence.fence import DmaFence, DmaFenceOps, begin_signalling, context_alloc, end_signalling
from ..runtime import READ, WRITE, label_of, rt
from ..sync.spinlock import SpinLock

__all__ = ["GpuEngine", "GpuJob"]


class GpuJob:
    """One job on a :class:`GpuEngine`.

    Attributes:
        fence: signals when the job completed (the engine holds the creation reference; take your own
            with ``fence.get()`` if you keep it beyond the engine's life).
        deps: the fences the job waited for before running (references dropped once waited for).
        run: what the hardware does; its return value ends up in :attr:`result`.
        result: ``run()``'s value once the fence signalled (e.g. the bytes a read job read).
    """

    def __init__(
        self, engine: GpuEngine, fence: DmaFence, deps: list[DmaFence], run: Callable[[], Any], name: str
    ) -> None:
        self.engine = engine
        self.fence = fence
        self.deps = deps
        self.run = run
        self.result: Any = None
        self._dm_label = name

    def __repr__(self) -> str:
        return f"<GpuJob {label_of(self)} on {label_of(self.engine)}>"


def _driver_name(f: DmaFence) -> str:
    return "dmabuf-gpu"


class GpuEngine:
    """A GPU ring with its completion worker (see the module docstring).

    Args:
        name: the engine's (and its fence timeline's) name, e.g. ``"gfx"``, ``"sdma"``, ``"display"``.

    Locking: :meth:`submit` may be called from any task, with or without locks held (it never sleeps). The
    worker takes no lock but the fence lock while signalling.
    """

    def __init__(self, name: str = "gfx") -> None:
        self._dm_label = name
        self.name = name
        self.context = context_alloc(1)
        self.seqno = 0
        self.ring: list[GpuJob] = []
        self.fence_lock = SpinLock(f"{name}.fence_lock", lock_class="gpu_engine.fence_lock")
        self.ops = DmaFenceOps(get_driver_name=_driver_name, get_timeline_name=lambda f: name)
        self.stopping = False
        self.completed = 0
        self.worker = rt().spawn(self._worker, (), f"{name}.completion")

    # ------------------------------------------------------------------ submission
    def submit(self, deps: Iterable[DmaFence], run: Callable[[], Any], name: str | None = None) -> GpuJob:
        """Queue a job that runs ``run()`` once every fence of ``deps`` signalled; returns it at once.

        ``deps`` are references the job takes over (``dma_resv_get_fences`` returns them so; take one with
        ``fence.get()`` for fences you keep). Raises :class:`UsageError` after :meth:`fini`.
        """
        if self.stopping:
            raise UsageError(f"submit to engine {self.name!r} after GpuEngine.fini()")
        # the ring is the model's atomic step at this point (the kernel's ring lock / spsc queue)
        rt().point("ring_push", self, WRITE)
        self.seqno += 1
        fence = DmaFence()
        fence.init(self.ops, self.fence_lock, self.context, self.seqno)
        label = name or f"{self.name}.job{self.seqno}"
        fence._dm_label = f"{label}.fence"  # type: ignore[attr-defined]
        job = GpuJob(self, fence, list(deps), run, label)
        self.ring.append(job)
        rt().notify(self)
        return job

    def submit_dma(
        self, deps: Iterable[DmaFence], sgt: SgTable, off: int, data: bytes | None = None, n: int = 0,
        name: str | None = None,
    ) -> GpuJob:
        """Queue (as :meth:`submit`) a DMA job through the mapping ``sgt``: it writes ``data`` at ``off`` or,
        with ``data=None``, reads ``n`` bytes there (``job.result``)."""
        if data is not None:
            payload = bytes(data)

            def run() -> Any:
                sgt.dma_write(off, payload)

        else:

            def run() -> Any:
                return sgt.dma_read(off, n)

        return self.submit(deps, run, name)

    # ------------------------------------------------------------------ the worker
    def _has_work(self) -> bool:
        return bool(self.ring) or self.stopping

    def _worker(self) -> None:
        r = rt()
        while True:
            r.wait("ring_pop", self, WRITE, self._has_work)
            if not self.ring:
                return  # stopping and drained
            job = self.ring.pop(0)
            r.notify(self)
            # the scheduler's dependency stage: not yet on the signalling path
            for f in job.deps:
                f.wait(False)
                f.put()
            job.deps = []
            cookie = begin_signalling()
            try:
                job.result = job.run()  # the hardware: DMA through the job's mapping
                job.fence.signal()
                self.completed += 1
            finally:
                end_signalling(cookie)

    def idle(self) -> bool:
        """True when the ring is empty (a READ point). The running job may still be in flight."""
        rt().point("ring_idle", self, READ)
        return not self.ring

    def fini(self) -> None:
        """Let the worker drain the ring, then stop and join it (``kthread_stop``). Every job's fence has
        signalled when this returns."""
        if self.stopping:
            return
        rt().point("ring_stop", self, WRITE)
        self.stopping = True
        rt().notify(self)
        self.worker.join()

    def __repr__(self) -> str:
        return f"<GpuEngine {self.name} {len(self.ring)} queued, {self.completed} done>"
