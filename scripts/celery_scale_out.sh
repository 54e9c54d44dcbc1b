#!/usr/bin/env bash
# Scale-out run of the fan-out example DAG on Airflow's CeleryExecutor: Redis broker, PostgreSQL
# metadata DB and ledger, two Celery workers; checks that every recipient got exactly one message.
# Usage: bash scripts/celery_scale_out.sh [--customers 20000] [--shards 8] [--workers 2] [--concurrency 2]
#        [--timeout 900] [--workdir .demo/celery]
# CI (.ci/run) runs a small version: --customers 300 --shards 4 --workers 2 --concurrency 2.
# Needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres): starts
# PostgreSQL (scripts/services.sh) and, if redis-server is installed but not answering, a Redis bound
# to 127.0.0.1 (stopped again at the end); fails saying which one is missing otherwise.
# Leaves nothing running: the Python script stops what it started (also on SIGTERM/SIGINT), and this
# script stops whatever process group it reported that is still there (e.g. if Python was killed).
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

state=$(mktemp -d "${TMPDIR:-/tmp}/sms-scale-out.XXXXXX")
export SMS_SCALE_OUT_PIDFILE="$state/pids"
: >"$SMS_SCALE_OUT_PIDFILE"
python_pid=""
redis_pid=""
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM HUP
    if [ -n "$python_pid" ] && kill -0 "$python_pid" 2>/dev/null; then
        kill -TERM "$python_pid" 2>/dev/null || true # it stops its processes itself (up to ~45 s)
        for _ in $(seq 1 60); do kill -0 "$python_pid" 2>/dev/null || break; sleep 1; done
        kill -KILL "$python_pid" 2>/dev/null || true
    fi
    # Whatever it reported and is still there: a process group (Airflow) or a single process (sandbox).
    while read -r pid; do
        [ -n "$pid" ] || continue
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    done <"$SMS_SCALE_OUT_PIDFILE"
    if [ -n "$redis_pid" ]; then
        kill -TERM "$redis_pid" 2>/dev/null || true
        echo "  stopped the Redis server this script started (pid $redis_pid)"
    fi
    rm -rf "$state"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' INT TERM HUP

redis_up() {
    .venv/bin/python -c 'import redis; redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()' \
        >/dev/null 2>&1
}
if ! redis_up; then
    if ! command -v redis-server >/dev/null; then
        echo "FAILED: Redis does not answer on 127.0.0.1:6379 and redis-server is not installed" \
            "(apt-get install redis-server)" >&2
        exit 1
    fi
    echo "  Redis does not answer on 127.0.0.1:6379: starting redis-server bound to 127.0.0.1"
    redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save "" --appendonly no \
        --dir "$state" --pidfile "$state/redis.pid" --logfile "$state/redis.log"
    for _ in $(seq 1 20); do redis_up && break; sleep 0.5; done
    redis_pid=$(cat "$state/redis.pid" 2>/dev/null || true)
    if ! redis_up; then
        echo "FAILED: redis-server did not come up on 127.0.0.1:6379:" >&2
        tail -n 20 "$state/redis.log" >&2 || true
        exit 1
    fi
fi
if ! .venv/bin/python -c '
import sys, psycopg2
try:
    psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=5).close()
except psycopg2.Error as exc:
    sys.exit(f"FAILED: PostgreSQL does not answer on 127.0.0.1:5432 as user postgres (trust auth): {exc}")
'; then
    echo "(scripts/services.sh starts an installed Debian/Ubuntu PostgreSQL cluster; CI machines have one)" >&2
    exit 1
fi

.venv/bin/python scripts/celery_scale_out.py "$@" &
python_pid=$!
rc=0
wait "$python_pid" || rc=$? # a signal runs the traps instead: cleanup() waits for Python's clean-up
python_pid=""
exit "$rc"
