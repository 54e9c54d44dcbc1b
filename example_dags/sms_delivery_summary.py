"""
### Daily delivery-rate summary, scheduled on the delivery report Asset

This DAG has no clock schedule: it runs whenever a task updates the Asset that stands for the
warehouse table ``sms_delivery_report`` (``SmsDeliveryReportOperator`` declares that table as its
outlet, e.g. in ``sms_campaign`` and ``sms_fanout_campaign``).

It recomputes the last ``days`` days of ``sms_delivery_daily``: per day (UTC, by the message's
creation time) and gateway, the messages, how many were delivered, not delivered (undelivered,
failed, rejected) or are still pending, and the delivery rate among the messages with a final
status. Re-running it rewrites the same rows (upsert on ``(day, gateway)``).

Connection: ``warehouse`` (report and summary tables).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pendulum
from airflow.sdk import BaseHook, Param, dag, task

from airflow_provider_sms.operators.send import ledger_asset

WAREHOUSE = "warehouse"
REPORT_TABLE = "sms_delivery_report"
SUMMARY_TABLE = "sms_delivery_daily"
REPORT_ASSET = ledger_asset(WAREHOUSE, REPORT_TABLE)
# TIMESTAMP WITH TIME ZONE on PostgreSQL; SQLite keeps ISO-8601 UTC text, as the report does.
SUMMARY_DDL = (
    f"CREATE TABLE IF NOT EXISTS {SUMMARY_TABLE} (day VARCHAR(10) NOT NULL, gateway VARCHAR(32) NOT NULL, "
    "messages INTEGER NOT NULL, delivered INTEGER NOT NULL, not_delivered INTEGER NOT NULL, "
    "pending INTEGER NOT NULL, delivery_rate DOUBLE PRECISION, updated_at {timestamp}, "
    "PRIMARY KEY (day, gateway))"
)


@dag(
    dag_id="sms_delivery_summary",
    schedule=REPORT_ASSET,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={"days": Param(7, type="integer", minimum=1, maximum=366, description="days to recompute")},
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["sms", "example", "report"],
    doc_md=__doc__,
)
def sms_delivery_summary() -> None:
    @task
    def summarize(params: dict[str, Any] | None = None, **context: Any) -> list[dict[str, Any]]:
        """Recompute the daily rows from the report table and upsert them."""
        events = context.get("triggering_asset_events") or {}
        print(f"Triggered by {sum(len(e) for e in events.values())} update(s) of {REPORT_ASSET.uri}")
        warehouse = BaseHook.get_connection(WAREHOUSE).get_hook()  # any Airflow SQL connection
        postgres = warehouse.dialect_name == "postgresql"
        warehouse.run(SUMMARY_DDL.format(timestamp="TIMESTAMP WITH TIME ZONE" if postgres else "TEXT"))
        created = "COALESCE(created_at, first_seen_at)"
        day = (
            f"to_char({created} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
            if postgres
            else f"substr({created}, 1, 10)"  # ISO-8601 UTC text
        )
        since = datetime.now(timezone.utc) - timedelta(days=params["days"])
        rows = warehouse.get_records(
            f"SELECT {day} AS day, gateway, COUNT(*), "
            "SUM(CASE WHEN status = 'delivered' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN status IN ('undelivered', 'failed', 'rejected') THEN 1 ELSE 0 END) "
            f"FROM {REPORT_TABLE} WHERE {created} >= {warehouse.placeholder} GROUP BY 1, 2 ORDER BY 1, 2",
            [since if postgres else since.isoformat(timespec="microseconds")],
        )
        now = datetime.now(timezone.utc)
        out = []
        for day_value, gateway, messages, delivered, not_delivered in rows:
            final = delivered + not_delivered
            out.append(
                {
                    "day": day_value,
                    "gateway": gateway,
                    "messages": messages,
                    "delivered": delivered,
                    "not_delivered": not_delivered,
                    "pending": messages - final,
                    "delivery_rate": round(delivered / final, 4) if final else None,
                }
            )
        # Upsert: rows of the recomputed days are replaced, older days are kept.
        if out:
            warehouse.insert_rows(
                SUMMARY_TABLE,
                [(*row.values(), now if postgres else now.isoformat(timespec="microseconds")) for row in out],
                target_fields=[*out[0], "updated_at"],
                replace=True,
                replace_index=["day", "gateway"],
            )
        for row in out:
            rate = "-" if row["delivery_rate"] is None else f"{row['delivery_rate']:.1%}"
            print(
                f"{row['day']} {row['gateway']:<13} {row['messages']:>7} messages, "
                f"{row['delivered']:>7} delivered, {row['not_delivered']:>5} not delivered, "
                f"{row['pending']:>5} pending: delivery rate {rate}"
            )
        return out

    summarize()


sms_delivery_summary()
