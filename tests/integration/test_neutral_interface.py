"""One scenario, three gateways: the gateway-neutral interface behaves the same on each."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_sms.hooks import aget_gateway_hook, get_gateway_hook
from airflow_provider_sms.messages import Contact, DeliveryStatus, OutboundMessage

GATEWAYS = ["smstools", "smsgateway24", "textboost"]
# Sandbox outcomes depend on the number's last digits: 13 undelivered, 66 failed, others delivered.
NUMBERS = {"+4915112340001": "delivered", "+4915112340013": "undelivered", "+4915112340066": "failed"}


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_send_statuses_lookup_and_connection_test(gateway, sandbox, sms_conn_env):
    hook = get_gateway_hook(sms_conn_env[gateway])
    assert hook.gateway == gateway
    assert hook.test_connection()[0] is True
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    messages = [
        OutboundMessage(to=number, body="Your parcel arrives today", key=str(1000 + i))
        for i, number in enumerate(NUMBERS)
    ]
    messages.append(OutboundMessage(to="+4915", body="Your parcel arrives today", key="1099"))

    results = hook.send_messages(messages)

    assert [r.message.to for r in results] == [m.to for m in messages]  # input order
    assert [r.accepted for r in results] == [True, True, True, False]
    assert results[-1].error
    ids = [r.message_id for r in results[:3]]
    assert len(set(ids)) == 3 and all(ids)
    assert len(sandbox.messages(gateway=gateway)) == 3

    sandbox.advance(10)
    statuses = hook.get_statuses(ids, since=since)
    assert {statuses[i].recipient: statuses[i].status.value for i in ids} == NUMBERS
    assert all(statuses[i].status.is_final and statuses[i].raw_status for i in ids)

    async def read_async():
        async_hook = await aget_gateway_hook(sms_conn_env[gateway])
        return (
            await async_hook.aget_statuses(ids, since=since),
            await async_hook.aget_status_values(ids, since=since),
        )

    reports, values = asyncio.run(read_async())
    want = {k: v.status for k, v in statuses.items()}
    assert {k: v.status for k, v in reports.items()} == want
    assert values == want == hook.get_status_values([*ids, "no-such-id"], since=since)
    listed = sandbox.request_count(gateway=gateway)
    assert hook.get_status_values([], since=since) == {} == hook.get_statuses([], since=since)
    assert sandbox.request_count(gateway=gateway) == listed  # nothing asked, nothing read

    found = hook.find_sent(messages[:3], since)
    assert {found[m.key].message_id for m in messages[:3]} == set(ids)


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_contacts_land_in_a_new_list_with_invalid_ones_rejected(gateway, sandbox, sms_conn_env):
    hook = get_gateway_hook(sms_conn_env[gateway])
    list_id = hook.create_list("Customers")
    contacts = [Contact("+4915112340001", first_name="Ann"), Contact("+4915", first_name="Bad")]

    results = hook.upsert_contacts(contacts, list_id)

    assert [r.accepted for r in results] == [True, False]
    assert results[0].contact_id and results[1].error
    stored = [c for c in sandbox.contacts(gateway=gateway) if str(c["list_id"]) == str(list_id)]
    assert [c["phone"] for c in stored] == ["+4915112340001"]
    if gateway != "smsgateway24":  # SmsGateway24 cannot list contacts (see its hook)
        assert [c.phone for c in hook.list_contacts(list_id)] == ["+4915112340001"]


def test_a_scheduled_message_waits_at_every_gateway(sandbox, sms_conn_env):
    at = datetime.now(timezone.utc) + timedelta(days=1)
    for gateway in GATEWAYS:
        hook = get_gateway_hook(sms_conn_env[gateway])
        (result,) = hook.send_messages([OutboundMessage("+4915112340001", "Tomorrow", key="7", send_at=at)])
        assert result.accepted
    stored = {m["gateway"]: m for m in sandbox.messages()}
    # Each gateway's own word for it; Smstools' "scheduled" normalises to queued (gateways.md).
    assert {g: str(m["status"]) for g, m in stored.items()} == {
        "smstools": "scheduled",
        "smsgateway24": "1",
        "textboost": "Scheduled",
    }
    for message in stored.values():
        send_at = datetime.fromisoformat(message["send_at"].replace("Z", "+00:00"))
        assert abs(send_at - at) < timedelta(minutes=1)
    assert stored["textboost"]["normalized_status"] == DeliveryStatus.SCHEDULED.value


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_status_values_read_lean_reports_equal_to_the_whole_ones(gateway, sandbox, sms_conn_env):
    """The status look-up builds reports with :meth:`status_only` (no recipient, key, body or
    update time parsed); what it does read is the whole report's, message by message, and the
    statuses it returns are those of the whole listing, in every state and with or without since."""
    hook = get_gateway_hook(sms_conn_env[gateway])
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    later = datetime.now(timezone.utc) + timedelta(days=1)
    final, fresh = (
        [
            OutboundMessage(to=f"+49151123400{n:02d}", body=f"Parcel {n} arrives today", key=str(2000 + n))
            for n in numbers
        ]
        for numbers in ((1, 13, 66), (2, 14))
    )
    ids = [r.message_id for r in hook.send_messages(final)]
    sandbox.advance(10)  # delivered, undelivered, failed
    fresh.append(OutboundMessage("+4915112340003", "Tomorrow's parcel", key="2099", send_at=later))
    ids += [r.message_id for r in hook.send_messages(fresh)]  # queued, and scheduled for tomorrow

    for when in (None, since):
        whole = {r.message_id: r for r in hook.iter_statuses(when) if r.message_id in ids}
        lean = {
            r.message_id: r
            for r in hook._status_pages(when, hook.status_only)  # the listing get_status_values reads
            if r.message_id in ids
        }
        assert whole.keys() == lean.keys() == set(ids)
        for message_id, report in whole.items():
            kept = lean[message_id]
            assert (kept.status, kept.raw_status, kept.created_at) == (
                report.status,
                report.raw_status,
                report.created_at,
            )
            assert (kept.recipient, kept.key, kept.body, kept.updated_at) == (None, None, None, None)
            assert report.recipient and report.body  # the whole report did read them
        want = {i: whole[i].status for i in ids}
        assert len(set(want.values())) >= 4  # final and waiting ones compared
        assert hook.get_status_values(ids, since=when) == want

        async def read_async(when=when):
            async_hook = await aget_gateway_hook(sms_conn_env[gateway])
            return await async_hook.aget_status_values(ids, since=when)

        assert asyncio.run(read_async()) == want
