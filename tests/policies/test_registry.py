"""All five designs are registered, selectable per buffer and as the process-wide default."""

from __future__ import annotations

import pytest

import dmabuf
from dmabuf.buf import MemoryExporter
from dmabuf.policies import default_policy, get_policy, policy_names, set_default_policy

FIVE = ["importer-tracks", "core-tracks-mappings", "one-shot-attachments", "exporter-tracks", "core-filters-reentry"]


def test_all_five_registered() -> None:
    assert set(FIVE) <= set(policy_names())
    for name in FIVE:
        assert get_policy(name).name == name


@pytest.mark.parametrize("name", FIVE)
def test_selectable_per_buffer_and_as_default(name: str) -> None:
    assert dmabuf.run_threads(lambda: MemoryExporter(4, policy=name).buf.policy.name) == name
    set_default_policy(name)
    try:
        assert default_policy() == name
        assert dmabuf.run_threads(lambda: MemoryExporter(4).buf.policy.name) == name
    finally:
        set_default_policy("importer-tracks")
