"""SmsBulkSendOperator with several batch requests in flight (``max_in_flight``): the sandbox over
HTTP, the ledger on SQLite (and PostgreSQL where named). Exactly once must hold as with one."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_sms.exceptions import SmsGatewayError
from airflow_provider_sms.storage.ledger import ACCEPTED, PENDING, MessageLedger
from tests.operators.test_send import GATEWAYS, audience, context, make_operator, sent_messages

IN_FLIGHT = 4


def _ledger_matches_the_sandbox(sandbox, gateway: str, ledger_conn_id: str, accepted: int) -> None:
    """Every recipient the ledger holds accepted arrived exactly once, and nothing else arrived."""
    received = sent_messages(sandbox, gateway)
    assert Counter(m["count"] for m in received) == {1: accepted}
    ledger = MessageLedger(ledger_conn_id)
    try:
        in_ledger = {e.recipient for e in ledger.in_state("spring-sale", [ACCEPTED])}
    finally:
        ledger.close()
    assert {m["recipient"] for m in received} == in_ledger
    assert len(in_ledger) == accepted


def _execute_until_the_ledger_fails(
    op, method: str, nth: int, before_failing: Callable[[], object] = lambda: None
) -> list[list]:
    """Run ``op`` with ``MessageLedger.<method>`` failing on its ``nth`` call (the database went
    away; ``before_failing`` is called first), which the run must raise; the rows each call was
    given, in order."""
    real, calls = getattr(MessageLedger, method), []

    def failing(self, campaign_key, rows):
        rows = list(rows)
        calls.append(rows)
        if len(calls) == nth:
            before_failing()
            raise RuntimeError("the ledger's database went away")
        return real(self, campaign_key, rows)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MessageLedger, method, failing)
        with pytest.raises(RuntimeError, match="went away"):
            op.execute(context())
    return calls


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_requests_in_parallel_send_each_recipient_once(gateway, sandbox, sms_conn_env, sql_conn_id):
    """The first two requests wait for each other at a barrier: the run only gets past it because
    they are at the gateway at the same time (one at a time, it would break after 30 s)."""
    op = make_operator(sms_conn_env[gateway], sql_conn_id, batch_size=100, max_in_flight=IN_FLIGHT)
    real_send, calls, lock = op.hook.send_batch, [], threading.Lock()
    barrier = threading.Barrier(2, timeout=30)

    def meets_the_next(messages):
        with lock:
            calls.append(len(messages))
            first_two = len(calls) <= 2
        if first_two:
            barrier.wait()
        return real_send(messages)

    op.hook.send_batch = meets_the_next
    summary = op.execute(context())

    assert summary["accepted"] == 990 and summary["ambiguous"] == 0 and summary["rejected"] == 3
    assert sorted(calls) == [90] + [100] * 9
    _ledger_matches_the_sandbox(sandbox, gateway, sql_conn_id, 990)


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_faults_with_requests_in_parallel_still_send_exactly_once(
    gateway, sandbox, sms_conn_env, sqlite_conn_id
):
    """500s, answers dropped after the commit and latency, on every request (look-ups included):
    a failed try is allowed, the retry must complete it with no recipient messaged twice."""
    people = audience(600)
    sandbox.set_faults(rate_500=0.15, commit_then_drop=0.2, latency_ms=15, seed=11)
    with contextlib.suppress(SmsGatewayError):
        make_operator(
            sms_conn_env[gateway], sqlite_conn_id, audience=people, batch_size=20, max_in_flight=IN_FLIGHT
        ).execute(context())
    injected = sandbox.stats()["faults"]["injected"]
    assert injected["commit_then_drop"] > 0 and injected["500"] > 0
    received = sent_messages(sandbox, gateway)
    assert all(m["count"] == 1 for m in received)  # exactly once already after the faulty try

    sandbox.clear_faults()
    summary = make_operator(
        sms_conn_env[gateway], sqlite_conn_id, audience=people, max_in_flight=IN_FLIGHT
    ).execute(context())
    assert summary["accepted"] == 590 and summary["ambiguous"] == 0
    _ledger_matches_the_sandbox(sandbox, gateway, sqlite_conn_id, 590)


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_failure_mid_flight_stops_what_has_not_left_and_settles_what_has(
    gateway, sandbox, sms_conn_env, sql_conn_id
):
    """The fifth request is refused for good while others are at the gateway (latency keeps them
    there): those that left are recorded as the gateway answered, no request leaves after the
    failure is seen, nothing stays ``sending``, and the retry sends the rest exactly once."""
    sandbox.set_faults(latency_ms=40)
    op = make_operator(sms_conn_env[gateway], sql_conn_id, batch_size=50, max_in_flight=IN_FLIGHT)
    real_send, calls, lock = op.hook.send_batch, [], threading.Lock()
    refused: list[str] = []

    def fails_on_the_fifth(messages):
        with lock:
            calls.append(messages[0].to)
            fifth = len(calls) == 5
        if fifth:
            refused.extend(m.to for m in messages)
            raise SmsGatewayError("401 Unauthenticated", gateway=gateway)
        return real_send(messages)

    op.hook.send_batch = fails_on_the_fifth
    with pytest.raises(SmsGatewayError):
        op.execute(context())

    # The fifth failed while at most IN_FLIGHT - 1 others were at the gateway, and one more queued
    # may have been picked up before the failure was flagged: none after that.
    assert 5 <= len(calls) <= 5 + IN_FLIGHT
    ledger = MessageLedger(sql_conn_id)
    counts = ledger.counts("spring-sale")
    pending = {e.recipient for e in ledger.in_state("spring-sale", [PENDING])}
    ledger.close()
    assert counts.get("sending", 0) == 0
    assert counts[ACCEPTED] == 50 * (len(calls) - 1)  # every request that left and was answered
    assert set(refused) <= pending and counts[PENDING] == 990 - counts[ACCEPTED]
    _ledger_matches_the_sandbox(sandbox, gateway, sql_conn_id, counts[ACCEPTED])

    sandbox.clear_faults()
    summary = make_operator(sms_conn_env[gateway], sql_conn_id, max_in_flight=IN_FLIGHT).execute(context())
    assert summary["accepted"] == 990
    _ledger_matches_the_sandbox(sandbox, gateway, sql_conn_id, 990)


def test_a_failure_in_the_run_itself_settles_every_request_that_left(sandbox, sms_conn_env, sql_conn_id):
    """The ledger write of the second answer fails (the run's own failure, not the gateway's):
    the requests already at the gateway are still recorded; the batch whose write failed stays
    ``sending`` and the retry finds it at the gateway instead of sending it again."""
    sandbox.set_faults(latency_ms=40)
    op = make_operator(sms_conn_env["smstools"], sql_conn_id, batch_size=50, max_in_flight=IN_FLIGHT)
    _execute_until_the_ledger_fails(op, "mark", 2)
    ledger = MessageLedger(sql_conn_id)
    counts = ledger.counts("spring-sale")
    ledger.close()
    assert counts["sending"] == 50  # the batch whose answer could not be written
    left = len(sent_messages(sandbox, "smstools")) // 50
    assert left >= 2 and counts[ACCEPTED] == 50 * (left - 1)  # all the others that left: recorded
    assert counts[PENDING] == 990 - 50 * left

    sandbox.clear_faults()
    summary = make_operator(sms_conn_env["smstools"], sql_conn_id, max_in_flight=IN_FLIGHT).execute(context())
    assert summary["accepted"] == 990
    _ledger_matches_the_sandbox(sandbox, "smstools", sql_conn_id, 990)


def test_a_claim_that_fails_sends_nothing_of_its_batch(sandbox, sms_conn_env, sql_conn_id):
    """The ledger write that commits the fourth batch as ``sending`` fails: no message of that batch
    leaves, nor any batch after it (an earlier one still queued may stay, as after any failure
    that ends the run); those that left are recorded as the gateway answered, the rest is
    ``pending``, and the retry sends it exactly once."""
    sandbox.set_faults(latency_ms=40)
    op = make_operator(sms_conn_env["smstools"], sql_conn_id, batch_size=50, max_in_flight=IN_FLIGHT)
    # The fourth claim fails once the first batch is at the gateway, so that something has left
    # whatever the threads' timing (the run's halt would stop a request not picked up yet).
    real_send, first_answered = op.hook.send_batch, threading.Event()

    def send_batch(messages):
        try:
            return real_send(messages)
        finally:
            first_answered.set()

    op.hook.send_batch = send_batch
    claims = _execute_until_the_ledger_fails(
        op, "record_sending", 4, before_failing=lambda: first_answered.wait(timeout=60)
    )
    refused = [e.recipient for e in claims[3]]
    received = {m["recipient"] for m in sent_messages(sandbox, "smstools")}
    first_three = {e.recipient for batch in claims[:3] for e in batch}
    assert len(refused) == 50 and received <= first_three and received
    ledger = MessageLedger(sql_conn_id)
    counts = ledger.counts("spring-sale")
    pending = {e.recipient for e in ledger.in_state("spring-sale", [PENDING])}
    ledger.close()
    assert counts.get("sending", 0) == 0 and counts[ACCEPTED] == len(received)
    assert set(refused) <= pending and counts[PENDING] == 990 - len(received)
    _ledger_matches_the_sandbox(sandbox, "smstools", sql_conn_id, len(received))

    sandbox.clear_faults()
    summary = make_operator(sms_conn_env["smstools"], sql_conn_id, max_in_flight=IN_FLIGHT).execute(context())
    assert summary["accepted"] == 990
    _ledger_matches_the_sandbox(sandbox, "smstools", sql_conn_id, 990)


def test_on_postgresql_claims_and_marks_run_in_their_own_threads(sandbox, sms_conn_env, postgres_conn_id):
    """On PostgreSQL the main thread hands the ledger's writes on: claims in one thread, marks in
    another (each on its own connection), and every request leaves after its claim returned."""
    op = make_operator(sms_conn_env["smstools"], postgres_conn_id, batch_size=100, max_in_flight=2)
    real_record_sending, real_mark, real_send = (
        MessageLedger.record_sending,
        MessageLedger.mark,
        op.hook.send_batch,
    )
    seen: dict[str, set[tuple[str, int]]] = {"claim": set(), "mark": set()}
    claimed: set[str] = set()
    early: list[str] = []

    def record_sending(self, campaign_key, entries):
        seen["claim"].add((threading.current_thread().name, id(self)))
        result = real_record_sending(self, campaign_key, entries)
        claimed.update(result[1])
        return result

    def mark(self, campaign_key, outcomes):
        seen["mark"].add((threading.current_thread().name, id(self)))
        return real_mark(self, campaign_key, outcomes)

    def send_batch(messages):
        early.extend(m.to for m in messages if m.to not in claimed)
        return real_send(messages)

    op.hook.send_batch = send_batch
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MessageLedger, "record_sending", record_sending)
        patch.setattr(MessageLedger, "mark", mark)
        summary = op.execute(context())
    assert summary["accepted"] == 990 and not early
    ((claim_thread, claim_ledger),) = seen["claim"]
    ((mark_thread, mark_ledger),) = seen["mark"]
    assert claim_thread.startswith("sms-claims") and mark_thread.startswith("sms-marks")
    assert claim_ledger != mark_ledger
    _ledger_matches_the_sandbox(sandbox, "smstools", postgres_conn_id, 990)


@pytest.mark.parametrize("gateway", ["smstools", "smsgateway24"])
def test_outcomes_are_written_in_the_order_the_requests_were_made(
    gateway, sandbox, sms_conn_env, sql_conn_id, monkeypatch
):
    """Earlier requests are held longer, so answers arrive out of order: the ledger's writes (and
    the summary) are the same as with one request at a time."""
    real_mark = MessageLedger.mark
    written: dict[int, list[str]] = {}

    def recording_mark(self, campaign_key, outcomes):
        outcomes = list(outcomes)
        written.setdefault(current, []).extend(f"{o.recipient}:{o.state}" for o in outcomes)
        return real_mark(self, campaign_key, outcomes)

    monkeypatch.setattr(MessageLedger, "mark", recording_mark)
    summaries = {}
    for current in (1, IN_FLIGHT):
        sandbox.reset()
        op = make_operator(
            sms_conn_env[gateway],
            sql_conn_id,
            batch_size=60,
            max_in_flight=current,
            campaign_key=f"order-{current}",
        )
        real_send, calls, lock = op.hook.send_batch, [], threading.Lock()

        def held(messages, real_send=real_send, calls=calls, lock=lock):
            with lock:
                calls.append(None)
                index = len(calls)
            time.sleep(0.01 * (4 - index % 4))  # the first of every four answers last
            return real_send(messages)

        op.hook.send_batch = held
        summary = op.execute(context())
        summaries[current] = {k: v for k, v in summary.items() if k != "campaign_key"}
    assert summaries[1] == summaries[IN_FLIGHT]
    assert written[1] == written[IN_FLIGHT] and len(written[1]) == 990


def test_max_in_flight_is_validated_and_templated(sandbox, sms_conn_env, sqlite_conn_id):
    for wrong in (0, -1, "two", 1.5, True):
        with pytest.raises(ValueError, match="max_in_flight"):
            make_operator(sms_conn_env["smstools"], sqlite_conn_id, max_in_flight=wrong)
    op = make_operator(sms_conn_env["smstools"], sqlite_conn_id, max_in_flight="{{ params.n }}")
    assert "max_in_flight" in op.template_fields
    op.max_in_flight = "3"  # as rendered
    assert op.settings.max_in_flight == 3
    op = make_operator(sms_conn_env["smstools"], sqlite_conn_id, max_in_flight="{{ params.n }}")
    op.max_in_flight = "0"
    with pytest.raises(AirflowFailException, match="max_in_flight"):
        op.settings  # noqa: B018
