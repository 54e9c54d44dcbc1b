"""The message ledger: one row per (campaign, recipient), written before anything is sent.

It is what makes a bulk send exactly-once across task retries, worker crashes and re-runs:
``pending`` (recorded) → ``sending`` (a request is about to leave) → ``accepted`` (gateway id known)
or ``rejected`` (with the reason); ``suppressed`` never leaves; ``ambiguous`` is a ``sending`` row
whose fate the gateway could not tell. A campaign's first try writes a row to send once, straight
as ``sending``, just before its request (:meth:`MessageLedger.record_sending`). Works on any Airflow SQL connection (common-sql).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_provider_sms.exceptions import NothingToWatchError
from airflow_provider_sms.messages import DeliveryStatus, SendOutcome
from airflow_provider_sms.storage.report import STAGING
from airflow_provider_sms.storage.table import (
    IN_SLICE,
    SQLITE_VARIABLES,
    SqlTable,
    pg_array,
    quote_name,
    utcnow,
)

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
# PostgreSQL: new rows fill half of each page. Every ledger row is written three or four times
# (recorded, claimed, marked, then its delivery status; on a campaign's first try recorded and
# claimed in one insert), each time soon after the last; with room on
# its page the next version lands there, the dead ones are pruned in place, and the status update,
# which changes no indexed column, is a HOT update (no new entry in the ledger's three indexes).
# At 100 every version went to a new page at the table's end, no status update was HOT, and the
# table ended larger (measured: 9,820 pages at 100, 6,516 at 50 for 200k rows sent and reported).
FILLFACTOR = 50
# What the campaigns page reads (storage/campaigns.py): a campaign's start is one probe (created_at
# second) and its counts an index-only range.
CAMPAIGN_INDEX = ("campaign_started", ("campaign_key", "created_at", "state", "segments"))
# Delivery reports (storage/report.py) find ledger rows by the gateway's message id. Only rows with
# one are indexed: pending and sending rows have none, so a message's record and claim add no entry
# (two of the nine index entries a message's record, claim and mark wrote), and the index holds no
# ever-growing run of (gateway, NULL) duplicates. Every query by message id has ``message_id = ...``,
# which implies the predicate, so the index serves it. Tables created before it keep their full
# index ``<table>_gateway_message_id`` (LEGACY_GATEWAY_INDEX) and get no second one; databases
# without partial indexes (other than PostgreSQL and SQLite) get the full one.
GATEWAY_INDEX = ("gateway_message_sent", ("gateway", "message_id"), "message_id IS NOT NULL")
LEGACY_GATEWAY_INDEX = "gateway_message_id"
MAX_CAMPAIGN_KEY = 250  # the width of the campaign_key column above
# The per-row values of the set-based statements (the table ``v`` they read), recipient first.
RECORD_COLUMNS = [
    ("recipient", "text"),
    ("idempotency_key", "text"),
    ("source_row", "bigint"),
    ("body_hash", "text"),
    ("segments", "integer"),
    ("state", "text"),
    ("message_id", "text"),
    ("error", "text"),
]
CLAIM_COLUMNS = [("recipient", "text"), ("body_hash", "text"), ("segments", "integer")]
SUPPRESS_COLUMNS = [("recipient", "text"), ("error", "text")]
MARK_COLUMNS = [
    ("recipient", "text"),
    ("state", "text"),
    ("message_id", "text"),
    ("status", "text"),
    ("raw_status", "text"),
    ("error", "text"),
]


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

    def twin(self) -> MessageLedger:
        """The same ledger on a connection of its own (for writes from another thread)."""
        return MessageLedger(self.conn_id, self.name, gateway=self.gateway, sms_conn_id=self.sms_conn_id)

    def ensure_table(self) -> None:
        self.create(COLUMNS, KEY, fillfactor=FILLFACTOR)
        suffix, columns, where = GATEWAY_INDEX
        if self.dialect not in ("postgresql", "sqlite"):
            self.create_index(LEGACY_GATEWAY_INDEX, columns)
        elif not self.index_exists(LEGACY_GATEWAY_INDEX):
            self.create_index(suffix, columns, where)
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
        """Insert new rows; rows already in the ledger for this campaign are left as they are (and
        of one recipient given twice, the first). One ``INSERT ... SELECT ... ON CONFLICT DO
        NOTHING`` in one transaction; returns how many rows it inserted."""
        check_campaign_key(campaign_key)
        if not self.set_based:
            return _record_per_row(self, campaign_key, entries)
        inserted = 0
        with self.write_transaction() as cursor:
            for sql, params, _ in self._inserts(campaign_key, entries, None):
                self.run_once(cursor, sql, params)
                inserted += self.changed(cursor)
        return inserted

    def record_sending(self, campaign_key: str, entries: Sequence[LedgerEntry]) -> tuple[datetime, set[str]]:
        """Record rows no try has recorded yet straight as ``sending``, just before their request
        leaves: what :meth:`record` then :meth:`claim` would write, in one statement (a campaign's
        first try writes each row it sends twice, not three times). Returns the time and the
        recipients this call inserted, as :meth:`claim` does; a row already in the ledger is left
        as it is and not returned (another try holds it)."""
        check_campaign_key(campaign_key)
        if not self.set_based:
            there = self.load(campaign_key, [e.recipient for e in entries])
            new = [e for e in entries if e.recipient not in there]
            self.record(campaign_key, new)
            return self.claim(campaign_key, [(e.recipient, None, None) for e in new])
        now = utcnow()
        stamp = self.ts(now)
        with self.write_transaction() as cursor:
            return now, self._taken(cursor, self._inserts(campaign_key, entries, stamp), campaign_key, stamp)

    def _taken(
        self,
        cursor: Any,
        statements: Iterable[tuple[str, Sequence[Any], list[str]]],
        campaign_key: str,
        stamp: Any,
    ) -> set[str]:
        """Run ``(sql, params, recipients)`` statements that move rows to ``sending`` at ``stamp``;
        the recipients they moved. Where a statement moved fewer rows than it was given (another
        try holds some), ours are the ones stamped with this call's time."""
        taken: set[str] = set()
        for sql, params, part in statements:
            self.run_once(cursor, sql, params)
            if self.changed(cursor) == len(part):
                taken.update(part)
                continue
            among, among_params = self._among("recipient", part)
            self.run_once(
                cursor,
                f"SELECT recipient FROM {self.quoted} WHERE campaign_key = {self.ph} "
                f"AND state = {self.ph} AND sent_at = {self.ph} AND {among}",
                (campaign_key, SENDING, stamp, *among_params),
            )
            taken.update(row[0] for row in cursor.fetchall())
        return taken

    def _inserts(
        self, campaign_key: str, entries: Iterable[LedgerEntry], sent_at: Any
    ) -> Iterator[tuple[str, list[Any], list[str]]]:
        """``(sql, params, recipients)``: the ``INSERT ... ON CONFLICT DO NOTHING`` statements of
        :meth:`record` (``sent_at`` None: as given) or :meth:`record_sending` (every row
        ``sending`` at ``sent_at``, its first attempt)."""
        first: dict[str, LedgerEntry] = {}
        for e in entries:
            first.setdefault(e.recipient, e)
        if not first:
            return
        sending = sent_at is not None
        rows = [
            (
                e.recipient,
                e.idempotency_key,
                e.source_row,
                e.body_hash,
                e.segments,
                SENDING if sending else e.state,
                e.message_id,
                e.error,
            )
            for e in first.values()
        ]
        now = sent_at if sending else self.ts(utcnow())
        # Constant columns are bound once, not once per row.
        constants = [campaign_key, self.gateway, self.sms_conn_id, now, now]
        names = ", ".join(name for name, _ in COLUMNS)
        ph = self.ph
        attempts, sent = ("1", ph) if sending else ("0", "NULL")
        select = (
            f"SELECT {ph}, recipient, idempotency_key, {ph}, {ph}, source_row, body_hash, segments, state, "
            f"message_id, NULL, NULL, error, {attempts}, {ph}, {ph}, {sent} FROM v WHERE true"  # SQLite needs the WHERE
        )
        if sending:
            constants.append(sent_at)
        for cte, params, part in self._pieces(RECORD_COLUMNS, rows, fixed=len(constants)):
            yield (
                f"{cte}INSERT INTO {self.quoted} ({names}) {select} "
                "ON CONFLICT (campaign_key, recipient) DO NOTHING",
                [*params, *constants],
                part,
            )

    def has_rows(self, campaign_key: str) -> bool:
        """Whether the ledger holds any row of ``campaign_key`` (one probe of the primary key)."""
        rows = self.query(
            f"SELECT 1 FROM {self.quoted} WHERE campaign_key = {self.ph} LIMIT 1", [campaign_key]
        )
        return bool(rows)

    def claim(
        self, campaign_key: str, claims: Sequence[tuple[str, str | None, int | None]]
    ) -> tuple[datetime, set[str]]:
        """Move ``pending`` rows to ``sending`` just before their request leaves, and return the time
        (for look-ups) and the recipients this call claimed.

        ``claims`` are ``(recipient, body_hash, segments)`` of the texts about to leave. Only rows
        still ``pending`` are claimed (a conditional update whose row count is checked), so that of
        two tries racing for a row exactly one sends it; the hash of the text is written with the
        claim, so a later look-up matches what was sent, not what a changed template would send.
        One ``UPDATE`` for the batch, in one transaction (plus one ``SELECT`` of what this call
        claimed only when another try took some of the rows).
        """
        if not self.set_based:
            return _claim_per_row(self, campaign_key, claims)
        now = utcnow()
        stamp = self.ts(now)
        last: dict[str, tuple[str | None, int | None]] = {}
        for recipient, text, segments in claims:  # of one recipient given twice, the last text given
            if recipient not in last or text is not None:
                last[recipient] = (text, segments)
        if not last:
            return now, set()
        # Texts that changed since they were recorded are written with the claim; NULL keeps the row's.
        rows = [(r, h, n) for r, (h, n) in last.items()]
        recipients = list(last)
        ph = self.ph
        with self.write_transaction() as cursor:
            statements: Iterable[tuple[str, Sequence[Any], list[str]]]
            if self.dialect == "sqlite" and all(h is None for _, h, _ in rows):
                # No text to write: SQLite runs an IN list faster than its UPDATE ... FROM, which
                # materialises the join first (11-12 against 7-8 µs a message in the benchmark).
                step = SQLITE_VARIABLES - 5
                statements = (
                    (
                        f"UPDATE {self.quoted} SET state = {ph}, attempts = attempts + 1, sent_at = {ph}, "
                        f"updated_at = {ph} WHERE campaign_key = {ph} AND state = {ph} "
                        f"AND recipient IN {self.in_clause(len(part))}",
                        (SENDING, stamp, stamp, campaign_key, PENDING, *part),
                        part,
                    )
                    for part in (recipients[i : i + step] for i in range(0, len(recipients), step))
                )
            else:  # PostgreSQL joins the arrays (probes by primary key, or one hash join, by the statistics)
                # Without a changed text the batch is its recipients only: no CASE per row, and one
                # array, not three, to read and carry through the join.
                texts = any(h is not None for _, h, _ in rows)
                columns = CLAIM_COLUMNS if texts else CLAIM_COLUMNS[:1]
                values = rows if texts else [(r,) for r in recipients]
                keep = (
                    ", body_hash = CASE WHEN v.body_hash IS NULL THEN t.body_hash ELSE v.body_hash END, "
                    "segments = CASE WHEN v.body_hash IS NULL THEN t.segments ELSE v.segments END"
                    if texts
                    else ""
                )
                statements = (
                    (
                        f"{cte}UPDATE {self.quoted} AS t SET state = {ph}, attempts = t.attempts + 1, "
                        f"sent_at = {ph}, updated_at = {ph}{keep} FROM v WHERE t.campaign_key = {ph} "
                        f"AND t.state = {ph} AND t.recipient = v.recipient",
                        (*params, SENDING, stamp, stamp, campaign_key, PENDING),
                        part,
                    )
                    for cte, params, part in self._pieces(columns, values, fixed=5)
                )
            claimed = self._taken(cursor, statements, campaign_key, stamp)
        return now, claimed

    def suppress(self, campaign_key: str, reasons: dict[str, str]) -> None:
        """Suppress rows still ``pending`` (an earlier try recorded them; an opt-out or a cap now
        leaves them out) with their reason: one ``UPDATE`` in one transaction. Rows in any other
        state stay."""
        if not self.set_based:
            return _suppress_per_row(self, campaign_key, reasons)
        now = self.ts(utcnow())
        ph = self.ph
        with self.write_transaction() as cursor:
            for cte, params in self.rows_cte(SUPPRESS_COLUMNS, list(reasons.items()), fixed=4):
                self.run_once(
                    cursor,
                    f"{cte}UPDATE {self.quoted} AS t SET state = {ph}, error = v.error, updated_at = {ph} "
                    f"FROM v WHERE t.campaign_key = {ph} AND t.state = {ph} "
                    "AND t.recipient = v.recipient",
                    (*params, SUPPRESSED, now, campaign_key, PENDING),
                )
        return None

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
        """Record outcomes (state, gateway id and status, error of each recipient; of one recipient
        given twice, the last): one ``UPDATE ... FROM`` in one transaction. Returns how many
        outcomes it was given."""
        if not self.set_based:
            return _mark_per_row(self, campaign_key, outcomes)
        given, last = 0, {}
        for o in outcomes:
            given += 1
            last[o.recipient] = (o.recipient, o.state, o.message_id, o.status, o.raw_status, o.error)
        if not last:
            return 0
        now = self.ts(utcnow())
        ph = self.ph
        with self.write_transaction() as cursor:
            for cte, params in self.rows_cte(MARK_COLUMNS, list(last.values()), fixed=2):
                self.run_once(
                    cursor,
                    f"{cte}UPDATE {self.quoted} AS t SET state = v.state, message_id = v.message_id, "
                    f"status = v.status, raw_status = v.raw_status, error = v.error, updated_at = {ph} "
                    f"FROM v WHERE t.campaign_key = {ph} AND t.recipient = v.recipient",
                    (*params, now, campaign_key),
                )
        return given

    # -- the pieces of the set-based statements ----------------------------------------------------

    def _pieces(
        self, columns: Sequence[tuple[str, str]], rows: Sequence[tuple], *, fixed: int
    ) -> Iterator[tuple[str, list[Any], list[str]]]:
        """``(cte, params, recipients)`` for ``rows`` whose first column is the recipient: one piece
        on PostgreSQL, as few as SQLite's variable limit allows there (see :meth:`rows_cte`)."""
        if self.is_postgres:
            for cte, params in self.rows_cte(columns, rows, fixed=fixed):
                yield cte, params, [row[0] for row in rows]
            return
        start = 0
        for cte, params in self.rows_cte(columns, rows, fixed=fixed):
            count = len(params) // len(columns)
            yield cte, params, [row[0] for row in rows[start : start + count]]
            start += count

    def _among(self, column: str, recipients: list[str]) -> tuple[str, list[Any]]:
        """SQL saying ``column`` is one of ``recipients``, and its parameters: ``= ANY`` of one
        array on PostgreSQL, ``IN (?, ...)`` on SQLite (within its variable limit)."""
        if self.is_postgres:
            return f"{column} = ANY({self.ph}::text[])", [pg_array(recipients)]
        return f"{column} IN {self.in_clause(len(recipients))}", list(recipients)

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


