#!/usr/bin/env bash
# The project's test command (README and .ci/run both run exactly this).
# Installs the package with its test extras into the active Python, then: ruff, mypy --strict on src/, pytest
# (and, when the install compiled the explorer core, the core's tests again on its Python sources).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e '.[test]'
echo "== ruff"
python -m ruff check src tests benchmarks setup.py
echo "== mypy --strict (src/)"
python -m mypy
echo "== pytest"
set +e
python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure of the test command, not a pass" >&2
    exit 1
fi
if [ "$rc" -ne 0 ] || [ "$#" -ne 0 ]; then
    exit "$rc"  # a failure, or a run of chosen tests: the pass below is for the full command only
fi
# The install compiled the explorer core when it could (setup.py); the pass above tested that build. The
# core's own tests run once more on its Python sources, which run where no compiler is.
if python -c 'import dmabuf, sys; sys.exit(0 if dmabuf.core_build().startswith("compiled") else 1)'; then
    echo "== pytest, explorer core from its Python sources (DMABUF_PURE_PYTHON=1)"
    DMABUF_PURE_PYTHON=1 python -m pytest tests/runtime tests/explore/test_dpor.py tests/explore/test_counts.py \
        tests/explore/test_parallel.py
fi
