"""TextBoostHook against requests-mock: the exact JSON requests of every endpoint, and the parses."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest

from airflow_provider_sms.exceptions import (
    SmsAmbiguousSendError,
    SmsAuthError,
    SmsValidationError,
)
from airflow_provider_sms.hooks.textboost import STATUS_MAP, TextBoostHook
from airflow_provider_sms.messages import Contact, DeliveryStatus, OutboundMessage

TOKEN = "49|LNFe8WJ7CPtvl2mzowAB4ll4enbFR0XGgnQh2qWY"
BASE = "https://sms.reseller.example/api/v3"
UTC = dt.timezone.utc
AUTH_HEADERS = {
    "Authorization": f"Bearer {TOKEN}",
    "Accept": "application/json",
    "Content-Type": "application/json",
}
UNAUTHENTICATED = {"message": "Unauthenticated."}
T0 = dt.datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def _conn(host: str | None = "https://sms.reseller.example", password: str | None = TOKEN, **extra) -> str:
    conn = {"conn_type": "textboost", "password": password, "extra": {"sender_id": "ACME", **extra}}
    if host is not None:
        conn["host"] = host
    return json.dumps(conn)


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

    def make(name: str = "textboost_test", **conn) -> TextBoostHook:
        monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}", _conn(**conn))
        return TextBoostHook(name)

    return make


@pytest.fixture
def hook(env):
    return env(timezone="Europe/Berlin")


@pytest.fixture
def sleeps(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr("tenacity.nap.time.sleep", waits.append)
    return waits


def ok(data) -> dict:
    return {"status": "success", "data": data}


def page(items: list, current: int, last: int, *, next_url: str | None = "default") -> dict:
    """A Laravel page; ``next_page_url`` points at a host the hook must not follow."""
    if next_url == "default":
        next_url = f"http://10.0.0.7:8080/api/v3/list?page={current + 1}" if current < last else None
    return ok(
        {
            "current_page": current,
            "data": items,
            "last_page": last,
            "per_page": len(items),
            "total": 999,
            "next_page_url": next_url,
        }
    )


def sms(uid: str, to: str = "31612345678", status: str = "Delivered", *, body: str = "Hi", at=T0, **more):
    return {
        "uid": uid,
        "to": to,
        "from": "ACME",
        "message": body,
        "status": status,
        "cost": "1",
        "sms_count": 1,
        "direction": "outgoing",
        "created_at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        **more,
    }


def sent(request) -> tuple[str, str, dict]:
    """(method, url, JSON body) of a request, asserting the auth headers on it."""
    for name, value in AUTH_HEADERS.items():
        assert request.headers[name] == value
    return request.method, request.url, request.json() if request.body else None


def pages_requested(requests_mock) -> list[int]:
    return [int(r.qs["page"][0]) for r in requests_mock.request_history]


# -------------------------------------------------------------------------------------------------
# Connection, auth and envelope


@pytest.mark.parametrize(
    ("host", "extra", "expected"),
    [
        ("https://sms.reseller.example", {}, "https://sms.reseller.example/api/v3"),
        ("sms.reseller.example/", {}, "https://sms.reseller.example/api/v3"),
        (None, {}, "https://www.textboostsms.com/api/v3"),
        (
            "https://sms.reseller.example",
            {"api_prefix": "/api/http"},
            "https://sms.reseller.example/api/http",
        ),
        (
            "https://sms.reseller.example",
            {"api_prefix": "api/http/"},
            "https://sms.reseller.example/api/http",
        ),
        ("https://reseller.example/sms", {}, "https://reseller.example/sms/api/v3"),  # sub-folder install
        ("https://sms.reseller.example/api/http", {}, "https://sms.reseller.example/api/http"),
        ("https://sms.reseller.example/api/v3/", {}, "https://sms.reseller.example/api/v3"),
        ("http://127.0.0.1:8025", {}, "http://127.0.0.1:8025/api/v3"),
    ],
)
def test_base_url_is_the_host_plus_the_api_prefix_unless_the_host_names_one(env, host, extra, expected):
    assert env(host=host, **extra).base_url == expected


def test_hook_identity():
    assert (TextBoostHook.conn_type, TextBoostHook.default_conn_name) == ("textboost", "textboost_default")
    assert TextBoostHook.gateway == "textboost"


def test_every_request_carries_the_bearer_token_and_json_headers(hook, requests_mock):
    requests_mock.get(f"{BASE}/me", json=ok({"uid": "5f8d2c3b1a0e9", "email": "ops@shop.example"}))
    assert hook.me() == {"uid": "5f8d2c3b1a0e9", "email": "ops@shop.example"}
    assert sent(requests_mock.last_request) == ("GET", f"{BASE}/me", None)


def test_a_connection_without_token_fails_before_sending(env, requests_mock):
    with pytest.raises(SmsAuthError, match="no API token"):
        env(password=None).balance()
    assert requests_mock.call_count == 0


def test_401_raises_auth_error_without_retry_and_never_shows_the_token(hook, requests_mock, caplog, sleeps):
    caplog.set_level(logging.DEBUG)
    requests_mock.get(f"{BASE}/balance", status_code=401, json=UNAUTHENTICATED)
    requests_mock.get(f"{BASE}/me", status_code=401, json=UNAUTHENTICATED)
    with pytest.raises(SmsAuthError, match="Unauthenticated") as info:
        hook.balance()
    assert (info.value.status_code, info.value.gateway) == (401, "textboost")
    assert requests_mock.call_count == 1
    assert sleeps == []
    ok_, message = hook.test_connection()
    assert not ok_
    assert "Unauthenticated." in message
    for text in (str(info.value), repr(info.value.args), message, caplog.text):
        assert TOKEN not in text


@pytest.mark.parametrize(
    ("status", "payload", "exc_type", "message"),
    [
        (403, {"status": "error", "message": "You do not have enough sms unit"}, SmsAuthError, None),
        (403, {"message": "This action is unauthorized."}, SmsAuthError, None),
        (404, {"status": "error", "message": "Contact group not found."}, SmsValidationError, None),
        (422, {"status": "error", "message": "The name field is required."}, SmsValidationError, None),
        (
            422,
            {"message": "The given data was invalid.", "errors": {"name": ["The name field is required."]}},
            SmsValidationError,
            "The given data was invalid.: The name field is required.",
        ),
        (200, {"status": "error", "message": "Invalid group name"}, SmsValidationError, None),
        (200, {"status": "error", "message": "You do not have permission to access API"}, SmsAuthError, None),
        (400, "<html>Bad Request</html>", SmsValidationError, "<html>Bad Request</html>"),
    ],
)
def test_error_envelopes_raise_the_typed_error_with_the_gateways_message(
    hook, requests_mock, sleeps, status, payload, exc_type, message
):
    if isinstance(payload, dict):
        requests_mock.post(f"{BASE}/contacts", status_code=status, json=payload)
    else:
        requests_mock.post(f"{BASE}/contacts", status_code=status, text=payload)
    with pytest.raises(exc_type) as info:
        hook.create_group("Customers")
    assert type(info.value) is exc_type
    assert info.value.message == (message or payload["message"])
    assert info.value.status_code == status
    assert requests_mock.call_count == 1  # creates a group: never retried once it reached the gateway


def test_server_errors_on_reads_are_retried(hook, requests_mock, sleeps):
    requests_mock.get(
        f"{BASE}/balance",
        [{"status_code": 503, "text": "busy"}, {"json": ok({"remaining_balance": "12", "expired_on": "-"})}],
    )
    assert hook.balance() == {"remaining_balance": "12", "expired_on": "-"}
    assert len(sleeps) == 1


def test_test_connection_reads_the_profile(hook, requests_mock):
    requests_mock.get(f"{BASE}/me", json=ok({"uid": "u"}))
    assert hook.test_connection() == (True, f"Connection to textboost at {BASE} works")
    assert requests_mock.last_request.url == f"{BASE}/me"


def test_balance(hook, requests_mock):
    requests_mock.get(f"{BASE}/balance", json=ok({"remaining_balance": "1,250", "expired_on": "2027-01-01"}))
    assert hook.balance() == {"remaining_balance": "1,250", "expired_on": "2027-01-01"}
    assert sent(requests_mock.last_request) == ("GET", f"{BASE}/balance", None)


# -------------------------------------------------------------------------------------------------
# Contact groups


def test_create_group_posts_the_name(hook, requests_mock):
    requests_mock.post(f"{BASE}/contacts", json=ok({"uid": "6065ecdc9184a", "name": "Customers"}))
    assert hook.create_list("Customers") == "6065ecdc9184a"
    assert sent(requests_mock.last_request) == ("POST", f"{BASE}/contacts", {"name": "Customers"})


def test_list_groups_follows_page_numbers_over_three_pages_not_the_next_page_url(hook, requests_mock):
    for number, names in ((1, ["A", "B"]), (2, ["C", "D"]), (3, ["E"])):
        groups = [{"uid": f"g{n}", "name": n} for n in names]
        requests_mock.get(f"{BASE}/contacts?page={number}", json=page(groups, number, 3))
    groups = hook.list_groups()
    assert requests_mock.call_count == 0  # lazy
    assert [g["name"] for g in groups] == ["A", "B", "C", "D", "E"]
    assert pages_requested(requests_mock) == [1, 2, 3]
    assert {r.hostname for r in requests_mock.request_history} == {"sms.reseller.example"}
    assert all(sent(r)[0] == "GET" and r.qs["per_page"] == ["1000"] for r in requests_mock.request_history)


def test_pages_without_last_page_follow_next_page_url_presence(hook, requests_mock):
    requests_mock.get(
        f"{BASE}/contacts?page=1",
        json=ok({"current_page": 1, "data": [{"uid": "a", "name": "A"}], "next_page_url": "/x?page=2"}),
    )
    requests_mock.get(
        f"{BASE}/contacts?page=2",
        json=ok({"current_page": 2, "data": [{"uid": "b", "name": "B"}], "next_page_url": None}),
    )
    assert [g["uid"] for g in hook.list_groups()] == ["a", "b"]


def test_find_list_searches_every_page_and_stops_at_the_match(hook, requests_mock):
    requests_mock.get(f"{BASE}/contacts?page=1", json=page([{"uid": "g1", "name": "Staff"}], 1, 3))
    requests_mock.get(f"{BASE}/contacts?page=2", json=page([{"uid": "g2", "name": "Customers"}], 2, 3))
    requests_mock.get(f"{BASE}/contacts?page=3", json=page([{"uid": "g3", "name": "Other"}], 3, 3))
    assert hook.find_list("Customers") == "g2"
    assert pages_requested(requests_mock) == [1, 2]
    assert hook.find_list("customers") is None


def test_show_rename_and_delete_a_group_use_the_documented_verbs(hook, requests_mock):
    requests_mock.post(f"{BASE}/contacts/g1/show", json=ok({"uid": "g1", "name": "Staff"}))
    requests_mock.patch(f"{BASE}/contacts/g1", json=ok({"uid": "g1", "name": "Team"}))
    requests_mock.delete(f"{BASE}/contacts/g1", json=ok(None))
    assert hook.get_group("g1") == {"uid": "g1", "name": "Staff"}
    assert hook.rename_group("g1", "Team")["name"] == "Team"
    assert hook.delete_group("g1") is None
    assert [sent(r) for r in requests_mock.request_history] == [
        ("POST", f"{BASE}/contacts/g1/show", None),
        ("PATCH", f"{BASE}/contacts/g1", {"name": "Team"}),
        ("DELETE", f"{BASE}/contacts/g1", None),
    ]


# -------------------------------------------------------------------------------------------------
# Contacts


def test_contact_endpoints_send_digits_without_plus(hook, requests_mock):
    contact = {"uid": "c1", "phone": "31612345678", "first_name": "Ann", "last_name": None}
    requests_mock.post(f"{BASE}/contacts/g1/store", json=ok(contact))
    requests_mock.post(f"{BASE}/contacts/g1/search/c1", json=ok(contact))
    requests_mock.patch(f"{BASE}/contacts/g1/update/c1", json=ok({**contact, "phone": "31612345679"}))
    requests_mock.delete(f"{BASE}/contacts/g1/delete/c1", json=ok(None))
    assert hook.create_contact("g1", "+31 6 1234 5678", first_name="Ann")["uid"] == "c1"
    assert hook.get_contact("g1", "c1") == contact
    assert hook.update_contact("g1", "c1", "+31612345679", "Ann", "de Vries")["phone"] == "31612345679"
    hook.delete_contact("g1", "c1")
    assert [sent(r) for r in requests_mock.request_history] == [
        ("POST", f"{BASE}/contacts/g1/store", {"phone": "31612345678", "first_name": "Ann"}),
        ("POST", f"{BASE}/contacts/g1/search/c1", None),
        (
            "PATCH",
            f"{BASE}/contacts/g1/update/c1",
            {"phone": "31612345679", "first_name": "Ann", "last_name": "de Vries"},
        ),
        ("DELETE", f"{BASE}/contacts/g1/delete/c1", None),
    ]


def test_list_contacts_posts_each_page_number_in_the_query_over_three_pages(hook, requests_mock):
    def row(uid, phone, status="subscribe"):
        return {"uid": uid, "phone": phone, "first_name": uid.upper(), "last_name": None, "status": status}

    requests_mock.post(f"{BASE}/contacts/g1/all?page=1", json=page([row("a", "31612345601")], 1, 3))
    requests_mock.post(f"{BASE}/contacts/g1/all?page=2", json=page([row("b", "31612345602")], 2, 3))
    requests_mock.post(
        f"{BASE}/contacts/g1/all?page=3", json=page([row("c", "31612345603", "unsubscribe")], 3, 3)
    )
    contacts = list(hook.list_contacts("g1"))
    assert [(c.contact_id, c.phone, c.first_name, c.unsubscribed) for c in contacts] == [
        ("a", "+31612345601", "A", False),
        ("b", "+31612345602", "B", False),
        ("c", "+31612345603", "C", True),
    ]
    assert pages_requested(requests_mock) == [1, 2, 3]
    assert all(r.method == "POST" for r in requests_mock.request_history)


def test_list_contacts_reads_contacts_answered_with_upper_case_field_names(hook, requests_mock):
    """Newer releases of the platform spell contacts PHONE, FIRST_NAME, LAST_NAME: read either spelling."""
    rows = [
        {
            "uid": "a",
            "PHONE": "31612345601",
            "FIRST_NAME": "Ann",
            "LAST_NAME": "Lee",
            "STATUS": "unsubscribe",
        },
        {"uid": "b", "phone": "31612345602", "first_name": "Bo", "last_name": None, "status": "subscribe"},
    ]
    requests_mock.post(f"{BASE}/contacts/g1/all?page=1", json=page(rows, 1, 1))
    contacts = list(hook.list_contacts("g1"))
    assert [(c.contact_id, c.phone, c.first_name, c.last_name, c.unsubscribed) for c in contacts] == [
        ("a", "+31612345601", "Ann", "Lee", True),
        ("b", "+31612345602", "Bo", None, False),
    ]


def test_upsert_contacts_creates_updates_and_maps_refusals_to_their_rows(hook, requests_mock):
    requests_mock.post(
        f"{BASE}/contacts/g1/store",
        [
            {"json": ok({"uid": "new1"})},
            {"status_code": 422, "json": {"status": "error", "message": "The phone is blacklisted."}},
        ],
    )
    requests_mock.patch(f"{BASE}/contacts/g1/update/c9", json=ok({"uid": "c9"}))
    requests_mock.patch(
        f"{BASE}/contacts/g1/update/gone",
        status_code=404,
        json={"status": "error", "message": "Contact gone not found."},
    )
    contacts = [
        Contact("+31612345601", first_name="Ann"),
        Contact("12"),  # invalid: never sent
        Contact("+31612345602"),
        Contact("+31612345603", last_name="Bo", contact_id="c9"),
        Contact("+31612345604", contact_id="gone"),
    ]
    results = hook.upsert_contacts(contacts, "g1")
    assert [(r.accepted, r.contact_id, r.error_code) for r in results] == [
        (True, "new1", None),
        (False, None, "invalid_phone"),
        (False, None, "422"),
        (True, "c9", None),
        (False, None, "404"),
    ]
    assert results[2].error == "The phone is blacklisted."
    assert [r.contact for r in results] == contacts
    assert [sent(r)[2] for r in requests_mock.request_history] == [
        {"phone": "31612345601", "first_name": "Ann"},
        {"phone": "31612345602"},
        {"phone": "31612345603", "last_name": "Bo"},
        {"phone": "31612345604"},
    ]


def test_delete_contacts_treats_already_gone_as_deleted_but_raises_other_errors(hook, requests_mock):
    requests_mock.delete(f"{BASE}/contacts/g1/delete/a", json=ok(None))
    requests_mock.delete(
        f"{BASE}/contacts/g1/delete/b", status_code=404, json={"status": "error", "message": "not found"}
    )
    requests_mock.delete(f"{BASE}/contacts/g1/delete/c", status_code=403, json={"message": "Forbidden"})
    hook.delete_contacts(["a", "b"], "g1")
    with pytest.raises(SmsAuthError, match="Forbidden"):
        hook.delete_contacts(["c"], "g1")
    hook.delete_contacts([], "g1")  # the contact sync probes deletion support this way
    assert requests_mock.call_count == 3


# -------------------------------------------------------------------------------------------------
# Sending


def test_send_sms_plain_to_one_number_accepts_a_single_object(hook, requests_mock):
    requests_mock.post(f"{BASE}/sms/send", json=ok(sms("606812e63f78b", status="Queued")))
    (message,) = hook.send_sms("+31 6 1234 5678", "This is a test message")
    assert message["uid"] == "606812e63f78b"
    assert sent(requests_mock.last_request) == (
        "POST",
        f"{BASE}/sms/send",
        {
            "recipient": "31612345678",
            "sender_id": "ACME",
            "type": "plain",
            "message": "This is a test message",
        },
    )


def test_send_sms_to_several_numbers_scheduled_in_the_connections_timezone(hook, requests_mock):
    requests_mock.post(f"{BASE}/sms/send", json=ok([sms("u1"), sms("u2", "880172145789")]))
    messages = hook.send_sms(
        ["+31612345678", "+8801721457890"],
        "Sale",
        sender_id="Shop",
        sms_type="unicode",
        schedule_time=dt.datetime(2030, 12, 20, 6, 0, 59, tzinfo=UTC),
        dlt_template_id="1107161234567890",
    )
    assert [m["uid"] for m in messages] == ["u1", "u2"]
    assert sent(requests_mock.last_request)[2] == {
        "recipient": "31612345678,8801721457890",
        "sender_id": "Shop",
        "type": "unicode",
        "message": "Sale",
        "schedule_time": "2030-12-20 07:00",  # Europe/Berlin, minutes only
        "dlt_template_id": "1107161234567890",
    }


def test_send_sms_voice_and_mms_carry_their_fields(hook, requests_mock):
    requests_mock.post(f"{BASE}/sms/send", json=ok(sms("v1")))
    hook.send_sms("+31612345678", "Your code is 1 2 3", sms_type="voice", language="en-gb", gender="female")
    assert sent(requests_mock.last_request)[2] == {
        "recipient": "31612345678",
        "sender_id": "ACME",
        "type": "voice",
        "message": "Your code is 1 2 3",
        "language": "en-gb",
        "gender": "female",
    }
    hook.send_sms("+31612345678", None, sms_type="mms", media_url="https://cdn.example/150.jpg")
    assert sent(requests_mock.last_request)[2] == {
        "recipient": "31612345678",
        "sender_id": "ACME",
        "type": "mms",
        "media_url": "https://cdn.example/150.jpg",
    }


def test_send_sms_refuses_incomplete_requests_before_sending(env, hook, requests_mock):
    with pytest.raises(ValueError, match="language"):
        hook.send_sms("+31612345678", "x", sms_type="voice", gender="male")
    with pytest.raises(ValueError, match="media_url"):
        hook.send_sms("+31612345678", None, sms_type="mms")
    with pytest.raises(ValueError, match="invalid phone number"):
        hook.send_sms("12", "x")
    monkey = env("textboost_nosender", sender_id=None)
    with pytest.raises(ValueError, match="sender_id"):
        monkey.send_sms("+31612345678", "x")
    assert requests_mock.call_count == 0


def test_send_campaign_posts_comma_separated_contact_lists(hook, requests_mock):
    campaign = {"uid": "61a8c0f3b2d1e", "status": "Scheduled", "recipients": 120}
    requests_mock.post(f"{BASE}/sms/campaign", json=ok(campaign))
    result = hook.send_campaign(
        ["g1", "g2"], "News", schedule_time=dt.datetime(2030, 5, 1, 7, 30, tzinfo=UTC)
    )
    assert result == campaign
    assert sent(requests_mock.last_request) == (
        "POST",
        f"{BASE}/sms/campaign",
        {
            "contact_list_id": "g1,g2",
            "sender_id": "ACME",
            "type": "plain",
            "message": "News",
            "schedule_time": "2030-05-01 09:30",
        },
    )


def test_view_campaign_gets_the_campaign_by_uid(hook, requests_mock):
    """The answer shape of a reseller's public docs of the same platform."""
    view = {
        "id": "68b265728c72f",
        "name": "TEST",
        "message": "TEST",
        "status": "done",
        "type": "plain",
        "created_at": "30th Aug 25, 8:14 AM",
        "start_at": "30th Aug 25, 8:18 AM",
        "delivery_at": "30th Aug 25, 8:18 AM",
        "stats": {"enroute_count": 0, "delivered_count": 1, "undelivered_count": 0, "failed_count": 0},
    }
    requests_mock.get(f"{BASE}/campaign/68b265728c72f/view", json=ok(view))
    assert hook.view_campaign("68b265728c72f") == view
    assert sent(requests_mock.last_request) == ("GET", f"{BASE}/campaign/68b265728c72f/view", None)
    requests_mock.get(
        f"{BASE}/campaign/nope/view",
        status_code=404,
        json={"status": "error", "message": "Campaign not found."},
    )
    with pytest.raises(SmsValidationError, match="Campaign not found"):
        hook.view_campaign("nope")


