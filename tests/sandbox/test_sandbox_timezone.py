"""Schedule dates are read in the account's timezone, as the hooks write them (connection ``timezone``)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from airflow_provider_sms.messages import OutboundMessage
from airflow_provider_sms.sandbox.config import SandboxConfig
from airflow_provider_sms.sandbox.testing import run_sandbox

from .helpers import NL, SMSTOOLS_AUTH, TEXTBOOST_AUTH, sandbox_now

BERLIN = ZoneInfo("Europe/Berlin")
GATEWAYS = ["smstools", "smsgateway24", "textboost"]


def _in_three_days(sandbox) -> datetime:
    """An aware UTC instant three sandbox days ahead, on a whole minute (the coarsest schedule format)."""
    return (sandbox_now(sandbox) + timedelta(days=3)).replace(second=0, microsecond=0, tzinfo=timezone.utc)


def _send_at(message: dict) -> datetime:
    return datetime.fromisoformat(message["send_at"].replace("Z", "+00:00"))


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_hook_with_a_berlin_connection_schedules_at_the_right_utc_instant(
    gateway, sandbox, sms_conn_env, monkeypatch
):
    from airflow_provider_sms.hooks import get_gateway_hook

    sandbox.set_timezone("Europe/Berlin")
    variable = f"AIRFLOW_CONN_{sms_conn_env[gateway].upper()}"
    connection = json.loads(os.environ[variable])
    connection["extra"]["timezone"] = "Europe/Berlin"
    monkeypatch.setenv(variable, json.dumps(connection))
    at = _in_three_days(sandbox)

    hook = get_gateway_hook(sms_conn_env[gateway])
    (result,) = hook.send_messages([OutboundMessage("+" + NL, "Later", key="7", send_at=at)])

    assert result.accepted
    (message,) = sandbox.messages(gateway)
    assert _send_at(message) == at  # the Berlin wall time the hook wrote, read as Berlin time
    assert message["normalized_status"] in ("scheduled", "queued")
    if gateway == "smstools":  # and the outbox date comes back in the same zone
        (scheduled,) = hook.get_outbox()
        assert scheduled.updated_at == at


def test_each_gateways_schedule_field_is_read_in_the_accounts_timezone(sandbox, http, sg24_token):
    sandbox.set_timezone("Europe/Berlin")
    at = _in_three_days(sandbox)
    wall = at.astimezone(BERLIN)
    smstools = {"message": "Hi", "sender": "Shop", "to": NL, "date": wall.strftime("%Y-%m-%d %H:%M")}
    assert (
        http.post(f"{sandbox.url}/v1/message/send", json=smstools, headers=SMSTOOLS_AUTH).status_code == 200
    )
    sg24 = {"token": sg24_token, "sendto": "+" + NL, "body": "Hi", "device_id": 1001}
    http.post(
        f"{sandbox.url}/getdata/addsms", data={**sg24, "timetosend": wall.strftime("%Y-%m-%d %H:%M:%S")}
    )
    tag = http.post(f"{sandbox.url}/getdata/savetag", data={"token": sg24_token, "title": "T"}).json()[
        "tag_id"
    ]
    http.post(
        f"{sandbox.url}/getdata/savecontact",
        data={"token": sg24_token, "phone": "+" + NL, "ctag_id": tag, "fullname": "Ann"},
    )
    paket = {"token": sg24_token, "title": "P", "device_id": 1001, "body": "News", "tags": tag}
    http.post(
        f"{sandbox.url}/getdata/savepaket", data={**paket, "time_to_send": wall.strftime("%d.%m.%Y %H:%M:%S")}
    )
    textboost = {"recipient": NL, "sender_id": "Shop", "type": "plain", "message": "Hi"}
    textboost["schedule_time"] = wall.strftime("%Y-%m-%d %H:%M")
    assert (
        http.post(f"{sandbox.url}/api/v3/sms/send", json=textboost, headers=TEXTBOOST_AUTH).status_code == 200
    )

    messages = sandbox.messages()
    assert len(messages) == 4
    assert {_send_at(message) for message in messages} == {at}
    outbox = http.get(f"{sandbox.url}/v1/outbox", headers=SMSTOOLS_AUTH).json()["messages"]
    assert [row["date"] for row in outbox] == [wall.strftime("%Y-%m-%d %H:%M")]
    listed = http.post(f"{sandbox.url}/getdata/getallsms", data={"token": sg24_token}).json()["smss"]
    assert {sms["created"]["timezone"] for sms in listed.values()} == {"Europe/Berlin"}


def test_the_timezone_is_per_account_reported_by_the_account_and_restored_by_reset(sandbox, http):
    assert sandbox.set_timezone("America/New_York", gateway="textboost") == {
        "smstools": "UTC",
        "smsgateway24": "UTC",
        "textboost": "America/New_York",
    }
    assert http.get(f"{sandbox.url}/api/v3/me", headers=TEXTBOOST_AUTH).json()["data"]["timezone"] == (
        "America/New_York"
    )
    assert http.get(f"{sandbox.url}/v1/account", headers=SMSTOOLS_AUTH).json()["timezone"] == "UTC"
    for body in ({"timezone": "Mars/Olympus"}, {"timezone": "UTC", "gateway": "sms4u"}, {}):
        assert http.post(f"{sandbox.url}/_sandbox/timezone", json=body).status_code == 400
    sandbox.reset()
    assert set(http.get(f"{sandbox.url}/_sandbox/timezone").json().values()) == {"UTC"}


def test_the_timezone_can_be_set_at_start_up_and_an_unknown_one_is_refused():
    with run_sandbox(timezone="Asia/Tokyo") as server:
        assert set(server.stats()["clock"]["timezones"].values()) == {"Asia/Tokyo"}
    with pytest.raises(ValueError, match="unknown timezone 'Mars/Olympus'"):
        SandboxConfig.from_options(timezone="Mars/Olympus")
