"""The delivery report's tables and statements: the report table (one row per gateway message),
its optional status-history table, and the staging table each chunk of statuses is loaded into.

The write path is set-based: a chunk is loaded into a temporary staging table (PostgreSQL ``COPY``;
elsewhere one ``executemany``) and merged with one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE``.
The never-backwards rule lives in that statement: a row is only updated when the new status has a
higher rank (``status_rank`` column, from :attr:`DeliveryStatus.rank`), so re-running changes
nothing and a late ``sent`` never overwrites ``delivered``. Each chunk's statements cost in
proportion to the chunk, not to the tables: on PostgreSQL the history takes its rows from the
merge's ``RETURNING`` (no join with the report table). Each report row is written once: the merge
carries its campaign key (given, or looked up in the ledger), and only staged rows the merge left
alone still get it afterwards (:func:`campaign_key_statement`, a :class:`Backfill`). The ledger's
side of a chunk (its statuses moved forward) is
:func:`airflow_provider_sms.storage.ledger.ledger_update_statements`.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple

from airflow_provider_sms.messages import FAILED_STATUSES, DeliveryStatus, StatusReport
from airflow_provider_sms.storage.table import SqlTable, check_dialect_name, quote_name

STAGING = "sms_report_staging"

REPORT_COLUMNS: list[tuple[str, str]] = [
    ("gateway", "VARCHAR(32) NOT NULL"),
    # Gateway-given texts are TEXT: their lengths are the gateway's (a Smstools reference may be
    # 70 characters); tables created narrower by earlier versions are widened (widen_to_text).
    ("message_id", "TEXT NOT NULL"),
    ("recipient", "TEXT"),
    ("message_key", "TEXT"),
    ("status", "VARCHAR(16) NOT NULL"),
    ("status_rank", "INTEGER NOT NULL"),
    ("raw_status", "TEXT"),
    ("created_at", "TIMESTAMP"),
    ("status_at", "TIMESTAMP"),
    ("delivered_at", "TIMESTAMP"),
    ("failed_at", "TIMESTAMP"),
    ("first_seen_at", "TIMESTAMP"),
    ("updated_at", "TIMESTAMP"),
    # The campaign a message belongs to, where the ledger knows it (added to older tables).
    ("campaign_key", "TEXT"),
]
REPORT_KEY = ("gateway", "message_id")
# A campaign's rows by status, for the campaigns page (storage/campaigns.py).
CAMPAIGN_INDEX = ("campaign_status", ("campaign_key", "status"))
# What one status observation carries (the report columns but the two we set on write).
STAGED_COLUMNS = REPORT_COLUMNS[:11]
HISTORY_COLUMNS: list[tuple[str, str]] = [
    ("gateway", "VARCHAR(32) NOT NULL"),
    ("message_id", "TEXT NOT NULL"),
    ("status", "VARCHAR(16) NOT NULL"),
    ("raw_status", "TEXT"),
    ("status_at", "TIMESTAMP"),
    ("observed_at", "TIMESTAMP"),
]
HISTORY_KEY = ("gateway", "message_id", "status")
# Columns that were VARCHAR(n) before (the rest are our own words: gateway names, statuses).
GATEWAY_TEXTS = ("message_id", "recipient", "message_key", "raw_status")

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def status_rows(reports: Iterable[StatusReport], gateway: str, observed_at: datetime) -> list[tuple]:
    """Staged rows (``STAGED_COLUMNS``), one per message id: its highest status in ``reports``
    (one statement may not touch a key twice: PostgreSQL refuses ``ON CONFLICT DO UPDATE`` then).

    ``status_at`` is the gateway's own time of the status where it gives one, else when we saw it;
    ``delivered_at`` / ``failed_at`` carry it for final outcomes (the merge keeps the first).
    The hot loop of the write path: kept free of per-value function calls (the enum's ``rank`` and
    ``value`` are looked up once per status, in ``_STATUS_FACTS``).
    """
    facts = _STATUS_FACTS
    best: dict[str, StatusReport] = {}
    for report in reports:
        seen = best.get(report.message_id)
        if seen is None or facts[report.status][1] > facts[seen.status][1]:
            best[report.message_id] = report
    rows = []
    utc = timezone.utc
    for report in best.values():
        value, rank, delivered, failed = facts[report.status]
        created, status_at = report.created_at, report.updated_at
        if created is not None and created.tzinfo is None:
            created = created.replace(tzinfo=utc)
        if status_at is None:
            status_at = observed_at
        elif status_at.tzinfo is None:
            status_at = status_at.replace(tzinfo=utc)
        rows.append(
            (
                gateway,
                report.message_id,
                report.recipient,
                report.key,
                value,
                rank,
                report.raw_status,
                created,
                status_at,
                status_at if delivered else None,
                status_at if failed else None,
            )
        )
    return rows


# Per status: (value, rank, is delivered, is a failure), for the hot loop of status_rows.
_STATUS_FACTS = {
    s: (s.value, s.rank, s is DeliveryStatus.DELIVERED, s in FAILED_STATUSES) for s in DeliveryStatus
}


def copy_text(rows: Sequence[tuple]) -> str:
    """``rows`` (``STAGED_COLUMNS``) in PostgreSQL's COPY text format.

    The hot spot of the write path, so: texts are only escaped when the chunk holds a character
    that needs it (gateway and status are our own words and never do); each distinct timestamp is
    formatted once (a bulk send shares its seconds), with the stdlib ``isoformat`` (pendulum's
    override is slower).
    """
    null = "\\N"
    probe = "".join([f"{r[1]}{r[2]}{r[3]}{r[6]}" for r in rows])
    if "\\" in probe or "\t" in probe or "\n" in probe or "\r" in probe:

        def esc(value: str | None) -> str | None:
            return value if value is None else value.translate(_COPY_ESCAPES)

        rows = [(r[0], esc(r[1]), esc(r[2]), esc(r[3]), r[4], r[5], esc(r[6]), *r[7:]) for r in rows]
    stamps: dict[datetime | None, str] = {None: null}
    iso = datetime.isoformat

    def stamp(value: datetime) -> str:
        text = stamps[value] = iso(value)
        return text

    return "".join(
        [
            f"{gw}\t{mid}\t{null if rcp is None else rcp}\t{null if key is None else key}\t{st}\t{rank}\t"
            f"{null if raw is None else raw}\t{stamps.get(cr) or stamp(cr)}\t{stamps.get(at) or stamp(at)}\t"
            f"{stamps.get(dl) or stamp(dl)}\t{stamps.get(fl) or stamp(fl)}\n"
            for gw, mid, rcp, key, st, rank, raw, cr, at, dl, fl in rows
        ]
    )


class Backfill(NamedTuple):
    """A statement for the staged rows the merge left unchanged (already there, not moved forward):
    run only when the merge (the statement at index ``merge`` of the same chunk) changed fewer rows
    than were staged, i.e. some staged row was not written with the merge's values."""

    sql: str
    params: Sequence[Any]
    merge: int


