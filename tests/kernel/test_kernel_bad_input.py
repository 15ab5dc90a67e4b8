"""Every callable of ``dmabuf.kernel`` fed wrong-typed arguments.

For each name in ``dmabuf.kernel.__all__`` that is callable, and for each of its parameters, the call is made
(inside ``dmabuf.run_threads``) with *plausible* values for the other parameters (built from the annotations)
and a *bad* value in that one: ``None`` where an object is required, an int, a string, a float, a plain
``object()`` and a struct of the wrong type. The call must either raise a dmabuf error
(:class:`~dmabuf.errors.DmabufError`: InvalidArgument, UsageError, KernelWarning, KernelBug...) or return --
never leak a bare ``AttributeError`` / ``TypeError`` / ``KeyError`` / ``IndexError`` from deep inside.

Where the kernel accepts ``NULL`` the exact kernel value is checked in :data:`LEGAL_NONE`.
Parameters whose annotation says they hold a struct, an int or a callable must also *reject* a wrong type
(a silent success means the bad value was stored somewhere to blow up later): ``test_wrong_type_rejected``.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Iterator
from types import GeneratorType
from typing import Any

import pytest

import dmabuf
import dmabuf.kernel as K
from dmabuf.errors import DmabufError

KD: Any = K  # linux/dma-buf.h names, added separately

# --------------------------------------------------------------------------- plausible values


class Holder:
    """A plain struct with one int field ``x`` (for READ_ONCE, rcu pointers, container_of...)."""

    def __init__(self) -> None:
        self.x = 0
        self.node = K.ListHead()
        K.INIT_LIST_HEAD(self.node)


def _cb(*_a: Any) -> None:
    return None


def _fence(signaled: bool = True) -> K.DmaFence:
    ops = K.DmaFenceOps(get_driver_name=lambda f: "bad-input", get_timeline_name=lambda f: "t")
    f = K.DmaFence()
    K.dma_fence_init(f, ops, K.SpinLock(), K.dma_fence_context_alloc(1), 1)
    if signaled:
        K.dma_fence_signal(f)
    return f


def _resv() -> K.DmaResv:
    r = K.DmaResv()
    K.dma_resv_init(r)
    return r


def _resv_iter() -> K.DmaResvIter:
    c = K.DmaResvIter()
    K.dma_resv_iter_begin(c, _resv(), K.DMA_RESV_USAGE_BOOKKEEP)
    return c


def _completion() -> K.Completion:
    c = K.Completion()
    K.init_completion(c)
    K.complete_all(c)
    return c


def _work() -> K.WorkStruct:
    w = K.WorkStruct()
    K.INIT_WORK(w, _cb)
    return w


def _dwork() -> K.DelayedWork:
    w = K.DelayedWork()
    K.INIT_DELAYED_WORK(w, _cb)
    return w


def _timer() -> K.TimerList:
    t = K.TimerList()
    K.timer_setup(t, _cb, 0)
    return t


def _kref() -> K.Kref:
    k = K.Kref()
    K.kref_init(k)
    return k


def _list_head() -> K.ListHead:
    h = K.ListHead()
    K.INIT_LIST_HEAD(h)
    return h


def _seqcount() -> K.Seqcount:
    s = K.Seqcount()
    K.seqcount_init(s)
    return s


def _ww_class() -> K.WWClass:
    return K.DEFINE_WW_CLASS("bad_input_class")


def _ww_mutex() -> K.WWMutex:
    m = K.WWMutex()
    K.ww_mutex_init(m, K.reservation_ww_class)
    return m


def _ww_ctx() -> K.WWAcquireCtx:
    c = K.WWAcquireCtx()
    K.ww_acquire_init(c, K.reservation_ww_class)
    return c


def _exec() -> K.DrmExec:
    e = K.DrmExec()
    K.drm_exec_init(e, 0, 0)
    return e


def _gem() -> K.DrmGemObject:
    o = K.DrmGemObject()
    K.drm_gem_private_object_init(None, o, 4096)
    return o


def _task() -> dmabuf.Task:
    t = dmabuf.spawn(_cb, name="done")
    t.join()
    return t


def _chain() -> K.DmaFenceChain:
    return K.dma_fence_chain_alloc()


def _nop(*_a: Any) -> int:
    return 0


def _dma_buf_ops() -> Any:
    return KD.DmaBufOps(map_dma_buf=lambda a, d: KD.SgTable(), unmap_dma_buf=_nop, release=_nop)


def _export_info() -> Any:
    return KD.DmaBufExportInfo(ops=_dma_buf_ops(), size=4096, priv=Holder())


def _dma_buf() -> Any:
    return KD.dma_buf_export(_export_info())


def _attachment() -> Any:
    return KD.dma_buf_attach(_dma_buf(), "dev")


#: annotation (first alternative) -> factory of a plausible, harmless value. Called inside the runtime.
PLAUSIBLE: dict[str, Callable[[], Any]] = {
    "int": lambda: 0,
    "bool": lambda: False,
    "str": lambda: "x",
    "object": Holder,
    "Any": Holder,
    "type[T]": lambda: Holder,
    "Callable": lambda: _cb,
    "FenceFunc": lambda: _cb,
    "Cond": lambda: lambda: True,
    "Atomic": lambda: K.Atomic(0),
    "Atomic64": lambda: K.Atomic64(0),
    "Completion": _completion,
    "DelayedWork": _dwork,
    "WorkStruct": _work,
    "WqArg": lambda: K.alloc_workqueue("bad_input_wq", 0, 0),
    "DmaFence": _fence,
    "DmaFenceCb": K.DmaFenceCb,
    "DmaFenceChain": _chain,
    "DmaFenceOps": lambda: K.DmaFenceOps(get_driver_name=lambda f: "d", get_timeline_name=lambda f: "t"),
    "DmaFenceUnwrap": K.DmaFenceUnwrap,
    "DmaResv": _resv,
    "DmaResvIter": _resv_iter,
    "DrmExec": _exec,
    "DrmGemObject": _gem,
    "Kref": _kref,
    "ListHead": _list_head,
    "Mutex": K.Mutex,
    "SpinLock": K.SpinLock,
    "RcuHead": K.RcuHead,
    "Refcount": lambda: K.Refcount(1),
    "Seqcount": _seqcount,
    "Task": _task,
    "TimerList": _timer,
    "Usage": lambda: K.DMA_RESV_USAGE_BOOKKEEP,
    "WWAcquireCtx": _ww_ctx,
    "WWClass": _ww_class,
    "WWMutex": _ww_mutex,
    "WaitQueueHead": K.WaitQueueHead,
    "Word": lambda: (Holder(), "x"),
    "list[DmaFence]": lambda: [_fence()],
    # linux/dma-buf.h
    "DmaBuf": _dma_buf,
    "DmaBufAttachment": _attachment,
    "DmaBufOps": _dma_buf_ops,
    "DmaBufAttachOps": lambda: KD.DmaBufAttachOps(move_notify=_nop),
    "DmaBufExportInfo": _export_info,
    "SgTable": lambda: KD.SgTable(),
    "IosysMap": lambda: KD.IosysMap(),
    "VmAreaStruct": lambda: KD.VmAreaStruct(0, 4096, 0),
    "list[DrmGemObject]": lambda: [_gem()],
}

#: annotations whose parameter accepts any value (C ``bool`` takes any scalar; ``Any``/``object`` by design)
ANYTHING = {"bool", "Any", "object"}

#: Kernel names that are not functions to call with arguments (constants, objects, the config module).
SKIP = {
    "config",
    # these raise on purpose whatever they get
    "BUG",
}


def _alternatives(ann: str) -> list[str]:
    return [a.strip() for a in ann.split("|")]


def _base(ann: str) -> str:
    first = _alternatives(ann)[0]
    if first.startswith("Callable"):
        return "Callable"
    return first


def _plausible(ann: str) -> Any:
    b = _base(ann)
    if b not in PLAUSIBLE and "None" in _alternatives(ann):
        return None  # an optional struct the harness does not build (Placement...): NULL is legal
    if b not in PLAUSIBLE:
        raise KeyError(f"no plausible value for annotation {ann!r}; add one to PLAUSIBLE")
    return PLAUSIBLE[b]()


class WrongStruct:
    """A struct of no kernel type at all."""

    def __init__(self) -> None:
        self.x = 0


def _bad_values(ann: str) -> list[tuple[str, Callable[[], Any]]]:
    """(label, factory) of values that do not fit ``ann``."""
    alts = _alternatives(ann)
    b = _base(ann)
    out: list[tuple[str, Callable[[], Any]]] = []
    if "None" not in alts:
        out.append(("None", lambda: None))
    if b not in ("int", "bool") and "int" not in alts:
        out.append(("int 7", lambda: 7))
    if b != "str" and "str" not in alts:
        out.append(("str", lambda: "bogus"))
    out.append(("float", lambda: 1.5))
    if b not in ("int", "str"):
        out.append(("object()", object))
        # a struct of the wrong kernel type
        out.append(("Completion", K.Completion) if b != "Completion" else ("WaitQueueHead", K.WaitQueueHead))
        out.append(("WrongStruct", WrongStruct))
    return out


def _params(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    sig = inspect.signature(fn)
    return [
        p
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and not p.name.startswith("_")
    ]


def _callables() -> list[str]:
    out = []
    for name in K.__all__:
        if name in SKIP:
            continue
        obj = getattr(K, name)
        if inspect.ismodule(obj) or not callable(obj):
            continue
        if not inspect.isroutine(obj) and not inspect.isclass(obj):
            continue  # ready-made objects (system_wq...)
        try:
            inspect.signature(obj)
        except (TypeError, ValueError):
            continue
        out.append(name)
    return out


CALLABLES = _callables()


def _drain(result: Any) -> Any:
    """Run iteration macros (generator functions) a few steps: that is where their work happens."""
    if isinstance(result, GeneratorType | Iterator):
        return list(itertools.islice(result, 8))
    return result


def _attempt(fn: Callable[..., Any], args_factory: Callable[[], list[Any]]) -> tuple[str, Any]:
    """Run ``fn(*args)`` on real threads. Returns ("ok", value), ("dmabuf", exc) or ("crash", exc)."""
    outcome: list[tuple[str, Any]] = []

    def body() -> None:
        args = args_factory()
        try:
            outcome.append(("ok", _drain(fn(*args))))
        except DmabufError as e:
            outcome.append(("dmabuf", e))
        except Exception as e:  # noqa: BLE001 - this is what the test is looking for
            outcome.append(("crash", e))

    try:
        dmabuf.run_threads(body, timeout=10)
    except DmabufError as e:
        # end-of-run findings (leaks, deadlock of a bad wait) are dmabuf errors: acceptable
        if not outcome:
            outcome.append(("dmabuf", e))
    except Exception as e:  # noqa: BLE001
        if not outcome or outcome[0][0] == "ok":
            return ("crash", e)
    return outcome[0]


def _cases(name: str) -> Iterator[tuple[int, str, str, Callable[[], Any]]]:
    fn = getattr(K, name)
    params = _params(fn)
    for i, p in enumerate(params):
        ann = str(p.annotation)
        for label, bad in _bad_values(ann):
            yield i, ann, label, bad


def _run_case(name: str, i: int, bad: Callable[[], Any]) -> tuple[str, Any]:
    fn = getattr(K, name)
    params = _params(fn)

    def args() -> list[Any]:
        out: list[Any] = []
        for j, p in enumerate(params):
            if j == i:
                out.append(bad())
            elif p.default is not inspect.Parameter.empty and j > i:
                break
            else:
                out.append(_plausible(str(p.annotation)))
        return out

    return _attempt(fn, args)


@pytest.mark.parametrize("name", CALLABLES)
def test_no_bare_exception(name: str) -> None:
    """Wrong-typed arguments give a dmabuf error or a value, never a bare Python exception."""
    crashes = []
    for i, ann, label, bad in _cases(name):
        kind, val = _run_case(name, i, bad)
        if kind == "crash":
            crashes.append(f"arg {i} ({ann}) = {label}: {type(val).__name__}: {val}")
    assert not crashes, f"{name}: bare exceptions for bad input:\n  " + "\n  ".join(crashes)


def _strict(ann: str) -> bool:
    """Parameters that must reject a value of the wrong type (not merely survive it)."""
    return _base(ann) not in ANYTHING and _base(ann) not in ("str",)


#: (name, arg index, bad label) silently accepted on purpose, with the reason.
ACCEPTED: dict[tuple[str, int, str], str] = {}


@pytest.mark.parametrize("name", CALLABLES)
def test_wrong_type_rejected(name: str) -> None:
    """A struct / int / callable parameter given a value of the wrong type raises (InvalidArgument or a
    kernel WARN/BUG) instead of storing it or ignoring it."""
    accepted = []
    for i, ann, label, bad in _cases(name):
        if not _strict(ann) or (name, i, label) in ACCEPTED:
            continue
        kind, val = _run_case(name, i, bad)
        if kind == "ok":
            accepted.append(f"arg {i} ({ann}) = {label} -> returned {val!r}")
    assert not accepted, f"{name}: wrong-typed arguments accepted silently:\n  " + "\n  ".join(accepted)


# --------------------------------------------------------------------------- NULL where the kernel allows it

#: name -> (args with None, kernel's return value). Checked in log warn mode: a WARN then returns the value.
LEGAL_NONE: dict[str, tuple[tuple[Any, ...], Any]] = {
    "dma_fence_put": ((None,), None),
    "dma_fence_get": ((None,), None),
    "dma_fence_signal": ((None,), -K.EINVAL),
    "dma_fence_signal_timestamp": ((None, 0), -K.EINVAL),
    "dma_fence_chain_contained": ((None,), None),
    "dma_fence_chain_walk": ((None,), None),
    "to_dma_fence_array": ((None,), None),
    "to_dma_fence_chain": ((None,), None),
    "dma_fence_array_first": ((None,), None),
    "dma_fence_array_next": ((None, 0), None),
    "drm_gem_object_put": ((None,), None),
    "IS_ERR": ((None,), False),
    "IS_ERR_OR_NULL": ((None,), True),
    "PTR_ERR_OR_ZERO": ((None,), 0),
}

#: these WARN on NULL in the kernel: raise mode gives KernelWarning, log mode the value above (none since
#: dma_fence_signal(NULL) was found to be a plain -EINVAL in v6.12; the WARN_ON came later)
WARNS_ON_NONE: set[str] = set()


@pytest.mark.parametrize("name", sorted(LEGAL_NONE))
def test_legal_none(name: str) -> None:
    args, expected = LEGAL_NONE[name]
    fn = getattr(K, name)

    def body() -> Any:
        return fn(*args)

    if name in WARNS_ON_NONE:
        with pytest.raises(dmabuf.KernelWarning):
            dmabuf.run_threads(body)
        K.set_warn_mode("log")
        got: list[Any] = []
        with pytest.raises(dmabuf.KernelWarning):  # reported at the end of the run
            dmabuf.run_threads(lambda: got.append(body()))
        assert got == [expected]
    else:
        assert dmabuf.run_threads(body) == expected


def test_dma_fence_add_callback_null() -> None:
    """``dma_fence_add_callback(NULL, cb, func)`` and ``(f, cb, NULL)``: WARN and -EINVAL."""
    K.set_warn_mode("log")
    got: list[int] = []

    def body() -> None:
        got.append(K.dma_fence_add_callback(None, K.DmaFenceCb(), _cb))
        got.append(K.dma_fence_add_callback(_fence(False), K.DmaFenceCb(), None))

    with pytest.raises(dmabuf.KernelWarning):
        dmabuf.run_threads(body)
    assert got == [-K.EINVAL, -K.EINVAL]


def test_every_annotation_has_a_plausible_value() -> None:
    """Guard for the harness itself: a new kernel function with a new parameter type needs an entry."""
    missing = set()
    for name in CALLABLES:
        for p in _params(getattr(K, name)):
            ann = str(p.annotation)
            if p.default is inspect.Parameter.empty and _base(ann) not in PLAUSIBLE and "None" not in ann:
                missing.add(f"{name}: {p.annotation}")
    assert not missing, sorted(missing)


def test_harness_covers_the_api() -> None:
    assert len(CALLABLES) > 300, len(CALLABLES)


def test_harness_detects_a_bare_exception() -> None:
    """The harness itself: a function leaking AttributeError is a crash, an InvalidArgument is not."""

    def leaky(x: Any) -> Any:
        return x.missing

    def checked(x: Any) -> Any:
        raise dmabuf.InvalidArgument("no")

    assert _attempt(leaky, lambda: [7])[0] == "crash"
    assert _attempt(checked, lambda: [7])[0] == "dmabuf"
    assert _attempt(K.dma_fence_is_signaled, lambda: [7])[0] == "dmabuf"
    assert _attempt(K.dma_fence_put, lambda: [None]) == ("ok", None)
