#!/usr/bin/env python
"""Run every example DAG with ``airflow dags test`` against the sandbox gateway, then check the tables.

    .venv/bin/python scripts/run_example_dags.py                  # a temporary directory, removed after
    .venv/bin/python scripts/run_example_dags.py --workdir .demo  # keep everything there (the demo)

What it does, from nothing: starts the sandbox gateway (a subprocess, state saved in
``<workdir>/sandbox.db``), makes an ``AIRFLOW_HOME`` with a SQLite metadata DB (``airflow db migrate``),
seeds a SQLite warehouse (``<workdir>/warehouse.db``) with ``--customers`` customers, sets the
connections as ``AIRFLOW_CONN_*`` variables, runs the five example DAGs in order with
``airflow dags test`` (each one's output in ``<workdir>/logs/<dag_id>.log``), checks the ledger,
report, summary, sync and newsletter tables and the sandbox against what the seed implies
(:func:`seed_warehouse.expected`), prints a report and stops the sandbox. Exit code 0 only if every
DAG run succeeded and every check passed.

``tests/example_dags/test_run_example_dags.py`` runs the same thing in the test suite (and so in CI).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from airflow_provider_sms.sandbox import config as sandbox_config  # noqa: E402  (no Airflow import)
from airflow_provider_sms.sandbox.testing import SandboxServer, start_sandbox_process  # noqa: E402
from scripts.seed_warehouse import Expected, expected, generate, outcome_of  # noqa: E402

DAGS_FOLDER = REPO / "example_dags"
# The order matters: the newsletter goes to the lists the contact sync creates, and the summary
# reads the report the campaign writes (before the fan-out adds TextBoost rows to it).
DAG_ORDER = (
    "sms_nightly_contact_sync",
    "sms_campaign",
    "sms_delivery_summary",
    "sms_newsletter",
    "sms_fanout_campaign",
)
GATEWAYS = ("smstools", "smsgateway24", "textboost")
REPORT_ASSET_URI = "sms-table://warehouse/sms_delivery_report"
FANOUT_SHARDS = 4
DELIVERY_SECONDS = 2.0  # the sandbox's, from accepted to final
CAMPAIGN_GATEWAY = "smstools"  # example_dags/sms_campaign.py
FANOUT_GATEWAY = "textboost"  # example_dags/sms_fanout_campaign.py


def connections(sandbox_url: str, warehouse: str | dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The connections the example DAGs use, pointing at the sandbox (its default credentials)."""
    cfg = sandbox_config
    return {
        "warehouse": warehouse if isinstance(warehouse, dict) else {"conn_type": "sqlite", "host": warehouse},
        "smstools_default": {
            "conn_type": "smstools",
            "host": sandbox_url,
            "login": cfg.DEFAULT_SMSTOOLS_CLIENT_ID,
            "password": cfg.DEFAULT_SMSTOOLS_CLIENT_SECRET,
            "extra": {"default_region": "DE", "sender_id": "ACME"},
        },
        "smsgateway24_default": {
            "conn_type": "smsgateway24",
            "host": sandbox_url,
            "login": cfg.DEFAULT_SMSGATEWAY24_EMAIL,
            "password": cfg.DEFAULT_SMSGATEWAY24_PASSWORD,
            # "timezone" is the account's (dates are written in it): the sandbox's is UTC, the default.
            "extra": {"default_region": "DE", "device_id": cfg.DEVICE_IDS[0], "sim": 0},
        },
        "textboost_default": {
            "conn_type": "textboost",
            "host": sandbox_url,
            "password": cfg.DEFAULT_TEXTBOOST_TOKEN,
            "extra": {"default_region": "DE", "sender_id": "ACME"},
        },
    }


