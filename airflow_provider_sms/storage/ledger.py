"""The message ledger: one row per (campaign, recipient), written before anything is sent.

It is what makes a bulk send exactly-once across task retries, worker crashes and re-runs:
``pending`` (recorded) → ``sending`` (a request is about to leave) → ``accepted`` (gateway id known)
or ``rejected`` (with the reason); ``suppressed`` never leaves; ``ambiguous`` is a ``sending`` row
whose fate the gateway could not tell. Works on any Airflow SQL connection (common-sql).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_provider_sms.exceptions import NothingToWatchError
from airflow_provider_sms.messages import DeliveryStatus, SendOutcome
from airflow_provider_sms.storage.report import STAGING
from airflow_provider_sms.storage.table import IN_SLICE, SqlTable, quote_name, utcnow

PENDING, SENDING, ACCEPTED, REJECTED, SUPPRESSED, AMBIGUOUS = (
    "pending",
    "sending",
    "accepted",
    "rejected",
    "suppressed",
    "ambiguous",
)
STATES = (PENDING, SENDING, ACCEPTED, REJECTED, SUPPRESSED, AMBIGUOUS)
DONE = frozenset({ACCEPTED, REJECTED, SUPPRESSED})
# A message that left or may have left: what a frequency cap counts.
LEFT = (ACCEPTED, SENDING, AMBIGUOUS)

COLUMNS: list[tuple[str, str]] = [
    ("campaign_key", "VARCHAR(250) NOT NULL"),
    ("recipient", "VARCHAR(250) NOT NULL"),
    ("idempotency_key", "VARCHAR(32) NOT NULL"),
    ("gateway", "VARCHAR(32)"),
    ("conn_id", "VARCHAR(250)"),
    ("source_row", "BIGINT"),
    ("body_hash", "VARCHAR(64)"),
    ("segments", "INTEGER"),
    ("state", "VARCHAR(16) NOT NULL"),
    # The gateway's texts, as long as the gateway makes them (tables created with VARCHAR before
    # are widened by ensure_table).
    ("message_id", "TEXT"),
    ("status", "VARCHAR(16)"),
    ("raw_status", "TEXT"),
    ("error", "TEXT"),
    ("attempts", "INTEGER NOT NULL"),
    ("created_at", "TIMESTAMP"),
    ("updated_at", "TIMESTAMP"),
    ("sent_at", "TIMESTAMP"),
]
KEY = ("campaign_key", "recipient")
# What the campaigns page reads (storage/campaigns.py): a campaign's start is one probe (created_at
# second) and its counts an index-only range.
CAMPAIGN_INDEX = ("campaign_started", ("campaign_key", "created_at", "state", "segments"))
MAX_CAMPAIGN_KEY = 250  # the width of the campaign_key column above


def idempotency_key(campaign_key: str, recipient: str) -> str:
    """A stable, digits-only key per (campaign, recipient): gateways like SmsGateway24 store only integers."""
    digest = hashlib.sha256(f"{campaign_key}\x1f{recipient}".encode()).digest()
    return str(int.from_bytes(digest[:6], "big"))  # 48 bits: fits every gateway's integer field


def check_campaign_key(campaign_key: str) -> None:
    """Refuse, before anything is written, a campaign key the ledger's column cannot hold."""
    if not isinstance(campaign_key, str) or not campaign_key:
        raise ValueError(f"campaign_key must be a non-empty string, got {campaign_key!r}")
    if len(campaign_key) > MAX_CAMPAIGN_KEY:
        raise ValueError(
            f"campaign_key is {len(campaign_key)} characters long; the ledger's campaign_key column "
            f"holds at most {MAX_CAMPAIGN_KEY} (it starts {campaign_key[:40]!r})"
        )


@dataclass(frozen=True)
class LedgerEntry:
    """A ledger row as the operator sees it."""

    recipient: str
    state: str
    idempotency_key: str
    message_id: str | None = None
    body_hash: str | None = None
    segments: int | None = None
    error: str | None = None
    source_row: int | None = None
    sent_at: datetime | None = None


