"""TextBoostHook against the running sandbox gateway: real HTTP, real JSON, real Laravel pages."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os

import pendulum
import pytest
import requests

from airflow_provider_sms.exceptions import SmsAmbiguousSendError, SmsAuthError, SmsValidationError
from airflow_provider_sms.hooks.textboost import TextBoostHook
from airflow_provider_sms.messages import Contact, DeliveryStatus, OutboundMessage

pytestmark = pytest.mark.integration

GATEWAY = "textboost"
TOKEN = "sandbox-textboost-token-0123456789"
WRONG_TOKEN = "not-the-sandbox-token-4711-abcdef"


@pytest.fixture
def hook(sandbox, sms_conn_env, monkeypatch):
    """The sandbox connection, with a default sender (TextBoost requires ``sender_id``)."""
    variable = f"AIRFLOW_CONN_{sms_conn_env[GATEWAY].upper()}"
    conn = json.loads(os.environ[variable])
    conn.setdefault("extra", {}).setdefault("sender_id", "ACME")
    monkeypatch.setenv(variable, json.dumps(conn))
    return TextBoostHook(sms_conn_env[GATEWAY])


def _requests(sandbox, endpoint: str) -> int:
    return sandbox.request_count(GATEWAY, path_contains=endpoint)


def _sandbox_now(sandbox) -> dt.datetime:
    return pendulum.parse(sandbox.health()["now"])


def _units(hook: TextBoostHook) -> float:
    return float(hook.balance()["remaining_balance"])


def test_round_trip_group_contacts_batch_statuses_balance(frozen_sandbox, hook):
    # The clock is stopped: the statuses read right after sending are Queued however slow the machine
    # (with real time they turn Sent after 1 s), and only advance() moves them.
    sandbox = frozen_sandbox
    units_before = _units(hook)
    group_id = hook.create_list("Customers")
    assert hook.find_list("Customers") == group_id
    assert hook.find_list("Nobody") is None

    contacts = [
        Contact("+31612345678", first_name="Ann", last_name="de Vries"),
        Contact("+31 6 1234 5679"),
        Contact("+3161234"),  # not a valid number: a reject of its own row
    ]
    results = hook.upsert_contacts(contacts, group_id)
    assert [r.accepted for r in results] == [True, True, False]
    assert results[2].error_code == "invalid_phone"
    (refused,) = hook.upsert_contacts([Contact("+31612345680")], "no-such-group")
    assert (refused.accepted, refused.error_code) == (False, "404")
    assert refused.error == "Contact group no-such-group not found."
    (updated,) = hook.upsert_contacts(
        [Contact("+31612345677", first_name="Anna", contact_id=results[0].contact_id)], group_id
    )
    assert (updated.accepted, updated.contact_id) == (True, results[0].contact_id)
    stored = {c["phone"]: c for c in sandbox.contacts(GATEWAY)}
    assert set(stored) == {"+31612345677", "+31612345679"}
    assert stored["+31612345677"]["first_name"] == "Anna"
    assert {c["list_id"] for c in stored.values()} == {group_id}

    messages = [
        OutboundMessage("+31612345601", "Your order shipped", key="5001"),
        OutboundMessage("+31612345613", "Your order shipped", key="5002"),  # ends in 13: undelivered
        OutboundMessage("+31612345666", "Your order shipped", key="5003"),  # ends in 66: failed
        OutboundMessage("+316", "Your order shipped", key="5004"),  # invalid: rejected
        OutboundMessage("+31612345604", "Ihre Bestellung ist unterwegs 🚚", key="5005"),
    ]
    since = _sandbox_now(sandbox) - dt.timedelta(minutes=1)
    results = hook.send_messages(messages)
    assert _requests(sandbox, "POST /api/v3/sms/send") == 2  # one per distinct body
    assert [r.accepted for r in results] == [True, True, True, False, True]
    assert results[3].error_code == "invalid_phone"
    ids = [r.message_id for r in results if r.accepted]
    assert all(ids) and len(set(ids)) == 4
    at_gateway = {m["recipient"]: m for m in sandbox.messages(GATEWAY)}
    assert {m["id"]: r for r, m in at_gateway.items()} == {
        r.message_id: r.message.to for r in results if r.accepted
    }
    assert all(m["count"] == 1 for m in at_gateway.values())
    assert at_gateway["+31612345604"]["type"] == "unicode"
    assert {m["sender"] for m in at_gateway.values()} == {hook.extra("sender_id")}

    early = hook.get_statuses(ids, since=since)
    assert {(r.status, r.raw_status) for r in early.values()} == {(DeliveryStatus.QUEUED, "Queued")}

    sandbox.advance(10)
    final = hook.get_statuses(ids, since=since)
    by_recipient = {r.recipient: (r.status, r.raw_status) for r in final.values()}
    assert by_recipient == {
        "+31612345601": (DeliveryStatus.DELIVERED, "Delivered"),
        "+31612345613": (DeliveryStatus.UNDELIVERED, "Undelivered"),
        "+31612345666": (DeliveryStatus.FAILED, "Failed"),
        "+31612345604": (DeliveryStatus.DELIVERED, "Delivered"),
    }
    assert all(r.status.is_final for r in final.values())
    assert hook.get_message(results[1].message_id).status is DeliveryStatus.UNDELIVERED

    found = hook.find_sent(messages, since=since)
    assert {k: r.message_id for k, r in found.items()} == {
        m.key: r.message_id for m, r in zip(messages, results, strict=True) if r.accepted
    }
    segments = sum(m["segments"] for m in sandbox.messages(GATEWAY))
    assert segments >= 4
    assert _units(hook) == units_before - segments


def test_lists_are_read_lazily_over_many_pages(sandbox, hook):
    hook.page_size = 2
    group_id = hook.create_list("Paged")
    phones = [f"+3161234560{i}" for i in range(5)]
    assert all(r.accepted for r in hook.upsert_contacts([Contact(p) for p in phones], group_id))
    for name in ("B", "C", "D", "E"):
        hook.create_group(name)

    assert [c.phone for c in hook.list_contacts(group_id)] == phones
    assert _requests(sandbox, "POST /api/v3/contacts/{group_id}/all") == 3
    assert [g["name"] for g in hook.list_groups()] == ["Paged", "B", "C", "D", "E"]
    assert _requests(sandbox, "GET /api/v3/contacts") == 3

    hook.send_sms(phones, "Paged hello")
    reports = list(hook.list_messages())
    assert sorted(r.recipient for r in reports) == sorted(phones)
    assert _requests(sandbox, "GET /api/v3/sms") == 3


def test_statuses_since_read_only_the_recent_pages_of_the_oldest_first_list(sandbox, hook):
    sandbox.set_reply_simulation(rate=0)  # the pages counted below hold exactly these messages
    hook.page_size = 10
    hook.send_sms([f"+316123456{i:02d}" for i in range(20, 25)], "old, first minute")
    sandbox.advance(60)
    hook.send_sms([f"+3161234{i:04d}" for i in range(1000, 1200)], "old, second minute")
    sandbox.advance(3600)
    recent = hook.send_sms(["+31612345601", "+31612345602", "+31612345603"], "recent")
    since = _sandbox_now(sandbox) - dt.timedelta(minutes=5)

    reports = list(hook.iter_statuses(since=since))
    assert sorted(r.message_id for r in reports) == sorted(m["uid"] for m in recent)
    # 208 messages make 21 pages of 10: page 1 shows the order, then only the last page is needed
    assert _requests(sandbox, "GET /api/v3/sms") == 2

    async_found = asyncio.run(hook.aget_statuses([m["uid"] for m in recent], since=since))
    assert async_found == hook.get_statuses([m["uid"] for m in recent], since=since)
    assert {r.body for r in async_found.values()} == {"recent"}


def test_a_refused_sender_is_raised_not_turned_into_rejects(sandbox, hook):
    """A sender refused by the gateway is about the request: its messages must stay unsent, to go out
    once it is fixed. Stored earlier requests of the batch make the failure ambiguous (look-up)."""
    refused = [OutboundMessage("+31612345602", "Hello", key="2", sender="FAR-TOO-LONG-A-SENDER")]
    with pytest.raises(SmsValidationError, match="sender id"):
        hook.send_batch(refused)
    with pytest.raises(SmsAmbiguousSendError, match="sender id"):
        hook.send_batch([OutboundMessage("+31612345601", "Hello", key="1"), *refused])
    assert {m["recipient"] for m in sandbox.messages(GATEWAY)} == {"+31612345601"}


def test_a_bad_token_fails_with_auth_error_and_never_shows_it(sandbox, sms_conn_env, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    conn = {
        "conn_type": GATEWAY,
        "host": sandbox.url,
        "password": WRONG_TOKEN,
        "extra": {"sender_id": "ACME"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_TEXTBOOST_WRONG", json.dumps(conn))
    hook = TextBoostHook("textboost_wrong")
    with pytest.raises(SmsAuthError, match=r"Unauthenticated\.") as info:
        hook.send_batch([OutboundMessage("+31612345601", "x", key="1")])
    assert info.value.status_code == 401
    ok, message = hook.test_connection()
    assert not ok
    for text in (str(info.value), repr(info.value.args), message, caplog.text):
        assert WRONG_TOKEN not in text
    assert sandbox.messages(GATEWAY) == []


def test_a_token_revoked_mid_listing_raises_auth_error_without_showing_it(sandbox, hook, caplog):
    caplog.set_level(logging.DEBUG)
    hook.page_size = 1
    hook.send_sms(["+31612345601", "+31612345602", "+31612345603"], "three")
    listing = hook.list_messages()
    assert next(listing).recipient == "+31612345601"
    hook.connection.password = WRONG_TOKEN  # as if the token were revoked in the panel mid-run
    with pytest.raises(SmsAuthError, match=r"Unauthenticated\.") as info:
        list(listing)
    assert _requests(sandbox, "GET /api/v3/sms") == 2
    for text in (str(info.value), repr(info.value.args), caplog.text):
        assert TOKEN not in text and WRONG_TOKEN not in text


def test_every_other_endpoint_against_the_sandbox(frozen_sandbox, hook, sms_conn_env, monkeypatch):
    # The clock is stopped: the campaign is still "processing" when viewed, however slow the machine
    # (with real time it is "done" 2 s after sending).
    sandbox = frozen_sandbox
    assert hook.test_connection()[0]
    assert hook.me()["email"] == "textboost-sandbox@example.com"

    group_id = hook.create_list("Staff")
    assert hook.get_group(group_id)["name"] == "Staff"
    assert hook.rename_group(group_id, "Team")["name"] == "Team"
    contact = hook.create_contact(group_id, "+31612345611", first_name="Ann")
    assert hook.get_contact(group_id, contact["uid"])["phone"] == "31612345611"
    assert hook.update_contact(group_id, contact["uid"], "+31612345612", last_name="Bo")["last_name"] == "Bo"
    other = hook.create_contact(group_id, "+31612345613")
    hook.delete_contact(group_id, other["uid"])
    hook.delete_contacts([other["uid"]], group_id)  # already gone: no error
    assert [c.phone for c in hook.list_contacts(group_id)] == ["+31612345612"]

    send_at = pendulum.instance(_sandbox_now(sandbox)).add(hours=2).set(second=0, microsecond=0)
    (voice,) = hook.send_sms(
        "+31612345621", "Code 1 2 3", sms_type="voice", language="en-gb", gender="female"
    )
    (picture,) = hook.send_sms("+31612345622", None, sms_type="mms", media_url="https://cdn.example/a.png")
    (later,) = hook.send_sms("+31612345623", "Later", schedule_time=send_at, dlt_template_id="1107")
    campaign = hook.send_campaign([group_id], "Team news", sender_id="TEAM")
    assert campaign["recipients"] == 1
    stored = {m["id"]: m for m in sandbox.messages(GATEWAY)}
    assert stored[voice["uid"]]["extra"] == {"language": "en-gb", "gender": "female"}
    assert stored[picture["uid"]]["extra"] == {"media_url": "https://cdn.example/a.png"}
    assert stored[later["uid"]]["extra"] == {"dlt_template_id": "1107"}
    assert pendulum.parse(stored[later["uid"]]["send_at"]) == send_at
    assert hook.get_message(later["uid"]).status is DeliveryStatus.SCHEDULED
    (newsletter,) = [m for m in stored.values() if m["extra"].get("campaign_uid") == campaign["uid"]]
    assert (newsletter["recipient"], newsletter["sender"]) == ("+31612345612", "TEAM")
    view = hook.view_campaign(campaign["uid"])
    assert (view["id"], view["message"], view["status"]) == (campaign["uid"], "Team news", "processing")
    sandbox.advance(3600)
    view = hook.view_campaign(campaign["uid"])
    assert (view["status"], view["stats"]["delivered_count"]) == ("done", 1)
    with pytest.raises(SmsValidationError):
        hook.view_campaign("no-such-campaign")

    hook.delete_group(group_id)
    assert hook.find_list("Team") is None

    conn = {
        "conn_type": GATEWAY,
        "host": sandbox.url,
        "password": TOKEN,
        "extra": {"api_prefix": "/api/http"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_TEXTBOOST_HTTP", json.dumps(conn))
    http_hook = TextBoostHook("textboost_http")
    assert http_hook.base_url == f"{sandbox.url}/api/http"
    assert http_hook.balance()["expired_on"] == "2099-12-31"
    assert _requests(sandbox, "GET /api/http/balance") == 1


def test_contacts_stored_with_upper_case_field_names_are_read_by_the_hook(sandbox, hook):
    """A client written after the vendor's examples sends PHONE, FIRST_NAME, LAST_NAME; the hook reads them."""
    group_id = hook.create_list("Upper")
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    url = f"{sandbox.url}/api/v3/contacts/{group_id}"
    stored = requests.post(
        f"{url}/store",
        json={"PHONE": "31612345631", "FIRST_NAME": "Ann", "LAST_NAME": "Lee"},
        headers=headers,
        timeout=10,
    )
    assert stored.status_code == 200, stored.text
    uid = stored.json()["data"]["uid"]
    updated = requests.patch(
        f"{url}/update/{uid}", json={"PHONE": "31612345632"}, headers=headers, timeout=10
    )
    assert updated.status_code == 200, updated.text
    (contact,) = hook.list_contacts(group_id)
    assert (contact.contact_id, contact.phone, contact.first_name, contact.last_name) == (
        uid,
        "+31612345632",
        "Ann",
        "Lee",
    )
