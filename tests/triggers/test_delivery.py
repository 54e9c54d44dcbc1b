"""SmsDeliveryTrigger against the sandbox gateway, over real HTTP (aiohttp)."""

from __future__ import annotations

import asyncio
import json
import os
from types import SimpleNamespace

import pendulum
import pytest
from airflow.sdk.module_loading import import_string

from airflow_provider_sms.hooks import get_gateway_hook
from airflow_provider_sms.messages import OutboundMessage
from airflow_provider_sms.operators.send import SmsBulkSendOperator
from airflow_provider_sms.triggers.delivery import SmsDeliveryTrigger

GATEWAYS = ["smstools", "smsgateway24", "textboost"]
# The sandbox's outcomes: numbers ending 13 are undelivered, 66 failed, the rest delivered.
NUMBERS = [
    "+4915110000001",
    "+4915110000002",
    "+4915110000003",
    "+4915110000004",
    "+4915110000013",
    "+4915110000066",
]
OUTCOMES = {"delivered": 4, "failed": 1, "undelivered": 1}
LISTING = {"smstools": "message/logging", "smsgateway24": "getallsms", "textboost": "GET /api/v3/sms"}


def send(conn_id: str, numbers=NUMBERS, **kwargs) -> list[str]:
    hook = get_gateway_hook(conn_id)
    results = hook.send_messages(
        [OutboundMessage(to=n, body="Your parcel is on its way", sender="Shop", **kwargs) for n in numbers]
    )
    assert all(r.accepted and r.message_id for r in results)
    return [r.message_id for r in results]


async def events_of(trigger: SmsDeliveryTrigger) -> list[dict]:
    """Every event the trigger yields (run to its end)."""
    return [event.payload async for event in trigger.run()]


def after_the_first_poll(monkeypatch: pytest.MonkeyPatch, action) -> None:
    """Run ``action`` (e.g. move the sandbox clock) once the trigger's first status poll has its
    answer and before it polls again: an event, not a delay, so a slow machine cannot poll late."""
    from airflow_provider_sms.triggers import delivery

    real = delivery.aget_gateway_hook

    async def hook_that_acts_after_one_poll(conn_id: str):
        hook = await real(conn_id)
        poll, polled = hook.aget_status_values, []

        async def aget_status_values(*args, **kwargs):
            answer = await poll(*args, **kwargs)
            if not polled:
                polled.append(True)
                await asyncio.to_thread(action)
            return answer

        hook.aget_status_values = aget_status_values
        return hook

    monkeypatch.setattr(delivery, "aget_gateway_hook", hook_that_acts_after_one_poll)


def test_serialises_and_round_trips():
    trigger = SmsDeliveryTrigger(
        sms_conn_id="smstools_default",
        campaign_key="autumn",
        ledger_conn_id="warehouse",
        ledger_table="marketing.sms_messages",
        since=pendulum.datetime(2026, 11, 23, 8),
        poll_interval=5,
        max_poll_interval=60,
        timeout_at=pendulum.datetime(2026, 11, 23, 20),
        min_final_ratio=0.95,
        max_failed_ratio=0.2,
    )
    classpath, kwargs = trigger.serialize()

    assert classpath == "airflow_provider_sms.triggers.delivery.SmsDeliveryTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs  # plain JSON: the metadata DB stores it
    assert kwargs["timeout_at"] == "2026-11-23T20:00:00+00:00"
    again = import_string(classpath)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    ids = SmsDeliveryTrigger(sms_conn_id="c", message_ids=[1, "2"]).serialize()[1]["message_ids"]
    assert ids == ["1", "2"]


def test_needs_exactly_one_source_of_message_ids():
    with pytest.raises(ValueError, match="exactly one"):
        SmsDeliveryTrigger(sms_conn_id="c")
    with pytest.raises(ValueError, match="ledger_conn_id"):
        SmsDeliveryTrigger(sms_conn_id="c", campaign_key="k")


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_fires_once_when_all_messages_are_final_with_counts(
    gateway, frozen_sandbox, sms_conn_env, monkeypatch
):
    # The clock is stopped and moves only after the first poll's answer: on a loaded machine neither
    # the 2 s delivery nor a timed advance() can come before the first poll.
    sandbox = frozen_sandbox
    ids = send(sms_conn_env[gateway])
    trigger = SmsDeliveryTrigger(sms_conn_id=sms_conn_env[gateway], message_ids=ids, poll_interval=0.1)
    after_the_first_poll(monkeypatch, lambda: sandbox.advance(5))

    events = asyncio.run(events_of(trigger))

    assert len(events) == 1
    assert events[0]["status"] == "success"
    assert events[0]["counts"] == OUTCOMES
    assert (events[0]["total"], events[0]["final"], events[0]["failed"]) == (6, 6, 2)
    # it waited: polled before the clock moved, and again after
    assert sandbox.request_count(gateway=gateway, path_contains=LISTING[gateway]) >= 2


