"""What every benchmark shares: the sandbox subprocess, Airflow connections, ledger databases,
audiences of distinct phone numbers, timing, peak memory and the printed tables."""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

GATEWAYS = ("smstools", "smsgateway24", "textboost")
LEDGERS = ("sqlite", "postgres")

# The sandbox's default accounts (airflow_provider_sms/sandbox/config.py), as the tests use them.
CREDENTIALS: dict[str, dict[str, Any]] = {
    "smstools": {"login": "sandbox-client-id", "password": "sandbox-client-secret-0123456789"},
    "smsgateway24": {
        "login": "sandbox@example.com",
        "password": "sandbox-password-0123",
        "extra": {"device_id": 1001, "sim": 0},
    },
    "textboost": {"password": "sandbox-textboost-token-0123456789"},
}
SENDER = "Shop"
# One text for the whole audience, rendered per row through the template all the same: Smstools and
# TextBoost can put many recipients in one request only when they share the text.
CAMPAIGN_TEMPLATE = "Spring sale: 20% off in our {{ city }} store until Sunday. Reply STOP to opt out."
CAMPAIGN_TEXT = "Spring sale: 20% off in our Berlin store until Sunday. Reply STOP to opt out."

PG_HOST = os.environ.get("SMS_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SMS_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("SMS_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("SMS_TEST_PG_DB", "test")


def quiet_airflow() -> None:
    """Configure this process like the tests do (connections from env vars, no metadata DB) and
    silence the per-request deprecation warnings that would otherwise flood the output."""
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


# ------------------------------------------------------------------------------------------------ numbers
class NumberPool:
    """Hands out distinct, valid Dutch mobile numbers (+316 and 8 digits), never the same twice in a
    run, so that every phase meets numbers the sandbox has not validated (and cached) before.
    Only +3161... to +3166... are valid mobile ranges: 60 million numbers."""

    def __init__(self, start: int = 10_000_000) -> None:
        self.next = start

    def take(self, count: int) -> range:
        if self.next + count > 70_000_000:
            raise RuntimeError("the benchmark ran out of distinct phone numbers")
        block = range(self.next, self.next + count)
        self.next += count
        return block


def e164(block: range) -> list[str]:
    return [f"+316{n}" for n in block]


def audience_frame(block: range):
    """A DataFrame audience: ``phone`` (E.164), ``first_name``, ``city``."""
    import pandas as pd

    names = ("Ana", "Ben", "Chloé", "Dmitri", "Eve")
    return pd.DataFrame(
        {
            "phone": e164(block),
            "first_name": [names[i % len(names)] for i in range(len(block))],
            "city": "Berlin",
        }
    )


# ------------------------------------------------------------------------------------------------ Airflow
def task_context(run_id: str = "bench__1", dag_id: str = "benchmarks", task_id: str = "send") -> dict:
    """The minimal context the operators need when called without a metadata database."""
    import pendulum

    return {
        "ti": SimpleNamespace(dag_id=dag_id, task_id=task_id, try_number=1, map_index=-1),
        "logical_date": pendulum.now("UTC"),
        "run_id": run_id,
        "ds": pendulum.now("UTC").to_date_string(),
        "params": {},
    }


def set_gateway_connections(sandbox_url: str, prefix: str = "bench") -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables for the three gateways against the sandbox; returns their ids."""
    ids = {}
    for gateway, credentials in CREDENTIALS.items():
        conn_id = f"{prefix}_{gateway}"
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
            {"conn_type": gateway, "host": sandbox_url, **credentials}
        )
        ids[gateway] = conn_id
    return ids


def _pg_admin():
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_ADMIN_DB, connect_timeout=3)
    conn.autocommit = True
    return conn


def postgres_unavailable() -> str | None:
    """None when the PostgreSQL server answers, else why not."""
    try:
        _pg_admin().close()
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT} as {PG_USER}: {exc}"
    return None


@contextmanager
def sql_connection(kind: str, workdir: Path, name: str) -> Iterator[str]:
    """A fresh SQL database as an Airflow connection id: a new SQLite file or a new PostgreSQL
    database (dropped afterwards)."""
    conn_id = f"bench_{name}_{kind}"
    variable = f"AIRFLOW_CONN_{conn_id.upper()}"
    if kind == "sqlite":
        path = workdir / f"{name}.db"
        path.unlink(missing_ok=True)
        os.environ[variable] = json.dumps({"conn_type": "sqlite", "host": str(path)})
        try:
            yield conn_id
        finally:
            path.unlink(missing_ok=True)
        return
    if kind != "postgres":
        raise ValueError(f"unknown database kind {kind!r}")
    database = f"sms_bench_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{database}"')
    os.environ[variable] = json.dumps(
        {"conn_type": "postgres", "host": PG_HOST, "port": PG_PORT, "login": PG_USER, "schema": database}
    )
    try:
        yield conn_id
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


@contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="sms-bench-") as path:
        yield Path(path)


# ------------------------------------------------------------------------------------------------ measuring
@dataclass
class Timer:
    """Wall time, and the CPU time this process (all its threads) and, with ``server_pid``, the
    server process spent meanwhile: where a run's wall time cannot be explained by waiting."""

    server_pid: int | None = None
    seconds: float = 0.0
    cpu: float = 0.0
    server_cpu: float | None = None

    @contextmanager
    def __call__(self) -> Iterator[Timer]:
        started, cpu = time.perf_counter(), time.process_time()
        server = process_cpu_seconds(self.server_pid)
        try:
            yield self
        finally:
            self.seconds = time.perf_counter() - started
            self.cpu = time.process_time() - cpu
            after = process_cpu_seconds(self.server_pid)
            self.server_cpu = None if server is None or after is None else after - server


def timed(spent: dict[str, float], bucket: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, adding the wall time of every call to ``spent[bucket]`` (calls may overlap)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[bucket] += time.perf_counter() - started

    return wrapper


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def own_peak_rss_mb() -> float:
    """This process's own peak RSS: the high-water mark of its address space (``VmHWM``, Linux).

    Unlike ``ru_maxrss`` it does not include the parent's peak: Linux carries the old address
    space's peak across ``execve``, so a child's ``ru_maxrss`` is at least its parent's peak at spawn
    time. Where ``/proc`` is missing it falls back to ``ru_maxrss``.
    """
    try:
        found = re.search(r"^VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        found = None
    return int(found.group(1)) / 1024 if found else peak_rss_mb()


def current_rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        memory = f"{psutil.virtual_memory().total / 2**30:.1f} GiB"
    except ImportError:  # pragma: no cover
        memory = "unknown"
    versions = {}
    for module in ("airflow", "pandas", "requests", "phonenumbers", "jinja2", "uvicorn", "psycopg2"):
        try:
            versions[module] = __import__(module).__version__.split()[0]
        except Exception:
            versions[module] = "?"
    postgres = "absent"
    try:
        admin = _pg_admin()
        with admin.cursor() as cur:
            cur.execute("SHOW server_version")
            postgres = cur.fetchone()[0]
        admin.close()
    except Exception:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "postgres": postgres,
        "load average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "commit": commit or "?",
        **versions,
    }


# ------------------------------------------------------------------------------------------------ tables
@dataclass
class Table:
    """A result table, printed as aligned text and rendered as Markdown for RESULTS.md."""

    title: str
    headers: Sequence[str]
    rows: list[Sequence[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append([_cell(c) for c in cells])

    def text(self) -> str:
        widths = [len(h) for h in self.headers]
        for row in self.rows:
            widths = [max(w, len(str(c))) for w, c in zip(widths, row, strict=False)]
        line = "  ".join(f"{h:<{w}}" for h, w in zip(self.headers, widths, strict=True))
        out = [self.title, "=" * len(self.title), line, "-" * len(line)]
        for row in self.rows:
            out.append(
                "  ".join(
                    f"{c!s:<{w}}" if i == 0 else f"{c!s:>{w}}"
                    for i, (c, w) in enumerate(zip(row, widths, strict=False))
                )
            )
        out += [f"  * {note}" for note in self.notes]
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"### {self.title}", "", "| " + " | ".join(self.headers) + " |"]
        out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.headers))) + "|")
        out += ["| " + " | ".join(str(c) for c in row) + " |" for row in self.rows]
        if self.notes:
            out += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(out)

    def as_dict(self) -> dict[str, Any]:
        return {"title": self.title, "headers": list(self.headers), "rows": self.rows, "notes": self.notes}


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return value


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def log(message: str) -> None:
    """Progress lines go to stderr, so that stdout holds only the tables."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def connection_config(conn_id: str) -> dict[str, Any]:
    """The fields of Airflow connection ``conn_id``, from the ``AIRFLOW_CONN_*`` variable the
    benchmarks set (``conn_type``, ``host``, ``schema``, ...)."""
    return json.loads(os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"])


def pg_connect(conn_id: str):
    """A psycopg2 connection to the PostgreSQL database of Airflow connection ``conn_id``."""
    import psycopg2

    config = connection_config(conn_id)
    return psycopg2.connect(
        host=config["host"], port=config["port"], user=config["login"], dbname=config["schema"]
    )


class BackendCpu:
    """CPU seconds of the PostgreSQL backends connected to one database, sampled in a thread."""

    def __init__(self, conn_id: str, database: str) -> None:
        self.conn_id, self.database = conn_id, database
        self.seen: dict[int, float] = {}  # backend pid -> CPU seconds at its last sighting
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, name="pg-cpu", daemon=True)

    def _sample(self) -> None:
        db = pg_connect(self.conn_id)  # its own backend is counted too: a query every 0.2 s
        db.autocommit = True
        try:
            with db.cursor() as cur:
                while not self.stop.is_set():
                    cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [self.database])
                    for (pid,) in cur.fetchall():
                        cpu = process_cpu_seconds(pid)
                        if cpu is not None:
                            self.seen[pid] = max(cpu, self.seen.get(pid, 0.0))
                    self.stop.wait(0.2)
        finally:
            db.close()

    def total(self) -> float:
        return sum(self.seen.values())

    def __enter__(self) -> BackendCpu:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join()
