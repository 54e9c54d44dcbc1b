"""Read-only campaign figures for the Airflow UI: per-campaign aggregates over the ledger (one row per
campaign and recipient, with its state) and the delivery report (one row per gateway message, with
the ``campaign_key`` the ledger gave it), on SQLite and PostgreSQL.

Nothing here writes: the connection is opened read-only (SQLite ``query_only``, a PostgreSQL
read-only session). The list of campaigns is a loose index scan (one probe per campaign, not one
read per row) and the counts are read only for the campaigns asked for, so a page costs what its
campaigns hold, not what the ledger holds; the indexes that make both cheap are created by the
operators (:data:`airflow_provider_sms.storage.ledger.CAMPAIGN_INDEX`,
:data:`airflow_provider_sms.storage.report.CAMPAIGN_INDEX`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from airflow_provider_sms.messages import DeliveryStatus
from airflow_provider_sms.storage.table import SqlTable, check_dialect_name, quote_name

ACCEPTED, REJECTED, SUPPRESSED = "accepted", "rejected", "suppressed"
UNSENT = ("pending", "sending", "ambiguous")  # recorded, not (provably) sent yet
DELIVERED = DeliveryStatus.DELIVERED.value
UNDELIVERED = DeliveryStatus.UNDELIVERED.value
# Final statuses other than delivered and undelivered: the gateway failed or refused it after accepting.
FAILED = (DeliveryStatus.FAILED.value, DeliveryStatus.REJECTED.value)
KEYS_PER_QUERY = 500  # campaign keys per IN (...) list
# Bucket widths of a delivery timeline, finest first, and how many characters of an ISO-8601 text
# (SQLite's timestamps) or which date_trunc unit (PostgreSQL) cuts a timestamp to one.
BUCKETS = (
    (timedelta(seconds=1), 19, "second"),
    (timedelta(minutes=1), 16, "minute"),
    (timedelta(hours=1), 13, "hour"),
    (timedelta(days=1), 10, "day"),
)
MAX_BUCKETS = 240


class MissingTableError(LookupError):
    """The table does not exist (yet): no operator has written it on this connection."""


@dataclass(frozen=True)
class Campaign:
    """A campaign as the ledger knows it without counting: its key, start and gateway."""

    key: str
    started: datetime | None
    gateway: str | None
    sms_conn_id: str | None


@dataclass(frozen=True)
class Delivery:
    """A campaign's rows in the delivery report, by outcome (``reported`` counts every row)."""

    delivered: int = 0
    undelivered: int = 0
    failed: int = 0
    reported: int = 0

    @property
    def final(self) -> int:
        return self.delivered + self.undelivered + self.failed


@dataclass(frozen=True)
class LedgerCounts:
    """A campaign's ledger rows by state; ``segments`` are those of the accepted messages."""

    recipients: int = 0
    accepted: int = 0
    rejected: int = 0
    suppressed: int = 0
    unsent: int = 0
    segments: int = 0