def test_a_lost_send_answer_is_ambiguous_and_not_retried(hook, requests_mock, sleeps):
    requests_mock.post(f"{BASE}/sms/send", status_code=502, text="Bad Gateway")
    with pytest.raises(SmsAmbiguousSendError):
        hook.send_sms("+31612345678", "x")
    assert requests_mock.call_count == 1


# -------------------------------------------------------------------------------------------------
# send_batch


def test_send_batch_sends_one_request_per_identical_body_sender_schedule_and_type(hook, requests_mock):
    later = dt.datetime(2030, 1, 2, 8, 0, tzinfo=UTC)

    def answer(request, context):
        numbers = request.json()["recipient"].split(",")
        objects = [sms(f"id-{n}-{request.json()['message'][:3]}", n, "Queued") for n in reversed(numbers)]
        return ok(objects if len(objects) > 1 else objects[0])  # out of order: matched by "to"

    requests_mock.post(f"{BASE}/sms/send", json=answer)
    messages = [
        OutboundMessage("+31612345601", "Hello", key="1"),
        OutboundMessage("+31612345602", "Bye", key="2"),
        OutboundMessage("+31612345603", "Hello", key="3"),
        OutboundMessage("+316", "Hello", key="4"),  # invalid: rejected, never sent
        OutboundMessage("+31612345605", "Hello", key="5", sender="Other"),
        OutboundMessage("+31612345606", "Hello", key="6", send_at=later),
        OutboundMessage("+31612345607", "Привет", key="7"),  # UCS-2: unicode
        OutboundMessage(
            "+31612345608",
            "Hello",
            key="8",
            options={"type": "voice", "language": "en-gb", "gender": "male", "sim": 1},
        ),
        OutboundMessage("+31612345609", "Hello", key="9"),
    ]
    results = hook.send_batch(messages)
    assert [r.message for r in results] == messages
    assert [(r.accepted, r.message_id) for r in results] == [
        (True, "id-31612345601-Hel"),
        (True, "id-31612345602-Bye"),
        (True, "id-31612345603-Hel"),
        (False, None),
        (True, "id-31612345605-Hel"),
        (True, "id-31612345606-Hel"),
        (True, "id-31612345607-При"),
        (True, "id-31612345608-Hel"),
        (True, "id-31612345609-Hel"),
    ]
    assert results[3].error_code == "invalid_phone"
    assert results[3].status is DeliveryStatus.REJECTED
    assert {r.status for r in results if r.accepted} == {DeliveryStatus.QUEUED}
    bodies = [sent(r)[2] for r in requests_mock.request_history]
    assert bodies == [
        {
            "recipient": "31612345601,31612345603,31612345609",
            "sender_id": "ACME",
            "type": "plain",
            "message": "Hello",
        },
        {"recipient": "31612345602", "sender_id": "ACME", "type": "plain", "message": "Bye"},
        {"recipient": "31612345605", "sender_id": "Other", "type": "plain", "message": "Hello"},
        {
            "recipient": "31612345606",
            "sender_id": "ACME",
            "type": "plain",
            "message": "Hello",
            "schedule_time": "2030-01-02 09:00",
        },
        {"recipient": "31612345607", "sender_id": "ACME", "type": "unicode", "message": "Привет"},
        {
            "recipient": "31612345608",
            "sender_id": "ACME",
            "type": "voice",
            "message": "Hello",
            "language": "en-gb",
            "gender": "male",
        },
    ]


