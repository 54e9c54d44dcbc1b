"""SmsGateway24Hook against requests-mock: the exact form fields of every endpoint, and the parses."""

from __future__ import annotations

import datetime as dt
import email.parser
import json
import logging
from urllib.parse import parse_qs

import pendulum
import pytest
import requests

from airflow_provider_sms.exceptions import (
    SmsAmbiguousSendError,
    SmsAuthError,
    SmsValidationError,
)
from airflow_provider_sms.hooks.smsgateway24 import STATUS_MAP, SmsGateway24Hook
from airflow_provider_sms.messages import Contact, DeliveryStatus, OutboundMessage

EMAIL = "ops@shop.example"
PASSWORD = "Pw-s3cret-4711-xyz"
TOKEN = "abbde3e31e9d026c02f41119fc551111e"
TOKEN2 = "ffee0011223344556677889900aabbcc"
BASE = "https://gw.example.test/getdata"
UTC = dt.timezone.utc
TOKEN_ERROR = {"error": 1, "message": "Token not found or expired"}
LOGIN_ERROR = {"error": 1, "message": "Login or password incorrect"}


def _conn(**extra):
    return json.dumps(
        {
            "conn_type": "smsgateway24",
            "host": "https://gw.example.test",
            "login": EMAIL,
            "password": PASSWORD,
            "extra": {"device_id": 260, "sim": 1, "timezone": "Europe/Berlin", **extra},
        }
    )


