"""SmsBulkSendOperator against a gateway answering ``200`` with an HTML page (a proxy's maintenance
page): nothing may be recorded ``accepted`` without a gateway message id (issue 14)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pendulum
import pytest

from airflow_provider_sms.operators.send import SmsBulkSendOperator
from airflow_provider_sms.storage.ledger import ACCEPTED, AMBIGUOUS, MessageLedger
from tests.support.hostile_server import Reply, run_hostile

pytestmark = pytest.mark.integration

HTML = "<!doctype html><html><body><h1>Scheduled maintenance</h1></body></html>"
CONNECTIONS = {
    "smstools": {
        "login": "client-id-1",
        "password": "st-client-secret-9f8e7d6c",
        "extra": {"sender_id": "ACME"},
    },
    "smsgateway24": {
        "login": "owner@example.com",
        "password": "sg24-account-pass-7a6b5c",
        "extra": {"device_id": 7},
    },
    "textboost": {"password": "tb-api-token-0123456789abcdef", "extra": {"sender_id": "ACME"}},
}
SENDS = {"smstools": "message/send", "smsgateway24": "addalotofsms", "textboost": "sms/send"}
PEOPLE = [{"phone": f"+49151{10_000_000 + i}", "first_name": f"P{i}"} for i in range(6)]


def context() -> dict:
    return {
        "ti": SimpleNamespace(dag_id="campaigns", task_id="send", try_number=1, map_index=-1),
        "logical_date": pendulum.datetime(2026, 11, 23, 9),
        "run_id": "manual__hostile",
        "ds": "2026-11-23",
        "params": {},
    }


@pytest.mark.parametrize("gateway", list(CONNECTIONS))
def test_an_html_200_to_a_send_never_records_a_row_accepted_without_an_id(
    gateway, sqlite_conn_id, monkeypatch
):
    with run_hostile() as server:
        # Every endpoint answers the maintenance page, the look-ups too; SmsGateway24 still gets its token.
        server.on("*", "", Reply(body=HTML, content_type="text/html"))
        server.on("*", SENDS[gateway], Reply(body=HTML, content_type="text/html"))
        if gateway == "smsgateway24":
            server.on(
                "POST", "gettoken", Reply(body=json.dumps({"error": 0, "token": "sg24-token-8877665544"}))
            )
        conn = {**CONNECTIONS[gateway], "conn_type": gateway, "host": server.url}
        conn["extra"] = {**conn["extra"], "max_attempts": 1}  # no retries of the look-ups: stays fast
        monkeypatch.setenv("AIRFLOW_CONN_HOSTILE_SMS", json.dumps(conn))
        operator = SmsBulkSendOperator(
            task_id="send",
            sms_conn_id="hostile_sms",
            message="Hi {{ first_name }}",
            audience=PEOPLE,
            ledger_conn_id=sqlite_conn_id,
            campaign_key="maintenance",
            batch_size=3,
            check_balance=False,  # the send's answers are the point here; the balance's is below
        )

        summary = operator.execute(context())
        sends = len(server.requests_to(SENDS[gateway]))

    ledger = MessageLedger(sqlite_conn_id)
    accepted = ledger.in_state("maintenance", [ACCEPTED])
    assert [e for e in accepted if not e.message_id] == []  # the point: no acceptance without an id
    assert accepted == []  # and here nothing was accepted at all: every answer was the HTML page
    # Each batch left once; the look-ups could not read their answers either, so nothing is proven
    # absent and nothing was sent again: the rows wait, ambiguous, for a later look-up.
    assert sends == 2
    assert {e.recipient for e in ledger.in_state("maintenance", [AMBIGUOUS])} == {p["phone"] for p in PEOPLE}
    assert (summary["accepted"], summary["ambiguous"]) == (0, len(PEOPLE))


def test_an_html_answer_to_the_balance_check_sends_nothing(sqlite_conn_id, monkeypatch):
    """TextBoost's balance is checked before anything leaves: an answer that cannot be read is a
    check that cannot run, so the task fails and no send request is made."""
    with run_hostile() as server:
        server.on("*", "", Reply(body=HTML, content_type="text/html"))
        conn = {**CONNECTIONS["textboost"], "conn_type": "textboost", "host": server.url}
        conn["extra"] = {**conn["extra"], "max_attempts": 1}
        monkeypatch.setenv("AIRFLOW_CONN_HOSTILE_SMS", json.dumps(conn))
        operator = SmsBulkSendOperator(
            task_id="send",
            sms_conn_id="hostile_sms",
            message="Hi {{ first_name }}",
            audience=PEOPLE,
            ledger_conn_id=sqlite_conn_id,
            campaign_key="maintenance-balance",
            batch_size=3,
        )
        with pytest.raises(Exception, match="balance"):
            operator.execute(context())
        assert server.requests_to(SENDS["textboost"]) == []
    assert MessageLedger(sqlite_conn_id).in_state("maintenance-balance", [ACCEPTED]) == []
