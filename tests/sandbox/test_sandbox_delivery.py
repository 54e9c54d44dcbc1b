"""Delivery simulation: each gateway's own statuses, in order, with deterministic outcomes.

The ``sandbox`` fixture of this folder has a frozen clock: only ``advance()`` moves time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
import requests

from airflow_provider_sms.sandbox.testing import SandboxServer, run_sandbox

from .helpers import NL, NL_FAILED, NL_UNDELIVERED, SG24_LOGIN, SMSTOOLS_AUTH, TEXTBOOST_AUTH, sandbox_now

DELIVERY_SECONDS = 2.0
NUMBERS = {"delivered": NL, "undelivered": NL_UNDELIVERED, "failed": NL_FAILED}
EXPECTED = {
    "smstools": {
        "delivered": ["queued", "sent", "delivered"],
        "undelivered": ["queued", "sent", "undelivered"],
        "failed": ["queued", "sent", "failed"],
    },
    "textboost": {
        "delivered": ["Queued", "Sent", "Delivered"],
        "undelivered": ["Queued", "Sent", "Undelivered"],
        "failed": ["Queued", "Sent", "Failed"],
    },
    "smsgateway24": {
        "delivered": [1, 3, 2, 6, 7],
        "undelivered": [1, 3, 2, 6, 8],
        "failed": [1, 3, 2, 9],
    },
}
NORMALIZED_ORDER = ["scheduled", "queued", "sending", "sent", "delivered", "undelivered", "failed"]


class Client:
    """Sends one message per outcome and reads raw statuses through each gateway's own API."""

    def __init__(self, sandbox: SandboxServer, gateway: str) -> None:
        self.url, self.gateway = sandbox.url, gateway
        self.http = requests.Session()
        if gateway == "smsgateway24":
            self.token = self.http.post(f"{self.url}/getdata/gettoken", data=SG24_LOGIN).json()["token"]

    def send(self, number: str, schedule: str | None = None) -> str:
        if self.gateway == "smstools":
            body = {"message": "Hi", "sender": "Shop", "to": number}
            if schedule:
                body["date"] = schedule
            response = self.http.post(f"{self.url}/v1/message/send", json=body, headers=SMSTOOLS_AUTH)
            return response.json()["messageid"]
        if self.gateway == "textboost":
            body = {"recipient": number, "sender_id": "Shop", "type": "plain", "message": "Hi"}
            if schedule:
                body["schedule_time"] = schedule
            response = self.http.post(f"{self.url}/api/v3/sms/send", json=body, headers=TEXTBOOST_AUTH)
            return response.json()["data"]["uid"]
        fields = {"token": self.token, "sendto": "+" + number, "body": "Hi", "device_id": 1001}
        if schedule:
            fields["timetosend"] = schedule
        return str(self.http.post(f"{self.url}/getdata/addsms", data=fields).json()["sms_id"])

    def statuses(self, ids: list[str]) -> list[str | int]:
        if self.gateway == "smstools":
            logged = self.http.get(f"{self.url}/v1/message/logging", headers=SMSTOOLS_AUTH).json()["messages"]
            by_id = {item["message_ID"]: item["status"] for item in logged}
            return [by_id[message_id] for message_id in ids]
        if self.gateway == "textboost":
            return [
                self.http.get(f"{self.url}/api/v3/sms/{uid}", headers=TEXTBOOST_AUTH).json()["data"]["status"]
                for uid in ids
            ]
        # Advancing the clock by hours expires tokens (ttl 3600 s), as it would for a real client.
        token = self.http.post(f"{self.url}/getdata/gettoken", data=SG24_LOGIN).json()["token"]
        url = f"{self.url}/getdata/getsmsstatus"
        return [
            self.http.post(url, data={"token": token, "sms_id": sms_id}).json()["status"] for sms_id in ids
        ]


SCHEDULE_FORMATS = {
    "smstools": "%Y-%m-%d %H:%M",
    "textboost": "%Y-%m-%d %H:%M",
    "smsgateway24": "%Y-%m-%d %H:%M:%S",
}


