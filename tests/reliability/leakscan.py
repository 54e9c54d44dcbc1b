"""Secret leak scan: run DAGs with distinctive secrets in their connections, then look for those
secrets everywhere Airflow keeps what a task did.

Reusable on any DAGs folder (``example_dags/`` too): :func:`distinctive_secrets` makes the secrets,
:func:`sandbox_credentials` starts a sandbox that accepts them, :func:`gateway_connections` writes the
connections, :func:`airflow_dags_test` runs ``airflow db migrate`` and ``airflow dags test`` in a fresh
``AIRFLOW_HOME`` and :class:`LeakScanner` searches files, directories, SQLite databases (the metadata
DB's XCom and rendered-fields tables, the warehouse) and exception texts for each secret in every
form it could take on the way out: as is, URL-encoded, JSON-escaped, base64 (also as the
``user:password`` of Basic auth) and its distinctive core alone (so a truncated or re-quoted copy is
caught as well).

    python -m tests.reliability.leakscan PATH...   # scan existing paths for the secrets in
                                                   # SMS_LEAKSCAN_SECRETS (comma-separated)
"""

from __future__ import annotations

import base64
import json
import os
import secrets as random_secrets
import sqlite3
import subprocess
import sys
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

CANARY = "LeakCanary"
# Tables of the Airflow metadata DB that hold what tasks produced or showed.
METADATA_TABLES = (
    "xcom",
    "rendered_task_instance_fields",
    "task_instance",
    "dag_run",
    "log",
    "task_instance_history",
)


def distinctive_secrets() -> dict[str, str]:
    """One secret per credential, each unlike anything else in a log: ``LeakCanary<What><hex>``."""

    def make(what: str) -> str:
        return f"{CANARY}{what}{random_secrets.token_hex(8)}"

    return {
        "smstools_client_secret": make("SmstoolsSecret"),
        "smsgateway24_password": make("Gw24Password"),
        "textboost_token": make("TextboostToken"),
        "wrong_smstools_client_secret": make("WrongSmstools"),
        "wrong_smsgateway24_password": make("WrongGw24"),
        "wrong_textboost_token": make("WrongTextboost"),
    }


def sandbox_credentials(secrets: Mapping[str, str]) -> dict[str, str]:
    """``run_sandbox`` / ``start_sandbox_process`` options that make the sandbox accept ``secrets``."""
    return {
        "smstools_client_secret": secrets["smstools_client_secret"],
        "smsgateway24_password": secrets["smsgateway24_password"],
        "textboost_token": secrets["textboost_token"],
    }


def gateway_connections(url: str, secrets: Mapping[str, str], prefix: str = "leak") -> dict[str, dict]:
    """Connections to the sandbox: ``<prefix>_<gateway>`` with the right secrets and
    ``<prefix>_wrong_<gateway>`` with wrong (but just as distinctive) ones."""
    conns: dict[str, dict] = {}
    for label, key in (("", ""), ("wrong_", "wrong_")):
        conns[f"{prefix}_{label}smstools"] = {
            "conn_type": "smstools",
            "host": url,
            "login": "sandbox-client-id",
            "password": secrets[f"{key}smstools_client_secret"],
            "extra": {"sender_id": "Shop", "max_attempts": 1},
        }
        conns[f"{prefix}_{label}smsgateway24"] = {
            "conn_type": "smsgateway24",
            "host": url,
            "login": "sandbox@example.com",
            "password": secrets[f"{key}smsgateway24_password"],
            "extra": {"device_id": 1001, "sim": 0, "max_attempts": 1},
        }
        conns[f"{prefix}_{label}textboost"] = {
            "conn_type": "textboost",
            "host": url,
            "password": secrets[f"{key}textboost_token"],
            "extra": {"sender_id": "Shop", "max_attempts": 1},
        }
    return conns


