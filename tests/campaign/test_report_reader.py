"""How a reconcile (campaign/report.py ``Reconcile.run``) shares its work between threads: the reader
thread reads each chunk and prepares it for loading (staged rows, COPY text) while the caller's
thread writes the chunk before; the collector is paused for the run and resumed after, also when a
write fails. The tables end the same with and without the reader, on SQLite and PostgreSQL."""

from __future__ import annotations

import gc
import threading
from datetime import datetime, timezone

import pytest

from airflow_provider_sms.campaign.report import Reconcile
from airflow_provider_sms.messages import DeliveryStatus, SendOutcome, StatusReport
from airflow_provider_sms.storage import report as report_module
from airflow_provider_sms.storage.ledger import ACCEPTED, LedgerEntry, MessageLedger, idempotency_key
from airflow_provider_sms.storage.table import SqlTable

SINCE = datetime(2026, 11, 1, tzinfo=timezone.utc)
D, S, F = DeliveryStatus.DELIVERED, DeliveryStatus.SENT, DeliveryStatus.FAILED
# 30 messages, each listed twice (sent, then its outcome), so a message's statuses fall in
# different chunks of 7; m0-m19 are in the ledger.
LISTED = [StatusReport(f"m{i}", S, "sent") for i in range(30)] + [
    StatusReport(f"m{i}", F if i % 5 == 0 else D, "failed" if i % 5 == 0 else "delivered") for i in range(30)
]


class Listing:
    """A gateway whose status listing is ``reports``, read in the thread that asks."""

    gateway = "textboost"
    connection = None

    def __init__(self, reports: list[StatusReport]) -> None:
        self.reports = reports
        self.threads: set[str] = set()

    def iter_statuses(self, since: datetime):
        for report in self.reports:
            self.threads.add(threading.current_thread().name)
            yield report


def with_ledger(conn_id: str) -> None:
    ledger = MessageLedger(conn_id, gateway="textboost")
    try:
        ledger.ensure_table()
        sent = {f"+49{i}": f"m{i}" for i in range(20)}
        ledger.record("autumn", [LedgerEntry(r, ACCEPTED, idempotency_key("autumn", r)) for r in sent])
        ledger.mark("autumn", [SendOutcome(r, ACCEPTED, mid, "queued", "queued") for r, mid in sent.items()])
    finally:
        ledger.close()


def tables(conn_id: str, ledger_conn_id: str) -> tuple[dict, dict]:
    report, ledger = SqlTable(conn_id, "sms_delivery_report"), SqlTable(ledger_conn_id, "sms_messages")
    try:
        rows = report.query(
            "SELECT message_id, campaign_key, status, delivered_at IS NOT NULL FROM sms_delivery_report"
        )
        statuses = ledger.query("SELECT message_id, status FROM sms_messages")
        return {r[0]: tuple(r[1:]) for r in rows}, dict(statuses)
    finally:
        report.close()
        ledger.close()


def run(
    conn_id: str, ledger_conn_id: str, prefetch: bool, hook: Listing | None = None
) -> tuple[Listing, object]:
    hook = hook or Listing(LISTED)
    done = Reconcile(
        hook=hook,
        report_conn_id=conn_id,
        report_table="sms_delivery_report",
        ledger_conn_id=ledger_conn_id,
        ledger_table="sms_messages",
        chunk_size=7,
        prefetch=prefetch,
    ).run(SINCE)
    return hook, done


@pytest.mark.parametrize("prefetch", [False, True])
def test_the_tables_end_the_same_with_and_without_the_reader(sql_conn_id, prefetch):
    with_ledger(sql_conn_id)

    hook, done = run(sql_conn_id, sql_conn_id, prefetch)

    assert (done.fetched, done.changed) == (60, 60)  # each listed status moved its row forward
    rows, statuses = tables(sql_conn_id, sql_conn_id)
    assert rows == {
        f"m{i}": ("autumn" if i < 20 else None, "failed" if i % 5 == 0 else "delivered", i % 5 != 0)
        for i in range(30)
    }
    assert statuses == {f"m{i}": "failed" if i % 5 == 0 else "delivered" for i in range(20)}
    assert (hook.threads == {threading.current_thread().name}) is not prefetch