@pytest.fixture
def hook(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    monkeypatch.setenv("AIRFLOW_CONN_SMSGATEWAY24_TEST", _conn())
    return SmsGateway24Hook("smsgateway24_test")


@pytest.fixture
def gettoken(requests_mock):
    return requests_mock.post(f"{BASE}/gettoken", json={"error": 0, "message": "OK", "token": TOKEN})


@pytest.fixture
def sleeps(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr("tenacity.nap.time.sleep", waits.append)
    return waits


def form(request) -> dict[str, str]:
    """The form fields of a url-encoded POST, one value each."""
    fields = parse_qs(request.text, keep_blank_values=True)
    assert all(len(v) == 1 for v in fields.values()), fields
    return {k: v[0] for k, v in fields.items()}


def datajson(request) -> dict:
    fields = form(request)
    assert set(fields) == {"datajson"}  # the token travels inside the JSON, not beside it
    return json.loads(fields["datajson"])


def paths(requests_mock) -> list[str]:
    return [r.path.rsplit("/", 1)[-1] for r in requests_mock.request_history]


def sms(id_, status, *, sendto="+4915752982212", customerid=None, timetosend=None, senttime=None):
    return {
        "id": id_,
        "sendto": sendto,
        "body": "Hello!",
        "customerid": customerid,
        "status": status,
        "statustitle": "x",
        "deviceid": 260,
        "urgent": None,
        "created": {"date": "2026-05-29 17:21:27.000000", "timezone_type": 3, "timezone": "Europe/Berlin"},
        "senttime": senttime,
        "timetosend": timetosend,
        "paketid": None,
        "pakettitle": None,
        "paketbody": None,
    }


# -------------------------------------------------------------------------------------------------
# Connection, token and envelope


def test_getdata_is_appended_to_a_host_without_path(hook, monkeypatch):
    assert hook.base_url == BASE
    monkeypatch.setenv("AIRFLOW_CONN_SGW_BARE", json.dumps({"conn_type": "smsgateway24"}))
    assert SmsGateway24Hook("sgw_bare").base_url == "https://smsgateway24.com/getdata"
    assert SmsGateway24Hook.default_conn_name == "smsgateway24_default"
    assert SmsGateway24Hook.conn_type == "smsgateway24"


def test_token_from_gettoken_is_posted_as_form_fields_and_reused(hook, requests_mock, gettoken):
    requests_mock.post(f"{BASE}/savetag", json={"error": 0, "tag_id": 8303, "message": "OK"})
    assert hook.save_tag("Employees") == "8303"
    assert hook.save_tag("Customers") == "8303"
    assert paths(requests_mock) == ["gettoken", "savetag", "savetag"]
    token_request = requests_mock.request_history[0]
    assert token_request.method == "POST"
    assert token_request.query == ""  # the password is never in a URL
    assert form(token_request) == {"email": EMAIL, "pass": PASSWORD}
    assert form(requests_mock.last_request) == {"token": TOKEN, "title": "Customers"}


def test_get_token_is_cached_and_can_be_refreshed(hook, requests_mock):
    requests_mock.post(
        f"{BASE}/gettoken", [{"json": {"error": 0, "token": TOKEN}}, {"json": {"error": 0, "token": TOKEN2}}]
    )
    assert hook.get_token() == TOKEN
    assert hook.get_token() == TOKEN
    assert hook.get_token(refresh=True) == TOKEN2
    assert requests_mock.call_count == 2


def test_token_expired_mid_run_is_refreshed_once_and_the_call_succeeds(hook, requests_mock, caplog):
    caplog.set_level(logging.DEBUG)
    requests_mock.post(
        f"{BASE}/gettoken", [{"json": {"error": 0, "token": TOKEN}}, {"json": {"error": 0, "token": TOKEN2}}]
    )
    requests_mock.post(
        f"{BASE}/savetag",
        [
            {"json": {"error": 0, "tag_id": 1, "message": "OK"}},
            {"json": TOKEN_ERROR},
            {"json": {"error": 0, "tag_id": 2, "message": "OK"}},
        ],
    )
    assert hook.save_tag("first") == "1"
    assert hook.save_tag("second") == "2"  # the token expired in between
    assert paths(requests_mock) == ["gettoken", "savetag", "savetag", "gettoken", "savetag"]
    tokens = [form(r).get("token") for r in requests_mock.request_history]
    assert tokens == [None, TOKEN, TOKEN, None, TOKEN2]
    assert TOKEN not in caplog.text and TOKEN2 not in caplog.text


def test_a_token_refused_again_after_one_refresh_raises_auth_error(hook, requests_mock, sleeps):
    requests_mock.post(
        f"{BASE}/gettoken", [{"json": {"error": 0, "token": TOKEN}}, {"json": {"error": 0, "token": TOKEN2}}]
    )
    requests_mock.post(f"{BASE}/getsmsstatus", json=TOKEN_ERROR)
    with pytest.raises(SmsAuthError, match="Token not found or expired") as info:
        hook.get_sms_status(1)
    assert paths(requests_mock) == ["gettoken", "getsmsstatus", "gettoken", "getsmsstatus"]
    assert info.value.code == 1
    assert sleeps == []


def test_bad_password_raises_auth_error_and_never_shows_the_password(hook, requests_mock, caplog, sleeps):
    caplog.set_level(logging.DEBUG)
    requests_mock.post(f"{BASE}/gettoken", json=LOGIN_ERROR)
    requests_mock.post(f"{BASE}/savetag", json={"error": 0, "tag_id": 1})
    with pytest.raises(SmsAuthError, match="Login or password incorrect") as info:
        hook.save_tag("x")
    assert paths(requests_mock) == ["gettoken"]  # no retry, no call without a token
    assert form(requests_mock.last_request)["pass"] == PASSWORD  # sent in the form body...
    assert PASSWORD not in str(info.value)  # ...never shown
    assert PASSWORD not in repr(info.value.args)
    assert PASSWORD not in caplog.text
    ok, message = hook.test_connection()
    assert not ok
    assert "Login or password incorrect" in message
    assert PASSWORD not in message
    assert PASSWORD not in caplog.text


def test_test_connection_is_gettoken(hook, requests_mock, gettoken):
    assert hook.test_connection() == (True, f"Connection to smsgateway24 at {BASE} works")
    assert paths(requests_mock) == ["gettoken"]


def test_gettoken_without_token_is_an_auth_error(hook, requests_mock):
    requests_mock.post(f"{BASE}/gettoken", json={"error": 0, "message": "OK"})
    with pytest.raises(SmsAuthError, match="without a token"):
        hook.get_token()


@pytest.mark.parametrize(
    ("payload", "exc_type"),
    [
        ({"error": 1, "message": "Device not found"}, SmsValidationError),
        ({"error": "1", "message": "Body is empty"}, SmsValidationError),
        ({"error": 1, "message": "Wrong token"}, SmsAuthError),
        (LOGIN_ERROR, SmsAuthError),
    ],
)
def test_error_envelope_on_http_200_raises_the_typed_error_with_the_gateways_message(
    hook, requests_mock, gettoken, payload, exc_type, sleeps
):
    requests_mock.post(f"{BASE}/getdevicestatus", json=payload)
    with pytest.raises(exc_type) as info:
        hook.get_device_status()
    assert type(info.value) is exc_type
    assert info.value.message == payload["message"]
    assert str(info.value.code) == "1"
    assert info.value.gateway == "smsgateway24"


def test_server_errors_on_reads_are_retried(hook, requests_mock, gettoken, sleeps):
    requests_mock.post(
        f"{BASE}/getalldevices",
        [{"status_code": 503, "json": {"error": 1}}, {"json": {"count": 0, "device": []}}],
    )
    assert hook.get_all_devices() == []
    assert len(sleeps) == 1


# -------------------------------------------------------------------------------------------------
# Sending


def test_add_sms_posts_every_field_with_plus_and_local_time(hook, requests_mock, gettoken):
    requests_mock.post(f"{BASE}/addsms", json={"error": 0, "sms_id": 62807347, "message": "saved"})
    sms_id = hook.add_sms(
        "+49 1575 2982212",
        "Your code is 1234",
        send_at=dt.datetime(2026, 1, 12, 1, 3, 39, tzinfo=UTC),
        customer_id=122,
        urgent=True,
    )
    assert sms_id == "62807347"
    request = requests_mock.last_request
    assert request.url == f"{BASE}/addsms"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "%2B4915752982212" in request.text  # "+" escaped as a form value, not read as a space
    assert form(request) == {
        "token": TOKEN,
        "sendto": "+4915752982212",
        "body": "Your code is 1234",
        "device_id": "260",
        "sim": "1",
        "timetosend": "2026-01-12 02:03:39",  # Europe/Berlin
        "customerid": "122",
        "urgent": "1",
    }


def test_add_sms_to_several_numbers_overrides_device_and_sim(hook, requests_mock, gettoken):
    requests_mock.post(f"{BASE}/addsms", json={"error": 0, "sms_id": 5})
    hook.add_sms(["+4915752982212", "004917642111111"], "Hi", device_id=1576, sim=0)
    assert form(requests_mock.last_request) == {
        "token": TOKEN,
        "sendto": "+4915752982212,+4917642111111",
        "body": "Hi",
        "device_id": "1576",
        "sim": "0",
    }


def test_add_sms_with_an_image_is_multipart(hook, requests_mock, gettoken, tmp_path):
    image = tmp_path / "promo.png"
    image.write_bytes(b"\x89PNG-bytes")
    requests_mock.post(f"{BASE}/addsms", json={"error": 0, "sms_id": 7})
    assert hook.add_sms("+4915752982212", "See the picture", sim=2, file=image) == "7"
    request = requests_mock.last_request
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    raw = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode() + request.body
    parts = {p.get_param("name", header="content-disposition"): p for p in _multipart(raw)}
    assert {name: parts[name].get_payload() for name in ("token", "sendto", "sim", "device_id")} == {
        "token": TOKEN,
        "sendto": "+4915752982212",
        "sim": "2",
        "device_id": "260",
    }
    assert parts["file"].get_filename() == "promo.png"
    assert parts["file"].get_content_type() == "image/png"
    assert parts["file"].get_payload(decode=True) == b"\x89PNG-bytes"


def _multipart(raw: bytes):
    return email.parser.BytesParser().parsebytes(raw).get_payload()


def test_add_sms_refuses_an_invalid_number_before_sending(hook, requests_mock, gettoken):
    with pytest.raises(ValueError, match="invalid phone number"):
        hook.add_sms("12", "Hi")
    assert requests_mock.call_count == 0


def test_add_sms_without_a_device_is_a_clear_error(monkeypatch, requests_mock):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SGW_NODEV",
        json.dumps({"conn_type": "smsgateway24", "login": EMAIL, "password": PASSWORD}),
    )
    with pytest.raises(ValueError, match="needs a device_id"):
        SmsGateway24Hook("sgw_nodev").add_sms("+4915752982212", "Hi")
    assert requests_mock.call_count == 0


def test_sms_to_send_uses_email_and_password_in_the_form_not_a_token(hook, requests_mock):
    requests_mock.post(f"{BASE}/smstosend", json={"error": 0, "sms_id": 62807348})
    assert hook.sms_to_send("+4915752982212", "Hi", sim=0) == "62807348"
    assert paths(requests_mock) == ["smstosend"]  # no gettoken
    request = requests_mock.last_request
    assert request.query == ""
    assert PASSWORD not in request.url
    assert form(request) == {
        "email": EMAIL,
        "pass": PASSWORD,
        "sendto": "+4915752982212",
        "body": "Hi",
        "device_id": "260",
        "sim": "0",
    }


def test_sms_to_send_with_a_bad_password_is_an_auth_error_without_the_password(hook, requests_mock, caplog):
    caplog.set_level(logging.DEBUG)
    requests_mock.post(f"{BASE}/smstosend", json=LOGIN_ERROR)
    with pytest.raises(SmsAuthError) as info:
        hook.sms_to_send("+4915752982212", "Hi")
    assert requests_mock.call_count == 1
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in caplog.text


def test_send_batch_is_one_addalotofsms_with_the_token_inside_datajson(hook, requests_mock, gettoken):
    messages = [
        OutboundMessage("+4915752982212", "Hello Ann", key="1001"),
        OutboundMessage("+4915112345678", "Hello Bob", key="1002"),
        OutboundMessage("+4917642111111", "Hello Cid", key="1003", options={"sim": 0, "urgent": True}),
        OutboundMessage("not a phone", "Hello Dan", key="1004"),
        OutboundMessage(
            "+4917642111112",
            "Later",
            key="1005",
            send_at=dt.datetime(2026, 7, 1, 21, 50, tzinfo=UTC),
            options={"device_id": 1576},
        ),
    ]
    requests_mock.post(
        f"{BASE}/addalotofsms",
        json={
            "error": 0,
            "message": "OK",
            "sms_ids": [101, None, 103, 105],
            "errors": [{"index": 1, "message": "Phone +4915112345678 is blocked"}],
        },
    )
    results = hook.send_batch(messages)
    assert paths(requests_mock) == ["gettoken", "addalotofsms"]
    assert datajson(requests_mock.last_request) == {
        "token": TOKEN,
        "smsdata": [
            {"sendto": "+4915752982212", "body": "Hello Ann", "sim": 1, "device_id": 260, "customerid": 1001},
            {"sendto": "+4915112345678", "body": "Hello Bob", "sim": 1, "device_id": 260, "customerid": 1002},
            {
                "sendto": "+4917642111111",
                "body": "Hello Cid",
                "sim": 0,
                "device_id": 260,
                "customerid": 1003,
                "urgent": 1,
            },
            {
                "sendto": "+4917642111112",
                "body": "Later",
                "sim": 1,
                "device_id": 1576,
                "timetosend": "2026-07-01 23:50:00",
                "customerid": 1005,
            },
        ],
    }
    assert [r.message for r in results] == messages
    assert [(r.accepted, r.message_id) for r in results] == [
        (True, "101"),
        (False, None),
        (True, "103"),
        (False, None),
        (True, "105"),
    ]
    assert results[1].error == "Phone +4915112345678 is blocked"
    assert results[1].status is DeliveryStatus.REJECTED
    assert "invalid phone number 'not a phone'" in results[3].error
    assert results[3].error_code == "invalid_phone"


def test_addalotofsms_rows_equal_sms_fields_and_share_what_is_around_the_number(hook, monkeypatch):
    """Each row equals :meth:`_sms_fields` of its message, in value and key order; the fields
    around the number and key are built once per text, schedule and options object."""
    later = dt.datetime(2026, 7, 1, 21, 50, tzinfo=UTC)
    urgent = {"sim": 0, "urgent": True}
    messages = [OutboundMessage(f"+49157529822{i:02d}", "Hello", key=str(1000 + i)) for i in range(6)]
    messages += [
        OutboundMessage("+4915752982290", "Hello"),  # no key: no customerid
        OutboundMessage("+4915752982291", "Hello", key="", options=urgent),
        OutboundMessage("+4915752982292", "Hello", key="7", options=urgent),
        OutboundMessage("+4915752982293", "Hello", key="8", options=dict(urgent)),  # equal, another object
        OutboundMessage("+4915752982294", "Later", key="9", send_at=later, options={"device_id": 1576}),
        OutboundMessage("+4915752982295", "Hello", key="10", send_at=later),
    ]
    built = []
    real = hook._sms_fields
    monkeypatch.setattr(hook, "_sms_fields", lambda *a: built.append(a[0]) or real(*a))
    shared: dict = {}
    rows = [hook._row(m, shared) for m in messages]
    assert built == ["+4915752982200", "+4915752982291", "+4915752982293", "+4915752982294", "+4915752982295"]
    reference = [
        real(m.to, m.body, m.options.get("device_id"), m.options.get("sim"), m.send_at, m.key or None,
             m.options.get("urgent"))
        for m in messages
    ]  # fmt: skip
    assert rows == reference
    assert [list(row) for row in rows] == [list(row) for row in reference]  # the same key order
    with pytest.raises(ValueError, match="customerid must be digits"):
        hook._row(OutboundMessage("+4915752982296", "Hello", key="k-1"), shared)


def test_send_messages_splits_into_addalotofsms_batches_of_batch_size(monkeypatch, requests_mock, gettoken):
    monkeypatch.setenv("AIRFLOW_CONN_SGW_SMALL", _conn(batch_size=2))
    hook = SmsGateway24Hook("sgw_small")
    assert SmsGateway24Hook.max_batch_size == 500
    assert hook.batch_size == 2
    requests_mock.post(
        f"{BASE}/addalotofsms",
        [{"json": {"error": 0, "sms_ids": [1, 2]}}, {"json": {"error": 0, "sms_ids": [3]}}],
    )
    messages = [OutboundMessage(f"+491575298221{i}", f"m{i}", key=str(i)) for i in range(3)]
    results = hook.send_messages(messages)
    assert [r.message_id for r in results] == ["1", "2", "3"]
    batches = [
        datajson(r)["smsdata"] for r in requests_mock.request_history if r.path.endswith("addalotofsms")
    ]
    assert [[row["customerid"] for row in rows] for rows in batches] == [[0, 1], [2]]


def test_send_batch_with_only_invalid_numbers_sends_nothing(hook, requests_mock):
    results = hook.send_batch([OutboundMessage("abc", "x", key="1")])
    assert requests_mock.call_count == 0
    assert [r.accepted for r in results] == [False]


def test_send_batch_without_sms_ids_reports_acceptance_without_ids(hook, requests_mock, gettoken):
    """The hook reports what the gateway said (accepted, ids unknown); the send engine looks the
    ids up (tests/campaign/test_send.py)."""
    requests_mock.post(f"{BASE}/addalotofsms", json={"error": 0, "message": "Saved 2"})
    messages = [OutboundMessage("+4915752982212", "a", key="1001"), OutboundMessage("+4915752982215", "d")]
    results = hook.send_batch(messages)
    assert paths(requests_mock) == ["gettoken", "addalotofsms"]
    assert [(r.accepted, r.message_id) for r in results] == [(True, None), (True, None)]


def test_send_batch_refuses_a_key_that_is_not_digits(hook, requests_mock):
    with pytest.raises(ValueError, match="customerid must be digits"):
        hook.send_batch([OutboundMessage("+4915752982212", "x", key="camp-1")])
    assert requests_mock.call_count == 0


def test_send_batch_refreshes_an_expired_token_inside_datajson(hook, requests_mock):
    requests_mock.post(
        f"{BASE}/gettoken", [{"json": {"error": 0, "token": TOKEN}}, {"json": {"error": 0, "token": TOKEN2}}]
    )
    requests_mock.post(
        f"{BASE}/addalotofsms", [{"json": TOKEN_ERROR}, {"json": {"error": 0, "sms_ids": [9]}}]
    )
    results = hook.send_batch([OutboundMessage("+4915752982212", "x", key="1")])
    assert [(r.accepted, r.message_id) for r in results] == [(True, "9")]
    assert paths(requests_mock) == ["gettoken", "addalotofsms", "gettoken", "addalotofsms"]
    assert [datajson(r)["token"] for r in requests_mock.request_history[1::2]] == [TOKEN, TOKEN2]


def test_a_lost_answer_to_addalotofsms_is_ambiguous_and_not_resent(hook, requests_mock, gettoken, sleeps):
    requests_mock.post(f"{BASE}/addalotofsms", exc=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(SmsAmbiguousSendError):
        hook.send_batch([OutboundMessage("+4915752982212", "x", key="1")])
    assert paths(requests_mock) == ["gettoken", "addalotofsms"]


def test_save_paket_formats_time_to_send_like_php(hook, requests_mock, gettoken):
    requests_mock.post(f"{BASE}/savepaket", json={"error": 0, "paket_id": 77, "message": "OK"})
    paket_id = hook.save_paket(
        "June news", "Sale!", [12, "13", 14], send_at=dt.datetime(2026, 6, 1, 7, 5, 9, tzinfo=UTC)
    )
    assert paket_id == "77"
    assert form(requests_mock.last_request) == {
        "token": TOKEN,
        "title": "June news",
        "body": "Sale!",
        "tags": "12,13,14",
        "device_id": "260",
        "sim": "1",
        "time_to_send": "01.06.2026 09:05:09",  # Europe/Berlin, PHP d.m.Y H:i:s
    }


def test_save_paket_without_time_is_sent_now(hook, requests_mock, gettoken):
    requests_mock.post(f"{BASE}/savepaket", json={"error": 0, "paket_id": 78})
    before = pendulum.now("UTC").replace(microsecond=0)
    hook.save_paket("now", "Hi", [1], device_id=1002, sim=0)
    after = pendulum.now("UTC")
    fields = form(requests_mock.last_request)
    sent_for = pendulum.from_format(fields["time_to_send"], "DD.MM.YYYY HH:mm:ss", tz="Europe/Berlin")
    assert before <= sent_for <= after  # the wire has whole seconds
    assert (fields["device_id"], fields["sim"]) == ("1002", "0")


# -------------------------------------------------------------------------------------------------
# Statuses


def test_get_all_sms_sends_every_filter(hook, requests_mock, gettoken):
    requests_mock.post(f"{BASE}/getallsms", json={"error": 0, "count": 0, "smss": []})
    reports = hook.get_all_sms(
        device_id=260,
        status=7,
        begindate=dt.datetime(2026, 5, 1, tzinfo=UTC),
        enddate=dt.datetime(2026, 5, 31, 21, 59, 59, tzinfo=UTC),
        sim=0,
        customer_id=1001,
        phone="+4915752982212",
        order_by_desc=True,
    )
    assert reports == []
    assert form(requests_mock.last_request) == {
        "token": TOKEN,
        "device_id": "260",
        "status": "7",
        "begindate": "2026-05-01 02:00:00",
        "enddate": "2026-05-31 23:59:59",
        "sim": "0",
        "customerid": "1001",
        "phone": "+4915752982212",
        "orderbydesc": "1",
        "timezone": "Europe/Berlin",
    }


def test_get_all_sms_parses_statuses_recipients_keys_and_dates(hook, requests_mock, gettoken):
    future = pendulum.now("Europe/Berlin").add(days=2).format("YYYY-MM-DD HH:mm:ss")
    requests_mock.post(
        f"{BASE}/getallsms",
        json={
            "error": 0,
            "count": 4,
            "smss": {
                "1": sms(1, 1, customerid=1001, timetosend=future),
                "2": sms(2, 1, timetosend="2020-01-01 10:00:00"),
                "3": sms(3, 7, sendto="+4917642111111", senttime="2026-05-29 17:22:00"),
                "4": sms(4, 42),
            },
        },
    )
    reports = hook.get_all_sms()
    assert form(requests_mock.last_request) == {"token": TOKEN, "timezone": "Europe/Berlin"}
    assert [(r.message_id, r.status, r.raw_status) for r in reports] == [
        ("1", DeliveryStatus.SCHEDULED, "1"),
        ("2", DeliveryStatus.QUEUED, "1"),
        ("3", DeliveryStatus.DELIVERED, "7"),
        ("4", DeliveryStatus.UNKNOWN, "42"),
    ]
    assert reports[0].key == "1001"
    assert reports[1].key is None
    assert reports[2].recipient == "+4917642111111"
    assert reports[2].body == "Hello!"
    assert reports[2].created_at == dt.datetime(2026, 5, 29, 15, 21, 27, tzinfo=UTC)
    assert reports[2].updated_at == dt.datetime(2026, 5, 29, 15, 22, tzinfo=UTC)


def test_count_sms_uses_onlycount(hook, requests_mock, gettoken):
    requests_mock.post(f"{BASE}/getallsms", json={"error": 0, "count": 42})
    assert hook.count_sms(status=8, device_id=260) == 42
    assert form(requests_mock.last_request) == {
        "token": TOKEN,
        "status": "8",
        "device_id": "260",
        "onlycount": "1",
        "timezone": "Europe/Berlin",
    }


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (1, "queued"),
        (3, "queued"),
        (2, "sending"),
        (5, "received"),
        (6, "sent"),
        (7, "delivered"),
        (8, "undelivered"),
        (9, "failed"),
        (10, "failed"),
        (11, "failed"),
        (12, "failed"),
        (100, "failed"),
        (101, "failed"),
    ],
)
def test_status_codes_map_as_in_gateways_md(code, expected):
    assert STATUS_MAP[str(code)].value == expected


