#!/usr/bin/env bash
# Create .venv and install the project. Humans and CI run the same script.
#   scripts/install.sh          server + runner + CI client + test tools + reference engine + torch (CPU)
#   scripts/install.sh server   only what the API server and the demo's store need
# formats/ (bench-formats) is not on PyPI: it is installed from here beside the server and runner.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version}"'

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
stamp=".venv/.installed-$what"
# Skip the pip run when nothing it reads has changed since the last install.
inputs=$(cat pyproject.toml runners/pyproject.toml formats/pyproject.toml ci/pyproject.toml scripts/install.sh \
  | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$inputs" ]; then
  echo "== .venv is up to date ($what)"
  exit 0
fi

"${PIP[@]}" install -q --upgrade pip wheel
if [ "$what" = "server" ]; then
  echo "== installing the server"
  "${PIP[@]}" install -q -e formats -e . -e runners
else
  # torch first, pinned to the CPU build: a bare 'torch' requirement would pull a multi-GB CUDA build.
  echo "== installing torch (CPU build)"
  "${PIP[@]}" install -q "torch==2.13.0"
  # llama-cpp-python compiles llama.cpp from source on first install (about 12 minutes on 2 cores);
  # pip keeps the built wheel in its cache (~/.cache/pip), so later installs take seconds.
  echo "== installing the server, the runner with the reference engine, and the test tools"
  echo "   (the first install compiles llama.cpp: about 12 minutes; later ones reuse pip's wheel cache)"
  "${PIP[@]}" install -q -e formats -e '.[dev]' -e 'runners[engine,nvidia]' -e ci "torch==2.13.0"
fi
echo "$inputs" > "$stamp"
echo "== installed ($what)"