class Staged(NamedTuple):
    """A chunk's staged rows and the same rows as its writer loads them (:meth:`StagedWriter.prepare`)."""

    rows: Sequence[tuple]
    data: Any


class StagedWriter:
    """Loads chunks into a temporary staging table on ``table``'s connection and runs statements
    against it, all in one transaction per chunk (PostgreSQL: ``COPY``; others: ``executemany``)."""

    def __init__(self, table: SqlTable) -> None:
        self.table = table
        self.names = [name for name, _ in STAGED_COLUMNS]

    def _create_staging(self, cursor: Any) -> None:
        pg = self.table.is_postgres
        cols = ", ".join(
            f"{name} {'TIMESTAMP WITH TIME ZONE' if pg else 'TEXT'}"
            if kind == "TIMESTAMP"
            else f"{name} {kind.replace(' NOT NULL', '')}"
            for name, kind in STAGED_COLUMNS
        )
        if pg:
            # Dropped at commit; one chunk lives in one transaction.
            cursor.execute(f"CREATE TEMP TABLE {STAGING} ({cols}) ON COMMIT DROP")
        else:
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} ({cols}, PRIMARY KEY (gateway, message_id))"
            )
            cursor.execute(f"DELETE FROM {STAGING}")

    def prepare(self, rows: Sequence[tuple]) -> Staged:
        """``rows`` made ready to load: the Python half of a write, which touches no connection, so a
        reader thread can do it while the chunk before is merged (PostgreSQL: the ``COPY`` text;
        others: the parameter rows, timestamps as this database stores them)."""
        if self.table.is_postgres:
            return Staged(rows, copy_text(rows))
        ts = self.table.ts
        return Staged(rows, [(*row[:7], ts(row[7]), ts(row[8]), ts(row[9]), ts(row[10])) for row in rows])

    def _load(self, cursor: Any, staged: Staged) -> None:
        if self.table.is_postgres:
            sql = f"COPY {STAGING} ({', '.join(self.names)}) FROM STDIN"
            if hasattr(cursor, "copy"):  # psycopg 3
                with cursor.copy(sql) as copy:
                    copy.write(staged.data)
            else:  # psycopg2
                cursor.copy_expert(sql, io.StringIO(staged.data))
            # No ANALYZE (120 ms a chunk of 50,000): no plan here depends on staging statistics.
            # The merge and the history read staging alone; the ledger update's join is pinned
            # to index probes (ledger_update_statements).
        else:
            values = ", ".join([self.table.ph] * len(self.names))
            cursor.executemany(
                f"INSERT INTO {STAGING} ({', '.join(self.names)}) VALUES ({values})", staged.data
            )

    def write(self, staged: Staged, statements: Iterable[tuple[str, Sequence[Any]] | Backfill]) -> list[int]:
        """Stage what :meth:`prepare` made of a chunk and run ``statements`` in one transaction;
        their row counts (for a statement that answers rows, e.g. ``WITH ... SELECT count(*)``: its
        first value; 0 for a :class:`Backfill` skipped because its merge changed every staged row)."""
        counts: list[int] = []
        with self.table.transaction() as cursor:
            self._create_staging(cursor)
            self._load(cursor, staged)
            for statement in statements:
                if isinstance(statement, Backfill) and counts[statement.merge] >= len(staged.rows):
                    counts.append(0)
                    continue
                sql, params = statement[0], statement[1]
                cursor.execute(sql, tuple(params))
                if cursor.description:
                    counts.append(int(cursor.fetchone()[0]))
                else:
                    counts.append(max(cursor.rowcount, 0))
        return counts