def _history(
    sandbox: SandboxServer, read: Callable[[], list[str | int]], steps: int, step: float
) -> list[list]:
    """Distinct successive statuses of each message while the clock moves ``steps`` times by ``step``."""
    histories: list[list] = [[status] for status in read()]
    for _ in range(steps):
        sandbox.advance(step)
        for history, status in zip(histories, read(), strict=True):
            if history[-1] != status:
                history.append(status)
    return histories


@pytest.mark.parametrize("gateway", ["smstools", "smsgateway24", "textboost"])
def test_statuses_move_in_the_gateway_order_to_the_outcome_of_the_number(sandbox, gateway):
    client = Client(sandbox, gateway)
    ids = [client.send(number) for number in NUMBERS.values()]
    histories = _history(sandbox, lambda: client.statuses(ids), steps=12, step=DELIVERY_SECONDS / 10)
    assert dict(zip(NUMBERS, histories, strict=True)) == EXPECTED[gateway]
    normalized = {m["recipient"]: m["normalized_status"] for m in sandbox.messages(gateway)}
    assert normalized == {
        "+" + NL: "delivered",
        "+" + NL_UNDELIVERED: "undelivered",
        "+" + NL_FAILED: "failed",
    }


@pytest.mark.parametrize("gateway", ["smstools", "smsgateway24", "textboost"])
def test_normalized_statuses_never_move_backwards(sandbox, gateway):
    client = Client(sandbox, gateway)
    for number in NUMBERS.values():
        client.send(number)

    def read() -> list[str | int]:
        return [m["normalized_status"] for m in sandbox.messages(gateway)]

    for history in _history(sandbox, read, steps=10, step=DELIVERY_SECONDS / 8):
        ranks = [NORMALIZED_ORDER.index(status) for status in history]
        assert ranks == sorted(ranks) and history[-1] in ("delivered", "undelivered", "failed")


@pytest.mark.parametrize(
    ("gateway", "raw", "normalized"),
    [
        ("smstools", "scheduled", "queued"),  # gateways.md maps Smstools "scheduled" to queued
        ("smsgateway24", 1, "scheduled"),
        ("textboost", "Scheduled", "scheduled"),
    ],
)
def test_scheduled_messages_wait_for_their_time(sandbox, gateway, raw, normalized):
    client = Client(sandbox, gateway)
    due = (sandbox_now(sandbox) + timedelta(hours=2)).replace(second=0, microsecond=0)
    message_id = client.send(NL, schedule=due.strftime(SCHEDULE_FORMATS[gateway]))
    sandbox.advance(3600)
    assert client.statuses([message_id]) == [raw]
    assert sandbox.messages(gateway)[0]["normalized_status"] == normalized
    sandbox.advance((due - sandbox_now(sandbox)).total_seconds() - 0.5)
    assert client.statuses([message_id]) == [raw]
    sandbox.advance(1)
    assert client.statuses([message_id]) == [EXPECTED[gateway]["delivered"][0]]
    sandbox.advance(DELIVERY_SECONDS)
    assert client.statuses([message_id]) == [EXPECTED[gateway]["delivered"][-1]]


def test_status_is_computed_lazily_for_a_large_batch(sandbox):
    """10,000 messages move at once with one advance; no per-message timers exist."""
    token = requests.post(f"{sandbox.url}/getdata/gettoken", data=SG24_LOGIN).json()["token"]
    rows = [{"sendto": f"+316{10_000_000 + i}", "body": "bulk", "device_id": 1001} for i in range(10_000)]
    response = requests.post(
        f"{sandbox.url}/getdata/addalotofsms",
        data={"datajson": json.dumps({"token": token, "smsdata": rows})},
    )
    assert None not in response.json()["sms_ids"]
    assert sandbox.stats()["messages"]["by_gateway"]["smsgateway24"]["by_status"] == {"1": 10_000}
    sandbox.advance(DELIVERY_SECONDS)
    by_status = sandbox.stats()["messages"]["by_gateway"]["smsgateway24"]["by_status"]
    assert by_status == {"7": 9_800, "8": 100, "9": 100}  # 1% of numbers end in 13, 1% in 66


def test_without_a_frozen_clock_statuses_follow_real_time():
    with run_sandbox(delivery_seconds=0.2) as server:
        client = Client(server, "smstools")
        message_id = client.send(NL)
        time.sleep(0.25)
        assert client.statuses([message_id]) == ["delivered"]
        assert server.stats()["clock"]["frozen"] is False