def test_send_batch_builds_the_fields_once_per_distinct_text_sender_schedule_and_options(
    hook, requests_mock, monkeypatch
):
    """Messages sharing text, sender, schedule and options (the same options object, or none) share
    one build of the request's fields; equal options in another object still share the request."""

    def answer(request, context):
        numbers = request.json()["recipient"].split(",")
        objects = [sms(f"id-{n}", n, "Queued") for n in numbers]
        return ok(objects if len(objects) > 1 else objects[0])

    requests_mock.post(f"{BASE}/sms/send", json=answer)
    built = []
    real = hook._message_fields
    monkeypatch.setattr(hook, "_message_fields", lambda m: built.append(m.to) or real(m))
    voice = {"type": "voice", "language": "en-gb", "gender": "male"}
    messages = [OutboundMessage(f"+316123456{i:02d}", "Hello", key=str(i)) for i in range(10)]
    messages += [OutboundMessage(f"+316123457{i:02d}", "Hello", key=f"v{i}", options=voice) for i in range(3)]
    messages += [OutboundMessage("+31612345800", "Hello", key="w", options=dict(voice))]
    results = hook.send_batch(messages)
    assert all(r.accepted for r in results)
    assert built == ["+31612345600", "+31612345700", "+31612345800"]
    recipients = [sent(r)[2]["recipient"] for r in requests_mock.request_history]
    assert [len(r.split(",")) for r in recipients] == [10, 4]


