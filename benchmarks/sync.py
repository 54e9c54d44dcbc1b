"""Contact sync: SmsContactSyncOperator mirroring a SQL table of N contacts into a gateway list.

Phases, each in a fresh child process (so its peak RSS is its own), on the same source table and
sync-state table:

1. **first sync**: every contact is new;
2. **unchanged re-run**: nothing changed, so no request may leave (wall time and peak memory);
3. **0.1 % changed (updates)**: that share of rows gets a new first name;
4. **0.1 % changed (new rows)**: that many rows are added to the table.

Requests are counted at the sandbox per phase, and set against the floor the gateway's API allows:
``ceil(created / batch)`` for creates where it has a batch endpoint, one request per update where
it has none (Smstools updates are one ``PATCH /v1/contact`` each; TextBoost and SmsGateway24 write
one contact per request).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Table, connection_config, log, sql_connection, verdict

QUERY = "SELECT id, phone, first_name, last_name FROM contacts ORDER BY id"
NAMES = ("Ana", "Ben", "Chloé", "Dmitri", "Eve", "Finn", "Gül", "Hana")
# Contacts in one create request, per gateway (one per request where the API has no batch create).
BATCH_CREATE = {"smstools": 500, "textboost": 1, "smsgateway24": 1}


def _phone(i: int) -> str:
    return f"+316{20_000_000 + i}"


def fill(path: str, start: int, count: int) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS contacts (id INTEGER PRIMARY KEY, phone TEXT, first_name TEXT, last_name TEXT)"
        )
        db.executemany(
            "INSERT INTO contacts VALUES (?, ?, ?, ?)",
            ((i, _phone(i), NAMES[i % len(NAMES)], f"Family{i % 9973}") for i in range(start, start + count)),
        )


def change_names(path: str, every: int) -> int:
    with sqlite3.connect(path) as db:
        return db.execute(
            "UPDATE contacts SET first_name = first_name || 'x' WHERE id % ? = 0", (every,)
        ).rowcount


def child(args: argparse.Namespace) -> int:
    from benchmarks.common import current_rss_mb, own_peak_rss_mb, quiet_airflow, task_context

    quiet_airflow()
    from airflow_provider_sms.operators.contacts import SmsContactSyncOperator

    op = SmsContactSyncOperator(
        task_id="sync",
        sms_conn_id=args.sms_conn_id,
        sql=QUERY,
        sql_conn_id=args.source_conn_id,
        key_column="id",
        list_name="benchmark",
        create_list_if_missing=True,
        state_conn_id=args.state_conn_id,
    )
    _ = op.hook.batch_size
    before = current_rss_mb()
    started = time.perf_counter()
    summary = op.execute(task_context(run_id=args.run_id, task_id="sync"))
    elapsed = time.perf_counter() - started
    result = {
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(own_peak_rss_mb(), 1),
        "seconds": elapsed,
    }
    print("RESULT " + json.dumps({**result, "summary": summary}, default=str), flush=True)
    return 0


def _phase(conn_id: str, source: str, state: str, run_id: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.sync", "--child", "--sms-conn-id", conn_id]
    command += ["--source-conn-id", source, "--state-conn-id", state, "--run-id", run_id]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=os.environ.copy())
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(
        f"sync child failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )


def run(sandbox, conn_ids: dict[str, str], gateway: str, contacts: int, changed: float, workdir: Path):
    table = Table(
        f"Contact sync, {contacts:,} contacts ({gateway}; source and state on SQLite)",
        [
            "phase",
            "rows changed",
            "requests",
            "API floor",
            "requests = floor",
            "seconds",
            "contacts read/s",
            "peak RSS MB",
        ],
    )
    results: dict[str, Any] = {}
    sandbox.reset()
    changes = max(1, round(contacts * changed))
    with (
        sql_connection("sqlite", workdir, "sync_source") as source,
        sql_connection("sqlite", workdir, "sync_state") as state,
    ):
        path = connection_config(source)["host"]
        log(f"sync: filling the source with {contacts:,} contacts")
        fill(path, 0, contacts)
        batch = BATCH_CREATE.get(gateway, 1)
        phases = [
            ("first sync", contacts, None, math.ceil(contacts / batch)),
            ("unchanged re-run", 0, None, 0),
            (f"{changed:.1%} changed (updates)", changes, "update", changes),
            (f"{changed:.1%} changed (new rows)", changes, "insert", math.ceil(changes / batch)),
        ]
        for index, (name, rows, change, floor) in enumerate(phases):
            if change == "update":
                rows = change_names(path, max(1, contacts // changes))
                floor = rows
            elif change == "insert":
                fill(path, contacts, changes)
            before = sandbox.stats()["requests"]["by_gateway"][gateway]
            log(f"sync: {name}")
            measured = _phase(conn_ids[gateway], source, state, f"bench_sync_{index}")
            requests_made = sandbox.stats()["requests"]["by_gateway"][gateway] - before
            writes = _write_requests(sandbox, gateway)
            table.add(
                name,
                rows,
                requests_made,
                floor,
                verdict(requests_made <= floor + 3),  # + list look-ups: a handful at most
                measured["seconds"],
                (contacts + (changes if change == "insert" else 0)) / measured["seconds"],
                measured["peak_rss_mb"],
            )
            results[name] = {
                **measured,
                "rows_changed": rows,
                "requests": requests_made,
                "floor": floor,
                "writes_so_far": writes,
            }
    table.notes.append(
        "API floor: creates in batches where the gateway has a batch create (Smstools: POST /v1/contact "
        "with an array), one request per contact otherwise; updates one request each on every gateway "
        "(none has a batch update). 'requests = floor' allows 3 extra requests for finding the list."
    )
    return [table], results


def _write_requests(sandbox, gateway: str) -> dict[str, int]:
    by_endpoint = sandbox.stats()["requests"]["by_endpoint"][gateway]
    return {k: v for k, v in by_endpoint.items() if "contact" in k or "group" in k}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="child process of the sync benchmark")
    parser.add_argument("--child", action="store_true", required=True)
    parser.add_argument("--sms-conn-id", required=True)
    parser.add_argument("--source-conn-id", required=True)
    parser.add_argument("--state-conn-id", required=True)
    parser.add_argument("--run-id", required=True)
    return child(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
