"""SmstoolsHook against the running sandbox gateway: real HTTP, real JSON, real paging.

Every test runs against both answer styles of the sandbox: ids as integers and flags as 0/1 (the
seed), and ids as strings and flags as true/false (as clients written by others read them).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from airflow_provider_sms.exceptions import SmsAmbiguousSendError, SmsAuthError, SmsValidationError
from airflow_provider_sms.hooks.smstools import SmstoolsHook
from airflow_provider_sms.messages import Contact, DeliveryStatus, OutboundMessage
from airflow_provider_sms.sandbox.testing import SandboxServer, run_sandbox

pytestmark = pytest.mark.integration

GATEWAY = "smstools"
SECRET = "sandbox-client-secret-0123456789"
WRONG_SECRET = "not-the-sandbox-secret-4711"
UTC = dt.timezone.utc
SENDER = "Shop"  # the sandbox connection has no sender_id extra: every send names its sender


@pytest.fixture(scope="module")
def strings_sandbox_server() -> Iterator[SandboxServer]:
    """A sandbox answering Smstools ids as strings and flags as booleans (started when first used)."""
    with run_sandbox(delivery_seconds=2, smstools_id_style="strings") as server:
        yield server


@pytest.fixture(params=["numbers", "strings"])
def sandbox(request, sandbox_server: SandboxServer) -> SandboxServer:
    """Overrides the shared fixture: the session's sandbox (ids as integers) or the strings-style
    one, emptied and fault-free."""
    server = (
        sandbox_server if request.param == "numbers" else request.getfixturevalue("strings_sandbox_server")
    )
    server.reset()
    server.clear_faults()
    return server


@pytest.fixture
def hook(sandbox, sms_conn_env):
    return SmstoolsHook(sms_conn_env[GATEWAY])


def _credits(hook: SmstoolsHook) -> float:
    return float(hook.get_balance()["credits"])


def _sends(sandbox) -> int:
    return sandbox.request_count(GATEWAY, path_contains="/v1/message/send")


def test_round_trip_group_contacts_batch_statuses_and_balance(frozen_sandbox, hook):
    # The clock is stopped: the statuses read right after sending are queued however slow the machine
    # (with real time they turn sent after 1 s), and only advance() moves them.
    sandbox = frozen_sandbox
    group_id = hook.create_list("Customers")
    assert hook.find_list("Customers") == group_id
    contacts = [
        Contact("+31612345678", first_name="Ann", last_name="de Vries", birthday=dt.date(1990, 2, 3)),
        Contact("+31 6 1234 5679", extra={"extra1": "VIP"}),
        Contact("+3161234"),  # not a valid number: a reject of its own row
    ]
    results = hook.upsert_contacts(contacts, group_id)
    assert [r.accepted for r in results] == [True, True, False]
    assert results[2].error_code == "invalid_phone"
    stored = {c["phone"]: c for c in sandbox.contacts(GATEWAY)}
    assert set(stored) == {"+31612345678", "+31612345679"}
    assert {str(c["list_id"]) for c in stored.values()} == {group_id}

    ann = Contact("+31612345678", first_name="Anna", contact_id=results[0].contact_id)
    assert hook.upsert_contacts([ann], group_id)[0].accepted
    listed = {c.phone: c for c in hook.list_contacts(group_id)}
    assert listed["+31612345678"].first_name == "Anna"
    assert listed["+31612345679"].extra == {"extra1": "VIP"}
    hook.rename_group(group_id, "VIP customers")
    assert hook.get_group(group_id)["name"] == "VIP customers"
    assert hook.get_group(group_id)["total"] == 2

    credits = _credits(hook)
    messages = [
        OutboundMessage("+31612345601", "Sale!", sender=SENDER, key="5001"),
        OutboundMessage("+31612345613", "Sale!", sender=SENDER, key="5002"),  # ends in 13: undelivered
        OutboundMessage("+31612345666", "Hi Ann, sale!", sender=SENDER, key="5003"),  # ends in 66: failed
        OutboundMessage("+316", "Sale!", sender=SENDER, key="5004"),  # invalid: rejected, never sent
    ]
    since = dt.datetime.now(UTC) - dt.timedelta(minutes=1)
    sent = hook.send_messages(messages)
    assert _sends(sandbox) == 2  # one request per distinct text
    assert [r.accepted for r in sent] == [True, True, True, False]
    ids = {m.key: r.message_id for m, r in zip(messages, sent, strict=True) if r.accepted}
    at_gateway = {m["recipient"]: m for m in sandbox.messages(GATEWAY)}
    assert set(at_gateway) == {"+31612345601", "+31612345613", "+31612345666"}
    assert all(m["count"] == 1 for m in at_gateway.values())
    assert at_gateway["+31612345666"]["reference"] == "5003"
    assert _credits(hook) == credits - 3

    assert {k: r.message_id for k, r in hook.find_sent(messages, since).items()} == ids
    early = hook.get_statuses(ids.values(), since)
    assert {r.status for r in early.values()} == {DeliveryStatus.QUEUED}

    sandbox.advance(10)
    final = hook.get_statuses(ids.values(), since)
    assert {r.message_id: (r.status, r.raw_status) for r in final.values()} == {
        ids["5001"]: (DeliveryStatus.DELIVERED, "delivered"),
        ids["5002"]: (DeliveryStatus.UNDELIVERED, "undelivered"),
        ids["5003"]: (DeliveryStatus.FAILED, "failed"),
    }
    assert asyncio.run(hook.aget_statuses(ids.values(), since)) == final

    hook.delete_contacts([results[1].contact_id, results[1].contact_id], group_id)  # twice: still fine
    assert [c.phone for c in hook.list_contacts(group_id)] == ["+31612345678"]
    hook.delete_group(group_id)
    assert hook.find_list("VIP customers") is None


def test_a_lost_answer_is_ambiguous_and_find_sent_finds_every_message(sandbox, hook):
    messages = [
        OutboundMessage("+31612345601", "Sale!", sender=SENDER, key="6001"),
        OutboundMessage("+31612345602", "Sale!", sender=SENDER, key="6002"),
        OutboundMessage("+31612345603", "Hi Ann", sender=SENDER, key="6003"),
    ]
    since = dt.datetime.now(UTC) - dt.timedelta(minutes=1)
    sandbox.set_faults(commit_then_drop=1.0, paths=["/v1/message/send"])
    with pytest.raises(SmsAmbiguousSendError):
        hook.send_batch(messages)
    sandbox.clear_faults()
    assert _sends(sandbox) == 1  # not resent: the first request's answer was lost
    stored = {m["recipient"]: m["id"] for m in sandbox.messages(GATEWAY)}
    assert set(stored) == {"+31612345601", "+31612345602"}  # the first request ("Sale!") only

    found = hook.find_sent(messages, since)
    assert {k: r.message_id for k, r in found.items()} == {
        "6001": stored["+31612345601"],
        "6002": stored["+31612345602"],
    }
    results = hook.send_batch([m for m in messages if m.key not in found])
    assert all(r.accepted for r in results)
    found = hook.find_sent(messages, since)
    assert set(found) == {"6001", "6002", "6003"}
    assert all(m["count"] == 1 for m in sandbox.messages(GATEWAY))


def test_scheduled_messages_are_in_the_outbox_until_cancelled(sandbox, hook):
    credits = _credits(hook)
    send_at = (dt.datetime.now(UTC) + dt.timedelta(hours=2)).replace(second=0, microsecond=0)
    message = OutboundMessage("+31612345601", "Later", sender=SENDER, key="7001", send_at=send_at)
    (result,) = hook.send_batch([message])
    (scheduled,) = hook.get_outbox()
    assert (scheduled.message_id, scheduled.key, scheduled.updated_at) == (result.message_id, "7001", send_at)
    assert hook.find_sent([message])["7001"].message_id == result.message_id
    assert _credits(hook) == credits - 1
    hook.cancel_scheduled(scheduled.message_id)
    assert list(hook.get_outbox()) == []
    assert _credits(hook) == credits  # refunded
    assert list(hook.get_inbox()) == []


def test_test_mode_validates_without_storing_and_voice_is_sent(sandbox, hook):
    ids = hook.send_message(["+31612345601", "+31612345602"], "Just checking", sender=SENDER, test=True)
    assert len(ids) == 2 and all(ids)
    assert sandbox.messages(GATEWAY) == []
    voice_id = hook.send_voice(
        "+31612345603", "Your code is 1 2 3", gender="Male", language="nl", sender=SENDER
    )
    (stored,) = sandbox.messages(GATEWAY)
    assert (stored["id"], stored["type"]) == (voice_id, "voice")
    assert hook.get_account()["username"] == "sandbox-client-id"


def test_large_batches_go_in_requests_of_1000_and_recent_statuses_read_few_pages(sandbox, hook):
    numbers = [f"+316123{n:05d}" for n in range(4100)]
    results = hook.send_messages([OutboundMessage(n, "Big sale", sender=SENDER) for n in numbers])
    assert all(r.accepted for r in results) and _sends(sandbox) == 5
    sandbox.advance(3600)
    late = hook.send_batch(
        [
            OutboundMessage("+31612399901", "Late", sender=SENDER),
            OutboundMessage("+31612399902", "Late", sender=SENDER),
        ]
    )
    logging_reads = sandbox.request_count(GATEWAY, path_contains="/v1/message/logging")
    since = dt.datetime.now(UTC) + dt.timedelta(minutes=30)  # between the two sends, in sandbox time
    recent = list(hook.iter_statuses(since))
    assert {r.message_id for r in recent} == {r.message_id for r in late}
    # Oldest first: page 1, then the last page, which already reaches back before since.
    assert sandbox.request_count(GATEWAY, path_contains="/v1/message/logging") - logging_reads == 2
    assert sum(1 for _ in hook.iter_statuses()) == 4102


def test_bad_secret_fails_with_auth_error_and_never_shows_it(sandbox, sms_conn_env, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    conn = {"conn_type": GATEWAY, "host": sandbox.url, "login": "sandbox-client-id", "password": WRONG_SECRET}
    monkeypatch.setenv("AIRFLOW_CONN_SMSTOOLS_WRONG", json.dumps(conn))
    hook = SmstoolsHook("smstools_wrong")
    with pytest.raises(SmsAuthError, match="Invalid credentials") as info:
        hook.send_batch([OutboundMessage("+31612345601", "x", sender=SENDER, key="1")])
    ok, message = hook.test_connection()
    assert not ok
    for text in (str(info.value), repr(info.value.args), message, caplog.text):
        assert WRONG_SECRET not in text
    assert sandbox.messages(GATEWAY) == []


def test_a_send_without_any_sender_is_refused_before_it_leaves(sandbox, monkeypatch):
    conn = {"conn_type": GATEWAY, "host": sandbox.url, "login": "sandbox-client-id", "password": SECRET}
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    monkeypatch.setenv("AIRFLOW_CONN_SMSTOOLS_NO_SENDER", json.dumps(conn))  # no sender_id extra
    with pytest.raises(ValueError, match="sender_id"):
        SmstoolsHook("smstools_no_sender").send_batch([OutboundMessage("+31612345601", "x", key="1")])
    assert _sends(sandbox) == 0


def test_voice_goes_out_without_sender_gender_or_language(sandbox, monkeypatch):
    conn = {"conn_type": GATEWAY, "host": sandbox.url, "login": "sandbox-client-id", "password": SECRET}
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    monkeypatch.setenv("AIRFLOW_CONN_SMSTOOLS_NO_SENDER", json.dumps(conn))  # no sender_id extra
    voice_id = SmstoolsHook("smstools_no_sender").send_voice("+31612345603", "Your code is 1 2 3")
    assert re.fullmatch(r"[a-z0-9]{30}", voice_id)
    (stored,) = sandbox.messages(GATEWAY)
    assert (stored["id"], stored["type"], stored["sender"]) == (voice_id, "voice", None)


def test_a_reference_of_255_characters_round_trips(sandbox, hook):
    message_id = hook.send_message("+31612345601", "Hi", sender=SENDER, reference="k" * 255)
    (report,) = [r for r in hook.iter_statuses() if r.message_id == message_id]
    assert report.key == "k" * 255


def test_a_possible_but_invalid_number_is_refused_by_the_hook_or_fails_at_delivery(sandbox, hook):
    """The hook's own validation keeps ``+3161245678`` from leaving; a client that sends it anyway
    gets a messageid from the gateway (as from the real service) and a failed delivery later."""
    (result,) = hook.send_messages([OutboundMessage("+3161245678", "Hi", sender=SENDER, key="8001")])
    assert (result.accepted, result.error_code) == (False, "invalid_phone")
    assert _sends(sandbox) == 0
    answer = requests.post(
        f"{sandbox.url}/v1/message/send",
        headers={"X-Client-Id": "sandbox-client-id", "X-Client-Secret": SECRET},
        json={"to": "+3161245678", "message": "Hi", "sender": SENDER},
        timeout=10,
    )
    message_id = answer.json()["messageid"]
    sandbox.advance(10)
    (report,) = [r for r in hook.iter_statuses() if r.message_id == message_id]
    assert (report.status, report.raw_status) == (DeliveryStatus.FAILED, "failed")


def test_ids_flags_and_amounts_read_the_same_in_both_styles(sandbox, hook):
    group_id = hook.create_list("Opt-outs")
    assert group_id.isdigit()
    results = hook.upsert_contacts(
        [Contact("+31612345601", unsubscribed=True), Contact("+31612345602")], group_id
    )
    assert all(r.accepted and r.contact_id.isdigit() for r in results)
    listed = {c.phone: c for c in hook.list_contacts(group_id)}
    assert (listed["+31612345601"].unsubscribed, listed["+31612345602"].unsubscribed) == (True, False)
    assert {c.contact_id for c in listed.values()} == {r.contact_id for r in results}
    assert hook.find_list("Opt-outs") == group_id
    assert hook.get_credits() == Decimal(hook.get_balance()["credits"])


def test_opt_outs_sender_ids_and_number_formatting(sandbox, hook):
    group_id = hook.create_list("Customers")
    contacts = [Contact(f"+3161234560{i}", unsubscribed=i % 2 == 1) for i in range(1, 6)]
    assert all(r.accepted for r in hook.upsert_contacts(contacts, group_id))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("airflow_provider_sms.hooks.smstools.PAGE_LIMIT", 2)  # page 1 of 2, then 2
        opt_outs = list(hook.iter_opt_outs())
    assert [o["phone"] for o in opt_outs] == ["+31612345601", "+31612345603", "+31612345605"]
    assert sandbox.request_count(GATEWAY, path_contains="/v1/optouts/list") == 2
    assert any(s["senderid"] for s in hook.get_sender_ids())
    assert hook.format_number("06 1234 5678", "NL") == "+31612345678"
    with pytest.raises(SmsValidationError):
        hook.format_number("061245678", "NL")
