"""Reconcile: N delivery statuses from the gateway into a PostgreSQL report table.

The sandbox is first loaded with N Smstools messages (prebuilt batch requests, not timed) and its
clock moved past delivery, so every message has a final status. Then, each into a fresh database:

* **provider**: ``SmsDeliveryReportOperator.execute`` (paged reads in a background thread, staging
  via ``COPY``, one set-based never-backwards merge per chunk); ``ledger_table=None``, as the
  baselines have no ledger.
* **naive, commit per row**: the same pages read with plain ``requests``, then one
  ``INSERT ... ON CONFLICT DO UPDATE`` per status in autocommit, as a hand-written loop does.
* **naive, one transaction**: the same loop committed once at the end (its fastest form).

Both naive loops write what the operator writes: the same table and columns (E.164 recipient,
message key, created / status / delivered / failed times, raw status, first seen / updated) and the
same never-backwards rule. Afterwards the rows are compared: every status a naive loop stored must
equal the operator's row for that message, or the benchmark fails.

A commit per row waits for the WAL flush (about 3.5 ms on this machine's disk), so that loop reads
only the first ``naive_commit_rows`` statuses; the one-transaction loop the first
``naive_rows`` (default: all). Speed-ups compare rows per second. The samples favour the naive
loops, if anything: their tables stay small.
"""

from __future__ import annotations

import io
import time
from typing import Any

import requests

from benchmarks.common import (
    CAMPAIGN_TEXT,
    CREDENTIALS,
    NumberPool,
    Table,
    Timer,
    e164,
    log,
    pg_connect,
    sql_connection,
    verdict,
)
from benchmarks.send import ceiling

TARGET_SPEEDUP = 20.0  # against a commit per row (issue 20)
TARGET_SPEEDUP_ONE_TRANSACTION = 10.0  # against one transaction (issue 20)
NAIVE_COMMIT_ROWS = 20_000
PAGE = 2000
# The report's columns as the operator fills them from a status (the last two are write times).
CHECKED = (
    "gateway, message_id, recipient, message_key, status, status_rank, raw_status, created_at, "
    "status_at, delivered_at, failed_at"
)


def _naive_table() -> str:
    from airflow_provider_sms.storage.report import REPORT_COLUMNS

    cols = ", ".join(
        f"{name} {'TIMESTAMP WITH TIME ZONE' if kind == 'TIMESTAMP' else kind}"
        for name, kind in REPORT_COLUMNS
    )
    return f"CREATE TABLE IF NOT EXISTS naive_report ({cols}, PRIMARY KEY (gateway, message_id))"


# Gateway times are naive text in the connection's zone (UTC here); PostgreSQL reads them.
_TS = "CAST(%s AS TIMESTAMP) AT TIME ZONE 'UTC'"
NAIVE_UPSERT = f"""INSERT INTO naive_report AS t ({CHECKED}, first_seen_at, updated_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, {_TS}, {_TS}, {_TS}, {_TS}, now(), now())
    ON CONFLICT (gateway, message_id) DO UPDATE SET status = excluded.status,
    status_rank = excluded.status_rank, raw_status = excluded.raw_status, status_at = excluded.status_at,
    recipient = COALESCE(t.recipient, excluded.recipient),
    message_key = COALESCE(t.message_key, excluded.message_key),
    created_at = COALESCE(t.created_at, excluded.created_at),
    delivered_at = COALESCE(t.delivered_at, excluded.delivered_at),
    failed_at = COALESCE(t.failed_at, excluded.failed_at), updated_at = excluded.updated_at
    WHERE excluded.status_rank > t.status_rank"""


