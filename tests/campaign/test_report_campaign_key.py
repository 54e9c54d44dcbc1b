"""The campaign key each delivery report row gets (campaign/report.py ``Reconcile``), on SQLite and
PostgreSQL: written by the merge itself (the filter's key, or the ledger's for the same gateway
message id), kept where a row already has one, backfilled for rows already there that the merge
left alone, and NULL for a message the ledger does not know."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_provider_sms.campaign.report import Reconcile
from airflow_provider_sms.messages import DeliveryStatus, SendOutcome, StatusReport
from airflow_provider_sms.storage.ledger import ACCEPTED, LedgerEntry, MessageLedger, idempotency_key
from airflow_provider_sms.storage.report import DeliveryReportTable
from airflow_provider_sms.storage.table import SqlTable

SINCE = datetime(2026, 11, 1, tzinfo=timezone.utc)
REPORT = "sms_delivery_report"
D, S, F = DeliveryStatus.DELIVERED, DeliveryStatus.SENT, DeliveryStatus.FAILED
# What the gateway lists: m1 goes nowhere (already delivered in the report), m2 moves forward,
# m3 and m4 are new ledger messages, m5 was sent outside the ledger, m6 is in the ledger twice.
STATUSES = [
    StatusReport("m1", S, "sent"),
    StatusReport("m2", D, "delivered"),
    StatusReport("m3", D, "delivered"),
    StatusReport("m4", F, "failed"),
    StatusReport("m5", D, "delivered"),
    StatusReport("m6", D, "delivered"),
]


class Listing:
    """A gateway whose status listing is ``reports``."""

    gateway = "textboost"

    def __init__(self, reports: list[StatusReport]) -> None:
        self.reports = reports

    def iter_statuses(self, since: datetime):
        return iter(self.reports)


def ledger_of(conn_id: str, campaigns: dict[tuple[str, str], dict[str, str]]) -> None:
    """Ledger rows: per (gateway, campaign) the accepted recipients and their message ids."""
    for (gateway, campaign), sent in campaigns.items():
        ledger = MessageLedger(conn_id, gateway=gateway)
        try:
            ledger.ensure_table()
            ledger.record(campaign, [LedgerEntry(r, ACCEPTED, idempotency_key(campaign, r)) for r in sent])
            ledger.mark(
                campaign, [SendOutcome(r, ACCEPTED, mid, "queued", "queued") for r, mid in sent.items()]
            )
        finally:
            ledger.close()


LEDGER = {
    ("textboost", "autumn"): {"+491": "m1", "+492": "m2", "+493": "m3"},
    ("textboost", "winter"): {"+494": "m4", "+496": "m6"},
    ("textboost", "spring"): {"+497": "m6"},  # the same gateway id twice: either campaign will do
    ("smstools", "spring"): {"+495": "m5"},  # another gateway's m5: not the textboost message
}


def report_already_holding(conn_id: str, history: str | None) -> None:
    """m1 delivered without a campaign (written before the ledger knew it), m2 sent with one."""
    report = DeliveryReportTable(conn_id, REPORT, history)
    try:
        report.ensure_tables()
        with report.transaction() as cursor:
            for mid, status, key in (("m1", D, None), ("m2", S, "summer")):
                cursor.execute(
                    f"INSERT INTO {REPORT} (gateway, message_id, status, status_rank, campaign_key) "
                    f"VALUES ({', '.join([report.ph] * 5)})",
                    ("textboost", mid, status.value, status.rank, key),
                )
    finally:
        report.close()


def report_rows(conn_id: str) -> dict[str, tuple]:
    table = SqlTable(conn_id, REPORT)
    try:
        return {
            r[0]: tuple(r[1:]) for r in table.query(f"SELECT message_id, campaign_key, status FROM {REPORT}")
        }
    finally:
        table.close()


def reconcile(conn_id: str, ledger_conn_id: str, **kwargs) -> Reconcile:
    return Reconcile(
        hook=Listing(STATUSES),
        report_conn_id=conn_id,
        report_table=REPORT,
        ledger_conn_id=ledger_conn_id,
        ledger_table="sms_messages",
        prefetch=False,
        **kwargs,
    )


@pytest.mark.parametrize("chunk_size", [2, 100])
@pytest.mark.parametrize("history", [None, "sms_delivery_history"])
def test_each_row_gets_the_ledgers_campaign_and_keeps_one_it_has(sql_conn_id, history, chunk_size):
    ledger_of(sql_conn_id, LEDGER)
    report_already_holding(sql_conn_id, history)

    done = reconcile(sql_conn_id, sql_conn_id, history_table=history, chunk_size=chunk_size).run(SINCE)

    assert done.changed == 5  # all but m1
    rows = report_rows(sql_conn_id)
    assert rows.pop("m6") in {("winter", "delivered"), ("spring", "delivered")}
    assert rows == {
        "m1": ("autumn", "delivered"),  # left alone by the merge, backfilled
        "m2": ("summer", "delivered"),  # moved forward, keeps its campaign
        "m3": ("autumn", "delivered"),
        "m4": ("winter", "failed"),
        "m5": (None, "delivered"),  # sent outside the ledger (smstools' m5 is another message)
    }


@pytest.mark.parametrize("history", [None, "sms_delivery_history"])
def test_the_filtered_campaign_is_written_and_a_row_keeps_its_own(sql_conn_id, history):
    ledger_of(sql_conn_id, LEDGER)
    report_already_holding(sql_conn_id, history)
    run = reconcile(sql_conn_id, sql_conn_id, history_table=history, campaign_key="autumn", chunk_size=2)
    wanted, _ = run.campaign()

    done = run.run(SINCE, wanted)

    assert done.fetched == 3 and done.changed == 2
    assert report_rows(sql_conn_id) == {
        "m1": ("autumn", "delivered"),
        "m2": ("summer", "delivered"),
        "m3": ("autumn", "delivered"),
    }


def test_the_filtered_campaign_with_the_ledger_on_another_connection(sqlite_conn_id, postgres_conn_id):
    ledger_of(sqlite_conn_id, LEDGER)
    report_already_holding(postgres_conn_id, None)
    run = reconcile(postgres_conn_id, sqlite_conn_id, campaign_key="winter", chunk_size=2)
    wanted, _ = run.campaign()

    run.run(SINCE, wanted)

    rows = report_rows(postgres_conn_id)
    assert rows == {
        "m1": (None, "delivered"),
        "m2": ("summer", "sent"),
        "m4": ("winter", "failed"),
        "m6": ("winter", "delivered"),
    }
    ledger = SqlTable(sqlite_conn_id, "sms_messages")
    try:
        moved = ledger.query("SELECT message_id, status FROM sms_messages WHERE campaign_key = 'winter'")
    finally:
        ledger.close()
    assert sorted(moved) == [("m4", "failed"), ("m6", "delivered")]


@pytest.mark.parametrize("filtered", [False, True])
def test_postgres_writes_each_new_report_row_once(postgres_conn_id, filtered):
    """No second row version for the campaign key: the rows of a fresh report sit at the first
    line pointers of its first page (an UPDATE would have put their live versions after them)."""
    ledger_of(postgres_conn_id, LEDGER)
    run = reconcile(postgres_conn_id, postgres_conn_id, campaign_key="autumn" if filtered else None)
    wanted, _ = run.campaign()

    run.run(SINCE, wanted)

    table = SqlTable(postgres_conn_id, REPORT)
    try:
        slots = table.query(f"SELECT ctid::text, campaign_key FROM {REPORT} ORDER BY ctid")
    finally:
        table.close()
    assert [slot for slot, _ in slots] == [f"(0,{i})" for i in range(1, len(slots) + 1)]
    assert len(slots) == (3 if filtered else 6) and slots[0][1] == "autumn"
