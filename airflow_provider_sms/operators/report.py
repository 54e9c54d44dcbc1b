"""SmsDeliveryReportOperator: delivery statuses from a gateway, upserted into a warehouse table.

The write path is set-based and streams: statuses are read page by page from the gateway's list
endpoint, grouped into chunks, and each chunk is loaded into a temporary staging table (PostgreSQL
``COPY``; elsewhere one ``executemany``) and merged with one ``INSERT ... SELECT ... ON CONFLICT DO
UPDATE``. The never-backwards rule lives in that statement: a row is only updated when the new
status has a higher rank (``status_rank`` column, from :attr:`DeliveryStatus.rank`), so re-running
changes nothing and a late ``sent`` never overwrites ``delivered``.

Each chunk's statements cost in proportion to the chunk, not to the tables: on PostgreSQL the
history takes its rows from the merge's ``RETURNING`` (no join with the report table) and the
ledger update probes the ledger's ``(gateway, message_id)`` index. While a chunk is written, a
background thread reads the next one from the gateway (``prefetch``).
"""

from __future__ import annotations

import io
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, closing
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any

import pendulum
from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_sms.campaign.prefetch import prefetched
from airflow_provider_sms.hooks import get_gateway_hook
from airflow_provider_sms.hooks.base import SmsGatewayHook, chunked
from airflow_provider_sms.messages import CLOCK_SKEW, FAILED_STATUSES, DeliveryStatus, StatusReport
from airflow_provider_sms.operators.send import ledger_asset
from airflow_provider_sms.storage.ledger import MessageLedger
from airflow_provider_sms.storage.table import SqlTable, check_dialect_name, quote_name, utcnow

DEFAULT_CHUNK_SIZE = 50_000
DEFAULT_LOOKBACK = timedelta(days=7)
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