def naive(url: str, conn_id: str, rows: int, commit_per_row: bool) -> dict[str, float]:
    """Read the first ``rows`` statuses page by page with requests and upsert them one by one
    (autocommit, or one transaction); seconds per part and rows."""
    from airflow_provider_sms.hooks.smstools import STATUS_MAP
    from airflow_provider_sms.messages import DeliveryStatus

    db = pg_connect(conn_id)
    with db.cursor() as cur:
        cur.execute(_naive_table())
    db.commit()
    db.autocommit = commit_per_row
    creds = CREDENTIALS["smstools"]
    headers = {"X-Client-Id": creds["login"], "X-Client-Secret": creds["password"]}
    session = requests.Session()
    session.trust_env = False
    unknown = DeliveryStatus.UNKNOWN
    fetch = upsert = 0.0
    done = page = 0
    with db.cursor() as cur:
        while done < rows:
            page += 1
            started = time.perf_counter()
            r = session.get(
                f"{url}/v1/message/logging", params={"limit": PAGE, "page": page}, headers=headers
            )
            r.raise_for_status()
            messages = r.json()["messages"][: rows - done]
            fetch += time.perf_counter() - started
            if not messages:
                break
            started = time.perf_counter()
            for m in messages:
                raw = m["status"]
                status = STATUS_MAP.get(str(raw).strip().lower(), unknown)
                at = m["response"]["statusdate"]
                cur.execute(
                    NAIVE_UPSERT,
                    (
                        "smstools",
                        m["message_ID"],
                        "+" + m["to"],
                        m["reference"],
                        status.value,
                        status.rank,
                        raw,
                        m["date"],
                        at,
                        at if status is DeliveryStatus.DELIVERED else None,
                        at if status.is_final and status is not DeliveryStatus.DELIVERED else None,
                    ),
                )
            upsert += time.perf_counter() - started
            done += len(messages)
        started = time.perf_counter()
        db.commit()
        upsert += time.perf_counter() - started
        cur.execute("SELECT count(*) FROM naive_report")
        stored = cur.fetchone()[0]
    db.close()
    return {"fetch": fetch, "write": upsert, "total": fetch + upsert, "rows": done, "stored": stored}


def provider(conn_id: str, report_conn_id: str) -> dict[str, float]:
    """The operator; ``fetch`` is the time in HTTP requests (in its reader thread) and ``write``
    the time in its database writes (staging + merge): they overlap, so they may add up to more
    than ``total``."""
    from airflow_provider_sms.operators.report import SmsDeliveryReportOperator
    from airflow_provider_sms.storage import report as report_module
    from airflow_provider_sms.storage.table import get_sql_hook
    from benchmarks.common import task_context, timed

    op = SmsDeliveryReportOperator(
        task_id="report", sms_conn_id=conn_id, report_conn_id=report_conn_id, ledger_table=None
    )
    hook = op.hook
    spent = {"fetch": 0.0, "write": 0.0}

    hook.request = timed(spent, "fetch", hook.request)
    real_write = report_module.StagedWriter.write
    report_module.StagedWriter.write = timed(spent, "write", real_write)
    timer = Timer()
    try:
        with timer():
            result = op.execute(task_context(run_id="reconcile", task_id="report"))
    finally:
        report_module.StagedWriter.write = real_write
    stored = get_sql_hook(report_conn_id).get_first("SELECT count(*) FROM sms_delivery_report")[0]
    return {**spent, "total": timer.seconds, "rows": result["fetched"], "stored": stored}


def mismatches(provider_conn_id: str, naive_conn_id: str) -> int:
    """Rows of the naive table (``CHECKED`` columns) that differ from, or are missing in, the
    operator's report table; 0 when both wrote the same."""
    columns = f"({CHECKED})::text"
    naive_db, provider_db = pg_connect(naive_conn_id), pg_connect(provider_conn_id)
    try:
        data = io.StringIO()
        with naive_db.cursor() as cur:
            cur.copy_expert(f"COPY (SELECT message_id, {columns} FROM naive_report) TO STDOUT", data)
        data.seek(0)
        with provider_db.cursor() as cur:
            cur.execute("CREATE TEMP TABLE naive_rows (message_id TEXT PRIMARY KEY, line TEXT)")
            cur.copy_expert("COPY naive_rows FROM STDIN", data)
            cur.execute(
                f"SELECT count(*) FROM naive_rows n LEFT JOIN sms_delivery_report t "
                f"ON t.gateway = 'smstools' AND t.message_id = n.message_id "
                f"WHERE t.message_id IS NULL OR n.line <> (t.{CHECKED.replace(', ', ', t.')})::text"
            )
            return cur.fetchone()[0]
    finally:
        naive_db.close()
        provider_db.close()


