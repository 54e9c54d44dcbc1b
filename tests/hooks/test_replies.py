"""``iter_replies`` and ``iter_gateway_opt_outs`` against requests-mock: each gateway's inbound listing,
read leniently where the rows are odd (missing fields, unreadable times), strictly where the answer
is not a list at all."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import parse_qs

import pendulum
import pytest

from airflow_provider_sms.exceptions import SmsMalformedResponseError, SmsPagingError
from airflow_provider_sms.hooks.smsgateway24 import SmsGateway24Hook
from airflow_provider_sms.hooks.smstools import SmstoolsHook
from airflow_provider_sms.hooks.textboost import TextBoostHook
from airflow_provider_sms.messages import InboundMessage

UTC = dt.timezone.utc
BERLIN = pendulum.timezone("Europe/Berlin")
SMSTOOLS = "https://smstools.example.test/v1"
SG24 = "https://gw.example.test/getdata"
TEXTBOOST = "https://sms.reseller.example/api/v3"
CONNECTIONS = {
    "smstools": {
        "conn_type": "smstools",
        "host": "https://smstools.example.test",
        "login": "client-id",
        "password": "client-secret-0987",
    },
    "smsgateway24": {
        "conn_type": "smsgateway24",
        "host": "https://gw.example.test",
        "login": "ops@shop.example",
        "password": "Pw-s3cret-4711",
        "extra": {"device_id": 260, "default_region": "NL"},
    },
    "textboost": {"conn_type": "textboost", "host": "https://sms.reseller.example", "password": "49|tok"},
}


@pytest.fixture
def hooks(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    for gateway, conn in CONNECTIONS.items():
        conn = {**conn, "extra": {**conn.get("extra", {}), "timezone": "Europe/Berlin"}}
        monkeypatch.setenv(f"AIRFLOW_CONN_{gateway.upper()}_TEST", json.dumps(conn))
    return {
        "smstools": SmstoolsHook("smstools_test"),
        "smsgateway24": SmsGateway24Hook("smsgateway24_test"),
        "textboost": TextBoostHook("textboost_test"),
    }


@pytest.fixture
def gettoken(requests_mock):
    return requests_mock.post(f"{SG24}/gettoken", json={"error": 0, "message": "OK", "token": "tok-123"})


def inbox(rows: list, *, total: int, page: int = 1, limit: int = 2000) -> dict:
    return {"total": total, "shown": len(rows), "page": page, "limit": limit, "messages": rows}


def laravel(items: list, current: int, last: int) -> dict:
    return {"status": "success", "data": {"current_page": current, "data": items, "last_page": last}}


def tb_message(uid: str, created: str, *, direction: str = "outgoing", **fields) -> dict:
    base = {"uid": uid, "to": "31612345601", "from": "ACME", "message": "Sale", "status": "Delivered"}
    return {**base, "direction": direction, "created_at": created, **fields}


# ---------------------------------------------------------------------------------------------------
# Smstools: GET /v1/message/inbox


def test_smstools_inbox_rows_become_inbound_messages(hooks, requests_mock):
    rows = [
        {
            "ID": 17,
            "message": "STOP",
            "sender": "31612345601",
            "receiver": "3197010240000",
            "type": "sms",
            "date": "2026-05-29 17:21:27",
        },
        {"ID": "18", "message": "Who is this?", "sender": "+4915112345678", "date": "2026-05-29 18:00:00"},
    ]
    requests_mock.get(f"{SMSTOOLS}/message/inbox", json=inbox(rows, total=2))
    assert list(hooks["smstools"].iter_replies()) == [
        InboundMessage(
            "smstools",
            "17",
            "+31612345601",
            "+3197010240000",
            "STOP",
            dt.datetime(2026, 5, 29, 17, 21, 27, tzinfo=BERLIN),
        ),
        InboundMessage(
            "smstools",
            "18",
            "+4915112345678",
            None,
            "Who is this?",
            dt.datetime(2026, 5, 29, 18, tzinfo=BERLIN),
        ),
    ]
    assert requests_mock.request_history[0].qs == {"limit": ["2000"], "page": ["1"]}


def test_smstools_inbox_reads_every_page_and_leaves_out_what_came_before_since(
    hooks, requests_mock, monkeypatch
):
    monkeypatch.setattr("airflow_provider_sms.hooks.smstools.PAGE_LIMIT", 2)
    pages = [
        inbox([{"ID": 1, "sender": "31612345601", "date": "2026-05-29 08:00:00"}] * 1, total=5, limit=2),
        inbox(
            [
                {"ID": 2, "sender": "31612345602", "date": "2026-05-29 09:00:00"},
                {"ID": 3, "sender": "31612345603", "date": "2026-05-29 10:00:00"},
            ],
            total=5,
            page=2,
            limit=2,
        ),
        inbox([{"ID": 4, "sender": "31612345604", "date": "2026-05-29 11:00:00"}], total=5, page=3, limit=2),
    ]
    requests_mock.get(f"{SMSTOOLS}/message/inbox", [{"json": p} for p in pages])
    since = dt.datetime(2026, 5, 29, 7, 30, tzinfo=UTC)  # 09:30 in Berlin
    assert [r.message_id for r in hooks["smstools"].iter_replies(since)] == ["3", "4"]
    assert [r.qs["page"] for r in requests_mock.request_history] == [["1"], ["2"], ["3"]]


@pytest.mark.parametrize("since", [dt.datetime(2026, 5, 29, 9, 30), pendulum.naive(2026, 5, 29, 9, 30)])
def test_a_naive_since_is_utc(hooks, requests_mock, since):
    rows = [{"ID": i, "sender": "31612345601", "date": f"2026-05-29 1{i}:00:00"} for i in (1, 2)]
    requests_mock.get(f"{SMSTOOLS}/message/inbox", json=inbox(rows, total=2))
    # 11:00 and 12:00 in Berlin are 09:00 and 10:00 UTC
    assert [r.message_id for r in hooks["smstools"].iter_replies(since)] == ["2"]


def test_smstools_rows_with_missing_fields_are_kept_with_what_they_say(hooks, requests_mock):
    rows = [
        {"ID": 5, "sender": "31612345601"},  # no text, no date
        {"ID": 6, "message": "hi", "date": "2026-05-29 17:21:27"},  # no sender
        {"sender": "31612345602", "message": "STOP", "date": "2026-05-29 17:22:00"},  # no id
        {"ID": 8, "sender": "Shop", "message": "x", "date": "0000-00-00 00:00:00"},  # not a number, zero date
    ]
    requests_mock.get(f"{SMSTOOLS}/message/inbox", json=inbox(rows, total=4))
    no_text, no_sender, no_id, odd = hooks["smstools"].iter_replies(dt.datetime(2026, 5, 29, tzinfo=UTC))
    assert (no_text.message_id, no_text.text, no_text.received_at) == ("5", "", None)
    assert (no_sender.sender, no_sender.text) == ("", "hi")
    assert no_id.message_id.startswith("sha256:") and len(no_id.message_id) == 39
    assert (no_id.sender, no_id.text) == ("+31612345602", "STOP")
    assert (odd.sender, odd.received_at) == ("Shop", None)  # as given; an unreadable time is kept

    again = list(hooks["smstools"].iter_replies())
    assert again[2].message_id == no_id.message_id  # the derived id is the same on every read


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1780068087, dt.datetime(2026, 5, 29, 15, 21, 27, tzinfo=UTC)),
        ("1780068087", dt.datetime(2026, 5, 29, 15, 21, 27, tzinfo=UTC)),
        ("2026-05-29T17:21:27+02:00", dt.datetime(2026, 5, 29, 15, 21, 27, tzinfo=UTC)),
        ("2026-05-29T15:21:27.5Z", dt.datetime(2026, 5, 29, 15, 21, 27, 500000, tzinfo=UTC)),
        ("2026-05-29 17:21", dt.datetime(2026, 5, 29, 17, 21, tzinfo=BERLIN)),
        ({"date": "2026-05-29 17:21:27.000000", "timezone_type": 3, "timezone": "UTC"}, None),
        ({"timezone": "UTC"}, "none"),
        ("2026-13-01 00:00:00", "none"),
        ("yesterday", "none"),
        (True, "none"),
        (float("nan"), "none"),
        (10**20, "none"),
    ],
)
def test_odd_reply_times_are_read_or_left_empty_never_raised(hooks, value, expected):
    received = hooks["smstools"].received_time(value)
    if expected == "none":
        assert received is None
    elif expected is None:  # a PHP DateTime in its own zone
        assert received == dt.datetime(2026, 5, 29, 17, 21, 27, tzinfo=UTC)
    else:
        assert received == expected


def test_smstools_inbox_that_is_not_a_list_is_an_error_not_an_empty_inbox(hooks, requests_mock):
    requests_mock.get(f"{SMSTOOLS}/message/inbox", json={"total": 3, "note": "maintenance"})
    with pytest.raises(SmsMalformedResponseError, match="message/inbox"):
        list(hooks["smstools"].iter_replies())


def test_smstools_inbox_that_repeats_a_page_is_stopped(hooks, requests_mock, monkeypatch):
    monkeypatch.setattr("airflow_provider_sms.hooks.smstools.PAGE_LIMIT", 1)
    rows = [{"ID": 1, "sender": "31612345601", "message": "hi"}]
    requests_mock.get(f"{SMSTOOLS}/message/inbox", json=inbox(rows, total=9, limit=1))  # ignores "page"
    with pytest.raises(SmsPagingError, match="same page"):
        list(hooks["smstools"].iter_replies())


def test_smstools_gateway_opt_outs_are_phones_with_their_dates(hooks, requests_mock):
    rows = [
        {"phone": "31612345601", "date": "2026-05-29 17:21:27"},
        {"phone": "31612345602"},
        {"phone": ""},  # names no one: left out
        {"phone": "+4915112345678", "date": "garbage"},
    ]
    requests_mock.get(f"{SMSTOOLS}/optouts/list", json={"total": 4, "optouts": rows})
    assert hooks["smstools"].capabilities.opt_out_list
    assert list(hooks["smstools"].iter_gateway_opt_outs()) == [
        ("+31612345601", dt.datetime(2026, 5, 29, 17, 21, 27, tzinfo=BERLIN)),
        ("+31612345602", None),
        ("+4915112345678", None),
    ]


@pytest.mark.parametrize("gateway", ["smsgateway24", "textboost"])
def test_gateways_without_an_opt_out_list_say_so(hooks, gateway, requests_mock):
    hook = hooks[gateway]
    assert not hook.capabilities.opt_out_list
    with pytest.raises(NotImplementedError, match="opt-out list"):
        list(hook.iter_gateway_opt_outs())
    assert not requests_mock.request_history


# ---------------------------------------------------------------------------------------------------
# SmsGateway24: getallsms with status 5


def sms_row(
    sms_id, status, *, sendto="+31612345601", body="STOP", created="2026-05-29 17:21:27.000000", **extra
):
    created_field = {"date": created, "timezone_type": 3, "timezone": "Europe/Berlin"} if created else None
    return {
        "id": sms_id,
        "sendto": sendto,
        "body": body,
        "customerid": None,
        "status": status,
        "deviceid": 260,
        "created": created_field,
        **extra,
    }


def test_smsgateway24_reads_incoming_sms_from_since(hooks, requests_mock, gettoken):
    rows = {
        "900": sms_row(900, 5),
        "901": sms_row(901, 7, body="Our sale"),  # a sent message: the gateway ignored the filter
        "902": sms_row(902, "5", sendto="004915112345678", body="Danke!", created="2026-05-29 18:00:00"),
        "903": sms_row(903, 5, sendto="06 1234 5602", body="ok"),  # national: the default_region's
        "904": sms_row(904, 5, sendto="Vodafone", body="Your bundle"),  # a sender name: as given
    }
    requests_mock.post(f"{SG24}/getallsms", json={"error": 0, "count": 3, "smss": rows})
    since = dt.datetime(2026, 5, 29, 15, 0, 0, 250000, tzinfo=UTC)
    replies = list(hooks["smsgateway24"].iter_replies(since))
    assert replies[:2] == [
        InboundMessage(
            "smsgateway24",
            "900",
            "+31612345601",
            "260",
            "STOP",
            dt.datetime(2026, 5, 29, 17, 21, 27, tzinfo=BERLIN),
        ),
        InboundMessage(
            "smsgateway24",
            "902",
            "+4915112345678",
            "260",
            "Danke!",
            dt.datetime(2026, 5, 29, 18, tzinfo=BERLIN),
        ),
    ]
    assert [(r.sender, r.text) for r in replies[2:]] == [("+31612345602", "ok"), ("Vodafone", "Your bundle")]
    fields = {k: v[0] for k, v in parse_qs(requests_mock.request_history[-1].text).items()}
    assert fields == {
        "token": "tok-123",
        "status": "5",
        "begindate": "2026-05-29 17:00:00",  # since in the connection's timezone
        "timezone": "Europe/Berlin",
    }
    assert requests_mock.call_count == 2  # the token, then one getallsms: it is never paged


def test_smsgateway24_leniency_and_strictness(hooks, requests_mock, gettoken):
    rows = [sms_row(None, 5, sendto=None, body=None, created=None), sms_row(7, 5, created="not a date")]
    requests_mock.post(f"{SG24}/getallsms", json={"error": 0, "count": 2, "smss": rows})
    missing, odd = hooks["smsgateway24"].iter_replies()
    assert missing.message_id.startswith("sha256:") and (missing.sender, missing.text) == ("", "")
    assert (odd.message_id, odd.received_at) == ("7", None)

    requests_mock.post(f"{SG24}/getallsms", json={"error": 0, "count": 0, "smss": []})
    assert list(hooks["smsgateway24"].iter_replies()) == []
    requests_mock.post(f"{SG24}/getallsms", json={"error": 0, "message": "OK"})  # no smss, no count: 0
    with pytest.raises(SmsMalformedResponseError, match="getallsms"):
        list(hooks["smsgateway24"].iter_replies())


# ---------------------------------------------------------------------------------------------------
# TextBoost: GET /sms, direction inbound


def test_textboost_keeps_the_inbound_messages_of_the_listing(hooks, requests_mock):
    items = [
        tb_message("a1", "2026-05-29T10:00:00.000000Z"),
        tb_message(
            "b2",
            "2026-05-29T10:05:00.000000Z",
            direction="incoming",
            to="3197010250000",
            **{"from": "31612345601", "message": "Baja"},
        ),
        tb_message(
            "c3", "2026-05-29T10:06:00Z", direction="Inbound", to="ACME", **{"from": "+4915112345678"}
        ),
        tb_message("d4", "2026-05-29T10:07:00Z", direction=None),
    ]
    requests_mock.get(f"{TEXTBOOST}/sms", json=laravel(items, 1, 1))
    assert list(hooks["textboost"].iter_replies()) == [
        InboundMessage(
            "textboost",
            "b2",
            "+31612345601",
            "+3197010250000",
            "Baja",
            dt.datetime(2026, 5, 29, 10, 5, tzinfo=UTC),
        ),
        InboundMessage(
            "textboost", "c3", "+4915112345678", "ACME", "Sale", dt.datetime(2026, 5, 29, 10, 6, tzinfo=UTC)
        ),
    ]


def test_textboost_reads_an_oldest_first_listing_only_back_to_since(hooks, requests_mock):
    def minute(m: int) -> str:
        return f"2026-05-29T10:{m:02d}:00.000000Z"

    inbound = {"direction": "incoming", "from": "31612345609"}
    pages = {
        number: [tb_message(f"p{number}{x}", minute(2 * number + i), **inbound) for i, x in enumerate("ab")]
        for number in range(1, 5)
    }
    pages[5] = [tb_message("p5a", minute(10), **inbound), tb_message("p5b", minute(30), **inbound)]
    pages[6] = [tb_message("p6a", minute(31), **inbound), tb_message("p6b", minute(32))]
    for number, items in pages.items():
        requests_mock.get(f"{TEXTBOOST}/sms?page={number}", json=laravel(items, number, 6))
    since = dt.datetime(2026, 5, 29, 10, 20, tzinfo=UTC)
    assert [r.message_id for r in hooks["textboost"].iter_replies(since)] == ["p6a", "p5b"]
    # oldest first (page 1 tells): straight to the last page, then back until a page starts before since
    assert [int(r.qs["page"][0]) for r in requests_mock.request_history] == [1, 6, 5]


def test_textboost_odd_rows(hooks, requests_mock):
    items = [
        {
            "direction": "incoming",
            "from": "31612345601",
            "created_at": "2026-05-29T10:00:00Z",
        },  # no uid, no text
        {"direction": "incoming", "uid": "x9", "from": "31612345602", "message": "Stop", "created_at": None},
    ]
    requests_mock.get(f"{TEXTBOOST}/sms", json=laravel(items, 1, 1))
    no_uid, no_time = hooks["textboost"].iter_replies(dt.datetime(2026, 5, 29, tzinfo=UTC))
    assert no_uid.message_id.startswith("sha256:") and no_uid.text == ""
    assert (no_time.message_id, no_time.received_at) == ("x9", None)
    requests_mock.get(f"{TEXTBOOST}/sms", json={"status": "success", "data": "none"})
    with pytest.raises(SmsMalformedResponseError):
        list(hooks["textboost"].iter_replies())
