"""
### A newsletter to a contact list, on each gateway

On the first of the month a newsletter goes to the ``customers`` list that
``sms_nightly_contact_sync`` keeps up to date, on each gateway with that gateway's own means:

- **SmsGateway24**: one ``savepaket`` to the tag; the phone sends it.
- **TextBoost**: one ``/sms/campaign`` to the contact group.
- **Smstools** (no campaign object): the group's contacts are read and sent through the message
  ledger, one message per distinct number.

``find_list_<gateway>`` looks the list's id up in the sync state table (``sms_contact_sync``), where
the contact sync recorded the list it created: it fails, saying so, if the sync never ran. Each
newsletter is created exactly once per DAG run (table ``sms_newsletters``): a retry returns the
recorded newsletter instead of sending a second one.

The ``send_at`` param schedules the newsletter (ISO 8601, UTC); empty means now.

Connections: ``warehouse`` (sync state, newsletter and ledger tables), ``smstools_default``,
``smsgateway24_default``, ``textboost_default``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_sms.operators.newsletter import SmsNewsletterOperator

WAREHOUSE = "warehouse"
GATEWAYS = {
    "smstools": "smstools_default",
    "smsgateway24": "smsgateway24_default",
    "textboost": "textboost_default",
}
LIST_NAME = "customers"
BODY = (
    "ACME news: our winter collection is in store, and members get free delivery until Sunday. "
    "Reply STOP to opt out"
)


@task
def find_list(sms_conn_id: str, list_name: str) -> str:
    """The id of the list the contact sync created under ``list_name`` on this connection's gateway."""
    from airflow_provider_sms.operators.contacts import synced_list_id

    list_id = synced_list_id(sms_conn_id, list_name, state_conn_id=WAREHOUSE)
    if list_id is None:
        raise ValueError(
            f"no list called {list_name!r} in the sync state: run sms_nightly_contact_sync first"
        )
    return list_id


@dag(
    dag_id="sms_newsletter",
    schedule="0 10 1 * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={"send_at": Param("", type="string", description="ISO 8601 time (UTC); empty: now")},
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    tags=["sms", "example", "newsletter"],
    doc_md=__doc__,
)
def sms_newsletter() -> None:
    for gateway, conn_id in GATEWAYS.items():
        list_id = find_list.override(task_id=f"find_list_{gateway}")(conn_id, LIST_NAME)
        SmsNewsletterOperator(
            task_id=f"newsletter_{gateway}",
            sms_conn_id=conn_id,
            list_ids=list_id,
            body=BODY,
            title="ACME winter newsletter",
            send_at="{{ params.send_at }}",
            campaign_key=f"{{{{ dag.dag_id }}}}.{gateway}.{{{{ run_id }}}}",
            ledger_conn_id=WAREHOUSE,
        )


sms_newsletter()
