"""Which build of the explorer's hot core runs: the mypyc-compiled modules or their Python sources.

``setup.py`` compiles :data:`CORE_MODULES` with mypyc when it can (about 2x more executions per second) and
records the SHA-256 of each source it compiled in ``_core_build.json`` beside the package. This module is
imported first by ``dmabuf/__init__.py``, before any core module, and decides once per process:

* compiled, when every core module has its extension, the record exists and every source beside it is
  still the one compiled;
* the sources otherwise: ``DMABUF_PURE_PYTHON`` is set, the install had no compiler, or a source was edited
  since the build (then a :class:`~dmabuf.errors.CoreBuildWarning` says how to rebuild). A finder placed
  first on ``sys.meta_path`` then loads the ``.py`` files, which Python would otherwise skip for the
  extensions. All or none: the compiled modules call each other directly, so a mix would not work.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

from .errors import CoreBuildWarning

__all__ = [
    "COMPILED",
    "CORE_MODULES",
    "CORE_SOURCES",
    "REASON",
    "core_build",
    "decide",
    "restore_class_docs",
    "source_of",
]

#: the modules setup.py compiles, with their sources relative to the package directory (keep in sync with
#: setup.py's CORE; a test checks it): the runtime, the task record and the DPOR search. Model code (the
#: mutex, the kernel-named API) stays Python: compiled, a wrongly typed argument would raise mypyc's bare
#: TypeError before our checks explain it, and inspect.signature would lose the annotations
CORE_SOURCES = {
    "dmabuf.runtime._api": "runtime/_api.py",
    "dmabuf.runtime.threads": "runtime/threads.py",
    "dmabuf.runtime._decider": "runtime/_decider.py",
    "dmabuf.runtime.controlled": "runtime/controlled.py",
    "dmabuf.explore.strategies.dpor": "explore/strategies/dpor.py",
    "dmabuf.explore.strategies.dpor_races": "explore/strategies/dpor_races.py",
    "dmabuf.explore.strategies.dpor_events": "explore/strategies/dpor_events.py",
}
CORE_MODULES = tuple(CORE_SOURCES)
STAMP = "_core_build.json"
_PKG = Path(__file__).resolve().parent


def source_of(module: str, pkg: Path = _PKG) -> Path:
    """The ``.py`` file of a core module in the package directory ``pkg`` (this one by default)."""
    return pkg / CORE_SOURCES[module]


def _has_extension(module: str, pkg: Path) -> bool:
    src = source_of(module, pkg)
    return any(src.with_suffix(suffix).exists() for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def decide(pkg: Path = _PKG, environ: Mapping[str, str] = os.environ) -> tuple[bool, str]:
    """Whether the compiled core of the package directory ``pkg`` may load, and why (or why not). Warns
    (:class:`~dmabuf.errors.CoreBuildWarning`) when compiled modules are there but do not match."""
    if environ.get("DMABUF_PURE_PYTHON"):
        return False, "pure Python (DMABUF_PURE_PYTHON is set)"
    built = [m for m in CORE_MODULES if _has_extension(m, pkg)]
    if not built:
        return False, "pure Python (installed without compiling the core)"
    missing = [m for m in CORE_MODULES if m not in built]
    try:
        record = json.loads((pkg / STAMP).read_text())
        sources = record["sources"]
    except (OSError, ValueError, KeyError, TypeError):
        sources = None
    if missing or not isinstance(sources, dict):
        what = f"no compiled {', '.join(missing)}" if missing else f"no valid {STAMP}"
        return False, _stale(f"the compiled core is incomplete ({what})")
    changed = [
        m for m in CORE_MODULES if sources.get(m) != hashlib.sha256(source_of(m, pkg).read_bytes()).hexdigest()
    ]
    if changed:
        names = ", ".join(str(source_of(m, pkg).relative_to(pkg.parent)) for m in changed)
        return False, _stale(f"{names} changed since the core was compiled")
    return True, "compiled (mypyc)"


def _class_docs(pkg: Path) -> dict[str, str]:
    """``module.Class`` -> docstring, from the build record (mypyc drops class docstrings)."""
    try:
        docs = json.loads((pkg / STAMP).read_text()).get("class_docs")
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(docs, dict):
        return {}
    return {k: v for k, v in docs.items() if isinstance(k, str) and isinstance(v, str)}


def restore_class_docs() -> None:
    """Give the compiled core's classes back the docstrings mypyc dropped (``help(dmabuf.Task)``). Called by
    ``dmabuf/__init__.py`` once the core is imported; does nothing when the sources run."""
    if not COMPILED:
        return
    for name, doc in _class_docs(_PKG).items():
        module, _, cls_name = name.rpartition(".")
        cls = getattr(importlib.import_module(module), cls_name, None)
        if isinstance(cls, type) and not cls.__doc__:
            try:
                cls.__doc__ = doc
            except (AttributeError, TypeError):
                pass  # a type that refuses it keeps no docstring: cosmetic only


def _stale(why: str) -> str:
    warnings.warn(
        f"{why}: dmabuf runs the Python sources (same behaviour, searches about half as fast). Reinstall to "
        "compile them again (pip install -e . in a checkout), or set DMABUF_PURE_PYTHON=1 to silence this.",
        CoreBuildWarning,
        stacklevel=2,
    )
    return f"pure Python ({why})"


class _SourcesFirst(importlib.abc.MetaPathFinder):
    """Loads the core modules from their ``.py`` files (Python prefers an extension of the same name)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in CORE_MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, source_of(fullname))


COMPILED, REASON = decide()
if not COMPILED and not any(isinstance(f, _SourcesFirst) for f in sys.meta_path):
    sys.meta_path.insert(0, _SourcesFirst())


def core_build() -> str:
    """How the explorer's core runs in this process: ``"compiled (mypyc)"`` or ``"pure Python (<why>)"``."""
    return REASON
