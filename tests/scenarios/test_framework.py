"""The scenario framework: registry, contracts, verdict kinds (incl. not available / n/a / bounded / error)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dmabuf.buf import MemoryExporter
from dmabuf.errors import UsageError
from dmabuf.scenarios import Budget, Importer, Scenario, contract_of, finish, get_scenario, runner, scenarios


def test_registry_has_h1_to_h5_in_order() -> None:
    ids = [s.id for s in scenarios()]
    assert ids[:5] == ["H1", "H2", "H3", "H4", "H5"]
    for s in scenarios():
        assert s.title and s.prop and s.duty and s.source
    assert get_scenario("h3").id == "H3"
    with pytest.raises(KeyError, match="unknown scenario 'H99'"):
        get_scenario("H99")


def test_contracts_of_the_five_designs() -> None:
    assert contract_of("importer-tracks").notifies_unmapped
    assert not contract_of("core-tracks-mappings").notifies_unmapped
    assert contract_of("core-tracks-mappings").core_invalidates
    assert contract_of("one-shot-attachments").kills_attachment
    assert contract_of("core-filters-reentry").filters_reentry
    assert contract_of("exporter-tracks").exporter_delays_free
    assert contract_of("no-such-design") == contract_of("importer-tracks").__class__(policy="no-such-design")


def test_unknown_policy_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"unknown mapping-tracking policy 'no-such-design'.*importer-tracks"):
        runner.verdict("H1", "no-such-design")
    assert runner.missing_module("importer-tracks") is None


def test_a_design_that_does_not_import_is_a_cell_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "missing_module", lambda p: "dmabuf.policies.exporter_tracks")
    v = runner.verdict("H1", "exporter-tracks")
    assert v.kind == "not available" and "dmabuf.policies.exporter_tracks does not import" in v.reason


class _Clean(Scenario):
    id = "T1"
    title = "clean"
    prop = "nothing"
    duty = "nothing"
    source = "test"

    def body(self, policy: str, variant: str) -> Callable[[], None]:
        def run() -> None:
            exp = MemoryExporter(4, policy=policy)
            imp = Importer(exp.buf)
            imp.attach_()
            imp.read_job()
            imp.teardown()
            finish(exp)

        return run


class _NeverApplicable(_Clean):
    id = "T2"

    def applicable(self, policy: Any) -> str | None:
        return "cannot be expressed here"


class _AlwaysFails(_Clean):
    id = "T3"

    def body(self, policy: str, variant: str) -> Callable[[], None]:
        def run() -> None:
            raise RuntimeError(f"{variant} fails")

        return run


class _OnlyNaiveFails(_Clean):
    id = "T4"

    def body(self, policy: str, variant: str) -> Callable[[], None]:
        clean = super().body(policy, variant)

        def run() -> None:
            if variant == "naive":
                raise RuntimeError("naive fails")
            clean()

        return run


def test_verdict_kinds() -> None:
    assert runner.verdict(_Clean(), "importer-tracks").kind == "safe by design"
    na = runner.verdict(_NeverApplicable(), "importer-tracks")
    assert na.kind == "n/a" and na.reason == "cannot be expressed here" and na.label.startswith("n/a: ")
    bad = runner.verdict(_AlwaysFails(), "importer-tracks")
    assert bad.kind == "unsafe" and bad.naive.failure and bad.careful.failure
    duty = runner.verdict(_OnlyNaiveFails(), "importer-tracks")
    assert duty.kind == "driver duty" and duty.label == "driver duty: nothing"
    js = duty.to_json()
    assert js["verdict"] == "driver duty" and js["runs"][0]["failure"]["schedule"].startswith("dmabuf-")


def test_budget_cut_is_reported_as_bounded() -> None:
    v = runner.verdict("H4", "importer-tracks", Budget(max_executions=3))
    assert v.kind == "safe (bounded)" and v.bounded and not v.naive.complete


def test_the_base_importer_is_clean_under_every_design() -> None:
    for p in runner.DESIGNS:
        if runner.missing_module(p):
            continue
        v = runner.verdict(_Clean(), p)
        assert v.kind == "safe by design", (p, v.label, v.naive.failure)
