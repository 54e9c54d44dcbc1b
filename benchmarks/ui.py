"""UI: how long the campaigns page (``/sms-campaigns/``, the provider's Airflow plugin) takes over a
PostgreSQL ledger of N rows (default 1,000,000: 100 campaigns of 10,000 recipients, 95 % accepted)
and its delivery report (one row per accepted message), built in the database with
``generate_series`` into the tables the operators create.

Phases, on the same data:

* **baseline**: what a page that counts every campaign before it picks the newest runs: one
  ``GROUP BY campaign_key`` over the whole ledger (counts per state, segments, first row) and one over
  the whole report (rows per status). SQL only: no links, no HTML.
* **page, no campaign indexes**: the page's own work (``plugins.pages.listing`` and the HTML, in
  this process) with the two campaign indexes dropped (ledger ``campaign_started``, report
  ``campaign_status``).
* **page**: the same with the indexes the operators create, after ``VACUUM ANALYZE`` (what
  autovacuum does after a bulk load): target < 1 s.
* **a campaign's page** (10,000 recipients: counts, reasons, failures, timeline, HTML).
* **over HTTP**: ``GET /sms-campaigns/`` from a real ``airflow api-server`` with a login (a JWT from
  ``POST /auth/token``), metadata in a fresh SQLite database (``airflow db migrate``).

Each phase: the first call, then the median and the slowest of ``repeats`` more.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import Table, log, sql_connection, verdict

TARGET_SECONDS = 1.0
PER_CAMPAIGN = 10_000


def _fill(conn_id: str, rows: int, per_campaign: int) -> None:
    """The ledger and report, created by the operators' storage (with every index), then filled."""
    from airflow_provider_sms.storage.ledger import MessageLedger
    from airflow_provider_sms.storage.report import DeliveryReportTable

    ledger = MessageLedger(conn_id)
    report = DeliveryReportTable(conn_id, "sms_delivery_report")
    try:
        ledger.ensure_table()
        report.ensure_tables()
        gateways = "(ARRAY['smstools', 'textboost', 'smsgateway24'])[1 + (c % 3)]"
        # Campaign c starts on day c; its rows are recorded in chunks of 5,000 (one created_at each),
        # sent 10 ms apart; 2 % rejected, 3 % suppressed, the rest accepted; every third text 2 segments.
        _sql(
            ledger,
            "INSERT INTO sms_messages (campaign_key, recipient, idempotency_key, gateway, conn_id, "
            "source_row, body_hash, segments, state, message_id, status, error, attempts, created_at, "
            "updated_at, sent_at) "
            f"SELECT 'bench_campaign.scheduled__' || to_char(start, 'YYYY-MM-DD\"T\"HH24:MI:SS'), "
            "'+316' || (10000000 + i), (i::bigint * 7919)::text, "
            f"{gateways}, 'bench_' || {gateways}, r, md5(i::text) || md5((i + 1)::text), 1 + (i % 3 = 0)::int, "
            "CASE WHEN i % 50 = 0 THEN 'rejected' WHEN i % 33 = 0 THEN 'suppressed' ELSE 'accepted' END, "
            "CASE WHEN i % 50 = 0 OR i % 33 = 0 THEN NULL ELSE 'm' || i END, NULL, "
            "CASE WHEN i % 50 = 0 THEN 'invalid phone number' WHEN i % 33 = 0 THEN 'opted out' END, 1, "
            "start + (r / 5000) * interval '1 second', now(), start + r * interval '10 milliseconds' "
            f"FROM (SELECT i, i / {per_campaign} AS c, i % {per_campaign} AS r, "
            f"timestamptz '2026-01-01 09:00+00' + (i / {per_campaign}) * interval '1 day' AS start "
            f"FROM generate_series(0, {rows - 1}) i) g",
        )
        # The report: every accepted message final, 2 s after it left: 1 in 100 undelivered, 1 in 200 failed.
        _sql(
            report,
            "INSERT INTO sms_delivery_report (gateway, message_id, recipient, message_key, status, "
            "status_rank, raw_status, created_at, status_at, delivered_at, failed_at, first_seen_at, "
            "updated_at, campaign_key) "
            "SELECT gateway, message_id, recipient, idempotency_key, s, 5, s, sent_at, sent_at + interval '2 s', "
            "CASE WHEN s = 'delivered' THEN sent_at + interval '2 s' END, "
            "CASE WHEN s <> 'delivered' THEN sent_at + interval '2 s' END, now(), now(), campaign_key "
            "FROM (SELECT *, CASE WHEN source_row % 100 = 7 THEN 'undelivered' "
            "WHEN source_row % 200 = 9 THEN 'failed' ELSE 'delivered' END AS s "
            "FROM sms_messages WHERE state = 'accepted') a",
        )
        vacuum(ledger)
    finally:
        ledger.close()
        report.close()


