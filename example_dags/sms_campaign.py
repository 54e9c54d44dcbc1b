"""
### A scheduled campaign: audience SQL → dry run → bulk send → delivery sensor → delivery report

Every Monday morning a personalised voucher goes to every customer:

1. **dry_run_summary** reads the audience query and computes everything without sending: how many
   messages would go out, how many are rejected (invalid numbers), suppressed (unsubscribed, or in
   ``opt_outs``) or duplicates, the segments and the estimated cost, with a sample of rendered texts.
2. **check_budget** stops the run before anything is sent if the estimate exceeds the budget:
   ``max_cost_per_message`` (a param, default 0.10) times the messages that would go out, so the
   budget grows with the audience; the optional ``max_cost`` param caps it in absolute terms. An
   estimate over budget fails the task at once (``AirflowFailException``: a retry would reach the same
   verdict).
3. **send** sends through the message ledger (``sms_messages``): every recipient is recorded before
   its batch leaves, so retries and re-runs of the same DAG run never message anyone twice. Messages
   are only delivered inside the send window in each recipient's own timezone (``timezone``
   column); outside it they are scheduled at the gateway for the next opening.
4. **wait_for_delivery** defers to the triggerer (no worker slot held) until every message has a
   final status, and fails if more than 20 % were not delivered.
5. **delivery_report** upserts the statuses into ``sms_delivery_report`` (a status never moves
   backwards) and the transitions into ``sms_delivery_history``. That table is an Asset: the DAG
   ``sms_delivery_summary`` runs whenever it is updated.

A failed run sends an SMS to the on-call number (``SmsNotifier``).

The send window is 09:00-20:00 local time; the environment variable ``SMS_EXAMPLE_SEND_WINDOW``
(e.g. ``00:00-23:59``, which the demo sets so that it works at any hour) replaces it.

Connections: ``warehouse`` (audience, opt-outs, ledger and report tables), ``smstools_default``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_sms.notifications.sms import SmsNotifier
from airflow_provider_sms.operators.report import SmsDeliveryReportOperator
from airflow_provider_sms.operators.send import SmsBulkSendOperator
from airflow_provider_sms.sensors.delivery import SmsDeliverySensor

WAREHOUSE = "warehouse"
SMS_CONN_ID = "smstools_default"
CAMPAIGN_KEY = (
    "{{ dag.dag_id }}.{{ run_id }}"  # one campaign per DAG run: retries and clears send nothing twice
)
LEDGER_TABLE = "sms_messages"
REPORT_TABLE = "sms_delivery_report"
SEND_WINDOW = tuple(os.environ.get("SMS_EXAMPLE_SEND_WINDOW", "09:00-20:00").split("-", 1))
ONCALL_NUMBER = os.environ.get("SMS_EXAMPLE_ONCALL_NUMBER", "+49 151 99999999")
COST_PER_SEGMENT = 0.075

AUDIENCE_SQL = """
SELECT customer_id, first_name, phone, timezone, unsubscribed
FROM customers
ORDER BY customer_id
"""
SUPPRESSION_SQL = "SELECT phone FROM opt_outs"
MESSAGE = (
    "Hi {{ first_name }}, your {{ params.discount }}% winter voucher is ready: "
    "acme.example/v/{{ customer_id }} - reply STOP to opt out"
)


@dag(
    dag_id="sms_campaign",
    schedule="0 9 * * 1",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={
        "discount": Param(15, type="integer", minimum=5, maximum=50, description="voucher percentage"),
        "max_cost_per_message": Param(
            0.10, type="number", minimum=0, description="budget per message that would be sent"
        ),
        "max_cost": Param(
            None, type=["null", "number"], minimum=0, description="optional cap on the whole campaign"
        ),
    },
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    on_failure_callback=SmsNotifier(
        sms_conn_id=SMS_CONN_ID,
        to=ONCALL_NUMBER,
        message="Airflow: {{ dag.dag_id }} run {{ run_id }} failed",
    ),
    tags=["sms", "example", "campaign"],
    doc_md=__doc__,
)
def sms_campaign() -> None:
    audience: dict[str, Any] = {
        "sms_conn_id": SMS_CONN_ID,
        "message": MESSAGE,
        "sql": AUDIENCE_SQL,
        "sql_conn_id": WAREHOUSE,
        "campaign_key": CAMPAIGN_KEY,
        "suppression_sql": SUPPRESSION_SQL,
        "send_window": SEND_WINDOW,
        "timezone_column": "timezone",
        "ledger_conn_id": WAREHOUSE,
        "ledger_table": LEDGER_TABLE,
    }
    dry_run = SmsBulkSendOperator(
        task_id="dry_run_summary", dry_run=True, cost_per_segment=COST_PER_SEGMENT, **audience
    )

    @task
    def check_budget(summary: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Refuse to send when the dry run's estimate is above the budget (no retry: same verdict)."""
        cost = summary["estimated_cost"]
        budget = round(summary["would_send"] * params["max_cost_per_message"], 4)
        if params.get("max_cost") is not None:
            budget = min(budget, params["max_cost"])
        if cost > budget:
            raise AirflowFailException(
                f"estimated cost {cost} exceeds the budget {budget} ({summary['would_send']} messages, "
                f"max_cost_per_message {params['max_cost_per_message']}, max_cost {params.get('max_cost')})"
            )
        sample = summary["sample"][0]["body"] if summary["sample"] else None
        print(
            f"{summary['would_send']} messages to send ({summary['segments']} segments, cost {cost} of a "
            f"budget of {budget}); {summary['rejected']} rejected, {summary['suppressed']} suppressed, "
            f"{summary['duplicates']} duplicates. Sample: {sample!r}"
        )
        return summary

    send = SmsBulkSendOperator(task_id="send", **audience)
    wait = SmsDeliverySensor(
        task_id="wait_for_delivery",
        sms_conn_id=SMS_CONN_ID,
        campaign_key=CAMPAIGN_KEY,
        ledger_conn_id=WAREHOUSE,
        ledger_table=LEDGER_TABLE,
        max_failed_ratio=0.2,
        poke_interval=10,
        max_poll_interval=300,
        timeout=int(timedelta(hours=26).total_seconds()),  # scheduled messages wait for the window
    )
    report = SmsDeliveryReportOperator(
        task_id="delivery_report",
        sms_conn_id=SMS_CONN_ID,
        report_conn_id=WAREHOUSE,
        report_table=REPORT_TABLE,
        ledger_table=LEDGER_TABLE,
        history_table="sms_delivery_history",
    )
    check_budget(dry_run.output) >> send >> wait >> report


sms_campaign()
