"""
### A large campaign fanned out over shards with dynamic task mapping

One announcement to every customer, sent by ``shards`` parallel tasks (a DAG param, so each run
decides its fan-out): ``plan_shards`` returns one ``{"shard_index", "shard_count"}`` per shard and
``send_shard`` is mapped over them with ``expand_kwargs``. Each shard reads the audience and keeps
only its stable share of the recipients (a hash of the phone number), so the shards never overlap
and together cover everyone, whichever worker runs them. The executor (Celery, Kubernetes...)
spreads the mapped tasks over its workers: no home-made distribution.

All shards write the same campaign in the message ledger, so a retried or re-run shard sends
nothing twice. ``check_shards`` adds the shards' summaries up and fails if any message was left
undecided (``ambiguous``); then the deferrable sensor waits for the final statuses and the report
lands in ``sms_delivery_report`` (which triggers ``sms_delivery_summary``).

``scripts/celery_scale_out.sh`` runs this DAG on the CeleryExecutor with two workers and checks
that every recipient received exactly one message.

Connections: ``warehouse`` (audience, opt-outs, ledger and report tables), ``textboost_default``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_sms.operators.report import SmsDeliveryReportOperator
from airflow_provider_sms.operators.send import SmsBulkSendOperator
from airflow_provider_sms.sensors.delivery import SmsDeliverySensor

WAREHOUSE = "warehouse"
SMS_CONN_ID = "textboost_default"
CAMPAIGN_KEY = "{{ dag.dag_id }}.{{ run_id }}"
LEDGER_TABLE = "sms_messages"
REPORT_TABLE = "sms_delivery_report"
AUDIENCE_SQL = "SELECT customer_id, phone, unsubscribed FROM customers ORDER BY customer_id"
SUPPRESSION_SQL = "SELECT phone FROM opt_outs"
# One text for everyone: TextBoost then sends up to 500 recipients per request.
MESSAGE = "ACME: our stores open on Sunday 1 Dec, 10:00-18:00. Reply STOP to opt out"
UNDECIDED = ("ambiguous",)


@dag(
    dag_id="sms_fanout_campaign",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={"shards": Param(4, type="integer", minimum=1, maximum=64, description="parallel send tasks")},
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["sms", "example", "campaign", "scale-out"],
    doc_md=__doc__,
)
def sms_fanout_campaign() -> None:
    @task
    def plan_shards(params: dict[str, Any] | None = None) -> list[dict[str, int]]:
        count = params["shards"]
        return [{"shard_index": index, "shard_count": count} for index in range(count)]

    send = SmsBulkSendOperator.partial(
        task_id="send_shard",
        sms_conn_id=SMS_CONN_ID,
        message=MESSAGE,
        sql=AUDIENCE_SQL,
        sql_conn_id=WAREHOUSE,
        suppression_sql=SUPPRESSION_SQL,
        campaign_key=CAMPAIGN_KEY,
        ledger_conn_id=WAREHOUSE,
        ledger_table=LEDGER_TABLE,
        map_index_template="shard {{ task.shard_index }} of {{ task.shard_count }}",
    ).expand_kwargs(plan_shards())

    @task
    def check_shards(summaries: list[dict[str, Any]]) -> dict[str, int]:
        """The campaign's totals over all shards; fail if any message is left undecided."""
        keys = ("input", "accepted", "rejected", "suppressed", "duplicates", "ambiguous", "segments")
        # By index up to len(): iterating would ask for one XCom past the last shard (a logged 404).
        summaries = [summaries[index] for index in range(len(summaries))]
        totals = {key: sum(s[key] for s in summaries) for key in keys}
        print(f"{len(summaries)} shards: {totals}")
        if totals["ambiguous"]:
            raise RuntimeError(
                f"{totals['ambiguous']} messages are undecided (see state 'ambiguous' in {LEDGER_TABLE}); "
                "check the gateway before sending them again (resend_ambiguous=True)"
            )
        return totals

    wait = SmsDeliverySensor(
        task_id="wait_for_delivery",
        sms_conn_id=SMS_CONN_ID,
        campaign_key=CAMPAIGN_KEY,
        ledger_conn_id=WAREHOUSE,
        ledger_table=LEDGER_TABLE,
        max_failed_ratio=0.2,
        poke_interval=10,
        max_poll_interval=300,
        timeout=int(timedelta(hours=6).total_seconds()),
    )
    report = SmsDeliveryReportOperator(
        task_id="delivery_report",
        sms_conn_id=SMS_CONN_ID,
        report_conn_id=WAREHOUSE,
        report_table=REPORT_TABLE,
        ledger_table=LEDGER_TABLE,
    )
    check_shards(send.output) >> wait >> report


sms_fanout_campaign()
