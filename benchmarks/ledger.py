"""Ledger writes: the CPU a message costs in the ledger, per-row statements against set-based ones.

For N messages in batches of 500 and 1,000, each run into a fresh database (a new SQLite file, a
new PostgreSQL database) and a fresh ledger table, the send engine's three writes per batch:
``record`` (pending rows, ``ON CONFLICT DO NOTHING``), ``claim`` (to ``sending``) and ``mark``
(``accepted`` with the gateway's id). No gateway: the entries, claims and outcomes are built
before the clock starts, so only the ledger is measured. The statistics are refreshed as the
engine does (``analyze`` when the ledger passes 1,000, 10,000, ... rows), outside the timing.

* **per-row (reference)**: storage/reference.py, the statements before issue 20: one
  ``INSERT``/``UPDATE`` per row (``executemany``; psycopg2's ``execute_batch`` in pages of 1,000).
* **set-based**: :class:`MessageLedger`, one statement per batch and change.
* **set-based, no campaign index**: the same without ``<ledger>_campaign_started`` (the UI
  plugin's index), to show what that index costs each write.
* **set-based, first try**: what a campaign's first try writes (the ledger held none of its rows):
  ``record_sending`` (new rows straight as ``sending``, shown as record) and ``mark``, no claim.

CPU is this process's (``time.process_time``: Python, the driver, and all of SQLite, which runs
in-process) plus, on PostgreSQL, the backend process's (``/proc/<pid>/stat``, 10 ms ticks). Each
configuration runs ``repeats`` times, alternating, and the best run counts (the machine is
shared); ratios are against the per-row run of the same database and batch size.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.common import NumberPool, Table, e164, log, process_cpu_seconds, sql_connection, verdict

TARGET_US = 15.0
BATCHES = (500, 1000)
VARIANTS = ("per-row (reference)", "set-based", "set-based, no campaign index", "set-based, first try")
OPERATIONS = ("record", "claim", "mark")


def one_run(kind: str, variant: str, batch: int, phones: list[str], workdir) -> dict[str, Any]:
    """Record, claim and mark ``phones`` batch by batch into a fresh ledger; CPU seconds per part."""
    from airflow_provider_sms.messages import SendOutcome
    from airflow_provider_sms.storage.ledger import (
        ACCEPTED,
        CAMPAIGN_INDEX,
        PENDING,
        LedgerEntry,
        MessageLedger,
        idempotency_key,
    )
    from airflow_provider_sms.storage.reference import PerRowLedger
    from airflow_provider_sms.storage.table import derived_name, quote_name

    campaign = "bench-ledger"
    batches = []
    for start in range(0, len(phones), batch):
        part = phones[start : start + batch]
        batches.append(
            (
                [
                    LedgerEntry(
                        p, PENDING, idempotency_key(campaign, p), body_hash="0" * 64, segments=1, source_row=i
                    )
                    for i, p in enumerate(part, start)
                ],
                [(p, None, None) for p in part],
                [SendOutcome(p, ACCEPTED, f"msg-{p}", "queued", "QUEUED") for p in part],
            )
        )
    with sql_connection(kind, workdir, f"ledger_{batch}") as conn_id:
        cls = PerRowLedger if variant.startswith("per-row") else MessageLedger
        ledger = cls(conn_id, "sms_messages", gateway="smstools", sms_conn_id="bench_smstools")
        try:
            ledger.ensure_table()
            if variant.endswith("no campaign index"):
                index = quote_name(derived_name("sms_messages", CAMPAIGN_INDEX[0]), what="index")
                ledger.execute(f"DROP INDEX {index}")
            pid = None
            if ledger.is_postgres:
                pid = ledger.query("SELECT pg_backend_pid()")[0][0]
            client = dict.fromkeys(OPERATIONS, 0.0)
            server = dict.fromkeys(OPERATIONS, 0.0)
            wall = 0.0
            recorded = 0
            for entries, claims, outcomes in batches:
                for operation, argument in zip(OPERATIONS, (entries, claims, outcomes), strict=True):
                    method = getattr(ledger, operation)
                    if variant.endswith("first try"):
                        if operation == "claim":
                            continue  # recorded as sending already
                        if operation == "record":
                            method = ledger.record_sending
                    s0 = process_cpu_seconds(pid) or 0.0
                    w0, c0 = time.perf_counter(), time.process_time()
                    method(campaign, argument)
                    c1, w1 = time.process_time(), time.perf_counter()
                    client[operation] += c1 - c0
                    wall += w1 - w0
                    server[operation] += (process_cpu_seconds(pid) or 0.0) - s0
                before, recorded = recorded, recorded + len(entries)
                if len(str(recorded)) > len(str(before)) and recorded >= 1000:
                    ledger.analyze()  # as the send engine does (SendRun._recorded)
            counts = ledger.counts(campaign)
        finally:
            ledger.close()
    if counts != {ACCEPTED: len(phones)}:
        raise RuntimeError(f"ledger benchmark {kind} {variant}: the ledger holds {dict(counts)}")
    return {"client": client, "server": server if pid else None, "wall": wall}


def run(kinds: list[str], messages: int, repeats: int, pool: NumberPool, workdir) -> tuple[list[Table], dict]:
    results: dict[str, Any] = {}
    tables = []
    for kind in kinds:
        table = Table(
            f"Ledger writes, {messages:,} messages: record + claim + mark, {kind.replace('postgres', 'PostgreSQL').replace('sqlite', 'SQLite')}",
            [
                "batch",
                "writes",
                "client µs/msg",
                "server µs/msg",
                "total µs/msg",
                "record",
                "claim",
                "mark",
                "wall s",
                "vs per-row",
                f"target <= {TARGET_US:.0f} µs",
            ],
        )
        for batch in BATCHES:
            best: dict[str, dict[str, Any]] = {}
            for repeat in range(repeats):
                for variant in VARIANTS:
                    phones = e164(pool.take(messages))
                    log(f"ledger: {kind}, batches of {batch}, {variant}, run {repeat + 1}/{repeats}")
                    r = one_run(kind, variant, batch, phones, workdir)
                    r["total"] = sum(r["client"].values()) + sum((r["server"] or {}).values())
                    if variant not in best or r["total"] < best[variant]["total"]:
                        best[variant] = r
            base = best[VARIANTS[0]]["total"]
            for variant in VARIANTS:
                r = best[variant]
                per = 1e6 / messages
                server = r["server"] or dict.fromkeys(OPERATIONS, 0.0)
                parts = [(r["client"][op] + server[op]) * per for op in OPERATIONS]
                table.add(
                    f"{batch:,}",
                    variant,
                    sum(r["client"].values()) * per,
                    sum(server.values()) * per if r["server"] else "in-process",
                    r["total"] * per,
                    *parts,
                    r["wall"],
                    f"{base / r['total']:.2f}x",
                    verdict(r["total"] * per <= TARGET_US),
                )
                results[f"{kind}/{batch}/{variant}"] = {
                    "client_us": round(sum(r["client"].values()) * per, 2),
                    "server_us": round(sum(server.values()) * per, 2) if r["server"] else None,
                    "total_us": round(r["total"] * per, 2),
                    "us_per_op": dict(zip(OPERATIONS, (round(p, 2) for p in parts), strict=True)),
                    "wall_s": round(r["wall"], 3),
                }
        table.notes.append(
            "µs of CPU per message; record / claim / mark: their share (client + server); best of "
            f"{repeats} alternating runs; 'vs per-row': the per-row run's total CPU over this one's"
        )
        if kind == "postgres":
            table.notes.append(
                "server: the PostgreSQL backend's CPU (/proc/<pid>/stat, 10 ms ticks); WAL writer, "
                "checkpointer and autovacuum are not counted; commits wait for the WAL flush (wall time)"
            )
        else:
            table.notes.append("SQLite runs in this process: its CPU is in the client column")
        tables.append(table)
    return tables, results
