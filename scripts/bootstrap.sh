#!/usr/bin/env bash
# Creates .venv (if missing) and installs the project with its test extra. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
    # A venv made by uv has no pip: give it one first.
    .venv/bin/python -m pip --version >/dev/null 2>&1 || .venv/bin/python -m ensurepip --upgrade >/dev/null
    .venv/bin/python -m pip install --quiet --disable-pip-version-check uv
fi
VIRTUAL_ENV="$PWD/.venv" .venv/bin/uv pip install --quiet -e ".[test]"
