"""Policy registry and the hooks the core calls (with importer-tracks, the mainline behaviour)."""

from __future__ import annotations

from typing import Any

import pytest

import dmabuf
from dmabuf.buf import DmaBufAttachOps, MemoryExporter
from dmabuf.errors import MappingInvalidated, UsageError
from dmabuf.policies import (
    Policy,
    default_policy,
    get_policy,
    policy_names,
    register_policy,
    set_default_policy,
)


def test_registry() -> None:
    assert "importer-tracks" in policy_names()
    assert get_policy("importer-tracks").name == "importer-tracks"
    with pytest.raises(UsageError, match="unknown mapping-tracking policy 'nope'; valid policies are: .*importer-tracks"):
        get_policy("nope")
    with pytest.raises(UsageError):
        set_default_policy("nope")
    assert default_policy() == "importer-tracks"


class Recording(Policy):
    """A test policy: records every hook, notifies only attachments with a live mapping, kills invalidated
    mappings (option 2 in miniature)."""

    name = "test-recording"

    def __init__(self) -> None:
        self.log: list[str] = []

    def on_attach(self, attach: Any) -> None:
        self.log.append("attach")
        attach.policy_data["live"] = []

    def after_map(self, attach: Any, sgt: Any) -> None:
        self.log.append("map")
        if sgt is not None:
            attach.policy_data["live"].append(sgt)

    def on_unmap(self, attach: Any, sgt: Any) -> None:
        self.log.append("unmap")
        attach.policy_data["live"].remove(sgt)

    def notify_targets(self, buf: Any) -> list[Any]:
        return [a for a in buf.attachments if a.importer_ops is not None and a.policy_data["live"]]

    def after_notify(self, attach: Any) -> None:
        for s in attach.policy_data["live"]:
            s.invalidated_by = "move_notify"

    def check_use(self, mapping: Any) -> None:
        if mapping.invalidated_by is not None:
            raise MappingInvalidated(f"{mapping!r} was invalidated by {mapping.invalidated_by}")

    def on_detach(self, attach: Any) -> None:
        self.log.append("detach")


register_policy(Recording)


def test_hooks_called_and_general_enough() -> None:
    def body() -> None:
        pol = Recording()
        exp = MemoryExporter(8, policy=pol)
        seen: list[str] = []
        a = exp.buf.attach("d1", DmaBufAttachOps(move_notify=lambda at: seen.append("a")))
        b = exp.buf.attach("d2", DmaBufAttachOps(move_notify=lambda at: seen.append("b")))
        with exp.buf.resv:
            sgt = a.map()
            exp.move("GTT")
        assert seen == ["a"]  # b has no live mapping: not notified under this policy
        with pytest.raises(MappingInvalidated):
            sgt.dma_read(0, 1)
        with exp.buf.resv:
            a.unmap(sgt)
        a.detach()
        b.detach()
        assert pol.log == ["attach", "attach", "map", "unmap", "detach", "detach"]
        exp.buf.put()

    dmabuf.run_threads(body)


def test_default_policy_switch() -> None:
    def body() -> str:
        return MemoryExporter(4).buf.policy.name

    set_default_policy("test-recording")
    try:
        assert dmabuf.run_threads(body) == "test-recording"
    finally:
        set_default_policy("importer-tracks")
    assert dmabuf.run_threads(body) == "importer-tracks"