def test_get_sms_status(hook, requests_mock, gettoken):
    requests_mock.post(
        f"{BASE}/getsmsstatus",
        json={"error": 0, "sms_id": 62807347, "status": 8, "status_description": "Not delivered"},
    )
    report = hook.get_sms_status(62807347)
    assert form(requests_mock.last_request) == {"token": TOKEN, "sms_id": "62807347"}
    assert (report.message_id, report.status, report.raw_status) == (
        "62807347",
        DeliveryStatus.UNDELIVERED,
        "8",
    )


def test_status_1_titled_new_as_the_real_service_answers_is_queued(hook, requests_mock, gettoken):
    """The live service titles 1 "New" (not "Pending"): the hook maps by code, the title is ignored."""
    requests_mock.post(
        f"{BASE}/getsmsstatus",
        json={"error": 0, "sms_id": 62807347, "status": 1, "status_description": "New", "message": "OK"},
    )
    report = hook.get_sms_status(62807347)
    assert (report.status, report.raw_status) == (DeliveryStatus.QUEUED, "1")
    requests_mock.post(
        f"{BASE}/getallsms", json={"error": 0, "count": 1, "smss": {"5": {**sms(5, 1), "statustitle": "New"}}}
    )
    assert [(r.status, r.raw_status) for r in hook.get_all_sms()] == [(DeliveryStatus.QUEUED, "1")]


