"""Reconcile: a gateway's delivery statuses, streamed into the report table (and the ledger).

Statuses are read page by page from the gateway's list endpoint, grouped into chunks, and each
chunk is staged and merged by the storage layer (:mod:`airflow_provider_sms.storage.report`): the
report never moves a status backwards, and the ledger rows with the same gateway message ids move
forward with it. While a chunk is written, a background thread reads the next one from the gateway
and prepares it for loading (``prefetch``). Airflow-free: the operator is :class:`~airflow_provider_sms.operators.report.SmsDeliveryReportOperator`.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_sms.campaign.prefetch import prefetched
from airflow_provider_sms.hooks.base import SmsGatewayHook, chunked, collector_paused, long_lived_frozen
from airflow_provider_sms.messages import CLOCK_SKEW, DeliveryStatus, StatusReport, as_datetime
from airflow_provider_sms.storage.ledger import MessageLedger, ledger_update_statements
from airflow_provider_sms.storage.report import (
    Backfill,
    DeliveryReportTable,
    Staged,
    StagedWriter,
    campaign_key_statement,
    status_rows,
)
from airflow_provider_sms.storage.table import utcnow

DEFAULT_CHUNK_SIZE = 50_000
DEFAULT_LOOKBACK = timedelta(days=7)
log = logging.getLogger(__name__)
Statements = Callable[[datetime], list[tuple[str, list[Any]] | Backfill]]


class UnknownCampaignError(ValueError):
    """The campaign to report on has no rows in the ledger (a mistyped key, another ledger table)."""


def reading_since(
    since: datetime | str | None, lookback: timedelta, first_sent: datetime | None = None
) -> datetime:
    """Where the status listing starts: ``since`` (a datetime or ISO-8601 text) when given, else just
    before the campaign's first send (``first_sent``), else ``lookback`` before now."""
    if since in (None, ""):
        return first_sent - CLOCK_SKEW if first_sent else utcnow() - lookback
    return as_datetime(since)


@dataclass
class Reconciled:
    """What one reconcile did: statuses read, report rows inserted or moved forward, and the read
    messages per normalised status."""

    fetched: int = 0
    changed: int = 0
    counts: Counter = field(default_factory=Counter)


@dataclass
class Reconcile:
    """One reconcile of ``hook``'s statuses into ``report_table`` (on ``report_conn_id``), the
    ledger (``ledger_table`` on ``ledger_conn_id``; None to leave it alone) and, optionally, a
    status-history table; with ``campaign_key``, only that campaign's messages."""

    hook: SmsGatewayHook
    report_conn_id: str
    report_table: str
    ledger_conn_id: str
    ledger_table: str | None
    history_table: str | None = None
    campaign_key: str | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    prefetch: bool = True
    log: logging.Logger | logging.LoggerAdapter = log

    def campaign(self) -> tuple[set[str] | None, datetime | None]:
        """The campaign's accepted message ids and its first send (None, None without a filter)."""
        if not self.campaign_key:
            return None, None
        ledger = MessageLedger(self.ledger_conn_id, self.ledger_table)
        with long_lived_frozen():  # a million ids read as row tuples
            try:
                ledger.ensure_table()
                if not ledger.counts(self.campaign_key):
                    raise UnknownCampaignError(
                        f"campaign {self.campaign_key!r} has no rows in the ledger table {self.ledger_table!r} "
                        f"(connection {self.ledger_conn_id!r}): check the key"
                    )
                return set(ledger.message_ids(self.campaign_key)), ledger.first_sent_at(self.campaign_key)
            finally:
                ledger.close()

    def run(self, since: datetime, wanted: set[str] | None = None) -> Reconciled:
        """Read the statuses since ``since`` (only ``wanted`` ids, if given) and write them."""
        gateway = self.hook.gateway
        self.log.info("Reading %s statuses since %s into %s", gateway, since.isoformat(), self.report_table)
        done = Reconciled()
        with ExitStack() as stack:
            # Resumed last, once the reader has stopped.
            sweep = stack.enter_context(collector_paused())
            report = DeliveryReportTable(self.report_conn_id, self.report_table, self.history_table)
            stack.callback(report.close)
            report.ensure_tables()
            writers = self._writers(report, stack)
            stop = threading.Event()
            read: Iterator[list[StatusReport]] = chunked(self.statuses(since, stop, wanted), self.chunk_size)

            def prepare(chunk: list[StatusReport]) -> tuple[datetime, list[Staged]]:
                observed_at = utcnow()
                rows = status_rows(chunk, gateway, observed_at)
                return observed_at, [writer.prepare(rows) for writer, _, _ in writers]

            chunks: Iterator[tuple[datetime, list[Staged]]]
            if self.prefetch:
                _ = self.hook.connection  # read here, in the caller's thread: the reader only sends requests
                # The reader prepares each chunk too (rows, COPY text) while the one before is merged.
                chunks = stack.enter_context(closing(prefetched(read, prepare)))
                # Unwound first: the reader stops at its next status instead of finishing a chunk.
                stack.callback(stop.set)
            else:
                chunks = map(prepare, read)
            for observed_at, staged in chunks:
                sweep()  # every 20 chunks: the reference cycles of the pages read since the last sweep
                rows = staged[0].rows
                done.counts.update([row[4] for row in rows])
                done.fetched += len(rows)
                for (writer, statements, changed_at), prepared in zip(writers, staged, strict=True):
                    result = writer.write(prepared, statements(observed_at))
                    if changed_at is not None:
                        done.changed += result[changed_at]
                self.log.info("Merged %d statuses (%d changed so far)", done.fetched, done.changed)
        return done

    def statuses(
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
    ) -> list[tuple[StagedWriter, Statements, int | None]]:
        """One staging load per database: the ledger update joins the report's transaction when the
        ledger lives on the same connection, and gets its own staging table otherwise. Each writer
        comes with its statements and the index of the report's merge among them (its count is the
        rows changed; None for the ledger's own writer). The merge writes each row's campaign key
        (the filter's, else the ledger's when it is on this connection); the backfill after it only
        runs for rows the merge left alone."""
        key = self.campaign_key
        if not self.ledger_table:
            return [(StagedWriter(report), report.merge_statements, -1)]
        ledger = MessageLedger(self.ledger_conn_id, self.ledger_table)
        stack.callback(ledger.close)
        ledger.ensure_table()
        table = self.ledger_table
        merged = len(report.merge_statements(utcnow())) - 1
        if self.ledger_conn_id == self.report_conn_id:
            ledger.close()  # its statements run on the report's connection, next to the staging table
            return [
                (
                    StagedWriter(report),
                    lambda at: [
                        *report.merge_statements(at, key, table),
                        *ledger_update_statements(report, table, at),
                        campaign_key_statement(report, key, table, merged),
                    ],
                    merged,
                )
            ]
        statements: Statements = report.merge_statements
        if key is not None:  # the ledger is elsewhere, but the campaign is known

            def statements(at: datetime) -> list[tuple[str, list[Any]] | Backfill]:
                return [*report.merge_statements(at, key), campaign_key_statement(report, key, None, merged)]

        return [
            (StagedWriter(report), statements, merged),
            (StagedWriter(ledger), lambda at: ledger_update_statements(ledger, table, at), None),
        ]
