"""The shared hook core, exercised through a minimal gateway against requests-mock."""

from __future__ import annotations

import json
import logging

import pendulum
import pytest
import requests

from airflow_provider_sms import __version__
from airflow_provider_sms.exceptions import (
    SmsAmbiguousSendError,
    SmsAuthError,
    SmsRateLimitError,
    SmsTransientError,
    SmsValidationError,
)
from airflow_provider_sms.hooks.base import Call, SmsGatewayHook, _RateLimiter, chunked
from airflow_provider_sms.messages import Contact, DeliveryStatus, InvalidPhoneNumberError

SECRET = "client-secret-abcdef123456"
BASE = "https://api.example.test"


class DemoHook(SmsGatewayHook):
    """The smallest gateway: header auth, an envelope with "error", a balance endpoint."""

    conn_type = "demo"
    default_conn_name = "demo_default"
    gateway = "demo"
    default_base_url = BASE

    def _authorize(self, call: Call) -> Call:
        return Call(**{**call.__dict__, "headers": {**call.headers, "X-Secret": self.connection.password}})

    def _raise_for_envelope(self, call, status, payload):
        if isinstance(payload, dict) and payload.get("error"):
            raise SmsValidationError(payload.get("errorMsg", ""), code=payload["error"])

    def _test_call(self) -> Call:
        return Call("GET", "/v1/balance")


@pytest.fixture
def sleeps(monkeypatch):
    """Record tenacity's waits instead of sleeping."""
    waits: list[float] = []
    monkeypatch.setattr("tenacity.nap.time.sleep", waits.append)
    return waits


@pytest.fixture
def hook(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEMO_DEFAULT",
        json.dumps({"conn_type": "demo", "host": BASE, "login": "client-id-1234", "password": SECRET}),
    )
    return DemoHook()


SEND = Call("POST", "/v1/message/send", json={"to": "4915123456789"}, creates_messages=True)
BALANCE = Call("GET", "/v1/balance")


def test_retry_after_is_honoured_on_429(hook, requests_mock, sleeps):
    requests_mock.get(
        f"{BASE}/v1/balance",
        [
            {"status_code": 429, "headers": {"Retry-After": "1"}, "json": {"message": "slow down"}},
            {"status_code": 200, "json": {"credits": "12.5"}},
        ],
    )
    assert hook.request(BALANCE) == {"credits": "12.5"}
    assert requests_mock.call_count == 2
    assert sleeps == [1.0]


def test_429_on_a_send_is_retried_because_it_was_not_processed(hook, requests_mock, sleeps):
    requests_mock.post(
        f"{BASE}/v1/message/send",
        [{"status_code": 429, "headers": {"Retry-After": "2"}}, {"json": {"messageid": "m1"}}],
    )
    assert hook.request(SEND) == {"messageid": "m1"}
    assert sleeps == [2.0]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_on_reads_are_retried_with_backoff(hook, requests_mock, sleeps, status):
    requests_mock.get(f"{BASE}/v1/balance", [{"status_code": status}, {"json": {"credits": "1"}}])
    assert hook.request(BALANCE) == {"credits": "1"}
    assert len(sleeps) == 1
    assert 0 < sleeps[0] <= 30


def test_retries_stop_after_max_attempts(hook, requests_mock, sleeps):
    requests_mock.get(f"{BASE}/v1/balance", status_code=503)
    with pytest.raises(SmsTransientError) as info:
        hook.request(BALANCE)
    assert requests_mock.call_count == 5
    assert len(sleeps) == 4
    assert all(0 < s <= 30 for s in sleeps)
    assert info.value.status_code == 503


def test_400_is_not_retried_and_raises_validation_error(hook, requests_mock, sleeps):
    requests_mock.get(f"{BASE}/v1/balance", status_code=400, json={"errorMsg": "limit must be <= 2000"})
    with pytest.raises(SmsValidationError, match="limit must be <= 2000") as info:
        hook.request(BALANCE)
    assert requests_mock.call_count == 1
    assert sleeps == []
    assert info.value.status_code == 400
    assert info.value.gateway == "demo"