def rank_sql(column: str) -> str:
    """SQL for the rank of a normalised status held in ``column`` (unknown values rank 0)."""
    cases = " ".join(f"WHEN '{s.value}' THEN {s.rank}" for s in DeliveryStatus if s.rank)
    return f"CASE {column} {cases} ELSE 0 END"


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

    def _load(self, cursor: Any, rows: Sequence[tuple]) -> None:
        if self.table.is_postgres:
            data = copy_text(rows)
            sql = f"COPY {STAGING} ({', '.join(self.names)}) FROM STDIN"
            if hasattr(cursor, "copy"):  # psycopg 3
                with cursor.copy(sql) as copy:
                    copy.write(data)
            else:  # psycopg2
                cursor.copy_expert(sql, io.StringIO(data))
            # No ANALYZE (120 ms a chunk of 50,000): no plan here depends on staging statistics.
            # The merge and the history read staging alone; the ledger update's join is pinned
            # to index probes (ledger_update_statements).
        else:
            ts = self.table.ts
            values = ", ".join([self.table.ph] * len(self.names))
            cursor.executemany(
                f"INSERT INTO {STAGING} ({', '.join(self.names)}) VALUES ({values})",
                [(*row[:7], ts(row[7]), ts(row[8]), ts(row[9]), ts(row[10])) for row in rows],
            )

    def write(self, rows: Sequence[tuple], statements: Iterable[tuple[str, Sequence[Any]]]) -> list[int]:
        """Stage ``rows`` and run ``statements`` in one transaction; their row counts (for a
        statement that answers rows, e.g. ``WITH ... SELECT count(*)``: its first value)."""
        counts = []
        with self.table.transaction() as cursor:
            self._create_staging(cursor)
            self._load(cursor, rows)
            for sql, params in statements:
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
        self.widen_to_text(GATEWAY_TEXTS)
        if self.history_table:
            history = SqlTable(self.conn_id, self.history_table)
            try:
                history.create(HISTORY_COLUMNS, HISTORY_KEY)
                history.widen_to_text(GATEWAY_TEXTS)
            finally:
                history.close()

    def merge_statements(self, observed_at: datetime) -> list[tuple[str, list[Any]]]:
        """The never-backwards upsert from staging and, with a history table, the transitions
        (rows inserted or moved forward) into it. The last statement's count is the report rows
        changed.

        PostgreSQL: one statement, the history fed by the upsert's ``RETURNING`` (exactly the rows
        it inserted or moved forward, with their new status). Elsewhere: the history first, from a
        join of staging with the report table, then the upsert.
        """
        now = self.ts(observed_at)
        staged = ", ".join(name for name, _ in STAGED_COLUMNS)
        upsert = (
            # "WHERE true": SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT.
            f"INSERT INTO {self.quoted} AS t ({staged}, first_seen_at, updated_at) "
            f"SELECT {staged}, {self.ph}, {self.ph} FROM {STAGING} WHERE true "
            "ON CONFLICT (gateway, message_id) DO UPDATE SET "
            "status = excluded.status, status_rank = excluded.status_rank, "
            "raw_status = excluded.raw_status, status_at = excluded.status_at, "
            "recipient = COALESCE(t.recipient, excluded.recipient), "
            "message_key = COALESCE(t.message_key, excluded.message_key), "
            "created_at = COALESCE(t.created_at, excluded.created_at), "
            "delivered_at = COALESCE(t.delivered_at, excluded.delivered_at), "
            "failed_at = COALESCE(t.failed_at, excluded.failed_at), "
            "updated_at = excluded.updated_at "
            "WHERE excluded.status_rank > t.status_rank"
        )
        if not self.history:
            return [(upsert, [now, now])]
        history_columns = "gateway, message_id, status, raw_status, status_at, observed_at"
        if self.is_postgres:
            return [
                (
                    f"WITH merged AS ({upsert} RETURNING t.gateway, t.message_id, t.status, "
                    f"t.raw_status, t.status_at), transitions AS (INSERT INTO {self.history} "
                    f"({history_columns}) SELECT gateway, message_id, status, raw_status, status_at, "
                    f"{self.ph} FROM merged ON CONFLICT (gateway, message_id, status) DO NOTHING) "
                    "SELECT count(*) FROM merged",
                    [now, now, now],
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
            (upsert, [now, now]),
        ]


def campaign_key_statement(
    report: DeliveryReportTable, campaign_key: str | None, ledger_table: str | None
) -> tuple[str, list[Any]]:
    """Give the staged messages' report rows their campaign: ``campaign_key`` when the report was
    filtered by it, else the ledger's (``ledger_table``, on the report's connection). Run after
    :func:`ledger_update_statements`, whose ``SET LOCAL`` keeps the ledger join to index probes."""
    where = "t.gateway = s.gateway AND t.message_id = s.message_id AND t.campaign_key IS NULL"
    if campaign_key is not None:
        return (
            f"UPDATE {report.quoted} AS t SET campaign_key = {report.ph} FROM {STAGING} s WHERE {where}",
            [campaign_key],
        )
    return (
        f"UPDATE {report.quoted} AS t SET campaign_key = l.campaign_key FROM {STAGING} s "
        f"JOIN {quote_name(ledger_table)} l ON l.gateway = s.gateway AND l.message_id = s.message_id "
        f"WHERE {where}",
        [],
    )


def ledger_update_statements(
    on: SqlTable, ledger_table: str, observed_at: datetime
) -> list[tuple[str, list[Any]]]:
    """Move the ledger's ``status`` / ``raw_status`` forward for the staged message ids of the same
    gateway (never backwards), run on ``on``'s connection, where the staging table lives.

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


class SmsDeliveryReportOperator(BaseOperator):
    """Fetch delivery statuses in bulk and upsert them into a warehouse table.

    Statuses come from the gateway's list endpoint (paged, from ``since``), are normalised to one
    vocabulary (the raw value kept beside it) and merged into ``report_table`` keyed by
    ``(gateway, message_id)``: a status never moves backwards, ``delivered_at`` / ``failed_at`` are
    set once. The ledger rows with the same gateway message ids get the status too. The report
    table is the task's outlet Asset, so downstream DAGs can be scheduled on it. Inbound messages
    (status ``received``) are not delivery outcomes and are skipped.

    Returns ``{"report_table", "fetched", "changed", "counts"}``: statuses read, rows inserted or
    moved forward, and the fetched messages per normalised status.

    :param sms_conn_id: connection of the gateway (type ``smstools``, ``smsgateway24`` or ``textboost``).
    :param report_conn_id: Airflow SQL connection of the report table (SQLite, PostgreSQL, ...).
    :param report_table: report table name (created if missing; may be ``schema.table``).
    :param ledger_conn_id: SQL connection of the message ledger (default ``report_conn_id``).
    :param ledger_table: ledger table whose rows get the statuses; None to leave the ledger alone.
    :param history_table: optional table with one row per observed status transition.
    :param campaign_key: report only this campaign's messages (templated): the ledger's accepted
        message ids, read from just before its first send (unless ``since`` is given); reading stops
        once every one was seen. Without it the report covers every message of the account since
        ``since``. Either way each report row gets its ``campaign_key`` where the ledger (on the
        same connection) knows it.
    :param since: read messages created from this time on (templated: datetime or ISO-8601 text).
    :param lookback: without ``since`` or ``campaign_key``: read messages of this period before now
        (default 7 days).
    :param chunk_size: statuses staged and merged per transaction.
    :param prefetch: read the next chunk from the gateway in a background thread while one is
        written (the two overlap; at most two chunks wait in memory besides the one written).
    """

    template_fields: Sequence[str] = (
        "since",
        "report_table",
        "ledger_table",
        "history_table",
        "campaign_key",
    )
    ui_color = "#e8e0f5"

    def __init__(
        self,
        *,
        sms_conn_id: str,
        report_conn_id: str = "sqlite_default",
        report_table: str = "sms_delivery_report",
        ledger_conn_id: str | None = None,
        ledger_table: str | None = "sms_messages",
        history_table: str | None = None,
        campaign_key: str | None = None,
        since: datetime | str | None = None,
        lookback: timedelta | float = DEFAULT_LOOKBACK,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        prefetch: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [ledger_asset(report_conn_id, report_table)])
        super().__init__(**kwargs)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.sms_conn_id = sms_conn_id
        self.report_conn_id = report_conn_id
        self.report_table = report_table
        self.ledger_conn_id = ledger_conn_id or report_conn_id
        self.ledger_table = ledger_table
        self.history_table = history_table
        if campaign_key is not None and not ledger_table:
            raise ValueError(
                "campaign_key needs the ledger (ledger_table) that knows the campaign's messages"
            )
        self.campaign_key = campaign_key
        self.since = since
        self.lookback = lookback if isinstance(lookback, timedelta) else timedelta(seconds=lookback)
        self.chunk_size = chunk_size
        self.prefetch = prefetch

    @cached_property
    def hook(self) -> SmsGatewayHook:
        return get_gateway_hook(self.sms_conn_id)

    def _since(self, first_sent: datetime | None = None) -> datetime:
        if self.since in (None, ""):
            return first_sent - CLOCK_SKEW if first_sent else utcnow() - self.lookback
        if isinstance(self.since, datetime):
            return self.since
        return pendulum.parse(str(self.since))

    def _campaign(self) -> tuple[set[str] | None, datetime | None]:
        """The campaign's accepted message ids and its first send (None, None without a filter)."""
        if not self.campaign_key:
            return None, None
        ledger = MessageLedger(self.ledger_conn_id, self.ledger_table)
        try:
            ledger.ensure_table()
            if not ledger.counts(self.campaign_key):
                raise AirflowFailException(
                    f"campaign {self.campaign_key!r} has no rows in the ledger table {self.ledger_table!r} "
                    f"(connection {self.ledger_conn_id!r}): check the key"
                )
            return set(ledger.message_ids(self.campaign_key)), ledger.first_sent_at(self.campaign_key)
        finally:
            ledger.close()

    def execute(self, context: Context) -> dict[str, Any]:
        wanted, first_sent = self._campaign()
        since = self._since(first_sent)
        gateway = self.hook.gateway
        self.log.info("Reading %s statuses since %s into %s", gateway, since.isoformat(), self.report_table)
        counts: Counter = Counter()
        fetched = changed = 0
        with ExitStack() as stack:
            report = DeliveryReportTable(self.report_conn_id, self.report_table, self.history_table)
            stack.callback(report.close)
            report.ensure_tables()
            writers = self._writers(report, stack)
            stop = threading.Event()
            chunks: Iterator[list[StatusReport]] = chunked(
                self._statuses(since, stop, wanted), self.chunk_size
            )
            if self.prefetch:
                _ = self.hook.connection  # read here, in the task's thread: the reader only sends requests
                chunks = stack.enter_context(closing(prefetched(chunks)))
                # Unwound first: the reader stops at its next status instead of finishing a chunk.
                stack.callback(stop.set)
            for chunk in chunks:
                observed_at = utcnow()
                rows = status_rows(chunk, gateway, observed_at)
                counts.update([row[4] for row in rows])
                fetched += len(rows)
                for writer, statements, changed_at in writers:
                    result = writer.write(rows, statements(observed_at))
                    if changed_at is not None:
                        changed += result[changed_at]
                self.log.info("Merged %d statuses (%d changed so far)", fetched, changed)
        result = {
            "report_table": self.report_table,
            **({"campaign_key": self.campaign_key} if self.campaign_key else {}),
            "fetched": fetched,
            "changed": changed,
            "counts": dict(sorted(counts.items())),
        }
        self.log.info("Delivery report: %s", result)
        return result

    def _statuses(
        self, since: datetime, stop: threading.Event, wanted: set[str] | None = None
    ) -> Iterator[StatusReport]:
        """The gateway's delivery statuses (inbound messages left out), until ``stop`` is set; with
        ``wanted``, only those message ids, and only until each was seen."""
        received = DeliveryStatus.RECEIVED
        if wanted is not None and not wanted:
            return
        left = set(wanted) if wanted is not None else None
        for report in self.hook.iter_statuses(since):
            if stop.is_set():
                return
            if report.status is received:
                continue
            if left is not None:
                if report.message_id not in wanted:
                    continue
                left.discard(report.message_id)
            yield report
            if left is not None and not left:
                return

    def _writers(
        self, report: DeliveryReportTable, stack: ExitStack
    ) -> list[tuple[StagedWriter, Any, int | None]]:
        """One staging load per database: the ledger update joins the report's transaction when the
        ledger lives on the same connection, and gets its own staging table otherwise. Each writer
        comes with its statements and the index of the report's merge among them (its count is the
        rows changed; None for the ledger's own writer)."""
        key = self.campaign_key
        if not self.ledger_table:
            return [(StagedWriter(report), report.merge_statements, -1)]
        ledger = MessageLedger(self.ledger_conn_id, self.ledger_table)
        stack.callback(ledger.close)
        ledger.ensure_table()
        table = self.ledger_table
        if self.ledger_conn_id == self.report_conn_id:
            ledger.close()  # its statements run on the report's connection, next to the staging table
            merged = len(report.merge_statements(utcnow())) - 1
            return [
                (
                    StagedWriter(report),
                    lambda at: [
                        *report.merge_statements(at),
                        *ledger_update_statements(report, table, at),
                        campaign_key_statement(report, key, table),
                    ],
                    merged,
                )
            ]
        statements = report.merge_statements
        if key is not None:  # the ledger is elsewhere, but the campaign is known

            def statements(at: datetime) -> list[tuple[str, list[Any]]]:
                return [*report.merge_statements(at), campaign_key_statement(report, key, None)]

        return [
            (StagedWriter(report), statements, len(report.merge_statements(utcnow())) - 1),
            (StagedWriter(ledger), lambda at: ledger_update_statements(ledger, table, at), None),
        ]

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the gateway's message log in; report, ledger and history tables out."""
        from airflow_provider_sms.operators.lineage import gateway_dataset_id, operator_lineage

        outputs = [(self.report_conn_id, self.report_table)]
        if self.ledger_table:
            outputs.append((self.ledger_conn_id, self.ledger_table))
        if self.history_table:
            outputs.append((self.report_conn_id, self.history_table))
        return operator_lineage(
            inputs=[gateway_dataset_id(self.hook.gateway, self.hook.base_url)],
            output_tables=outputs,
        )