# -- the per-row statements ------------------------------------------------------------------------
# What every batch change was before it became one statement: the ledger's path where SQLite is
# older than 3.33 (no ``UPDATE ... FROM``), and the reference the set-based statements are tested
# and measured against (``storage/reference.py``).


def _record_per_row(ledger: MessageLedger, campaign_key: str, entries: Iterable[LedgerEntry]) -> int:
    """One ``INSERT ... ON CONFLICT DO NOTHING`` per row (``executemany``), in one transaction."""
    check_campaign_key(campaign_key)
    now = ledger.ts(utcnow())
    names = [name for name, _ in COLUMNS]
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
    return ledger.insert_ignore(names, rows, KEY)


def _claim_per_row(
    ledger: MessageLedger, campaign_key: str, claims: Sequence[tuple[str, str | None, int | None]]
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
                (SENDING, stamp, stamp, campaign_key, PENDING, *part),
            )
            if cursor.rowcount == len(part):
                claimed.update(part)
                continue
            cursor.execute(
                f"SELECT recipient FROM {q} WHERE campaign_key = {ph} "
                f"AND state = {ph} AND sent_at = {ph} "
                f"AND recipient IN {ledger.in_clause(len(part))}",
                (campaign_key, SENDING, stamp, *part),
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


def _suppress_per_row(ledger: MessageLedger, campaign_key: str, reasons: dict[str, str]) -> None:
    """One conditional ``UPDATE`` per row, in one transaction."""
    now = ledger.ts(utcnow())
    ph = ledger.ph
    ledger.executemany(
        f"UPDATE {ledger.quoted} SET state = {ph}, error = {ph}, updated_at = {ph} "
        f"WHERE campaign_key = {ph} AND recipient = {ph} AND state = {ph}",
        ((SUPPRESSED, reason, now, campaign_key, r, PENDING) for r, reason in reasons.items()),
    )


def _mark_per_row(ledger: MessageLedger, campaign_key: str, outcomes: Iterable[SendOutcome]) -> int:
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