def test_get_statuses_is_one_getallsms_from_since(hook, requests_mock, gettoken):
    requests_mock.post(
        f"{BASE}/getallsms",
        json={"error": 0, "smss": {"5": sms(5, 6), "6": sms(6, 9), "7": sms(7, 7)}},
    )
    found = hook.get_statuses(["5", "6", "8"], since=dt.datetime(2026, 5, 29, 10, tzinfo=UTC))
    assert {k: r.status for k, r in found.items()} == {"5": DeliveryStatus.SENT, "6": DeliveryStatus.FAILED}
    assert paths(requests_mock) == ["gettoken", "getallsms"]
    assert form(requests_mock.last_request) == {
        "token": TOKEN,
        "begindate": "2026-05-29 12:00:00",
        "timezone": "Europe/Berlin",
    }


def test_find_sent_with_since_is_one_listing(hook, requests_mock, gettoken):
    requests_mock.post(
        f"{BASE}/getallsms",
        json={"error": 0, "smss": {"5": sms(5, 6, customerid=11), "6": sms(6, 9, customerid=99)}},
    )
    messages = [OutboundMessage("+4915752982212", "x", key=k) for k in ("11", "12")]
    found = hook.find_sent(messages, since=dt.datetime(2026, 5, 29, tzinfo=UTC))
    assert {k: r.message_id for k, r in found.items()} == {"11": "5"}
    assert paths(requests_mock) == ["gettoken", "getallsms"]


