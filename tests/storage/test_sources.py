"""iter_chunks: DataFrame, list-of-dicts and SQL inputs as DataFrame chunks with a ``_row`` column.

The SQL input is read in chunks on SQLite and PostgreSQL; on PostgreSQL through a server-side
cursor (psycopg 3 and psycopg2), so a large audience never sits in memory as a whole.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
import warnings

import pandas as pd
import pytest

from airflow_provider_sms.storage import sources
from airflow_provider_sms.storage.sources import InputColumnsError, SqlSourceError, iter_chunks
from airflow_provider_sms.storage.table import get_sql_hook
from tests.plugins.databases import _pg_admin

ROWS = 2_345
CHUNK = 500


# -- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture(params=["psycopg", "psycopg2"])
def pg_conn_id(request) -> str:
    """A fresh PostgreSQL database, once through psycopg 3 and once through psycopg2."""
    return _pg_for(request, request.param)


@pytest.fixture(params=["sqlite", "psycopg", "psycopg2"])
def db(request):
    """(conn_id, dialect) for SQLite and for PostgreSQL through psycopg 3 and psycopg2."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_conn_id"), "sqlite"
    return _pg_for(request, request.param), "postgresql"


def _pg_for(request, driver: str) -> str:
    """PostgresHook picks psycopg 3 when it and SQLAlchemy 2 are installed, else psycopg2."""
    from airflow.providers.postgres.hooks import postgres

    conn_id = request.getfixturevalue("postgres_conn_id")
    monkeypatch = request.getfixturevalue("monkeypatch")
    if driver == "psycopg2":
        monkeypatch.setattr(postgres, "USE_PSYCOPG3", False)
    elif not postgres.USE_PSYCOPG3:
        pytest.skip("PostgresHook does not use psycopg 3 here")
    conn = get_sql_hook(conn_id).get_conn()
    try:
        assert type(conn).__module__.partition(".")[0] == driver
    finally:
        conn.close()
    return conn_id


@pytest.fixture
def opened(monkeypatch) -> list:
    """Every DB-API connection iter_chunks opens, to check it is closed afterwards."""
    connections = []
    real = sources.get_sql_hook

    def spying(conn_id):
        hook = real(conn_id)
        get_conn = hook.get_conn

        def recording():
            conn = get_conn()
            connections.append(conn)
            return conn

        hook.get_conn = recording
        return hook

    monkeypatch.setattr(sources, "get_sql_hook", spying)
    return connections


def is_closed(conn) -> bool:
    if isinstance(conn, sqlite3.Connection):
        try:
            conn.execute("SELECT 1")
        except sqlite3.ProgrammingError:
            return True
        return False
    return bool(conn.closed)


def fill_customers(conn_id: str, rows: int = ROWS) -> None:
    hook = get_sql_hook(conn_id)
    hook.run("CREATE TABLE customers (id INTEGER PRIMARY KEY, phone TEXT, first_name TEXT, score REAL)")
    hook.insert_rows(
        "customers",
        [(i, f"+4915110{i:06d}", f"name {i}" if i % 7 else None, i / 4) for i in range(rows)],
        target_fields=["id", "phone", "first_name", "score"],
        executemany=True,
    )


def database_of(conn_id: str) -> str:
    return json.loads(os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"])["schema"]


def backends(database: str) -> list[tuple[str, str]]:
    """(state, query) of every other session on ``database``, seen from a second connection."""
    admin = _pg_admin()
    try:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT state, query FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            )
            return cur.fetchall()
    finally:
        admin.close()


def wait_for_no_backends(database: str, timeout: float = 10.0) -> list:
    """A closed connection's backend exits a moment after the client hangs up."""
    deadline = time.monotonic() + timeout
    while (left := backends(database)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def rows_query(dialect: str, count: int, fail_at: int | None = None) -> str:
    """``count`` generated rows (no table), streamed by the database; row ``fail_at`` raises an error."""
    if dialect == "sqlite":
        # abs() of the smallest 64-bit integer is an "integer overflow" error in SQLite.
        value = f"CASE WHEN n = {fail_at} THEN abs(-9223372036854775807 - 1) ELSE n END" if fail_at else "n"
        return (
            f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {count}) "
            f"SELECT {value} AS n FROM s"
        )
    value = f"n / (n - {fail_at})" if fail_at else "n"
    # generate_series in the select list (ProjectSet) streams; in FROM it would be materialized first.
    return f"SELECT {value} AS n FROM (SELECT generate_series(1, {count}) AS n) AS s"


