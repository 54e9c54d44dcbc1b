"""The three gateway hooks against a misbehaving gateway over real HTTP on loopback (issue 14):
unreadable answers, redirects, paging that never advances, trickled and oversized answers, 5xx
pages and a password in the host URL."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_sms.exceptions import (
    SmsAmbiguousSendError,
    SmsMalformedResponseError,
    SmsMalformedSendResponseError,
    SmsPagingError,
    SmsRedirectedSendError,
    SmsRedirectError,
    SmsTransientError,
)
from airflow_provider_sms.hooks.base import SmsGatewayHook
from airflow_provider_sms.hooks.smsgateway24 import SmsGateway24Hook
from airflow_provider_sms.hooks.smstools import SmstoolsHook
from airflow_provider_sms.hooks.textboost import TextBoostHook
from airflow_provider_sms.messages import OutboundMessage
from airflow_provider_sms.operators.lineage import gateway_dataset_id
from tests.support.hostile_server import HostileServer, Reply, Seen, run_hostile

GATEWAYS = ["smstools", "smsgateway24", "textboost"]
PAGED = ["smstools", "textboost"]  # SmsGateway24's getallsms is one answer, never paged
SINCE = datetime(2026, 1, 1, tzinfo=timezone.utc)  # a fixed look-up start: no wall clock
SG24_TOKEN = "sg24-session-token-5566778899"
HTML = "<html><body><h1>Scheduled maintenance</h1></body></html>"

SPECS: dict[str, dict[str, Any]] = {
    "smstools": {
        "hook": SmstoolsHook,
        "conn": {
            "login": "client-id-1",
            "password": "st-client-secret-9f8e7d6c",
            "extra": {"sender_id": "ACME"},
        },
        "send": "message/send",
        "list": "message/logging",
        "test": "balance",
        "sent": lambda n: {"messageids": [f"m{i}" for i in range(n)]},
        "test_ok": {"credits": "10.00", "currency": "EUR"},
    },
    "smsgateway24": {
        "hook": SmsGateway24Hook,
        "conn": {
            "login": "owner@example.com",
            "password": "sg24-account-pass-7a6b5c",
            "extra": {"device_id": 7},
        },
        "send": "addalotofsms",
        "list": "getallsms",
        "test": "gettoken",
        "sent": lambda n: {"error": 0, "message": "OK", "sms_ids": list(range(1, n + 1))},
        "test_ok": {"error": 0, "token": SG24_TOKEN},
    },
    "textboost": {
        "hook": TextBoostHook,
        "conn": {"password": "tb-api-token-0123456789abcdef", "extra": {"sender_id": "ACME"}},
        "send": "sms/send",
        "list": "sms",
        "test": "me",
        "sent": lambda n: {
            "status": "success",
            "data": [
                {"uid": f"u{i}", "to": f"49151{10_000_000 + i}", "status": "Delivered"} for i in range(n)
            ],
        },
        "test_ok": {"status": "success", "data": {"first_name": "Ann"}},
    },
}


def messages(n: int = 2) -> list[OutboundMessage]:
    return [OutboundMessage(to=f"+49151{10_000_000 + i}", body="Hello", key=str(1001 + i)) for i in range(n)]


def secrets_of(gateway: str) -> list[str]:
    conn = SPECS[gateway]["conn"]
    return [s for s in (conn.get("password"), SG24_TOKEN if gateway == "smsgateway24" else None) if s]


def make_hook(gateway: str, host: str, monkeypatch, **extra: Any) -> SmsGatewayHook:
    """A hook of ``gateway`` at ``host``, one attempt per call (no retries, no sleeps)."""
    spec = SPECS[gateway]
    conn = {**spec["conn"], "conn_type": gateway, "host": host}
    conn["extra"] = {**conn.get("extra", {}), **extra}
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    monkeypatch.setenv(f"AIRFLOW_CONN_HOSTILE_{gateway.upper()}", json.dumps(conn))
    return spec["hook"](f"hostile_{gateway}", max_attempts=1)


def serve_token(server: HostileServer, gateway: str) -> None:
    """SmsGateway24 fetches a token before any call: the hostile part is elsewhere."""
    if gateway == "smsgateway24":
        server.on("POST", "gettoken", Reply(body=json.dumps(SPECS[gateway]["test_ok"])))


@pytest.fixture
def server():
    with run_hostile() as hostile:
        yield hostile


@pytest.fixture
def other_host():
    """The host a redirect points to: it must never be reached."""
    with run_hostile() as hostile:
        yield hostile


def cut_json(gateway: str) -> str:
    text = json.dumps(SPECS[gateway]["sent"](2))
    return text[: len(text) // 2]


# -------------------------------------------------------------------------------------------------
# 2. An answer that cannot be read is not an acceptance


UNREADABLE = {
    "html": lambda g: HTML,
    "empty": lambda g: "",
    "null": lambda g: "null",
    "cut-off json": cut_json,
    "empty object": lambda g: "{}",
    "list": lambda g: "[1, 2]",
}


@pytest.mark.parametrize("kind", list(UNREADABLE))
@pytest.mark.parametrize("gateway", GATEWAYS)
def test_an_unreadable_send_answer_is_ambiguous_never_accepted(gateway, kind, server, monkeypatch):
    serve_token(server, gateway)
    server.on("POST", SPECS[gateway]["send"], Reply(body=UNREADABLE[kind](gateway)))
    hook = make_hook(gateway, server.url, monkeypatch)

    with pytest.raises(SmsMalformedSendResponseError) as caught:
        hook.send_batch(messages())

    assert isinstance(caught.value, SmsAmbiguousSendError)  # the operator looks the batch up
    assert caught.value.gateway == gateway
    assert SPECS[gateway]["send"] in str(caught.value)  # the endpoint is named
    assert len(server.requests_to(SPECS[gateway]["send"])) == 1
    assert not any(s in str(caught.value) for s in secrets_of(gateway))


def test_textboost_answer_with_fewer_message_objects_than_recipients_is_ambiguous(server, monkeypatch):
    answer = {"status": "success", "data": [{"uid": "u0", "to": "4915110000000", "status": "Sent"}]}
    server.on("POST", "sms/send", Reply(body=json.dumps(answer)))
    hook = make_hook("textboost", server.url, monkeypatch)

    with pytest.raises(SmsMalformedSendResponseError, match="fewer message objects"):
        hook.send_batch(messages(3))


@pytest.mark.parametrize("kind", ["html", "null", "cut-off json", "empty object"])
@pytest.mark.parametrize("gateway", GATEWAYS)
def test_an_unreadable_look_up_is_an_error_not_proof_of_absence(gateway, kind, server, monkeypatch):
    """find_sent decides what is sent again: an answer it cannot read must not read as 'none found'."""
    serve_token(server, gateway)
    server.on("*", SPECS[gateway]["list"], Reply(body=UNREADABLE[kind](gateway)))
    hook = make_hook(gateway, server.url, monkeypatch)

    with pytest.raises(SmsMalformedResponseError) as caught:
        hook.find_sent(messages(), since=SINCE)

    assert not isinstance(caught.value, SmsAmbiguousSendError)  # a read: nothing was sent
    assert caught.value.gateway == gateway
    assert SPECS[gateway]["list"] in str(caught.value)


# -------------------------------------------------------------------------------------------------
# 3. Redirects are never followed


def redirect_to(other: HostileServer, status: int) -> Reply:
    """A redirect to another host, with a password and a token in the Location."""
    target = (
        other.url.replace("http://", "http://thief:loc-password-31337@") + "/collect?token=loc-token-4242"
    )
    return Reply(status=status, headers={"Location": target}, body="")


def assert_unreached(other: HostileServer, error: Exception) -> None:
    assert other.seen == []  # no request, so no credential, reached the other host
    text = str(error)
    assert f"{other.url.removeprefix('http://')}/collect" in text  # the target is named...
    assert "loc-password-31337" not in text and "loc-token-4242" not in text  # ...without its secrets
    assert "thief" not in text


@pytest.mark.parametrize("status", [302, 307])
@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_redirected_send_is_not_followed_and_is_ambiguous(gateway, status, server, other_host, monkeypatch):
    serve_token(server, gateway)
    server.on("POST", SPECS[gateway]["send"], redirect_to(other_host, status))
    other_host.on("*", "collect", Reply(body=json.dumps(SPECS[gateway]["sent"](2))))
    hook = make_hook(gateway, server.url, monkeypatch)

    with pytest.raises(SmsRedirectedSendError) as caught:
        hook.send_batch(messages())

    assert isinstance(caught.value, SmsAmbiguousSendError)  # the first host may have stored it
    assert caught.value.status_code == status
    assert_unreached(other_host, caught.value)


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_redirected_read_is_not_followed(gateway, server, other_host, monkeypatch):
    serve_token(server, gateway)
    server.on("*", SPECS[gateway]["list"], redirect_to(other_host, 307))
    other_host.on("*", "collect", Reply(body="{}"))
    hook = make_hook(gateway, server.url, monkeypatch)

    with pytest.raises(SmsRedirectError) as caught:
        hook.find_sent(messages(), since=SINCE)

    assert not isinstance(caught.value, SmsAmbiguousSendError)
    assert_unreached(other_host, caught.value)


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_redirected_async_read_is_not_followed(gateway, server, other_host, monkeypatch):
    serve_token(server, gateway)
    server.on("*", SPECS[gateway]["list"], redirect_to(other_host, 307))
    other_host.on("*", "collect", Reply(body="{}"))
    hook = make_hook(gateway, server.url, monkeypatch)

    with pytest.raises(SmsRedirectError) as caught:
        asyncio.run(hook.aget_statuses(["m1"], since=SINCE))

    assert_unreached(other_host, caught.value)


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_test_connection_reports_a_redirect_without_following_it(gateway, server, other_host, monkeypatch):
    server.on("*", SPECS[gateway]["test"], redirect_to(other_host, 302))
    other_host.on("*", "collect", Reply(body=json.dumps(SPECS[gateway]["test_ok"])))
    hook = make_hook(gateway, server.url, monkeypatch)

    ok, text = hook.test_connection()

    assert not ok
    assert other_host.seen == []
    assert "redirects to" in text and "loc-password-31337" not in text


def test_smstosend_email_and_password_never_follow_a_redirect(server, other_host, monkeypatch):
    server.on("POST", "smstosend", redirect_to(other_host, 307))
    other_host.on("*", "collect", Reply(body=json.dumps({"error": 0, "sms_id": 99})))
    hook = make_hook("smsgateway24", server.url, monkeypatch)

    with pytest.raises(SmsRedirectedSendError) as caught:
        hook.sms_to_send("+4915110000000", "Hello")

    assert_unreached(other_host, caught.value)


# -------------------------------------------------------------------------------------------------
# 6. Paging that never advances is stopped


def stuck_page(gateway: str, seen: Seen) -> Reply:
    """The first page, whatever page is asked for (page numbers never advance)."""
    if gateway == "textboost":
        rows = [{"uid": "u1", "to": "4915110000000", "message": "Hi", "status": "Sent"}]
        page = {"current_page": 1, "data": rows, "next_page_url": "https://elsewhere.example/sms?page=2"}
        return Reply(body=json.dumps({"status": "success", "data": page}))
    limit = int(seen.query["limit"][0])  # a full page, and no total: "there may be more"
    return Reply(body=json.dumps({"messages": [{"ID": i, "message_ID": f"m{i}"} for i in range(limit)]}))


def endless_page(gateway: str, seen: Seen) -> Reply:
    """A different, full page for every page number asked (a listing with no end in sight)."""
    page = int(seen.query["page"][0])
    if gateway == "textboost":
        rows = [{"uid": f"u{page}", "to": "4915110000000", "message": "Hi", "status": "Sent"}]
        body = {"current_page": page, "last_page": 10**6, "data": rows}
        return Reply(body=json.dumps({"status": "success", "data": body}))
    limit = int(seen.query["limit"][0])
    rows = [{"ID": page * limit + i, "message_ID": f"m{page}-{i}"} for i in range(limit)]
    return Reply(body=json.dumps({"messages": rows}))


def bounded(server: HostileServer, gateway: str, page: Any, budget: int = 40):
    """``page``, until ``budget`` requests were made: then an empty last page, so that a hook that
    never stops by itself still ends (and the test fails on its assertions, not by hanging)."""

    def script(seen: Seen) -> Reply:
        if len(server.seen) > budget:
            empty = (
                {"status": "success", "data": {"data": []}} if gateway == "textboost" else {"messages": []}
            )
            return Reply(body=json.dumps(empty))
        return page(gateway, seen)

    return script


@pytest.mark.parametrize("gateway", PAGED)
def test_a_listing_whose_page_does_not_advance_stops_with_a_typed_error(gateway, server, monkeypatch):
    server.on("GET", SPECS[gateway]["list"], bounded(server, gateway, stuck_page))
    hook = make_hook(gateway, server.url, monkeypatch)

    with pytest.raises(SmsPagingError) as caught:
        list(hook.iter_statuses())

    assert len(server.seen) <= 3
    assert caught.value.gateway == gateway and SPECS[gateway]["list"] in str(caught.value)


@pytest.mark.parametrize("gateway", PAGED)
def test_an_async_listing_whose_page_does_not_advance_stops(gateway, server, monkeypatch):
    server.on("GET", SPECS[gateway]["list"], bounded(server, gateway, stuck_page))
    hook = make_hook(gateway, server.url, monkeypatch)

    async def read_all() -> list[Any]:
        return [report async for report in hook.aiter_statuses()]

    with pytest.raises(SmsPagingError):
        asyncio.run(read_all())
    assert len(server.seen) <= 3


@pytest.mark.parametrize("gateway", PAGED)
def test_max_pages_caps_a_listing_that_never_ends(gateway, server, monkeypatch):
    server.on("GET", SPECS[gateway]["list"], bounded(server, gateway, endless_page))
    hook = make_hook(gateway, server.url, monkeypatch, max_pages=5)

    with pytest.raises(SmsPagingError, match="more than 5 pages"):
        list(hook.iter_statuses())
    assert len(server.seen) == 5


# -------------------------------------------------------------------------------------------------
# 7. A deadline bounds the whole request; answers have a size cap


def trickled(body: Any, *, headers: bool = False) -> Reply:
    # ~25 s of answer at a byte per 0.25 s: each read is quick, the whole is far beyond the deadline.
    text = json.dumps(body) + " " * 100
    return Reply(body=text, trickle=0.25, trickle_headers=headers)


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_trickled_send_answer_hits_the_deadline_and_is_ambiguous(gateway, server, monkeypatch):
    serve_token(server, gateway)
    server.on("POST", SPECS[gateway]["send"], trickled(SPECS[gateway]["sent"](2)))
    hook = make_hook(gateway, server.url, monkeypatch, timeout=2, deadline=2)

    started = time.monotonic()
    with pytest.raises(SmsAmbiguousSendError, match="deadline"):
        hook.send_batch(messages())
    assert time.monotonic() - started < 10  # stopped, not read to its end


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_trickled_headers_hit_the_deadline_too(gateway, server, monkeypatch):
    serve_token(server, gateway)
    server.on("*", SPECS[gateway]["list"], trickled({"messages": []}, headers=True))
    hook = make_hook(gateway, server.url, monkeypatch, timeout=2, deadline=2)

    started = time.monotonic()
    with pytest.raises(SmsTransientError, match="deadline") as caught:
        hook.find_sent(messages(), since=SINCE)
    assert time.monotonic() - started < 10
    assert not isinstance(caught.value, SmsAmbiguousSendError)  # a read, safe to retry


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_trickled_async_answer_hits_the_deadline(gateway, server, monkeypatch):
    serve_token(server, gateway)
    server.on("*", SPECS[gateway]["list"], trickled({"messages": []}))
    hook = make_hook(gateway, server.url, monkeypatch, timeout=2, deadline=2)

    started = time.monotonic()
    with pytest.raises(SmsTransientError, match="deadline"):
        asyncio.run(hook.aget_statuses(["m1"], since=SINCE))
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("gateway", GATEWAYS)
def test_an_answer_over_max_response_bytes_is_refused(gateway, chunked, server, monkeypatch):
    serve_token(server, gateway)
    huge = json.dumps({**SPECS[gateway]["sent"](2), "padding": "x" * 200_000})
    server.on("POST", SPECS[gateway]["send"], Reply(body=huge, chunked=chunked))
    hook = make_hook(gateway, server.url, monkeypatch, max_response_bytes=100_000)

    with pytest.raises(SmsMalformedSendResponseError, match="larger than 100000 bytes"):
        hook.send_batch(messages())


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_an_async_answer_over_max_response_bytes_is_refused(gateway, server, monkeypatch):
    serve_token(server, gateway)
    server.on("*", SPECS[gateway]["list"], Reply(body=json.dumps({"padding": "x" * 200_000}), chunked=True))
    hook = make_hook(gateway, server.url, monkeypatch, max_response_bytes=100_000)

    with pytest.raises(SmsMalformedResponseError, match="larger than"):
        asyncio.run(hook.aget_statuses(["m1"], since=SINCE))


# -------------------------------------------------------------------------------------------------
# 12. A 5xx page keeps the endpoint; a password in the host URL stays secret


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_5xx_page_names_the_endpoint_and_the_page(gateway, server, monkeypatch):
    serve_token(server, gateway)
    server.on(
        "*",
        SPECS[gateway]["list"],
        Reply(status=502, body="Bad Gateway from the proxy", content_type="text/plain"),
    )
    hook = make_hook(gateway, server.url, monkeypatch)

    with pytest.raises(SmsTransientError) as caught:
        hook.find_sent(messages(), since=SINCE)

    text = str(caught.value)
    assert "HTTP 502 on" in text and SPECS[gateway]["list"] in text and "Bad Gateway from the proxy" in text


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_password_in_the_host_url_is_masked_and_never_shown(gateway, server, monkeypatch):
    masked: list[str] = []
    monkeypatch.setattr("airflow_provider_sms.hooks.base.mask_secret", masked.append)
    server.on("*", SPECS[gateway]["test"], Reply(body=json.dumps(SPECS[gateway]["test_ok"])))
    host = server.url.replace("http://", "http://user:s3cretpassword@")
    hook = make_hook(gateway, host, monkeypatch)

    ok, text = hook.test_connection()
    namespace, _ = gateway_dataset_id(hook.gateway, hook.base_url)

    assert ok, text
    assert server.url.removeprefix("http://") in text  # the host is still shown
    assert "s3cretpassword" not in text and "s3cretpassword" not in namespace
    assert namespace == f"{gateway}://{server.url.removeprefix('http://')}"
    assert "s3cretpassword" in masked
    assert hook.scrub(f"failed at {host}") == f"failed at {host.replace('s3cretpassword', '***')}"