def test_find_sent_without_since_asks_by_customerid(hook, requests_mock, gettoken):
    requests_mock.post(
        f"{BASE}/getallsms",
        [{"json": {"error": 0, "smss": {"5": sms(5, 7, customerid=11)}}}, {"json": {"error": 0, "smss": []}}],
    )
    messages = [OutboundMessage("+4915752982212", "x", key=k) for k in ("11", "12")]
    found = hook.find_sent(messages)
    assert {k: (r.message_id, r.status) for k, r in found.items()} == {"11": ("5", DeliveryStatus.DELIVERED)}
    lookups = [form(r) for r in requests_mock.request_history if r.path.endswith("getallsms")]
    assert lookups == [
        {"token": TOKEN, "customerid": "11", "timezone": "Europe/Berlin"},
        {"token": TOKEN, "customerid": "12", "timezone": "Europe/Berlin"},
    ]


# -------------------------------------------------------------------------------------------------
# Devices


def test_get_all_devices_returns_the_device_objects(hook, requests_mock, gettoken):
    requests_mock.post(
        f"{BASE}/getalldevices",
        json={
            "count": 2,
            "device": {"1576": {"id": 1576, "title": "Pixel"}, "1297": {"id": 1297, "title": "Moto"}},
        },
    )
    assert hook.get_all_devices() == [{"id": 1576, "title": "Pixel"}, {"id": 1297, "title": "Moto"}]
    assert form(requests_mock.last_request) == {"token": TOKEN}