def _sql(table: Any, *statements: str) -> None:
    """Statements without parameters (``%`` is SQL's modulo here), each committed on its own."""
    conn = table.hook.get_conn()
    conn.autocommit = True
    try:
        cursor = conn.cursor()
        for statement in statements:
            cursor.execute(statement)
        cursor.close()
    finally:
        conn.close()


def vacuum(table: Any) -> None:
    _sql(table, "VACUUM ANALYZE sms_messages", "VACUUM ANALYZE sms_delivery_report")


def _indexes(conn_id: str, present: bool) -> None:
    from airflow_provider_sms.storage import ledger, report
    from airflow_provider_sms.storage.table import SqlTable

    table = SqlTable(conn_id, "sms_messages")
    other = SqlTable(conn_id, "sms_delivery_report")
    try:
        if present:
            table.create_index(*ledger.CAMPAIGN_INDEX)
            other.create_index(*report.CAMPAIGN_INDEX)
        else:
            _sql(
                table,
                f"DROP INDEX IF EXISTS sms_messages_{ledger.CAMPAIGN_INDEX[0]}",
                f"DROP INDEX IF EXISTS sms_delivery_report_{report.CAMPAIGN_INDEX[0]}",
            )
        vacuum(table)
    finally:
        table.close()
        other.close()


def _measure(function: Callable[[], Any], repeats: int) -> tuple[float, float, float, Any]:
    started = time.perf_counter()
    result = function()
    first = time.perf_counter() - started
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return first, statistics.median(times), max(times), result


def _baseline(conn_id: str) -> int:
    from airflow_provider_sms.storage.table import SqlTable

    table = SqlTable(conn_id, "sms_messages")
    try:
        ledger = table.query(
            "SELECT campaign_key, MIN(created_at), COUNT(*), "
            "SUM(CASE WHEN state = 'accepted' THEN 1 ELSE 0 END), SUM(CASE WHEN state = 'rejected' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN state = 'suppressed' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN state = 'accepted' THEN segments ELSE 0 END) FROM sms_messages GROUP BY campaign_key"
        )
        table.query(
            "SELECT campaign_key, status, COUNT(*) FROM sms_delivery_report GROUP BY campaign_key, status"
        )
        return len(ledger)
    finally:
        table.close()


def _metadata_session():
    from airflow.models import import_all_models
    from airflow.models.base import Base
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    import_all_models()
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    return Session(engine)