# -- in-memory inputs ------------------------------------------------------------------------------


def test_a_dataframe_comes_in_chunks_with_its_row_positions():
    frame = pd.DataFrame({"phone": [f"+49151{i:08d}" for i in range(7)], "x": range(7)}, index=range(10, 17))
    chunks = list(iter_chunks(frame, chunk_size=3))

    assert [len(c) for c in chunks] == [3, 3, 1]
    assert [list(c.columns) for c in chunks] == [["_row", "phone", "x"]] * 3
    assert list(pd.concat(chunks)["_row"]) == list(range(7))
    assert [list(c.index) for c in chunks] == [[0, 1, 2], [0, 1, 2], [0]]


def test_a_list_of_dicts_comes_in_chunks_and_a_bad_row_is_named():
    rows = [{"phone": "1", "n": i} for i in range(5)]
    assert [list(c["_row"]) for c in iter_chunks(rows, chunk_size=2)] == [[0, 1], [2, 3], [4]]
    with pytest.raises(TypeError, match="every input row must be a dict"):
        list(iter_chunks([{"a": 1}, ["nope"]], chunk_size=5))


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "100"])
def test_chunk_size_must_be_a_positive_integer(bad):
    with pytest.raises((ValueError, TypeError)):
        list(iter_chunks([{"a": 1}], chunk_size=bad))


def test_exactly_one_input_and_an_sql_input_needs_its_connection():
    with pytest.raises(ValueError, match="exactly one input"):
        list(iter_chunks(None))
    with pytest.raises(ValueError, match="sql_conn_id"):
        list(iter_chunks(sql="SELECT 1"))


def test_a_dataframe_with_two_columns_of_one_name_is_refused_naming_it():
    frame = pd.DataFrame([["+4915100000001", "+4915100000002", "Ann"]], columns=["phone", "phone", "name"])
    with pytest.raises(InputColumnsError, match=r"more than one column named 'phone' \(2 times\)"):
        list(iter_chunks(frame))


@pytest.mark.parametrize("data", [pd.DataFrame({"_row": [7], "phone": ["1"]}), [{"phone": "1", "_row": 7}]])
def test_an_input_column_named_like_the_position_column_is_refused(data):
    with pytest.raises(InputColumnsError, match="a column named '_row'"):
        list(iter_chunks(data))


# -- SQL inputs, SQLite and PostgreSQL ---------------------------------------------------------------


def test_an_sql_join_with_two_phone_columns_is_refused_naming_it(db):
    conn_id, _ = db
    hook = get_sql_hook(conn_id)
    hook.run("CREATE TABLE a (id INTEGER, phone TEXT)")
    hook.run("CREATE TABLE b (id INTEGER, phone TEXT)")
    hook.run("INSERT INTO a VALUES (1, '+4915100000001')")
    hook.run("INSERT INTO b VALUES (1, '+4915100000002')")
    for query in (
        "SELECT a.phone, b.phone FROM a JOIN b ON a.id = b.id",
        "SELECT a.phone, b.phone FROM a, b WHERE 1 = 0",
    ):
        with pytest.raises(InputColumnsError, match="more than one column named 'phone'"):
            list(iter_chunks(sql=query, sql_conn_id=conn_id))
    with pytest.raises(InputColumnsError, match="'_row'"):
        list(iter_chunks(sql="SELECT id AS _row, phone FROM a", sql_conn_id=conn_id))