def test_get_device_status_parses_last_seen(hook, requests_mock, gettoken):
    requests_mock.post(
        f"{BASE}/getdevicestatus",
        json={
            "error": 0,
            "device_id": 260,
            "title": "Pixel",
            "lastseen": {"date": "2020-04-23 17:02:21.000000", "timezone_type": 3, "timezone": "UTC"},
        },
    )
    assert hook.get_device_status() == {
        "device_id": "260",
        "title": "Pixel",
        "last_seen": dt.datetime(2020, 4, 23, 17, 2, 21, tzinfo=UTC),
    }
    assert form(requests_mock.last_request) == {"token": TOKEN, "device_id": "260"}
    hook.get_device_status(1576)
    assert form(requests_mock.last_request)["device_id"] == "1576"


# -------------------------------------------------------------------------------------------------
# Tags and contacts


def test_save_contact_sends_ctag_id_fullname_and_plus(hook, requests_mock, gettoken):
    requests_mock.post(f"{BASE}/savecontact", json={"error": 0, "contact_id": 15954765, "message": "ok"})
    assert hook.save_contact("0049 1575 2982212", 8303, "Ann Lee") == "15954765"
    assert form(requests_mock.last_request) == {
        "token": TOKEN,
        "phone": "+4915752982212",
        "ctag_id": "8303",
        "fullname": "Ann Lee",
    }


