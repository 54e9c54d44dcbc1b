"""Credentials that stop working in the middle of a campaign: nothing lost, nothing duplicated.

* SmsGateway24 session tokens expire mid-campaign (the sandbox clock passes their lifetime, or the
  sandbox revokes every token): the hook fetches a new token and the campaign goes on.
* A static secret revoked mid-campaign (Smstools client secret, TextBoost API token: HTTP 401;
  SmsGateway24 password changed while its token expires): the try fails with an auth error, and
  the retry after the secret is fixed sends exactly the rest.
"""

from __future__ import annotations

import random
import threading

import pytest

from airflow_provider_sms.exceptions import SmsAuthError, SmsGatewayError
from airflow_provider_sms.operators.send import SmsBulkSendOperator

from .helpers import GATEWAYS, audit, fast_backoff, seeded_audience, set_connection, task_context

pytestmark = pytest.mark.integration

BATCH = 20


def make_operator(
    conn_id: str, ledger_conn_id: str, rows: list[dict], max_in_flight: int = 1
) -> SmsBulkSendOperator:
    return SmsBulkSendOperator(
        task_id="send",
        sms_conn_id=conn_id,
        message="Hi {{ first_name }}, your parcel is on its way.",
        audience=rows,
        unsubscribed_column="unsub",
        ledger_conn_id=ledger_conn_id,
        campaign_key="auth-mid-campaign",
        batch_size=BATCH,
        max_reject_ratio=1.0,
        max_in_flight=max_in_flight,
    )


def between_batches(op: SmsBulkSendOperator, action) -> None:
    """Call ``action(batch_number)`` before each batch the operator sends."""
    real_send = op.hook.send_batch
    sent, lock = [0], threading.Lock()

    def send(messages):
        with lock:  # requests in flight at once count from several threads
            sent[0] += 1
            number = sent[0]
        action(number)
        return real_send(messages)

    op.hook.send_batch = send


def assert_exactly_once(sandbox, gateway, ledger_conn_id, audience) -> None:
    found = audit(sandbox, gateway, ledger_conn_id, "auth-mid-campaign", audience)
    assert found.problems == {}
    assert found.ambiguous == 0
    assert found.accepted == len(audience.valid)
    assert len(sandbox.messages(gateway=gateway)) == len(audience.valid)


@pytest.mark.parametrize("how", ["clock passes the token lifetime", "sandbox revokes every token"])
def test_smsgateway24_token_expiring_mid_campaign_is_renewed(how, sandbox, monkeypatch, sqlite_conn_id):
    fast_backoff(monkeypatch)
    audience = seeded_audience(random.Random(1), 200)
    conn_id = set_connection(monkeypatch, "auth_smsgateway24", "smsgateway24", sandbox.url)
    op = make_operator(conn_id, sqlite_conn_id, audience.rows)

    def expire(batch: int) -> None:
        if batch % 2 == 0:  # every other batch finds its token expired
            if how.startswith("clock"):
                sandbox.advance(3_601)  # the sandbox's token lifetime is an hour
            else:
                sandbox.expire_tokens()

    between_batches(op, expire)
    summary = op.execute(task_context())

    assert summary["accepted"] == len(audience.valid)
    assert (
        sandbox.request_count(gateway="smsgateway24", path_contains="gettoken") >= 1 + (200 // BATCH) // 2 - 1
    )
    assert_exactly_once(sandbox, "smsgateway24", sqlite_conn_id, audience)


@pytest.mark.parametrize("how", ["clock passes the token lifetime", "sandbox revokes every token"])
def test_a_token_expiring_under_requests_in_flight_is_renewed_once_for_all(
    how, sandbox, monkeypatch, sqlite_conn_id
):
    """Four requests at once: the token dies under all those in flight; one thread renews it and
    the others take the new one (two token requests in the whole run, not one per thread)."""
    fast_backoff(monkeypatch)
    sandbox.set_faults(latency_ms=30)  # keeps requests in flight together
    audience = seeded_audience(random.Random(3), 200)
    conn_id = set_connection(monkeypatch, "auth_smsgateway24", "smsgateway24", sandbox.url)
    op = make_operator(conn_id, sqlite_conn_id, audience.rows, max_in_flight=4)

    def expire(batch: int) -> None:
        if batch == 6:  # after the first answer, so the token exists; with up to three others in flight
            if how.startswith("clock"):
                sandbox.advance(3_601)
            else:
                sandbox.expire_tokens()

    between_batches(op, expire)
    summary = op.execute(task_context())

    assert summary["accepted"] == len(audience.valid)
    assert sandbox.request_count(gateway="smsgateway24", path_contains="gettoken") == 2
    assert_exactly_once(sandbox, "smsgateway24", sqlite_conn_id, audience)


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_secret_revoked_mid_campaign_then_fixed_sends_exactly_the_rest(
    gateway, sandbox, monkeypatch, sqlite_conn_id
):
    fast_backoff(monkeypatch)
    audience = seeded_audience(random.Random(2), 200)
    conn_id = set_connection(monkeypatch, f"auth_{gateway}", gateway, sandbox.url)
    op = make_operator(conn_id, sqlite_conn_id, audience.rows)

    def revoke(batch: int) -> None:
        if batch == 4:  # three batches went out; from now on the running task holds a dead secret
            op.hook.connection.password = "revoked-secret"
            if gateway == "smsgateway24":
                sandbox.expire_tokens()  # the password changed and the session token ran out

    between_batches(op, revoke)
    with pytest.raises(SmsAuthError) as failed:
        op.execute(task_context())
    assert "revoked-secret" not in str(failed.value)
    sent_before = {m["recipient"] for m in sandbox.messages(gateway=gateway)}
    assert 0 < len(sent_before) < len(audience.valid)
    if gateway != "smsgateway24":
        refused = sandbox.stats()["requests"]["by_gateway"][gateway]
        assert refused > 3  # the 401 did reach the gateway

    # The secret is fixed (the connection reads right again) and Airflow retries the task.
    summary = make_operator(conn_id, sqlite_conn_id, audience.rows).execute(task_context(try_number=2))

    assert summary["accepted"] == len(audience.valid)
    assert_exactly_once(sandbox, gateway, sqlite_conn_id, audience)


def test_401_blips_during_a_textboost_campaign_are_retried_by_airflow_without_duplicates(
    sandbox, monkeypatch, sqlite_conn_id
):
    """The token fails now and then (every third batch meets a 401): each failed try is retried,
    and in the end every recipient has one message."""
    fast_backoff(monkeypatch)
    audience = seeded_audience(random.Random(3), 240)
    conn_id = set_connection(monkeypatch, "auth_blips_textboost", "textboost", sandbox.url)
    good = "sandbox-textboost-token-0123456789"
    failures = 0
    for attempt in range(1, 30):
        op = make_operator(conn_id, sqlite_conn_id, audience.rows)

        def blip(batch: int, op=op) -> None:
            op.hook.connection.password = "expired-token" if batch % 3 == 0 else good

        between_batches(op, blip)
        try:
            summary = op.execute(task_context(try_number=attempt))
            break
        except SmsGatewayError as exc:
            assert isinstance(exc, SmsAuthError), exc
            failures += 1
    else:
        pytest.fail("the campaign never finished")

    assert failures >= 2
    assert summary["accepted"] == len(audience.valid)
    assert_exactly_once(sandbox, "textboost", sqlite_conn_id, audience)
