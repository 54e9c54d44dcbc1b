"""Admin and inspection API: reset, clock, duplicate counts, stats, tokens, status page, fixtures."""

from __future__ import annotations

import json
import os

import pytest

from .helpers import NL, SG24_LOGIN, SMSTOOLS_AUTH, TEXTBOOST_AUTH, US


@pytest.fixture
def send(sandbox, http):
    def send_smstools(to=NL, message="Hi"):
        response = http.post(
            f"{sandbox.url}/v1/message/send",
            json={"message": message, "sender": "Shop", "to": to},
            headers=SMSTOOLS_AUTH,
        )
        return response.json()

    return send_smstools


def test_messages_count_how_often_each_recipient_and_body_arrived(sandbox, send):
    send(message="Hi")
    send(message="Hi")
    send(message="Other")
    send(to=US, message="Hi")
    counts = sorted((m["recipient"], m["body"], m["count"]) for m in sandbox.messages())
    assert counts == [("+" + US, "Hi", 1), ("+" + NL, "Hi", 2), ("+" + NL, "Hi", 2), ("+" + NL, "Other", 1)]
    duplicates = sandbox.messages(duplicates="true")
    assert [(m["recipient"], m["body"]) for m in duplicates] == [("+" + NL, "Hi")] * 2
    assert [m["body"] for m in sandbox.messages(recipient="+" + US)] == ["Hi"]
    assert sandbox.stats()["messages"]["by_gateway"]["smstools"]["duplicates"] == 1


def test_message_view_has_the_documented_fields(sandbox, send):
    send()
    (message,) = sandbox.messages("smstools")
    assert set(message) >= {
        "gateway", "id", "recipient", "body", "status", "normalized_status", "created_at", "reference", "count",
    }  # fmt: skip
    assert message["gateway"] == "smstools" and message["created_at"].endswith("Z")
    assert sandbox.messages("textboost") == []


def test_contacts_count_duplicates_per_list_and_phone(sandbox, http):
    group = http.post(f"{sandbox.url}/v1/groups", json={"name": "G"}, headers=SMSTOOLS_AUTH).json()["ID"][0]
    rows = [{"phone": NL, "groupid": group}, {"phone": NL, "groupid": group}, {"phone": US, "groupid": group}]
    http.post(f"{sandbox.url}/v1/contact", json=rows, headers=SMSTOOLS_AUTH)
    contacts = sandbox.contacts("smstools")
    assert sorted((c["phone"], c["list_id"], c["count"]) for c in contacts) == [
        ("+" + US, group, 1),
        ("+" + NL, group, 2),
        ("+" + NL, group, 2),
    ]
    assert sandbox.contacts("textboost") == []


def test_an_unknown_gateway_filter_is_a_400(sandbox, http):
    for path in ("messages", "contacts"):
        assert http.get(f"{sandbox.url}/_sandbox/{path}", params={"gateway": "sms4u"}).status_code == 400


def test_reset_clears_data_and_counters_but_keeps_tokens_and_never_reuses_ids(sandbox, http, send):
    token = http.post(f"{sandbox.url}/getdata/gettoken", data=SG24_LOGIN).json()["token"]
    first_id = send()["messageid"]
    http.post(f"{sandbox.url}/api/v3/contacts", json={"name": "G"}, headers=TEXTBOOST_AUTH)
    sandbox.advance(100)
    sandbox.reset()
    stats = sandbox.stats()
    assert stats["messages"]["total"] == 0 and stats["requests"]["total"] == 0
    assert stats["lists"]["by_gateway"]["textboost"] == 0
    assert stats["balance"] == {"smstools": 1_000_000.0, "textboost": 1_000_000.0}
    assert stats["clock"]["offset_seconds"] == 0
    assert http.post(f"{sandbox.url}/getdata/getalldevices", data={"token": token}).json()["error"] == 0
    assert send()["messageid"] != first_id


def test_advance_moves_the_clock_forward_only(sandbox, http):
    assert sandbox.advance(90)["offset_seconds"] == 90
    for body in ({"seconds": -1}, {"seconds": "soon"}, {}, None):
        assert http.post(f"{sandbox.url}/_sandbox/advance", json=body).status_code == 400
    assert sandbox.stats()["clock"]["offset_seconds"] == 90


