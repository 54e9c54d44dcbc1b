"""Delivery simulation.

A message's status is a pure function of its send time, its recipient and the sandbox clock, so
nothing runs per message (no timers, no background sweeps): reading a status is O(1), and advancing
the clock moves every message at once.

Outcome by recipient (deterministic, documented in the README): numbers ending in ``13`` are not
delivered, numbers ending in ``66`` fail, all others are delivered.
"""

from __future__ import annotations

DELIVERED = "delivered"
UNDELIVERED = "undelivered"
FAILED = "failed"

# Each timeline lists (share of delivery_seconds after which the status begins, raw status).
_SMSTOOLS = {
    DELIVERED: ((0.0, "queued"), (0.5, "sent"), (1.0, "delivered")),
    UNDELIVERED: ((0.0, "queued"), (0.5, "sent"), (1.0, "undelivered")),
    FAILED: ((0.0, "queued"), (0.5, "sent"), (1.0, "failed")),
}
_TEXTBOOST = {
    outcome: tuple((start, raw.capitalize()) for start, raw in steps) for outcome, steps in _SMSTOOLS.items()
}
# SmsGateway24: 1 pending on the server → 3 queued on the phone → 2 taken by the phone → 6 sent →
# 7 delivered / 8 not delivered. A failure (9) means the phone could not send it, so it never shows 6.
# The first status lasts longest, so a client that checks right after sending reliably sees it.
_SMSGATEWAY24 = {
    DELIVERED: ((0.0, 1), (0.4, 3), (0.6, 2), (0.8, 6), (1.0, 7)),
    UNDELIVERED: ((0.0, 1), (0.4, 3), (0.6, 2), (0.8, 6), (1.0, 8)),
    FAILED: ((0.0, 1), (0.4, 3), (0.6, 2), (1.0, 9)),
}
TIMELINES: dict[str, dict[str, tuple[tuple[float, str | int], ...]]] = {
    "smstools": _SMSTOOLS,
    "smsgateway24": _SMSGATEWAY24,
    "textboost": _TEXTBOOST,
}
SCHEDULED: dict[str, str | int] = {"smstools": "scheduled", "smsgateway24": 1, "textboost": "Scheduled"}

# Raw → normalised, exactly the mapping of gateways.md (the words the sandbox itself emits).
_SMSTOOLS_NORMALIZED = {
    "delivered": "delivered",
    "sent": "sent",
    "submitted": "sent",
    "buffered": "sent",
    "queued": "queued",
    "pending": "queued",
    "scheduled": "queued",
    "undelivered": "undelivered",
    "expired": "undelivered",
    "failed": "failed",
    "error": "failed",
    "rejected": "rejected",
    "blocked": "rejected",
    "unsubscribed": "rejected",
}
_TEXTBOOST_NORMALIZED = {
    "delivered": "delivered",
    "sent": "sent",
    "enroute": "sent",
    "submitted": "sent",
    "pending": "queued",
    "queued": "queued",
    "scheduled": "scheduled",
    "undelivered": "undelivered",
    "expired": "undelivered",
    "failed": "failed",
    "rejected": "rejected",
    "blocked": "rejected",
}
_SMSGATEWAY24_NORMALIZED: dict[str | int, str] = {
    1: "queued",
    3: "queued",
    2: "sending",
    5: "received",
    6: "sent",
    7: "delivered",
    8: "undelivered",
    **{code: "failed" for code in (9, 10, 11, 12, 100, 101)},
}


def outcome_for(recipient: str) -> str:
    """The final outcome of a message to ``recipient`` (E.164)."""
    tail = recipient[-2:]
    if tail == "13":
        return UNDELIVERED
    if tail == "66":
        return FAILED
    return DELIVERED


def raw_status(
    gateway: str,
    recipient: str,
    send_at: float,
    now: float,
    delivery_seconds: float,
    outcome: str | None = None,
) -> str | int:
    """The gateway's own status of a message at ``now`` (``outcome`` overrides the recipient's)."""
    if now < send_at:
        return SCHEDULED[gateway]
    steps = TIMELINES[gateway][outcome or outcome_for(recipient)]
    if delivery_seconds <= 0:
        return steps[-1][1]
    progress = (now - send_at) / delivery_seconds
    status = steps[0][1]
    for start, raw in steps:
        if progress < start:
            break
        status = raw
    return status


def status_started_at(
    gateway: str,
    recipient: str,
    send_at: float,
    raw: str | int,
    delivery_seconds: float,
    outcome: str | None = None,
) -> float | None:
    """When a message entered status ``raw`` (None if its timeline never has it)."""
    for start, step in TIMELINES[gateway][outcome or outcome_for(recipient)]:
        if step == raw:
            return send_at + start * max(delivery_seconds, 0.0)
    return None


def normalize(gateway: str, raw: str | int, scheduled: bool = False) -> str:
    """Normalised status of a raw gateway status (``unknown`` when it is not in the mapping)."""
    if gateway == "smsgateway24":
        if raw == 1 and scheduled:
            return "scheduled"
        return _SMSGATEWAY24_NORMALIZED.get(raw, "unknown")
    table = _SMSTOOLS_NORMALIZED if gateway == "smstools" else _TEXTBOOST_NORMALIZED
    return table.get(str(raw).lower(), "unknown")