def test_send_batch_splits_a_group_into_requests_of_batch_size(env, requests_mock):
    hook = env(batch_size=2)
    requests_mock.post(
        f"{BASE}/sms/send",
        json=lambda request, context: ok([sms(f"u{n}", n) for n in request.json()["recipient"].split(",")]),
    )
    messages = [OutboundMessage(f"+3161234560{i}", "Hi", key=str(i)) for i in range(5)]
    results = hook.send_batch(messages)
    assert [r.message_id for r in results] == [f"u3161234560{i}" for i in range(5)]
    assert [sent(r)[2]["recipient"].count(",") + 1 for r in requests_mock.request_history] == [2, 2, 1]


def test_a_422_naming_invalid_recipients_rejects_them_and_resends_the_rest(hook, requests_mock):
    requests_mock.post(
        f"{BASE}/sms/send",
        [
            {
                "status_code": 422,
                "json": {
                    "status": "error",
                    "message": "The recipient 31612345602 is not a valid phone number.",
                },
            },
            {
                "status_code": 422,
                "json": {
                    "message": "The given data was invalid.",
                    "errors": {"recipient": ["Invalid number: +31612345604"]},
                },
            },
            {"json": ok([sms("u1", "31612345601"), sms("u3", "31612345603")])},
        ],
    )
    messages = [OutboundMessage(f"+3161234560{i}", "Hi", key=str(i)) for i in range(1, 5)]
    results = hook.send_batch(messages)
    assert [(r.accepted, r.message_id, r.error_code) for r in results] == [
        (True, "u1", None),
        (False, None, "invalid_phone"),
        (True, "u3", None),
        (False, None, "invalid_phone"),
    ]
    assert results[1].error == "The recipient 31612345602 is not a valid phone number."
    assert "+31612345604" in results[3].error
    recipients = [sent(r)[2]["recipient"] for r in requests_mock.request_history]
    assert recipients == [
        "31612345601,31612345602,31612345603,31612345604",
        "31612345601,31612345603,31612345604",
        "31612345601,31612345603",
    ]


