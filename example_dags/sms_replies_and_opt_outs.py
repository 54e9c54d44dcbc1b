"""
### Nightly: replies → opt-outs → the next campaign leaves them out

Every message the other examples send ends "reply STOP to opt out". Each night this DAG reads what
came back and makes sure the next campaign honours it:

1. **read_replies_<gateway>** (``SmsRepliesOperator``, one per gateway) reads the replies the
   gateway received since the last run (where it stopped is the replies table itself) into
   ``sms_replies``: one row per reply, never twice, with its keyword verdict (``intent``: ``stop``,
   ``start``, ``none`` or ``ambiguous``) and the campaign of the last message sent to its sender.
   New STOP and START replies (STOP, STOPP, ARRÊT, BAJA, AFMELDEN, CANCELLA, PARAR... in seven
   languages) become rows of the opt-out table ``sms_opt_outs``; the Smstools opt-out list is read
   into it too. Re-running a night changes nothing.
2. **replies_for_a_person** lists the replies the keyword rules leave to a person ("please stop",
   "don't stop", "stop start"): nothing is guessed, and nobody is opted out by them.
3. **next_campaign** (``SmsBulkSendOperator``) sends the next offer to every customer. It reads
   ``sms_opt_outs`` by number without a query in the DAG: each number that replied STOP is recorded
   ``suppressed`` with the reason ``"opted out"`` and gets nothing (``honour_opt_outs=False`` turns
   that off, for transactional messages only).

The send window is 09:00-20:00 local time; ``SMS_EXAMPLE_SEND_WINDOW`` (e.g. ``00:00-23:59``, as the
demo sets it) replaces it.

Connections: ``warehouse`` (audience, replies, opt-out and ledger tables), ``smstools_default``,
``smsgateway24_default``, ``textboost_default``.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import BaseHook, dag, task

from airflow_provider_sms.operators.replies import SmsRepliesOperator
from airflow_provider_sms.operators.send import SmsBulkSendOperator

WAREHOUSE = "warehouse"
GATEWAYS = {
    "smstools": "smstools_default",
    "smsgateway24": "smsgateway24_default",
    "textboost": "textboost_default",
}
CAMPAIGN_GATEWAY = "smstools_default"
REPLIES_TABLE = "sms_replies"
OPT_OUT_TABLE = "sms_opt_outs"
SEND_WINDOW = tuple(os.environ.get("SMS_EXAMPLE_SEND_WINDOW", "09:00-20:00").split("-", 1))
AUDIENCE_SQL = """
SELECT customer_id, first_name, phone, timezone, unsubscribed
FROM customers
ORDER BY customer_id
"""
MESSAGE = "Hi {{ first_name }}, this weekend only: 2 for 1 on all coffee at ACME. Reply STOP to opt out"


@task
def replies_for_a_person() -> list[dict[str, str]]:
    """The replies no rule decides (intent ``ambiguous``), newest first, for someone to read."""
    warehouse = BaseHook.get_connection(WAREHOUSE).get_hook()  # any Airflow SQL connection
    rows = warehouse.get_records(
        f"SELECT gateway, sender, text, reason FROM {REPLIES_TABLE} WHERE intent = 'ambiguous' "
        "ORDER BY received_at DESC"
    )
    for gateway, sender, text, reason in rows:
        print(f"{gateway:<13} {sender:<16} {text!r}: {reason}")
    print(f"{len(rows)} replies wait for a person")
    return [{"gateway": g, "sender": s, "text": t, "reason": r} for g, s, t, r in rows]


@dag(
    dag_id="sms_replies_and_opt_outs",
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    tags=["sms", "example", "replies", "opt-outs"],
    doc_md=__doc__,
)
def sms_replies_and_opt_outs() -> None:
    reads = [
        SmsRepliesOperator(
            task_id=f"read_replies_{gateway}",
            sms_conn_id=conn_id,
            replies_conn_id=WAREHOUSE,
            replies_table=REPLIES_TABLE,
            opt_out_table=OPT_OUT_TABLE,  # on the same connection; the send reads it there
            ledger_table="sms_messages",  # ties each reply to the campaign it answers
        )
        for gateway, conn_id in GATEWAYS.items()
    ]
    next_campaign = SmsBulkSendOperator(
        task_id="next_campaign",
        sms_conn_id=CAMPAIGN_GATEWAY,
        sql=AUDIENCE_SQL,
        sql_conn_id=WAREHOUSE,
        message=MESSAGE,
        campaign_key="{{ dag.dag_id }}.{{ run_id }}",
        suppression_sql="SELECT phone FROM opt_outs",  # the complaints desk's list, as before
        send_window=SEND_WINDOW,
        timezone_column="timezone",
        ledger_conn_id=WAREHOUSE,
        opt_out_table=OPT_OUT_TABLE,  # honoured by default: said here to show where it comes from
    )
    reads >> replies_for_a_person()
    reads >> next_campaign


sms_replies_and_opt_outs()
