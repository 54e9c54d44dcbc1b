"""sql.py: table and index creation safe under concurrency, names checked before any statement."""

from __future__ import annotations

import multiprocessing
import sqlite3
import traceback

import pytest

from airflow_provider_sms.storage.ledger import GATEWAY_INDEX, LEGACY_GATEWAY_INDEX, MessageLedger
from airflow_provider_sms.storage.sync_state import ContactSyncState
from airflow_provider_sms.storage.table import MAX_NAME, SqlTable, derived_name, get_sql_hook

WORKERS = 6
ROUNDS = 3  # each round creates tables no process has seen yet: a first creation every time


def _create_tables(conn_id: str, suffix: str, barrier, errors) -> None:
    """One worker: wait for the others, then create the ledger (table and index) and a state table."""
    try:
        barrier.wait(timeout=60)
        ledger = MessageLedger(conn_id, f"sms_messages_{suffix}")
        ledger.ensure_table()
        ledger.close()
        state = ContactSyncState(conn_id, f"sms_contact_sync_{suffix}", gateway="textboost")
        state.ensure_table()
        state.close()
    except BaseException:
        errors.put(traceback.format_exc())


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_six_processes_create_the_same_tables_at_once_on_a_fresh_postgres(postgres_conn_id, round_):
    # fork: the children inherit the connection's environment variable and start at once.
    ctx = multiprocessing.get_context("fork")
    barrier, errors = ctx.Barrier(WORKERS), ctx.Queue()
    workers = [
        ctx.Process(target=_create_tables, args=(postgres_conn_id, str(round_), barrier, errors))
        for _ in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert not failures, "\n".join(failures)
    assert [worker.exitcode for worker in workers] == [0] * WORKERS
    hook = get_sql_hook(postgres_conn_id)
    assert hook.get_records(
        "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexname = %s",
        (f"sms_messages_{round_}", f"sms_messages_{round_}_{GATEWAY_INDEX[0]}"),
    )


def test_derived_names_fit_the_identifier_limit_and_stay_distinct():
    assert derived_name("sms_messages", "gateway_message_id") == "sms_messages_gateway_message_id"
    long_a, long_b = "a" * 50 + "_one", "a" * 50 + "_two"
    name_a, name_b = derived_name(long_a, "gateway_message_id"), derived_name(long_b, "gateway_message_id")
    assert len(name_a) == len(name_b) == MAX_NAME
    assert name_a != name_b  # the same prefix after shortening: the hash tells them apart
    assert name_a == derived_name(long_a, "gateway_message_id")  # deterministic
    assert name_a.endswith("_gateway_message_id")


@pytest.mark.parametrize("length", [38, 50, 63])
def test_a_ledger_with_a_long_table_name_gets_its_index(sql_conn_id, length):
    table = ("sms_ledger_" + "x" * 63)[:length]
    ledger = MessageLedger(sql_conn_id, table)
    try:
        ledger.ensure_table()
        ledger.ensure_table()  # the same (shortened) name again: nothing new, no error
        if ledger.is_postgres:
            indexes = ledger.query("SELECT indexname FROM pg_indexes WHERE tablename = %s", [table])
        else:
            indexes = ledger.query(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                "AND name NOT LIKE 'sqlite_autoindex_%'",  # SQLite's own name for the primary key
                [table],
            )
        names = {row[0] for row in indexes}
        assert derived_name(table, GATEWAY_INDEX[0]) in names
        assert derived_name(table, LEGACY_GATEWAY_INDEX) not in names  # a new table: the partial index only
        assert all(len(name) <= MAX_NAME for name in names)
    finally:
        ledger.close()


def test_a_schema_qualified_table_on_sqlite_is_refused_up_front(sqlite_conn_id):
    with pytest.raises(ValueError, match=r"SQLite has no schemas: table 'marketing.sms_messages'"):
        MessageLedger(sqlite_conn_id, "marketing.sms_messages")
    with pytest.raises(ValueError, match="SQLite has no schemas"):
        SqlTable(sqlite_conn_id, "main.sms_messages")
    # Nothing was created on the way.
    assert get_sql_hook(sqlite_conn_id).get_records("SELECT name FROM sqlite_master") == []


def _pg_array_reference(values):
    """pg_array as it was before its one-pass type check (generators over the values)."""
    if all(type(value) is str for value in values):
        text = '","'.join(values)
        if "\\" in text or '"' in text:
            text = '","'.join(v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
        return '{"' + text + '"}' if values else "{}"
    if all(value is None or type(value) is int for value in values):
        return "{" + ",".join(["NULL" if value is None else str(value) for value in values]) + "}"
    out = []
    for value in values:
        if value is None:
            out.append("NULL")
        elif isinstance(value, int):
            out.append(str(value))
        else:
            out.append('"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(out) + "}"


def test_pg_array_is_the_reference():
    import random

    from airflow_provider_sms.storage.table import pg_array

    class Text(str):
        pass

    rng = random.Random(20)
    pool = ["", "a", 'q"uote', "back\\slash", "NULL", "{,}", "é", None, 0, -7, 2**70, True, 1.5, Text("t")]
    cases = [[], [None], [""], ["a"], [1], [True], [Text("x")]]
    cases += [[rng.choice(pool) for _ in range(rng.randrange(8))] for _ in range(3000)]
    cases += [[rng.choice(pool[:7]) for _ in range(rng.randrange(8))] for _ in range(1000)]  # texts only
    cases += [[rng.choice([None, 0, -7, 2**70]) for _ in range(rng.randrange(8))] for _ in range(1000)]
    for values in cases:
        assert pg_array(values) == _pg_array_reference(values), values


class _LockedAtFirst:
    """A sqlite3 connection stand-in whose journal-mode switch finds the file locked ``times`` times."""

    def __init__(self, times: int, message: str = "database is locked") -> None:
        self.times, self.message, self.calls = times, message, 0

    def execute(self, sql):
        self.calls += 1
        if self.calls <= self.times:
            raise sqlite3.OperationalError(self.message)


def test_switch_to_wal_tries_again_while_another_process_holds_the_file(monkeypatch):
    from airflow_provider_sms.storage import table as table_module

    monkeypatch.setattr(table_module.time, "sleep", lambda seconds: None)
    conn = _LockedAtFirst(times=3)
    table_module._switch_to_wal(conn)
    assert conn.calls == 4
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):  # not a lock: at once
        table_module._switch_to_wal(_LockedAtFirst(times=1, message="disk I/O error"))
    monkeypatch.setattr(table_module, "SQLITE_BUSY_MS", 0)  # past its deadline: the lock error
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        table_module._switch_to_wal(_LockedAtFirst(times=10**6))


def test_processes_opening_one_new_sqlite_file_at_once_all_get_wal(tmp_path):
    """The race the retry is for: four processes switching one new file to WAL at the same moment."""
    context = multiprocessing.get_context("fork")
    for round_ in range(10):
        path = str(tmp_path / f"new{round_}.db")
        start, answers = context.Barrier(4), context.Queue()
        children = [context.Process(target=_open_at_once, args=(path, start, answers)) for _ in range(4)]
        for child in children:
            child.start()
        modes = sorted(answers.get(timeout=60) for _ in children)
        for child in children:
            child.join(timeout=60)
        assert modes == ["wal"] * 4, f"round {round_}: {modes}"


def _open_at_once(path: str, start, answers) -> None:
    from airflow_provider_sms.storage.table import SQLITE_BUSY_MS, _switch_to_wal

    try:
        conn = sqlite3.connect(path)
        conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        start.wait()
        _switch_to_wal(conn)
        answers.put(conn.execute("PRAGMA journal_mode").fetchone()[0])
    except BaseException as exc:
        answers.put(repr(exc))
