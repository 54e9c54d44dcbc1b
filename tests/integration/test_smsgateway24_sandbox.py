"""SmsGateway24Hook against the running sandbox gateway: real HTTP, real form encoding, real tokens."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging

import pytest

from airflow_provider_sms.exceptions import SmsAuthError
from airflow_provider_sms.hooks.smsgateway24 import SmsGateway24Hook
from airflow_provider_sms.messages import Contact, DeliveryStatus, OutboundMessage

pytestmark = pytest.mark.integration

GATEWAY = "smsgateway24"
DEVICES = {"1001", "1002"}
WRONG_PASSWORD = "not-the-sandbox-password-4711"


@pytest.fixture
def hook(sandbox, sms_conn_env):
    return SmsGateway24Hook(sms_conn_env[GATEWAY])


def _gateway_requests(sandbox, endpoint: str) -> int:
    return sandbox.request_count(GATEWAY, path_contains=f"/getdata/{endpoint}")


def test_round_trip_tag_contacts_batch_statuses(frozen_sandbox, hook):
    # The clock is stopped: the statuses read right after sending are still 1 (pending on the server)
    # however slow the machine (with real time, 3 after 0.8 s), and only advance() moves them.
    sandbox = frozen_sandbox
    tag_id = hook.create_list("Customers")
    contacts = [
        Contact("+31612345678", first_name="Ann", last_name="de Vries"),
        Contact("+31 6 1234 5679"),
        Contact("+3161234"),  # not a valid number: a reject of its own row
    ]
    contact_results = hook.upsert_contacts(contacts, tag_id)
    assert [r.accepted for r in contact_results] == [True, True, False]
    assert contact_results[2].error_code == "invalid_phone"
    (refused,) = hook.upsert_contacts([Contact("+31612345680")], "999999")  # a tag that does not exist
    assert (refused.accepted, refused.error, refused.error_code) == (False, "Tag not found", "1")
    stored = {c["phone"]: c for c in sandbox.contacts(GATEWAY)}
    assert set(stored) == {"+31612345678", "+31612345679"}
    assert {str(c["list_id"]) for c in stored.values()} == {tag_id}
    assert stored["+31612345678"]["fields"]["fullname"] == "Ann de Vries"

    messages = [
        OutboundMessage("+31612345601", "Order 1 shipped", key="5001"),
        OutboundMessage("+31612345613", "Order 2 shipped", key="5002"),  # ends in 13: undelivered
        OutboundMessage("+31612345666", "Order 3 shipped", key="5003"),  # ends in 66: failed
        OutboundMessage("+316", "Order 4 shipped", key="5004"),  # invalid: rejected
        OutboundMessage("+31612345604", "Order 5 shipped", key="5005", options={"device_id": 1002, "sim": 1}),
    ]
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    results = hook.send_messages(messages)
    assert _gateway_requests(sandbox, "addalotofsms") == 1
    assert [r.accepted for r in results] == [True, True, True, False, True]
    ids = [r.message_id for r in results if r.accepted]
    assert all(ids) and len(set(ids)) == 4

    at_gateway = {m["recipient"]: m for m in sandbox.messages(GATEWAY)}
    assert set(at_gateway) == {"+31612345601", "+31612345613", "+31612345666", "+31612345604"}
    assert all(m["count"] == 1 for m in at_gateway.values())
    assert at_gateway["+31612345604"]["extra"]["device_id"] == 1002
    assert at_gateway["+31612345604"]["extra"]["sim"] == 1
    assert at_gateway["+31612345601"]["customerid"] == "5001"

    early = hook.get_statuses(ids, since=since)
    assert {r.status for r in early.values()} == {DeliveryStatus.QUEUED}
    assert {r.raw_status for r in early.values()} == {"1"}

    sandbox.advance(10)
    final = hook.get_statuses(ids, since=since)
    by_key = {r.key: r for r in final.values()}
    assert {k: (r.status, r.raw_status) for k, r in by_key.items()} == {
        "5001": (DeliveryStatus.DELIVERED, "7"),
        "5002": (DeliveryStatus.UNDELIVERED, "8"),
        "5003": (DeliveryStatus.FAILED, "9"),
        "5005": (DeliveryStatus.DELIVERED, "7"),
    }
    assert all(r.status.is_final for r in final.values())
    assert by_key["5001"].recipient == "+31612345601"
    assert by_key["5001"].body == "Order 1 shipped"
    assert hook.get_sms_status(results[1].message_id).status is DeliveryStatus.UNDELIVERED

    found = hook.find_sent(messages)  # without since: by customerid
    assert {k: r.message_id for k, r in found.items()} == {
        m.key: r.message_id for m, r in zip(messages, results, strict=True) if r.accepted
    }
    assert hook.count_sms(status=7) == 2
    # SmsGateway24 has no balance (the user's own phone sends); the device is what we can check.
    assert {str(d["id"]) for d in hook.get_all_devices()} == DEVICES


def test_async_statuses_match_the_sync_ones(sandbox, hook):
    results = hook.send_batch([OutboundMessage("+31612345601", "async", key="7001")])
    sandbox.advance(10)
    ids = [results[0].message_id]
    async_found = asyncio.run(hook.aget_statuses(ids))
    assert async_found == hook.get_statuses(ids)
    assert async_found[ids[0]].status is DeliveryStatus.DELIVERED


def test_a_scheduled_message_reports_scheduled_until_its_time(sandbox, hook):
    send_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)
    (result,) = hook.send_batch([OutboundMessage("+31612345601", "later", key="8001", send_at=send_at)])
    (report,) = hook.find_sent(
        [result.message], since=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    ).values()
    assert (report.message_id, report.status, report.raw_status) == (
        result.message_id,
        DeliveryStatus.SCHEDULED,
        "1",
    )


def test_token_expiry_mid_run_is_refreshed_once_and_the_call_succeeds(sandbox, hook):
    first = hook.save_tag("before expiry")
    assert _gateway_requests(sandbox, "gettoken") == 1
    sandbox.expire_tokens()
    second = hook.save_tag("after expiry")
    assert int(second) == int(first) + 1
    assert _gateway_requests(sandbox, "gettoken") == 2
    assert _gateway_requests(sandbox, "savetag") == 3  # the refused one, then the retried one
    sandbox.expire_tokens()
    (result,) = hook.send_batch([OutboundMessage("+31612345601", "after expiry", key="9001")])
    assert result.accepted  # the token inside datajson was refreshed too
    assert len(sandbox.messages(GATEWAY)) == 1


def test_bad_password_fails_with_auth_error_and_never_shows_it(sandbox, sms_conn_env, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    conn = {
        "conn_type": GATEWAY,
        "host": sandbox.url,
        "login": "sandbox@example.com",
        "password": WRONG_PASSWORD,
        "extra": {"device_id": 1001},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SMSGATEWAY24_WRONG", json.dumps(conn))
    hook = SmsGateway24Hook("smsgateway24_wrong")
    with pytest.raises(SmsAuthError, match="Login or password incorrect") as info:
        hook.send_batch([OutboundMessage("+31612345601", "x", key="1")])
    with pytest.raises(SmsAuthError):
        hook.sms_to_send("+31612345601", "x")
    ok, message = hook.test_connection()
    assert not ok
    for text in (str(info.value), repr(info.value.args), message, caplog.text):
        assert WRONG_PASSWORD not in text
    assert sandbox.messages(GATEWAY) == []


def test_every_other_endpoint_against_the_sandbox(sandbox, hook, tmp_path):
    assert hook.test_connection()[0]
    assert hook.get_token() == hook.get_token()
    device = hook.get_device_status(1002)
    assert device["device_id"] == "1002"
    assert device["last_seen"].tzinfo is not None

    image = tmp_path / "coupon.png"
    image.write_bytes(b"\x89PNG fake")
    with_image = hook.add_sms("+31612345601", "", sim=2, file=image)
    plain = hook.add_sms(["+31612345602", "+31612345603"], "Two numbers", customer_id=42, urgent=True)
    # Schedule times well after today, whatever today is; at hours no DST change touches (01:00 UTC).
    today = dt.datetime.now(dt.timezone.utc).date()
    later = dt.datetime.combine(today + dt.timedelta(days=400), dt.time(3, 4, 5))  # naive: taken as UTC
    by_login = hook.sms_to_send("+31612345604", "By login", send_at=later)
    stored = {str(m["id"]): m for m in sandbox.messages(GATEWAY)}
    assert stored[with_image]["body"].endswith("coupon.png")
    assert stored[with_image]["extra"]["sim"] == 2
    assert stored[plain]["customerid"] == "42"
    assert stored[by_login]["send_at"].startswith(later.isoformat())
    assert len(stored) == 4

    tag_id = hook.save_tag("Newsletter")
    hook.save_contact("+31612345611", tag_id, "Ann")
    hook.save_contact("+31612345612", tag_id)
    paket_at = dt.datetime.combine(today + dt.timedelta(days=500), dt.time(9, 0), tzinfo=dt.timezone.utc)
    paket_id = hook.save_paket("May", "Sale!", [tag_id], send_at=paket_at)
    newsletter = [m for m in sandbox.messages(GATEWAY) if m["extra"].get("paket_id") == int(paket_id)]
    assert {m["recipient"] for m in newsletter} == {"+31612345611", "+31612345612"}
    assert {m["send_at"][:19] for m in newsletter} == {paket_at.strftime("%Y-%m-%dT%H:%M:%S")}