def test_create_list_is_savetag(hook, requests_mock, gettoken):
    requests_mock.post(f"{BASE}/savetag", json={"error": 0, "tag_id": 8303, "message": "OK"})
    assert hook.create_list("Employees") == "8303"
    assert form(requests_mock.last_request) == {"token": TOKEN, "title": "Employees"}


def test_upsert_contacts_saves_each_and_maps_rejects_to_their_rows(hook, requests_mock, gettoken):
    requests_mock.post(
        f"{BASE}/savecontact",
        [
            {"json": {"error": 0, "contact_id": 1, "message": "ok"}},
            {"json": {"error": 1, "message": "Phone is not valid"}},
            {"json": {"error": 0, "contact_id": 3, "message": "ok"}},
        ],
    )
    contacts = [
        Contact("+4915752982212", first_name="Ann", last_name="Lee"),
        Contact("+4915752982213"),
        Contact("12"),
        Contact("+4917642111111", first_name="Bob", contact_id="77"),  # an "update": saved again
    ]
    results = hook.upsert_contacts(contacts, "8303")
    assert [(r.contact, r.accepted, r.contact_id) for r in results] == [
        (contacts[0], True, "1"),
        (contacts[1], False, None),
        (contacts[2], False, None),
        (contacts[3], True, "3"),
    ]
    assert (results[1].error, results[1].error_code) == ("Phone is not valid", "1")
    assert results[2].error_code == "invalid_phone"
    saved = [form(r) for r in requests_mock.request_history if r.path.endswith("savecontact")]
    assert saved == [
        {"token": TOKEN, "phone": "+4915752982212", "ctag_id": "8303", "fullname": "Ann Lee"},
        {"token": TOKEN, "phone": "+4915752982213", "ctag_id": "8303", "fullname": ""},
        {"token": TOKEN, "phone": "+4917642111111", "ctag_id": "8303", "fullname": "Bob"},
    ]


def test_upsert_contacts_does_not_swallow_auth_errors(hook, requests_mock, gettoken):
    requests_mock.post(f"{BASE}/savecontact", json=TOKEN_ERROR)
    with pytest.raises(SmsAuthError):
        hook.upsert_contacts([Contact("+4915752982212")], "1")


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (lambda h: h.delete_contacts(["1"], "2"), "no endpoint to delete contacts"),
        (lambda h: h.list_contacts("2"), "no endpoint to list contacts"),
        (lambda h: h.find_list("Employees"), "no endpoint to list tags"),
    ],
)
def test_what_smsgateway24_cannot_do_says_so(hook, requests_mock, call, reason):
    with pytest.raises(NotImplementedError, match=reason):
        call(hook)
    assert requests_mock.call_count == 0


def test_a_5xx_answer_to_addalotofsms_is_ambiguous_not_retried(hook, requests_mock, gettoken, sleeps):
    requests_mock.post(f"{BASE}/addalotofsms", status_code=503, json={"error": 1, "message": "busy"})
    with pytest.raises(SmsAmbiguousSendError):
        hook.send_batch([OutboundMessage("+4915752982212", "x", key="1")])
    assert paths(requests_mock) == ["gettoken", "addalotofsms"]
    assert sleeps == []