def test_sql_rows_come_complete_and_in_order_in_chunks(db, opened):
    conn_id, _ = db
    fill_customers(conn_id)

    chunks = list(
        iter_chunks(
            sql="SELECT id, phone, first_name, score FROM customers ORDER BY id",
            sql_conn_id=conn_id,
            chunk_size=CHUNK,
        )
    )

    assert [len(c) for c in chunks] == [CHUNK] * (ROWS // CHUNK) + [ROWS % CHUNK]
    assert all(list(c.columns) == ["_row", "id", "phone", "first_name", "score"] for c in chunks)
    whole = pd.concat(chunks, ignore_index=True)
    assert list(whole["_row"]) == list(range(ROWS))
    assert list(whole["id"]) == list(range(ROWS))
    assert whole.loc[1234, "phone"] == "+4915110001234"
    assert whole["first_name"].isna().sum() == len(range(0, ROWS, 7))
    assert whole["score"].sum() == pytest.approx(sum(range(ROWS)) / 4)
    assert len(opened) == 1 and is_closed(opened[0])


def test_sql_chunks_are_typed_as_pandas_read_sql_types_them(db):
    conn_id, dialect = db
    if dialect == "sqlite":
        query = (
            "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 7) "
            "SELECT g AS i, g / 3.0 AS f, 'x' || g AS t, NULL AS nul, "
            "CASE WHEN g % 3 = 0 THEN NULL ELSE g END AS ni, '2024-01-02' AS d, g AS i2 FROM s"
        )
    else:
        query = """
            SELECT g AS i, g::bigint AS b, g::numeric / 3 AS n, (g / 3.0)::float8 AS f, g::text AS t,
                   g % 2 = 0 AS bo, CASE WHEN g % 3 = 0 THEN NULL ELSE g END AS ni,
                   CASE WHEN g % 3 = 0 THEN NULL ELSE g::text END AS nt,
                   TIMESTAMPTZ '2024-05-06 07:08:09+02' + g * INTERVAL '1 hour' AS tz,
                   TIMESTAMP '2024-05-06 07:08:09' AS ts, DATE '2024-05-06' AS d,
                   '{"a": 1}'::json AS j, g AS i2
            FROM generate_series(1, 7) AS g ORDER BY g
        """
    hook = get_sql_hook(conn_id)
    conn = hook.get_conn()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pandas: "only supports SQLAlchemy ..."
            expected = list(pd.read_sql(query, con=conn, chunksize=3))
    finally:
        conn.close()

    got = list(iter_chunks(sql=query, sql_conn_id=conn_id, chunk_size=3))

    assert len(got) == len(expected)
    for chunk, want in zip(got, expected, strict=True):
        assert list(chunk.columns) == ["_row", *want.columns]
        pd.testing.assert_frame_equal(chunk.drop(columns="_row"), want)


def test_sql_values_are_bound_parameters(db):
    conn_id, _ = db
    fill_customers(conn_id, rows=20)
    hook = get_sql_hook(conn_id)
    hook.run("UPDATE customers SET first_name = 'O''Brien; DROP TABLE customers' WHERE id = 3")
    ph = hook.placeholder

    chunks = list(
        iter_chunks(
            sql=f"SELECT id, first_name FROM customers WHERE first_name = {ph} OR id > {ph} ORDER BY id",
            sql_conn_id=conn_id,
            parameters=("O'Brien; DROP TABLE customers", 17),
            chunk_size=2,
        )
    )

    assert [list(c["id"]) for c in chunks] == [[3, 18], [19]]
    assert hook.get_first("SELECT COUNT(*) FROM customers")[0] == 20


def test_an_empty_sql_result_is_one_empty_chunk_with_the_columns(db, opened):
    conn_id, _ = db
    fill_customers(conn_id, rows=3)

    chunks = list(
        iter_chunks(sql="SELECT phone, first_name FROM customers WHERE id < 0", sql_conn_id=conn_id)
    )

    assert len(chunks) == 1
    assert list(chunks[0].columns) == ["_row", "phone", "first_name"] and chunks[0].empty
    assert is_closed(opened[0])


def test_rows_are_fetched_a_chunk_at_a_time(db):
    """Row 2,500 of 10,000 fails: the first two chunks of 1,000 arrive before the error does.

    A reader that pulled the whole result on execute (a client-side psycopg cursor) would fail
    before yielding anything.
    """
    conn_id, dialect = db
    chunks = iter_chunks(
        sql=rows_query(dialect, 10_000, fail_at=2_500), sql_conn_id=conn_id, chunk_size=1_000
    )

    assert list(next(chunks)["_row"]) == list(range(1_000))
    assert len(next(chunks)) == 1_000
    with pytest.raises(SqlSourceError, match=f"{conn_id}'? failed after 2,000 rows") as failed:
        next(chunks)
    assert ("division by zero" if dialect == "postgresql" else "integer overflow") in str(failed.value)


def test_a_broken_query_fails_clearly_and_releases_the_connection(db, opened):
    conn_id, _ = db

    with pytest.raises(SqlSourceError) as failed:
        list(iter_chunks(sql="SELECT phone FROM no_such_table", sql_conn_id=conn_id))

    message = str(failed.value)
    assert f"connection {conn_id!r} failed before any row was read" in message
    assert "no_such_table" in message
    assert failed.value.__cause__ is not None
    assert len(opened) == 1 and is_closed(opened[0])


def test_closing_the_generator_early_releases_the_cursor_and_connection(db, opened):
    conn_id, dialect = db
    chunks = iter_chunks(sql=rows_query(dialect, 100_000), sql_conn_id=conn_id, chunk_size=1_000)

    assert len(next(chunks)) == 1_000
    assert len(opened) == 1 and not is_closed(opened[0])
    chunks.close()

    assert is_closed(opened[0])


def test_a_consumer_that_raises_releases_the_connection(db, opened):
    conn_id, dialect = db

    def consume():
        for _chunk in iter_chunks(sql=rows_query(dialect, 100_000), sql_conn_id=conn_id, chunk_size=1_000):
            raise KeyError("the consumer failed")

    with pytest.raises(KeyError, match="the consumer failed"):
        consume()
    assert len(opened) == 1 and is_closed(opened[0])


# -- PostgreSQL: a server-side cursor ----------------------------------------------------------------


def test_postgres_reads_through_a_server_side_cursor_in_a_transaction(pg_conn_id, opened):
    database = database_of(pg_conn_id)
    query = rows_query("postgresql", 1_000_000)
    chunks = iter_chunks(sql=query, sql_conn_id=pg_conn_id, chunk_size=1_000)

    assert list(next(chunks)["_row"]) == list(range(1_000))

    # Seen from another connection, the reader sits idle in its transaction between chunks, its last
    # statement a FETCH of one chunk: the rest of the million rows stays on the server until asked for.
    ((state, last),) = backends(database)
    assert state == "idle in transaction"
    assert re.fullmatch(r'FETCH FORWARD 1000 FROM "sms_source_[0-9a-f]{32}"', last), last
    # The reading session holds that declared cursor, non-holdable (it ends with the transaction).
    (conn,) = opened
    with conn.cursor() as cur:
        cur.execute("SELECT name, statement, is_holdable FROM pg_cursors")
        (name, statement, holdable), *others = cur.fetchall()
    assert not others and not holdable
    assert f'"{name}"' in last and statement.startswith(f'DECLARE "{name}"') and query in statement

    assert len(next(chunks)) == 1_000
    chunks.close()

    assert is_closed(conn)
    assert wait_for_no_backends(database) == []


def test_postgres_ignores_the_connections_cursor_extra_and_autocommit(pg_conn_id, monkeypatch, request):
    """A connection configured for dict rows still gives tuples to pandas; autocommit is turned off
    for the read (a server-side cursor needs its transaction)."""
    config = json.loads(os.environ[f"AIRFLOW_CONN_{pg_conn_id.upper()}"])
    monkeypatch.setenv("AIRFLOW_CONN_SMS_PG_DICTS", json.dumps({**config, "extra": {"cursor": "dictcursor"}}))
    fill_customers(pg_conn_id, rows=10)
    real = sources.get_sql_hook

    def autocommitting(conn_id):
        hook = real(conn_id)
        get_conn = hook.get_conn

        def connect():
            conn = get_conn()
            conn.autocommit = True
            return conn

        hook.get_conn = connect
        return hook

    monkeypatch.setattr(sources, "get_sql_hook", autocommitting)

    chunks = list(
        iter_chunks(
            sql="SELECT id, phone FROM customers ORDER BY id", sql_conn_id="sms_pg_dicts", chunk_size=4
        )
    )

    assert [list(c["id"]) for c in chunks] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert chunks[0].loc[0, "phone"] == "+4915110000000"


def _typed(rows):
    """Rows with each value's type, NaN as a marker (NaN != NaN): equal only when to_dict's are."""
    return [
        {k: (type(v), "NaN" if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in rows
    ]


def test_records_is_to_dict_records():
    """records() gives what DataFrame.to_dict("records") gives, value and type, for the dtypes it
    builds column-wise and for those it hands to to_dict, over random frames and the SQL reader's."""
    import datetime as dt
    import random

    import numpy as np
    import pandas as pd

    from airflow_provider_sms.storage.sources import _frame, records

    rng = random.Random(20)
    n = 50
    pools = {
        "int": lambda: pd.Series([rng.randrange(-5, 10**12) for _ in range(n)]),
        "uint": lambda: pd.Series(np.arange(n, dtype=np.uint32)),
        "float": lambda: pd.Series([rng.choice([1.5, float("nan"), -0.0, 1e300, 3.0]) for _ in range(n)]),
        "bool": lambda: pd.Series([rng.random() < 0.5 for _ in range(n)]),
        "str": lambda: pd.Series([rng.choice(["+31612345678", "Ana", "", "é😀"]) for _ in range(n)]),
        "str_missing": lambda: pd.Series([rng.choice(["a", None, "b"]) for _ in range(n)]),
        "object_mixed": lambda: pd.Series(
            [
                rng.choice(
                    [
                        None,
                        1,
                        np.int64(7),
                        np.float32(2.5),
                        np.bool_(True),
                        "x",
                        3.0,
                        True,
                        float("nan"),
                        np.datetime64("2026-01-01"),
                        dt.date(2026, 1, 2),
                        [1],
                        {"a": 1},
                    ]
                )
                for _ in range(n)
            ],
            dtype=object,
        ),
        "object_str": lambda: pd.Series([f"+316{i:08d}" for i in range(n)], dtype=object),
        "string_dtype": lambda: pd.Series([rng.choice(["a", None]) for _ in range(n)], dtype="string"),
        "Int64": lambda: pd.Series([rng.choice([1, None]) for _ in range(n)], dtype="Int64"),
        "boolean": lambda: pd.Series([rng.choice([True, None]) for _ in range(n)], dtype="boolean"),
        "datetime": lambda: pd.Series(pd.date_range("2026-01-01", periods=n, freq="h")),
        "datetime_tz": lambda: pd.Series(pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC")),
        "category": lambda: pd.Series(pd.Categorical([rng.choice(["a", "b"]) for _ in range(n)])),
    }
    kinds = list(pools)
    for _ in range(300):
        chosen = rng.sample(kinds, rng.randrange(1, 6))
        frame = pd.DataFrame({f"c{i}_{k}": pools[k]() for i, k in enumerate(chosen)})
        frame = frame.iloc[: rng.randrange(n + 1)]
        assert _typed(records(frame)) == _typed(frame.to_dict("records")), chosen
    sql_rows = [
        ("+31612345678", "Ana", None, True, 3, 1.5, None),
        ("0031 6 1234", None, "x", None, None, None, 2),
    ]
    frame = _frame(sql_rows, ["phone", "first_name", "city", "unsubscribed", "n", "f", "o"])
    assert _typed(records(frame)) == _typed(frame.to_dict("records"))
    repeated = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # to_dict: "columns are not unique"
        assert records(repeated) == repeated.to_dict("records")
    assert records(pd.DataFrame(index=range(3))) == pd.DataFrame(index=range(3)).to_dict("records")