def test_a_422_naming_no_recipient_is_about_the_request_and_raises(hook, requests_mock):
    """A refused sender is not the recipients' fault: their messages must stay unsent, not rejected."""
    requests_mock.post(
        f"{BASE}/sms/send",
        status_code=422,
        json={"status": "error", "message": "The sender id must be at most 11 characters."},
    )
    messages = [
        OutboundMessage("+31612345602", "Hi", key="2", sender="WAYTOOLONGSENDER"),
        OutboundMessage("+31612345603", "Hi", key="3", sender="WAYTOOLONGSENDER"),
    ]
    with pytest.raises(SmsValidationError, match="sender id must be at most 11"):
        hook.send_batch(messages)
    assert requests_mock.call_count == 1


def test_a_422_naming_no_recipient_after_a_stored_request_is_ambiguous(hook, requests_mock):
    def answer(request, context):
        if request.json()["sender_id"] == "WAYTOOLONGSENDER":
            context.status_code = 422
            return {"status": "error", "message": "The sender id must be at most 11 characters."}
        return ok(sms("u1", "31612345601"))

    requests_mock.post(f"{BASE}/sms/send", json=answer)
    messages = [
        OutboundMessage("+31612345601", "Hi", key="1"),
        OutboundMessage("+31612345602", "Hi", key="2", sender="WAYTOOLONGSENDER"),
    ]
    with pytest.raises(SmsAmbiguousSendError, match="sender id must be at most 11"):
        hook.send_batch(messages)
    assert requests_mock.call_count == 2