class MessageLedger(SqlTable):
    """The ledger table (default ``sms_messages``) on the SQL connection ``conn_id``."""

    def __init__(
        self, conn_id: str, table: str = "sms_messages", *, gateway: str = "", sms_conn_id: str = ""
    ):
        super().__init__(conn_id, table)
        self.gateway = gateway
        self.sms_conn_id = sms_conn_id

    def ensure_table(self) -> None:
        self.create(COLUMNS, KEY)
        # Delivery reports find ledger rows by the gateway's message id.
        self.create_index("gateway_message_id", ("gateway", "message_id"))
        self.create_index(*CAMPAIGN_INDEX)
        self.widen_to_text(("message_id", "raw_status"))

    def load(self, campaign_key: str, recipients: Sequence[str]) -> dict[str, LedgerEntry]:
        """The existing rows of ``campaign_key`` for ``recipients`` (queried in slices)."""
        found: dict[str, LedgerEntry] = {}
        for start in range(0, len(recipients), IN_SLICE):
            part = list(recipients[start : start + IN_SLICE])
            rows = self.query(
                "SELECT recipient, state, idempotency_key, message_id, body_hash, segments, error, "
                f"source_row, sent_at FROM {self.quoted} WHERE campaign_key = {self.ph} "
                f"AND recipient IN {self.in_clause(len(part))}",
                [campaign_key, *part],
            )
            for row in rows:
                found[row[0]] = LedgerEntry(*row)
        return found

    def in_state(self, campaign_key: str, states: Iterable[str]) -> list[LedgerEntry]:
        states = list(states)
        rows = self.query(
            "SELECT recipient, state, idempotency_key, message_id, body_hash, segments, error, "
            f"source_row, sent_at FROM {self.quoted} WHERE campaign_key = {self.ph} "
            f"AND state IN {self.in_clause(len(states))}",
            [campaign_key, *states],
        )
        return [LedgerEntry(*row) for row in rows]

    def record(self, campaign_key: str, entries: Iterable[LedgerEntry]) -> int:
        """Insert new rows; rows already in the ledger for this campaign are left as they are."""
        check_campaign_key(campaign_key)
        now = self.ts(utcnow())
        names = [name for name, _ in COLUMNS]
        rows = (
            (
                campaign_key,
                e.recipient,
                e.idempotency_key,
                self.gateway,
                self.sms_conn_id,
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
        return self.insert_ignore(names, rows, KEY)

    def claim(
        self, campaign_key: str, claims: Sequence[tuple[str, str | None, int | None]]
    ) -> tuple[datetime, set[str]]:
        """Move ``pending`` rows to ``sending`` just before their request leaves, and return the time
        (for look-ups) and the recipients this call claimed.

        ``claims`` are ``(recipient, body_hash, segments)`` of the texts about to leave. Only rows
        still ``pending`` are claimed (a conditional update whose row count is checked), so that of
        two tries racing for a row exactly one sends it; the hash of the text is written with the
        claim, so a later look-up matches what was sent, not what a changed template would send.
        """
        now = utcnow()
        stamp = self.ts(now)
        recipients = [recipient for recipient, _, _ in claims]
        claimed: set[str] = set()
        # One set-based statement per slice, all in one transaction: the batch is claimed as a whole.
        with self.transaction() as cursor:
            for start in range(0, len(recipients), IN_SLICE):
                part = recipients[start : start + IN_SLICE]
                cursor.execute(
                    f"UPDATE {self.quoted} SET state = {self.ph}, attempts = attempts + 1, "
                    f"sent_at = {self.ph}, updated_at = {self.ph} WHERE campaign_key = {self.ph} "
                    f"AND state = {self.ph} AND recipient IN {self.in_clause(len(part))}",
                    (SENDING, stamp, stamp, campaign_key, PENDING, *part),
                )
                if cursor.rowcount == len(part):
                    claimed.update(part)
                    continue
                # Another try took some of them: ours are the ones stamped with this claim's time.
                cursor.execute(
                    f"SELECT recipient FROM {self.quoted} WHERE campaign_key = {self.ph} "
                    f"AND state = {self.ph} AND sent_at = {self.ph} "
                    f"AND recipient IN {self.in_clause(len(part))}",
                    (campaign_key, SENDING, stamp, *part),
                )
                claimed.update(row[0] for row in cursor.fetchall())
            texts = [(h, n, campaign_key, r) for r, h, n in claims if r in claimed and h is not None]
            if texts:
                self._executemany(
                    cursor,
                    f"UPDATE {self.quoted} SET body_hash = {self.ph}, segments = {self.ph} "
                    f"WHERE campaign_key = {self.ph} AND recipient = {self.ph}",
                    texts,
                )
        return now, claimed

    def suppress(self, campaign_key: str, reasons: dict[str, str]) -> None:
        """Suppress rows still ``pending`` (an earlier try recorded them; an opt-out or a cap now
        leaves them out) with their reason, in one transaction. Rows in any other state stay."""
        now = self.ts(utcnow())
        self.executemany(
            f"UPDATE {self.quoted} SET state = {self.ph}, error = {self.ph}, updated_at = {self.ph} "
            f"WHERE campaign_key = {self.ph} AND recipient = {self.ph} AND state = {self.ph}",
            ((SUPPRESSED, reason, now, campaign_key, r, PENDING) for r, reason in reasons.items()),
        )

    def ensure_recipient_index(self) -> None:
        """The index a frequency cap reads by: messages per recipient and time, across campaigns."""
        self.create_index("recipient_sent_at", ("recipient", "sent_at"))

    def recent_counts(self, recipients: Sequence[str], *, since: datetime, other_than: str) -> dict[str, int]:
        """How many messages each of ``recipients`` got from campaigns other than ``other_than``
        with ``sent_at`` at or after ``since``: rows that left or may have left (:data:`LEFT`).
        One query per call on SQLite and PostgreSQL; recipients without one are absent."""
        counts: dict[str, int] = {}
        for condition, params in self.one_of("recipient", recipients):
            rows = self.query(
                f"SELECT recipient, COUNT(*) FROM {self.quoted} WHERE {condition} "
                f"AND campaign_key <> {self.ph} AND state IN {self.in_clause(len(LEFT))} "
                f"AND sent_at >= {self.ph} GROUP BY recipient",
                [*params, other_than, *LEFT, self.ts(since)],
            )
            counts.update({recipient: int(n) for recipient, n in rows})
        return counts

    def suppressed_reasons(self, campaign_key: str | None = None) -> Counter:
        """Suppressed rows per reason (``"opted out"``, ``"frequency cap"``...), of one campaign or
        of the whole ledger: what the rails prevented."""
        where, params = f"state = {self.ph}", [SUPPRESSED]
        if campaign_key is not None:
            where, params = f"{where} AND campaign_key = {self.ph}", [*params, campaign_key]
        rows = self.query(f"SELECT error, COUNT(*) FROM {self.quoted} WHERE {where} GROUP BY error", params)
        return Counter({reason: int(n) for reason, n in rows})

    def analyze(self) -> None:
        """Refresh the planner's statistics (PostgreSQL). A ledger created and filled within one run
        has none until autovacuum gets to it, and the planner then scans the whole campaign for
        every look-up by recipient; after ``ANALYZE`` those look-ups use the primary key."""
        if self.is_postgres:
            self.execute(f"ANALYZE {self.quoted}")

    def mark(self, campaign_key: str, outcomes: Iterable[SendOutcome]) -> int:
        """Record outcomes (state, gateway id and status, error of each recipient) in one transaction."""
        now = self.ts(utcnow())
        return self.executemany(
            f"UPDATE {self.quoted} SET state = {self.ph}, message_id = {self.ph}, status = {self.ph}, "
            f"raw_status = {self.ph}, error = {self.ph}, updated_at = {self.ph} "
            f"WHERE campaign_key = {self.ph} AND recipient = {self.ph}",
            (
                (o.state, o.message_id, o.status, o.raw_status, o.error, now, campaign_key, o.recipient)
                for o in outcomes
            ),
        )

    def counts(self, campaign_key: str) -> Counter:
        """Rows per state for ``campaign_key``."""
        rows = self.query(
            f"SELECT state, COUNT(*) FROM {self.quoted} WHERE campaign_key = {self.ph} GROUP BY state",
            [campaign_key],
        )
        return Counter({state: int(n) for state, n in rows})

    def first_sent_at(self, campaign_key: str) -> datetime | None:
        """When the campaign's first accepted message left (where status look-ups can start)."""
        rows = self.query(
            f"SELECT MIN(sent_at) FROM {self.quoted} WHERE campaign_key = {self.ph} AND state = {self.ph}",
            [campaign_key, ACCEPTED],
        )
        return self.from_ts(rows[0][0]) if rows else None

    def message_ids(self, campaign_key: str) -> list[str]:
        """Gateway ids of the campaign's accepted messages."""
        rows = self.query(
            f"SELECT message_id FROM {self.quoted} WHERE campaign_key = {self.ph} AND state = {self.ph} "
            "AND message_id IS NOT NULL",
            [campaign_key, ACCEPTED],
        )
        return [row[0] for row in rows]


def ledger_message_ids(
    ledger_conn_id: str, ledger_table: str, campaign_key: str
) -> tuple[list[str], datetime | None]:
    """The campaign's accepted gateway ids and the earliest send time (blocking: call it in a thread)."""
    ledger = MessageLedger(ledger_conn_id, ledger_table)
    try:
        ids = ledger.message_ids(campaign_key)
        first = ledger.first_sent_at(campaign_key)
        counts = None if ids else ledger.counts(campaign_key)
    finally:
        ledger.close()
    if counts is not None:
        where = f"the ledger table {ledger_table!r} (connection {ledger_conn_id!r})"
        if not counts:
            raise NothingToWatchError(
                f"campaign {campaign_key!r} has no rows in {where}: nothing was sent under that key "
                "(is the key or the ledger table different from the send task's?)"
            )
        states = ", ".join(f"{state} {n}" for state, n in sorted(counts.items()))
        raise NothingToWatchError(
            f"campaign {campaign_key!r} has no accepted message to watch in {where}: its rows are {states}"
        )
    return ids, first


def rank_sql(column: str) -> str:
    """SQL for the rank of a normalised status held in ``column`` (unknown values rank 0)."""
    cases = " ".join(f"WHEN '{s.value}' THEN {s.rank}" for s in DeliveryStatus if s.rank)
    return f"CASE {column} {cases} ELSE 0 END"


def ledger_update_statements(
    on: SqlTable, ledger_table: str, observed_at: datetime
) -> list[tuple[str, list[Any]]]:
    """Move the ledger's ``status`` / ``raw_status`` forward for the message ids staged by a
    delivery report (:data:`airflow_provider_sms.storage.report.STAGING`) of the same gateway (never
    backwards), run on ``on``'s connection, where the staging table lives.

    On PostgreSQL the join is kept to index probes for the chunk's ids (``SET LOCAL``, this
    transaction only): its planner otherwise prefers a hash join that reads the whole ledger for
    every chunk, even with fresh statistics, so each chunk would cost as much as the ledger is big.
    """
    update = (
        f"UPDATE {quote_name(ledger_table)} AS l SET status = s.status, raw_status = s.raw_status, "
        f"updated_at = {on.ph} FROM {STAGING} s "
        "WHERE l.message_id = s.message_id AND l.gateway = s.gateway "
        f"AND (l.status IS NULL OR {rank_sql('l.status')} < s.status_rank)",
        [on.ts(observed_at)],
    )
    if not on.is_postgres:
        return [update]
    return [("SET LOCAL enable_hashjoin = off", []), ("SET LOCAL enable_mergejoin = off", []), update]
