"""The scenario framework: each design hazard (H1-H10 of ``design-hazards.md``) as a runnable scenario.

A **scenario** is a small concurrent program -- an exporter, one or two importers, maybe a worker -- written
against the public API (:mod:`dmabuf.buf`, :func:`dmabuf.spawn`, the resv), that can run under any
mapping-tracking policy (``importer-tracks``, ``core-tracks-mappings``, ...). It comes in two variants:

* ``"naive"``: the importer/exporter does only what the policy's documented contract makes its duty;
* ``"careful"``: it also handles the hazard.

:func:`dmabuf.scenarios.runner.verdict` explores both under the DPOR explorer and turns the results into one
cell of the ``dmabuf check`` table: ``safe by design`` (the naive driver is clean), ``driver duty`` (the naive
driver fails, the careful one is clean), ``unsafe`` (both fail) or ``n/a`` (the hazard cannot be expressed
under that design).

How to write a scenario
=======================

Put a module ``hN_short_name.py`` in this package (it is found by its name) that defines a
:class:`Scenario` subclass and registers one instance::

    from dmabuf import spawn
    from dmabuf.buf import MemoryExporter, check_all
    from dmabuf.scenarios.base import Importer, Scenario, register

    class MyImporter(Importer):             # the naive driver: the contract's duties only
        ...

    class MyCarefulImporter(MyImporter):    # the careful driver: also handles the hazard
        ...

    @register
    class H11(Scenario):
        id = "H11"
        title = "short title"
        prop = "the property the oracle checks"
        duty = "what the careful driver does, in a few words"
        source = "where the hazard comes from (thread message, kernel doc)"

        def applicable(self, policy):        # optional: a reason string makes the cell n/a
            return None

        def body(self, policy, variant):
            def run():
                # the buffer, under the policy, and the importer attached to it
                exp, imp = attached(policy, MyCarefulImporter if variant == "careful" else MyImporter)
                # the exporter's task: resv locked, move + dma_buf_move_notify, unlocked
                t = spawn(move_locked, exp, name="exporter")
                imp.read_job()               # map (or reuse), add a job fence, DMA, signal
                t.join()
                imp.teardown()               # unmap what is left, detach
                finish(exp)                  # mappings balanced, buffer put, oracle check_all()
            return run

Rules that keep scenarios checkable:

* **Small.** Two or three tasks, a one- or two-page buffer (``MemoryExporter(4)`` is one page), one move.
  DPOR then covers every interleaving in well under a second; ``dmabuf check`` runs every scenario twice
  under every policy.
* **Public API only.** Bodies use what a driver writer uses (``DmaBuf.attach``, ``attach.map``, ``with
  buf.resv:``, ``MemoryExporter.move``, fences). Policy-specific behaviour comes from the core's hooks, not
  from ``if policy == ...`` in the body; when a design changes the *contract* (what the importer must do),
  read it from :func:`contract_of` and say so in a comment.
* **End with the oracle.** Join every task, then :func:`finish` (no leaked mapping, the buffer put, and
  :func:`dmabuf.buf.check_all`). Stale mappings and stale content are caught at every page access anyway.
* **The naive variant is not a strawman.** It must be a driver that follows the design's documentation; the
  careful one differs from it exactly by the duty the hazard creates, so the diff *is* the duty.
* Deterministic: no wall-clock time, no randomness except :func:`dmabuf.choose`.

The base :class:`Importer` below is a correct mainline (``importer-tracks``) dynamic importer: it records its
mapping in the same resv critical section that creates it (H3), tolerates notifications without a mapping
(H1), retires an invalidated mapping only after its own jobs' fences (H6), re-maps lazily, re-maps when the
core declared its mapping invalid (option 2), and re-attaches when the core refused to map a dead one-shot
attachment (option 3). Scenario drivers subclass it and override the one method the hazard is about.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, overload

from ..buf import DMA_BIDIRECTIONAL, DmaBuf, DmaBufAttachOps, MemoryExporter, SgTable, check_all
from ..errors import DmabufError, MappingInvalidated, MappingLeak
from ..kernel.once import READ_ONCE, WRITE_ONCE
from ..policies.base import Policy
from ..resv import Usage

__all__ = [
    "VARIANTS",
    "Contract",
    "Importer",
    "MappingLeak",
    "Scenario",
    "attached",
    "contract_of",
    "finish",
    "get_scenario",
    "make_fence",
    "move_locked",
    "register",
    "scenarios",
]

#: the two drivers every scenario has
VARIANTS = ("naive", "careful")


# ---------------------------------------------------------------------- the design's contract
@dataclass(frozen=True)
class Contract:
    """What a design promises importers and what it makes their duty (from the policy's documentation).

    A policy may declare these as class attributes of the same names; otherwise the defaults for the five
    built-in designs (``policies/base.py`` docstring, seed thread options 1-5) are used.

    Attributes:
        notifies_unmapped: ``move_notify`` may come for an attachment that has no mapping (H1).
        core_invalidates: the core marks the mappings of a notified attachment unusable (one-shot mappings,
            ``sgt.invalidated_by``); the importer re-maps before its next use.
        kills_attachment: an invalidation kills the whole attachment; the importer must re-attach.
        filters_reentry: the core does not notify the attachment that is inside its own map call (H2).
        exporter_delays_free: the exporter frees a move's old pages only after the resv's fences.
    """

    policy: str
    notifies_unmapped: bool = True
    core_invalidates: bool = False
    kills_attachment: bool = False
    filters_reentry: bool = False
    exporter_delays_free: bool = False


_DEFAULTS: dict[str, dict[str, bool]] = {
    "importer-tracks": {},
    "core-tracks-mappings": {"notifies_unmapped": False, "core_invalidates": True},
    "one-shot-attachments": {"notifies_unmapped": False, "core_invalidates": True, "kills_attachment": True},
    "exporter-tracks": {"notifies_unmapped": False, "exporter_delays_free": True},
    "core-filters-reentry": {"filters_reentry": True},
}


def contract_of(policy: Policy | str) -> Contract:
    """The :class:`Contract` of a policy (an instance, or a name -- which need not be importable yet)."""
    name = policy if isinstance(policy, str) else policy.name
    kw = dict(_DEFAULTS.get(name, {}))
    if isinstance(policy, Policy):
        for f in ("notifies_unmapped", "core_invalidates", "kills_attachment", "filters_reentry",
                  "exporter_delays_free"):
            v = getattr(policy, f, None)
            if isinstance(v, bool):
                kw[f] = v
        if getattr(policy, "invalidation_kills_mapping", False):
            kw["core_invalidates"] = True
    return Contract(policy=name, **kw)


# ---------------------------------------------------------------------- helpers
def _name(f: Any) -> str:
    return "scenario"


def make_fence() -> Any:
    """A fresh, unsignaled job fence (what an importer's command submission produces)."""
    from ..kernel import DmaFence, DmaFenceOps, SpinLock, dma_fence_context_alloc, dma_fence_init

    f = DmaFence()
    dma_fence_init(f, DmaFenceOps(get_driver_name=_name, get_timeline_name=_name),
                   SpinLock(lock_class="scenario_job_fence.lock"), dma_fence_context_alloc(1), 1)
    return f


_E = TypeVar("_E", bound=MemoryExporter)
_I = TypeVar("_I", bound="Importer")


@overload
def attached(policy: str, importer: Callable[[DmaBuf], _I]) -> tuple[MemoryExporter, _I]: ...
@overload
def attached(policy: str, importer: Callable[[DmaBuf], _I], exporter: Callable[..., _E]) -> tuple[_E, _I]: ...
def attached(
    policy: str, importer: Callable[[DmaBuf], Importer], exporter: Callable[..., MemoryExporter] = MemoryExporter
) -> tuple[MemoryExporter, Importer]:
    """The usual start of a scenario: a one-page buffer ``A`` in VRAM exported under ``policy``, and an
    ``importer`` attached to it (nothing mapped yet). Returns ``(exporter, importer)``."""
    exp = exporter(4, "VRAM", policy=policy, name="A")
    imp = importer(exp.buf)
    imp.attach_()
    return exp, imp


def move_locked(exp: MemoryExporter, domain: str = "GTT", **kw: Any) -> None:
    """What an exporter does to evict or migrate: take the reservation lock, move the buffer to ``domain``
    (the copy fenced in the resv, ``dma_buf_move_notify`` to the importers) and unlock. ``kw`` goes to
    :meth:`MemoryExporter.move`. Spawn it as the exporter's task, or call it inline."""
    with exp.buf.resv:
        exp.move(domain, **kw)


def finish(exp: MemoryExporter) -> None:
    """End of a scenario body (all tasks joined): every mapping handed out was unmapped (else
    :class:`MappingLeak`), the buffer is put, and the oracle's "no byte lost" check runs."""
    if exp.maps != exp.unmaps:
        raise MappingLeak(
            f"mapping leak: the exporter of {exp.bo.name} handed out {exp.maps} mapping(s) and got "
            f"{exp.unmaps} unmap(s) back; an sg_table was dropped without dma_buf_unmap_attachment"
        )
    exp.buf.resv.wait(Usage.BOOKKEEP)
    exp.buf.put()
    check_all()


# ---------------------------------------------------------------------- a correct importer to subclass
class Importer:
    """A dynamic importer that does everything right under every design (see the module docstring).

    State (touched only with the resv held by this importer's drivers):

    * ``sgt``: the mapping the importer uses next (``None``: none yet, or retired); a property whose reads and
      writes are scheduling points, so a naive driver that publishes it outside the lock is seen racing;
    * ``jobs``: the fences of its submitted jobs (what an old mapping must outlive, H6).

    Override points: :meth:`move_notify` (the callback), :meth:`retire` (how an old mapping is torn down),
    :meth:`current_mapping` (how a job gets its mapping), :meth:`read_job` (a job).
    """

    dev = "gpu"

    def __init__(self, buf: DmaBuf, *, name: str = "imp", dev: str | None = None) -> None:
        self.buf = buf
        self.name = name
        if dev is not None:
            self.dev = dev
        self._dm_label = name
        self.contract = contract_of(buf.policy)
        self._sgt: SgTable | None = None
        self.jobs: list[Any] = []
        self.notified = 0
        self.ops = DmaBufAttachOps(move_notify=self.move_notify)
        self.attach: Any = None

    @property
    def sgt(self) -> SgTable | None:
        """The tracked mapping. Every access is a scheduling point on the field (``READ_ONCE`` /
        ``WRITE_ONCE``), so a driver that touches it outside the resv races visibly with the handler."""
        v: SgTable | None = READ_ONCE(self, "_sgt")
        return v

    @sgt.setter
    def sgt(self, value: SgTable | None) -> None:
        WRITE_ONCE(self, "_sgt", value)

    # -- attachment life (resv NOT held)
    @property
    def one_shot(self) -> bool:
        """Option 3's contract: map only with ``attach_and_map``, tear down with ``unmap_and_detach``."""
        return self.contract.kills_attachment

    def attach_(self) -> Any:
        """``dma_buf_dynamic_attach`` with our ops and ourselves as ``importer_priv``. Under a one-shot design
        nothing happens here: the attachment is made together with its mapping by the first job."""
        if self.one_shot:
            return None
        self.attach = self.buf.attach(self.dev, self.ops, self)
        return self.attach

    def attach_and_map(self) -> None:
        """One-shot designs (resv NOT held): tear down a dead attachment once our jobs are done, then
        ``dma_buf_attach_and_map`` a new one and record its mapping."""
        self.teardown()
        self.attach, self.sgt = self.buf.attach_and_map(self.dev, self.ops, self)

    def teardown(self) -> None:
        """Retire the last mapping and detach."""
        if self.one_shot:
            if self.attach is not None:
                for f in self.jobs:
                    f.wait()
                sgt, self.sgt = self.sgt, None
                a, self.attach = self.attach, None
                a.unmap_and_detach(sgt)
            return
        with self.buf.resv:
            sgt, self.sgt = self.sgt, None
            if sgt is not None:
                self.retire(sgt)
        self.attach.detach()

    # -- the callback (resv held by the exporter)
    def move_notify(self, attach: Any) -> None:
        """The buffer moved: retire the tracked mapping (if any; H1) -- the next job re-maps. One-shot
        designs: nothing to do here, the core marked the attachment dead; the next job replaces it."""
        self.notified += 1
        if self.one_shot:
            return
        sgt, self.sgt = self.sgt, None
        if sgt is not None:
            self.retire(sgt)

    def retire(self, sgt: SgTable) -> None:
        """Unmap an old mapping once the jobs using it are done (H6: "You can't throw the sg list away
        before the dma stopped"). Resv held; our jobs do not need the resv, so waiting here is fine."""
        for f in self.jobs:
            f.wait()
        if sgt.unmapped_by is None:
            self.attach.unmap(sgt)

    # -- jobs
    def current_mapping(self) -> SgTable:
        """Resv held: the mapping a new job uses -- re-made if the core declared it invalid (option 2) --
        recorded in this same critical section (H3)."""
        if self.sgt is not None and self.sgt.invalidated_by is not None:
            old, self.sgt = self.sgt, None
            self.retire(old)
        if self.sgt is None:
            self.sgt = self.attach.map(DMA_BIDIRECTIONAL)
        return self.sgt

    def _locked_submit(self) -> tuple[SgTable, Any] | None:
        with self.buf.resv:
            try:
                sgt = self.current_mapping()
            except MappingInvalidated:
                return None  # a dead one-shot attachment: re-attach outside the lock
            # a dynamic importer waits for the KERNEL fences itself before using a mapping (H7)
            return sgt, self.add_job()

    def reattach(self) -> None:
        """The core refused to map a dead (one-shot) attachment: detach it and attach afresh (resv not
        held). Option 3's contract: "after that the attachment is dead. Can't ever remap it"."""
        with self.buf.resv:
            sgt, self.sgt = self.sgt, None
            if sgt is not None:
                self.retire(sgt)
        self.attach.detach()
        self.attach_()

    def _one_shot_submit(self) -> tuple[SgTable, Any]:
        while True:
            cur = self.sgt
            if cur is None or cur.invalidated_by is not None:
                self.attach_and_map()
            with self.buf.resv:
                cur = self.sgt
                if cur is None or cur.invalidated_by is not None:
                    continue  # killed between attach_and_map and now: replace it again
                return cur, self.add_job()

    def submit(self) -> tuple[SgTable, Any]:
        """Under the resv: get the mapping, add a job fence (READ usage). Returns (mapping, fence)."""
        if self.one_shot:
            return self._one_shot_submit()
        got = self._locked_submit()
        if got is None:
            self.reattach()
            got = self._locked_submit()
            if got is None:
                raise OSError(errno.ENOENT, f"{self.name}: a fresh attachment was refused a mapping")
        return got

    def add_job(self) -> Any:
        """Resv held: wait for the KERNEL fences (a pending move's copy, H7), add a job fence (READ usage)
        and return it. The job's DMA may run once the resv is unlocked; signal the fence when done."""
        self.buf.resv.wait(Usage.KERNEL)
        job = make_fence()
        self.buf.resv.reserve_fences(1)
        self.buf.resv.add_fence(job, Usage.READ)
        self.jobs.append(job)
        return job

    def read_job(self, n: int = 4) -> bytes:
        """A device job: submit, DMA-read ``n`` bytes through the mapping, signal the job's fence."""
        sgt, job = self.submit()
        data = sgt.dma_read(0, n)
        job.signal()
        return data


# ---------------------------------------------------------------------- scenarios
class Scenario:
    """One hazard as a scenario. Subclass, set the class attributes, implement :meth:`body`, decorate with
    :func:`register`.

    Attributes:
        id: ``"H1"`` ... (the table's row).
        title: a few words.
        prop: the property the oracle checks.
        duty: what the careful driver does beyond the naive one (shown in ``driver duty`` cells).
        source: the thread message / kernel documentation the hazard comes from.
    """

    id: ClassVar[str] = ""
    title: ClassVar[str] = ""
    prop: ClassVar[str] = ""
    duty: ClassVar[str] = ""
    source: ClassVar[str] = ""

    def applicable(self, policy: Policy | str) -> str | None:
        """``None`` if the hazard can be expressed under ``policy``, else the reason it cannot (n/a)."""
        return None

    def duty_for(self, policy: Policy | str) -> str:
        """The duty text for a ``driver duty`` cell under ``policy`` (default: :attr:`duty`)."""
        return self.duty

    def body(self, policy: str, variant: str) -> Callable[[], None]:
        """A zero-argument explorer body running the scenario under ``policy`` (a name) with the
        ``variant`` driver ("naive" or "careful")."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<Scenario {self.id}: {self.title}>"


_SCENARIOS: dict[str, Scenario] = {}


def register(cls: type[Scenario]) -> type[Scenario]:
    """Class decorator: register one instance of ``cls`` under ``cls.id``."""
    if not cls.id:
        raise DmabufError(f"scenario class {cls.__name__} has no id")
    _SCENARIOS[cls.id.upper()] = cls()
    return cls


def _sort_key(sid: str) -> tuple[int, str]:
    digits = "".join(c for c in sid if c.isdigit())
    return (int(digits) if digits else 1 << 30, sid)


def _load() -> None:
    import importlib
    import pkgutil

    from .. import scenarios as pkg

    for m in pkgutil.iter_modules(pkg.__path__):
        if m.name[:1] == "h" and m.name[1:2].isdigit():
            importlib.import_module(f"{pkg.__name__}.{m.name}")


def scenarios() -> list[Scenario]:
    """Every registered scenario (the built-in ``hN_*`` modules are imported first), in H-number order."""
    _load()
    return [_SCENARIOS[k] for k in sorted(_SCENARIOS, key=_sort_key)]


def get_scenario(sid: str) -> Scenario:
    """The scenario called ``sid`` (case-insensitive).

    Raises:
        KeyError: unknown id (the message lists the known ones).
    """
    _load()
    s = _SCENARIOS.get(sid.upper())
    if s is None:
        raise KeyError(f"unknown scenario {sid!r}; known: {', '.join(x.id for x in scenarios())}")
    return s
