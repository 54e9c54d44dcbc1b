"""Reconcile: N delivery statuses from the gateway into a PostgreSQL report table.

The sandbox is first loaded with N Smstools messages (prebuilt batch requests, not timed) and its
clock moved past delivery, so every message has a final status. Then, each into a fresh database:

* **provider**: ``SmsDeliveryReportOperator.execute`` (paged reads, staging via ``COPY``, one
  set-based never-backwards merge per chunk); ``ledger_table=None``, as the baseline has no ledger.
* **naive**: the same pages read with plain ``requests``, then one
  ``INSERT ... ON CONFLICT DO UPDATE`` per row (never backwards too), committed once at the end.

Both times are split into reading the gateway and writing the database.
"""

from __future__ import annotations

import functools
import json
import os
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
    sql_connection,
    verdict,
)
from benchmarks.send import ceiling

TARGET_SPEEDUP = 20.0
RANK = {"queued": 2, "sent": 4, "delivered": 5, "undelivered": 5, "failed": 5, "rejected": 5}
NAIVE_TABLE = """CREATE TABLE IF NOT EXISTS naive_report (
    gateway VARCHAR(32) NOT NULL, message_id VARCHAR(128) NOT NULL, recipient VARCHAR(64),
    status VARCHAR(16) NOT NULL, status_rank INTEGER NOT NULL, raw_status TEXT,
    updated_at TIMESTAMP WITH TIME ZONE, PRIMARY KEY (gateway, message_id))"""
NAIVE_UPSERT = """INSERT INTO naive_report VALUES (%s, %s, %s, %s, %s, %s, now())
    ON CONFLICT (gateway, message_id) DO UPDATE SET status = EXCLUDED.status,
    status_rank = EXCLUDED.status_rank, raw_status = EXCLUDED.raw_status, updated_at = now()
    WHERE naive_report.status_rank < EXCLUDED.status_rank"""


def naive(url: str, conn_id: str) -> dict[str, float]:
    """Read every page with requests, upsert row by row; returns seconds per part and rows."""
    import psycopg2

    config = json.loads(os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"])
    db = psycopg2.connect(
        host=config["host"], port=config["port"], user=config["login"], dbname=config["schema"]
    )
    creds = CREDENTIALS["smstools"]
    headers = {"X-Client-Id": creds["login"], "X-Client-Secret": creds["password"]}
    session = requests.Session()
    session.trust_env = False
    fetch = upsert = 0.0
    rows = page = 0
    with db.cursor() as cur:
        cur.execute(NAIVE_TABLE)
        db.commit()
        while True:
            page += 1
            started = time.perf_counter()
            r = session.get(
                f"{url}/v1/message/logging", params={"limit": 2000, "page": page}, headers=headers
            )
            r.raise_for_status()
            messages = r.json()["messages"]
            fetch += time.perf_counter() - started
            if not messages:
                break
            started = time.perf_counter()
            for m in messages:
                status = str(m["status"]).lower()
                cur.execute(
                    NAIVE_UPSERT,
                    ("smstools", m["message_ID"], m["to"], status, RANK.get(status, 0), m["status"]),
                )
            upsert += time.perf_counter() - started
            rows += len(messages)
        started = time.perf_counter()
        db.commit()
        upsert += time.perf_counter() - started
        cur.execute("SELECT count(*) FROM naive_report")
        stored = cur.fetchone()[0]
    db.close()
    return {"fetch": fetch, "write": upsert, "total": fetch + upsert, "rows": rows, "stored": stored}


def provider(conn_id: str, report_conn_id: str) -> dict[str, float]:
    from airflow_provider_sms.operators.report import SmsDeliveryReportOperator
    from airflow_provider_sms.sql import get_sql_hook
    from benchmarks.common import task_context

    op = SmsDeliveryReportOperator(
        task_id="report", sms_conn_id=conn_id, report_conn_id=report_conn_id, ledger_table=None
    )
    hook = op.hook
    fetch = [0.0]
    real_request = hook.request

    @functools.wraps(real_request)
    def timed_request(call):
        started = time.perf_counter()
        try:
            return real_request(call)
        finally:
            fetch[0] += time.perf_counter() - started

    hook.request = timed_request
    timer = Timer()
    with timer():
        result = op.execute(task_context(run_id="reconcile", task_id="report"))
    stored = get_sql_hook(report_conn_id).get_first("SELECT count(*) FROM sms_delivery_report")[0]
    return {
        "fetch": fetch[0],
        "write": timer.seconds - fetch[0],
        "total": timer.seconds,
        "rows": result["fetched"],
        "stored": stored,
    }


def run(sandbox, conn_ids, rows: int, pool: NumberPool, workdir) -> tuple[list[Table], dict]:
    sandbox.reset()
    log(f"reconcile: loading the sandbox with {rows:,} Smstools messages")
    ceiling("smstools", sandbox.url, e164(pool.take(rows)), CAMPAIGN_TEXT, 1000)
    sandbox.advance(60)  # past delivery: every status is final
    results: dict[str, Any] = {}
    with sql_connection("postgres", workdir, "report_provider") as report_conn_id:
        log("reconcile: SmsDeliveryReportOperator into PostgreSQL")
        results["provider"] = provider(conn_ids["smstools"], report_conn_id)
    with sql_connection("postgres", workdir, "report_naive") as naive_conn_id:
        log("reconcile: naive row-by-row upsert into PostgreSQL")
        results["naive"] = naive(sandbox.url, naive_conn_id)
    for name, r in results.items():
        if r["stored"] != rows:
            raise RuntimeError(f"reconcile {name}: {r['stored']} rows stored, expected {rows}")
    p, n = results["provider"], results["naive"]
    speedup = n["total"] / p["total"]
    write_speedup = n["write"] / p["write"]
    table = Table(
        f"Reconcile {rows:,} statuses into PostgreSQL (Smstools, pages of 2,000)",
        ["run", "rows/s", "seconds", "HTTP to the gateway s", "parsing + PostgreSQL s"],
    )
    table.add("SmsDeliveryReportOperator", rows / p["total"], p["total"], p["fetch"], p["write"])
    table.add("naive row-by-row upsert", rows / n["total"], n["total"], n["fetch"], n["write"])
    table.notes.append(
        f"speed-up end to end: {speedup:.1f}x (target >= {TARGET_SPEEDUP:.0f}x: {verdict(speedup >= TARGET_SPEEDUP)}); "
        f"everything but the HTTP requests: {write_speedup:.1f}x"
    )
    table.notes.append(
        "both read the same pages; the naive loop commits once at the end (per-row commits would be slower)"
    )
    results["ratios"] = {"speedup": round(speedup, 2), "write_speedup": round(write_speedup, 2)}
    return [table], results