def airflow_env(airflow_home: Path, dags_folder: Path, connections: Mapping[str, dict]) -> dict[str, str]:
    """A clean environment for the Airflow CLI: no AIRFLOW* variable of ours, a SQLite metadata DB."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    for conn_id, conn in connections.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    return env


@dataclass
class CommandRun:
    command: list[str]
    returncode: int
    output: Path
    seconds: float


def airflow_dags_test(
    airflow_home: Path, env: Mapping[str, str], dag_ids: Sequence[str], timeout: float = 600
) -> list[CommandRun]:
    """``airflow db migrate`` then ``airflow dags test <dag_id>`` for each DAG; each command's output
    is kept in ``<airflow_home>/cli-output/`` (which the scan covers)."""
    out_dir = airflow_home / "cli-output"
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    commands = [("db-migrate", ["db", "migrate"])] + [
        (f"dags-test-{d}", ["dags", "test", d]) for d in dag_ids
    ]
    for name, args in commands:
        command = [sys.executable, "-m", "airflow", *args]
        path = out_dir / f"{name}.log"
        started = time.monotonic()
        with path.open("w") as out:
            code = subprocess.call(
                command, env=dict(env), stdout=out, stderr=subprocess.STDOUT, timeout=timeout
            )
        runs.append(CommandRun(command, code, path, time.monotonic() - started))
        if name == "db-migrate" and code != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{path.read_text()[-3000:]}")
    return runs


@dataclass(frozen=True)
class Finding:
    secret: str  # the name of the secret, never its value
    form: str
    where: str


class LeakScanner:
    """Searches for every form of each secret; findings name the secret and the place, not the value."""

    def __init__(self, secrets: Mapping[str, str], basic_auth_users: Iterable[str] = ()) -> None:
        self.patterns: list[tuple[str, str, bytes]] = []
        for name, value in secrets.items():
            forms = {
                "as is": value,
                "URL-encoded": quote(value, safe=""),
                "form-encoded": quote_plus(value),
                "JSON-escaped": json.dumps(value)[1:-1],
                "base64": base64.b64encode(value.encode()).decode(),
                "core": value.removeprefix(CANARY)[-16:],  # the random part alone
            }
            for user in basic_auth_users:
                forms[f"basic auth of {user}"] = base64.b64encode(f"{user}:{value}".encode()).decode()
            for form, text in dict.fromkeys(forms.items()):
                self.patterns.append((name, form, text.encode()))
        self.findings: list[Finding] = []

    def scan_bytes(self, data: bytes, where: str) -> None:
        for name, form, pattern in self.patterns:
            if pattern in data:
                self.findings.append(Finding(name, form, where))

    def scan_text(self, text: str, where: str) -> None:
        self.scan_bytes(text.encode("utf-8", "replace"), where)

    def scan_exception(self, exc: BaseException, where: str) -> None:
        """The exception's text, repr, arguments and formatted traceback (causes included)."""
        self.scan_text(str(exc), f"{where}: str()")
        self.scan_text(repr(exc), f"{where}: repr()")
        self.scan_text("".join(traceback.format_exception(exc)), f"{where}: traceback")
        self.scan_text(repr(getattr(exc, "__dict__", {})), f"{where}: attributes")

    def scan_path(self, path: Path) -> int:
        """Every file under ``path`` (or ``path`` itself), raw bytes; returns how many files were read."""
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            try:
                self.scan_bytes(file.read_bytes(), str(file))
            except OSError:
                continue
        return len(files)

    def scan_sqlite(self, path: Path, tables: Iterable[str] | None = None) -> dict[str, int]:
        """Every row of ``tables`` (default: all) of a SQLite database, as text; returns rows per table."""
        scanned = {}
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            present = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in present if tables is None else [t for t in tables if t in present]:
                rows = db.execute(f'SELECT * FROM "{table}"').fetchall()
                scanned[table] = len(rows)
                for row in rows:
                    self.scan_text(
                        " ".join(
                            v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row
                        ),
                        f"{path.name}:{table}",
                    )
        return scanned


def main(argv: Sequence[str]) -> int:
    secrets = [s for s in os.environ.get("SMS_LEAKSCAN_SECRETS", "").split(",") if s]
    if not secrets or not argv:
        print("usage: SMS_LEAKSCAN_SECRETS=secret1,secret2 python -m tests.reliability.leakscan PATH...")
        return 2
    scanner = LeakScanner({f"secret{i}": s for i, s in enumerate(secrets, 1)})
    files = sum(scanner.scan_path(Path(p)) for p in argv)
    for finding in scanner.findings:
        print(f"LEAK: {finding.secret} ({finding.form}) in {finding.where}")
    print(f"{files} files scanned, {len(scanner.findings)} leaks")
    return 1 if scanner.findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