def test_the_reader_prepares_and_the_caller_writes_with_the_collector_paused(
    postgres_conn_id, sqlite_conn_id, monkeypatch
):
    """The ledger on another connection: each chunk is prepared once per writer, in the reader
    thread (COPY text for PostgreSQL, parameter rows for SQLite), and written in the caller's
    thread, the collector off meanwhile and on again after."""
    with_ledger(sqlite_conn_id)
    seen: list[tuple[str, str, bool]] = []
    prepare, write = report_module.StagedWriter.prepare, report_module.StagedWriter.write

    def watched_prepare(self, rows):
        seen.append(("prepare", threading.current_thread().name, gc.isenabled()))
        return prepare(self, rows)

    def watched_write(self, staged, statements):
        seen.append(("write", threading.current_thread().name, gc.isenabled()))
        assert isinstance(staged, report_module.Staged)
        return write(self, staged, statements)

    monkeypatch.setattr(report_module.StagedWriter, "prepare", watched_prepare)
    monkeypatch.setattr(report_module.StagedWriter, "write", watched_write)

    run(postgres_conn_id, sqlite_conn_id, prefetch=True)

    caller = threading.current_thread().name
    assert [what for what, _, _ in seen].count("prepare") == 2 * 9  # 60 statuses in chunks of 7, two writers
    assert [what for what, _, _ in seen].count("write") == 2 * 9
    assert {thread for what, thread, _ in seen if what == "write"} == {caller}
    assert caller not in {thread for what, thread, _ in seen if what == "prepare"}
    assert not any(enabled for _, _, enabled in seen)
    assert gc.isenabled()
    rows, statuses = tables(postgres_conn_id, sqlite_conn_id)
    assert len(rows) == 30 and statuses["m5"] == "failed" and statuses["m6"] == "delivered"


def test_a_failing_write_stops_the_reader_and_resumes_the_collector(sql_conn_id, monkeypatch):
    with_ledger(sql_conn_id)

    def broken(self, staged, statements):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(report_module.StagedWriter, "write", broken)

    with pytest.raises(RuntimeError, match="went away"):
        run(sql_conn_id, sql_conn_id, prefetch=True)
    assert gc.isenabled()
    assert not [t for t in threading.enumerate() if t.name.startswith("sms-prefetch")]


def test_reference_cycles_made_while_reading_are_swept_between_chunks(sql_conn_id, monkeypatch):
    """With the collector paused, what the listing leaves in reference cycles (the HTTP client's)
    is collected by the sweeps between chunks, not only after the run."""
    import functools
    import weakref

    from airflow_provider_sms.campaign import report as campaign_report
    from airflow_provider_sms.hooks.base import collector_paused

    class Node:
        pass

    cycles: list[weakref.ref] = []

    class CyclingListing(Listing):
        def iter_statuses(self, since, read_ahead=False):
            for report in self.reports:
                node = Node()
                node.itself = node
                cycles.append(weakref.ref(node))
                yield report

    alive_at_last_write: list[int] = []
    write = report_module.StagedWriter.write

    def watched_write(self, staged, statements):
        alive_at_last_write[:] = [sum(ref() is not None for ref in cycles)]
        return write(self, staged, statements)

    monkeypatch.setattr(report_module.StagedWriter, "write", watched_write)
    monkeypatch.setattr(
        campaign_report, "collector_paused", functools.partial(collector_paused, sweep_every=1)
    )
    with_ledger(sql_conn_id)

    run(sql_conn_id, sql_conn_id, prefetch=False, hook=CyclingListing(LISTED))

    assert len(cycles) == 60
    # Without the sweeps all 59 finished cycles would still be there. A sweep collects what became
    # garbage since the one before; the node the listing still held at each of the 9 sweeps survives
    # it (into an older generation) and waits for the resume, like the last chunk's.
    assert alive_at_last_write[0] <= 9 + 4
