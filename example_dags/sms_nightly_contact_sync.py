"""
### Nightly contact sync: a warehouse table into each gateway's contact list

Every night the customers who may be messaged are read from the warehouse and mirrored into a
list called ``customers`` on each of the three gateways: a Smstools group, an SmsGateway24 tag and a TextBoost contact group. The list is created
on the first run; after that only what changed is sent (the sync state table
``sms_contact_sync`` remembers each contact's gateway id and a hash of its fields), so a night
without changes sends no request at all.

**consenting_customers** keeps the customers who did not unsubscribe and whose phone number is not
on the opt-out list. Opt-outs are matched **by phone number**, normalised to E.164 (``0151 1000 0290``,
``+49 151 1000-0290`` and ``004915110000290`` are one number), never by customer id or by the raw text:
a number opted out under one customer stays out when another customer shares it.

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
from typing import Any

import pendulum
from airflow.sdk import dag, task

from airflow_provider_sms.messages import InvalidPhoneNumberError, normalize_phone
from airflow_provider_sms.operators.contacts import SmsContactSyncOperator

WAREHOUSE = "warehouse"
GATEWAYS = {
    "smstools": "smstools_default",
    "smsgateway24": "smsgateway24_default",
    "textboost": "textboost_default",
}
LIST_NAME = "customers"
DEFAULT_REGION = "DE"  # how national numbers (in customers and opt_outs) are read
SUBSCRIBERS_SQL = """
SELECT customer_id, phone, first_name, last_name
FROM customers
WHERE unsubscribed = 0
ORDER BY customer_id
"""
OPT_OUTS_SQL = "SELECT phone FROM opt_outs"


def _e164(raw: Any) -> str | None:
    try:
        return normalize_phone(raw, DEFAULT_REGION)
    except InvalidPhoneNumberError:
        return None  # the sync rejects it, with the reason, in sms_contact_rejects


@task
def consenting_customers() -> list[dict[str, Any]]:
    """The subscribed customers whose number (E.164) is not on the opt-out list."""
    from airflow.sdk import BaseHook

    hook = BaseHook.get_connection(WAREHOUSE).get_hook()  # any Airflow SQL connection
    opted_out = {e164 for (phone,) in hook.get_records(OPT_OUTS_SQL) if (e164 := _e164(phone))}
    rows = [
        dict(zip(("customer_id", "phone", "first_name", "last_name"), row, strict=True))
        for row in hook.get_records(SUBSCRIBERS_SQL)
    ]
    kept = [row for row in rows if _e164(row["phone"]) not in opted_out]
    print(f"{len(rows)} subscribed customers, {len(rows) - len(kept)} of them with an opted-out number")
    return kept


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
    subscribers = consenting_customers()
    for gateway, conn_id in GATEWAYS.items():
        SmsContactSyncOperator(
            task_id=f"sync_{gateway}",
            sms_conn_id=conn_id,
            data=subscribers,
            column_mapping={"phone": "phone", "first_name": "first_name", "last_name": "last_name"},
            list_name=LIST_NAME,
            create_list_if_missing=True,
            # SmsGateway24 can neither list nor delete contacts: it can only add and re-save.
            mode="upsert" if gateway == "smsgateway24" else "mirror",
            state_conn_id=WAREHOUSE,
        )


sms_nightly_contact_sync()