def test_a_refusal_before_anything_was_stored_raises_as_is(hook, requests_mock):
    requests_mock.post(
        f"{BASE}/sms/send",
        status_code=403,
        json={"status": "error", "message": "You do not have enough sms unit"},
    )
    with pytest.raises(SmsAuthError, match="enough sms unit"):
        hook.send_batch([OutboundMessage("+31612345601", "A"), OutboundMessage("+31612345602", "B")])
    assert requests_mock.call_count == 1  # stopped at the first refusal


def test_a_failure_after_an_earlier_request_was_stored_is_ambiguous(hook, requests_mock):
    requests_mock.post(
        f"{BASE}/sms/send",
        [
            {"json": ok(sms("u1", "31612345601"))},
            {"status_code": 403, "json": {"status": "error", "message": "You do not have enough sms unit"}},
        ],
    )
    with pytest.raises(SmsAmbiguousSendError, match="look the batch up") as info:
        hook.send_batch([OutboundMessage("+31612345601", "A"), OutboundMessage("+31612345602", "B")])
    assert isinstance(info.value.__cause__, SmsAuthError)


# -------------------------------------------------------------------------------------------------
# Messages and statuses


def test_status_map_is_the_documented_one_and_case_insensitive():
    assert STATUS_MAP == {
        "delivered": DeliveryStatus.DELIVERED,
        "sent": DeliveryStatus.SENT,
        "enroute": DeliveryStatus.SENT,
        "submitted": DeliveryStatus.SENT,
        "pending": DeliveryStatus.QUEUED,
        "queued": DeliveryStatus.QUEUED,
        "scheduled": DeliveryStatus.SCHEDULED,
        "undelivered": DeliveryStatus.UNDELIVERED,
        "expired": DeliveryStatus.UNDELIVERED,
        "failed": DeliveryStatus.FAILED,
        "rejected": DeliveryStatus.REJECTED,
        "blocked": DeliveryStatus.REJECTED,
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Delivered", DeliveryStatus.DELIVERED),
        ("ENROUTE", DeliveryStatus.SENT),
        ("Scheduled", DeliveryStatus.SCHEDULED),
        ("Expired", DeliveryStatus.UNDELIVERED),
        ("Blocked", DeliveryStatus.REJECTED),
        ("Insufficient route coverage", DeliveryStatus.UNKNOWN),
    ],
)
def test_get_message_maps_the_raw_status_and_keeps_it(hook, requests_mock, raw, expected):
    requests_mock.get(f"{BASE}/sms/606812e63f78b", json=ok(sms("606812e63f78b", status=raw)))
    report = hook.get_message("606812e63f78b")
    assert sent(requests_mock.last_request) == ("GET", f"{BASE}/sms/606812e63f78b", None)
    assert (report.message_id, report.status, report.raw_status) == ("606812e63f78b", expected, raw)
    assert (report.recipient, report.body, report.created_at) == ("+31612345678", "Hi", T0)