def test_reads_the_campaign_from_the_ledger(sandbox, sms_conn_env, sql_conn_id):
    conn_id = sms_conn_env["smsgateway24"]
    SmsBulkSendOperator(
        task_id="send",
        sms_conn_id=conn_id,
        message="Hello",
        audience=[{"phone": n} for n in NUMBERS],
        ledger_conn_id=sql_conn_id,
        campaign_key="parcels",
    ).execute({"ti": SimpleNamespace(dag_id="d", task_id="send"), "run_id": "r", "params": {}})
    sandbox.advance(5)
    trigger = SmsDeliveryTrigger(
        sms_conn_id=conn_id, campaign_key="parcels", ledger_conn_id=sql_conn_id, poll_interval=0.1
    )

    events = asyncio.run(events_of(trigger))

    assert [(e["status"], e["counts"]) for e in events] == [("success", OUTCOMES)]


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_times_out_with_the_counts_so_far(gateway, sandbox, sms_conn_env):
    ids = send(sms_conn_env[gateway], NUMBERS[:2], send_at=pendulum.now("UTC").add(hours=2))
    trigger = SmsDeliveryTrigger(
        sms_conn_id=sms_conn_env[gateway],
        message_ids=ids,
        poll_interval=0.1,
        timeout_at=pendulum.now("UTC").add(seconds=0.6),
    )

    events = asyncio.run(events_of(trigger))

    assert len(events) == 1
    assert events[0]["status"] == "timeout"
    assert "0 of 2 messages final" in events[0]["message"]
    assert sum(events[0]["counts"].values()) == 2
    assert set(events[0]["counts"]) <= {"scheduled", "queued"}


def test_enough_final_messages_satisfy_min_final_ratio(sandbox, sms_conn_env):
    conn_id = sms_conn_env["smsgateway24"]
    ids = send(conn_id, NUMBERS[:4]) + send(
        conn_id, ["+4915110000005"], send_at=pendulum.now("UTC").add(hours=2)
    )
    sandbox.advance(5)
    trigger = SmsDeliveryTrigger(sms_conn_id=conn_id, message_ids=ids, poll_interval=0.1, min_final_ratio=0.8)

    (event,) = asyncio.run(events_of(trigger))

    assert event["status"] == "success"
    assert event["counts"] == {"delivered": 4, "scheduled": 1}


def test_too_many_failures_fire_failed_without_waiting_for_the_rest(sandbox, sms_conn_env):
    conn_id = sms_conn_env["smsgateway24"]
    ids = send(conn_id, NUMBERS) + send(conn_id, ["+4915110000005"], send_at=pendulum.now("UTC").add(hours=2))
    sandbox.advance(5)
    trigger = SmsDeliveryTrigger(
        sms_conn_id=conn_id, message_ids=ids, poll_interval=0.1, max_failed_ratio=0.25
    )

    (event,) = asyncio.run(events_of(trigger))

    assert event["status"] == "failed"
    assert event["failed"] == 2
    assert "max_failed_ratio=0.25" in event["message"]


def test_unknown_ids_are_counted_missing(sandbox, sms_conn_env):
    conn_id = sms_conn_env["textboost"]
    trigger = SmsDeliveryTrigger(
        sms_conn_id=conn_id,
        message_ids=["no-such-message"],
        poll_interval=0.1,
        timeout_at=pendulum.now("UTC").add(seconds=0.3),
    )

    (event,) = asyncio.run(events_of(trigger))

    assert (event["status"], event["counts"]) == ("timeout", {"missing": 1})


def test_gateway_errors_become_an_error_event_not_an_exception(sandbox, sms_conn_env, monkeypatch):
    conn_id = sms_conn_env["smstools"]
    connection = json.loads(os.environ["AIRFLOW_CONN_SMSTOOLS_SANDBOX"])
    monkeypatch.setenv("AIRFLOW_CONN_SMSTOOLS_SANDBOX", json.dumps({**connection, "password": "wrong"}))
    trigger = SmsDeliveryTrigger(sms_conn_id=conn_id, message_ids=["1"], poll_interval=0.1)

    (event,) = asyncio.run(events_of(trigger))

    assert event["status"] == "error"
    assert "wrong" not in event["message"]


def test_transient_failures_are_polled_again_until_the_outcome(sandbox, sms_conn_env, monkeypatch):
    conn_id = sms_conn_env["smsgateway24"]
    ids = send(conn_id)
    sandbox.advance(5)
    # One attempt per request, so the 503s reach the trigger instead of the hook's own retries.
    connection = json.loads(os.environ["AIRFLOW_CONN_SMSGATEWAY24_SANDBOX"])
    connection["extra"]["max_attempts"] = 1
    monkeypatch.setenv("AIRFLOW_CONN_SMSGATEWAY24_SANDBOX", json.dumps(connection))
    sandbox.set_faults(rate_503=0.5, seed=3)
    trigger = SmsDeliveryTrigger(sms_conn_id=conn_id, message_ids=ids, poll_interval=0.05)

    (event,) = asyncio.run(events_of(trigger))

    assert (event["status"], event["counts"]) == ("success", OUTCOMES)
    assert sandbox.stats()["faults"]["injected"]["503"] > 0
