"""A STOP reply to campaign 1 keeps campaign 2 (a send, a contact sync and a newsletter) from that
number, on each gateway; a START brings it back. End to end: SmsContactSyncOperator,
SmsBulkSendOperator, SmsRepliesOperator and SmsNewsletterOperator against the sandbox gateway over
HTTP, every table on SQLite and on PostgreSQL.

Needs the safety rails (branch ``rails``: the send, the newsletter and the contact sync honour the
opt-out table by default); this branch merged it, so the test runs here as it will on main.
"""

from __future__ import annotations

from collections import Counter

import pytest

from airflow_provider_sms.operators.contacts import SmsContactSyncOperator
from airflow_provider_sms.operators.newsletter import SmsNewsletterOperator
from airflow_provider_sms.storage.ledger import MessageLedger
from tests.support.replies import ALL_IN, context, numbers, read_replies, send, stored

pytestmark = pytest.mark.integration
GATEWAYS = ["smstools", "smsgateway24", "textboost"]


def sync(conn_id: str, sql_conn_id: str, phones: list[str]) -> dict:
    return SmsContactSyncOperator(
        task_id="sync",
        sms_conn_id=conn_id,
        data=[{"phone": p} for p in phones],
        list_name="customers",
        create_list_if_missing=True,
        state_conn_id=sql_conn_id,
    ).execute(context("sync"))


def newsletter(conn_id: str, sql_conn_id: str, list_id: str) -> dict:
    return SmsNewsletterOperator(
        task_id="newsletter",
        sms_conn_id=conn_id,
        list_ids=[list_id],
        body="Our winter newsletter is out. Reply STOP to opt out",
        campaign_key="newsletter-2",
        ledger_conn_id=sql_conn_id,
        sender="Shop",
    ).execute(context("newsletter"))


def received(sandbox, gateway: str) -> Counter:
    return Counter(m["recipient"] for m in sandbox.messages(gateway=gateway))


def suppressed(sql_conn_id: str, campaign_key: str) -> dict[str, str]:
    ledger = MessageLedger(sql_conn_id)
    try:
        return {e.recipient: e.error for e in ledger.in_state(campaign_key, ["suppressed"])}
    finally:
        ledger.close()


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_stop_reply_to_campaign_1_keeps_campaign_2_from_that_number_and_start_brings_it_back(
    gateway, sandbox, sms_conn_env, sql_conn_id
):
    conn_id = sms_conn_env[gateway]
    (simulated,), others = numbers("stop", 1), numbers(None, 4)
    injected = others[0]
    audience = [simulated, *others]
    list_id = sync(conn_id, sql_conn_id, audience)["list_id"]
    assert send(conn_id, sql_conn_id, audience, "campaign-1")["accepted"] == 5
    sandbox.inject_reply(gateway, injected, "Stop")
    sandbox.advance(ALL_IN)  # the simulated STOP arrives

    replies = read_replies(conn_id, sql_conn_id)
    assert (replies["new"], replies["opted_out"], replies["matched"]) == (2, 2, 2)
    assert {r["campaign_key"] for r in stored(sql_conn_id).values()} == {"campaign-1"}

    # Campaign 2: the send, the nightly sync, then the newsletter to the synced list.
    second = send(conn_id, sql_conn_id, audience, "campaign-2")
    assert (second["accepted"], second["suppressed"]) == (3, 2)
    assert suppressed(sql_conn_id, "campaign-2") == {simulated: "opted out", injected: "opted out"}
    assert sync(conn_id, sql_conn_id, audience)["opted_out"] == 2
    letter = newsletter(conn_id, sql_conn_id, list_id)
    assert letter["recipients"] == 3
    counts = received(sandbox, gateway)
    assert counts[simulated] == counts[injected] == 1  # campaign 1 only
    assert all(counts[p] == 3 for p in others[1:])  # campaign 1, campaign 2, the newsletter
    # How each gateway's newsletter left them out: Smstools' list marks them unsubscribed (the sync);
    # SmsGateway24's list still holds them (it cannot remove a contact), so the newsletter went
    # through the ledger; TextBoost's list no longer holds them, so its own campaign went out.
    how = (letter["via"], letter.get("send", {}).get("suppressed_reasons"))
    assert (
        how
        == {
            "smstools": ("send", {"unsubscribed": 2}),
            "smsgateway24": ("send", {"opted out": 2}),
            "textboost": ("campaign", None),
        }[gateway]
    )

    # START: the number is back for the next campaign.
    sandbox.advance(3600)
    sandbox.inject_reply(gateway, injected, "START")
    assert read_replies(conn_id, sql_conn_id)["resubscribed"] == 1
    third = send(conn_id, sql_conn_id, audience, "campaign-3")
    assert (third["accepted"], third["suppressed"]) == (4, 1)
    assert received(sandbox, gateway)[injected] == 2
