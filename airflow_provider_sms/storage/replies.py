"""The replies table: one row per inbound message a gateway listed, with the keyword verdict on it
and the campaign it answers; and the ledger query that ties a reply to that campaign.

The table (default ``sms_replies``) is keyed by ``(gateway, message_id)``: a reply read twice is
inserted once (``ON CONFLICT DO NOTHING``, one statement per 1,000 replies). Where the last read
stopped is the table itself: the newest ``received_at`` of the gateway and connection
(:meth:`ReplyTable.newest`), so there is no second record to keep in step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass
from datetime import datetime

from airflow_provider_sms.storage.ledger import ACCEPTED, AMBIGUOUS, MessageLedger
from airflow_provider_sms.storage.table import SqlTable, quote_name, utcnow

COLUMNS: list[tuple[str, str]] = [
    ("gateway", "VARCHAR(32) NOT NULL"),
    ("message_id", "TEXT NOT NULL"),  # the gateway's id of the reply
    ("conn_id", "VARCHAR(250)"),  # the Airflow connection it was read through
    ("sender", "TEXT"),  # who wrote it: E.164 where the gateway's value could be read as a number
    ("recipient", "TEXT"),  # our side: number, sender id or device, as the gateway names it
    ("text", "TEXT"),
    ("received_at", "TIMESTAMP"),  # NULL when the gateway gave no readable time
    ("intent", "VARCHAR(16) NOT NULL"),  # stop, start, none, ambiguous (campaign/keywords.py)
    ("keyword", "TEXT"),
    ("language", "VARCHAR(8)"),
    ("reason", "TEXT"),
    ("campaign_key", "VARCHAR(250)"),  # the campaign of the last message sent to the sender before
    ("matched_message_id", "TEXT"),  # ... and that message's gateway id (ledger message_id)
    ("loaded_at", "TIMESTAMP"),
]
NAMES = [name for name, _ in COLUMNS]
KEY = ("gateway", "message_id")
ROWS_PER_STATEMENT = 1_000  # 14,000 parameters: within SQLite's (32,766) and PostgreSQL's (65,535) limits
# Ledger states of a message that reached (or may have reached) its recipient: what a reply answers.
ANSWERABLE = (ACCEPTED, AMBIGUOUS)


@dataclass(frozen=True)
class ReplyRow:
    """One row of the replies table (``loaded_at`` is set on insert)."""

    gateway: str
    message_id: str
    conn_id: str | None
    sender: str
    recipient: str | None
    text: str
    received_at: datetime | None
    intent: str
    keyword: str | None
    language: str | None
    reason: str
    campaign_key: str | None = None
    matched_message_id: str | None = None


class ReplyTable(SqlTable):
    """The replies table ``table`` on the SQL connection ``conn_id`` (SQLite, PostgreSQL).

    Holds one DB-API connection until :meth:`close`; use it from one thread.
    """

    def __init__(self, conn_id: str, table: str = "sms_replies") -> None:
        super().__init__(conn_id, table)

    def ensure(self) -> None:
        """Create the table and its index (where a run resumes) if they are missing."""
        self.create(COLUMNS, KEY)
        self.create_index("resume", ("gateway", "conn_id", "received_at"))

    def newest(self, gateway: str, conn_id: str) -> datetime | None:
        """The newest ``received_at`` read through ``conn_id`` from ``gateway`` (None: none yet)."""
        rows = self.query(
            f'SELECT MAX("received_at") FROM {self.quoted} WHERE "gateway" = {self.ph} '
            f'AND "conn_id" = {self.ph}',
            [gateway, conn_id],
        )
        return self.from_ts(rows[0][0]) if rows else None

    def known(self, gateway: str, message_ids: Sequence[str]) -> set[str]:
        """Which of ``message_ids`` of ``gateway`` the table holds (one query per call)."""
        found: set[str] = set()
        for condition, params in self.one_of("message_id", sorted(set(message_ids))):
            rows = self.query(
                f'SELECT "message_id" FROM {self.quoted} WHERE "gateway" = {self.ph} AND {condition}',
                [gateway, *params],
            )
            found.update(row[0] for row in rows)
        return found

    def insert(self, rows: Sequence[ReplyRow]) -> set[str]:
        """Insert the replies not there yet, in one transaction (one statement per 1,000); returns
        the message ids this call inserted (``RETURNING``: a concurrent writer's rows are not ours)."""
        if not rows:
            return set()
        now = self.ts(utcnow())
        values = [(*astuple(row)[:6], self.ts(row.received_at), *astuple(row)[7:], now) for row in rows]
        cols = ", ".join(quote_name(c, what="column") for c in NAMES)
        one = "(" + ", ".join([self.ph] * len(NAMES)) + ")"
        inserted: set[str] = set()
        with self.transaction() as cursor:
            for start in range(0, len(values), ROWS_PER_STATEMENT):
                part = values[start : start + ROWS_PER_STATEMENT]
                cursor.execute(
                    f"INSERT INTO {self.quoted} ({cols}) VALUES {', '.join([one] * len(part))} "
                    f'ON CONFLICT ("gateway", "message_id") DO NOTHING RETURNING "message_id"',
                    tuple(value for row in part for value in row),
                )
                inserted.update(row[0] for row in cursor.fetchall())
        return inserted

    def intents(self, gateway: str | None = None) -> dict[str, int]:
        """Rows per intent, of one gateway or of all."""
        where, params = "", []
        if gateway is not None:
            where, params = f' WHERE "gateway" = {self.ph}', [gateway]
        rows = self.query(f'SELECT "intent", COUNT(*) FROM {self.quoted}{where} GROUP BY "intent"', params)
        return {intent: int(n) for intent, n in rows}


class LedgerMatcher(MessageLedger):
    """Reads the send operator's ledger to tie replies to campaigns."""

    def ready(self) -> bool:
        """Whether there is a ledger to read (none before the first campaign); ensures the index
        the look-up reads by (messages per recipient and time, as the frequency cap's)."""
        if not self.exists():
            return False
        self.ensure_recipient_index()
        return True

    def last_sent(
        self, gateway: str, replies: Sequence[tuple[str, str, datetime]]
    ) -> dict[str, tuple[str, str | None]]:
        """For each ``(reply id, sender, latest send time)``: ``(campaign_key, message_id)`` of the
        last message the ledger sent through ``gateway`` to ``sender`` at or before that time
        (state accepted or ambiguous; latest ``sent_at`` first). One query per 1,000 replies;
        replies that answer nothing in the ledger are absent."""
        found: dict[str, tuple[str, str | None]] = {}
        # On PostgreSQL the first row's types type the VALUES list; SQLite stores text times.
        at = f"CAST({self.ph} AS TIMESTAMP WITH TIME ZONE)" if self.is_postgres else self.ph
        one = f"({self.ph}, {self.ph}, {at})"
        for start in range(0, len(replies), ROWS_PER_STATEMENT):
            part = replies[start : start + ROWS_PER_STATEMENT]
            params: list = [v for reply_id, phone, moment in part for v in (reply_id, phone, self.ts(moment))]
            rows = self.query(
                f"WITH r (reply_id, phone, latest) AS (VALUES {', '.join([one] * len(part))}), "
                "m AS (SELECT r.reply_id, l.campaign_key, l.message_id, ROW_NUMBER() OVER "
                "(PARTITION BY r.reply_id ORDER BY l.sent_at DESC, l.campaign_key DESC) AS n "
                f"FROM r JOIN {self.quoted} l ON l.recipient = r.phone AND l.gateway = {self.ph} "
                f"AND l.state IN {self.in_clause(len(ANSWERABLE))} AND l.sent_at <= r.latest) "
                "SELECT reply_id, campaign_key, message_id FROM m WHERE n = 1",
                [*params, gateway, *ANSWERABLE],
            )
            found.update({reply_id: (key, message_id) for reply_id, key, message_id in rows})
        return found
