"""Shared by the reliability tests: connections with per-run extras, seeded audiences, fast retry
back-off, and the exactly-once audit of a campaign (sandbox against ledger against input)."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest

from airflow_provider_sms.messages import InvalidPhoneNumberError, normalize_phone
from airflow_provider_sms.storage.ledger import (
    ACCEPTED,
    AMBIGUOUS,
    REJECTED,
    STATES,
    SUPPRESSED,
    MessageLedger,
)

GATEWAYS = ("smstools", "smsgateway24", "textboost")
SENDER = "Shop"


def credentials(
    gateway: str,
    *,
    client_secret: str = "sandbox-client-secret-0123456789",
    password: str = "sandbox-password-0123",
    token: str = "sandbox-textboost-token-0123456789",
) -> dict[str, Any]:
    """A connection's login/password/extra for ``gateway`` (the sandbox defaults unless given)."""
    if gateway == "smstools":
        return {"login": "sandbox-client-id", "password": client_secret, "extra": {"sender_id": SENDER}}
    if gateway == "smsgateway24":
        return {"login": "sandbox@example.com", "password": password, "extra": {"device_id": 1001, "sim": 0}}
    return {"password": token, "extra": {"sender_id": SENDER}}


def set_connection(
    monkeypatch: pytest.MonkeyPatch,
    conn_id: str,
    gateway: str,
    url: str,
    extra: dict | None = None,
    **secrets,
) -> str:
    """``AIRFLOW_CONN_<CONN_ID>`` for ``gateway`` at ``url``, with ``extra`` merged into its extras."""
    config = credentials(gateway, **secrets)
    config["extra"] = {**config.get("extra", {}), **(extra or {})}
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": gateway, "host": url, **config})
    )
    return conn_id


def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink the hooks' exponential back-off (and its jitter, which scales with it) to milliseconds.

    Only the pauses change, not which failures are retried; the sandbox's Retry-After values (set per
    run, fractions of a second) are still what the hooks wait on a 429.
    """
    from airflow_provider_sms.hooks import base

    monkeypatch.setattr(base, "DEFAULT_BACKOFF", 0.005)
    monkeypatch.setattr(base, "MAX_BACKOFF", 0.05)


def task_context(run_id: str = "manual__1", try_number: int = 1) -> dict:
    return {
        "ti": SimpleNamespace(dag_id="reliability", task_id="send", try_number=try_number, map_index=-1),
        "logical_date": pendulum.datetime(2026, 11, 23, 9),
        "run_id": run_id,
        "ds": "2026-11-23",
        "params": {},
    }


def phone(i: int) -> str:
    return f"+49151{10_000_000 + i:08d}"


@dataclass
class Audience:
    """A seeded audience and what each row should become."""

    rows: list[dict[str, Any]]
    valid: set[str] = field(default_factory=set)  # distinct E.164 numbers expected to be messaged
    suppressed: set[str] = field(default_factory=set)
    invalid: int = 0
    duplicates: int = 0


def seeded_audience(rng: random.Random, size: int, offset: int = 0) -> Audience:
    """``size`` rows: mostly valid German mobiles, with a few invalid numbers, duplicates in other
    formats and opted-out rows mixed in at random positions."""
    rows: list[dict[str, Any]] = []
    for i in range(size):
        number = phone(offset + i)
        roll = rng.random()
        row = {
            "phone": number,
            "first_name": rng.choice(["Ana", "Ben", "Chloé", "Dmitri", "Eve"]),
            "unsub": 0,
        }
        if roll < 0.02:
            row["phone"] = rng.choice(["12", "not a number", "", None, "+999123"])
        elif roll < 0.04 and rows:
            earlier = rng.choice(rows)["phone"]
            if isinstance(earlier, str) and earlier.startswith("+49"):
                row["phone"] = earlier.replace("+49", "0049 ")  # the same number, another format
        elif roll < 0.06:
            row["unsub"] = 1
        rows.append(row)
    audience = Audience(rows)
    seen: set[str] = set()
    for row in rows:
        try:
            number = normalize_phone(row["phone"])
        except InvalidPhoneNumberError:
            audience.invalid += 1
            continue
        if number in seen:
            audience.duplicates += 1
            continue
        seen.add(number)
        (audience.suppressed if row["unsub"] else audience.valid).add(number)
    return audience


@dataclass
class Audit:
    """The exactly-once audit of one campaign."""

    counts: Counter
    duplicates: list[str]  # recipients holding more than one message at the sandbox
    lost: list[str]  # meant to be sent, not at the sandbox, and not reported as rejected/ambiguous
    misreported: list[str]  # at the sandbox but ``rejected`` in the ledger, or ``accepted`` with another id
    unexpected: list[str]  # at the sandbox but never meant to be sent (suppressed, not in the audience)
    accepted: int
    ambiguous: int
    ambiguous_sent: int  # ambiguous rows whose message the gateway does hold (a look-up could find it)

    @property
    def problems(self) -> dict[str, list[str]]:
        found = {
            "duplicates": self.duplicates,
            "lost": self.lost,
            "misreported": self.misreported,
            "unexpected": self.unexpected,
        }
        return {k: v[:10] for k, v in found.items() if v}


def audit(sandbox, gateway: str, ledger_conn_id: str, campaign_key: str, audience: Audience) -> Audit:
    """Compare what the sandbox holds with the ledger and with the input."""
    ledger = MessageLedger(ledger_conn_id)
    try:
        rows = {e.recipient: e for e in ledger.in_state(campaign_key, STATES)}
        counts = ledger.counts(campaign_key)
    finally:
        ledger.close()
    at_gateway: dict[str, list[dict]] = {}
    for message in sandbox.messages(gateway=gateway):
        at_gateway.setdefault(message["recipient"], []).append(message)
    duplicates = sorted(r for r, ms in at_gateway.items() if len(ms) > 1 or any(m["count"] > 1 for m in ms))
    lost, misreported = [], []
    for recipient in sorted(audience.valid):
        entry = rows.get(recipient)
        present = recipient in at_gateway
        if entry is None:
            lost.append(f"{recipient}: no ledger row")
        elif entry.state == ACCEPTED and not present:
            lost.append(f"{recipient}: accepted in the ledger, absent at the gateway")
        elif entry.state not in (ACCEPTED, REJECTED, AMBIGUOUS) and not present:
            lost.append(f"{recipient}: {entry.state} in the ledger, absent at the gateway")
        elif entry.state not in (ACCEPTED, AMBIGUOUS) and present:
            misreported.append(f"{recipient}: {entry.state} in the ledger, but sent")
        elif entry.state == ACCEPTED and present:
            ids = {str(m["id"]) for m in at_gateway[recipient]}
            if entry.message_id is not None and str(entry.message_id) not in ids:
                misreported.append(f"{recipient}: ledger id {entry.message_id}, gateway ids {sorted(ids)}")
    for recipient in audience.suppressed:
        if rows.get(recipient) is None or rows[recipient].state != SUPPRESSED:
            misreported.append(f"{recipient}: opted out but {getattr(rows.get(recipient), 'state', None)}")
    unexpected = sorted(set(at_gateway) - audience.valid)
    return Audit(
        counts=counts,
        duplicates=duplicates,
        lost=lost,
        misreported=misreported,
        unexpected=unexpected,
        accepted=counts[ACCEPTED],
        ambiguous=counts[AMBIGUOUS],
        ambiguous_sent=sum(1 for r, e in rows.items() if e.state == AMBIGUOUS and r in at_gateway),
    )