TEN_YEARS = 10 * 365.25 * 86_400


def _gateways_answer(sandbox, http) -> None:
    """Every gateway still answers 200 (a sent message is dated and listed), and so does the admin API."""
    sent = http.post(
        f"{sandbox.url}/v1/message/send",
        json={"message": "Hi", "sender": "Shop", "to": NL},
        headers=SMSTOOLS_AUTH,
    )
    assert sent.status_code == 200, sent.text
    assert http.get(f"{sandbox.url}/v1/message/logging", headers=SMSTOOLS_AUTH).status_code == 200
    token = http.post(f"{sandbox.url}/getdata/gettoken", data=SG24_LOGIN).json()["token"]
    assert http.post(f"{sandbox.url}/getdata/getallsms", data={"token": token}).json()["error"] == 0
    assert http.get(f"{sandbox.url}/api/v3/sms", headers=TEXTBOOST_AUTH).status_code == 200
    assert http.get(f"{sandbox.url}/_sandbox/messages").status_code == 200
    assert http.get(f"{sandbox.url}/").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        '{"seconds": 1e12}',
        '{"seconds": 1e308}',
        '{"seconds": 1e400}',  # parses as an infinity
        '{"seconds": Infinity}',
        '{"seconds": NaN}',
        '{"seconds": -Infinity}',
        '{"seconds": 1' + "0" * 400 + "}",  # an integer no float can hold
        '{"seconds": ' + str(int(TEN_YEARS) + 1) + "}",
    ],
)
def test_advance_refuses_non_finite_and_huge_steps_and_the_gateways_keep_working(sandbox, http, body):
    sandbox.advance(60)
    response = http.post(
        f"{sandbox.url}/_sandbox/advance", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "seconds" in response.json()["detail"] or "JSON" in response.json()["detail"]
    assert sandbox.stats()["clock"]["offset_seconds"] == 60
    _gateways_answer(sandbox, http)


def test_advance_goes_up_to_ten_years_a_step_and_a_hundred_years_in_all(sandbox, http):
    for _ in range(10):
        sandbox.advance(TEN_YEARS)
    _gateways_answer(sandbox, http)
    refused = http.post(f"{sandbox.url}/_sandbox/advance", json={"seconds": 1})
    assert refused.status_code == 400 and "100 years" in refused.json()["detail"]
    sandbox.reset()
    assert sandbox.advance(1)["offset_seconds"] == 1


def test_expire_tokens_invalidates_every_smsgateway24_token(sandbox, http):
    token = http.post(f"{sandbox.url}/getdata/gettoken", data=SG24_LOGIN).json()["token"]
    sandbox.expire_tokens()
    assert http.post(f"{sandbox.url}/getdata/getalldevices", data={"token": token}).json() == {
        "error": 1,
        "message": "Token is wrong or expired",
    }


def test_stats_and_request_count_see_every_gateway_request(sandbox, http, send):
    send()
    send()
    http.get(f"{sandbox.url}/v1/outbox/", headers=SMSTOOLS_AUTH)  # redirected or not, it is counted
    http.get(f"{sandbox.url}/api/v3/sms/abc", headers=TEXTBOOST_AUTH)
    http.post(f"{sandbox.url}/getdata/gettoken", data=SG24_LOGIN)
    http.post(f"{sandbox.url}/getdata/gettoken/", data=SG24_LOGIN)
    stats = sandbox.stats()
    endpoints = stats["requests"]["by_endpoint"]
    assert endpoints["smstools"]["POST /v1/message/send"] == 2
    assert endpoints["textboost"] == {"GET /api/v3/sms/{message_id}": 1}
    assert endpoints["smsgateway24"] == {"POST /getdata/gettoken": 2}
    assert sandbox.request_count() == stats["requests"]["total"]
    assert sandbox.request_count("smstools", "/message/send") == 2
    assert sandbox.request_count(path_contains="gettoken") == 2
    assert stats["messages"]["by_gateway"]["smstools"]["by_normalized_status"] == {"queued": 2}


def test_status_page_shows_counts_per_gateway_and_status(sandbox, http, send):
    send()
    page = http.get(f"{sandbox.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # Each number carries its gateway and what it counts (tests/sandbox/test_sandbox_page.py has more).
    assert '<span class="big" data-gateway="smstools" data-total>1</span>' in page.text
    assert '<span data-gateway="smstools" data-requests>1</span>' in page.text
    assert 'data-gateway="smstools" data-status="queued">1</td>' in page.text
    assert 'http-equiv="refresh"' in page.text


def test_sms_conn_env_points_three_airflow_connections_at_the_sandbox(sandbox, sms_conn_env):
    assert sms_conn_env == {
        "smstools": "smstools_sandbox",
        "smsgateway24": "smsgateway24_sandbox",
        "textboost": "textboost_sandbox",
    }
    assert os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] == "True"
    sg24 = json.loads(os.environ["AIRFLOW_CONN_SMSGATEWAY24_SANDBOX"])
    assert sg24 == {
        "conn_type": "smsgateway24",
        "host": sandbox.url,
        "login": "sandbox@example.com",
        "password": "sandbox-password-0123",
        "extra": {"device_id": 1001, "sim": 0},
    }
    assert json.loads(os.environ["AIRFLOW_CONN_TEXTBOOST_SANDBOX"])["password"] == TEXTBOOST_AUTH[
        "Authorization"
    ].removeprefix("Bearer ")
    assert json.loads(os.environ["AIRFLOW_CONN_SMSTOOLS_SANDBOX"])["login"] == SMSTOOLS_AUTH["X-Client-Id"]


def test_the_shared_session_sandbox_runs_in_real_time_with_two_second_delivery(sandbox_server):
    clock = sandbox_server.stats()["clock"]
    assert (clock["frozen"], clock["delivery_seconds"]) == (False, 2.0)


def test_balance_can_be_set_per_billed_account_and_reset_restores_it(sandbox, http):
    start = sandbox.stats()["balance"]
    assert sandbox.set_balance("smstools", 12.5) == {**start, "smstools": 12.5}
    assert http.get(f"{sandbox.url}/v1/balance", headers=SMSTOOLS_AUTH).json()["credits"] == "12.50"
    sandbox.set_balance("textboost", 7)
    assert (
        http.get(f"{sandbox.url}/api/v3/balance", headers=TEXTBOOST_AUTH).json()["data"]["remaining_balance"]
        == "7"
    )
    for body in (
        {"gateway": "smsgateway24", "balance": 1},
        {"gateway": "smstools", "balance": -1},
        {"gateway": "smstools", "balance": "9"},
        {"gateway": "smstools", "balance": True},
        [],
    ):
        response = http.post(f"{sandbox.url}/_sandbox/balance", json=body)
        assert response.status_code == 400, body
    sandbox.reset()
    assert sandbox.stats()["balance"] == start


def test_the_clock_can_be_stopped_where_it_stands_and_reset_restores_the_start_up_setting(sandbox, send):
    # This folder's sandbox starts frozen; the shared one (tests/conftest.py) runs with real time.
    running = sandbox.freeze_clock(False)
    assert running["frozen"] is False and sandbox.stats()["clock"]["frozen"] is False
    frozen = sandbox.freeze_clock()
    assert frozen["frozen"] is True and frozen["now"] >= running["now"]
    send()
    assert sandbox.health()["now"] == frozen["now"]  # no real time passes for it
    assert sandbox.messages("smstools")[0]["status"] not in {"delivered", "undelivered", "failed"}

    moved = sandbox.advance(5)
    assert moved["now"] > frozen["now"]
    assert sandbox.messages("smstools")[0]["status"] == "delivered"
    assert sandbox.freeze_clock(False)["now"] >= moved["now"]  # restarting does not jump back

    sandbox.reset()
    assert sandbox.stats()["clock"]["frozen"] is True


def test_the_clock_setting_must_be_a_boolean(sandbox, http):
    response = http.post(f"{sandbox.url}/_sandbox/clock", json={"frozen": "yes"})
    assert response.status_code == 400
    assert '{"frozen": true}' in response.json()["detail"]
    assert sandbox.stats()["clock"]["frozen"] is True  # unchanged
