"""SmsDeliveryReportOperator against the sandbox gateway, with the report on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import urlparse

import pendulum
import pytest

from airflow_provider_sms.messages import DeliveryStatus, SendOutcome, StatusReport
from airflow_provider_sms.operators.report import SmsDeliveryReportOperator
from airflow_provider_sms.operators.send import SmsBulkSendOperator, ledger_asset
from airflow_provider_sms.storage.table import SqlTable

GATEWAYS = ["smstools", "smsgateway24", "textboost"]
# The sandbox's outcomes: numbers ending 13 are undelivered, 66 failed, the rest delivered.
AUDIENCE = [
    {"phone": "+4915110000001"},
    {"phone": "+4915110000002"},
    {"phone": "+4915110000003"},
    {"phone": "+4915110000004"},
    {"phone": "+4915110000013"},
    {"phone": "+4915110000066"},
]
RAW = {
    "smstools": {"delivered": "delivered", "undelivered": "undelivered", "failed": "failed"},
    "textboost": {"delivered": "Delivered", "undelivered": "Undelivered", "failed": "Failed"},
    "smsgateway24": {"delivered": "7", "undelivered": "8", "failed": "9"},
}


def context() -> dict:
    return {
        "ti": SimpleNamespace(dag_id="reports", task_id="report", try_number=1, map_index=-1),
        "logical_date": pendulum.datetime(2026, 11, 23, 9),
        "run_id": "manual__1",
        "ds": "2026-11-23",
        "params": {},
    }


def send_campaign(conn_id: str, ledger_conn_id: str, campaign_key: str = "autumn") -> dict:
    return SmsBulkSendOperator(
        task_id="send",
        sms_conn_id=conn_id,
        message="Autumn sale starts today",
        audience=AUDIENCE,
        ledger_conn_id=ledger_conn_id,
        campaign_key=campaign_key,
        sender="Shop",
    ).execute(context())


def report_operator(conn_id: str, report_conn_id: str, **kwargs) -> SmsDeliveryReportOperator:
    return SmsDeliveryReportOperator(
        task_id="report", sms_conn_id=conn_id, report_conn_id=report_conn_id, **kwargs
    )


def rows(conn_id: str, sql: str) -> list[tuple]:
    table = SqlTable(conn_id, "sms_delivery_report")
    try:
        return [tuple(str(v) if v is not None else None for v in row) for row in table.query(sql)]
    finally:
        table.close()


def report_rows(conn_id: str, table: str = "sms_delivery_report") -> dict[str, dict]:
    names = [
        "gateway",
        "message_id",
        "recipient",
        "status",
        "status_rank",
        "raw_status",
        "delivered_at",
        "failed_at",
        "first_seen_at",
        "updated_at",
    ]
    found = rows(conn_id, f"SELECT {', '.join(names)} FROM {table} ORDER BY message_id")
    return {row[1]: dict(zip(names, row, strict=True)) for row in found}


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_statuses_land_normalised_with_raw_kept(gateway, sandbox, sms_conn_env, sql_conn_id):
    send_campaign(sms_conn_env[gateway], sql_conn_id)
    sandbox.advance(5)

    result = report_operator(sms_conn_env[gateway], sql_conn_id).execute(context())

    assert result["counts"] == {"delivered": 4, "failed": 1, "undelivered": 1}
    assert result["fetched"] == result["changed"] == 6
    by_recipient = {row["recipient"]: row for row in report_rows(sql_conn_id).values()}
    assert {r: row["status"] for r, row in by_recipient.items()} == {
        "+4915110000001": "delivered",
        "+4915110000002": "delivered",
        "+4915110000003": "delivered",
        "+4915110000004": "delivered",
        "+4915110000013": "undelivered",
        "+4915110000066": "failed",
    }
    for row in by_recipient.values():
        assert row["gateway"] == gateway
        assert row["raw_status"] == RAW[gateway][row["status"]]
        assert (row["delivered_at"] is not None) == (row["status"] == "delivered")
        assert (row["failed_at"] is not None) == (row["status"] != "delivered")
    # the ledger rows of these messages carry the same status and raw value
    ledger = rows(sql_conn_id, "SELECT recipient, status, raw_status FROM sms_messages ORDER BY recipient")
    assert ledger == [(r, row["status"], row["raw_status"]) for r, row in sorted(by_recipient.items())]


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_running_twice_changes_nothing(gateway, sandbox, sms_conn_env, sql_conn_id):
    send_campaign(sms_conn_env[gateway], sql_conn_id)
    sandbox.advance(5)
    report_operator(sms_conn_env[gateway], sql_conn_id).execute(context())
    before = report_rows(sql_conn_id)
    ledger_before = rows(sql_conn_id, "SELECT * FROM sms_messages ORDER BY recipient")

    again = report_operator(sms_conn_env[gateway], sql_conn_id).execute(context())

    assert again["fetched"] == 6
    assert again["changed"] == 0
    assert report_rows(sql_conn_id) == before
    assert rows(sql_conn_id, "SELECT * FROM sms_messages ORDER BY recipient") == ledger_before


def test_statuses_move_forward_and_history_records_each_transition(frozen_sandbox, sms_conn_env, sql_conn_id):
    # The clock is stopped: the first report sees raw 1 however slow the machine (with real time the
    # messages leave it after 0.8 s), and only advance() moves them.
    sandbox = frozen_sandbox
    conn_id = sms_conn_env["smsgateway24"]
    send_campaign(conn_id, sql_conn_id)
    op = report_operator(conn_id, sql_conn_id, history_table="sms_delivery_history")

    early = op.execute(context())  # right after sending: pending on the server (raw 1)
    sandbox.advance(5)
    late = report_operator(conn_id, sql_conn_id, history_table="sms_delivery_history").execute(context())

    assert early["counts"] == {"queued": 6}
    assert late["counts"] == {"delivered": 4, "failed": 1, "undelivered": 1}
    assert late["changed"] == 6
    history = rows(
        sql_conn_id,
        "SELECT h.status, h.raw_status, r.recipient FROM sms_delivery_history h JOIN sms_delivery_report r "
        "ON r.message_id = h.message_id ORDER BY r.recipient, h.status",
    )
    assert history[:2] == [("delivered", "7", "+4915110000001"), ("queued", "1", "+4915110000001")]
    assert len(history) == 12  # queued, then the outcome, for each of the six


def feed(op: SmsDeliveryReportOperator, reports: list[StatusReport]) -> None:
    """Make the gateway listing answer ``reports`` (e.g. a late, out-of-order one)."""
    op.hook.iter_statuses = lambda since=None: iter(reports)


def test_late_out_of_order_status_does_not_regress_a_delivered_row(sandbox, sms_conn_env, sql_conn_id):
    conn_id = sms_conn_env["smsgateway24"]
    send_campaign(conn_id, sql_conn_id)
    sandbox.advance(5)
    report_operator(conn_id, sql_conn_id).execute(context())
    delivered = next(r for r in report_rows(sql_conn_id).values() if r["recipient"] == "+4915110000001")
    failed = next(r for r in report_rows(sql_conn_id).values() if r["recipient"] == "+4915110000066")

    op = report_operator(conn_id, sql_conn_id, history_table="sms_delivery_history")
    feed(
        op,
        [
            StatusReport(delivered["message_id"], DeliveryStatus.SENT, "6", recipient="+4915110000001"),
            StatusReport(delivered["message_id"], DeliveryStatus.QUEUED, "1", recipient="+4915110000001"),
            # a final outcome never replaces another final outcome either
            StatusReport(failed["message_id"], DeliveryStatus.DELIVERED, "7", recipient="+4915110000066"),
        ],
    )
    result = op.execute(context())

    assert result["changed"] == 0
    after = report_rows(sql_conn_id)
    assert after[delivered["message_id"]] == delivered
    assert after[failed["message_id"]] == failed
    ledger = dict(rows(sql_conn_id, "SELECT recipient, status FROM sms_messages"))
    assert ledger["+4915110000001"] == "delivered"
    assert ledger["+4915110000066"] == "failed"


def test_delivered_at_is_set_once_and_unknown_raw_values_are_kept(sms_conn_env, sql_conn_id):
    conn_id = sms_conn_env["textboost"]
    first_seen = pendulum.datetime(2026, 11, 20, 8, 0, 5)
    reports = [
        StatusReport("m-1", DeliveryStatus.SENT, "Enroute", recipient="+4915110000001"),
        StatusReport("m-2", DeliveryStatus.UNKNOWN, "Error: carrier said\tno\nretry \\ later"),
        StatusReport("m-3", DeliveryStatus.DELIVERED, "Delivered", updated_at=first_seen),
    ]
    op = report_operator(conn_id, sql_conn_id, ledger_table=None)
    feed(op, reports)
    op.execute(context())
    op = report_operator(conn_id, sql_conn_id, ledger_table=None)
    feed(
        op,
        [
            StatusReport("m-1", DeliveryStatus.DELIVERED, "Delivered"),
            StatusReport("m-3", DeliveryStatus.DELIVERED, "Delivered", updated_at=first_seen.add(hours=1)),
        ],
    )
    result = op.execute(context())

    assert result["changed"] == 1
    after = report_rows(sql_conn_id)
    assert after["m-1"]["status"] == "delivered"
    assert after["m-1"]["delivered_at"] is not None
    assert after["m-2"]["status"] == "unknown"
    assert after["m-2"]["raw_status"] == "Error: carrier said\tno\nretry \\ later"
    assert pendulum.parse(after["m-3"]["delivered_at"]) == first_seen


def test_ledger_on_another_connection_is_updated(sandbox, sms_conn_env, sqlite_conn_id, postgres_conn_id):
    conn_id = sms_conn_env["smsgateway24"]
    send_campaign(conn_id, sqlite_conn_id)
    sandbox.advance(5)

    report_operator(conn_id, postgres_conn_id, ledger_conn_id=sqlite_conn_id).execute(context())

    assert len(report_rows(postgres_conn_id)) == 6
    ledger = dict(rows(sqlite_conn_id, "SELECT recipient, status FROM sms_messages"))
    assert ledger["+4915110000013"] == "undelivered"
    assert sorted(ledger.values()).count("delivered") == 4


def test_chunks_smaller_than_the_listing_give_the_same_table(sandbox, sms_conn_env, sqlite_conn_id):
    conn_id = sms_conn_env["smsgateway24"]
    send_campaign(conn_id, sqlite_conn_id)
    sandbox.advance(5)

    result = report_operator(conn_id, sqlite_conn_id, chunk_size=4).execute(context())

    assert result["fetched"] == result["changed"] == 6
    assert len(report_rows(sqlite_conn_id)) == 6


def test_report_table_is_the_outlet_asset_and_since_is_templated():
    op = report_operator("smstools_default", "warehouse", report_table="marketing.sms_report")
    assert op.outlets == [ledger_asset("warehouse", "marketing.sms_report")]
    assert "since" in op.template_fields
    assert op._since() > pendulum.now("UTC") - timedelta(days=7, minutes=1)
    op.since = "2026-11-01T00:00:00+00:00"
    assert op._since() == pendulum.datetime(2026, 11, 1)


def test_openlineage_facets_without_the_provider_are_none(sms_conn_env, sqlite_conn_id, monkeypatch):
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.extractors", None)  # import fails
    op = report_operator(sms_conn_env["smstools"], sqlite_conn_id)
    assert op.get_openlineage_facets_on_complete(None) is None


def test_openlineage_facets_name_the_gateway_and_tables(sms_conn_env, postgres_conn_id):
    pytest.importorskip("airflow.providers.openlineage")
    op = report_operator(sms_conn_env["smsgateway24"], postgres_conn_id, history_table="sms_history")

    lineage = op.get_openlineage_facets_on_complete(None)

    database = json.loads(os.environ["AIRFLOW_CONN_SMS_POSTGRES"])["schema"]
    sandbox_authority = urlparse(op.hook.base_url).netloc
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        (f"smsgateway24://{sandbox_authority}", "messages")
    ]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [
        ("postgres://127.0.0.1:5432", f"{database}.public.sms_delivery_report"),
        ("postgres://127.0.0.1:5432", f"{database}.public.sms_messages"),
        ("postgres://127.0.0.1:5432", f"{database}.public.sms_history"),
    ]


def test_changed_counts_report_rows_when_the_ledger_lacks_the_messages(sms_conn_env, sql_conn_id):
    """The ledger (same connection) holds none of these ids: 3 report rows change, 0 ledger rows."""
    op = report_operator(sms_conn_env["textboost"], sql_conn_id)  # ledger sms_messages, same connection
    feed(op, [StatusReport(f"x-{i}", DeliveryStatus.DELIVERED, "Delivered") for i in range(3)])

    result = op.execute(context())

    assert result["fetched"] == result["changed"] == 3
    assert rows(sql_conn_id, "SELECT count(*) FROM sms_messages") == [("0",)]


@pytest.mark.parametrize("prefetch", [True, False])
def test_a_gateway_error_while_reading_is_raised_after_the_chunks_before_it(
    prefetch, sms_conn_env, sqlite_conn_id
):
    from airflow_provider_sms.exceptions import SmsTransientError

    def listing(since=None):
        for i in range(5):
            yield StatusReport(f"m-{i}", DeliveryStatus.SENT, "Enroute")
        raise SmsTransientError("page 3 timed out", gateway="textboost")

    op = report_operator(
        sms_conn_env["textboost"], sqlite_conn_id, ledger_table=None, chunk_size=2, prefetch=prefetch
    )
    op.hook.iter_statuses = listing

    with pytest.raises(SmsTransientError, match="page 3 timed out"):
        op.execute(context())
    assert sorted(report_rows(sqlite_conn_id)) == ["m-0", "m-1", "m-2", "m-3"]  # two chunks committed


def test_a_failed_write_stops_the_background_reader(sms_conn_env, sqlite_conn_id, monkeypatch):
    import threading

    from airflow_provider_sms.campaign.prefetch import PREFETCH_THREAD
    from airflow_provider_sms.storage import report as report_module

    read = []

    def endless(since=None):
        i = 0
        while True:
            read.append(i)
            yield StatusReport(f"m-{i}", DeliveryStatus.SENT, "Enroute")
            i += 1

    def broken_write(self, staged, statements):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_module.StagedWriter, "write", broken_write)
    op = report_operator(sms_conn_env["textboost"], sqlite_conn_id, ledger_table=None, chunk_size=100)
    op.hook.iter_statuses = endless

    with pytest.raises(RuntimeError, match="disk full"):
        op.execute(context())
    assert not [t for t in threading.enumerate() if t.name.startswith(PREFETCH_THREAD)]
    assert len(read) <= 100 * 4  # the chunk written, one queued, one being read, and change


def test_postgres_statements_cost_the_chunk_not_the_tables(postgres_conn_id):
    """Neither the history nor the ledger update reads the whole report or ledger table per chunk
    (the history comes from the merge's RETURNING, the ledger join probes its index), nor does the
    merge's look-up of each row's campaign in the ledger (run before the ledger update's SET LOCAL)."""
    from airflow_provider_sms.storage.ledger import MessageLedger, ledger_update_statements
    from airflow_provider_sms.storage.report import DeliveryReportTable, StagedWriter, status_rows

    report = DeliveryReportTable(postgres_conn_id, "sms_delivery_report", "sms_delivery_history")
    report.ensure_tables()
    ledger = MessageLedger(postgres_conn_id, "sms_messages")
    ledger.ensure_table()
    ledger.close()
    now = pendulum.now("UTC")
    staged = status_rows(
        [StatusReport(f"m-{i}", DeliveryStatus.DELIVERED, "delivered") for i in range(50)], "textboost", now
    )
    writer = StagedWriter(report)
    plans = []
    try:
        with report.transaction() as cursor:
            cursor.execute(
                "INSERT INTO sms_messages (campaign_key, recipient, idempotency_key, state, attempts, "
                "gateway, message_id, status) SELECT 'c', 'r' || i, i::text, 'sent', 1, 'textboost', "
                "'m-' || i, 'sent' FROM generate_series(0, 20000) i"
            )
            writer._create_staging(cursor)
            writer._load(cursor, writer.prepare(staged))
            for sql, params in [
                *report.merge_statements(now, ledger_table="sms_messages"),
                *ledger_update_statements(report, "sms_messages", now),
            ]:
                if sql.startswith("SET"):
                    cursor.execute(sql)
                    continue
                cursor.execute("EXPLAIN (COSTS OFF) " + sql, tuple(params))
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
            report.conn.rollback()
    finally:
        report.close()
    history_and_merge, ledger_update = plans
    assert "sms_delivery_history" in history_and_merge
    assert "Scan on sms_delivery_report" not in history_and_merge  # no join with the report table
    assert "Index Scan using sms_messages_gateway_message_sent" in history_and_merge  # the campaign key
    assert "Seq Scan on sms_messages" not in history_and_merge
    assert "Index Scan using sms_messages_gateway_message_sent" in ledger_update
    assert "Seq Scan on sms_messages" not in ledger_update


LONG_ID = "msg-" + "9" * 196  # 200 characters: past the old VARCHAR(128)
LONG_REFERENCE = "campaign-autumn-2026-" + "r" * 49  # a 70-character Smstools reference
LONG_RAW = "Undeliverable: " + "carrier said no; " * 20  # 355 characters


def _long_reports() -> list[StatusReport]:
    return [
        StatusReport(
            LONG_ID,
            DeliveryStatus.UNDELIVERED,
            LONG_RAW,
            recipient="+4915110000001",
            key=LONG_REFERENCE,
        ),
        StatusReport("m-2", DeliveryStatus.DELIVERED, "delivered", recipient="+49151" + "1" * 70),
    ]


def _ledger_with(conn_id: str, message_id: str) -> None:
    from airflow_provider_sms.storage.ledger import ACCEPTED, LedgerEntry, MessageLedger, idempotency_key

    ledger = MessageLedger(conn_id, gateway="smstools")
    try:
        ledger.ensure_table()
        key = idempotency_key("autumn", "+4915110000001")
        ledger.record("autumn", [LedgerEntry("+4915110000001", ACCEPTED, key)])
        ledger.mark("autumn", [SendOutcome("+4915110000001", ACCEPTED, message_id, "queued", "queued", None)])
    finally:
        ledger.close()


def _check_long_values_landed(conn_id: str) -> None:
    report = report_rows(conn_id)
    assert report[LONG_ID]["raw_status"] == LONG_RAW  # whole, not cut
    assert report["m-2"]["recipient"] == "+49151" + "1" * 70
    assert rows(conn_id, "SELECT message_key FROM sms_delivery_report WHERE message_id <> 'm-2'") == [
        (LONG_REFERENCE,)
    ]
    assert rows(conn_id, "SELECT message_id FROM sms_delivery_history WHERE status = 'undelivered'") == [
        (LONG_ID,)
    ]
    assert rows(conn_id, "SELECT status, raw_status FROM sms_messages") == [("undelivered", LONG_RAW)]


def test_long_ids_references_and_raw_statuses_land_whole_on_postgres(sms_conn_env, postgres_conn_id):
    _ledger_with(postgres_conn_id, LONG_ID)
    op = report_operator(sms_conn_env["smstools"], postgres_conn_id, history_table="sms_delivery_history")
    feed(op, _long_reports())

    assert op.execute(context())["changed"] == 2
    _check_long_values_landed(postgres_conn_id)


def test_tables_an_earlier_version_created_narrow_are_widened_on_postgres(sms_conn_env, postgres_conn_id):
    table = SqlTable(postgres_conn_id, "sms_delivery_report")
    try:  # the DDL of the earlier version, VARCHAR widths and all
        table.execute(
            "CREATE TABLE sms_delivery_report (gateway VARCHAR(32) NOT NULL, message_id VARCHAR(128) NOT NULL, "
            "recipient VARCHAR(64), message_key VARCHAR(64), status VARCHAR(16) NOT NULL, "
            "status_rank INTEGER NOT NULL, raw_status TEXT, created_at TIMESTAMPTZ, status_at TIMESTAMPTZ, "
            "delivered_at TIMESTAMPTZ, failed_at TIMESTAMPTZ, first_seen_at TIMESTAMPTZ, "
            "updated_at TIMESTAMPTZ, PRIMARY KEY (gateway, message_id))"
        )
        table.execute(
            "CREATE TABLE sms_delivery_history (gateway VARCHAR(32) NOT NULL, message_id VARCHAR(128) NOT NULL, "
            "status VARCHAR(16) NOT NULL, raw_status TEXT, status_at TIMESTAMPTZ, observed_at TIMESTAMPTZ, "
            "PRIMARY KEY (gateway, message_id, status))"
        )
        table.execute(
            "CREATE TABLE sms_messages (campaign_key VARCHAR(250) NOT NULL, recipient VARCHAR(250) NOT NULL, "
            "idempotency_key VARCHAR(32) NOT NULL, gateway VARCHAR(32), conn_id VARCHAR(250), source_row BIGINT, "
            "body_hash VARCHAR(64), segments INTEGER, state VARCHAR(16) NOT NULL, message_id VARCHAR(128), "
            "status VARCHAR(16), raw_status VARCHAR(250), error TEXT, attempts INTEGER NOT NULL, "
            "created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ, sent_at TIMESTAMPTZ, "
            "PRIMARY KEY (campaign_key, recipient))"
        )
    finally:
        table.close()
    _ledger_with(postgres_conn_id, LONG_ID)  # ensure_table widens the ledger's message_id first
    op = report_operator(sms_conn_env["smstools"], postgres_conn_id, history_table="sms_delivery_history")
    feed(op, _long_reports())

    assert op.execute(context())["changed"] == 2
    _check_long_values_landed(postgres_conn_id)
    narrow = rows(
        postgres_conn_id,
        "SELECT table_name, column_name FROM information_schema.columns WHERE column_name IN "
        "('message_id', 'recipient', 'message_key', 'raw_status') AND data_type <> 'text' "
        "AND table_name IN ('sms_delivery_report', 'sms_delivery_history', 'sms_messages')",
    )
    assert narrow == [("sms_messages", "recipient")]  # our own normalised phone: left as it was


def campaign_of_each_row(conn_id: str) -> dict[str, str | None]:
    return dict(rows(conn_id, "SELECT message_id, campaign_key FROM sms_delivery_report"))


def ledger_ids(conn_id: str, campaign_key: str) -> set[str]:
    found = rows(conn_id, f"SELECT message_id FROM sms_messages WHERE campaign_key = '{campaign_key}'")
    return {row[0] for row in found}


def send_outside_the_ledger(conn_id: str) -> str:
    """A message the account sends by other means (a newsletter, another tool): no ledger row."""
    from airflow_provider_sms.hooks import get_gateway_hook
    from airflow_provider_sms.messages import OutboundMessage

    hook = get_gateway_hook(conn_id)
    (result,) = hook.send_messages([OutboundMessage("+4915110000009", "Our newsletter", key="424242")])
    assert result.accepted
    return result.message_id


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_campaign_key_reports_only_that_campaigns_messages(gateway, sandbox, sms_conn_env, sql_conn_id):
    conn_id = sms_conn_env[gateway]
    send_campaign(conn_id, sql_conn_id, campaign_key="autumn")
    send_campaign(conn_id, sql_conn_id, campaign_key="winter")
    send_outside_the_ledger(conn_id)
    sandbox.advance(5)

    result = report_operator(conn_id, sql_conn_id, campaign_key="autumn").execute(context())

    assert result["campaign_key"] == "autumn"
    assert result["fetched"] == 6 and result["counts"] == {"delivered": 4, "failed": 1, "undelivered": 1}
    assert campaign_of_each_row(sql_conn_id) == dict.fromkeys(ledger_ids(sql_conn_id, "autumn"), "autumn")


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_every_report_row_carries_the_campaign_the_ledger_knows(
    gateway, sandbox, sms_conn_env, sqlite_conn_id
):
    conn_id = sms_conn_env[gateway]
    send_campaign(conn_id, sqlite_conn_id, campaign_key="autumn")
    send_campaign(conn_id, sqlite_conn_id, campaign_key="winter")
    outside = send_outside_the_ledger(conn_id)
    sandbox.advance(5)

    result = report_operator(conn_id, sqlite_conn_id).execute(context())

    assert result["fetched"] == 13  # the whole account: both campaigns and the other message
    expected = {
        **dict.fromkeys(ledger_ids(sqlite_conn_id, "autumn"), "autumn"),
        **dict.fromkeys(ledger_ids(sqlite_conn_id, "winter"), "winter"),
        outside: None,
    }
    assert campaign_of_each_row(sqlite_conn_id) == expected


def test_campaign_key_with_the_ledger_on_another_connection(
    sandbox, sms_conn_env, sqlite_conn_id, postgres_conn_id
):
    conn_id = sms_conn_env["smstools"]
    send_campaign(conn_id, sqlite_conn_id, campaign_key="autumn")
    send_campaign(conn_id, sqlite_conn_id, campaign_key="winter")
    sandbox.advance(5)

    report_operator(conn_id, postgres_conn_id, ledger_conn_id=sqlite_conn_id, campaign_key="winter").execute(
        context()
    )

    assert campaign_of_each_row(postgres_conn_id) == dict.fromkeys(
        ledger_ids(sqlite_conn_id, "winter"), "winter"
    )


def test_an_unknown_campaign_key_fails_clearly(sandbox, sms_conn_env, sqlite_conn_id):
    from airflow.sdk.exceptions import AirflowFailException

    send_campaign(sms_conn_env["textboost"], sqlite_conn_id, campaign_key="autumn")
    with pytest.raises(AirflowFailException, match="campaign 'autum' has no rows in the ledger table"):
        report_operator(sms_conn_env["textboost"], sqlite_conn_id, campaign_key="autum").execute(context())


def test_a_report_table_of_an_earlier_version_gets_the_campaign_column(sandbox, sms_conn_env, sqlite_conn_id):
    from airflow_provider_sms.storage.report import REPORT_COLUMNS

    old = SqlTable(sqlite_conn_id, "sms_delivery_report")
    old.create([c for c in REPORT_COLUMNS if c[0] != "campaign_key"], ("gateway", "message_id"))
    old.close()
    send_campaign(sms_conn_env["smstools"], sqlite_conn_id, campaign_key="autumn")
    sandbox.advance(5)

    report_operator(sms_conn_env["smstools"], sqlite_conn_id).execute(context())

    assert set(campaign_of_each_row(sqlite_conn_id).values()) == {"autumn"}


def test_campaign_key_needs_a_ledger():
    with pytest.raises(ValueError, match="campaign_key needs the ledger"):
        report_operator("textboost_sandbox", "sqlite_default", campaign_key="autumn", ledger_table=None)
