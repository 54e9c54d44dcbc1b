#!/usr/bin/env python
"""Run every example DAG with ``airflow dags test`` against the sandbox gateway, then check the tables.

    .venv/bin/python scripts/run_example_dags.py                  # a temporary directory, removed after
    .venv/bin/python scripts/run_example_dags.py --workdir .demo  # keep everything there (the demo)

What it does, from nothing: starts the sandbox gateway (a subprocess, state saved in
``<workdir>/sandbox.db``), makes an ``AIRFLOW_HOME`` with a SQLite metadata DB (``airflow db migrate``),
seeds a SQLite warehouse (``<workdir>/warehouse.db``) with ``--customers`` customers, sets the
connections as ``AIRFLOW_CONN_*`` variables, runs the six example DAGs in order with
``airflow dags test`` (each one's output in ``<workdir>/logs/<dag_id>.log``, and each task's part of
it where the Airflow UI reads task logs; before the replies DAG the sandbox clock moves on until
every simulated reply has arrived), checks the ledger, report, summary, sync, newsletter, replies
and opt-out tables and the sandbox against what the seed and the sandbox imply
(:func:`seed_warehouse.expected`, the sandbox's own list of replies), prints a report and stops the
sandbox. Every planned check is shown: passed, failed, or (when its DAG was not
selected with ``--dag``) skipped with the reason; a check whose DAG failed counts as failed. Exit code
0 only if every DAG run succeeded and every check passed.

``tests/example_dags/test_run_example_dags.py`` runs the same thing in the test suite (and so in CI).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from airflow_provider_sms.messages import InvalidPhoneNumberError, normalize_phone  # noqa: E402
from airflow_provider_sms.sandbox import config as sandbox_config  # noqa: E402  (no Airflow import)
from airflow_provider_sms.sandbox import replies as sandbox_replies  # noqa: E402
from airflow_provider_sms.sandbox.testing import SandboxServer, start_sandbox_process  # noqa: E402
from scripts.seed_warehouse import Expected, expected, generate, outcome_of  # noqa: E402

DAGS_FOLDER = REPO / "example_dags"
# The order matters: the newsletter goes to the lists the contact sync creates, and the summary
# (scheduled on the report table) runs once both campaigns' report tasks have written to it; the
# replies DAG reads what every earlier message brought back, then sends the next campaign.
REPLIES_DAG = "sms_replies_and_opt_outs"
DAG_ORDER = (
    "sms_nightly_contact_sync",
    "sms_campaign",
    "sms_newsletter",
    "sms_fanout_campaign",
    "sms_delivery_summary",
    REPLIES_DAG,
)
GATEWAYS = ("smstools", "smsgateway24", "textboost")
REPORT_ASSET_URI = "sms-table://warehouse/sms_delivery_report"
LEDGER_ASSET_URI = "sms-table://warehouse/sms_messages"
DEMO_SANDBOX_PORT = 8025  # the demo's sandbox port when it is free (the README's commands use it)
FANOUT_SHARDS = 4
DELIVERY_SECONDS = 2.0  # the sandbox's, from accepted to final
CAMPAIGN_GATEWAY = "smstools"  # example_dags/sms_campaign.py
FANOUT_GATEWAY = "textboost"  # example_dags/sms_fanout_campaign.py
NEXT_CAMPAIGN_GATEWAY = "smstools"  # example_dags/sms_replies_and_opt_outs.py
NEXT_CAMPAIGN_BODY = "2 for 1 on all coffee"
# campaign/replies.py MATCH_TOLERANCE: a reply up to this long before a message's send time answers it.
MATCH_TOLERANCE_SECONDS = 1
# Contacts in the sync state table: each list also has one row with contact_key '' (the list's name).
CONTACT_ROWS = "contact_key <> '' AND phone IS NOT NULL"
SEND_COUNTS = ("accepted", "rejected", "suppressed", "duplicates", "ambiguous")
# Lines a successful run must not log: errors, and the noise every first user asked about.
LOG_NOISE = ("[error", "Could not import graphviz", "Skipping masking for a secret", "XCom not found")
# How `airflow dags test` brackets each try of a task in its output.
TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(?P<task_id>\S+) map_index=(?P<map_index>-?\d+)")
TASK_END = re.compile(r"\[DAG TEST\] end task task_id=\S+ map_index=-?\d+")


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


# AIRFLOW_HOME/config is on Airflow's sys.path: the demo's logging config lives there.
LOG_CONFIG_MODULE = '''"""The demo's logging: Airflow's default, without the secrets masker's warning about extras
too short to mask (``default_region`` "DE", ``sender_id`` "ACME": not secrets). Written by
scripts/run_example_dags.py."""

from copy import deepcopy

from airflow.config_templates.airflow_local_settings import DEFAULT_LOGGING_CONFIG

LOGGING_CONFIG = deepcopy(DEFAULT_LOGGING_CONFIG)
for name in ("airflow.sdk._shared.secrets_masker", "airflow._shared.secrets_masker"):
    LOGGING_CONFIG["loggers"][name] = {"level": "ERROR"}
'''


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
            # Task logs where the UI reads them (the runner writes each task's part of the
            # `dags test` output there: `dags test` runs the tasks in its own process, no log files).
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
            # `airflow dags test` imports the graph renderer, which warns without graphviz installed.
            "PYTHONWARNINGS": "ignore:Could not import graphviz",
            # The campaign's send window, opened all day so that the run works at any hour.
            "SMS_EXAMPLE_SEND_WINDOW": "00:00-23:59",
            # The UI's "SMS campaigns" page (the provider's plugin) reads the examples' tables.
            "AIRFLOW__SMS__LEDGER_CONN_ID": "warehouse",
            "AIRFLOW__SMS__COST_PER_SEGMENT": "0.075",  # example_dags/sms_campaign.py COST_PER_SEGMENT
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
    status: str  # "passed", "failed" or "skipped"
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == "passed"


def planned_checks() -> dict[str, list[str]]:
    """Every check the runner makes, by the DAG whose run it looks at ("" for all DAGs together)."""
    plan: dict[str, list[str]] = {
        "": [
            "no opted-out number received any message, from any DAG",
            "every task's log is where the Airflow UI reads it",
            "the DAG logs hold no error line and none of the known noise",
        ],
        "sms_nightly_contact_sync": [
            *(f"contact sync: {gateway} list holds every subscriber once" for gateway in GATEWAYS),
            "contact sync: state table has one row per subscriber and gateway",
        ],
        "sms_newsletter": ["sms_newsletter: one newsletter created per gateway"],
        "sms_delivery_summary": [
            "sms_delivery_summary: daily rows match the report table, for both campaigns"
        ],
    }
    for gateway in GATEWAYS:
        plan["sms_newsletter"] += [
            f"sms_newsletter: every subscriber received it once at {gateway}",
            f"sms_newsletter: every message at {gateway} has its final status",
        ]
    for dag_id, gateway in (("sms_campaign", CAMPAIGN_GATEWAY), ("sms_fanout_campaign", FANOUT_GATEWAY)):
        plan[dag_id] = [
            f"{dag_id}: the send's counts add up to the input rows",
            f"{dag_id}: ledger has every input row in its final state",
            f"{dag_id}: every recipient received exactly one message at {gateway}",
            f"{dag_id}: delivery report has the final status of every message",
            f"{dag_id}: ledger statuses moved forward from the report",
        ]
    plan["sms_campaign"] += [
        "sms_campaign: the report task updated the Asset sms_delivery_summary is scheduled on",
        "sms_campaign: the send updated the ledger Asset, the dry run did not",
    ]
    plan["sms_fanout_campaign"] += [
        "sms_fanout_campaign: the send ran as one mapped task per shard",
        "sms_fanout_campaign: every mapped send_shard updated the ledger Asset",
    ]
    plan[REPLIES_DAG] = [
        f"{REPLIES_DAG}: every reply the sandbox received is in sms_replies once, on each gateway",
        f"{REPLIES_DAG}: every simulated STOP reads as stop and every free text as none",
        f"{REPLIES_DAG}: each reply names the last ledger message sent to its sender before it",
        f"{REPLIES_DAG}: sms_opt_outs holds exactly the numbers that replied STOP",
        f"{REPLIES_DAG}: the next campaign's counts add up, each opt-out suppressed as 'opted out'",
        f"{REPLIES_DAG}: no number that opted out received the next campaign",
    ]
    return plan


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
        self.env = airflow_env(
            self.airflow_home,
            connections(self.sandbox.url, str(self.warehouse)),
            {
                # Airflow masks every string in a connection's extras, so `default_region` "DE" and
                # `sender_id` "ACME" (not secrets) made every task log "Skipping masking for a secret
                # as it's too short". The secrets (passwords, tokens) are long and masked as ever;
                # this logging config (LOG_CONFIG_MODULE, written by prepare()) mutes that warning.
                "AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS": "demo_log_config.LOGGING_CONFIG",
                # For the user's shell (env.sh): where the sandbox was, and is to be started again.
                "SMS_SANDBOX_URL": self.sandbox.url,
                "SMS_SANDBOX_PORT": self.sandbox.url.rsplit(":", 1)[1],
            },
        )
        self.expected: Expected = expected(generate(self.customers, self.seed))

    # -- steps -------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """A fresh AIRFLOW_HOME (metadata DB migrated) and a freshly seeded warehouse."""
        for path in (self.airflow_home, self.logs):
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
        self.warehouse.unlink(missing_ok=True)
        (self.airflow_home / "config").mkdir()
        (self.airflow_home / "config" / "demo_log_config.py").write_text(LOG_CONFIG_MODULE)
        self._write_env_file()
        self._run("airflow db migrate", [sys.executable, "-m", "airflow", "db", "migrate"], "db_migrate")
        self._run(
            f"seeding the warehouse with {self.customers} customers",
            [sys.executable, str(REPO / "scripts" / "seed_warehouse.py"), *self._seed_args()],
            "seed_warehouse",
        )

    def run_dags(self, dag_ids: Sequence[str] = DAG_ORDER) -> list[DagResult]:
        for dag_id in dag_ids:
            if dag_id == REPLIES_DAG:
                self.let_replies_arrive()
            conf = {"shards": FANOUT_SHARDS} if dag_id == "sms_fanout_campaign" else None
            command = [sys.executable, "-m", "airflow", "dags", "test", dag_id]
            if conf:
                command += ["--conf", json.dumps(conf)]
            started = time.monotonic()
            log = self.logs / f"{dag_id}.log"
            self.echo(f"  airflow dags test {dag_id} ...")
            with open(log, "w") as out:
                code = subprocess.call(command, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
            self.write_task_logs(dag_id, log)
            result = DagResult(dag_id, code == 0, time.monotonic() - started, log)
            self.results.append(result)
            self.echo(
                f"  airflow dags test {dag_id}: {'succeeded' if result.ok else 'FAILED'} "
                f"in {result.seconds:.0f} s (log: {_rel(log)})"
            )
            if not result.ok:
                self.echo(_tail(log, 40))
        return self.results

    def let_replies_arrive(self) -> None:
        """Move the sandbox clock past the latest simulated reply: the night between the campaigns
        and the replies DAG (a reply arrives at most ``reply_seconds`` after delivery)."""
        seconds = sandbox_config.SandboxConfig().reply_seconds + DELIVERY_SECONDS + 1
        self.sandbox.advance(seconds)
        self.echo(f"  sandbox clock moved {seconds:.0f} s on: every simulated reply has arrived")

    def write_task_logs(self, dag_id: str, log: Path) -> list[Path]:
        """Each task's part of a ``dags test`` output, where the UI reads task logs.

        ``airflow dags test`` runs every task inside its own process and writes no task log file, so
        the UI's Logs tab found none and asked a log server on port 8793 that does not exist. The
        output brackets each try of each task with ``[DAG TEST] starting task_id=…`` and ``[DAG TEST]
        end task …``: each part is written to ``<base_log_folder>/dag_id=…/run_id=…/task_id=…/
        [map_index=…/]attempt=<n>.log`` (Airflow's default ``log_filename_template``)."""
        runs = self._metadata(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", [dag_id]
        )
        if not runs:
            return []
        base = (
            Path(self.env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"]) / f"dag_id={dag_id}" / f"run_id={runs[0][0]}"
        )
        parts: list[tuple[tuple[str, int], list[str]]] = []
        inside = False
        for line in log.read_text(errors="replace").splitlines(keepends=True):
            if start := TASK_START.search(line):
                parts.append(((start["task_id"], int(start["map_index"])), [line]))
                inside = True
            elif inside:
                parts[-1][1].append(line)
                inside = not TASK_END.search(line)
        tries: Counter = Counter()
        written: list[Path] = []
        for (task_id, map_index), lines in parts:
            tries[task_id, map_index] += 1
            folder = base / f"task_id={task_id}"
            if map_index >= 0:
                folder /= f"map_index={map_index}"
            folder.mkdir(parents=True, exist_ok=True)
            written.append(folder / f"attempt={tries[task_id, map_index]}.log")
            written[-1].write_text("".join(lines))
        return written

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
        keys = sorted(k for k in self.env if k.startswith(("AIRFLOW", "SMS_", "PYTHONWARNINGS")))
        lines = ["# source this file to use the example DAGs' Airflow by hand (see README)"]
        lines += [f"export {k}={_shell_quote(self.env[k])}" for k in keys]
        (self.workdir / "env.sh").write_text("\n".join(lines) + "\n")

    # -- checks --------------------------------------------------------------------------------------

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, "passed" if ok else "failed", detail))

    def verify(self, dag_ids: Sequence[str] = DAG_ORDER) -> list[Check]:
        """Compare the tables and the sandbox with what the seed implies. Every planned check ends in
        ``self.checks``: a DAG that failed fails its checks, one not selected skips them, with why."""
        exp = self.expected
        outcome = {r.dag_id: r for r in self.results}
        verifiers: dict[str, Callable[[sqlite3.Connection], None]] = {
            "": lambda db: (self._verify_opt_outs(exp), self._verify_logs()),
            "sms_nightly_contact_sync": lambda db: self._verify_contacts(db, exp),
            "sms_campaign": lambda db: (
                self._verify_campaign(db, exp, "sms_campaign", CAMPAIGN_GATEWAY, "voucher", "send"),
                self._verify_campaign_assets(),
            ),
            "sms_newsletter": lambda db: self._verify_newsletters(db, exp),
            "sms_fanout_campaign": lambda db: (
                self._verify_campaign(
                    db, exp, "sms_fanout_campaign", FANOUT_GATEWAY, "stores open", "send_shard"
                ),
                self._verify_mapped_shards(),
            ),
            "sms_delivery_summary": lambda db: self._verify_summary(db),
            REPLIES_DAG: lambda db: self._verify_replies(db, exp),
        }
        with closing(sqlite3.connect(self.warehouse)) as db:
            for dag_id, names in planned_checks().items():
                result = outcome.get(dag_id)
                if dag_id and result is None:
                    why = "not run (not selected with --dag)" if dag_id not in dag_ids else "not run"
                    self.checks += [Check(n, "skipped", f"{dag_id} {why}") for n in names]
                    continue
                if dag_id and not result.ok:
                    detail = f"not checked: {dag_id} failed (see {_rel(result.log)})"
                    self.checks += [Check(n, "failed", detail) for n in names]
                    continue
                before = {c.name for c in self.checks}
                try:
                    verifiers[dag_id](db)
                except Exception as error:  # a check that crashed is a failed check, not a lost one
                    problem = f"the check itself failed: {type(error).__name__}: {error}"
                else:
                    problem = "the check did not run"
                done = {c.name for c in self.checks} - before
                self.checks += [Check(n, "failed", problem) for n in names if n not in done]
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

    def _verify_opt_outs(self, exp: Expected) -> None:
        """No message, from any DAG at any gateway, went to a number on the opt-out list (matched as
        E.164, whatever the format in ``opt_outs``)."""
        with closing(sqlite3.connect(self.warehouse)) as db:
            raw = [phone for (phone,) in _safe(db, "SELECT phone FROM opt_outs")]
        opted_out = {_normalize(phone) for phone in raw} - {None}
        messages = self.sandbox.messages()
        hits = sorted(
            {
                f"{_e164(m['recipient'])} ({m['gateway']})"
                for m in messages
                if _e164(m["recipient"]) in opted_out
            }
        )
        self.check(
            "no opted-out number received any message, from any DAG",
            bool(raw) and opted_out == exp.opted_out and not hits,
            f"{len(messages)} messages at {len(GATEWAYS)} gateways checked against {len(opted_out)} opted-out "
            f"numbers ({len(exp.opted_out)} expected): {len(hits)} went to one"
            + (f": {', '.join(hits[:5])}" if hits else ""),
        )

    def _verify_logs(self) -> None:
        """Each finished try of each task has its log file where the UI looks; the DAG logs are clean."""
        tries = self._metadata(
            "SELECT dag_id, run_id, task_id, map_index, try_number FROM task_instance WHERE try_number > 0 "
            "UNION SELECT dag_id, run_id, task_id, map_index, try_number FROM task_instance_history"
        )
        base = Path(self.env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"])
        missing = [
            f"{dag_id}.{task_id}[{map_index}] try {try_number}"
            for dag_id, run_id, task_id, map_index, try_number in tries
            if not (
                base
                / f"dag_id={dag_id}"
                / f"run_id={run_id}"
                / f"task_id={task_id}"
                / (f"map_index={map_index}" if map_index >= 0 else "")
                / f"attempt={try_number}.log"
            ).is_file()
        ]
        self.check(
            "every task's log is where the Airflow UI reads it",
            bool(tries) and not missing,
            f"{len(tries)} task tries, {len(missing)} without a log file under {_rel(base)}"
            + (f": {', '.join(missing[:5])}" if missing else ""),
        )
        noise: Counter = Counter()
        for result in self.results:
            for line in result.log.read_text(errors="replace").splitlines():
                for pattern in LOG_NOISE:
                    if pattern in line:
                        noise[f"{result.dag_id}: {pattern!r}"] += 1
        self.check(
            "the DAG logs hold no error line and none of the known noise",
            bool(self.results) and not noise,
            f"{len(self.results)} DAG logs; " + (_fmt_counts(noise) if noise else "clean"),
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
                f"SELECT gateway, COUNT(*) FROM sms_contact_sync WHERE {CONTACT_ROWS} GROUP BY gateway"
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

    def send_summary(self, dag_id: str, task_id: str) -> Counter:
        """The send task's return value (XCom), added up over its mapped instances."""
        total: Counter = Counter()
        for (value,) in self._metadata(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value' "
            "AND run_id = (SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1)",
            [dag_id, task_id, dag_id],
        ):
            summary = json.loads(value)
            total.update({k: summary[k] for k in ("input", *SEND_COUNTS)})
        return total

    def _verify_campaign(
        self,
        db: sqlite3.Connection,
        exp: Expected,
        dag_id: str,
        gateway: str,
        body_contains: str,
        send_task: str,
    ) -> None:
        sent = self.send_summary(dag_id, send_task)
        want_sent = Counter(
            {
                "input": exp.input,
                "accepted": exp.accepted,
                "rejected": exp.rejected,
                "suppressed": exp.suppressed,
                "duplicates": exp.duplicates,
            }
        )
        self.check(
            f"{dag_id}: the send's counts add up to the input rows",
            sum(sent[k] for k in SEND_COUNTS) == sent["input"] and +sent == +want_sent,
            f"{send_task}: {_fmt_counts(sent) or 'no summary'} (expected {_fmt_counts(want_sent)})",
        )
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

    def _asset_events(self, dag_id: str, uri: str) -> Counter:
        """Asset events of ``uri`` emitted by ``dag_id``, per (task id, map index)."""
        rows = self._metadata(
            "SELECT e.source_task_id, e.source_map_index, COUNT(*) FROM asset_event e "
            "JOIN asset a ON a.id = e.asset_id WHERE a.uri = ? AND e.source_dag_id = ? GROUP BY 1, 2",
            [uri, dag_id],
        )
        return Counter({(task_id, map_index): n for task_id, map_index, n in rows})

    def _verify_campaign_assets(self) -> None:
        report = self._asset_events("sms_campaign", REPORT_ASSET_URI)
        self.check(
            "sms_campaign: the report task updated the Asset sms_delivery_summary is scheduled on",
            report[("delivery_report", -1)] >= 1,
            f"{sum(report.values())} asset event(s) for {REPORT_ASSET_URI}",
        )
        ledger = self._asset_events("sms_campaign", LEDGER_ASSET_URI)
        self.check(
            "sms_campaign: the send updated the ledger Asset, the dry run did not",
            ledger[("send", -1)] >= 1 and ledger[("dry_run_summary", -1)] == 0,
            f"events for {LEDGER_ASSET_URI}: send {ledger[('send', -1)]}, "
            f"dry_run_summary {ledger[('dry_run_summary', -1)]}",
        )

    def _verify_summary(self, db: sqlite3.Connection) -> None:
        rows = db.execute(
            "SELECT gateway, SUM(messages), SUM(delivered), SUM(not_delivered), SUM(pending) "
            "FROM sms_delivery_daily GROUP BY gateway"
        ).fetchall()
        got = {gateway: tuple(values) for gateway, *values in rows}
        report = db.execute(
            "SELECT gateway, COUNT(*), SUM(status = 'delivered'), "
            "SUM(status IN ('undelivered', 'failed', 'rejected')) FROM sms_delivery_report GROUP BY gateway"
        ).fetchall()
        want = {
            gateway: (n, delivered, failed, n - delivered - failed)
            for gateway, n, delivered, failed in report
        }
        self.check(
            "sms_delivery_summary: daily rows match the report table, for both campaigns",
            got == want and set(got) == {CAMPAIGN_GATEWAY, FANOUT_GATEWAY},
            f"(messages, delivered, not delivered, pending) per gateway {got} (report table: {want})",
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
        ledger = self._asset_events("sms_fanout_campaign", LEDGER_ASSET_URI)
        shards = sorted(map_index for (task_id, map_index) in ledger if task_id == "send_shard")
        self.check(
            "sms_fanout_campaign: every mapped send_shard updated the ledger Asset",
            shards == list(range(FANOUT_SHARDS)),
            f"events for {LEDGER_ASSET_URI} from send_shard map indexes {shards}",
        )

    # -- replies and opt-outs -----------------------------------------------------------------------

    def _xcoms(self, dag_id: str, task_id: str) -> list[dict[str, Any]]:
        """The return values of ``task_id`` in the DAG's latest run (one per mapped instance)."""
        rows = self._metadata(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value' "
            "AND run_id = (SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1)",
            [dag_id, task_id, dag_id],
        )
        return [json.loads(value) for (value,) in rows]

    def _read_totals(self, key: str) -> dict[str, int]:
        """``key`` of each gateway's read_replies task summary."""
        return {
            g: sum(x.get(key) or 0 for x in self._xcoms(REPLIES_DAG, f"read_replies_{g}")) for g in GATEWAYS
        }

    def sandbox_replies(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The replies each gateway received, by the gateway's id, as the sandbox lists them."""
        return {g: {str(r["id"]): r for r in self.sandbox.replies(g) if r["arrived"]} for g in GATEWAYS}

    def _verify_replies(self, db: sqlite3.Connection, exp: Expected) -> None:
        received = self.sandbox_replies()
        stored: dict[str, dict[str, tuple]] = {g: {} for g in GATEWAYS}
        for gateway, message_id, *rest in db.execute(
            "SELECT gateway, message_id, sender, intent, campaign_key, matched_message_id, received_at "
            "FROM sms_replies"
        ):
            stored.setdefault(gateway, {})[message_id] = tuple(rest)
        new = self._read_totals("new")
        self.check(
            f"{REPLIES_DAG}: every reply the sandbox received is in sms_replies once, on each gateway",
            any(received.values())
            and all(set(stored[g]) == set(received[g]) and new[g] == len(stored[g]) for g in GATEWAYS)
            and set(stored) == set(GATEWAYS),
            "; ".join(
                f"{g}: {len(stored[g])} rows, {len(received[g])} at the sandbox, {new[g]} new in read_replies_{g}"
                for g in GATEWAYS
            ),
        )
        intents: Counter = Counter()
        wrong = []
        for g in GATEWAYS:
            for message_id, reply in received[g].items():
                intent = stored[g].get(message_id, (None, None))[1]
                intents[intent or "missing"] += 1
                if intent != ("stop" if reply["keyword"] == "stop" else "none"):
                    wrong.append(f"{g} {reply['text']!r}: {intent}")
        self.check(
            f"{REPLIES_DAG}: every simulated STOP reads as stop and every free text as none",
            bool(intents) and not wrong,
            f"{_fmt_counts(intents)} = {sum(intents.values())} replies; {len(wrong)} read otherwise than the "
            "sandbox wrote them" + (f": {', '.join(wrong[:5])}" if wrong else ""),
        )
        self._verify_reply_matches(db, stored)
        stopped = {_e164(r["from"]) for g in GATEWAYS for r in received[g].values() if r["keyword"] == "stop"}
        table = db.execute("SELECT phone, opted_out, source FROM sms_opt_outs").fetchall()
        opted = {phone for phone, out, _ in table if out}
        counted = sum(self._read_totals("opted_out").values())
        self.check(
            f"{REPLIES_DAG}: sms_opt_outs holds exactly the numbers that replied STOP",
            bool(stopped) and opted == stopped and len(table) == len(opted) and counted == len(opted),
            f"{len(opted)} numbers opted out ({_fmt_counts(Counter(src for _, out, src in table if out))}); "
            f"{len(stopped)} numbers replied STOP; the read tasks counted {counted} new opt-outs; "
            f"{len(table) - len(opted)} re-subscribed",
        )
        self._verify_next_campaign(db, exp, stopped)

    def _verify_reply_matches(self, db: sqlite3.Connection, stored: dict[str, dict[str, tuple]]) -> None:
        """Each reply names the campaign of the ledger's last message to its sender at or before it
        arrived (``MATCH_TOLERANCE_SECONDS`` later, as the provider allows), computed here from the
        ledger's rows as the read tasks found them: without the replies DAG's own campaign, sent
        after them. (Before the read the sandbox clock was moved ahead of the worker's, so the
        latest replies are dated after that campaign's send, which no real night could show.)"""
        ledger: dict[tuple[str, str], list[tuple[datetime, str, str]]] = {}
        for gateway, recipient, key, message_id, sent_at in db.execute(
            "SELECT gateway, recipient, campaign_key, message_id, sent_at FROM sms_messages "
            "WHERE state IN ('accepted', 'ambiguous') AND sent_at IS NOT NULL AND campaign_key NOT LIKE ?",
            [f"{REPLIES_DAG}.%"],
        ):
            ledger.setdefault((gateway, recipient), []).append((_when(sent_at), key, message_id))
        tied: Counter = Counter()
        wrong = []
        for g in GATEWAYS:
            for message_id, (sender, _intent, key, matched, received_at) in stored[g].items():
                latest = _when(received_at) + timedelta(seconds=MATCH_TOLERANCE_SECONDS)
                before = [m for m in ledger.get((g, sender), []) if m[0] <= latest]
                want = max(before)[1:] if before else (None, None)
                if (key, matched) != want:
                    wrong.append(f"{g} reply {message_id}: {key} (expected {want[0]})")
                tied[f"{g} {key.split('.')[0] if key else 'not in the ledger'}"] += 1
        self.check(
            f"{REPLIES_DAG}: each reply names the last ledger message sent to its sender before it",
            bool(tied) and not wrong,
            f"{_fmt_counts(tied)}; {len(wrong)} named otherwise"
            + (f": {', '.join(wrong[:3])}" if wrong else ""),
        )

    def _verify_next_campaign(self, db: sqlite3.Connection, exp: Expected, stopped: set[str]) -> None:
        prevented = stopped & exp.recipients  # the STOP senders the campaign would otherwise reach
        summary = next(iter(self._xcoms(REPLIES_DAG, "next_campaign")), {})
        got = Counter({k: summary.get(k, 0) for k in ("input", *SEND_COUNTS)})
        want = Counter(
            {
                "input": exp.input,
                "accepted": exp.accepted - len(prevented),
                "rejected": exp.rejected,
                "suppressed": exp.suppressed + len(prevented),
                "duplicates": exp.duplicates,
            }
        )
        reasons = Counter(summary.get("suppressed_reasons") or {})
        key, _ = self._ledger(db, REPLIES_DAG)
        recorded = {
            r
            for (r,) in db.execute(
                "SELECT recipient FROM sms_messages WHERE campaign_key = ? AND state = 'suppressed' "
                "AND error = 'opted out'",
                [key],
            )
        }
        self.check(
            f"{REPLIES_DAG}: the next campaign's counts add up, each opt-out suppressed as 'opted out'",
            bool(summary)
            and sum(got[k] for k in SEND_COUNTS) == got["input"]
            and +got == +want
            and reasons["opted out"] == len(prevented)
            and recorded == prevented,
            f"next_campaign: {_fmt_counts(got)} (expected {_fmt_counts(want)}); suppressed: "
            f"{_fmt_counts(reasons)}; {len(recorded)} ledger rows 'opted out', {len(prevented)} expected",
        )
        messages = self._messages(NEXT_CAMPAIGN_GATEWAY, NEXT_CAMPAIGN_BODY)
        reached = Counter(_e164(m["recipient"]) for m in messages)
        hits = sorted(set(reached) & stopped)
        self.check(
            f"{REPLIES_DAG}: no number that opted out received the next campaign",
            bool(messages)
            and not hits
            and set(reached) == exp.recipients - prevented
            and max(reached.values()) == 1,
            f"{len(reached)} recipients at {NEXT_CAMPAIGN_GATEWAY}, {len(exp.recipients - prevented)} expected; "
            f"{len(hits)} of the {len(stopped)} opted-out numbers reached"
            + (f": {', '.join(hits[:5])}" if hits else ""),
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
                    f"SELECT gateway, COUNT(*) FROM sms_contact_sync WHERE {CONTACT_ROWS} GROUP BY gateway",
                )
            )
            # Report rows per gateway and the campaign (ledger) they belong to, if any.
            report_sources = _safe(
                db,
                "SELECT r.gateway, COALESCE(MIN(l.campaign_key), ''), COUNT(*) FROM sms_delivery_report r "
                "LEFT JOIN sms_messages l ON l.gateway = r.gateway AND l.message_id = r.message_id "
                "GROUP BY r.gateway, r.message_id",
            )
            campaigns = _safe(
                db,
                "SELECT campaign_key, gateway, state, COUNT(*) FROM sms_messages "
                "GROUP BY campaign_key, gateway, state ORDER BY campaign_key",
            )
            replies_lines = replies_report(db)
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
        send_tasks = {
            "sms_campaign": "send",
            "sms_fanout_campaign": "send_shard",
            REPLIES_DAG: "next_campaign",
        }
        for (dag_id, gateway), counts in ledger.items():
            line = f"  {dag_id:<24} {gateway:<13} {_fmt_counts(counts)}"
            if dag_id in send_tasks:
                # Duplicates of a recipient get no ledger row: the send task's summary counts them.
                sent = self.send_summary(dag_id, send_tasks[dag_id])
                line += (
                    f" + duplicates {sent['duplicates']} (not in the ledger) = "
                    f"{sum(counts.values()) + sent['duplicates']} of {sent['input']} input rows"
                )
            elif dag_id == "sms_newsletter":
                line += f" = the {sum(counts.values())} contacts of the {gateway} list"
            lines.append(line)
        lines.append(
            "Contacts synced into the list 'customers' (one per subscribed number not opted out): "
            f"{_fmt_counts(contacts) or 'none'}; {len(self.expected.subscribers)} expected"
        )
        by_gateway: dict[str, Counter] = {}
        for gateway, status, n in report_rows:
            by_gateway.setdefault(gateway, Counter())[status] = n
        total = sum(n for _, _, n in report_rows)
        lines.append(f"Report table sms_delivery_report: {total} rows")
        sources: dict[str, Counter] = {}
        for gateway, key, n in report_sources:
            sources.setdefault(gateway, Counter())[
                key.split(".")[0] or "not in the ledger (gateway-side newsletter)"
            ] += n
        for gateway, counts in sorted(by_gateway.items()):
            origin = " + ".join(f"{n} {dag}" for dag, n in sorted(sources.get(gateway, Counter()).items()))
            lines.append(f"  {gateway:<13} {_fmt_counts(counts)} = {sum(counts.values())} rows: {origin}")
        for day, gateway, messages, delivered, not_delivered, pending, rate in daily:
            shown = "-" if rate is None else f"{rate:.1%}"
            lines.append(
                f"Daily summary sms_delivery_daily: {day} {gateway}: {messages} messages, {delivered} delivered, "
                f"{not_delivered} not delivered, {pending} pending, delivery rate {shown}"
            )
        lines += replies_lines
        lines.append("")
        lines.append("DAG runs (airflow dags test)")
        for r in self.results:
            lines.append(
                f"  {r.dag_id:<26} {'ok' if r.ok else 'FAILED':<7} {r.seconds:>5.0f} s   {_rel(r.log)}"
            )
        tally = Counter(c.status for c in self.checks)
        lines.append(
            f"Checks: {tally['passed']} of {len(self.checks)} passed, {tally['failed']} failed, "
            f"{tally['skipped']} skipped"
        )
        for c in self.checks:
            if not c.ok:
                lines.append(f"  {c.status.upper()} {c.name}: {c.detail}")
        return "\n".join(lines)

    def where_to_look(self, sandbox_state: Path | None) -> str:
        """The README's "Where to look afterwards", with this run's paths and port."""
        wh, env = _rel(self.warehouse), _rel(self.workdir / "env.sh")
        port = self.env["SMS_SANDBOX_PORT"]
        lines = [
            "",
            "Where to look",
            f"  Warehouse (SQLite): {wh}",
            "    tables: customers, opt_outs, sms_messages (ledger), sms_delivery_report, sms_delivery_history,",
            "            sms_delivery_daily, sms_contact_sync, sms_contact_rejects, sms_newsletters, sms_replies,",
            "            sms_opt_outs",
            f'    sqlite3 {wh} "SELECT gateway, status, COUNT(*) FROM sms_delivery_report GROUP BY 1, 2"',
            f"  DAG logs: {_rel(self.logs)}/<dag_id>.log (each task's part also in the UI's Logs tab)",
            f"  Airflow UI with these runs: source {env} && .venv/bin/airflow api-server --host 127.0.0.1 --port 8080",
            "    then http://127.0.0.1:8080/ (no login)",
        ]
        if sandbox_state is not None:
            lines += [
                f"  Sandbox gateway (stopped; its state is kept in {_rel(sandbox_state)}), on the port the "
                f"connections in {env} use ({port}):",
                f'    source {env} && .venv/bin/sms-sandbox --state {_rel(sandbox_state)} --port "$SMS_SANDBOX_PORT"',
                f"    then http://127.0.0.1:{port}/",
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
        example.verify(dag_ids)
        text = example.report()
        if demo:
            text += "\n" + example.where_to_look(state)
    echo(text)
    echo(f"\nFinished in {time.monotonic() - started:.0f} s; the sandbox is stopped.")
    return example


def demo_port() -> int:
    """The README's sandbox port if nothing listens there, else 0 (a free one; env.sh records it)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", DEMO_SANDBOX_PORT))
        except OSError:
            print(f"  port {DEMO_SANDBOX_PORT} is in use: the sandbox takes a free one (see .demo/env.sh)")
            return 0
    return DEMO_SANDBOX_PORT


def replies_report(db: sqlite3.Connection) -> list[str]:
    """Replies per gateway (by intent, by the campaign they answer), the opt-out table, and what
    the opt-outs prevented (rows suppressed 'opted out' in the replies DAG's next campaign), read
    from the warehouse ``db``: each line's parts add up to its total."""
    replies = _safe(
        db,
        "SELECT gateway, intent, COALESCE(campaign_key, ''), COUNT(*) FROM sms_replies GROUP BY 1, 2, 3",
    )
    opt_outs = _safe(db, "SELECT opted_out, source, COUNT(*) FROM sms_opt_outs GROUP BY 1, 2")
    next_suppressed = _safe(
        db,
        "SELECT error, COUNT(*) FROM sms_messages WHERE state = 'suppressed' "
        f"AND campaign_key LIKE '{REPLIES_DAG}.%' GROUP BY error",
    )
    if not replies and not opt_outs:
        return []
    cfg = sandbox_config.SandboxConfig()
    lines = [
        f"Replies in sms_replies (the sandbox: {cfg.reply_rate:.0%} of the recipients answer their "
        f"first message at a gateway, {sandbox_replies.STOP_SHARE:.0%} of them STOP)"
    ]
    intents: dict[str, Counter] = {}
    answering: dict[str, Counter] = {}
    for gateway, intent, key, n in replies:
        intents.setdefault(gateway, Counter())[intent] += n
        answering.setdefault(gateway, Counter())[key.split(".")[0] or "not in the ledger"] += n
    for gateway in (g for g in GATEWAYS if g in intents):
        total = sum(intents[gateway].values())
        tied = " + ".join(f"{n} {dag}" for dag, n in sorted(answering[gateway].items()))
        lines.append(f"  {gateway:<13} {_fmt_counts(intents[gateway])} = {total} replies, answering {tied}")
    out = Counter({source: n for opted_out, source, n in opt_outs if opted_out})
    back = sum(n for opted_out, _, n in opt_outs if not opted_out)
    lines.append(
        f"Opt-out table sms_opt_outs: {sum(out.values())} numbers opted out ({_fmt_counts(out) or 'none'}), "
        f"{back} re-subscribed"
    )
    reasons = dict(next_suppressed)
    others = _fmt_counts({k: v for k, v in reasons.items() if k != "opted out"}) or "none"
    lines.append(
        f"The opt-outs prevented {reasons.get('opted out', 0)} messages of {REPLIES_DAG}'s next campaign "
        f"(ledger rows suppressed 'opted out'; suppressed for other reasons: {others})"
    )
    return lines


def failures(example: ExampleRun) -> list[str]:
    """Failed DAG runs and checks, as lines (empty when everything passed)."""
    return [f"DAG {r.dag_id} failed: see {r.log}" for r in example.results if not r.ok] + [
        f"check failed: {c.name}: {c.detail}" for c in example.checks if not c.ok
    ]


def _when(value: Any) -> datetime:
    """A timestamp the provider stored in SQLite (ISO-8601 UTC text) as an aware datetime."""
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _e164(raw: str) -> str:
    digits = "".join(ch for ch in str(raw) if ch.isdigit())
    return "+" + digits


def _normalize(raw: Any) -> str | None:
    try:
        return normalize_phone(raw, "DE")  # the demo connections' default_region
    except InvalidPhoneNumberError:
        return None


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
    parser.add_argument(
        "--port",
        type=int,
        help=f"sandbox port (default: a free one; with --demo {DEMO_SANDBOX_PORT} if it is free, as the README says)",
    )
    parser.add_argument("--demo", action="store_true", help="also print where to look afterwards")
    args = parser.parse_args(argv)
    temporary = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="sms-example-dags-")) if temporary else args.workdir
    try:
        example = run(
            workdir,
            customers=args.customers,
            dag_ids=args.dags or DAG_ORDER,
            port=args.port if args.port is not None else (demo_port() if args.demo else 0),
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
