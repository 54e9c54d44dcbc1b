"""Replies read through the hooks from the sandbox gateway: ``iter_replies`` on all three gateways
(injected and simulated replies, paging, ``since``) and the Smstools opt-out list."""

from __future__ import annotations

import datetime as dt
import json

import pendulum
import pytest

from airflow_provider_sms.hooks import get_gateway_hook
from airflow_provider_sms.hooks.smstools import SmstoolsHook
from airflow_provider_sms.messages import InboundMessage, OutboundMessage
from airflow_provider_sms.sandbox import replies
from tests.support.replies import ALL_IN, numbers

pytestmark = pytest.mark.integration

GATEWAYS = ["smstools", "smsgateway24", "textboost"]
# Where a reply to the connection's sender id "ACME" (or from SmsGateway24's device 1001) arrives.
OUR_SIDE = {"smstools": "+3197010240000", "smsgateway24": "1001", "textboost": "+3197010250000"}
# Smstools and SmsGateway24 write reply times to the second.
PRECISION = {"smstools": 1, "smsgateway24": 1, "textboost": 1e-6}


def _now(sandbox) -> dt.datetime:
    return pendulum.parse(sandbox.health()["now"])


def _truncated(moment: dt.datetime, gateway: str) -> dt.datetime:
    if PRECISION[gateway] == 1:
        return moment.replace(microsecond=0)
    return moment


def _expected(sandbox, gateway: str) -> list[InboundMessage]:
    """What the sandbox says arrived at ``gateway``, as the hook should read it."""
    return [
        InboundMessage(
            gateway=gateway,
            message_id=str(row["id"]),
            sender=row["from"],
            recipient=row["to"],
            text=row["text"],
            received_at=_truncated(pendulum.parse(row["received_at"]), gateway),
        )
        for row in sandbox.replies(gateway)
        if row["arrived"]
    ]


def _requests(sandbox, gateway: str, endpoint: str) -> int:
    return sandbox.request_count(gateway, path_contains=endpoint)


LISTING = {
    "smstools": "/v1/message/inbox",
    "smsgateway24": "/getdata/getallsms",
    "textboost": "GET /api/v3/sms",
}


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_simulated_and_injected_replies_are_read_with_their_ids_numbers_and_times(
    gateway, frozen_sandbox, sms_conn_env
):
    sandbox = frozen_sandbox  # "none yet" must not depend on how fast the machine is
    hook = get_gateway_hook(sms_conn_env[gateway])
    stoppers, talkers, silent = numbers("stop", 2), numbers("text", 1), numbers(None, 2)
    audience = [*stoppers, *talkers, *silent]
    sent = hook.send_messages(
        [
            OutboundMessage(n, "Sale today, reply STOP to opt out", key=str(i + 1))
            for i, n in enumerate(audience)
        ]
    )
    assert all(r.accepted for r in sent)
    start = _now(sandbox)
    earlier = (start - dt.timedelta(hours=1)).isoformat()
    injected = sandbox.inject_reply(gateway, "+4917612345678", "Stopp!", received_at=earlier)
    assert list(hook.iter_replies(start)) == []  # the simulated ones come after delivery

    sandbox.advance(ALL_IN)
    read = list(hook.iter_replies())
    assert read == _expected(sandbox, gateway)
    assert read[0].message_id == str(injected["id"]) and read[0].text == "Stopp!"
    by_sender = {r.sender: r for r in read}
    assert set(by_sender) == {"+4917612345678", *stoppers, *talkers}  # the silent ones wrote nothing
    assert {replies.keyword(by_sender[n].text) for n in stoppers} == {replies.STOP}
    assert replies.keyword(by_sender[talkers[0]].text) is None
    assert {r.recipient for r in read} == {OUR_SIDE[gateway]}
    assert all(start < r.received_at <= _now(sandbox) for r in read[1:])

    recent = list(hook.iter_replies(start))
    assert recent == read[1:]  # since leaves out the reply of an hour before
    assert list(hook.iter_replies(start.naive())) == recent  # a naive since is UTC
    assert list(hook.iter_replies(_now(sandbox) + dt.timedelta(seconds=1))) == []


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_replies_are_read_over_several_pages(gateway, sandbox, sms_conn_env, monkeypatch):
    hook = get_gateway_hook(sms_conn_env[gateway])
    monkeypatch.setattr("airflow_provider_sms.hooks.smstools.PAGE_LIMIT", 2)
    hook.page_size = 2  # TextBoost's per_page
    hook.send_messages([OutboundMessage(n, "Hello") for n in numbers(None, 3)])  # outbound, no reply
    senders = [f"+4917612345{i:03d}" for i in range(5)]
    for i, sender in enumerate(senders):
        sandbox.inject_reply(gateway, sender, f"reply {i}")

    read = list(hook.iter_replies())
    assert [r.sender for r in read] == senders
    assert read == _expected(sandbox, gateway)
    # 5 replies in pages of 2 (TextBoost: among the 3 messages sent, 8 in all); getallsms is one answer
    assert (
        _requests(sandbox, gateway, LISTING[gateway])
        == {"smstools": 3, "smsgateway24": 1, "textboost": 4}[gateway]
    )


