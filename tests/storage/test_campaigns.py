"""The indexes the campaigns page reads are created with the tables (storage/campaigns.py)."""

from __future__ import annotations

from airflow_provider_sms.storage import ledger as ledger_module
from airflow_provider_sms.storage import report as report_module
from airflow_provider_sms.storage.campaigns import CampaignStore
from airflow_provider_sms.storage.ledger import MessageLedger
from airflow_provider_sms.storage.report import DeliveryReportTable


def index_columns(conn_id: str, table: str) -> dict[str, list[str]]:
    store = CampaignStore(conn_id, "sms_messages", "sms_delivery_report")
    try:
        if store.is_postgres:
            rows = store.query(
                "SELECT i.relname, a.attname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                "JOIN pg_class t ON t.oid = x.indrelid JOIN LATERAL unnest(x.indkey) WITH ORDINALITY k(n, pos) "
                "ON true JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n "
                "WHERE t.relname = %s ORDER BY i.relname, k.pos",
                [table],
            )
        else:
            rows = []
            for (name,) in store.query(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", [table]
            ):
                rows += [(name, column[2]) for column in store.query(f"PRAGMA index_info('{name}')")]
    finally:
        store.close()
    found: dict[str, list[str]] = {}
    for name, column in rows:
        found.setdefault(name, []).append(column)
    return found


def test_the_ledger_and_report_get_the_indexes_the_campaigns_page_reads(sql_conn_id):
    ledger = MessageLedger(sql_conn_id)
    report = DeliveryReportTable(sql_conn_id, "sms_delivery_report")
    try:
        ledger.ensure_table()
        report.ensure_tables()
        report.ensure_tables()  # again: nothing new, no error
    finally:
        ledger.close()
        report.close()
    suffix, columns = ledger_module.CAMPAIGN_INDEX
    assert index_columns(sql_conn_id, "sms_messages")[f"sms_messages_{suffix}"] == list(columns)
    suffix, columns = report_module.CAMPAIGN_INDEX
    assert index_columns(sql_conn_id, "sms_delivery_report")[f"sms_delivery_report_{suffix}"] == list(columns)
    assert ledger_module.CAMPAIGN_INDEX[1] == ("campaign_key", "created_at", "state", "segments")
    assert report_module.CAMPAIGN_INDEX[1] == ("campaign_key", "status")
