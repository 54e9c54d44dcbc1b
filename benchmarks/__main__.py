"""``python -m benchmarks``: run the benchmarks and print their tables, ratios measured in the same run.

    python -m benchmarks                          # everything at full size (takes long: see RESULTS.md)
    python -m benchmarks --quick                  # small sizes, a smoke test of the whole run (~2 min)
    python -m benchmarks --only send --messages 20000 --gateways smsgateway24 --ledgers sqlite
    python -m benchmarks --profile --json out.json --markdown out.md
    python -m benchmarks --only phones            # phone validation against phonenumbers, 1M numbers
    python -m benchmarks --only ui               # the campaigns page over a 1M-row PostgreSQL ledger
    python -m benchmarks --only campaign         # one 1M-recipient campaign end to end on PostgreSQL
    python -m benchmarks --only ledger           # CPU per message of the ledger's writes, per-row vs set-based

The sandbox gateway runs as a separate process (``start_sandbox_process``), so client and server do
not share a GIL; on a 2-core machine they still share the cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import (
    GATEWAYS,
    LEDGERS,
    NumberPool,
    Table,
    log,
    machine,
    postgres_unavailable,
    quiet_airflow,
    set_gateway_connections,
    workdir,
)

BENCHMARKS = ("send", "sync", "reconcile", "memory", "phones", "ui", "paging", "campaign", "ledger")
NO_GATEWAY = {"phones", "ledger"}  # benchmarks that need no sandbox
QUICK = {
    "phones": 20_000,
    "messages": 5_000,
    "naive_messages": 1_000,
    "memory_rows": "5000,20000",
    "memory_dedup_rows": "100000",
    "contacts": 20_000,
    "status_rows": 20_000,
    "naive_commit_rows": 2_000,
    "ui_rows": 50_000,
    "paging_items": 20_000,
    "paging_contacts": 20_000,
    "campaign_recipients": 20_000,
    "ledger_messages": 5_000,
}


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help="comma-separated: " + ", ".join(BENCHMARKS)
    )
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke test: " + str(QUICK))
    parser.add_argument("--gateways", default=",".join(GATEWAYS))
    parser.add_argument(
        "--ledgers", default=",".join(LEDGERS), help="ledger databases for the send and ledger benchmarks"
    )
    parser.add_argument("--messages", type=int, default=100_000, help="messages per bulk-send run")
    parser.add_argument(
        "--naive-messages", type=int, default=None, help="messages in the naive loop (default: --messages)"
    )
    parser.add_argument(
        "--memory-rows", default="100000,1000000", help="audience sizes of the memory benchmark"
    )
    parser.add_argument(
        "--memory-sources", default="sqlite,postgres", help="SQL sources of the memory benchmark"
    )
    parser.add_argument("--memory-gateway", default="smstools")
    parser.add_argument(
        "--memory-dedup-rows",
        default="1000000,10000000",
        help="rows fed to the de-duplication structure alone (and to a set[str]); empty: skip",
    )
    parser.add_argument(
        "--rtt-ms", type=float, default=0, help="send benchmark: add this latency to every gateway request"
    )
    parser.add_argument(
        "--in-flight",
        default="",
        help="send benchmark: run the provider phase once per max_in_flight value (e.g. 1,2,4,8);\n"
        "the ratios then compare each with the naive loop and with 1 in flight",
    )
    parser.add_argument("--contacts", type=int, default=1_000_000, help="contacts in the sync benchmark")
    parser.add_argument(
        "--changed", type=float, default=0.001, help="share of contacts changed for the re-sync"
    )
    parser.add_argument("--sync-gateway", default="smstools")
    parser.add_argument(
        "--status-rows", type=int, default=1_000_000, help="status rows in the reconcile benchmark"
    )
    parser.add_argument(
        "--naive-status-rows",
        type=int,
        default=None,
        help="statuses of the naive upsert committed once (default: all)",
    )
    parser.add_argument(
        "--naive-commit-rows",
        type=int,
        default=20_000,
        help="statuses of the naive upsert committed per row (at most --naive-status-rows;\n"
        "a WAL flush per row: about 3.5 ms each on this machine)",
    )
    parser.add_argument(
        "--phones", type=int, default=1_000_000, help="generated numbers in the phone validation benchmark"
    )
    parser.add_argument(
        "--ui-rows",
        type=int,
        default=1_000_000,
        help="ledger rows of the campaigns page benchmark (PostgreSQL)",
    )
    parser.add_argument("--ui-repeats", type=int, default=5, help="calls per phase after the first")
    parser.add_argument(
        "--no-ui-http", action="store_true", help="ui: skip the phase over a real airflow api-server"
    )
    parser.add_argument(
        "--paging-items", type=int, default=1_000_000, help="messages per gateway in the paging benchmark"
    )
    parser.add_argument(
        "--paging-contacts", type=int, default=1_000_000, help="Smstools contacts in the paging benchmark"
    )
    parser.add_argument(
        "--campaign-recipients",
        type=int,
        default=1_000_000,
        help="audience rows of the end-to-end campaign (PostgreSQL)",
    )
    parser.add_argument("--campaign-gateway", default="smstools")
    parser.add_argument(
        "--ledger-messages", type=int, default=50_000, help="messages per run of the ledger benchmark"
    )
    parser.add_argument(
        "--ledger-repeats", type=int, default=2, help="ledger: runs per configuration (the best counts)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="profile one provider send per gateway (pyinstrument)"
    )
    parser.add_argument("--profile-messages", type=int, default=20_000)
    parser.add_argument("--json", type=Path, help="also write every number to this JSON file")
    parser.add_argument("--markdown", type=Path, help="also write the tables as Markdown (for RESULTS.md)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            if parser.get_default(key) == getattr(args, key):
                setattr(args, key, value)
    only = _csv(args.only)
    unknown = set(only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    gateways = _csv(args.gateways)
    ledgers = _csv(args.ledgers)
    memory_sources = _csv(args.memory_sources)
    missing_pg = postgres_unavailable()
    if missing_pg and (
        "postgres" in ledgers
        or "postgres" in memory_sources
        or "reconcile" in only
        or "ui" in only
        or "campaign" in only
    ):
        log(f"skipping PostgreSQL: {missing_pg}")
        ledgers = [x for x in ledgers if x != "postgres"]
        memory_sources = [x for x in memory_sources if x != "postgres"]

    quiet_airflow()
    from airflow_provider_sms.sandbox.testing import start_sandbox_process

    info = machine()
    tables: list[Table] = []
    results: dict[str, Any] = {"machine": info, "arguments": {k: str(v) for k, v in vars(args).items()}}
    pool = NumberPool()
    sandbox = None
    if set(only) - NO_GATEWAY:
        log("starting the sandbox gateway as a subprocess")
        sandbox = start_sandbox_process(delivery_seconds=2)
    try:
        conn_ids = set_gateway_connections(sandbox.url) if sandbox else {}
        with workdir() as tmp:
            if "send" in only:
                from benchmarks import send

                naive = args.naive_messages or args.messages
                in_flight = [int(n) for n in _csv(args.in_flight)] or None
                new, numbers = send.run(
                    sandbox,
                    conn_ids,
                    gateways,
                    ledgers,
                    args.messages,
                    naive,
                    pool,
                    tmp,
                    args.rtt_ms,
                    in_flight,
                )
                tables += new
                results["send"] = numbers
                _print(new)
                if args.profile:
                    results["profile"] = _profile(
                        sandbox, conn_ids, gateways, args.profile_messages, pool, tmp
                    )
            if "sync" in only:
                if _exists("airflow_provider_sms.operators.contacts"):
                    from benchmarks import sync

                    new, numbers = sync.run(
                        sandbox, conn_ids, args.sync_gateway, args.contacts, args.changed, tmp
                    )
                    tables += new
                    results["sync"] = numbers
                    _print(new)
                else:
                    log("sync: airflow_provider_sms/operators/contacts.py does not exist yet; skipped")
            if "reconcile" in only:
                if missing_pg:
                    log("reconcile: needs PostgreSQL; skipped")
                elif _exists("airflow_provider_sms.operators.report"):
                    from benchmarks import reconcile

                    new, numbers = reconcile.run(
                        sandbox,
                        conn_ids,
                        args.status_rows,
                        pool,
                        tmp,
                        naive_rows=args.naive_status_rows,
                        naive_commit_rows=args.naive_commit_rows,
                    )
                    tables += new
                    results["reconcile"] = numbers
                    _print(new)
                else:
                    log("reconcile: airflow_provider_sms/operators/report.py does not exist yet; skipped")
            if "ui" in only:
                if missing_pg:
                    log("ui: needs PostgreSQL; skipped")
                else:
                    from benchmarks import ui

                    new, numbers = ui.run(args.ui_rows, args.ui_repeats, tmp, http=not args.no_ui_http)
                    tables += new
                    results["ui"] = numbers
                    _print(new)
            if "memory" in only:
                from benchmarks import memory

                sizes = [int(x) for x in _csv(str(args.memory_rows))]
                dedup_sizes = [int(x) for x in _csv(str(args.memory_dedup_rows))]
                new, numbers = memory.run(
                    sandbox, conn_ids, args.memory_gateway, memory_sources, sizes, pool, tmp, dedup_sizes
                )
                tables += new
                results["memory"] = numbers
                _print(new)
            if "phones" in only:
                from benchmarks import phones

                new, numbers = phones.run(args.phones)
                tables += new
                results["phones"] = numbers
                _print(new)
            if "ledger" in only:
                from benchmarks import ledger

                new, numbers = ledger.run(ledgers, args.ledger_messages, args.ledger_repeats, pool, tmp)
                tables += new
                results["ledger"] = numbers
                _print(new)
            if "paging" in only:
                from benchmarks import paging

                new, numbers = paging.run(
                    sandbox.url, gateways, args.paging_items, args.paging_contacts, pool
                )
                tables += new
                results["paging"] = numbers
                _print(new)
            if "campaign" in only:
                if missing_pg:
                    log("campaign: needs PostgreSQL; skipped")
                else:
                    from benchmarks import campaign

                    new, numbers = campaign.run(
                        sandbox, conn_ids, args.campaign_gateway, args.campaign_recipients, pool, tmp
                    )
                    tables += [new]
                    results["campaign"] = numbers
                    _print([new])
    finally:
        if sandbox is not None:
            sandbox.stop()

    info["load average at the end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print()
    print("Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    if args.json:
        args.json.write_text(json.dumps({**results, "tables": [t.as_dict() for t in tables]}, indent=2))
    if args.markdown:
        lines = ["**Machine**: " + "; ".join(f"{k}: {v}" for k, v in info.items()), ""]
        args.markdown.write_text("\n".join(lines + [t.markdown() + "\n" for t in tables]))
    return 0


def _print(tables: list[Table]) -> None:
    for table in tables:
        print()
        print(table.text(), flush=True)


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _profile(sandbox, conn_ids, gateways, messages, pool, tmp) -> dict[str, str]:
    from benchmarks import profiling, send
    from benchmarks.common import audience_frame, sql_connection

    out = {}
    for gateway in gateways:
        profile = profiling.profiler()
        if profile is None:
            log("--profile needs pyinstrument (pip install pyinstrument); skipped")
            return out
        frame = audience_frame(pool.take(messages))
        with sql_connection("sqlite", tmp, f"profile_{gateway}") as ledger_conn_id:
            sandbox.reset()
            log(f"profiling {gateway}: {messages:,} messages, ledger on SQLite")
            send.provider_run(conn_ids[gateway], ledger_conn_id, frame, f"profile-{gateway}", profile=profile)
        text = profiling.summary(profile)
        out[gateway] = text
        print(
            f"\nProfile of SmsBulkSendOperator.execute, {gateway}, {messages:,} messages (share of wall time)"
        )
        print(text, flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