def test_gateway_error_envelope_on_http_200_carries_code_and_message(hook, requests_mock):
    requests_mock.post(
        f"{BASE}/v1/message/send", json={"error": 103, "errorMsg": "Phone number 49 is not valid"}
    )
    with pytest.raises(SmsValidationError) as info:
        hook.request(SEND)
    assert info.value.code == 103
    assert "Phone number 49 is not valid" in str(info.value)


@pytest.mark.parametrize("status", [401, 403])
def test_401_raises_auth_error(hook, requests_mock, status):
    requests_mock.get(f"{BASE}/v1/balance", status_code=status, json={"message": "Unauthenticated."})
    with pytest.raises(SmsAuthError, match="Unauthenticated"):
        hook.request(BALANCE)
    assert requests_mock.call_count == 1


def test_connection_error_on_a_send_is_ambiguous_not_retried(hook, requests_mock, sleeps):
    requests_mock.post(
        f"{BASE}/v1/message/send", exc=requests.exceptions.ConnectionError("Connection aborted.")
    )
    with pytest.raises(SmsAmbiguousSendError, match="may have stored"):
        hook.request(SEND)
    assert requests_mock.call_count == 1
    assert sleeps == []


@pytest.mark.parametrize("exc", [requests.exceptions.ReadTimeout, requests.exceptions.ChunkedEncodingError])
def test_lost_answer_on_a_send_is_ambiguous(hook, requests_mock, exc):
    requests_mock.post(f"{BASE}/v1/message/send", exc=exc("read timed out"))
    with pytest.raises(SmsAmbiguousSendError):
        hook.request(SEND)
    assert requests_mock.call_count == 1


def test_5xx_on_a_send_is_ambiguous_not_retried(hook, requests_mock, sleeps):
    requests_mock.post(f"{BASE}/v1/message/send", status_code=502)
    with pytest.raises(SmsAmbiguousSendError):
        hook.request(SEND)
    assert requests_mock.call_count == 1
    assert sleeps == []


def test_connect_timeout_on_a_send_is_retried_because_nothing_left(hook, requests_mock, sleeps):
    requests_mock.post(
        f"{BASE}/v1/message/send",
        [{"exc": requests.exceptions.ConnectTimeout("connect timed out")}, {"json": {"messageid": "m1"}}],
    )
    assert hook.request(SEND) == {"messageid": "m1"}
    assert requests_mock.call_count == 2


def test_connection_error_on_a_read_is_retried(hook, requests_mock, sleeps):
    requests_mock.get(
        f"{BASE}/v1/balance",
        [{"exc": requests.exceptions.ConnectionError("reset")}, {"json": {"credits": "3"}}],
    )
    assert hook.request(BALANCE) == {"credits": "3"}


def test_rate_limit_error_keeps_retry_after(hook, requests_mock, sleeps):
    requests_mock.get(f"{BASE}/v1/balance", status_code=429, headers={"Retry-After": "7"})
    with pytest.raises(SmsRateLimitError) as info:
        hook.request(BALANCE)
    assert info.value.retry_after == 7.0
    assert sleeps == [7.0] * 4


def test_secret_never_appears_in_logs_or_exception_text(hook, requests_mock, sleeps, caplog):
    caplog.set_level(logging.DEBUG)
    requests_mock.get(
        f"{BASE}/v1/balance",
        [
            {"status_code": 503, "json": {"message": f"upstream rejected secret {SECRET}"}},
            {"status_code": 401, "json": {"message": f"bad credentials {SECRET}"}},
        ],
    )
    with pytest.raises(SmsAuthError) as info:
        hook.request(BALANCE)
    assert requests_mock.last_request.headers["X-Secret"] == SECRET  # it was really sent...
    assert SECRET not in str(info.value)  # ...but never shown
    assert SECRET not in repr(info.value.args)
    assert "***" in str(info.value)
    assert caplog.records, "the retry was logged"
    assert SECRET not in caplog.text
    ok, message = hook.test_connection()
    assert not ok
    assert SECRET not in message


def test_user_agent_names_the_provider_version(hook, requests_mock):
    requests_mock.get(f"{BASE}/v1/balance", json={})
    hook.request(BALANCE)
    assert requests_mock.last_request.headers["User-Agent"] == f"airflow-provider-sms/{__version__}"