def test_textboost_reads_only_the_pages_since_reaches(sandbox, sms_conn_env):
    hook = get_gateway_hook(sms_conn_env["textboost"])
    hook.page_size = 5
    # one request, so one creation time, per text: the first page shows the listing's order
    hook.send_messages([OutboundMessage(n, f"Old news {i}") for i, n in enumerate(numbers(None, 30))])
    sandbox.inject_reply("textboost", "+4917612345000", "old reply")
    sandbox.advance(3600)
    since = _now(sandbox)
    sandbox.inject_reply("textboost", "+4917612345001", "STOP")
    sandbox.inject_reply("textboost", "+4917612345002", "Thanks")

    assert [r.text for r in hook.iter_replies(since)] == ["STOP", "Thanks"]
    # 33 messages in 7 pages, oldest first: page 1 shows the order, the last page holds the recent
    # replies and starts with an older message, so no other page is read
    assert _requests(sandbox, "textboost", "GET /api/v3/sms") == 2


def test_smstools_reply_times_follow_the_accounts_timezone(sandbox, sms_conn_env, monkeypatch):
    sandbox.set_timezone("America/New_York", "smstools")
    conn = {
        "conn_type": "smstools",
        "host": sandbox.url,
        "login": "sandbox-client-id",
        "password": "sandbox-client-secret-0123456789",
        "extra": {"timezone": "America/New_York"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SMSTOOLS_NEW_YORK", json.dumps(conn))
    when = (_now(sandbox) - dt.timedelta(days=10)).replace(microsecond=0)
    injected = sandbox.inject_reply("smstools", "+4917612345678", "STOP", received_at=when.isoformat())
    (reply,) = SmstoolsHook("smstools_new_york").iter_replies()
    assert reply.received_at == when
    assert reply.message_id == str(injected["id"])


def test_smstools_opt_out_list_holds_who_replied_stop(frozen_sandbox, sms_conn_env):
    sandbox = frozen_sandbox
    hook = get_gateway_hook(sms_conn_env["smstools"])
    assert hook.capabilities.opt_out_list
    stoppers, talkers = numbers("stop", 3), numbers("text", 2)
    hook.send_messages([OutboundMessage(n, "Sale") for n in [*stoppers, *talkers]])
    assert list(hook.iter_gateway_opt_outs()) == []
    sandbox.advance(ALL_IN)
    opted = dict(hook.iter_gateway_opt_outs())
    assert set(opted) == set(stoppers)
    stop_times = {r.sender: r.received_at for r in hook.iter_replies() if r.sender in stoppers}
    assert opted == stop_times  # each since its STOP reply
    sandbox.inject_reply("smstools", stoppers[0], "START")
    assert set(dict(hook.iter_gateway_opt_outs())) == set(stoppers[1:])

    for gateway in ("smsgateway24", "textboost"):
        other = get_gateway_hook(sms_conn_env[gateway])
        assert not other.capabilities.opt_out_list
        with pytest.raises(NotImplementedError):
            list(other.iter_gateway_opt_outs())
