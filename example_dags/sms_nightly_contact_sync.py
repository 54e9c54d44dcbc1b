"""
### Nightly contact sync: a warehouse table into each gateway's contact list

Every night the customers who may be messaged (not unsubscribed, not in ``opt_outs``) are read
from the warehouse in chunks and mirrored into a list called ``customers`` on each of the three
gateways: a Smstools group, an SmsGateway24 tag and a TextBoost contact group. The list is created
on the first run; after that only what changed is sent (the sync state table
``sms_contact_sync`` remembers each contact's gateway id and a hash of its fields), so a night
without changes sends no request at all.

- Smstools and TextBoost run in ``mirror`` mode: customers who left the query (unsubscribed,
  opted out) are deleted from the list.
- SmsGateway24 cannot list or delete contacts, so it runs in ``upsert`` mode.
- Rows that cannot be synced (invalid phone, duplicate number) land in ``sms_contact_rejects``
  with the reason; a sync where more than half the rows are rejected fails.

Connections: ``warehouse`` (any SQL connection), ``smstools_default``, ``smsgateway24_default``,
``textboost_default``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag

from airflow_provider_sms.operators.contacts import SmsContactSyncOperator

WAREHOUSE = "warehouse"
GATEWAYS = {
    "smstools": "smstools_default",
    "smsgateway24": "smsgateway24_default",
    "textboost": "textboost_default",
}
LIST_NAME = "customers"
SUBSCRIBERS_SQL = """
SELECT customer_id, phone, first_name, last_name
FROM customers
WHERE unsubscribed = 0
  AND customer_id NOT IN (SELECT customer_id FROM opt_outs)
ORDER BY customer_id
"""


@dag(
    dag_id="sms_nightly_contact_sync",
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["sms", "example", "contacts"],
    doc_md=__doc__,
)
def sms_nightly_contact_sync() -> None:
    for gateway, conn_id in GATEWAYS.items():
        SmsContactSyncOperator(
            task_id=f"sync_{gateway}",
            sms_conn_id=conn_id,
            sql=SUBSCRIBERS_SQL,
            sql_conn_id=WAREHOUSE,
            column_mapping={"phone": "phone", "first_name": "first_name", "last_name": "last_name"},
            list_name=LIST_NAME,
            create_list_if_missing=True,
            # SmsGateway24 can neither list nor delete contacts: it can only add and re-save.
            mode="upsert" if gateway == "smsgateway24" else "mirror",
            state_conn_id=WAREHOUSE,
        )


sms_nightly_contact_sync()