def airflow_env(
    airflow_home: Path, conns: dict[str, dict[str, Any]], extra: dict[str, str] | None = None
) -> dict[str, str]:
    """This process's environment without any AIRFLOW* variable, plus the example's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            # The UI (`airflow api-server`) of the demo's AIRFLOW_HOME opens without a login.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            # The campaign's send window, opened all day so that the run works at any hour.
            "SMS_EXAMPLE_SEND_WINDOW": "00:00-23:59",
            "PYTHONUNBUFFERED": "1",
        }
    )
    for conn_id, conn in conns.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    env.update(extra or {})
    return env


# -------------------------------------------------------------------------------------------------


@dataclass
class DagResult:
    dag_id: str
    ok: bool
    seconds: float
    log: Path
    ended: float = field(default_factory=time.monotonic)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class ExampleRun:
    """One run of the example DAGs in ``workdir`` against ``sandbox``."""

    workdir: Path
    sandbox: SandboxServer
    customers: int = 300
    seed: int = 7
    echo: Callable[[str], None] = print
    results: list[DagResult] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir = self.workdir.resolve()
        self.airflow_home = self.workdir / "airflow"
        self.logs = self.workdir / "logs"
        self.warehouse = self.workdir / "warehouse.db"
        self.env = airflow_env(self.airflow_home, connections(self.sandbox.url, str(self.warehouse)))
        self.expected: Expected = expected(generate(self.customers, self.seed))

    # -- steps -------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """A fresh AIRFLOW_HOME (metadata DB migrated) and a freshly seeded warehouse."""
        for path in (self.airflow_home, self.logs):
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
        self.warehouse.unlink(missing_ok=True)
        self._write_env_file()
        self._run("airflow db migrate", [sys.executable, "-m", "airflow", "db", "migrate"], "db_migrate")
        self._run(
            f"seeding the warehouse with {self.customers} customers",
            [sys.executable, str(REPO / "scripts" / "seed_warehouse.py"), *self._seed_args()],
            "seed_warehouse",
        )

    def run_dags(self, dag_ids: Sequence[str] = DAG_ORDER) -> list[DagResult]:
        for dag_id in dag_ids:
            conf = {"shards": FANOUT_SHARDS} if dag_id == "sms_fanout_campaign" else None
            command = [sys.executable, "-m", "airflow", "dags", "test", dag_id]
            if conf:
                command += ["--conf", json.dumps(conf)]
            started = time.monotonic()
            log = self.logs / f"{dag_id}.log"
            self.echo(f"  airflow dags test {dag_id} ...")
            with open(log, "w") as out:
                code = subprocess.call(command, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
            result = DagResult(dag_id, code == 0, time.monotonic() - started, log)
            self.results.append(result)
            self.echo(
                f"  airflow dags test {dag_id}: {'succeeded' if result.ok else 'FAILED'} "
                f"in {result.seconds:.0f} s (log: {_rel(log)})"
            )
            if not result.ok:
                self.echo(_tail(log, 40))
        return self.results

    def _run(self, what: str, command: list[str], log_name: str) -> None:
        self.echo(f"  {what} ...")
        log = self.logs / f"{log_name}.log"
        with open(log, "w") as out:
            code = subprocess.call(command, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        if code != 0:
            raise RuntimeError(f"{what} failed (exit {code}):\n{_tail(log, 40)}")

    def _seed_args(self) -> list[str]:
        return ["--customers", str(self.customers), "--seed", str(self.seed)]

    def _write_env_file(self) -> None:
        """``<workdir>/env.sh``: source it to use the demo's Airflow (CLI, UI) by hand."""
        keys = sorted(k for k in self.env if k.startswith(("AIRFLOW", "SMS_EXAMPLE")))
        lines = ["# source this file to use the example DAGs' Airflow by hand (see README)"]
        lines += [f"export {k}={_shell_quote(self.env[k])}" for k in keys]
        (self.workdir / "env.sh").write_text("\n".join(lines) + "\n")

    # -- checks --------------------------------------------------------------------------------------

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, bool(ok), detail))

    def verify(self) -> list[Check]:
        """Compare the tables and the sandbox with what the seed implies."""
        exp = self.expected
        ran = {r.dag_id for r in self.results if r.ok}
        with closing(sqlite3.connect(self.warehouse)) as db:
            if "sms_nightly_contact_sync" in ran:
                self._verify_contacts(db, exp)
            if "sms_campaign" in ran:
                self._verify_campaign(db, exp, "sms_campaign", CAMPAIGN_GATEWAY, "voucher")
                self._verify_asset_event()
            if "sms_delivery_summary" in ran:
                self._verify_summary(db, exp)
            if "sms_newsletter" in ran:
                self._verify_newsletters(db, exp)
            if "sms_fanout_campaign" in ran:
                self._verify_campaign(db, exp, "sms_fanout_campaign", FANOUT_GATEWAY, "stores open")
                self._verify_mapped_shards()
        return self.checks

    def _messages(self, gateway: str, body_contains: str) -> list[dict[str, Any]]:
        return [m for m in self.sandbox.messages(gateway) if body_contains in m["body"]]

    def _verify_recipients(self, name: str, messages: list[dict[str, Any]], want: set[str]) -> None:
        got = Counter(_e164(m["recipient"]) for m in messages)
        arrivals = max((m["count"] for m in messages), default=0)
        twice = sorted(r for r, n in got.items() if n > 1)
        self.check(
            name,
            set(got) == want and not twice and arrivals <= 1,
            f"{len(got)} recipients, {len(want)} expected; {len(set(got) - want)} unexpected, "
            f"{len(want - set(got))} missing, {len(twice)} messaged twice, max arrivals {arrivals}",
        )

    def _verify_contacts(self, db: sqlite3.Connection, exp: Expected) -> None:
        contacts = self.sandbox.contacts()
        for gateway in GATEWAYS:
            mine = [c for c in contacts if c["gateway"] == gateway]
            phones = Counter(_e164(c["phone"]) for c in mine)
            lists = {str(c["list_id"]) for c in mine}
            self.check(
                f"contact sync: {gateway} list holds every subscriber once",
                set(phones) == exp.subscribers
                and max(phones.values(), default=0) == 1
                and max((c["count"] for c in mine), default=0) == 1
                and len(lists) == 1,
                f"{len(phones)} contacts in {len(lists)} list(s), {len(exp.subscribers)} subscribers expected",
            )
        state = dict(
            db.execute(
                "SELECT gateway, COUNT(*) FROM sms_contact_sync WHERE contact_key <> '' GROUP BY gateway"
            ).fetchall()
        )
        self.check(
            "contact sync: state table has one row per subscriber and gateway",
            all(state.get(g) == len(exp.subscribers) for g in GATEWAYS),
            f"rows per gateway {state}",
        )

    def _ledger(self, db: sqlite3.Connection, dag_id: str) -> tuple[str | None, Counter]:
        keys = [
            k
            for (k,) in db.execute(
                "SELECT DISTINCT campaign_key FROM sms_messages WHERE campaign_key LIKE ?", [f"{dag_id}.%"]
            )
        ]
        if len(keys) != 1:
            return None, Counter()
        rows = db.execute(
            "SELECT state, COUNT(*) FROM sms_messages WHERE campaign_key = ? GROUP BY state", keys
        ).fetchall()
        return keys[0], Counter(dict(rows))

    def _verify_campaign(
        self, db: sqlite3.Connection, exp: Expected, dag_id: str, gateway: str, body_contains: str
    ) -> None:
        key, states = self._ledger(db, dag_id)
        want = Counter({"accepted": exp.accepted, "rejected": exp.rejected, "suppressed": exp.suppressed})
        self.check(
            f"{dag_id}: ledger has every input row in its final state",
            key is not None and states == want,
            f"campaign {key}: {dict(states)} (expected {dict(want)}; {exp.duplicates} duplicates not recorded)",
        )
        self._verify_recipients(
            f"{dag_id}: every recipient received exactly one message at {gateway}",
            self._messages(gateway, body_contains),
            exp.recipients,
        )
        report = Counter(
            dict(
                db.execute(
                    "SELECT r.status, COUNT(*) FROM sms_delivery_report r JOIN sms_messages l "
                    "ON l.gateway = r.gateway AND l.message_id = r.message_id WHERE l.campaign_key = ? "
                    "GROUP BY r.status",
                    [key],
                ).fetchall()
            )
        )
        self.check(
            f"{dag_id}: delivery report has the final status of every message",
            report == exp.outcomes,
            f"report rows {dict(report)} (expected {dict(exp.outcomes)})",
        )
        ledger_status = Counter(
            dict(
                db.execute(
                    "SELECT status, COUNT(*) FROM sms_messages WHERE campaign_key = ? AND state = 'accepted' "
                    "GROUP BY status",
                    [key],
                ).fetchall()
            )
        )
        self.check(
            f"{dag_id}: ledger statuses moved forward from the report",
            ledger_status == exp.outcomes,
            f"ledger statuses {dict(ledger_status)}",
        )

    def _metadata(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with closing(sqlite3.connect(self.airflow_home / "airflow.db")) as meta:
            return meta.execute(sql, params).fetchall()

    def _verify_asset_event(self) -> None:
        events = self._metadata(
            "SELECT COUNT(*) FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = ?",
            [REPORT_ASSET_URI],
        )[0][0]
        self.check(
            "sms_campaign: the report task updated the Asset sms_delivery_summary is scheduled on",
            events >= 1,
            f"{events} asset event(s) for {REPORT_ASSET_URI}",
        )

    def _verify_summary(self, db: sqlite3.Connection, exp: Expected) -> None:
        rows = db.execute(
            "SELECT gateway, SUM(messages), SUM(delivered), SUM(not_delivered), SUM(pending) "
            "FROM sms_delivery_daily GROUP BY gateway"
        ).fetchall()
        got = {gateway: tuple(values) for gateway, *values in rows}
        delivered = exp.outcomes["delivered"]
        want = {CAMPAIGN_GATEWAY: (exp.accepted, delivered, exp.accepted - delivered, 0)}
        self.check(
            "sms_delivery_summary: daily rows match the report table",
            got == want,
            f"{got} (expected {want})",
        )

    def _verify_newsletters(self, db: sqlite3.Connection, exp: Expected) -> None:
        rows = db.execute("SELECT gateway, state FROM sms_newsletters ORDER BY gateway").fetchall()
        self.check(
            "sms_newsletter: one newsletter created per gateway",
            rows == [(g, "created") for g in sorted(GATEWAYS)],
            f"sms_newsletters rows {rows}",
        )
        for gateway in GATEWAYS:
            messages = self._messages(gateway, "winter collection")
            self._verify_recipients(
                f"sms_newsletter: every subscriber received it once at {gateway}",
                messages,
                exp.subscribers,
            )
            # It was sent "now": once the sandbox's delivery time (2 s) has passed, every message has
            # its final status (none waits for a later schedule).
            ended = next(r.ended for r in self.results if r.dag_id == "sms_newsletter")
            time.sleep(max(0.0, ended + DELIVERY_SECONDS + 1 - time.monotonic()))
            outcomes = Counter(m["normalized_status"] for m in messages)
            want = Counter(outcome_of(p) for p in exp.subscribers)
            self.check(
                f"sms_newsletter: every message at {gateway} has its final status",
                outcomes == want,
                f"statuses {dict(outcomes)} (expected {dict(want)})",
            )

    def _verify_mapped_shards(self) -> None:
        rows = self._metadata(
            "SELECT map_index, state FROM task_instance WHERE dag_id = ? AND task_id = ? ORDER BY map_index",
            ["sms_fanout_campaign", "send_shard"],
        )
        self.check(
            "sms_fanout_campaign: the send ran as one mapped task per shard",
            rows == [(i, "success") for i in range(FANOUT_SHARDS)],
            f"mapped task instances {rows}",
        )

    # -- the report ----------------------------------------------------------------------------------

    def report(self) -> str:
        """A short report a person can read: per gateway and per DAG, then where to look."""
        stats = self.sandbox.stats()["messages"]["by_gateway"]
        with closing(sqlite3.connect(self.warehouse)) as db:
            rejected = dict(
                _safe(
                    db, "SELECT gateway, COUNT(*) FROM sms_messages WHERE state = 'rejected' GROUP BY gateway"
                )
            )
            suppressed = dict(
                _safe(
                    db,
                    "SELECT gateway, COUNT(*) FROM sms_messages WHERE state = 'suppressed' GROUP BY gateway",
                )
            )
            report_rows = _safe(
                db, "SELECT gateway, status, COUNT(*) FROM sms_delivery_report GROUP BY gateway, status"
            )
            daily = _safe(
                db,
                "SELECT day, gateway, messages, delivered, not_delivered, pending, delivery_rate "
                "FROM sms_delivery_daily ORDER BY day, gateway",
            )
            contacts = dict(
                _safe(
                    db,
                    "SELECT gateway, COUNT(*) FROM sms_contact_sync WHERE contact_key <> '' GROUP BY gateway",
                )
            )
            campaigns = _safe(
                db,
                "SELECT campaign_key, gateway, state, COUNT(*) FROM sms_messages "
                "GROUP BY campaign_key, gateway, state ORDER BY campaign_key",
            )
        lines = [
            "",
            "Messages per gateway (sandbox)  accepted  rejected* suppressed*  delivered  not delivered  pending",
        ]
        for gateway in GATEWAYS:
            normalized = Counter(stats[gateway]["by_normalized_status"])
            not_delivered = sum(normalized[s] for s in ("undelivered", "failed", "rejected"))
            lines.append(
                f"  {gateway:<29} {stats[gateway]['total']:>8} {rejected.get(gateway, 0):>9} "
                f"{suppressed.get(gateway, 0):>11} {normalized['delivered']:>10} {not_delivered:>14} "
                f"{stats[gateway]['total'] - normalized['delivered'] - not_delivered:>8}"
            )
        lines.append("  * rejected and suppressed before sending, from the ledger table sms_messages")
        ledger: dict[tuple[str, str], Counter] = {}
        for key, gateway, state, n in campaigns:
            ledger.setdefault((key.split(".")[0], gateway), Counter())[state] = n
        if ledger:
            lines.append(
                "Campaigns in the ledger sms_messages (one row per recipient, written before sending)"
            )
        for (dag_id, gateway), counts in ledger.items():
            lines.append(f"  {dag_id:<22} {gateway:<13} {_fmt_counts(counts)}")
        lines.append(f"Contacts synced into the list 'customers': {_fmt_counts(contacts) or 'none'}")
        by_gateway: dict[str, Counter] = {}
        for gateway, status, n in report_rows:
            by_gateway.setdefault(gateway, Counter())[status] = n
        total = sum(n for _, _, n in report_rows)
        lines.append(f"Report table sms_delivery_report: {total} rows")
        for gateway, counts in sorted(by_gateway.items()):
            lines.append(f"  {gateway:<13} {_fmt_counts(counts)}")
        for day, gateway, messages, delivered, not_delivered, pending, rate in daily:
            shown = "-" if rate is None else f"{rate:.1%}"
            lines.append(
                f"Daily summary sms_delivery_daily: {day} {gateway}: {messages} messages, {delivered} delivered, "
                f"{not_delivered} not delivered, {pending} pending, delivery rate {shown}"
            )
        lines.append("")
        lines.append("DAG runs (airflow dags test)")
        for r in self.results:
            lines.append(
                f"  {r.dag_id:<26} {'ok' if r.ok else 'FAILED':<7} {r.seconds:>5.0f} s   {_rel(r.log)}"
            )
        failed = [c for c in self.checks if not c.ok]
        lines.append(f"Checks: {len(self.checks) - len(failed)} of {len(self.checks)} passed")
        for c in failed:
            lines.append(f"  FAILED {c.name}: {c.detail}")
        return "\n".join(lines)

    def where_to_look(self, sandbox_state: Path | None) -> str:
        wh, env = _rel(self.warehouse), _rel(self.workdir / "env.sh")
        lines = [
            "",
            "Where to look",
            f"  Warehouse (SQLite): {wh}",
            "    tables: customers, opt_outs, sms_messages (ledger), sms_delivery_report, sms_delivery_history,",
            "            sms_delivery_daily, sms_contact_sync, sms_contact_rejects, sms_newsletters",
            f'    sqlite3 {wh} "SELECT gateway, status, COUNT(*) FROM sms_delivery_report GROUP BY 1, 2"',
            f"  DAG logs: {_rel(self.logs)}/<dag_id>.log",
            f"  Airflow UI with these runs: source {env} && .venv/bin/airflow api-server --port 8080",
            "    then http://127.0.0.1:8080/ (no login)",
        ]
        if sandbox_state is not None:
            lines += [
                f"  Sandbox gateway: its page was {self.sandbox.url}/ ; its state is kept in {_rel(sandbox_state)}:",
                f"    .venv/bin/sms-sandbox --state {_rel(sandbox_state)} --port 8025   then http://127.0.0.1:8025/",
            ]
        return "\n".join(lines)


# -------------------------------------------------------------------------------------------------


@contextmanager
def sandbox_process(state_file: Path | None, port: int = 0) -> Iterator[SandboxServer]:
    """The sandbox as a subprocess (it must outlive each ``airflow dags test`` process)."""
    if state_file is not None:
        state_file.unlink(missing_ok=True)
    process = start_sandbox_process(
        port, delivery_seconds=DELIVERY_SECONDS, state_file=str(state_file) if state_file else None
    )
    try:
        yield process
    finally:
        process.stop()


def run(
    workdir: Path,
    *,
    customers: int = 300,
    dag_ids: Sequence[str] = DAG_ORDER,
    port: int = 0,
    echo: Callable[[str], None] = print,
    demo: bool = False,
) -> ExampleRun:
    """Everything, from an empty ``workdir`` to the checks; the sandbox is stopped on return."""
    workdir.mkdir(parents=True, exist_ok=True)
    state = workdir.resolve() / "sandbox.db"
    started = time.monotonic()
    with sandbox_process(state, port) as sandbox:
        echo(f"  sandbox gateway running on {sandbox.url}/ (pid {sandbox.process.pid})")
        example = ExampleRun(workdir, sandbox, customers=customers, echo=echo)
        example.prepare()
        example.run_dags(dag_ids)
        example.verify()
        text = example.report()
        if demo:
            text += "\n" + example.where_to_look(state)
    echo(text)
    echo(f"\nFinished in {time.monotonic() - started:.0f} s; the sandbox is stopped.")
    return example


def failures(example: ExampleRun) -> list[str]:
    """Failed DAG runs and checks, as lines (empty when everything passed)."""
    return [f"DAG {r.dag_id} failed: see {r.log}" for r in example.results if not r.ok] + [
        f"check failed: {c.name}: {c.detail}" for c in example.checks if not c.ok
    ]


def _e164(raw: str) -> str:
    digits = "".join(ch for ch in str(raw) if ch.isdigit())
    return "+" + digits


def _safe(db: sqlite3.Connection, sql: str) -> list[tuple]:
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # the table is not there: that DAG did not run
        return []


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def _tail(path: Path, lines: int) -> str:
    text = path.read_text(errors="replace").splitlines()
    return "\n".join("    | " + line for line in text[-lines:])


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temporary directory)")
    parser.add_argument("--customers", type=int, default=300, help="customers seeded into the warehouse")
    parser.add_argument("--dag", action="append", dest="dags", help="run only this DAG (repeatable)")
    parser.add_argument("--port", type=int, default=0, help="sandbox port (default: a free one)")
    parser.add_argument("--demo", action="store_true", help="also print where to look afterwards")
    args = parser.parse_args(argv)
    temporary = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="sms-example-dags-")) if temporary else args.workdir
    try:
        example = run(
            workdir,
            customers=args.customers,
            dag_ids=args.dags or DAG_ORDER,
            port=args.port,
            demo=args.demo,
        )
    finally:
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
    problems = failures(example)
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