def test_timeouts_come_from_the_connection(monkeypatch, requests_mock):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEMO_SLOW",
        json.dumps({"conn_type": "demo", "host": BASE, "password": SECRET, "extra": {"timeout": 60}}),
    )
    requests_mock.get(f"{BASE}/v1/balance", json={})
    hook = DemoHook("demo_slow")
    hook.request(BALANCE)
    assert requests_mock.last_request.timeout == (10.0, 60.0)
    assert DemoHook("demo_slow", timeout=(1, 2)).timeout == (1.0, 2.0)


def test_test_connection_reports_success(hook, requests_mock):
    requests_mock.get(f"{BASE}/v1/balance", json={"credits": "1"})
    ok, message = hook.test_connection()
    assert ok
    assert BASE in message


@pytest.mark.parametrize(
    ("conn", "default_path", "expected"),
    [
        ({}, "", BASE),
        ({"host": "http://127.0.0.1:8025"}, "", "http://127.0.0.1:8025"),
        ({"host": "http://127.0.0.1:8025"}, "/getdata/", "http://127.0.0.1:8025/getdata"),
        ({"host": "https://gw.example/custom/"}, "/getdata/", "https://gw.example/custom"),
        ({"host": "gw.example", "port": 8443}, "", "https://gw.example:8443"),
    ],
)
def test_base_url_from_connection_host(monkeypatch, conn, default_path, expected):
    monkeypatch.setenv("AIRFLOW_CONN_DEMO_URL", json.dumps({"conn_type": "demo", **conn}))
    hook = DemoHook("demo_url")
    monkeypatch.setattr(DemoHook, "default_path", default_path)
    assert hook.base_url == expected


def test_pagination_is_lazy_and_follows_pages(hook, requests_mock):
    for page in (1, 2, 3):
        requests_mock.get(
            f"{BASE}/v1/items?page={page}", json={"items": [page * 10, page * 10 + 1], "last": page == 3}
        )

    def parse(payload, call):
        return payload["items"], None if payload["last"] else hook.with_params(
            call, page=call.params["page"] + 1
        )

    pages = hook.paginate(Call("GET", "/v1/items", params={"page": 1}), parse)
    assert requests_mock.call_count == 0
    assert next(pages) == 10
    assert requests_mock.call_count == 1
    assert list(pages) == [11, 20, 21, 30, 31]
    assert requests_mock.call_count == 3


def test_rate_limiter_spaces_calls():
    limiter = _RateLimiter(10)
    waits = [limiter.reserve() for _ in range(3)]
    assert waits[0] == 0
    assert 0.09 < waits[1] <= 0.1
    assert 0.19 < waits[2] <= 0.2
    assert _RateLimiter(None).reserve() == 0


def test_chunked():
    assert list(chunked(range(5), 2)) == [[0, 1], [2, 3], [4]]
    assert list(chunked([], 3)) == []


def test_format_time_uses_the_connection_timezone(monkeypatch):
    import datetime as dt

    monkeypatch.setenv(
        "AIRFLOW_CONN_DEMO_TZ",
        json.dumps({"conn_type": "demo", "password": SECRET, "extra": {"timezone": "Europe/Berlin"}}),
    )
    hook = DemoHook("demo_tz")
    moment = dt.datetime(2026, 5, 29, 15, 21, 27, tzinfo=dt.timezone.utc)
    assert hook.format_time(moment) == "2026-05-29 17:21:27"
    assert hook.format_time(moment, "DD.MM.YYYY H:mm:ss") == "29.05.2026 17:21:27"
    assert hook.format_time(dt.datetime(2026, 1, 2, 3, 4)) == "2026-01-02 04:04:00"  # naive = UTC
    # a naive pendulum DateTime is UTC too (pendulum.instance(tz="UTC") used to leave it naive)
    assert hook.format_time(pendulum.naive(2026, 1, 2, 3, 4)) == "2026-01-02 04:04:00"
    assert hook.parse_time({"date": "2026-05-29 17:21:27.000000", "timezone": "Europe/Berlin"}) == moment