class DeliveryReportTable(SqlTable):
    """The report table (one row per gateway message) and its optional status-history table."""

    def __init__(self, conn_id: str, table: str, history_table: str | None = None) -> None:
        super().__init__(conn_id, table)
        if history_table:
            check_dialect_name(history_table, self.dialect, conn_id)
        self.history = quote_name(history_table) if history_table else None
        self.history_table = history_table

    def ensure_tables(self) -> None:
        self.create(REPORT_COLUMNS, REPORT_KEY)
        self.add_columns([column for column in REPORT_COLUMNS if column[0] == "campaign_key"])
        self.create_index(*CAMPAIGN_INDEX)
        self.widen_to_text(GATEWAY_TEXTS)
        if self.history_table:
            history = SqlTable(self.conn_id, self.history_table)
            try:
                history.create(HISTORY_COLUMNS, HISTORY_KEY)
                history.widen_to_text(GATEWAY_TEXTS)
            finally:
                history.close()

    def merge_statements(
        self, observed_at: datetime, campaign_key: str | None = None, ledger_table: str | None = None
    ) -> list[tuple[str, list[Any]]]:
        """The never-backwards upsert from staging and, with a history table, the transitions
        (rows inserted or moved forward) into it. The last statement's count is the report rows
        changed.

        The rows it writes carry their campaign: ``campaign_key`` when given, else, with
        ``ledger_table`` (on this connection), the ledger's for the same gateway message id (one
        index probe per staged row; NULL for a message the ledger does not know). A row already
        there keeps the campaign it has. Without either the campaign column is left alone.

        PostgreSQL: one statement, the history fed by the upsert's ``RETURNING`` (exactly the rows
        it inserted or moved forward, with their new status). Elsewhere: the history first, from a
        join of staging with the report table, then the upsert.
        """
        now = self.ts(observed_at)
        staged = ", ".join(name for name, _ in STAGED_COLUMNS)
        columns, values, params = "", "", [now, now]
        if campaign_key is not None:
            columns, values = ", campaign_key", f", {self.ph}"
            params.append(campaign_key)
        elif ledger_table is not None:
            # A scalar subquery, not a join: a message id twice in the ledger must not stage its
            # row twice (ON CONFLICT may touch a row once), and it is an index probe on any planner.
            columns = ", campaign_key"
            values = (
                f", (SELECT min(l.campaign_key) FROM {quote_name(ledger_table)} l "
                "WHERE l.gateway = s.gateway AND l.message_id = s.message_id)"
            )
        upsert = (
            # "WHERE true": SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT.
            f"INSERT INTO {self.quoted} AS t ({staged}, first_seen_at, updated_at{columns}) "
            f"SELECT {', '.join(f's.{name}' for name, _ in STAGED_COLUMNS)}, {self.ph}, {self.ph}{values} "
            f"FROM {STAGING} s WHERE true "
            "ON CONFLICT (gateway, message_id) DO UPDATE SET "
            "status = excluded.status, status_rank = excluded.status_rank, "
            "raw_status = excluded.raw_status, status_at = excluded.status_at, "
            "recipient = COALESCE(t.recipient, excluded.recipient), "
            "message_key = COALESCE(t.message_key, excluded.message_key), "
            "created_at = COALESCE(t.created_at, excluded.created_at), "
            "delivered_at = COALESCE(t.delivered_at, excluded.delivered_at), "
            "failed_at = COALESCE(t.failed_at, excluded.failed_at), "
            "updated_at = excluded.updated_at"
            f"{', campaign_key = COALESCE(t.campaign_key, excluded.campaign_key)' if columns else ''} "
            "WHERE excluded.status_rank > t.status_rank"
        )
        if not self.history:
            return [(upsert, params)]
        history_columns = "gateway, message_id, status, raw_status, status_at, observed_at"
        if self.is_postgres:
            return [
                (
                    f"WITH merged AS ({upsert} RETURNING t.gateway, t.message_id, t.status, "
                    f"t.raw_status, t.status_at), transitions AS (INSERT INTO {self.history} "
                    f"({history_columns}) SELECT gateway, message_id, status, raw_status, status_at, "
                    f"{self.ph} FROM merged ON CONFLICT (gateway, message_id, status) DO NOTHING) "
                    "SELECT count(*) FROM merged",
                    [*params, now],
                )
            ]
        return [
            (
                f"INSERT INTO {self.history} ({history_columns}) SELECT s.gateway, s.message_id, "
                f"s.status, s.raw_status, s.status_at, {self.ph} FROM {STAGING} s LEFT JOIN "
                f"{self.quoted} t ON t.gateway = s.gateway AND t.message_id = s.message_id "
                "WHERE t.message_id IS NULL OR s.status_rank > t.status_rank "
                "ON CONFLICT (gateway, message_id, status) DO NOTHING",
                [now],
            ),
            (upsert, params),
        ]


def campaign_key_statement(
    report: DeliveryReportTable, campaign_key: str | None, ledger_table: str | None, merge: int
) -> Backfill:
    """Give the staged messages' report rows that still have none their campaign: ``campaign_key``
    when the report was filtered by it, else the ledger's (``ledger_table``, on the report's
    connection). The merge (index ``merge`` among the chunk's statements) wrote the campaign of the
    rows it changed, so this only runs when it left some alone (rows already there, not moved
    forward). Run after :func:`ledger_update_statements`, whose ``SET LOCAL`` keeps the ledger join
    to index probes."""
    where = "t.gateway = s.gateway AND t.message_id = s.message_id AND t.campaign_key IS NULL"
    if campaign_key is not None:
        return Backfill(
            f"UPDATE {report.quoted} AS t SET campaign_key = {report.ph} FROM {STAGING} s WHERE {where}",
            [campaign_key],
            merge,
        )
    return Backfill(
        f"UPDATE {report.quoted} AS t SET campaign_key = l.campaign_key FROM {STAGING} s "
        f"JOIN {quote_name(ledger_table)} l ON l.gateway = s.gateway AND l.message_id = s.message_id "
        f"WHERE {where}",
        [],
        merge,
    )
