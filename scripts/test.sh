#!/usr/bin/env bash
# The test command: sets everything up on a fresh machine, then runs the whole suite.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/hooks -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/services.sh
exec .venv/bin/python -m pytest "$@"