def test_non_idempotent_create_is_not_retried_after_it_left(hook, requests_mock, sleeps):
    requests_mock.post(f"{BASE}/v1/contact", [{"status_code": 502}, {"json": {"ID": [1]}}])
    with pytest.raises(SmsTransientError):
        hook.request(Call("POST", "/v1/contact", json={"phone": "1"}, idempotent=False))
    assert requests_mock.call_count == 1
    assert sleeps == []


def test_non_idempotent_create_is_retried_when_it_never_left(hook, requests_mock, sleeps):
    requests_mock.post(f"{BASE}/v1/contact", [{"status_code": 429}, {"json": {"ID": [1]}}])
    assert hook.request(Call("POST", "/v1/contact", json={"phone": "1"}, idempotent=False)) == {"ID": [1]}
    assert requests_mock.call_count == 2


# -------------------------------------------------------------------------------------------------
# The shared batch and contact helpers


def test_a_gateway_connection_type_and_default_connection_come_from_its_name():
    class OtherHook(SmsGatewayHook):
        gateway = "other"

    assert (OtherHook.conn_type, OtherHook.default_conn_name) == ("other", "other_default")
    assert (DemoHook.conn_type, DemoHook.default_conn_name) == ("demo", "demo_default")


def test_report_maps_the_raw_status_and_reads_the_wire_values(hook):
    hook.status_map = {"ok": DeliveryStatus.DELIVERED}
    report = hook.report(7, "OK", recipient="31612345678", key="", body="Hi", created="2026-05-29 17:21")
    assert (report.message_id, report.status, report.raw_status) == ("7", DeliveryStatus.DELIVERED, "OK")
    assert (report.recipient, report.key, report.body) == ("+31612345678", None, "Hi")
    assert report.created_at.isoformat() == "2026-05-29T17:21:00+00:00"
    assert report.updated_at is None
    forced = hook.report("8", None, status=DeliveryStatus.SCHEDULED, key=12)
    assert (forced.status, forced.raw_status, forced.key, forced.recipient) == (
        DeliveryStatus.SCHEDULED,
        None,
        "12",
        None,
    )


def test_phone_rows_leave_out_and_reject_the_numbers_that_cannot_be_normalised(hook):
    results: list = [None, None, None]
    rows = hook.phone_rows(["+31612345678", "nope", "+31612345679"], hook.wire_phone, _rejected, results)
    assert rows == [(0, "31612345678"), (2, "31612345679")]
    assert results[0] is None and results[2] is None
    assert results[1][0] == "nope" and results[1][1]


def _rejected(item, error):
    return (item, error)


def test_write_contact_maps_invalid_numbers_and_refusals_and_raises_the_rest():
    contact = Contact(phone="+31612345678")

    def fail(exc):
        def write():
            raise exc

        return write

    assert SmsGatewayHook.write_contact(contact, lambda: "c1").contact_id == "c1"
    invalid = SmsGatewayHook.write_contact(contact, fail(InvalidPhoneNumberError("12", "too short")))
    assert (invalid.accepted, invalid.error, invalid.error_code) == (
        False,
        "invalid phone number '12': too short",
        "invalid_phone",
    )
    refused = SmsGatewayHook.write_contact(contact, fail(SmsValidationError("taken", code=120)))
    assert (refused.accepted, refused.error, refused.error_code) == (False, "taken", "120")
    uncoded = SmsGatewayHook.write_contact(contact, fail(SmsValidationError("taken")))
    assert uncoded.error_code is None
    by_status = SmsGatewayHook.write_contact(
        contact, fail(SmsValidationError("gone", status_code=404)), lambda exc: str(exc.status_code)
    )
    assert by_status.error_code == "404"
    with pytest.raises(SmsAuthError):
        SmsGatewayHook.write_contact(contact, fail(SmsAuthError("no")))


def test_delete_each_counts_a_404_as_deleted_and_raises_other_refusals():
    deleted: list[str] = []

    def delete(item_id):
        if item_id == "gone":
            raise SmsValidationError("not found", status_code=404)
        if item_id == "locked":
            raise SmsValidationError("locked", status_code=422)
        deleted.append(item_id)

    SmsGatewayHook.delete_each(["a", "gone", "b"], delete)
    assert deleted == ["a", "b"]
    with pytest.raises(SmsValidationError, match="locked"):
        SmsGatewayHook.delete_each(["locked"], delete)