def run(rows: int, repeats: int, tmp: Path, http: bool = True) -> tuple[list[Table], dict[str, Any]]:
    from airflow_provider_sms.plugins import pages, views

    per_campaign = min(PER_CAMPAIGN, rows)
    campaigns = -(-rows // per_campaign)
    numbers: dict[str, Any] = {"rows": rows, "campaigns": campaigns}
    table = Table(
        f"Campaigns page over a PostgreSQL ledger of {rows:,} rows ({campaigns} campaigns of {per_campaign:,})",
        ["phase", "first s", "median s", "slowest s", "rows shown", "vs baseline", "target < 1 s"],
    )
    every = pages.Access(every_dag=True, readable=lambda dags: dags)
    links = views.Links("/sms-campaigns", "/")
    with sql_connection("postgres", tmp, "ui") as conn_id:
        log(f"ui: building a ledger of {rows:,} rows and its report in PostgreSQL")
        started = time.perf_counter()
        _fill(conn_id, rows, per_campaign)
        numbers["build_seconds"] = round(time.perf_counter() - started, 1)
        settings = pages.Settings(conn_id, "sms_messages", "sms_delivery_report", 0.075)
        session = _metadata_session()

        def page() -> int:
            listing = pages.listing(session, every, settings=settings)
            assert not listing.problems, listing.problems
            views.render_listing(listing, links, "", "")
            return len(listing.rows)

        def campaign() -> int:
            key = pages.listing(session, every, settings=settings, page_size=1).rows[0].campaign.key
            detail = pages.detail(session, every, key, settings=settings)
            views.render_detail(detail, links)
            return detail.row.ledger.recipients

        log("ui: baseline (whole-table aggregates)")
        base = _measure(lambda: _baseline(conn_id), repeats)
        table.add("baseline: GROUP BY over the whole ledger and report", *base[:3], base[3], "1.0x", "")
        _indexes(conn_id, present=False)
        log("ui: the page without the campaign indexes")
        bare = _measure(page, repeats)
        table.add(
            "page, no campaign indexes",
            *bare[:3],
            bare[3],
            f"{base[1] / bare[1]:.1f}x",
            verdict(bare[1] < TARGET_SECONDS),
        )
        _indexes(conn_id, present=True)
        log("ui: the page with the campaign indexes")
        indexed = _measure(page, repeats)
        table.add(
            "page (with the operators' indexes)",
            *indexed[:3],
            indexed[3],
            f"{base[1] / indexed[1]:.1f}x",
            verdict(indexed[1] < TARGET_SECONDS),
        )
        one = _measure(campaign, repeats)
        table.add(
            f"a campaign's page ({per_campaign:,} recipients)",
            *one[:3],
            1,
            "",
            verdict(one[1] < TARGET_SECONDS),
        )
        numbers.update(
            baseline=base[:3], page_without_indexes=bare[:3], page=indexed[:3], campaign_page=one[:3]
        )
        if http:
            log("ui: over HTTP, a real airflow api-server (db migrate + start: a minute or two)")
            over_http = _http(conn_id, tmp, repeats)
            table.add(
                "GET /sms-campaigns/ (api-server, logged in)",
                *over_http,
                min(PER_PAGE, campaigns),
                f"{base[1] / over_http[1]:.1f}x",
                verdict(over_http[1] < TARGET_SECONDS),
            )
            numbers["http"] = over_http
        session.close()
    table.notes += [
        f"{repeats} calls after the first; the page shows the newest {PER_PAGE} campaigns (counts, reasons, "
        "delivery, the daily chart); the baseline only counts every campaign",
        f"built in {numbers['build_seconds']} s; VACUUM ANALYZE after the bulk load and after creating indexes",
    ]
    return [table], numbers


PER_PAGE = 25


def _http(conn_id: str, tmp: Path, repeats: int) -> tuple[float, float, float]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.api_server import run_api_server

    home = tmp / "airflow"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        **{f"AIRFLOW_CONN_{conn_id.upper()}": os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"]},
    )
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True
    )
    with run_api_server(
        env, home, AIRFLOW__SMS__LEDGER_CONN_ID=conn_id, AIRFLOW__SMS__COST_PER_SEGMENT="0.075"
    ) as server:
        token = server.token("admin")

        def get() -> None:
            answer = server.get("/sms-campaigns/", token)
            assert answer.status_code == 200 and "data-campaign-key" in answer.text, answer.text[:500]

        first, median, slowest, _ = _measure(get, repeats)
    return first, median, slowest


if __name__ == "__main__":  # python -m benchmarks.ui ROWS
    from benchmarks.common import quiet_airflow, workdir

    quiet_airflow()
    with workdir() as tmp:
        tables, numbers = run(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000, 5, tmp)
    for t in tables:
        print(t.text())
    print(json.dumps(numbers))
