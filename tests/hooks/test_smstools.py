"""SmstoolsHook against requests-mock: the exact request of every endpoint, and the parses."""

from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import Decimal
from unittest import mock

import pendulum
import pytest
import requests

from airflow_provider_sms.exceptions import (
    SmsAmbiguousSendError,
    SmsAuthError,
    SmsGatewayError,
    SmsTransientError,
    SmsValidationError,
)
from airflow_provider_sms.hooks.smstools import STATUS_MAP, SmstoolsHook
from airflow_provider_sms.messages import Contact, DeliveryStatus, OutboundMessage

CLIENT_ID = "client-id-1234"
SECRET = "client-secret-abcdef-0987"
BASE = "https://api.example.test/v1"
UTC = dt.timezone.utc
BERLIN = pendulum.timezone("Europe/Berlin")


def _conn(**extra) -> str:
    return json.dumps(
        {
            "conn_type": "smstools",
            "host": "https://api.example.test",
            "login": CLIENT_ID,
            "password": SECRET,
            "extra": {"sender_id": "Shop", "timezone": "Europe/Berlin", **extra},
        }
    )


@pytest.fixture
def hook(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    monkeypatch.setenv("AIRFLOW_CONN_SMSTOOLS_TEST", _conn())
    return SmstoolsHook("smstools_test")


@pytest.fixture
def sleeps(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr("tenacity.nap.time.sleep", waits.append)
    return waits


def sent(requests_mock, n: int = -1):
    return requests_mock.request_history[n]


def assert_authorised(request) -> None:
    assert request.headers["X-Client-Id"] == CLIENT_ID
    assert request.headers["X-Client-Secret"] == SECRET
    assert request.headers["Accept"] == "application/json"


def page(key: str, items: list, *, total: int, number: int = 1, limit: int = 2000) -> dict:
    return {"total": total, "shown": len(items), "page": number, "limit": limit, key: items}


def logged(id_, message_id, to, status, *, reference=None, message="Hello!", date="2026-05-29 17:21:27"):
    return {
        "ID": id_,
        "message_ID": message_id,
        "message": message,
        "to": to,
        "sender": "Shop",
        "date": date,
        "type": "sms",
        "status": status,
        "reference": reference,
        "response": {"status": status, "statusdate": date, "reference": reference},
    }


def contact_row(id_, phone, **fields):
    row = {"ID": id_, "phone": phone, "firstname": None, "lastname": None, "unsubscribed": 0}
    return {**row, "groupid": 10001, "email": None, "birthday": None, "extra1": None, **fields}


# -------------------------------------------------------------------------------------------------
# Connection, auth, envelope


def test_connection_host_overrides_the_default_base_url(hook, monkeypatch):
    assert hook.base_url == "https://api.example.test"
    monkeypatch.setenv("AIRFLOW_CONN_SMSTOOLS_BARE", json.dumps({"conn_type": "smstools"}))
    assert SmstoolsHook("smstools_bare").base_url == "https://api.smsgatewayapi.com"
    assert (SmstoolsHook.conn_type, SmstoolsHook.default_conn_name) == ("smstools", "smstools_default")
    assert SmstoolsHook.max_batch_size == 1000


def test_every_request_carries_client_id_and_secret_headers(hook, requests_mock):
    requests_mock.get(f"{BASE}/account", json={"username": "shop", "credits": "12.50"})
    assert hook.get_account() == {"username": "shop", "credits": "12.50"}
    request = sent(requests_mock)
    assert_authorised(request)
    assert request.query == ""  # no credentials in the URL


def test_test_connection_reads_the_balance(hook, requests_mock):
    requests_mock.get(f"{BASE}/balance", json={"credits": "10.00", "currency": "EUR", "use": 0})
    ok, message = hook.test_connection()
    assert ok and "api.example.test" in message
    assert sent(requests_mock).method == "GET"


def test_bad_credentials_are_an_auth_error_and_never_show_the_secret(hook, requests_mock, caplog, sleeps):
    caplog.set_level(logging.DEBUG)
    requests_mock.get(
        f"{BASE}/balance", status_code=401, json={"error": 104, "errorMsg": f"Invalid credentials {SECRET}"}
    )
    with pytest.raises(SmsAuthError) as err:
        hook.get_balance()
    assert (err.value.code, err.value.status_code) == (104, 401)
    assert "Invalid credentials" in str(err.value) and SECRET not in str(err.value)
    ok, message = hook.test_connection()
    assert not ok and "Invalid credentials" in message and SECRET not in message
    assert SECRET not in caplog.text
    assert sleeps == []  # static credentials are not retried


@pytest.mark.parametrize(
    ("status", "payload", "exc_type"),
    [
        (200, {"error": 103, "errorMsg": "Phone number 5512 is not valid"}, SmsValidationError),
        (400, {"error": 111, "errorMsg": "Invalid sender name."}, SmsValidationError),
        (200, {"error": 104, "errorMsg": "Invalid credentials."}, SmsAuthError),
        (400, {"error": 108, "errorMsg": "Not enough credits."}, SmsGatewayError),
        (404, {"error": 125, "errorMsg": "Group not found."}, SmsValidationError),
    ],
)
def test_error_envelopes_raise_the_typed_error_with_the_gateways_code_and_message(
    hook, requests_mock, status, payload, exc_type, sleeps
):
    requests_mock.get(f"{BASE}/groups/7", status_code=status, json=payload)
    with pytest.raises(exc_type) as err:
        hook.get_group(7)
    assert type(err.value) is exc_type
    assert err.value.code == payload["error"]
    assert err.value.message == payload["errorMsg"]
    assert err.value.gateway == "smstools"
    assert sleeps == []


def test_server_errors_on_reads_are_retried(hook, requests_mock, sleeps):
    requests_mock.get(
        f"{BASE}/balance",
        [{"status_code": 503, "json": {"error": 500, "errorMsg": "busy"}}, {"json": {"credits": "1.00"}}],
    )
    assert hook.get_balance() == {"credits": "1.00"}
    assert len(sleeps) == 1


def test_status_strings_map_as_in_gateways_md():
    assert {raw: str(status) for raw, status in STATUS_MAP.items()} == {
        "delivered": "delivered",
        "sent": "sent",
        "submitted": "sent",
        "buffered": "sent",
        "queued": "queued",
        "pending": "queued",
        "scheduled": "queued",
        "undelivered": "undelivered",
        "expired": "undelivered",
        "failed": "failed",
        "error": "failed",
        "rejected": "rejected",
        "blocked": "rejected",
        "unsubscribed": "rejected",
    }


# -------------------------------------------------------------------------------------------------
# Sending


def test_send_message_posts_json_with_digits_local_schedule_and_reference(hook, requests_mock):
    requests_mock.post(f"{BASE}/message/send", json={"messageid": "h2md1e8s7d"})
    when = dt.datetime(2026, 6, 1, 7, 30, 59, tzinfo=UTC)
    message_id = hook.send_message(
        "+49 151 23456789", "Hi Ann", send_at=when, reference="4711", test=True, subid="spring"
    )
    assert message_id == "h2md1e8s7d"
    request = sent(requests_mock)
    assert_authorised(request)
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {
        "message": "Hi Ann",
        "to": "4915123456789",
        "sender": "Shop",  # the connection's sender_id
        "date": "2026-06-01 09:30",  # Europe/Berlin, minutes
        "reference": "4711",
        "test": True,
        "subid": "spring",
    }


def test_send_message_to_a_list_returns_ids_aligned_with_it(hook, requests_mock):
    requests_mock.post(f"{BASE}/message/send", json={"messageids": ["a1", None, "a3"]})
    ids = hook.send_message(["+31612345601", "+31612345602", "+31612345603"], "Hi", sender="Other")
    assert ids == ["a1", None, "a3"]
    assert sent(requests_mock).json() == {
        "message": "Hi",
        "to": ["31612345601", "31612345602", "31612345603"],
        "sender": "Other",
    }


def test_send_message_refuses_an_invalid_number_before_sending(hook, requests_mock):
    with pytest.raises(ValueError, match="too short"):
        hook.send_message("+316", "Hi")
    assert requests_mock.call_count == 0


def test_a_send_without_sender_or_sender_id_extra_is_refused_before_it_leaves(monkeypatch, requests_mock):
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    monkeypatch.setenv("AIRFLOW_CONN_SMSTOOLS_NOSENDER", _conn(sender_id=""))
    hook = SmstoolsHook("smstools_nosender")
    with pytest.raises(ValueError, match="sender_id"):  # checked for every request before the first
        hook.send_batch(
            [OutboundMessage("+31612345601", "x", sender="Own"), OutboundMessage("+31612345602", "x")]
        )
    assert requests_mock.call_count == 0


def test_send_voice_adds_gender_and_language(hook, requests_mock):
    requests_mock.post(f"{BASE}/voice/send", json={"messageid": "v1"})
    assert hook.send_voice("+31612345601", "Your code is 1 2 3", gender="Male", language="nl") == "v1"
    assert sent(requests_mock).json() == {
        "message": "Your code is 1 2 3",
        "to": "31612345601",
        "sender": "Shop",
        "gender": "Male",
        "language": "nl",
    }


def test_send_voice_sends_only_to_and_message_when_nothing_else_is_given(monkeypatch, requests_mock):
    """Like the vendor's SDK: sender, gender and language are optional (the gateway's defaults)."""
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    monkeypatch.setenv("AIRFLOW_CONN_SMSTOOLS_NOSENDER", _conn(sender_id=""))
    requests_mock.post(f"{BASE}/voice/send", json={"messageid": "e0ncuxht345hjmbjvv2feky0azflcw"})
    hook = SmstoolsHook("smstools_nosender")
    assert hook.send_voice("+31612345601", "Your code is 1 2 3") == "e0ncuxht345hjmbjvv2feky0azflcw"
    assert sent(requests_mock).json() == {"message": "Your code is 1 2 3", "to": "31612345601"}
    hook.send_voice("+31612345601", "Hi", sender="3197010")
    assert sent(requests_mock).json() == {"message": "Hi", "to": "31612345601", "sender": "3197010"}


def test_a_reference_of_255_characters_is_sent_as_given(hook, requests_mock):
    requests_mock.post(f"{BASE}/message/send", json={"messageid": "m1"})
    hook.send_message("+31612345601", "Hi", reference="k" * 255)
    assert sent(requests_mock).json()["reference"] == "k" * 255


def test_send_batch_groups_equal_texts_into_one_request_each_and_keeps_input_order(hook, requests_mock):
    requests_mock.post(
        f"{BASE}/message/send",
        [
            {
                "json": {
                    "messageids": ["m1", None, "m4"],
                    "errors": [{"error": 103, "errorMsg": "Phone number 31612345602 is not valid"}],
                }
            },
            {"json": {"messageids": ["m3"]}},
        ],
    )
    messages = [
        OutboundMessage("+31612345601", "Sale!", key="101"),
        OutboundMessage("+31612345602", "Sale!", key="102"),  # the gateway refuses it
        OutboundMessage("+31612345603", "Hi Ann, sale!", key="103"),
        OutboundMessage("+316", "Sale!", key="104"),  # invalid here: never sent
        OutboundMessage("+31612345604", "Sale!", key="105"),
    ]
    results = hook.send_batch(messages)
    assert [r.message for r in results] == messages
    assert [(r.accepted, r.message_id) for r in results] == [
        (True, "m1"),
        (False, None),
        (True, "m3"),
        (False, None),
        (True, "m4"),
    ]
    assert (results[1].error, results[1].error_code) == ("Phone number 31612345602 is not valid", "103")
    assert results[1].status is DeliveryStatus.REJECTED
    assert results[3].error_code == "invalid_phone"
    first, second = (r.json() for r in requests_mock.request_history)
    assert first == {
        "message": "Sale!",
        "to": ["31612345601", "31612345602", "31612345604"],
        "sender": "Shop",
        "reference": "101",  # the key of the request's first message
    }
    assert second == {"message": "Hi Ann, sale!", "to": ["31612345603"], "sender": "Shop", "reference": "103"}


def test_send_batch_maps_an_unnamed_refusal_to_its_null_row(hook, requests_mock):
    requests_mock.post(
        f"{BASE}/message/send",
        json={"messageids": [None, "m2"], "errors": [{"error": 139, "errorMsg": "Blocked destination"}]},
    )
    results = hook.send_batch([OutboundMessage("+31612345601", "x"), OutboundMessage("+31612345602", "x")])
    assert [(r.accepted, r.error, r.error_code) for r in results] == [
        (False, "Blocked destination", "139"),
        (True, None, None),
    ]


def test_send_batch_splits_by_sender_schedule_and_options_and_drops_past_schedules(hook, requests_mock):
    requests_mock.post(f"{BASE}/message/send", json={"messageids": ["x"]})
    future = pendulum.now("UTC").add(days=2).replace(hour=10, minute=15, second=0, microsecond=0)
    past = dt.datetime(2020, 1, 1, tzinfo=UTC)
    hook.send_batch(
        [
            OutboundMessage("+31612345601", "T", key="1", send_at=future, options={"sim": 1, "subid": "a"}),
            OutboundMessage("+31612345602", "T", key="2", sender="Other"),
            OutboundMessage("+31612345603", "T", key="3", send_at=past, options={"test": True}),
        ]
    )
    bodies = [r.json() for r in requests_mock.request_history]
    assert bodies == [
        {
            "message": "T",
            "to": ["31612345601"],
            "sender": "Shop",
            "date": future.in_timezone(BERLIN).format("YYYY-MM-DD HH:mm"),
            "reference": "1",
            "subid": "a",  # Smstools' own option; "sim" is another gateway's and is not sent
        },
        {"message": "T", "to": ["31612345602"], "sender": "Other", "reference": "2"},
        {"message": "T", "to": ["31612345603"], "sender": "Shop", "reference": "3", "test": True},
    ]


def test_send_batch_a_request_refused_as_a_whole_rejects_only_its_rows(hook, requests_mock):
    requests_mock.post(
        f"{BASE}/message/send",
        [
            {"status_code": 400, "json": {"error": 118, "errorMsg": "SMS message cannot be longer"}},
            {"json": {"messageids": ["ok"]}},
        ],
    )
    results = hook.send_batch(
        [OutboundMessage("+31612345601", "x" * 700), OutboundMessage("+31612345602", "y")]
    )
    assert [(r.accepted, r.error, r.error_code) for r in results] == [
        (False, "SMS message cannot be longer", "118"),
        (True, None, None),
    ]


def test_send_batch_failing_after_an_accepted_request_is_ambiguous(hook, requests_mock, sleeps):
    requests_mock.post(
        f"{BASE}/message/send",
        [
            {"json": {"messageids": ["ok"]}},
            {"status_code": 400, "json": {"error": 108, "errorMsg": "No credit"}},
        ],
    )
    with pytest.raises(SmsAmbiguousSendError, match="No credit"):
        hook.send_batch([OutboundMessage("+31612345601", "a"), OutboundMessage("+31612345602", "b")])


def test_send_batch_failing_on_its_first_request_raises_the_gateways_error(hook, requests_mock):
    requests_mock.post(f"{BASE}/message/send", status_code=400, json={"error": 108, "errorMsg": "No credit"})
    with pytest.raises(SmsGatewayError) as err:
        hook.send_batch([OutboundMessage("+31612345601", "a"), OutboundMessage("+31612345602", "b")])
    assert type(err.value) is SmsGatewayError and err.value.code == 108
    assert requests_mock.call_count == 1


def test_a_lost_answer_to_a_send_is_ambiguous_and_not_resent(hook, requests_mock, sleeps):
    requests_mock.post(f"{BASE}/message/send", exc=requests.ReadTimeout("read timed out"))
    with pytest.raises(SmsAmbiguousSendError):
        hook.send_batch([OutboundMessage("+31612345601", "a", key="1")])
    assert requests_mock.call_count == 1
    assert sleeps == []


def test_an_answer_that_does_not_align_with_to_is_ambiguous(hook, requests_mock):
    requests_mock.post(f"{BASE}/message/send", json={"messageids": ["only-one"]})
    with pytest.raises(SmsAmbiguousSendError, match="look the batch up"):
        hook.send_batch([OutboundMessage("+31612345601", "a"), OutboundMessage("+31612345602", "a")])


def test_send_messages_splits_into_batch_size_requests(monkeypatch, requests_mock):
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    monkeypatch.setenv("AIRFLOW_CONN_SMSTOOLS_SMALL", _conn(batch_size=2))
    hook = SmstoolsHook("smstools_small")
    requests_mock.post(
        f"{BASE}/message/send", [{"json": {"messageids": ["a", "b"]}}, {"json": {"messageids": ["c"]}}]
    )
    numbers = ["+31612345601", "+31612345602", "+31612345603"]
    results = hook.send_messages([OutboundMessage(n, "same") for n in numbers])
    assert [r.message_id for r in results] == ["a", "b", "c"]
    assert [len(r.json()["to"]) for r in requests_mock.request_history] == [2, 1]


# -------------------------------------------------------------------------------------------------
# Statuses and look-ups


def test_iter_statuses_reads_every_logging_page_and_maps_statuses(hook, requests_mock):
    # total 2002 with pages of 2000: a second page
    requests_mock.get(
        f"{BASE}/message/logging",
        [
            {
                "json": page(
                    "messages",
                    [
                        logged(1, "a", "31612345601", "Delivered", reference="7"),
                        logged(2, "b", "316", "weird"),
                    ],
                    total=2002,
                )
            },
            {"json": page("messages", [logged(3, "c", "31612345603", "expired")], total=2002, number=2)},
        ],
    )
    reports = list(hook.iter_statuses())
    assert [r.message_id for r in reports] == ["a", "b", "c"]
    assert [(r.status, r.raw_status) for r in reports] == [
        (DeliveryStatus.DELIVERED, "Delivered"),
        (DeliveryStatus.UNKNOWN, "weird"),
        (DeliveryStatus.UNDELIVERED, "expired"),
    ]
    first = reports[0]
    assert (first.recipient, first.key, first.body) == ("+31612345601", "7", "Hello!")
    assert first.created_at == dt.datetime(2026, 5, 29, 15, 21, 27, tzinfo=UTC)  # read in Europe/Berlin
    assert [r.qs for r in requests_mock.request_history] == [
        {"limit": ["2000"], "page": ["1"]},
        {"limit": ["2000"], "page": ["2"]},
    ]
    assert_authorised(sent(requests_mock))


def _logging_pages(requests_mock, pages: dict[int, list], total: int) -> None:
    def answer(request, context):
        number = int(request.qs["page"][0])
        return page("messages", pages[number], total=total, number=number)

    requests_mock.get(f"{BASE}/message/logging", json=answer)


def test_statuses_since_walk_an_oldest_first_logging_back_from_its_last_page(hook, requests_mock):
    old, new = "2026-05-01 10:00:00", "2026-05-29 10:00:00"
    pages = {
        1: [logged(i, f"m{i}", "31612345601", "delivered", date=old) for i in (1, 2)],
        2: [logged(i, f"m{i}", "31612345601", "delivered", date=old) for i in (2001, 2002)],
        3: [
            logged(4001, "m4001", "31612345601", "sent", date=old),
            logged(4002, "m4002", "31612345601", "sent", date=new),
        ],
        4: [logged(6001, "m6001", "31612345601", "queued", date=new)],
    }
    _logging_pages(requests_mock, pages, total=6001)
    since = dt.datetime(2026, 5, 20, tzinfo=UTC)
    assert [r.message_id for r in hook.iter_statuses(since)] == ["m6001", "m4002"]
    assert [r.qs["page"] for r in requests_mock.request_history] == [["1"], ["4"], ["3"]]


def test_statuses_since_stop_a_newest_first_logging_at_since(hook, requests_mock):
    old, new = "2026-05-01 10:00:00", "2026-05-29 10:00:00"
    pages = {
        1: [logged(i, f"m{i}", "31612345601", "sent", date=new) for i in (9, 8)],
        2: [
            logged(7, "m7", "31612345601", "sent", date=new),
            logged(6, "m6", "31612345601", "sent", date=old),
        ],
        3: [logged(5, "m5", "31612345601", "sent", date=old)],
    }
    _logging_pages(requests_mock, pages, total=6000)
    assert [r.message_id for r in hook.iter_statuses(dt.datetime(2026, 5, 20, tzinfo=UTC))] == [
        "m9",
        "m8",
        "m7",
    ]
    assert [r.qs["page"] for r in requests_mock.request_history] == [["1"], ["2"]]
    naive = list(hook.iter_statuses(dt.datetime(2026, 5, 20)))  # naive: taken as UTC
    assert [r.message_id for r in naive] == ["m9", "m8", "m7"]


def test_get_statuses_picks_the_ids_from_the_logging(hook, requests_mock):
    rows = [logged(1, "a", "31612345601", "delivered"), logged(2, "b", "31612345602", "failed")]
    requests_mock.get(f"{BASE}/message/logging", json=page("messages", rows, total=2))
    reports = hook.get_statuses(["b", "zz"])
    assert list(reports) == ["b"] and reports["b"].status is DeliveryStatus.FAILED


def test_status_look_ups_read_the_listing_with_the_long_lived_heap_frozen(hook, requests_mock, monkeypatch):
    """get_statuses and aget_status_values keep the heap out of full collections while they read
    (base.long_lived_frozen) and give it back, also when the read fails; the answer is the same."""
    import asyncio
    import gc

    calls: list[str] = []
    monkeypatch.setattr(gc, "isenabled", lambda: True)
    monkeypatch.setattr(gc, "get_freeze_count", lambda: 0)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(gc, "unfreeze", lambda: calls.append("unfreeze"))
    rows = [logged(1, "a", "31612345601", "delivered"), logged(2, "b", "31612345602", "failed")]
    listing = requests_mock.get(f"{BASE}/message/logging", json=page("messages", rows, total=2))

    def reading(*args, **kwargs):
        calls.append("read")
        return hook.__class__._status_listing(hook, *args, **kwargs)

    monkeypatch.setattr(hook, "_status_listing", reading)
    assert hook.get_statuses(["b"])["b"].status is DeliveryStatus.FAILED
    assert calls == ["freeze", "read", "unfreeze"]
    assert hook.get_statuses([]) == {} and calls == ["freeze", "read", "unfreeze"]  # nothing to read
    calls.clear()
    with (
        mock.patch(
            "airflow_provider_sms.hooks.base.SmsGatewayHook._arequest_once", side_effect=RuntimeError("lost")
        ),
        pytest.raises(RuntimeError),
    ):
        asyncio.run(hook.aget_status_values(["b"]))
    assert calls == ["freeze", "read", "unfreeze"]
    assert listing.call_count == 1


def test_find_sent_matches_own_reference_then_batch_reference_then_recipient_and_text(hook, requests_mock):
    rows = [
        logged(1, "other", "31612345609", "sent", reference="999", message="Sale!"),  # not ours
        logged(2, "lead", "31612345601", "sent", reference="101", message="Sale!"),
        logged(3, "member", "31612345602", "delivered", reference="101", message="Sale!"),
        logged(4, "decoy", "31612345603", "sent", reference="888", message="Sale!"),
        logged(5, "single", "31612345603", "sent", reference="103", message="Hi Ann"),
        logged(6, "loose", "31612345604", "sent", reference="555", message="Sale!"),
    ]
    requests_mock.get(f"{BASE}/message/logging", json=page("messages", rows, total=len(rows)))
    messages = [
        OutboundMessage("+31612345601", "Sale!", key="101"),
        OutboundMessage("+31612345602", "Sale!", key="102"),
        OutboundMessage("+31612345603", "Hi Ann", key="103"),
        OutboundMessage("+31612345604", "Sale!", key="104"),
        OutboundMessage("+31612345605", "Sale!", key="105"),  # never arrived
    ]
    found = hook.find_sent(messages, since=dt.datetime(2026, 5, 1, tzinfo=UTC))
    assert {k: r.message_id for k, r in found.items()} == {
        "101": "lead",
        "102": "member",
        "103": "single",
        "104": "loose",  # same number and text after since: counted as sent rather than sent twice
    }
    assert {r.key for r in found.values()} == {"101", "102", "103", "104"}
    assert found["102"].status is DeliveryStatus.DELIVERED
    assert requests_mock.call_count == 1  # no outbox read: nothing scheduled


def test_find_sent_looks_in_the_outbox_for_scheduled_messages(hook, requests_mock):
    requests_mock.get(f"{BASE}/message/logging", json=page("messages", [], total=0))
    outbox = [
        {"ID": 5, "message": "Later", "to": "31612345601", "type": "sms", "date": "2026-06-01 09:30"}
        | {"reference": "201", "messageid": "s1"}
    ]
    requests_mock.get(f"{BASE}/outbox", json=page("messages", outbox, total=1))
    when = dt.datetime(2026, 6, 1, 7, 30, tzinfo=UTC)
    found = hook.find_sent([OutboundMessage("+31612345601", "Later", key="201", send_at=when)])
    assert found["201"].message_id == "s1"
    assert found["201"].status is DeliveryStatus.SCHEDULED
    assert found["201"].updated_at == when


def test_outbox_cancel_and_inbox(hook, requests_mock):
    outbox = [{"ID": 5, "message": "x", "to": "31612345601", "type": "sms", "date": "2026-06-01 09:30"}]
    requests_mock.get(f"{BASE}/outbox", json=page("messages", outbox, total=1))
    requests_mock.delete(f"{BASE}/outbox/5", json={"ID": 5, "deleted": True})
    requests_mock.get(f"{BASE}/message/inbox", json=page("messages", [{"ID": 1, "from": "316"}], total=1))
    (scheduled,) = hook.get_outbox()
    assert (scheduled.message_id, scheduled.recipient, scheduled.key) == ("5", "+31612345601", None)
    hook.cancel_scheduled(5)
    assert sent(requests_mock).method == "DELETE" and sent(requests_mock).url == f"{BASE}/outbox/5"
    assert list(hook.get_inbox()) == [{"ID": 1, "from": "316"}]
    assert sent(requests_mock).qs == {"limit": ["2000"], "page": ["1"]}


@pytest.mark.parametrize("credits", ["99.50", 99.5, "99.5", 99.50])
def test_credits_are_read_as_a_string_or_a_number(hook, requests_mock, credits):
    requests_mock.get(f"{BASE}/balance", json={"credits": credits, "currency": "EUR", "use": "0.50"})
    assert hook.get_credits() == Decimal("99.5")


def test_credits_that_are_no_amount_are_a_malformed_answer(hook, requests_mock):
    requests_mock.get(f"{BASE}/balance", json={"credits": "lots"})
    with pytest.raises(SmsGatewayError, match="lots"):
        hook.get_credits()


@pytest.mark.parametrize(
    ("written", "read"),
    [
        (0, False),
        (1, True),
        ("0", False),
        ("1", True),
        (False, False),
        (True, True),
        ("false", False),
        ("true", True),
        ("False", False),
        (None, False),
        ("", False),
    ],
)
def test_unsubscribed_is_read_as_0_1_or_true_false(hook, requests_mock, written, read):
    requests_mock.get(
        f"{BASE}/contact",
        json=page("contacts", [contact_row(1, "31612345601", unsubscribed=written)], total=1),
    )
    assert next(iter(hook.get_contacts())).unsubscribed is read


def test_ids_are_read_as_integers_or_strings(hook, requests_mock):
    requests_mock.post(f"{BASE}/groups", json={"ID": ["10001"]})
    assert hook.create_group("G") == "10001"
    requests_mock.post(f"{BASE}/contact", json={"IDs": ["501", "502"]})
    results = hook.add_contacts([Contact("+31612345601"), Contact("+31612345602")], "10001")
    assert [r.contact_id for r in results] == ["501", "502"]
    requests_mock.get(
        f"{BASE}/groups/10001",
        json={
            "groupinfo": {"ID": "10001", "name": "G", "locked": False},
            **page("contacts", [contact_row("501", "31612345601", groupid="10001")], total="1"),
        },
    )
    assert [c.contact_id for c in hook.get_group_contacts("10001")] == ["501"]
    requests_mock.get(f"{BASE}/groups", json=[{"id": "10001", "name": "G", "locked": False}])
    assert hook.find_list("G") == "10001"


# -------------------------------------------------------------------------------------------------
# Tools: sender ids, opt-outs, number formatting


def test_get_sender_ids_reads_the_list(hook, requests_mock):
    rows = [
        {"ID": 1, "senderid": "Shop", "status": "approved"},
        {"ID": "2", "senderid": "3197010", "status": "pending"},
    ]
    requests_mock.get(f"{BASE}/senderids", json={"senderids": rows})
    assert hook.get_sender_ids() == rows
    assert_authorised(sent(requests_mock))
    requests_mock.get(f"{BASE}/senderids", json=rows)  # a bare list reads the same
    assert hook.get_sender_ids() == rows


def test_iter_opt_outs_pages_and_gives_e164_phones(hook, requests_mock):
    first = page("optouts", [{"phone": "31612345601", "date": "2026-05-29 17:21:27"}], total=2, limit=1)
    second = page("optouts", [{"phone": "31612345602"}], total=2, number=2, limit=1)
    requests_mock.get(f"{BASE}/optouts/list", [{"json": first}, {"json": second}])
    with mock.patch("airflow_provider_sms.hooks.smstools.PAGE_LIMIT", 1):
        rows = list(hook.iter_opt_outs())
    assert rows == [{"phone": "+31612345601", "date": "2026-05-29 17:21:27"}, {"phone": "+31612345602"}]
    assert [r.qs for r in requests_mock.request_history] == [
        {"limit": ["1"], "page": ["1"]},
        {"limit": ["1"], "page": ["2"]},
    ]


def test_format_number_posts_number_and_countrycode(hook, requests_mock):
    requests_mock.post(f"{BASE}/format/number", json={"number": "31612345678", "countrycode": "NL"})
    assert hook.format_number("0612345678", "NL") == "+31612345678"
    assert sent(requests_mock).json() == {"number": "0612345678", "countrycode": "NL"}
    hook.format_number("+31612345678")
    assert sent(requests_mock).json() == {"number": "+31612345678"}


def test_format_number_raises_the_gateways_refusal(hook, requests_mock):
    requests_mock.post(
        f"{BASE}/format/number",
        status_code=400,
        json={"error": 103, "errorMsg": "Phone number 12 is not valid"},
    )
    with pytest.raises(SmsValidationError) as caught:
        hook.format_number("12", "NL")
    assert str(caught.value.code) == "103"


def test_balance_and_account_are_returned_as_the_gateway_sends_them(hook, requests_mock):
    requests_mock.get(f"{BASE}/balance", json={"credits": "99.50", "currency": "EUR", "use": 0.5})
    assert hook.get_balance() == {"credits": "99.50", "currency": "EUR", "use": 0.5}


# -------------------------------------------------------------------------------------------------
# Contacts and groups


def test_add_contact_posts_one_object(hook, requests_mock):
    requests_mock.post(f"{BASE}/contact", json={"ID": [12345]})
    contact = Contact(
        "+55 11 91234-5678",
        first_name="Ana",
        last_name="Silva",
        birthday=dt.date(1997, 3, 23),
        unsubscribed=True,
        extra={"extra1": "Marketing", "email": "ana@example.com"},
    )
    assert hook.add_contact(contact, "10001") == "12345"
    assert sent(requests_mock).json() == {
        "extra1": "Marketing",
        "email": "ana@example.com",
        "phone": "5511912345678",
        "groupid": 10001,
        "firstname": "Ana",
        "lastname": "Silva",
        "birthday": "1997-03-23",
        "unsubscribed": 1,
    }
    assert_authorised(sent(requests_mock))


def test_add_contacts_maps_each_error_back_to_its_row_by_phone(hook, requests_mock):
    requests_mock.post(
        f"{BASE}/contact",
        json={
            "IDs": [501, 503],
            "errors": [{"error": 103, "errorMsg": "Phone number 31612345602 is not valid"}],
        },
    )
    contacts = [
        Contact("+31612345601"),
        Contact("+31612345602"),  # refused by the gateway
        Contact("+3161234"),  # invalid here: never sent
        Contact("+31612345603"),
    ]
    results = hook.add_contacts(contacts, 10001)
    assert [(r.accepted, r.contact_id, r.error_code) for r in results] == [
        (True, "501", None),
        (False, None, "103"),
        (False, None, "invalid_phone"),
        (True, "503", None),
    ]
    assert results[1].error == "Phone number 31612345602 is not valid"
    assert [r.contact for r in results] == contacts
    assert [row["phone"] for row in sent(requests_mock).json()] == [
        "31612345601",
        "31612345602",
        "31612345603",
    ]
    assert {row["groupid"] for row in sent(requests_mock).json()} == {10001}


def test_add_contacts_reads_the_group_when_an_error_names_no_phone(hook, requests_mock):
    requests_mock.post(
        f"{BASE}/contact", json={"IDs": [502], "errors": [{"error": 139, "errorMsg": "bad birthday"}]}
    )
    members = [contact_row(499, "31612345600"), contact_row(502, "31612345602")]
    requests_mock.get(
        f"{BASE}/groups/10001", json={"groupinfo": {"ID": 10001}, **page("contacts", members, total=2)}
    )
    results = hook.add_contacts([Contact("+31612345601"), Contact("+31612345602")], 10001)
    assert [(r.accepted, r.contact_id, r.error) for r in results] == [
        (False, None, "bad birthday"),
        (True, "502", None),
    ]


def test_add_contacts_with_every_row_refused_rejects_every_row(hook, requests_mock):
    requests_mock.post(
        f"{BASE}/contact", json={"IDs": [], "errors": [{"error": 125, "errorMsg": "Group not found."}] * 2}
    )
    results = hook.add_contacts([Contact("+31612345601"), Contact("+31612345602")], 9)
    assert [(r.accepted, r.error, r.error_code) for r in results] == [(False, "Group not found.", "125")] * 2


def test_update_contact_patches_every_field(hook, requests_mock):
    requests_mock.patch(f"{BASE}/contact", json=contact_row(77, "31612345601", firstname="Ann", extra1="VIP"))
    updated = hook.update_contact(Contact("+31612345601", first_name="Ann", contact_id="77"), 10001)
    assert sent(requests_mock).json() == {
        "ID": 77,
        "firstname": "Ann",
        "lastname": None,  # cleared: the contact has none
        "phone": "31612345601",
        "groupid": 10001,
        "unsubscribed": 0,
    }
    assert updated == Contact("+31612345601", first_name="Ann", extra={"extra1": "VIP"}, contact_id="77")
    with pytest.raises(ValueError, match="contact_id"):
        hook.update_contact(Contact("+31612345601"))


def test_delete_contact_and_search_contacts(hook, requests_mock):
    requests_mock.delete(f"{BASE}/contact/77", json={"ID": 77, "deleted": True})
    hook.delete_contact(77)
    assert (sent(requests_mock).method, sent(requests_mock).url) == ("DELETE", f"{BASE}/contact/77")
    requests_mock.get(
        f"{BASE}/contact/search/ann", json=page("contacts", [contact_row(1, "31612345601")], total=1)
    )
    assert [c.phone for c in hook.search_contacts("ann")] == ["+31612345601"]
    assert sent(requests_mock).qs == {"limit": ["2000"], "page": ["1"]}


def test_get_contacts_is_lazy_over_pages_and_parses_fields(hook, requests_mock):
    first = [
        contact_row(
            i, f"3161234560{i}", firstname="Ann", birthday="1990-02-03", unsubscribed=1, email="a@x.io"
        )
        for i in (1, 2)
    ]
    requests_mock.get(
        f"{BASE}/contact",
        [
            {"json": page("contacts", first, total=2001)},
            {"json": page("contacts", [contact_row(3, "31612345603")], total=2001, number=2)},
        ],
    )
    contacts = hook.get_contacts()
    assert requests_mock.call_count == 0  # nothing read until iterated
    contacts = list(contacts)
    assert [c.contact_id for c in contacts] == ["1", "2", "3"]
    assert contacts[0] == Contact(
        "+31612345601",
        first_name="Ann",
        birthday=dt.date(1990, 2, 3),
        unsubscribed=True,
        extra={"email": "a@x.io"},
        contact_id="1",
    )
    assert [r.qs["page"] for r in requests_mock.request_history] == [["1"], ["2"]]


def test_groups_create_rename_list_show_and_delete(hook, requests_mock):
    requests_mock.post(f"{BASE}/groups", json={"ID": [10001]})
    requests_mock.patch(f"{BASE}/groups", json={"ID": 10001, "name": "VIP", "locked": 0})
    requests_mock.get(f"{BASE}/groups", json=[{"id": 10001, "name": "VIP", "locked": 0}])
    requests_mock.get(
        f"{BASE}/groups/10001",
        json={
            "groupinfo": {"ID": 10001, "name": "VIP", "locked": 0},
            **page("contacts", [], total=42, limit=1),
        },
    )
    requests_mock.delete(f"{BASE}/groups/10001", json={"ID": 10001, "deleted": True})

    assert hook.create_group("Customers") == "10001"
    assert sent(requests_mock).json() == {"name": "Customers"}
    assert hook.rename_group("10001", "VIP") == {"ID": 10001, "name": "VIP", "locked": 0}
    assert sent(requests_mock).json() == {"ID": 10001, "name": "VIP"}
    assert hook.get_groups() == [{"id": 10001, "name": "VIP", "locked": 0}]
    assert hook.get_group(10001) == {"ID": 10001, "name": "VIP", "locked": 0, "total": 42}
    assert sent(requests_mock).qs == {"limit": ["1"], "page": ["1"]}
    hook.delete_group(10001)
    assert sent(requests_mock).method == "DELETE"
    assert [r.method for r in requests_mock.request_history] == ["POST", "PATCH", "GET", "GET", "DELETE"]


def test_list_helpers_find_create_and_list_groups(hook, requests_mock):
    requests_mock.get(f"{BASE}/groups", json=[{"id": 1, "name": "A", "locked": 0}, {"id": 2, "name": "B"}])
    requests_mock.post(f"{BASE}/groups", json={"ID": [3]})
    requests_mock.get(
        f"{BASE}/groups/2",
        json={"groupinfo": {"ID": 2}, **page("contacts", [contact_row(9, "31612345609")], total=1)},
    )
    assert (hook.find_list("B"), hook.find_list("C")) == ("2", None)
    assert hook.create_list("C") == "3"
    assert [c.contact_id for c in hook.list_contacts("2")] == ["9"]


def test_upsert_contacts_adds_new_ones_in_one_batch_and_patches_known_ones(hook, requests_mock):
    requests_mock.post(f"{BASE}/contact", json={"IDs": [601, 602]})
    requests_mock.patch(
        f"{BASE}/contact",
        [
            {"json": contact_row(77, "31612345677")},
            {"status_code": 404, "json": {"error": 139, "errorMsg": "Contact not found."}},
        ],
    )
    contacts = [
        Contact("+31612345601"),
        Contact("+31612345677", contact_id="77"),
        Contact("+31612345602"),
        Contact("+31612345678", contact_id="78"),  # gone at the gateway
    ]
    results = hook.upsert_contacts(contacts, "10001")
    assert [(r.accepted, r.contact_id, r.error) for r in results] == [
        (True, "601", None),
        (True, "77", None),
        (True, "602", None),
        (False, None, "Contact not found."),
    ]
    assert [r.method for r in requests_mock.request_history] == ["POST", "PATCH", "PATCH"]
    assert len(requests_mock.request_history[0].json()) == 2


def test_upsert_contacts_does_not_swallow_auth_errors(hook, requests_mock):
    requests_mock.patch(
        f"{BASE}/contact", status_code=401, json={"error": 104, "errorMsg": "Invalid credentials."}
    )
    with pytest.raises(SmsAuthError):
        hook.upsert_contacts([Contact("+31612345601", contact_id="1")], "10001")


def test_delete_contacts_deletes_each_and_accepts_those_already_gone(hook, requests_mock, sleeps):
    requests_mock.delete(f"{BASE}/contact/1", json={"ID": 1, "deleted": True})
    requests_mock.delete(
        f"{BASE}/contact/2", status_code=404, json={"error": 139, "errorMsg": "Contact not found."}
    )
    requests_mock.delete(f"{BASE}/contact/3", status_code=503, json={"error": 500, "errorMsg": "busy"})
    hook.delete_contacts(["1", "2"], "10001")
    assert [r.url for r in requests_mock.request_history] == [f"{BASE}/contact/1", f"{BASE}/contact/2"]
    with pytest.raises(SmsTransientError):
        hook.delete_contacts(["3"], "10001")
