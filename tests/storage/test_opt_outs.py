"""The opt-out table on SQLite and PostgreSQL: newer-wins upserts, idempotent, one statement per batch."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_sms.messages import InvalidPhoneNumberError, OptOutEvent
from airflow_provider_sms.storage.opt_outs import OptOutTable

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
A, B, C = "+4915100000001", "+4915100000002", "+4915100000003"


def stop(phone: str, at: datetime, **kw) -> OptOutEvent:
    return OptOutEvent(phone, True, at, gateway="smstools", source="reply", keyword="STOP", **kw)


def start(phone: str, at: datetime, **kw) -> OptOutEvent:
    return OptOutEvent(phone, False, at, gateway="smstools", source="reply", keyword="START", **kw)


@pytest.fixture
def table(sql_conn_id):
    table = OptOutTable(sql_conn_id)
    table.ensure()
    table.ensure()  # idempotent
    yield table
    table.close()


def test_a_missing_table_is_created_empty(table):
    assert table.opted_out() == set()
    assert table.counts() == {"opted_out": 0, "resubscribed": 0}


def test_record_is_idempotent_and_the_newer_event_wins(table):
    events = [stop(A, T0, source_reply_id="r1"), stop(B, T0), start(C, T0)]
    assert table.record(events) == 3
    assert table.record(events) == 0  # a re-run writes nothing
    assert table.opted_out() == {A, B}

    # START after STOP re-subscribes, the row is kept for the audit
    assert table.record([start(A, T0 + timedelta(hours=1), source_reply_id="r2")]) == 1
    assert table.opted_out() == {B}
    row = table.rows([A])[A]
    assert (row["opted_out"], row["source_reply_id"], row["keyword"]) == (False, "r2", "START")
    assert row["since"] == T0 + timedelta(hours=1)
    assert table.counts() == {"opted_out": 1, "resubscribed": 2}

    # the old STOP replayed after the newer START does not opt the number out again
    assert table.record([stop(A, T0, source_reply_id="r1")]) == 0
    assert table.opted_out() == {B}
    # nor does an event at the same instant as the row
    assert table.record([stop(A, T0 + timedelta(hours=1))]) == 0
    assert table.opted_out() == {B}


def test_among_a_batch_the_newest_event_of_a_number_wins_and_a_tie_opts_out(table):
    later = T0 + timedelta(minutes=5)
    assert table.record([start(A, later), stop(A, T0), stop(B, T0), start(B, T0)]) == 2
    assert table.opted_out() == {B}
    assert table.rows([A])[A]["since"] == later


def test_numbers_are_read_by_e164_and_a_bad_number_writes_nothing(table):
    with pytest.raises(InvalidPhoneNumberError):
        table.record([stop(A, T0), stop("12", T0)])
    assert table.counts() == {"opted_out": 0, "resubscribed": 0}
    table.record([stop("+49 151 000-00001", T0)])  # stored as E.164
    assert table.opted_out([A, B]) == {A}
    assert table.opted_out([]) == set()


def test_opted_out_among_many_numbers_in_one_statement_per_batch(table, monkeypatch):
    numbers = [f"+4915200{i:06d}" for i in range(2_500)]
    statements = []
    real = table.transaction

    @contextmanager
    def counting():
        with real() as cursor:
            yield _Counting(cursor, statements)

    monkeypatch.setattr(table, "transaction", counting)
    assert table.record([stop(n, T0) for n in numbers[::2]]) == 1_250
    assert len(statements) == 2  # 1,000 numbers per statement, not one per number
    found = table.opted_out(numbers)
    assert found == set(numbers[::2])
    assert table.counts(since=T0) == {"opted_out": 1_250, "resubscribed": 0}
    assert table.counts(since=T0 + timedelta(seconds=1)) == {"opted_out": 0, "resubscribed": 0}


def test_events_need_an_aware_time_and_a_source():
    with pytest.raises(ValueError, match="aware"):
        OptOutEvent(A, True, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="source"):
        OptOutEvent(A, True, T0, source="")
    with pytest.raises(ValueError, match="True or False"):
        OptOutEvent(A, 1, T0)


def test_an_unreachable_database_fails_rather_than_reading_as_empty(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMS_NOWHERE",
        '{"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "login": "x", "schema": "x"}',
    )
    table = OptOutTable("sms_nowhere")
    with pytest.raises(Exception, match=r"(?i)connect"):
        table.exists()
    with pytest.raises(Exception, match=r"(?i)connect"):
        table.ensure()


class _Counting:
    """A cursor that logs the statements it executes."""

    def __init__(self, cursor, log: list) -> None:
        self.cursor, self.log = cursor, log

    def execute(self, sql, params=()):
        self.log.append(sql)
        return self.cursor.execute(sql, params)

    def __getattr__(self, name):
        return getattr(self.cursor, name)
