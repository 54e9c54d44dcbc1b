"""Seeded fault runs: a campaign sent through a faulty gateway, retried like Airflow would, then audited.

Each run (``run_seed``; ``--runs N`` or ``SMS_RELIABILITY_RUNS``) draws from its seed: the gateway
(in turn), the main fault (in turn: 429 storm with Retry-After, 5xx burst, latency with read
timeouts, commit then drop, the sending process (a forked child) killed with SIGKILL mid-batch,
two processes sending the same campaign at once) plus up to two more, whether the template
changes between tries, the
audience (100-300 rows with invalid numbers, duplicates and opt-outs), the batch size, the hook's
attempt budget, how many batch requests are in flight at once (``max_in_flight`` 1, 2, 4 or 8) and
how many tries see the faults before a clean try. Every failed try must fail
with a gateway error (anything else is a crash), and in the end:

* no recipient holds more than one message at the sandbox (0 duplicates);
* every recipient meant to be messaged holds exactly one, or is ``rejected``/``ambiguous`` in the
  ledger (0 lost); an ``accepted`` row carries the id the sandbox gave its message;
* the ledger's rows add up to the input (messaged + opted out + invalid; duplicates counted apart).
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import signal
import time
from dataclasses import dataclass, field

import pytest

from airflow_provider_sms.exceptions import SmsGatewayError
from airflow_provider_sms.operators.send import SmsBulkSendOperator

from .helpers import (
    GATEWAYS,
    audit,
    fast_backoff,
    seeded_audience,
    set_connection,
    task_context,
)

pytestmark = pytest.mark.integration

FAULTS = ("429_storm", "5xx_burst", "latency", "commit_then_drop", "kill", "concurrent")
# Kinds that decide how the first try runs (at most one of them per plan).
PROCESS_KINDS = ("kill", "concurrent")
IN_FLIGHT = (1, 2, 4, 8)
TEMPLATES = (
    "Hi {{ first_name }}, your voucher for {{ campaign_key }} is ready.",  # one body per recipient
    "Spring sale: 20% off until Sunday. Reply STOP to opt out.",  # one body for all: big batches
)


@dataclass
class Plan:
    seed: int
    gateway: str
    kinds: list[str]
    size: int
    batch_size: int
    ledger: str
    faulty_tries: int
    max_attempts: int
    template: str
    faults: dict = field(default_factory=dict)
    timeout: float | None = None
    kill_after_sends: int = 1
    template_changes: bool = False  # each try renders another text (a template fixed between tries)
    in_flight: int = 1  # max_in_flight of every try


# Every run's ledger: SMS_RELIABILITY_LEDGER=postgres (or sqlite); by default one run in four on PostgreSQL.
LEDGER = os.environ.get("SMS_RELIABILITY_LEDGER") or None
if LEDGER not in (None, "sqlite", "postgres"):
    raise ValueError(f"SMS_RELIABILITY_LEDGER must be sqlite or postgres, got {LEDGER!r}")


def plan_for(seed: int) -> Plan:
    rng = random.Random(seed * 7919 + 17)
    primary = FAULTS[(seed // len(GATEWAYS)) % len(FAULTS)]
    others = [f for f in FAULTS if f != primary and f not in PROCESS_KINDS]
    kinds = [primary, *rng.sample(others, k=rng.choice([0, 0, 1, 2]))]
    plan = Plan(
        seed=seed,
        gateway=GATEWAYS[seed % len(GATEWAYS)],
        kinds=kinds,
        size=rng.randint(100, 300),
        batch_size=rng.choice([10, 25, 50, 100]),
        ledger=LEDGER or ("postgres" if seed % 4 == 3 else "sqlite"),
        faulty_tries=rng.randint(1, 3),
        max_attempts=rng.choice([2, 3, 5]),
        template=rng.choice(TEMPLATES),
        template_changes=rng.random() < 0.3,
        # Its own generator: the draws above stay what they were before max_in_flight existed.
        in_flight=random.Random(seed * 104_729 + 3).choice(IN_FLIGHT),
    )
    faults: dict = {"seed": seed}
    if "429_storm" in kinds:
        faults["rate_429"] = rng.uniform(0.3, 0.8)
        faults["retry_after"] = rng.choice([0.01, 0.02, 0.05])
    if "5xx_burst" in kinds:
        faults["rate_500"] = rng.uniform(0.1, 0.3)
        faults["rate_503"] = rng.uniform(0.05, 0.2)
    if "latency" in kinds:
        faults["latency_ms"] = rng.choice([5, 20, 60])
        if rng.random() < 0.5:  # the hook gives up before the answer comes: lost answers, read timeouts
            plan.timeout = faults["latency_ms"] / 2000
    if "commit_then_drop" in kinds:
        faults["commit_then_drop"] = rng.uniform(0.2, 0.6)
    if "kill" in kinds:
        faults.setdefault("latency_ms", rng.choice([10, 30]))  # keeps requests in flight while we kill
        plan.kill_after_sends = rng.randint(1, 4)
    if "concurrent" in kinds:
        faults.setdefault("latency_ms", rng.choice([10, 30]))  # keeps the two tries overlapping
    errors = sum(faults.get(k, 0.0) for k in ("rate_429", "rate_500", "rate_503"))
    if errors > 0.9:  # the sandbox wants the error rates to add up to at most 1
        for key in ("rate_429", "rate_500", "rate_503"):
            if key in faults:
                faults[key] *= 0.9 / errors
    plan.faults = faults
    return plan


def killed_try(plan: Plan, operator: SmsBulkSendOperator, attempt: int) -> bool:
    """Run one try in a forked child process and SIGKILL it after it has started a few send
    requests (plus a random pause: the kill lands mid-request, between requests or mid-ledger-write).
    Returns True if the child died by the kill, False if it finished first."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 1
        try:
            os.close(read_end)
            real_send = operator.hook.send_batch

            def announced_send(messages):
                os.write(write_end, b"S")  # a batch is about to leave
                return real_send(messages)

            operator.hook.send_batch = announced_send
            operator.execute(task_context(try_number=attempt))
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    started, deadline = 0, time.monotonic() + 120
    try:
        while started < plan.kill_after_sends and time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], 1.0)
            if ready:
                chunk = os.read(read_end, 64)
                if not chunk:  # the child ended before we killed it
                    break
                started += len(chunk)
        time.sleep(random.Random(plan.seed).uniform(0, 0.04))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(read_end)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    # A child that ended by itself must have failed like a task try may: with a gateway error.
    assert os.WEXITSTATUS(status) in (0, 1)
    return False


