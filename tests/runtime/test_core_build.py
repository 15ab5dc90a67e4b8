"""The compiled (mypyc) explorer core: which build loads, and that both builds behave the same.

setup.py compiles the hot modules when it can; ``dmabuf._core`` loads them only when they were built from
the sources beside them. These tests check that choice on fake package directories, the agreement between
setup.py and ``_core``, and -- in a child process with ``DMABUF_PURE_PYTHON=1`` -- that the sources give
the same search as the build under test.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.machinery
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dmabuf
from dmabuf import _core
from dmabuf.errors import CoreBuildWarning

ROOT = Path(__file__).resolve().parents[2]
EXT = importlib.machinery.EXTENSION_SUFFIXES[0]


def _setup_core() -> dict[str, str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "CORE" for t in targets):
                assert node.value is not None
                value = ast.literal_eval(node.value)
                assert isinstance(value, dict)
                return value
    raise AssertionError("setup.py has no CORE mapping")


def test_setup_compiles_exactly_the_modules_core_knows() -> None:
    core = _setup_core()
    assert tuple(core) == _core.CORE_MODULES
    for module, path in core.items():
        assert (ROOT / path).resolve() == _core.source_of(module)
        assert (ROOT / path).exists()


def _fake_package(tmp_path: Path, *, compiled: bool = True, stamp: bool = True) -> Path:
    """A package directory with the core's sources, and (optionally) fake extensions and a build record."""
    pkg = tmp_path / "dmabuf"
    digests = {}
    for module in _core.CORE_MODULES:
        src = _core.source_of(module, pkg)
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(f"# {module}\n")
        digests[module] = hashlib.sha256(src.read_bytes()).hexdigest()
        if compiled:
            src.with_suffix(EXT).write_bytes(b"")
    if stamp:
        (pkg / _core.STAMP).write_text(json.dumps({"python": "3", "sources": digests}))
    return pkg


def test_a_build_of_the_sources_beside_it_is_used(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path)
    assert _core.decide(pkg, {}) == (True, "compiled (mypyc)")


def test_no_extensions_means_the_sources_without_a_warning(tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    pkg = _fake_package(tmp_path, compiled=False, stamp=False)
    ok, why = _core.decide(pkg, {})
    assert not ok and why == "pure Python (installed without compiling the core)"
    assert not [w for w in recwarn if issubclass(w.category, CoreBuildWarning)]


def test_the_environment_variable_forces_the_sources(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path)
    assert _core.decide(pkg, {"DMABUF_PURE_PYTHON": "1"}) == (False, "pure Python (DMABUF_PURE_PYTHON is set)")


def test_an_edited_source_falls_back_to_the_sources_and_says_how_to_rebuild(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path)
    _core.source_of("dmabuf.runtime.controlled", pkg).write_text("# edited\n")
    with pytest.warns(CoreBuildWarning, match=r"dmabuf/runtime/controlled\.py changed.*pip install -e \."):
        ok, why = _core.decide(pkg, {})
    assert not ok
    assert why.startswith("pure Python (dmabuf/runtime/controlled.py changed")


def test_a_partial_build_or_a_missing_record_is_not_used(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path / "a")
    _core.source_of("dmabuf.explore.strategies.dpor", pkg).with_suffix(EXT).unlink()
    with pytest.warns(CoreBuildWarning, match="incomplete.*dmabuf.explore.strategies.dpor"):
        assert not _core.decide(pkg, {})[0]
    pkg = _fake_package(tmp_path / "b", stamp=False)
    with pytest.warns(CoreBuildWarning, match="no valid _core_build.json"):
        assert not _core.decide(pkg, {})[0]
    (pkg / _core.STAMP).write_text("{not json")
    with pytest.warns(CoreBuildWarning, match="no valid _core_build.json"):
        assert not _core.decide(pkg, {})[0]


def test_the_loaded_modules_are_the_build_it_reports() -> None:
    """Whatever this installation is, ``core_build()`` tells the truth about the modules that run."""
    for module in _core.CORE_MODULES:
        path = importlib.import_module(module).__file__
        assert path is not None
        assert path.endswith(".py") != _core.COMPILED, (module, path, dmabuf.core_build())
    assert dmabuf.core_build() == _core.REASON


_CHILD = """
import dmabuf, json, sys
from dmabuf.examples.classic import locked_family
from dmabuf.runtime import controlled
counts = []
for bound in (None, 1):
    r = dmabuf.explore(locked_family(3, 2), preemption_bound=bound, database=None)
    counts.append([r.executions, r.complete])
d = dmabuf.explore(locked_family(2, 2), strategy="dfs", database=None)
counts.append([d.executions, d.complete])
print(json.dumps({"build": dmabuf.core_build(), "file": controlled.__file__, "counts": counts}))
"""


def _child(env_extra: dict[str, str]) -> dict[str, object]:
    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert isinstance(result, dict)
    return result


def test_the_sources_and_this_build_run_the_same_searches() -> None:
    pure = _child({"DMABUF_PURE_PYTHON": "1"})
    assert pure["build"] == "pure Python (DMABUF_PURE_PYTHON is set)"
    assert str(pure["file"]).endswith("controlled.py")
    here = _child({})
    assert here["build"] == dmabuf.core_build()
    assert pure["counts"] == here["counts"]
    assert pure["counts"][0] == [90, True]  # one execution per order of the critical sections


def test_the_core_classes_keep_their_docstrings() -> None:
    """mypyc drops class docstrings; the build records them and ``_core`` puts them back, so help() and
    ``dmabuf.Task.__doc__`` read the same in both builds."""
    checked = 0
    for module in _core.CORE_MODULES:
        mod = importlib.import_module(module)
        for node in ast.parse(_core.source_of(module).read_text()).body:
            if isinstance(node, ast.ClassDef) and ast.get_docstring(node, clean=False):
                doc = getattr(mod, node.name).__doc__
                assert doc and inspect.cleandoc(doc) == ast.get_docstring(node), node.name
                checked += 1
    assert checked >= 8
    assert dmabuf.Task.__doc__ and "schedulable" in dmabuf.Task.__doc__


def test_the_core_functions_and_methods_keep_their_docstrings() -> None:
    """mypyc writes only the signature into a compiled function's docstring; setup.py appends the source
    docstring in the generated C, so the "Locking:"/"Kernel:" contracts read the same in both builds
    (``help(dmabuf.Task.join)``), and the signature still reads (``inspect.signature``)."""
    checked = 0
    for module in _core.CORE_MODULES:
        mod = importlib.import_module(module)
        for node in ast.parse(_core.source_of(module).read_text()).body:
            members = [(mod, node)] if not isinstance(node, ast.ClassDef) else [
                (getattr(mod, node.name), n) for n in node.body
            ]
            for owner, fn in members:
                if isinstance(fn, ast.FunctionDef) and ast.get_docstring(fn):
                    doc = getattr(owner, fn.name).__doc__
                    assert doc and inspect.cleandoc(doc) == ast.get_docstring(fn), (module, fn.name)
                    checked += 1
    assert checked >= 40
    assert "Locking: may sleep" in (dmabuf.Task.join.__doc__ or "")
    assert str(inspect.signature(dmabuf.Task.join)).startswith("(self")
