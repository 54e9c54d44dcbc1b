#!/usr/bin/env bash
# Scale-out run of the fan-out example DAG on Airflow's CeleryExecutor: Redis broker, PostgreSQL
# metadata DB and ledger, two Celery workers; checks that every recipient got exactly one message.
# Usage: bash scripts/celery_scale_out.sh [--customers 20000] [--shards 8] [--workers 2] [--concurrency 2]
# Needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/services.sh
# The Celery executor is not a dependency of the provider: install it for this run only, pinned to
# the Airflow already installed so that nothing else moves.
airflow_version=$(.venv/bin/python -c 'from importlib.metadata import version; print(version("apache-airflow"))')
UV=.venv/bin/uv
[ -x "$UV" ] || UV=$(command -v uv)
VIRTUAL_ENV="$PWD/.venv" "$UV" pip install --quiet apache-airflow-providers-celery redis "apache-airflow==$airflow_version"
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "Redis does not answer on 127.0.0.1:6379 (start it: redis-server --bind 127.0.0.1 --daemonize yes)" >&2
    exit 1
fi
exec .venv/bin/python scripts/celery_scale_out.py "$@"