def concurrent_tries(operators: list[SmsBulkSendOperator], attempt: int) -> None:
    """Run the same try in two forked processes at once (a manual re-run beside the scheduled one,
    a retry beside a lost worker's try). Each must end like a task try may: done, or a gateway error."""
    pids = []
    for operator in operators:
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            status = 2
            try:
                operator.execute(task_context(try_number=attempt))
                status = 0
            except SmsGatewayError:
                status = 1
            finally:
                os._exit(status)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) in (0, 1), status


def test_seeded_fault_run_sends_each_message_exactly_once(run_seed, sandbox, monkeypatch, request, run_facts):
    plan = plan_for(run_seed)
    fast_backoff(monkeypatch)
    ledger_conn_id = request.getfixturevalue(f"{plan.ledger}_conn_id")
    audience = seeded_audience(random.Random(run_seed), plan.size, offset=run_seed * 1000)
    campaign_key = f"reliability-{run_seed}"
    conn_id = f"reliability_{plan.gateway}"

    def operator(attempt: int = 1) -> SmsBulkSendOperator:
        return SmsBulkSendOperator(
            task_id="send",
            sms_conn_id=conn_id,
            message=plan.template + (f" (v{attempt})" if plan.template_changes else ""),
            audience=audience.rows,
            unsubscribed_column="unsub",
            ledger_conn_id=ledger_conn_id,
            campaign_key=campaign_key,
            batch_size=plan.batch_size,
            max_reject_ratio=1.0,
            max_in_flight=plan.in_flight,
        )

    tries, killed, errors, summary = 0, False, [], None
    for attempt in range(1, plan.faulty_tries + 2):
        clean = attempt > plan.faulty_tries
        extra = {"max_attempts": plan.max_attempts}
        if not clean and plan.timeout:
            extra["timeout"] = plan.timeout
        set_connection(monkeypatch, conn_id, plan.gateway, sandbox.url, extra)
        if clean:
            sandbox.clear_faults()
        else:
            sandbox.set_faults(**plan.faults)
        tries += 1
        if attempt == 1 and "kill" in plan.kinds:
            killed = killed_try(plan, operator(attempt), attempt)
            continue
        if attempt == 1 and "concurrent" in plan.kinds:
            tries += 1
            concurrent_tries([operator(attempt), operator(attempt)], attempt)
            continue
        try:
            summary = operator(attempt).execute(task_context(try_number=attempt))
            break
        except SmsGatewayError as exc:  # a failed try; Airflow would retry the task
            errors.append(type(exc).__name__)
    injected = sandbox.stats()["faults"]["injected"]
    sandbox.clear_faults()
    assert summary is not None, f"the clean try failed too: {errors}"
    ambiguous_after_success = summary["ambiguous"]
    if ambiguous_after_success:
        # A try can succeed with rows it could not settle (every look-up failed too). A re-run of
        # the campaign on a healthy gateway looks them up again; what it finds is accepted.
        set_connection(monkeypatch, conn_id, plan.gateway, sandbox.url, {"max_attempts": plan.max_attempts})
        tries += 1
        summary = operator(tries).execute(task_context(try_number=tries))

    found = audit(sandbox, plan.gateway, ledger_conn_id, campaign_key, audience)
    facts = {
        "seed": run_seed,
        "gateway": plan.gateway,
        "faults": plan.kinds + (["template_change"] if plan.template_changes else []),
        "ledger": plan.ledger,
        "recipients": plan.size,
        "in_flight": plan.in_flight,
        "tries": tries,
        "killed": killed,
        "errors": errors,
        "injected": {k: v for k, v in injected.items() if v},
        "accepted": found.accepted,
        "ambiguous_after_success": ambiguous_after_success,
        "ambiguous": found.ambiguous,
        "ambiguous_sent": found.ambiguous_sent,
        "duplicates": len(found.duplicates),
        "lost": len(found.lost),
        "misreported": len(found.misreported) + len(found.unexpected),
    }
    run_facts.append(facts)
    assert found.problems == {}, facts
    # The last try looked every unsettled row up on a healthy gateway: what it holds must be found.
    assert found.ambiguous_sent == 0, facts
    expected_rows = len(audience.valid) + len(audience.suppressed) + audience.invalid
    assert sum(found.counts.values()) == expected_rows, (found.counts, facts)
    assert summary["input"] == plan.size
    assert summary["duplicates"] == audience.duplicates
    assert summary["suppressed"] == len(audience.suppressed)
    parts = ("accepted", "rejected", "suppressed", "duplicates", "ambiguous")
    assert sum(summary[k] for k in parts) == plan.size, summary
    assert found.counts["pending"] == found.counts["sending"] == 0, found.counts
