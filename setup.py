"""Build script: compiles the explorer's hot core with mypyc when it can, else installs pure Python.

Everything else about the package is declared in pyproject.toml; this file only adds the optional C
extensions. The modules in ``CORE`` (the controlled runtime, the task record and the DPOR search) run at
every scheduling step of every execution; compiled, an execution takes about half the machine
instructions and a DPOR search runs about 2x more executions per second (benchmarks/bench_explorer.py
prints which build it measured, and measures the other in a child process). They are ordinary, mypy --strict
clean Python, and the package behaves the same without them:

* ``DMABUF_PURE_PYTHON=1`` at install time skips the compiler;
* a failed compile (no C compiler, no Python headers, no mypy) installs pure Python, with a warning;
* at import time, ``dmabuf._core`` uses the compiled modules only if they were built from exactly the
  sources beside them (an edited checkout falls back to the sources, and says how to rebuild).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
#: module name -> source file: keep in sync with ``dmabuf._core.CORE_SOURCES`` (a test checks it)
CORE = {
    "dmabuf.runtime._api": "src/dmabuf/runtime/_api.py",
    "dmabuf.runtime.threads": "src/dmabuf/runtime/threads.py",
    "dmabuf.runtime._decider": "src/dmabuf/runtime/_decider.py",
    "dmabuf.runtime.controlled": "src/dmabuf/runtime/controlled.py",
    "dmabuf.explore.strategies.dpor": "src/dmabuf/explore/strategies/dpor.py",
    "dmabuf.explore.strategies.dpor_races": "src/dmabuf/explore/strategies/dpor_races.py",
    "dmabuf.explore.strategies.dpor_events": "src/dmabuf/explore/strategies/dpor_events.py",
}
#: the file beside the compiled package that records the sources it was built from
STAMP = "_core_build.json"
GROUP = "dmabuf"  # one shared library, dmabuf__mypyc.*.so, holds the compiled code of every CORE module


def _warn(msg: str) -> None:
    print(f"dmabuf setup: {msg}", file=sys.stderr)


def _remove_stale_builds(keep: set[str]) -> None:
    """Delete compiled modules an earlier in-place (editable) build left in src/ that this build does not
    make again: Python would load a leftover extension instead of the module's source, and fail."""
    src = ROOT / "src"
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    for path in src.rglob("*"):
        if not path.name.endswith(suffixes) or not path.is_file():
            continue
        stem = path.name[: -len(next(s for s in suffixes if path.name.endswith(s)))]
        rel = path.parent.relative_to(src).parts
        module = ".".join((*rel, stem)) if stem != "__init__" else ".".join(rel)
        if module not in keep:
            path.unlink()
    if not keep:
        (src / "dmabuf" / STAMP).unlink(missing_ok=True)


def _extensions() -> list[Any]:
    if os.environ.get("DMABUF_PURE_PYTHON"):
        _warn("DMABUF_PURE_PYTHON is set: installing the pure-Python core")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _warn("mypyc is not available: installing the pure-Python core")
        return []
    cwd = os.getcwd()
    os.chdir(ROOT)  # mypycify takes paths relative to the project
    try:
        # --ignore-missing-imports: the build environment has mypy, not the runtime dependencies (rich,
        # click); their types do not matter to the compiled modules
        exts: list[Any] = mypycify(
            ["--ignore-missing-imports", *CORE.values()], group_name=GROUP, opt_level="3"
        )
        sources = {Path(src) for ext in exts for src in ext.sources if src.endswith(".c")}
        if not sum(_add_docstrings(ROOT / src) for src in sources):
            _warn("no docstrings could be added to the generated C: compiled methods get none")
        return exts
    except BaseException as e:  # a type error in mypyc's eyes is a SystemExit
        _warn(f"mypyc could not compile the core ({type(e).__name__}: {e}): installing pure Python")
        return []
    finally:
        os.chdir(cwd)


def _function_docs() -> dict[tuple[str, str | None, str], str]:
    """``(module, class or None, name)`` -> docstring of every function and method of the compiled modules."""
    docs: dict[tuple[str, str | None, str], str] = {}
    for module, path in CORE.items():
        for node in ast.parse((ROOT / path).read_text()).body:
            members = [(None, node)] if not isinstance(node, ast.ClassDef) else [(node.name, n) for n in node.body]
            for cls, fn in members:
                if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(fn)
                    if doc:
                        docs[(module, cls, fn.name)] = doc
    return docs


def _c_string(text: str) -> str:
    """``text`` as the body of a C string literal (UTF-8; anything but printable ASCII as octal escapes)."""
    out = []
    for b in text.encode("utf-8"):
        c = chr(b)
        out.append(c if 32 <= b < 127 and c not in '"\\?' else f"\\{b:03o}")
    return "".join(out)