@dataclass(frozen=True)
class Reasons:
    """Why messages did not go out or were not delivered, most frequent first."""

    rejected: list[tuple[str, int]] = field(default_factory=list)
    suppressed: list[tuple[str, int]] = field(default_factory=list)
    # (normalised status, the gateway's raw status, messages)
    failures: list[tuple[str, str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Timeline:
    """A campaign's messages over time: accepted (sent), delivered and not delivered per bucket."""

    bucket: timedelta
    starts: list[datetime]
    accepted: list[int]
    delivered: list[int]
    not_delivered: list[int]


class CampaignStore(SqlTable):
    """The ledger table (and the report table beside it, on the same connection), read-only."""

    def __init__(self, conn_id: str, ledger_table: str, report_table: str) -> None:
        super().__init__(conn_id, ledger_table)
        check_dialect_name(report_table, self.dialect, conn_id)
        self.ledger_table = ledger_table
        self.report_table = report_table
        self.report = quote_name(report_table)

    @property
    def conn(self):
        if self._conn is None:
            conn = self.hook.get_conn()
            with closing(conn.cursor()) as cursor:
                if self.dialect == "sqlite":
                    cursor.execute("PRAGMA query_only = ON")
                    cursor.execute("PRAGMA busy_timeout = 10000")
                elif self.is_postgres:
                    cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                    cursor.execute("SET statement_timeout = '60s'")
                    cursor.execute("SET TIME ZONE 'UTC'")  # the pages show UTC times and days
            conn.commit()
            self._conn = conn
        return self._conn

    # -- what exists -------------------------------------------------------------------------------

    def table_exists(self, name: str) -> bool:
        if self.is_postgres:
            rows = self.query(f"SELECT to_regclass({self.ph}) IS NOT NULL", [quote_name(name)])
            return bool(rows[0][0])
        if self.dialect == "sqlite":
            rows = self.query(
                f"SELECT COUNT(*) FROM sqlite_master WHERE type IN ('table', 'view') AND name = {self.ph}",
                [name],
            )
            return bool(rows[0][0])
        return True  # other databases: the query itself will say

    def _require(self, name: str) -> None:
        if not self.table_exists(name):
            raise MissingTableError(f"table {name!r} does not exist on connection {self.conn_id!r}")

    # -- the campaigns -----------------------------------------------------------------------------

    def campaigns(self) -> list[Campaign]:
        """Every campaign in the ledger, in key order (one index probe per campaign)."""
        self._require(self.ledger_table)
        t = self.quoted
        rows = self.query(
            f"WITH RECURSIVE keys(campaign_key) AS (SELECT MIN(campaign_key) FROM {t} "
            f"UNION ALL SELECT (SELECT MIN(l.campaign_key) FROM {t} l WHERE l.campaign_key > k.campaign_key) "
            "FROM keys k WHERE k.campaign_key IS NOT NULL) "
            f"SELECT k.campaign_key, (SELECT MIN(l.created_at) FROM {t} l WHERE l.campaign_key = k.campaign_key), "
            f"(SELECT l.gateway FROM {t} l WHERE l.campaign_key = k.campaign_key LIMIT 1), "
            f"(SELECT l.conn_id FROM {t} l WHERE l.campaign_key = k.campaign_key LIMIT 1) "
            "FROM keys k WHERE k.campaign_key IS NOT NULL"
        )
        return [Campaign(key, self._started(started), gw, conn) for key, started, gw, conn in rows]

    def campaign(self, key: str) -> Campaign | None:
        self._require(self.ledger_table)
        t = self.quoted
        rows = self.query(
            f"SELECT (SELECT MIN(created_at) FROM {t} WHERE campaign_key = {self.ph}), "
            f"(SELECT gateway FROM {t} WHERE campaign_key = {self.ph} LIMIT 1), "
            f"(SELECT conn_id FROM {t} WHERE campaign_key = {self.ph} LIMIT 1), "
            f"(SELECT COUNT(*) FROM (SELECT 1 FROM {t} WHERE campaign_key = {self.ph} LIMIT 1) one)",
            [key, key, key, key],
        )
        started, gateway, conn_id, present = rows[0]
        return Campaign(key, self._started(started), gateway, conn_id) if present else None

    def _started(self, value: object) -> datetime | None:
        """A campaign's start in UTC (what "Started (UTC)" and the daily chart's days mean)."""
        moment = self.from_ts(value)
        return None if moment is None else _utc(moment)

    def ledger_counts(self, keys: Sequence[str]) -> dict[str, LedgerCounts]:
        """Rows per state (and the accepted messages' segments) of each campaign in ``keys``."""
        by_key: dict[str, Counter] = {key: Counter() for key in keys}
        for part in _slices(keys):
            rows = self.query(
                f"SELECT campaign_key, state, COUNT(*), SUM(segments) FROM {self.quoted} "
                f"WHERE campaign_key IN {self.in_clause(len(part))} GROUP BY campaign_key, state",
                part,
            )
            for key, state, count, segments in rows:
                counts = by_key[key]
                counts["recipients"] += int(count)
                counts[state if state in (ACCEPTED, REJECTED, SUPPRESSED) else "unsent"] += int(count)
                if state == ACCEPTED:
                    counts["segments"] += int(segments or 0)
        return {key: LedgerCounts(**counts) for key, counts in by_key.items()}

    def delivery(self, keys: Sequence[str]) -> dict[str, Delivery]:
        """Report rows per outcome of each campaign in ``keys``; raises MissingTableError without a
        report table."""
        self._require(self.report_table)
        by_key: dict[str, Counter] = {key: Counter() for key in keys}
        for part in _slices(keys):
            rows = self.query(
                f"SELECT campaign_key, status, COUNT(*) FROM {self.report} "
                f"WHERE campaign_key IN {self.in_clause(len(part))} GROUP BY campaign_key, status",
                part,
            )
            for key, status, count in rows:
                counts = by_key[key]
                counts["reported"] += int(count)
                if status == DELIVERED:
                    counts["delivered"] += int(count)
                elif status == UNDELIVERED:
                    counts["undelivered"] += int(count)
                elif status in FAILED:
                    counts["failed"] += int(count)
        return {key: Delivery(**counts) for key, counts in by_key.items()}

    def reasons(self, keys: Sequence[str], limit: int = 10) -> dict[str, Reasons]:
        """The most frequent rejection and suppression reasons (the ledger's ``error``) of each
        campaign in ``keys``."""
        found: dict[str, dict[str, list[tuple[str, int]]]] = {
            key: {REJECTED: [], SUPPRESSED: []} for key in keys
        }
        for part in _slices(keys):
            rows = self.query(
                f"SELECT campaign_key, state, COALESCE(error, ''), COUNT(*) FROM {self.quoted} "
                f"WHERE campaign_key IN {self.in_clause(len(part))} AND state IN ({self.ph}, {self.ph}) "
                "GROUP BY campaign_key, state, COALESCE(error, '')",
                [*part, REJECTED, SUPPRESSED],
            )
            for key, state, error, count in rows:
                found[key][state].append((error or "(no reason given)", int(count)))
        return {
            key: Reasons(rejected=_top(r[REJECTED], limit), suppressed=_top(r[SUPPRESSED], limit))
            for key, r in found.items()
        }

    def failure_reasons(self, key: str, limit: int = 10) -> list[tuple[str, str, int]]:
        """The report's statuses (normalised and raw) that ended ``key``'s messages undelivered."""
        statuses = [UNDELIVERED, *FAILED]
        rows = self.query(
            f"SELECT status, COALESCE(raw_status, ''), COUNT(*) FROM {self.report} "
            f"WHERE campaign_key = {self.ph} AND status IN {self.in_clause(len(statuses))} "
            "GROUP BY status, COALESCE(raw_status, '')",
            [key, *statuses],
        )
        failures = [(status, raw, int(count)) for status, raw, count in rows]
        return sorted(failures, key=lambda f: (-f[2], f[0], f[1]))[:limit]

    def timeline(self, key: str, *, with_report: bool = True) -> Timeline | None:
        """Messages accepted (ledger ``sent_at``) and finally delivered or not (report
        ``delivered_at`` / ``failed_at``) per bucket, the bucket as fine as the campaign's span
        allows within :data:`MAX_BUCKETS`; None before anything was accepted."""
        first = self.query(
            f"SELECT MIN(sent_at), MAX(sent_at) FROM {self.quoted} WHERE campaign_key = {self.ph} "
            f"AND state = {self.ph}",
            [key, ACCEPTED],
        )[0]
        start, last = self.from_ts(first[0]), self.from_ts(first[1])
        if start is None:
            return None
        if with_report:
            ends = self.query(
                f"SELECT MAX(delivered_at), MAX(failed_at) FROM {self.report} WHERE campaign_key = {self.ph}",
                [key],
            )[0]
            last = max([last, *(self.from_ts(v) for v in ends if v is not None)])
        span = last - start
        width, chars, unit = next((b for b in BUCKETS if span / b[0] < MAX_BUCKETS), BUCKETS[-1])
        accepted = self._buckets(self.quoted, "sent_at", chars, unit, "state = " + self.ph, [key, ACCEPTED])
        delivered: dict[datetime, int] = {}
        failed: dict[datetime, int] = {}
        if with_report:
            delivered = self._buckets(
                self.report, "delivered_at", chars, unit, "delivered_at IS NOT NULL", [key]
            )
            failed = self._buckets(self.report, "failed_at", chars, unit, "failed_at IS NOT NULL", [key])
        first_bucket = min([*accepted, *delivered, *failed])
        last_bucket = max([*accepted, *delivered, *failed])
        starts = []
        moment = first_bucket
        while moment <= last_bucket:
            starts.append(moment)
            moment += width
        return Timeline(
            bucket=width,
            starts=starts,
            accepted=[accepted.get(s, 0) for s in starts],
            delivered=[delivered.get(s, 0) for s in starts],
            not_delivered=[failed.get(s, 0) for s in starts],
        )

    def _buckets(
        self, table: str, column: str, chars: int, unit: str, where: str, params: list
    ) -> dict[datetime, int]:
        col = quote_name(column, what="column")
        if self.is_postgres:
            bucket = f"date_trunc('{unit}', {col} AT TIME ZONE 'UTC')"
        else:  # ISO-8601 UTC text (SqlTable.ts): cutting the text is truncating the time
            bucket = f"substr({col}, 1, {chars})"
        rows = self.query(
            f"SELECT {bucket}, COUNT(*) FROM {table} WHERE campaign_key = {self.ph} AND {where} "
            f"GROUP BY {bucket}",
            params,
        )
        out: dict[datetime, int] = {}
        for moment, count in rows:
            if moment is None:
                continue
            if isinstance(moment, str):
                moment = {10: moment + "T00:00:00", 13: moment + ":00:00", 16: moment + ":00"}.get(
                    len(moment), moment
                )
            out[_utc(self.from_ts(moment))] = int(count)
        return out


def _slices(keys: Sequence[str]) -> Iterable[list[str]]:
    keys = list(keys)
    for start in range(0, len(keys), KEYS_PER_QUERY):
        yield keys[start : start + KEYS_PER_QUERY]


def _top(items: list[tuple[str, int]], limit: int) -> list[tuple[str, int]]:
    return sorted(items, key=lambda item: (-item[1], item[0]))[:limit]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
