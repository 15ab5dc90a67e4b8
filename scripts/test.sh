#!/usr/bin/env bash
# The project's test command (README and .ci/run both run exactly this).
# Installs the package with its test extras into the active Python, then: ruff, mypy --strict on src/, pytest.
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
exit "$rc"
