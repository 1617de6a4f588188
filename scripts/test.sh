#!/usr/bin/env bash
# The test command: install, start the services, lint, type-check, then run every test.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/bench_server -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
scripts/services.sh
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
set +e
.venv/bin/pytest "$@"
code=$?
set -e
if [ "$code" = 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$code"
