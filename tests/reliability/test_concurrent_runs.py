"""Exactly once against a hostile world: two task processes racing on one campaign, a try that dies
after the gateway stored its messages and a retry with a changed template, a wrong URL.

Each try is a real process (``campaign_worker.py``), as on Airflow workers; the ledger is SQLite and
PostgreSQL; the gateway is the sandbox. The audit is the fault runs' (no recipient twice, none lost).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_sms.operators.send import SmsBulkSendOperator
from airflow_provider_sms.storage.ledger import ACCEPTED, PENDING, MessageLedger

from .helpers import GATEWAYS, audit, seeded_audience, set_connection, task_context

pytestmark = pytest.mark.integration
WORKER = Path(__file__).with_name("campaign_worker.py")


def start_try(tmp_path: Path, name: str, **spec) -> subprocess.Popen:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(spec))
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def outcome(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=240)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"the try printed no outcome (exit {process.returncode}): {err[-2000:]}"
    return json.loads(lines[-1])


def spring_sale(conn_id: str, ledger_conn_id: str, campaign_key: str, audience) -> SmsBulkSendOperator:
    """The in-process send of the configuration tests: one text for everyone."""
    return SmsBulkSendOperator(
        task_id="send",
        sms_conn_id=conn_id,
        message="Spring sale: 20% off until Sunday.",
        audience=audience.rows,
        unsubscribed_column="unsub",
        ledger_conn_id=ledger_conn_id,
        campaign_key=campaign_key,
    )


def ledger_counts(ledger_conn_id: str, campaign_key: str):
    ledger = MessageLedger(ledger_conn_id)
    try:
        return ledger.counts(campaign_key)
    finally:
        ledger.close()


@pytest.mark.parametrize("in_flight", [1, 4])
@pytest.mark.parametrize("gateway", GATEWAYS)
def test_two_processes_racing_on_one_campaign_send_each_message_once(
    gateway, in_flight, sandbox, sql_conn_id, monkeypatch, tmp_path
):
    audience = seeded_audience(random.Random(7), 240)
    conn_id = set_connection(monkeypatch, f"race_{gateway}", gateway, sandbox.url)
    # Slow answers keep the first try sending while the second one starts: they overlap.
    sandbox.set_faults(latency_ms=60)
    spec = dict(
        sms_conn_id=conn_id,
        ledger_conn_id=sql_conn_id,
        campaign_key="race",
        message="Hi {{ first_name }}, the spring sale starts today.",
        audience=audience.rows,
        batch_size=10,
        max_in_flight=in_flight,
    )
    first, second = start_try(tmp_path, "first", **spec), start_try(tmp_path, "second", **spec)
    results = [outcome(first), outcome(second)]
    sandbox.clear_faults()

    found = audit(sandbox, gateway, sql_conn_id, "race", audience)
    assert found.problems == {}, found.problems
    assert found.accepted == len(audience.valid)
    for result in results:  # both tries succeed and report the same, complete campaign
        summary = result["summary"]
        assert summary["accepted"] == len(audience.valid), result
        parts = ("accepted", "rejected", "suppressed", "duplicates", "ambiguous")
        assert sum(summary[k] for k in parts) == len(audience.rows), summary


@pytest.mark.parametrize("gateway", GATEWAYS)
@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("Spring sale: 20% off until Sunday.", "Spring sale: 25% off until Monday."),
        ("Hi {{ first_name }}, 20% off until Sunday.", "Hello {{ first_name }}, 25% off until Monday."),
    ],
    ids=["one-text", "personal"],
)
def test_a_retry_with_a_changed_template_never_sends_a_second_message(
    gateway, before, after, sandbox, sqlite_conn_id, monkeypatch, tmp_path
):
    audience = seeded_audience(random.Random(11), 120)
    conn_id = set_connection(monkeypatch, f"change_{gateway}", gateway, sandbox.url)
    spec = dict(
        sms_conn_id=conn_id,
        ledger_conn_id=sqlite_conn_id,
        campaign_key="changed",
        audience=audience.rows,
        batch_size=25,
    )
    died = start_try(tmp_path, "first", message=before, die_after_first_batch=True, **spec)
    died.communicate(timeout=240)
    assert died.returncode == -9, "the first try was meant to die after its first request"
    stored_first = {m["recipient"] for m in sandbox.messages(gateway=gateway)}
    assert len(stored_first) == 25  # the gateway holds the first batch, the ledger says "sending"

    result = outcome(start_try(tmp_path, "retry", message=after, **spec))  # the template was fixed

    found = audit(sandbox, gateway, sqlite_conn_id, "changed", audience)
    assert found.problems == {}, found.problems
    assert result["summary"]["accepted"] == len(audience.valid)
    for message in sandbox.messages(gateway=gateway):  # the first batch kept the text it was sent with
        changed = message["recipient"] not in stored_first
        assert ("25%" in message["body"]) == changed, message


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_wrong_url_fails_the_task_and_burns_nothing(gateway, sandbox, sqlite_conn_id, monkeypatch):
    audience = seeded_audience(random.Random(13), 60)
    conn_id = f"wrong_{gateway}"
    set_connection(monkeypatch, conn_id, gateway, f"{sandbox.url}/no/such/prefix")
    with pytest.raises(AirflowFailException, match="stay pending in the ledger"):
        spring_sale(conn_id, sqlite_conn_id, "wrong-url", audience).execute(task_context())
    assert sandbox.messages(gateway=gateway) == []
    counts = ledger_counts(sqlite_conn_id, "wrong-url")
    assert counts[PENDING] == len(audience.valid) and "accepted" not in counts, counts
    assert counts["rejected"] == audience.invalid  # only rows refused for themselves

    set_connection(monkeypatch, conn_id, gateway, sandbox.url)  # the connection is fixed: a re-run sends
    summary = spring_sale(conn_id, sqlite_conn_id, "wrong-url", audience).execute(task_context(try_number=2))
    assert summary["accepted"] == len(audience.valid)
    found = audit(sandbox, gateway, sqlite_conn_id, "wrong-url", audience)
    assert found.problems == {} and found.counts[ACCEPTED] == len(audience.valid)


def test_a_refused_sender_fails_the_task_instead_of_rejecting_everyone(sandbox, sqlite_conn_id, monkeypatch):
    audience = seeded_audience(random.Random(17), 40)
    conn_id = set_connection(
        monkeypatch, "bad_sender", "smstools", sandbox.url, {"sender_id": "A-SENDER-NAME-TOO-LONG"}
    )
    with pytest.raises(AirflowFailException, match="sender"):
        spring_sale(conn_id, sqlite_conn_id, "bad-sender", audience).execute(task_context())
    counts = ledger_counts(sqlite_conn_id, "bad-sender")
    assert counts[PENDING] == len(audience.valid), counts
