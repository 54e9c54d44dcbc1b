"""What the campaigns pages must show, computed straight from the tables with SQL of its own.

Independent of ``storage/campaigns.py``: delivery outcomes come from joining the ledger's accepted
rows with the report on (gateway, message id), not from the report's ``campaign_key``, so the
comparison also checks that every report row carries the right campaign.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FINAL = ("delivered", "undelivered", "failed", "rejected")


def expected_campaigns(
    query: Callable[[str], list[tuple]],
    ledger: str = "sms_messages",
    report: str = "sms_delivery_report",
    cost_per_segment: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Per campaign key, the figures of ``Row.as_dict()`` (plugins/pages.py) but its DAG runs."""
    final = ", ".join(f"'{s}'" for s in FINAL)
    rows = query(
        "SELECT l.campaign_key, MIN(l.gateway), MIN(l.conn_id), COUNT(*), "
        "SUM(CASE WHEN l.state = 'accepted' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN l.state = 'rejected' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN l.state = 'suppressed' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN l.state IN ('pending', 'sending', 'ambiguous') THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN l.state = 'accepted' THEN COALESCE(l.segments, 0) ELSE 0 END), "
        "SUM(CASE WHEN r.status = 'delivered' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN r.status = 'undelivered' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN r.status IN ('failed', 'rejected') THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN l.state = 'accepted' AND (r.status IS NULL OR r.status NOT IN ({final})) "
        "THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN r.message_id IS NOT NULL THEN 1 ELSE 0 END) "
        f"FROM {ledger} l LEFT JOIN {report} r ON l.state = 'accepted' AND r.gateway = l.gateway "
        "AND r.message_id = l.message_id GROUP BY l.campaign_key"
    )
    reasons: dict[str, dict[str, dict[str, int]]] = {}
    for key, state, error, count in query(
        f"SELECT campaign_key, state, COALESCE(error, ''), COUNT(*) FROM {ledger} "
        "WHERE state IN ('rejected', 'suppressed') GROUP BY campaign_key, state, COALESCE(error, '')"
    ):
        reasons.setdefault(key, {}).setdefault(state, {})[error or "(no reason given)"] = int(count)
    out = {}
    for row in rows:
        key, gateway, conn_id, *numbers = row
        (recipients, accepted, rejected, suppressed, unsent, segments, delivered, undelivered, failed,
         pending, reported) = (int(n or 0) for n in numbers)  # fmt: skip
        out[key] = {
            "campaign_key": key,
            "gateway": gateway,
            "sms_conn_id": conn_id,
            "recipients": recipients,
            "accepted": accepted,
            "rejected": rejected,
            "suppressed": suppressed,
            "unsent": unsent,
            "rejected_reasons": reasons.get(key, {}).get("rejected", {}),
            "suppressed_reasons": reasons.get(key, {}).get("suppressed", {}),
            "delivered": delivered,
            "undelivered": undelivered,
            "failed": failed,
            "pending": pending,
            "delivery_rate": round(delivered / accepted, 6) if reported and accepted else None,
            "segments": segments,
            "estimated_cost": None if cost_per_segment is None else round(segments * cost_per_segment, 4),
        }
    return out


def started(query: Callable[[str], list[tuple]], ledger: str = "sms_messages") -> dict[str, Any]:
    """Each campaign's first ledger row's ``created_at``, as stored."""
    return {
        key: value
        for key, value in query(f"SELECT campaign_key, MIN(created_at) FROM {ledger} GROUP BY campaign_key")
    }
