#!/usr/bin/env bash
# The demo: on a fresh machine, installs the project, starts the sandbox gateway, seeds a small
# SQLite warehouse, runs every example DAG with `airflow dags test` and prints what happened.
# Everything it makes is in .demo/ (kept for you to look at); everything it starts, it stops.
# Options go to scripts/run_example_dags.py (e.g. --customers 1000).
set -euo pipefail
cd "$(dirname "$0")"
echo "==> Installing the project into .venv (scripts/bootstrap.sh; the first time takes a few minutes)"
bash scripts/bootstrap.sh
echo "==> Running the example DAGs against the sandbox gateway (about 3-4 minutes)"
exec .venv/bin/python scripts/run_example_dags.py --workdir .demo --demo "$@"