_TABLE = re.compile(r"static Py(?:MethodDef|GetSetDef) (\w+)\[\] = \{(.*?)\{NULL\}", re.S)
#: a method or function: {"name", (PyCFunction)..., flags, PyDoc_STR("<signature>\n--\n\n")}
_ENTRY = re.compile(
    r'(?P<head>\{"(?P<name>\w+)",\s*\(PyCFunction\)\w+,\s*[\w |]+,\s*PyDoc_STR\(")'
    r'(?P<sig>(?:[^"\\]|\\.)*)(?P<tail>"\))'
)
#: a property: {"name", (getter)..., (setter)... or NULL, NULL (its docstring), NULL}
_GETSET = re.compile(r'(?P<head>\{"(?P<name>\w+)",\s*\(getter\)\w+,\s*(?:\(setter\)\w+|NULL),\s*)NULL(?P<tail>, NULL\})')


def _add_docstrings(c_file: Path) -> int:
    """mypyc gives a compiled function or method a C docstring holding only its signature, so ``help()``
    and ``__doc__`` would lose the "Locking:"/"Kernel:" contract its source states. Append each source
    docstring after the signature in the generated C method tables. Returns how many were added; a
    generated file this does not recognise is left as it is (the methods then have no docstring)."""
    docs = _function_docs()
    tables: dict[str, tuple[str, str | None]] = {}
    for module in CORE:
        short = module.rsplit(".", 1)[-1]
        tables[f"{short}module_methods"] = (module, None)
        for node in ast.parse((ROOT / CORE[module]).read_text()).body:
            if isinstance(node, ast.ClassDef):
                tables[f"{short}___{node.name}_methods"] = (module, node.name)
                tables[f"{short}___{node.name}_getseters"] = (module, node.name)
    text = c_file.read_text()
    added = 0

    def table(m: re.Match[str]) -> str:
        where = tables.get(m.group(1))
        if where is None:
            return m.group(0)

        def fill(e: re.Match[str]) -> str:
            nonlocal added
            doc = docs.get((where[0], where[1], e.group("name")))
            if not doc:
                return e.group(0)
            added += 1
            sig = e.groupdict().get("sig")
            body = _c_string(doc) if sig is not None else '"' + _c_string(doc) + '"'  # a property's was NULL
            return e.group("head") + (sig or "") + body + e.group("tail")

        return (_GETSET if m.group(1).endswith("_getseters") else _ENTRY).sub(fill, m.group(0))

    text = _TABLE.sub(table, text)
    if added:
        c_file.write_text(text)
    return added


def _class_docs() -> dict[str, str]:
    """``module.Class`` -> docstring of every class of the compiled modules: mypyc drops class docstrings,
    and ``dmabuf._core`` puts them back (methods get theirs in the generated C: _add_docstrings)."""
    docs = {}
    for module, path in CORE.items():
        for node in ast.parse((ROOT / path).read_text()).body:
            if isinstance(node, ast.ClassDef):
                doc = ast.get_docstring(node, clean=False)
                if doc:
                    docs[f"{module}.{node.name}"] = doc
    return docs


class BuildCore(build_ext):
    """``build_ext`` that never fails the install: on any compile error it removes what it built (a
    partial set of compiled modules would not load) and leaves the pure-Python modules. On success it
    writes the digest of each compiled source beside the package (``dmabuf._core`` compares it)."""

    def run(self) -> None:
        if not self.extensions:
            return
        try:
            super().run()
        except Exception as e:
            self._remove_outputs()
            _warn(f"compiling the core failed ({type(e).__name__}: {e}): installing pure Python")
            return
        pkg = Path(self.get_ext_fullpath("dmabuf.runtime._api")).parent.parent
        digests = {m: hashlib.sha256((ROOT / p).read_bytes()).hexdigest() for m, p in CORE.items()}
        record = {"python": sys.version.split()[0], "sources": digests, "class_docs": _class_docs()}
        (pkg / STAMP).write_text(json.dumps(record, indent=1))

    def _remove_outputs(self) -> None:
        # only the extensions: build_temp is shared with other setuptools steps (editable installs keep
        # their egg-info there)
        for ext in self.extensions:
            out = Path(self.get_ext_fullpath(ext.name))
            if out.exists():
                out.unlink()


EXTENSIONS = _extensions()
_remove_stale_builds({*CORE, f"{GROUP}__mypyc"} if EXTENSIONS else set())
setup(ext_modules=EXTENSIONS, cmdclass={"build_ext": BuildCore})