def run(
    sandbox,
    conn_ids,
    rows: int,
    pool: NumberPool,
    workdir,
    naive_rows: int | None = None,
    naive_commit_rows: int = NAIVE_COMMIT_ROWS,
) -> tuple[list[Table], dict]:
    naive_rows = min(naive_rows or rows, rows)
    commit_rows = min(naive_commit_rows, naive_rows)
    sandbox.reset()
    log(f"reconcile: loading the sandbox with {rows:,} Smstools messages")
    ceiling("smstools", sandbox.url, e164(pool.take(rows)), CAMPAIGN_TEXT, 1000)
    sandbox.advance(60)  # past delivery: every status is final
    results: dict[str, Any] = {}
    with sql_connection("postgres", workdir, "report_provider") as report_conn_id:
        log("reconcile: SmsDeliveryReportOperator into PostgreSQL")
        results["provider"] = provider(conn_ids["smstools"], report_conn_id)
        if results["provider"]["stored"] != rows:
            raise RuntimeError(
                f"reconcile provider: {results['provider']['stored']} rows stored, expected {rows}"
            )
        for name, count, per_row in (("naive_commit", commit_rows, True), ("naive_batch", naive_rows, False)):
            with sql_connection("postgres", workdir, f"report_{name}") as naive_conn_id:
                how = "a commit per row" if per_row else "one transaction"
                log(f"reconcile: naive row-by-row upsert, {how}, {count:,} statuses")
                results[name] = naive(sandbox.url, naive_conn_id, count, per_row)
                if results[name]["stored"] != count:
                    raise RuntimeError(
                        f"reconcile {name}: {results[name]['stored']} rows stored, expected {count}"
                    )
                bad = mismatches(report_conn_id, naive_conn_id)
                if bad:
                    raise RuntimeError(f"reconcile {name}: {bad:,} rows differ from the operator's")
    p = results["provider"]
    rate = {name: r["rows"] / r["total"] for name, r in results.items()}
    speedup = {name: rate["provider"] / rate[name] for name in ("naive_commit", "naive_batch")}
    table = Table(
        f"Reconcile {rows:,} statuses into PostgreSQL (Smstools, pages of {PAGE:,})",
        ["run", "statuses", "rows/s", "seconds", "HTTP to the gateway s", "database writes s", "speed-up"],
    )
    table.add(
        "SmsDeliveryReportOperator", p["rows"], rate["provider"], p["total"], p["fetch"], p["write"], ""
    )
    labels = {
        "naive_commit": "naive row-by-row upsert, commit per row",
        "naive_batch": "naive row-by-row upsert, one transaction",
    }
    for name, label in labels.items():
        r = results[name]
        table.add(label, r["rows"], rate[name], r["total"], r["fetch"], r["write"], f"{speedup[name]:.1f}x")
    table.notes.append(
        f"speed-up (rows/s) against a commit per row: {speedup['naive_commit']:.1f}x "
        f"(target >= {TARGET_SPEEDUP:.0f}x: {verdict(speedup['naive_commit'] >= TARGET_SPEEDUP)}); "
        f"against one transaction: {speedup['naive_batch']:.1f}x "
        f"(target >= {TARGET_SPEEDUP_ONE_TRANSACTION:.0f}x: "
        f"{verdict(speedup['naive_batch'] >= TARGET_SPEEDUP_ONE_TRANSACTION)})"
    )
    table.notes.append(
        "the operator reads the gateway in a background thread while it writes: its HTTP and database "
        "seconds overlap; the naive loops' add up (their database seconds include their per-row Python)"
    )
    table.notes.append(
        "the naive loops write the operator's columns with the same never-backwards rule; every row "
        "they stored was checked equal to the operator's; they read the first statuses only (see "
        "statuses), which favours them: small tables"
    )
    results["ratios"] = {
        "speedup_vs_commit_per_row": round(speedup["naive_commit"], 2),
        "speedup_vs_one_transaction": round(speedup["naive_batch"], 2),
    }
    return [table], results
