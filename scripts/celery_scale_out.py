#!/usr/bin/env python
"""Run ``sms_fanout_campaign`` on Airflow's CeleryExecutor with two Celery workers, then check that
every recipient received exactly one message.

    bash scripts/celery_scale_out.sh [--customers 20000] [--shards 8]

(the shell script installs the Celery provider and makes sure Redis and PostgreSQL answer, then runs
this file). Everything runs on this machine and is stopped at the end:

- PostgreSQL (127.0.0.1:5432, user postgres): two fresh databases, one the Airflow metadata DB and
  Celery result backend, one the warehouse (customers, opt-outs, message ledger, report table); both
  dropped at the end.
- Redis (127.0.0.1:6379): the Celery broker, on an empty database index that is flushed at the end.
- The sandbox gateway (a subprocess), ``airflow api-server`` (the workers' tasks talk to its
  Execution API), ``airflow scheduler``, ``airflow dag-processor``, ``airflow triggerer`` (for the
  deferrable delivery sensor) and ``airflow celery worker`` x2 (``--concurrency`` each), each
  reporting its own hostname (``worker1``, ``worker2``), so the task instances show who ran what.

The run is triggered with ``airflow dags trigger`` and followed in the metadata DB until it ends.
Checks: the run succeeded; every shard ran (and on which worker); the ledger holds every input row in
its expected state; at the sandbox, every expected recipient has exactly one message and nobody else
has one; the report table holds the expected final statuses. A summary is printed and written to
``<workdir>/result.json``; the exit code is 0 only if every check passed. On a failure it prints why
and the end of each process's log.

Every port is bound to 127.0.0.1 (the API server and the sandbox on free ports; the log servers of
the scheduler, triggerer and workers are not started). Everything started is stopped on success, on
failure and on SIGTERM/SIGINT/SIGHUP; if ``SMS_SCALE_OUT_PIDFILE`` is set, the process group of each
long-running process (and the sandbox's pid) is appended to that file, so that the calling shell
script can stop what is left even if this process is killed outright.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack, closing, suppress
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from airflow_provider_sms.sandbox.testing import start_sandbox_process  # noqa: E402
from scripts.run_example_dags import _e164, airflow_env, connections  # noqa: E402
from scripts.seed_warehouse import expected, generate  # noqa: E402

DAG_ID = "sms_fanout_campaign"
GATEWAY = "textboost"
BODY_MARK = "stores open"  # a phrase of the fan-out DAG's message
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
STOP_TIMEOUT = 30.0
LOG_TAIL_LINES = 40


class Interrupted(BaseException):
    """A termination signal arrived: unwind (and so stop everything) like on any failure."""


def _on_signal(signum: int, _frame: Any) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # once: let the clean-up finish
    raise Interrupted(f"interrupted by {signal.Signals(signum).name}")


def _record_pid(pid: int) -> None:
    """Tell the calling shell script (``SMS_SCALE_OUT_PIDFILE``) about a process group to stop."""
    path = os.environ.get("SMS_SCALE_OUT_PIDFILE")
    if path:
        with open(path, "a") as out:
            out.write(f"{pid}\n")


def worker_hostname() -> str:
    """``[core] hostname_callable`` of this run: each Celery worker (and the task processes it starts)
    reports the name it was given, so the task instances tell which worker ran them."""
    return os.environ.get("SMS_CELERY_WORKER_NAME") or socket.getfqdn()


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pg_admin():
    import psycopg2

    conn = psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
    conn.autocommit = True
    return conn


def pg_query(dbname: str, sql: str, params: tuple = ()) -> list[tuple]:
    import psycopg2

    with closing(psycopg2.connect(dbname=dbname, connect_timeout=5, **PG)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def empty_redis_db() -> int:
    """An empty Redis database index (15 down to 1): the broker's queues never mix with anyone's."""
    import redis

    for index in range(15, 0, -1):
        if redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=index).dbsize() == 0:
            return index
    raise RuntimeError("no empty Redis database index (1-15) to use as the broker")


class Processes:
    """The long-running processes of the run, each in its own process group, stopped in reverse."""

    def __init__(self, logs: Path, env: dict[str, str], echo: Callable[[str], None]) -> None:
        self.logs, self.env, self.echo = logs, env, echo
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "w")  # noqa: SIM115  (closed with the process)
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,  # its own group: stopping it stops its children (pool, task processes)
        )
        log.close()
        self.started.append((name, process))
        _record_pid(process.pid)
        self.echo(f"  started airflow {' '.join(args)} (pid {process.pid})")
        return process

    def check_alive(self) -> None:
        for name, process in self.started:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}: see {self.logs / name}.log")

    def stop(self) -> None:
        for _name, process in reversed(self.started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, process in reversed(self.started):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.echo(f"  {name} did not stop in {STOP_TIMEOUT:.0f} s; killing it")
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            # Whatever the group left behind (a task process mid-way) goes too.
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        self.echo(f"  stopped {len(self.started)} Airflow processes")


def wait_for(what: str, condition: Callable[[], Any], timeout: float, procs: Processes, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while True:
        procs.check_alive()
        try:
            value = condition()
        except Exception:  # not up yet
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def airflow_cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, cwd=REPO, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"airflow {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.stdout


def run(args: argparse.Namespace, echo: Callable[[str], None] = print) -> dict[str, Any]:
    workdir: Path = args.workdir.resolve()
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    suffix = secrets.token_hex(4)
    meta_db, warehouse_db = f"sms_celery_meta_{suffix}", f"sms_celery_warehouse_{suffix}"
    result: dict[str, Any] = {"customers": args.customers, "shards": args.shards, "workers": args.workers}
    with ExitStack() as stack:
        # -- PostgreSQL and Redis ------------------------------------------------------------------
        admin = pg_admin()  # fails here, saying why, if PostgreSQL does not answer
        stack.callback(_drop_databases, meta_db, warehouse_db, echo)
        with closing(admin), admin.cursor() as cur:
            for name in (meta_db, warehouse_db):
                cur.execute(f'CREATE DATABASE "{name}"')
        echo(f"  created PostgreSQL databases {meta_db} (metadata) and {warehouse_db} (warehouse)")
        redis_db = empty_redis_db()
        stack.callback(_flush_redis, redis_db, echo)
        echo(f"  Celery broker: redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}")

        # -- the sandbox gateway ---------------------------------------------------------------------
        sandbox = start_sandbox_process(0, host="127.0.0.1", delivery_seconds=2.0)
        stack.callback(sandbox.stop)
        _record_pid(sandbox.process.pid)
        echo(f"  sandbox gateway on {sandbox.url}/")

        # -- Airflow -----------------------------------------------------------------------------
        api_port = free_port()
        pg_url = f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}"
        warehouse = {
            "conn_type": "postgres",
            "host": PG["host"],
            "port": PG["port"],
            "login": PG["user"],
            "schema": warehouse_db,
        }
        env = airflow_env(
            workdir / "airflow",
            connections(sandbox.url, warehouse),
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{pg_url}/{meta_db}",
                "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{meta_db}",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(api_port),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),  # shared by every component
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "scripts.celery_scale_out.worker_hostname",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # only the fan-out is unpaused
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            },
        )
        (workdir / "airflow").mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        echo("  airflow db migrate (PostgreSQL) ...")
        airflow_cli(env, "db", "migrate")
        echo(f"  seeding the warehouse with {args.customers} customers ...")
        subprocess.run(
            [sys.executable, str(REPO / "scripts" / "seed_warehouse.py"), "--customers", str(args.customers)],
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        procs = Processes(logs, env, echo)
        stack.callback(procs.stop)
        procs.start(
            "api-server", ["api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"]
        )
        # No log servers: they would listen on every interface (and on fixed ports).
        procs.start("scheduler", ["scheduler", "--skip-serve-logs"])
        procs.start("dag-processor", ["dag-processor"])
        procs.start("triggerer", ["triggerer", "--skip-serve-logs"])
        for index in range(1, args.workers + 1):
            name = f"worker{index}"
            procs.start(
                name,
                [
                    "celery",
                    "worker",
                    "-H",
                    f"{name}@%h",
                    "--concurrency",
                    str(args.concurrency),
                    "--skip-serve-logs",
                ],
                env={"SMS_CELERY_WORKER_NAME": name},
            )

        import requests

        wait_for(
            "the API server",
            lambda: requests.get(f"http://127.0.0.1:{api_port}/api/v2/monitor/health", timeout=5).ok,
            300,
            procs,
        )
        wait_for(
            f"the dag processor to register {DAG_ID}",
            lambda: pg_query(meta_db, "SELECT 1 FROM dag WHERE dag_id = %s", (DAG_ID,)),
            300,
            procs,
        )
        for index in range(1, args.workers + 1):
            wait_for(
                f"worker{index}",
                lambda i=index: "ready" in (logs / f"worker{i}.log").read_text(errors="replace"),
                300,
                procs,
            )
        result["startup_seconds"] = round(time.monotonic() - started, 1)
        echo(f"  everything is up after {result['startup_seconds']:.0f} s")

        # -- the run ---------------------------------------------------------------------------------
        run_id = f"celery_scale_out_{suffix}"
        airflow_cli(env, "dags", "unpause", DAG_ID)
        airflow_cli(
            env, "dags", "trigger", DAG_ID, "--run-id", run_id, "--conf", json.dumps({"shards": args.shards})
        )
        triggered = time.monotonic()
        echo(f"  triggered {DAG_ID} run {run_id} with {args.shards} shards; waiting for it to end ...")

        def run_state() -> str | None:
            rows = pg_query(
                meta_db, "SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", (DAG_ID, run_id)
            )
            state = rows[0][0] if rows else None
            return state if state in ("success", "failed") else None

        state = wait_for(f"run {run_id}", run_state, args.timeout, procs, every=2.0)
        result["run_state"] = state
        result["run_seconds"] = round(time.monotonic() - triggered, 1)
        echo(f"  run {run_id}: {state} after {result['run_seconds']:.0f} s")

        # -- checks ----------------------------------------------------------------------------------
        result.update(_verify(args, meta_db, warehouse_db, run_id, sandbox.messages(GATEWAY)))
    result["checks_passed"] = all(ok for _, ok, _ in result["checks"])
    (workdir / "result.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def _verify(
    args, meta_db: str, warehouse_db: str, run_id: str, messages: list[dict[str, Any]]
) -> dict[str, Any]:
    exp = expected(generate(args.customers))
    checks: list[tuple[str, bool, str]] = []
    tis = pg_query(
        meta_db,
        "SELECT task_id, map_index, state, hostname, EXTRACT(EPOCH FROM start_date), "
        "EXTRACT(EPOCH FROM end_date), try_number FROM task_instance WHERE dag_id = %s AND run_id = %s "
        "ORDER BY task_id, map_index",
        (DAG_ID, run_id),
    )
    shards = [t for t in tis if t[0] == "send_shard"]
    by_worker = Counter(t[3] for t in shards)
    checks.append(
        (
            "the run succeeded and every task instance succeeded",
            all(t[2] == "success" for t in tis) and len(shards) == args.shards,
            f"{len(tis)} task instances; not successful: "
            + (", ".join(f"{t[0]}[{t[1]}] {t[2]}" for t in tis if t[2] != "success") or "none"),
        )
    )
    checks.append(
        (
            f"the {args.shards} shards ran on {args.workers} workers",
            len(by_worker) == args.workers and all(name.startswith("worker") for name in by_worker),
            "shards per worker: " + ", ".join(f"{k} {v}" for k, v in sorted(by_worker.items())),
        )
    )
    key = f"{DAG_ID}.{run_id}"
    states = Counter(
        dict(
            pg_query(
                warehouse_db,
                "SELECT state, COUNT(*) FROM sms_messages WHERE campaign_key = %s GROUP BY state",
                (key,),
            )
        )
    )
    want = Counter({"accepted": exp.accepted, "rejected": exp.rejected, "suppressed": exp.suppressed})
    checks.append(
        (
            "the ledger holds every input row in its final state",
            states == want,
            f"{dict(states)} (expected {dict(want)})",
        )
    )
    # The shards' own counts, added up by check_shards (its XCom): they must match the input.
    rows = pg_query(
        meta_db,
        "SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = 'check_shards' "
        "AND key = 'return_value'",
        (DAG_ID, run_id),
    )
    totals = rows[0][0] if rows else None
    totals = json.loads(totals) if isinstance(totals, str) else totals
    want_totals = {
        "input": exp.input,
        "accepted": exp.accepted,
        "rejected": exp.rejected,
        "suppressed": exp.suppressed,
        "duplicates": exp.duplicates,
        "ambiguous": 0,
    }
    got_totals = {k: totals.get(k) for k in want_totals} if isinstance(totals, dict) else totals
    checks.append(
        (
            "the shards' counts add up to the input",
            got_totals == want_totals,
            f"check_shards returned {got_totals} (expected {want_totals})",
        )
    )
    mine = [m for m in messages if BODY_MARK in m["body"]]
    got = Counter(_e164(m["recipient"]) for m in mine)
    twice = sum(1 for n in got.values() if n > 1) + sum(1 for m in mine if m["count"] > 1)
    checks.append(
        (
            "every recipient received exactly one message",
            set(got) == exp.recipients and twice == 0,
            f"{len(mine)} messages to {len(got)} recipients; {len(exp.recipients)} expected, "
            f"{len(exp.recipients - set(got))} missing, {len(set(got) - exp.recipients)} unexpected, {twice} duplicates",
        )
    )
    report = Counter(
        dict(
            pg_query(
                warehouse_db,
                "SELECT r.status, COUNT(*) FROM sms_delivery_report r JOIN sms_messages l ON l.gateway = r.gateway "
                "AND l.message_id = r.message_id WHERE l.campaign_key = %s GROUP BY r.status",
                (key,),
            )
        )
    )
    checks.append(
        (
            "the report table holds every final status",
            report == exp.outcomes,
            f"{dict(report)} (expected {dict(exp.outcomes)})",
        )
    )
    starts = [t[4] for t in shards if t[4] is not None]
    ends = [t[5] for t in shards if t[5] is not None]
    send_seconds = float(max(ends) - min(starts)) if starts and ends else None
    timings = {
        t[0] if t[1] < 0 else f"{t[0]}[{t[1]}]": round(float(t[5] - t[4]), 1) for t in tis if t[4] and t[5]
    }
    return {
        "checks": checks,
        "messages": len(mine),
        "recipients": len(got),
        "shards_per_worker": dict(by_worker),
        "send_phase_seconds": round(send_seconds, 1) if send_seconds else None,
        "messages_per_second": round(len(mine) / send_seconds) if send_seconds else None,
        "task_seconds": timings,
        "tries": {f"{t[0]}[{t[1]}]": t[6] for t in tis if t[6] and t[6] > 1},
    }


def _drop_databases(*args: Any) -> None:
    *names, echo = args
    with closing(pg_admin()) as admin, admin.cursor() as cur:
        for name in names:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    echo(f"  dropped PostgreSQL databases {', '.join(names)}")


def _flush_redis(index: int, echo: Callable[[str], None]) -> None:
    import redis

    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=index).flushdb()
    echo(f"  flushed Redis database {index}")


def _print_log_tails(logs: Path) -> None:
    """The end of every process's log, so that a failure in CI says why without the files."""
    for log in sorted(logs.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        print(f"\n----- last {len(lines)} lines of {log} -----", file=sys.stderr)
        print("\n".join(lines), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2, help="task slots per Celery worker")
    parser.add_argument("--timeout", type=float, default=900, help="seconds the run may take")
    parser.add_argument(
        "--workdir", type=Path, default=REPO / ".demo" / "celery", help="logs and result.json"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)

    def echo(line: str) -> None:
        print(f"[{time.monotonic() - started:4.0f} s]{line}", flush=True)

    print(
        f"Scale-out run: {DAG_ID} on CeleryExecutor, {args.workers} workers x {args.concurrency} slots, "
        f"{args.shards} shards, {args.customers} customers",
        flush=True,
    )
    try:
        result = run(args, echo)
    except (Exception, Interrupted) as exc:
        sys.stdout.flush()
        _print_log_tails(args.workdir / "logs")
        print(f"\nFAILED: {exc}", file=sys.stderr)
        print(f"Logs: {args.workdir / 'logs'}", file=sys.stderr)
        return 1
    print()
    for name, ok, detail in result["checks"]:
        print(f"  {'ok    ' if ok else 'FAILED'} {name}: {detail}")
    passed = result["checks_passed"] and result["run_state"] == "success"
    if not passed:
        sys.stdout.flush()
        _print_log_tails(args.workdir / "logs")
        failed = [name for name, ok, _ in result["checks"] if not ok]
        print(
            f"\nFAILED: run {result['run_state']}; failed checks: {', '.join(failed) or 'none'}",
            file=sys.stderr,
        )
        print(f"Logs: {args.workdir / 'logs'}", file=sys.stderr)
        return 1
    print(
        f"\n{result['messages']} messages to {result['recipients']} recipients, each exactly once; "
        f"send phase {result['send_phase_seconds']} s ({result['messages_per_second']} messages/s over "
        f"{args.shards} shards); run {result['run_seconds']} s from trigger to success; "
        f"start-up {result['startup_seconds']} s; total {time.monotonic() - started:.0f} s"
    )
    print(f"Shards per worker: {result['shards_per_worker']}; result: {args.workdir / 'result.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