def test_get_message_of_an_unknown_uid_is_a_validation_error(hook, requests_mock):
    requests_mock.get(
        f"{BASE}/sms/nope", status_code=404, json={"status": "error", "message": "Message not found."}
    )
    with pytest.raises(SmsValidationError, match=r"Message not found\."):
        hook.get_message("nope")


def test_list_messages_reads_three_pages_and_reports_inbound_as_received(hook, requests_mock):
    requests_mock.get(f"{BASE}/sms?page=1", json=page([sms("a"), sms("b", status="Sent")], 1, 3))
    requests_mock.get(f"{BASE}/sms?page=2", json=page([sms("c", status="Failed")], 2, 3))
    requests_mock.get(f"{BASE}/sms?page=3", json=page([sms("d", direction="incoming")], 3, 3))
    reports = list(hook.list_messages())
    assert [(r.message_id, r.status) for r in reports] == [
        ("a", DeliveryStatus.DELIVERED),
        ("b", DeliveryStatus.SENT),
        ("c", DeliveryStatus.FAILED),
        ("d", DeliveryStatus.RECEIVED),
    ]
    assert pages_requested(requests_mock) == [1, 2, 3]


def _minutes(n: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


def test_statuses_of_a_newest_first_list_stop_at_the_first_page_older_than_since(hook, requests_mock):
    pages = [
        [sms("e", at=_minutes(50)), sms("d", at=_minutes(40))],
        [sms("c", at=_minutes(30)), sms("b", at=_minutes(10))],
        [sms("a", at=_minutes(0))],
    ]
    for number, items in enumerate(pages, 1):
        requests_mock.get(f"{BASE}/sms?page={number}", json=page(items, number, 3))
    reports = list(hook.iter_statuses(since=_minutes(20)))
    assert [r.message_id for r in reports] == ["e", "d", "c"]
    assert pages_requested(requests_mock) == [1, 2]


def test_statuses_of_an_oldest_first_list_jump_to_the_last_page_and_walk_back(hook, requests_mock):
    times = [*range(10), 30, 31, 40, 41]  # 7 pages of 2, oldest first
    for number in range(1, 8):
        items = [sms(f"m{t}", at=_minutes(t)) for t in times[2 * number - 2 : 2 * number]]
        requests_mock.get(f"{BASE}/sms?page={number}", json=page(items, number, 7))
    reports = list(hook.iter_statuses(since=_minutes(20)))
    assert sorted(r.message_id for r in reports) == ["m30", "m31", "m40", "m41"]
    # page 5 starts before since, so it holds the boundary; pages 2 to 4 are older still
    assert pages_requested(requests_mock) == [1, 7, 6, 5]


def test_statuses_read_on_while_the_order_cannot_be_told(hook, requests_mock):
    same = [sms(f"s{i}", at=_minutes(0)) for i in range(4)]
    requests_mock.get(f"{BASE}/sms?page=1", json=page(same[:2], 1, 3))
    requests_mock.get(f"{BASE}/sms?page=2", json=page(same[2:], 2, 3))
    requests_mock.get(f"{BASE}/sms?page=3", json=page([sms("new", at=_minutes(30))], 3, 3))
    assert [r.message_id for r in hook.iter_statuses(since=_minutes(20))] == ["new"]
    assert pages_requested(requests_mock) == [1, 2, 3]


def test_get_statuses_stops_once_every_id_is_found(hook, requests_mock):
    requests_mock.get(f"{BASE}/sms?page=1", json=page([sms("a"), sms("b", status="Undelivered")], 1, 3))
    requests_mock.get(f"{BASE}/sms?page=2", json=page([sms("c")], 2, 3))
    found = hook.get_statuses(["b", "a"])
    assert {k: r.status for k, r in found.items()} == {
        "a": DeliveryStatus.DELIVERED,
        "b": DeliveryStatus.UNDELIVERED,
    }
    assert pages_requested(requests_mock) == [1]


def test_a_401_mid_listing_raises_auth_error_without_leaking_the_token(hook, requests_mock, caplog, sleeps):
    caplog.set_level(logging.DEBUG)
    requests_mock.get(f"{BASE}/sms?page=1", json=page([sms("a")], 1, 3))
    requests_mock.get(f"{BASE}/sms?page=2", status_code=401, json=UNAUTHENTICATED)
    listing = hook.list_messages()
    assert next(listing).message_id == "a"
    with pytest.raises(SmsAuthError, match=r"Unauthenticated\.") as info:
        next(listing)
    assert pages_requested(requests_mock) == [1, 2]
    assert sleeps == []
    for text in (str(info.value), repr(info.value.args), caplog.text):
        assert TOKEN not in text


def test_find_sent_matches_recipient_and_trimmed_body_after_since(hook, requests_mock):
    items = [
        sms("old", "31612345601", body="Hello", at=_minutes(0)),  # before since: ignored
        sms("x1", "31612345601", body="Hello ", at=_minutes(30)),  # the platform trims: still a match
        sms("x2", "31612345601", body="Hello", at=_minutes(31), status="Sent"),  # newer match wins
        sms("y", "31612345602", body="Other text", at=_minutes(31)),
        sms("z", "31612345609", body="Hello", at=_minutes(32)),
    ]
    requests_mock.get(f"{BASE}/sms?page=1", json=page(items, 1, 1))
    messages = [
        OutboundMessage("+31612345601", "Hello", key="101"),
        OutboundMessage("+31612345602", "Hello", key="102"),  # same number, other body: not sent
        OutboundMessage("+316", "Hello", key="103"),  # invalid: never sent
        OutboundMessage("+31612345609", "Hello"),  # no key: cannot be reported
    ]
    found = hook.find_sent(messages, since=_minutes(20))
    assert {k: (r.message_id, r.key, r.status) for k, r in found.items()} == {
        "101": ("x2", "101", DeliveryStatus.SENT)
    }
