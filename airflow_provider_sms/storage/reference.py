"""The ledger's per-row statements, as they were before every batch change became one statement.

Kept as the reference the set-based statements of :class:`~airflow_provider_sms.storage.ledger.
MessageLedger` are tested against (``tests/storage/test_set_based.py`` runs both on the same random
sequences and compares the tables) and measured against (``python -m benchmarks --only ledger``);
the ledger itself falls back to them only where SQLite is older than 3.33 (no ``UPDATE ... FROM``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from airflow_provider_sms.messages import SendOutcome
from airflow_provider_sms.storage import ledger as _ledger
from airflow_provider_sms.storage.table import IN_SLICE, utcnow


def record(ledger: _ledger.MessageLedger, campaign_key: str, entries: Iterable[_ledger.LedgerEntry]) -> int:
    """One ``INSERT ... ON CONFLICT DO NOTHING`` per row (``executemany``), in one transaction."""
    _ledger.check_campaign_key(campaign_key)
    now = ledger.ts(utcnow())
    names = [name for name, _ in _ledger.COLUMNS]
    rows = (
        (
            campaign_key,
            e.recipient,
            e.idempotency_key,
            ledger.gateway,
            ledger.sms_conn_id,
            e.source_row,
            e.body_hash,
            e.segments,
            e.state,
            e.message_id,
            None,
            None,
            e.error,
            0,
            now,
            now,
            None,
        )
        for e in entries
    )
    return ledger.insert_ignore(names, rows, _ledger.KEY)


def claim(
    ledger: _ledger.MessageLedger, campaign_key: str, claims: Sequence[tuple[str, str | None, int | None]]
) -> tuple[datetime, set[str]]:
    """One conditional ``UPDATE ... IN (...)`` per 500 recipients, then one ``UPDATE`` per changed text."""
    now = utcnow()
    stamp = ledger.ts(now)
    recipients = [recipient for recipient, _, _ in claims]
    claimed: set[str] = set()
    q, ph = ledger.quoted, ledger.ph
    with ledger.transaction() as cursor:
        for start in range(0, len(recipients), IN_SLICE):
            part = recipients[start : start + IN_SLICE]
            cursor.execute(
                f"UPDATE {q} SET state = {ph}, attempts = attempts + 1, "
                f"sent_at = {ph}, updated_at = {ph} WHERE campaign_key = {ph} "
                f"AND state = {ph} AND recipient IN {ledger.in_clause(len(part))}",
                (_ledger.SENDING, stamp, stamp, campaign_key, _ledger.PENDING, *part),
            )
            if cursor.rowcount == len(part):
                claimed.update(part)
                continue
            cursor.execute(
                f"SELECT recipient FROM {q} WHERE campaign_key = {ph} "
                f"AND state = {ph} AND sent_at = {ph} "
                f"AND recipient IN {ledger.in_clause(len(part))}",
                (campaign_key, _ledger.SENDING, stamp, *part),
            )
            claimed.update(row[0] for row in cursor.fetchall())
        texts = [(h, n, campaign_key, r) for r, h, n in claims if r in claimed and h is not None]
        if texts:
            ledger._executemany(
                cursor,
                f"UPDATE {q} SET body_hash = {ph}, segments = {ph} "
                f"WHERE campaign_key = {ph} AND recipient = {ph}",
                texts,
            )
    return now, claimed


def suppress(ledger: _ledger.MessageLedger, campaign_key: str, reasons: dict[str, str]) -> None:
    """One conditional ``UPDATE`` per row, in one transaction."""
    now = ledger.ts(utcnow())
    ph = ledger.ph
    ledger.executemany(
        f"UPDATE {ledger.quoted} SET state = {ph}, error = {ph}, updated_at = {ph} "
        f"WHERE campaign_key = {ph} AND recipient = {ph} AND state = {ph}",
        (
            (_ledger.SUPPRESSED, reason, now, campaign_key, r, _ledger.PENDING)
            for r, reason in reasons.items()
        ),
    )


def mark(ledger: _ledger.MessageLedger, campaign_key: str, outcomes: Iterable[SendOutcome]) -> int:
    """One ``UPDATE`` per outcome, in one transaction."""
    now = ledger.ts(utcnow())
    ph = ledger.ph
    return ledger.executemany(
        f"UPDATE {ledger.quoted} SET state = {ph}, message_id = {ph}, status = {ph}, "
        f"raw_status = {ph}, error = {ph}, updated_at = {ph} "
        f"WHERE campaign_key = {ph} AND recipient = {ph}",
        (
            (o.state, o.message_id, o.status, o.raw_status, o.error, now, campaign_key, o.recipient)
            for o in outcomes
        ),
    )


class PerRowLedger(_ledger.MessageLedger):
    """A :class:`MessageLedger` whose batch changes are the per-row statements above."""

    def record(self, campaign_key: str, entries: Iterable[_ledger.LedgerEntry]) -> int:
        return record(self, campaign_key, entries)

    def claim(
        self, campaign_key: str, claims: Sequence[tuple[str, str | None, int | None]]
    ) -> tuple[datetime, set[str]]:
        return claim(self, campaign_key, claims)

    def suppress(self, campaign_key: str, reasons: dict[str, str]) -> None:
        suppress(self, campaign_key, reasons)

    def mark(self, campaign_key: str, outcomes: Iterable[SendOutcome]) -> int:
        return mark(self, campaign_key, outcomes)
