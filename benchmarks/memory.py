"""Memory: peak RSS of SmsBulkSendOperator sending N rows read from a SQL table, N = 100k and 1M;
and of the de-duplication structure alone (RecipientSet against a set[str]) for 1M and 10M rows.

Each size runs in a fresh child process (``python -m benchmarks.memory --child ...``), so its peak
RSS belongs to that send alone; the child also reports its RSS just before ``execute`` (imports,
connection, operator), so the growth caused by the rows shows on its own. The audience table is
filled by the parent before the child starts (SQLite file or PostgreSQL).

The peak is the child's own address space's high-water mark (``VmHWM`` in ``/proc/self/status``),
not ``ru_maxrss``: Linux carries the old address space's peak across ``execve`` into
``ru_maxrss``, and ``subprocess`` starts children with ``vfork`` (or ``fork``) + ``exec``, so a child's
``ru_maxrss`` is at least the *parent's* peak RSS at spawn time (the parent here has just built the
audience rows). ``ru_maxrss`` is still reported alongside, as ``ru_maxrss_mb``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CAMPAIGN_TEMPLATE,
    SENDER,
    NumberPool,
    Table,
    connection_config,
    e164,
    log,
    sql_connection,
    verdict,
)

TARGET_PEAK_MB = 500.0
QUERY = "SELECT phone, first_name, city FROM audience ORDER BY id"


def fill_source(conn_id: str, block: range) -> None:
    """Create and fill table ``audience`` (id, phone, first_name, city) on the connection."""
    config = connection_config(conn_id)
    names = ("Ana", "Ben", "Chloé", "Dmitri", "Eve")
    phones = e164(block)
    if config["conn_type"] == "sqlite":
        with sqlite3.connect(config["host"]) as db:
            db.execute(
                "CREATE TABLE audience (id INTEGER PRIMARY KEY, phone TEXT, first_name TEXT, city TEXT)"
            )
            db.executemany(
                "INSERT INTO audience VALUES (?, ?, ?, ?)",
                ((i, p, names[i % 5], "Berlin") for i, p in enumerate(phones)),
            )
        return
    import psycopg2

    db = psycopg2.connect(
        host=config["host"], port=config["port"], user=config["login"], dbname=config["schema"]
    )
    with db, db.cursor() as cur:
        cur.execute("CREATE TABLE audience (id BIGINT PRIMARY KEY, phone TEXT, first_name TEXT, city TEXT)")
        buffer = io.StringIO("".join(f"{i}\t{p}\t{names[i % 5]}\tBerlin\n" for i, p in enumerate(phones)))
        cur.copy_expert("COPY audience FROM STDIN", buffer)
    db.close()


def child(args: argparse.Namespace) -> int:
    """In the child: send the SQL audience, print one JSON line with the measurements."""
    from benchmarks.common import current_rss_mb, own_peak_rss_mb, peak_rss_mb, quiet_airflow, task_context

    quiet_airflow()
    from airflow_provider_sms.operators.send import SmsBulkSendOperator

    op = SmsBulkSendOperator(
        task_id="send",
        sms_conn_id=args.sms_conn_id,
        message=CAMPAIGN_TEMPLATE,
        sql=QUERY,
        sql_conn_id=args.source_conn_id,
        sender=SENDER,
        ledger_conn_id=args.ledger_conn_id,
        campaign_key=f"memory-{args.rows}",
    )
    _ = op.hook.batch_size  # connection read before the baseline, like any task would
    before = current_rss_mb()
    started = time.perf_counter()
    summary = op.execute(task_context(run_id=f"memory-{args.rows}"))
    elapsed = time.perf_counter() - started
    print(
        "RESULT "
        + json.dumps(
            {
                "rows": args.rows,
                "rss_before_mb": round(before, 1),
                "peak_rss_mb": round(own_peak_rss_mb(), 1),
                "ru_maxrss_mb": round(peak_rss_mb(), 1),
                "seconds": round(elapsed, 2),
                "accepted": summary["accepted"],
            }
        ),
        flush=True,
    )
    return 0


def dedup_child(rows: int, structure: str) -> int:
    """In the child: feed ``rows`` E.164 recipients (1 % repeats) in chunks of 5,000 to the
    de-duplication structure alone; print its RSS growth (VmHWM) and time as one JSON line."""
    from airflow_provider_sms.campaign.dedup import RecipientSet
    from benchmarks.common import current_rss_mb, own_peak_rss_mb

    before = current_rss_mb()
    seen: Any = RecipientSet() if structure == "RecipientSet" else set()
    new = 0
    started = time.perf_counter()
    for start in range(0, rows, 5000):
        # Row i repeats row i - 10 when i % 100 == 99: one duplicate per hundred rows.
        chunk = [
            f"+316{10_000_000 + (i - 10 if i % 100 == 99 else i)}"
            for i in range(start, min(start + 5000, rows))
        ]
        if structure == "RecipientSet":
            new += sum(seen.first_seen(chunk))
        else:
            for r in chunk:
                if r not in seen:
                    seen.add(r)
                    new += 1
    elapsed = time.perf_counter() - started
    print(
        "RESULT "
        + json.dumps(
            {
                "rows": rows,
                "structure": structure,
                "recipients": new,
                "rss_before_mb": round(before, 1),
                "peak_rss_mb": round(own_peak_rss_mb(), 1),
                "seconds": round(elapsed, 2),
            }
        ),
        flush=True,
    )
    return 0


def measure_dedup(rows: int, structure: str) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        "--child",
        "--dedup",
        structure,
        "--rows",
        str(rows),
    ]
    return _result(
        subprocess.run(command, capture_output=True, text=True, check=False, env=os.environ.copy())
    )


def dedup_table(sizes: list[int]) -> tuple[Table, dict[str, Any]]:
    """Peak RSS growth of the de-duplication structure alone, against the ``set[str]`` it replaced."""
    table = Table(
        "Memory: the de-duplication structure alone (1 % repeated rows, chunks of 5,000)",
        ["structure", "rows", "recipients", "peak growth MB", "bytes per recipient", "seconds"],
    )
    results: dict[str, Any] = {}
    for structure in ("RecipientSet", "set[str]"):
        for rows in sizes:
            log(f"memory: {structure} alone, {rows:,} rows")
            r = measure_dedup(rows, structure)
            growth = r["peak_rss_mb"] - r["rss_before_mb"]
            table.add(
                structure, rows, r["recipients"], growth, growth * 2**20 / r["recipients"], r["seconds"]
            )
            results[f"dedup.{structure}.{rows}"] = {**r, "growth_mb": round(growth, 1)}
    table.notes.append("peak growth: the child's VmHWM minus its RSS before the first chunk")
    return table, results


def _result(done: subprocess.CompletedProcess) -> dict[str, Any]:
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(
        f"memory child failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )


def measure(sms_conn_id: str, source_conn_id: str, ledger_conn_id: str, rows: int) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        "--child",
        "--rows",
        str(rows),
        "--sms-conn-id",
        sms_conn_id,
        "--source-conn-id",
        source_conn_id,
        "--ledger-conn-id",
        ledger_conn_id,
    ]
    return _result(
        subprocess.run(command, capture_output=True, text=True, check=False, env=os.environ.copy())
    )


def run(
    sandbox,
    conn_ids: dict[str, str],
    gateway: str,
    sources: list[str],
    sizes: list[int],
    pool: NumberPool,
    workdir: Path,
    dedup_sizes: list[int] | None = None,
) -> tuple[list[Table], dict[str, Any]]:
    table = Table(
        f"Memory: peak RSS sending from a SQL table ({gateway}, ledger on SQLite)",
        [
            "source",
            "rows",
            "RSS before execute MB",
            "peak RSS MB",
            "growth MB",
            "ru_maxrss MB",
            "messages/s",
            "≤ 500 MB",
        ],
    )
    table.notes.append(
        "peak RSS: the child's own VmHWM; ru_maxrss also counts the parent's peak at spawn "
        "(Linux keeps it across fork + exec), so it is only an upper bound"
    )
    results: dict[str, Any] = {}
    for source in sources:
        peaks = []
        for rows in sizes:
            with (
                sql_connection(source, workdir, f"audience_{rows}") as source_conn_id,
                sql_connection("sqlite", workdir, f"memory_ledger_{rows}") as ledger_conn_id,
            ):
                log(f"memory: filling a {source} table with {rows:,} rows")
                fill_source(source_conn_id, pool.take(rows))
                sandbox.reset()
                if gateway in ("smstools", "textboost"):  # the sandbox starts with 1M credits
                    sandbox.set_balance(gateway, 2.0 * rows)
                log(f"memory: sending {rows:,} rows from {source} in a child process")
                result = measure(conn_ids[gateway], source_conn_id, ledger_conn_id, rows)
            if result["accepted"] != rows:
                raise RuntimeError(f"memory run accepted {result['accepted']} of {rows}")
            growth = result["peak_rss_mb"] - result["rss_before_mb"]
            peaks.append(result["peak_rss_mb"])
            table.add(
                source,
                rows,
                result["rss_before_mb"],
                result["peak_rss_mb"],
                growth,
                result["ru_maxrss_mb"],
                rows / result["seconds"],
                verdict(result["peak_rss_mb"] <= TARGET_PEAK_MB),
            )
            results[f"{source}.{rows}"] = {**result, "growth_mb": round(growth, 1)}
        if len(sizes) > 1:
            flat = peaks[-1] - peaks[0]
            table.notes.append(
                f"{source}: peak grows by {flat:,.0f} MB from {sizes[0]:,} to {sizes[-1]:,} rows "
                f"({flat / ((sizes[-1] - sizes[0]) / 1e6):,.0f} MB per million rows)"
            )
            results[f"{source}.growth_per_million_mb"] = round(flat / ((sizes[-1] - sizes[0]) / 1e6), 1)
    tables = [table]
    if dedup_sizes:
        dedup, numbers = dedup_table(dedup_sizes)
        tables.append(dedup)
        results.update(numbers)
    return tables, results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="child process of the memory benchmark")
    parser.add_argument("--child", action="store_true", required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--dedup", choices=("RecipientSet", "set[str]"), help="measure this structure alone")
    parser.add_argument("--sms-conn-id")
    parser.add_argument("--source-conn-id")
    parser.add_argument("--ledger-conn-id")
    args = parser.parse_args(argv)
    return dedup_child(args.rows, args.dedup) if args.dedup else child(args)


if __name__ == "__main__":
    sys.exit(main())
