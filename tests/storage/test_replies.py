"""The replies table and the ledger look-up that ties a reply to a campaign, on SQLite and PostgreSQL."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_sms.storage.ledger import (
    REJECTED,
    MessageLedger,
)
from airflow_provider_sms.storage.replies import LedgerMatcher, ReplyRow, ReplyTable
from airflow_provider_sms.storage.table import get_sql_hook
from tests.support.replies import sent

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
A, B, C = "+4915100000001", "+4915100000002", "+4915100000003"


def reply(
    message_id: str, sender: str = A, *, at: datetime | None = T0, gateway: str = "smstools", **kw
) -> ReplyRow:
    values = {
        "conn_id": "smstools_default",
        "recipient": "+3197010240000",
        "text": "STOP",
        "intent": "stop",
        "keyword": "stop",
        "language": None,
        "reason": "only the keyword 'stop'",
        **kw,
    }
    return ReplyRow(gateway=gateway, message_id=message_id, sender=sender, received_at=at, **values)


@pytest.fixture
def table(sql_conn_id):
    table = ReplyTable(sql_conn_id)
    table.ensure()
    table.ensure()  # idempotent
    yield table
    table.close()


def test_a_reply_is_inserted_once_and_insert_says_which_were_new(table, sql_conn_id):
    assert table.insert([reply("1"), reply("2", B)]) == {"1", "2"}
    assert table.insert([reply("2", B, text="changed"), reply("3", C)]) == {"3"}
    assert table.insert([]) == set()
    # the same id at another gateway is another reply
    assert table.insert([reply("1", gateway="textboost")]) == {"1"}
    rows = get_sql_hook(sql_conn_id).get_records(
        'SELECT "gateway", "message_id", "text", "loaded_at" FROM "sms_replies" ORDER BY 1, 2'
    )
    assert [r[:3] for r in rows] == [
        ("smstools", "1", "STOP"),
        ("smstools", "2", "STOP"),  # not overwritten by the second listing
        ("smstools", "3", "STOP"),
        ("textboost", "1", "STOP"),
    ]
    assert all(r[3] is not None for r in rows)
    assert table.known("smstools", ["1", "3", "4"]) == {"1", "3"}
    assert table.known("smsgateway24", ["1"]) == set()
    assert table.intents() == {"stop": 4}


def test_many_replies_go_in_one_statement_per_thousand(table, monkeypatch):
    statements = []
    real = table.transaction

    class Counting:
        def __init__(self, cursor):
            self.cursor = cursor

        def execute(self, sql, params=()):
            statements.append(len(params))
            return self.cursor.execute(sql, params)

        def fetchall(self):
            return self.cursor.fetchall()

    @contextmanager
    def counting():
        with real() as cursor:
            yield Counting(cursor)

    monkeypatch.setattr(table, "transaction", counting)
    rows = [reply(str(i), f"+49151{i:08d}") for i in range(2_500)]
    assert len(table.insert(rows)) == 2_500
    assert statements == [1_000 * 14, 1_000 * 14, 500 * 14]


def test_newest_is_per_gateway_and_connection(table):
    assert table.newest("smstools", "smstools_default") is None
    table.insert(
        [
            reply("1", at=T0),
            reply("2", at=T0 + timedelta(hours=2)),
            reply("3", at=None),  # no time: not a place to resume from
            reply("4", at=T0 + timedelta(hours=5), conn_id="smstools_brand_b"),
            reply("5", at=T0 + timedelta(hours=9), gateway="textboost"),
        ]
    )
    assert table.newest("smstools", "smstools_default") == T0 + timedelta(hours=2)
    assert table.newest("smstools", "smstools_brand_b") == T0 + timedelta(hours=5)
    assert table.newest("textboost", "smstools_default") == T0 + timedelta(hours=9)


@pytest.fixture
def ledger(sql_conn_id):
    ledger = MessageLedger(sql_conn_id, "sms_messages", gateway="smstools", sms_conn_id="smstools_default")
    ledger.ensure_table()
    yield ledger
    ledger.close()


def test_a_reply_is_tied_to_the_last_message_sent_to_its_sender_before_it(ledger, sql_conn_id):
    first = sent(ledger, "spring", A, T0)
    second = sent(ledger, "summer", A, T0 + timedelta(days=30))
    sent(ledger, "spring", B, T0)
    sent(ledger, "autumn", B, T0 + timedelta(days=60), state=REJECTED)  # never reached B
    matcher = LedgerMatcher(sql_conn_id, "sms_messages")
    assert matcher.ready()
    found = matcher.last_sent(
        "smstools",
        [
            ("r1", A, T0 + timedelta(minutes=5)),  # between the two campaigns
            ("r2", A, T0 + timedelta(days=31)),  # after the second
            ("r3", A, T0 - timedelta(minutes=1)),  # before anything was sent
            ("r4", B, T0 + timedelta(days=61)),  # the rejected row does not count
            ("r5", C, T0 + timedelta(days=1)),  # never sent to
            ("r6", A, T0),  # at the very moment it left
        ],
    )
    assert found == {
        "r1": ("spring", first),
        "r2": ("summer", second),
        "r4": ("spring", f"spring-{B}"),
        "r6": ("spring", first),
    }
    assert matcher.last_sent("textboost", [("r1", A, T0 + timedelta(minutes=5))]) == {}
    assert matcher.last_sent("smstools", []) == {}
    matcher.close()


def test_matching_many_replies_takes_one_query_per_thousand(ledger, sql_conn_id, monkeypatch):
    sent(ledger, "spring", A, T0)
    matcher = LedgerMatcher(sql_conn_id, "sms_messages")
    queries = []
    real = matcher.query
    monkeypatch.setattr(matcher, "query", lambda sql, params=(): queries.append(sql) or real(sql, params))
    asks = [(f"r{i}", A if i % 2 else B, T0 + timedelta(seconds=i)) for i in range(2_100)]
    found = matcher.last_sent("smstools", asks)
    assert len(queries) == 3
    assert len(found) == 1_050 and set(found.values()) == {("spring", f"spring-{A}")}
    matcher.close()


def test_no_ledger_means_nothing_to_match(sql_conn_id):
    matcher = LedgerMatcher(sql_conn_id, "sms_messages")
    assert not matcher.ready()
    assert not matcher.exists()  # ready() created nothing
    matcher.close()
