"""Conformance of ``dmabuf.kernel`` with ``shared/reference/kernel-api.md``.

Every name the reference lists exists (``dmabuf.kernel.config`` for Kconfig switches); structs are classes
constructible with no arguments; ops tables are built with keywords and default missing members to None;
out-parameters come back as tuples (rule 2); the error-pointer helpers work (rule 3); ``set_warn_mode("log")``
makes WARN conditions return the kernel's value and the run reports kind ``kernel-warning`` (rule 7).

The ``linux/dma-buf.h`` names are checked the same way (they landed after the rest).
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import dmabuf
import dmabuf.kernel as K

KD: Any = K  # names that may not exist yet (linux/dma-buf.h)

# --------------------------------------------------------------------------- the name lists of kernel-api.md

DMA_FENCE_H = """
DmaFence DmaFenceOps DmaFenceCb dma_fence_init dma_fence_context_alloc dma_fence_get dma_fence_get_rcu
dma_fence_get_rcu_safe dma_fence_put dma_fence_signal dma_fence_signal_locked dma_fence_signal_timestamp
dma_fence_signal_timestamp_locked dma_fence_enable_sw_signaling dma_fence_add_callback
dma_fence_remove_callback dma_fence_is_signaled dma_fence_is_signaled_locked dma_fence_get_status
dma_fence_get_status_locked dma_fence_set_error dma_fence_wait dma_fence_wait_timeout
dma_fence_wait_any_timeout dma_fence_default_wait dma_fence_is_later dma_fence_is_later_or_same
dma_fence_later dma_fence_timestamp dma_fence_get_stub dma_fence_allocate_private_stub dma_fence_set_deadline
dma_fence_begin_signalling dma_fence_end_signalling DMA_FENCE_FLAG_SIGNALED_BIT DMA_FENCE_FLAG_TIMESTAMP_BIT
DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT DMA_FENCE_FLAG_USER_BITS
"""
DMA_FENCE_ARRAY_H = """
DmaFenceArray dma_fence_array_create to_dma_fence_array dma_fence_is_array dma_fence_match_context
dma_fence_array_first dma_fence_array_next dma_fence_array_for_each
"""
DMA_FENCE_CHAIN_H = """
DmaFenceChain dma_fence_chain_alloc dma_fence_chain_free dma_fence_chain_init to_dma_fence_chain
dma_fence_is_chain dma_fence_chain_contained dma_fence_chain_walk dma_fence_chain_find_seqno
dma_fence_chain_for_each
"""
DMA_FENCE_UNWRAP_H = """
DmaFenceUnwrap dma_fence_unwrap_first dma_fence_unwrap_next dma_fence_unwrap_for_each dma_fence_unwrap_merge
dma_fence_dedup_array
"""
DMA_RESV_H = """
DmaResv DmaResvIter DMA_RESV_USAGE_KERNEL DMA_RESV_USAGE_WRITE DMA_RESV_USAGE_READ DMA_RESV_USAGE_BOOKKEEP
reservation_ww_class dma_resv_init dma_resv_fini dma_resv_lock dma_resv_lock_interruptible dma_resv_lock_slow
dma_resv_lock_slow_interruptible dma_resv_trylock dma_resv_is_locked dma_resv_locking_ctx dma_resv_unlock
dma_resv_assert_held dma_resv_reserve_fences dma_resv_add_fence dma_resv_replace_fences dma_resv_iter_begin
dma_resv_iter_end dma_resv_iter_first dma_resv_iter_next dma_resv_iter_first_unlocked
dma_resv_iter_next_unlocked dma_resv_iter_usage dma_resv_iter_is_restarted dma_resv_for_each_fence
dma_resv_for_each_fence_unlocked dma_resv_copy_fences dma_resv_get_fences dma_resv_get_singleton
dma_resv_wait_timeout dma_resv_set_deadline dma_resv_test_signaled dma_resv_usage_rw
"""
WW_MUTEX_H = """
WWClass WWMutex WWAcquireCtx DEFINE_WW_CLASS DEFINE_WD_CLASS ww_mutex_init ww_acquire_init ww_acquire_done
ww_acquire_fini ww_mutex_lock ww_mutex_lock_interruptible ww_mutex_lock_slow ww_mutex_lock_slow_interruptible
ww_mutex_trylock ww_mutex_unlock ww_mutex_is_locked ww_mutex_destroy
"""
DMA_BUF_H = """
DmaBuf DmaBufAttachment DmaBufOps DmaBufAttachOps DmaBufExportInfo DEFINE_DMA_BUF_EXPORT_INFO SgTable
DMA_BIDIRECTIONAL DMA_TO_DEVICE DMA_FROM_DEVICE dma_buf_export dma_buf_fd dma_buf_get dma_buf_put get_dma_buf
dma_buf_attach dma_buf_dynamic_attach dma_buf_detach dma_buf_pin dma_buf_unpin dma_buf_map_attachment
dma_buf_unmap_attachment dma_buf_map_attachment_unlocked dma_buf_unmap_attachment_unlocked
dma_buf_move_notify dma_buf_begin_cpu_access dma_buf_end_cpu_access dma_buf_vmap dma_buf_vunmap
dma_buf_vmap_unlocked dma_buf_vunmap_unlocked dma_buf_mmap dma_buf_is_dynamic dma_buf_attachment_is_dynamic
"""
DRM_EXEC_H = """
DrmExec DrmGemObject drm_gem_private_object_init drm_gem_private_object_fini drm_exec_init drm_exec_fini
drm_exec_cleanup drm_exec_until_all_locked drm_exec_retry_on_contention drm_exec_is_contended
drm_exec_lock_obj drm_exec_unlock_obj drm_exec_prepare_obj drm_exec_prepare_array
drm_exec_for_each_locked_object DRM_EXEC_INTERRUPTIBLE_WAIT DRM_EXEC_IGNORE_DUPLICATES
"""
RUNTIME = """
SpinLock spin_lock_init spin_lock spin_unlock spin_lock_irqsave spin_unlock_irqrestore
Mutex mutex_init mutex_lock mutex_lock_interruptible mutex_trylock mutex_unlock mutex_is_locked
Completion init_completion reinit_completion complete complete_all wait_for_completion
wait_for_completion_timeout try_wait_for_completion completion_done
kthread_run kthread_stop kthread_should_stop
WorkStruct INIT_WORK alloc_workqueue queue_work schedule_work flush_work cancel_work_sync flush_workqueue
destroy_workqueue
TimerList timer_setup mod_timer timer_pending del_timer_sync
wake_up_process set_current_state TASK_INTERRUPTIBLE TASK_UNINTERRUPTIBLE schedule schedule_timeout
ERESTARTSYS jiffies HZ msecs_to_jiffies msleep time_after MAX_SCHEDULE_TIMEOUT signal_pending current
might_sleep READ_ONCE WRITE_ONCE
Atomic atomic_read atomic_set atomic_inc atomic_dec_and_test atomic_cmpxchg atomic_fetch_add
Kref kref_init kref_get kref_get_unless_zero kref_put
rcu_read_lock rcu_read_unlock synchronize_rcu call_rcu
"""
MORE = """
test_bit set_bit clear_bit test_and_set_bit test_and_clear_bit
kref_read dma_fence_free drm_gem_object_get drm_gem_object_put
spin_lock_irq spin_unlock_irq spin_lock_bh spin_unlock_bh
DelayedWork INIT_DELAYED_WORK queue_delayed_work mod_delayed_work cancel_delayed_work cancel_delayed_work_sync
cancel_work drain_workqueue
WaitQueueHead init_waitqueue_head wait_event wait_event_timeout wait_event_interruptible wake_up wake_up_all
Seqcount seqcount_init read_seqcount_begin read_seqcount_retry write_seqcount_begin write_seqcount_end
ListHead INIT_LIST_HEAD list_add list_add_tail list_del list_del_init list_empty list_first_entry
list_for_each_entry
ERR_PTR IS_ERR PTR_ERR IS_ERR_OR_NULL set_warn_mode
"""
KCONFIG = {
    "CONFIG_DMABUF_MOVE_NOTIFY": True,
    "CONFIG_DEBUG_WW_MUTEX_SLOWPATH": False,
    "CONFIG_PROVE_LOCKING": True,
}

KERNEL_NAMES = sorted(
    set(
        (
            DMA_FENCE_H
            + DMA_FENCE_ARRAY_H
            + DMA_FENCE_CHAIN_H
            + DMA_FENCE_UNWRAP_H
            + DMA_RESV_H
            + WW_MUTEX_H
            + DRM_EXEC_H
            + RUNTIME
            + MORE
        ).split()
    )
)
DMA_BUF_NAMES = DMA_BUF_H.split()

#: iteration macros (rule 6): generator functions
GENERATORS = """
dma_resv_for_each_fence dma_resv_for_each_fence_unlocked dma_fence_unwrap_for_each dma_fence_chain_for_each
dma_fence_array_for_each drm_exec_until_all_locked drm_exec_for_each_locked_object list_for_each_entry
""".split()

#: structs (rule 4): classes constructible with no arguments
STRUCTS = """
DmaFence DmaFenceOps DmaFenceCb DmaFenceArray DmaFenceChain DmaFenceUnwrap DmaResv DmaResvIter WWClass WWMutex
WWAcquireCtx DrmExec DrmGemObject SpinLock Mutex Completion WorkStruct DelayedWork TimerList Atomic Kref
WaitQueueHead Seqcount ListHead
""".split()
DMA_BUF_STRUCTS = "DmaBuf DmaBufAttachment DmaBufOps DmaBufAttachOps DmaBufExportInfo SgTable".split()


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_name_exists(name: str) -> None:
    assert hasattr(K, name), f"dmabuf.kernel.{name} is missing (kernel-api.md lists it)"
    assert name in K.__all__, f"dmabuf.kernel.{name} exists but is not exported in __all__"


@pytest.mark.parametrize("name", DMA_BUF_NAMES)
def test_dma_buf_name_exists(name: str) -> None:
    assert hasattr(K, name), f"dmabuf.kernel.{name} is missing (linux/dma-buf.h)"


@pytest.mark.parametrize(("name", "default"), sorted(KCONFIG.items()))
def test_kconfig_switch(name: str, default: bool) -> None:
    assert getattr(K.config, name) is default
    assert name in K.config.__all__


@pytest.mark.parametrize("name", GENERATORS)
def test_iteration_macro_is_a_generator_function(name: str) -> None:
    fn = getattr(K, name)
    assert callable(fn)
    # either a generator function or a function returning an iterator (checked by calling in the unit tests)
    ann = inspect.signature(fn).return_annotation
    assert inspect.isgeneratorfunction(fn) or "Iterator" in str(ann), f"{name} -> {ann}"


@pytest.mark.parametrize("name", STRUCTS)
def test_struct_constructible_without_arguments(name: str) -> None:
    cls = getattr(K, name)
    assert inspect.isclass(cls)
    obj = dmabuf.run_threads(cls)  # some structs (workqueue items) touch the runtime when built
    assert isinstance(obj, cls)


@pytest.mark.parametrize("name", DMA_BUF_STRUCTS)
def test_dma_buf_struct_constructible_without_arguments(name: str) -> None:
    cls = getattr(K, name)
    assert inspect.isclass(cls)
    assert isinstance(dmabuf.run_threads(cls), cls)


def test_structs_embed_by_subclassing() -> None:
    """Rule 4: ``class MockFence(DmaFence)`` and ``class SimpleCb(DmaFenceCb): seen = False``."""

    class MockFence(K.DmaFence):
        extra = 1

    class SimpleCb(K.DmaFenceCb):
        seen = False

    def body() -> None:
        f = MockFence()
        ops = K.DmaFenceOps(get_driver_name=lambda f: "mock", get_timeline_name=lambda f: "t")
        K.dma_fence_init(f, ops, K.SpinLock(), K.dma_fence_context_alloc(1), 1)
        cb = SimpleCb()

        def func(fence: K.DmaFence, c: K.DmaFenceCb) -> None:
            assert fence is f and c is cb
            assert isinstance(c, SimpleCb)
            c.seen = True

        assert K.dma_fence_add_callback(f, cb, func) == 0
        assert K.dma_fence_signal(f) == 0
        assert cb.seen
        K.dma_fence_put(f)

    dmabuf.run_threads(body)


# --------------------------------------------------------------------------- ops tables (rule 5)

FENCE_OPS_MEMBERS = [
    "get_driver_name",
    "get_timeline_name",
    "enable_signaling",
    "signaled",
    "wait",
    "release",
    "set_deadline",
]


def test_dma_fence_ops_keywords_and_defaults() -> None:
    def name(f: K.DmaFence) -> str:
        return "drv"

    ops = K.DmaFenceOps(get_driver_name=name, get_timeline_name=name)
    assert ops.get_driver_name is name and ops.get_timeline_name is name
    for m in FENCE_OPS_MEMBERS[2:]:
        assert getattr(ops, m) is None, m
    assert ops.use_64bit_seqno is False
    full = K.DmaFenceOps(
        get_driver_name=name,
        get_timeline_name=name,
        enable_signaling=None,
        signaled=None,
        wait=None,
        release=None,
        set_deadline=None,
        use_64bit_seqno=True,
    )
    assert full.use_64bit_seqno is True
    empty = K.DmaFenceOps()
    for m in FENCE_OPS_MEMBERS:
        assert getattr(empty, m) is None, m


def test_dma_fence_ops_positional_is_rejected() -> None:
    """Ops tables are built with keywords (C designated initialisers)."""
    with pytest.raises(TypeError):
        K.DmaFenceOps(lambda f: "drv")  # type: ignore[misc]


def test_dma_buf_ops_keywords_and_defaults() -> None:
    def cb(*a: Any) -> None:
        return None

    ops = KD.DmaBufOps(map_dma_buf=cb, unmap_dma_buf=cb, release=cb)
    for m in [
        "attach",
        "detach",
        "pin",
        "unpin",
        "begin_cpu_access",
        "end_cpu_access",
        "mmap",
        "vmap",
        "vunmap",
    ]:
        assert getattr(ops, m) is None, m
    assert ops.map_dma_buf is cb and ops.unmap_dma_buf is cb and ops.release is cb
    assert ops.cache_sgt_mapping is False
    aops = KD.DmaBufAttachOps(move_notify=cb)
    assert aops.move_notify is cb and aops.allow_peer2peer is False
    assert KD.DmaBufAttachOps().move_notify is None


def test_dma_buf_export_info() -> None:
    info = KD.DEFINE_DMA_BUF_EXPORT_INFO()
    assert isinstance(info, KD.DmaBufExportInfo)
    for f in ("ops", "size", "priv", "resv"):
        assert hasattr(info, f), f


# --------------------------------------------------------------------------- fields keep kernel names


def _ops() -> K.DmaFenceOps:
    return K.DmaFenceOps(get_driver_name=lambda f: "conf", get_timeline_name=lambda f: "tl")


def _fence(context: int | None = None, seqno: int = 1) -> K.DmaFence:
    f = K.DmaFence()
    K.dma_fence_init(
        f, _ops(), K.SpinLock(), K.dma_fence_context_alloc(1) if context is None else context, seqno
    )
    return f


def test_fence_fields() -> None:
    def body() -> None:
        lock = K.SpinLock()
        ops = _ops()
        ctx = K.dma_fence_context_alloc(1)
        f = K.DmaFence()
        K.dma_fence_init(f, ops, lock, ctx, 7)
        assert f.ops is ops and f.lock is lock and f.context == ctx and f.seqno == 7
        assert f.flags == 0 and f.error == 0
        assert K.kref_read(f.refcount) == 1
        assert K.dma_fence_signal_timestamp(f, 1234) == 0
        assert K.test_bit(K.DMA_FENCE_FLAG_SIGNALED_BIT, (f, "flags"))
        assert K.test_bit(K.DMA_FENCE_FLAG_TIMESTAMP_BIT, f.flags)
        assert f.timestamp == 1234
        K.dma_fence_put(f)

    dmabuf.run_threads(body)


def test_other_fields() -> None:
    def body() -> None:
        m = K.WWMutex()
        K.ww_mutex_init(m, K.reservation_ww_class)
        assert m.ctx is None
        ctx = K.WWAcquireCtx()
        K.ww_acquire_init(ctx, K.reservation_ww_class)
        assert K.ww_mutex_lock(m, ctx) == 0
        assert m.ctx is ctx
        K.ww_mutex_unlock(m)
        K.ww_acquire_fini(ctx)

        obj = K.DrmGemObject()
        K.drm_gem_private_object_init(None, obj, 4096)
        assert isinstance(obj.resv, K.DmaResv)
        K.drm_gem_private_object_fini(obj)

        r = K.DmaResv()
        K.dma_resv_init(r)
        cursor = K.DmaResvIter()
        K.dma_resv_iter_begin(cursor, r, K.DMA_RESV_USAGE_BOOKKEEP)
        assert list(K.dma_resv_for_each_fence_unlocked(cursor)) == []
        assert hasattr(cursor, "fences")
        K.dma_resv_iter_end(cursor)
        K.dma_resv_fini(r)

    dmabuf.run_threads(body)


# --------------------------------------------------------------------------- out-parameters (rule 2)


def test_out_parameters_are_returned_as_tuples() -> None:
    def body() -> None:
        r = K.DmaResv()
        K.dma_resv_init(r)
        # empty: (0, []) and (0, None)
        assert K.dma_resv_get_fences(r, K.DMA_RESV_USAGE_BOOKKEEP) == (0, [])
        assert K.dma_resv_get_singleton(r, K.DMA_RESV_USAGE_BOOKKEEP) == (0, None)

        a, b = _fence(), _fence()
        assert K.dma_resv_lock(r, None) == 0
        assert K.dma_resv_reserve_fences(r, 1) == 0
        K.dma_resv_add_fence(r, a, K.DMA_RESV_USAGE_WRITE)
        K.dma_resv_unlock(r)

        ret, fences = K.dma_resv_get_fences(r, K.DMA_RESV_USAGE_READ)
        assert ret == 0 and fences == [a] and isinstance(fences, list)
        ret, single = K.dma_resv_get_singleton(r, K.DMA_RESV_USAGE_READ)
        assert ret == 0 and single is a
        K.dma_fence_put(single)
        for f in fences:
            K.dma_fence_put(f)

        assert K.dma_resv_lock(r, None) == 0
        assert K.dma_resv_reserve_fences(r, 1) == 0  # reservations do not survive an unlock
        K.dma_resv_add_fence(r, b, K.DMA_RESV_USAGE_READ)
        K.dma_resv_unlock(r)
        ret, single = K.dma_resv_get_singleton(r, K.DMA_RESV_USAGE_READ)
        assert (
            ret == 0 and single is not None and K.dma_fence_is_array(single)
        )  # two fences: an array of them
        K.dma_fence_put(single)

        # in/out pointer: the new value comes back after the result
        c = K.dma_fence_chain_alloc()
        K.dma_fence_chain_init(c, None, K.dma_fence_get(a), 5)
        ret, found = K.dma_fence_chain_find_seqno(K.dma_fence_get(c), 5)
        assert ret == 0 and found is c
        K.dma_fence_put(found)
        ret, same = K.dma_fence_chain_find_seqno(c, 0)  # seqno 0: unchanged, no reference consumed
        assert (ret, same) == (0, c)
        ret, unchanged = K.dma_fence_chain_find_seqno(c, 9)  # later than the head: -EINVAL, unchanged
        assert (ret, unchanged) == (-K.EINVAL, c)
        K.dma_fence_put(c)

        # wait_any: (ret, idx)
        done = _fence()
        K.dma_fence_signal(done)
        ret, idx = K.dma_fence_wait_any_timeout([b, done], 2, False, 0)
        assert ret == 1 and idx == 1
        ret, idx = K.dma_fence_wait_any_timeout([b], 1, False, 0)
        assert ret == 0
        K.dma_fence_put(done)

        # spin_lock_irqsave: the only output is the flags word, returned as the result
        s = K.SpinLock()
        K.spin_lock_init(s)
        flags = K.spin_lock_irqsave(s)
        assert isinstance(flags, int) and not isinstance(flags, bool)
        assert K.spin_is_locked(s) and K.in_atomic()
        K.spin_unlock_irqrestore(s, flags)
        assert not K.spin_is_locked(s) and not K.in_atomic()

        for f in (a, b):
            K.dma_fence_signal(f)
        K.dma_resv_fini(r)
        K.dma_fence_put(a)
        K.dma_fence_put(b)

    dmabuf.run_threads(body)


# --------------------------------------------------------------------------- error pointers (rule 3)


def test_error_pointers() -> None:
    p = K.ERR_PTR(-K.ENOMEM)
    assert K.IS_ERR(p) and K.IS_ERR_OR_NULL(p)
    assert K.PTR_ERR(p) == -K.ENOMEM
    assert not K.IS_ERR(None) and K.IS_ERR_OR_NULL(None)
    f = K.DmaFence()
    assert not K.IS_ERR(f) and not K.IS_ERR_OR_NULL(f)
    assert K.PTR_ERR_OR_ZERO(f) == 0 and K.PTR_ERR_OR_ZERO(p) == -K.ENOMEM
    for bad in (0, 5, -5000, "x", None):
        with pytest.raises(dmabuf.InvalidArgument):
            K.ERR_PTR(bad)  # type: ignore[arg-type]
    with pytest.raises(dmabuf.InvalidArgument):
        K.PTR_ERR(f)


def test_int_results_are_negative_errno() -> None:
    import errno

    for name in ("EINVAL", "ENOENT", "EBUSY", "ENOMEM", "EALREADY", "EDEADLK", "EINTR", "ETIME", "EIO"):
        assert getattr(K, name) == getattr(errno, name), name
    assert K.ERESTARTSYS == 512
    assert K.HZ == K.config.HZ


# --------------------------------------------------------------------------- WARN in log mode (rule 7)


def _warn_body(got: dict[str, Any]) -> None:
    f, g = _fence(), _fence()
    got["dma_fence_add_callback(func=NULL)"] = K.dma_fence_add_callback(f, K.DmaFenceCb(), None)
    got["dma_fence_wait_timeout(t<0)"] = K.dma_fence_wait_timeout(f, False, -1)
    got["dma_fence_is_later(ctx mismatch)"] = K.dma_fence_is_later(f, g)
    got["dma_fence_later(ctx mismatch)"] = K.dma_fence_later(f, g)
    got["dma_fence_wait_any_timeout(n=0)"] = K.dma_fence_wait_any_timeout([], 0, False, 10)
    got["dma_fence_add_callback(NULL)"] = K.dma_fence_add_callback(None, K.DmaFenceCb(), lambda f, c: None)
    for x in (f, g):
        K.dma_fence_signal(x)
        K.dma_fence_put(x)


WARN_EXPECTED = {
    "dma_fence_add_callback(func=NULL)": -K.EINVAL,
    "dma_fence_wait_timeout(t<0)": -K.EINVAL,
    "dma_fence_is_later(ctx mismatch)": False,
    "dma_fence_later(ctx mismatch)": None,
    "dma_fence_wait_any_timeout(n=0)": (-K.EINVAL, None),
    "dma_fence_add_callback(NULL)": -K.EINVAL,
}


def _set_positive_error() -> None:
    f = _fence()
    K.dma_fence_set_error(f, K.EIO)  # WARN: not a negative errno
    K.dma_fence_signal(f)
    K.dma_fence_put(f)


def test_warn_raises_by_default() -> None:
    assert K.get_warn_mode() == "raise"
    with pytest.raises(dmabuf.KernelWarning, match="dma_fence_set_error"):
        dmabuf.run_threads(_set_positive_error)
    res = dmabuf.explore(_set_positive_error)
    assert res.failure is not None and res.failure.kind == "kernel-warning"


def test_warn_log_mode_returns_kernel_values_threads() -> None:
    K.set_warn_mode("log")
    got: dict[str, Any] = {}
    with pytest.raises(dmabuf.KernelWarning):  # logged warnings are reported when the run ends
        dmabuf.run_threads(lambda: _warn_body(got))
    assert got == WARN_EXPECTED


def test_warn_log_mode_returns_kernel_values_explorer() -> None:
    K.set_warn_mode("log")
    got: dict[str, Any] = {}
    res = dmabuf.explore(lambda: _warn_body(got), max_executions=5)
    assert got == WARN_EXPECTED
    assert res.failure is not None
    assert res.failure.kind == "kernel-warning", res.failure
    assert "dma_fence_add_callback" in res.failure.message


def test_set_warn_mode_rejects_unknown_mode() -> None:
    with pytest.raises(dmabuf.InvalidArgument):
        K.set_warn_mode("ignore")
