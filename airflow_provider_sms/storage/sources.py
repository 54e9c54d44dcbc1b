"""Where audiences and contact lists come from: a DataFrame, a SQL query or a list of dicts,
always streamed as DataFrame chunks so memory stays flat as the input grows."""

from __future__ import annotations

import hashlib
import operator
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, suppress
from typing import Any

import numpy as np
import pandas as pd

from airflow_provider_sms.storage.table import get_sql_hook

DEFAULT_CHUNK_SIZE = 5_000
ROW = "_row"  # the column iter_chunks adds: each row's position in the input


class InputColumnsError(ValueError):
    """The input's columns are ambiguous: two with one name, or one with the reader's own ``_row``."""


class SqlSourceError(RuntimeError):
    """The audience or contact query failed on its SQL connection (the driver's error is the cause)."""


def iter_chunks(
    data: pd.DataFrame | Sequence[Mapping[str, Any]] | None = None,
    *,
    sql: str | None = None,
    sql_conn_id: str | None = None,
    parameters: Mapping[str, Any] | Sequence[Any] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[pd.DataFrame]:
    """Yield the input as DataFrame chunks with a ``_row`` column: the row's position in the input.

    Exactly one of ``data`` (a DataFrame or a list of dicts) and ``sql`` (with ``sql_conn_id``) is given.
    An input with two columns of one name, or a column named ``_row``, raises :class:`InputColumnsError`.
    An SQL input is read from the database ``chunk_size`` rows at a time (on PostgreSQL through a
    server-side cursor), its ``parameters`` bound by the driver; a failing query raises
    :class:`SqlSourceError`. Closing the generator early releases the cursor and the connection.
    """
    if (data is None) == (sql is None):
        raise ValueError("give exactly one input: a DataFrame or list of dicts, or an SQL query")
    offset = 0
    # closing(): when the consumer stops early (close() or an error), the SQL cursor and connection
    # are released at once, not whenever the inner generator happens to be garbage-collected.
    with closing(_raw_chunks(data, sql, sql_conn_id, parameters, chunk_size)) as chunks:
        for chunk in chunks:
            check_columns(chunk.columns)
            chunk = chunk.reset_index(drop=True)
            chunk.insert(0, ROW, range(offset, offset + len(chunk)))
            offset += len(chunk)
            yield chunk


def check_columns(columns: Sequence[Any]) -> None:
    """Refuse an input whose column names are ambiguous, before any row is used: with two
    ``phone`` columns (``SELECT a.phone, b.phone ...``) one would be used silently, and a column of
    its own called ``_row`` would be clobbered by (or clash with) the position column."""
    names = [str(c) for c in columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        which = ", ".join(f"{n!r} ({names.count(n)} times)" for n in duplicates)
        raise InputColumnsError(
            f"the input has more than one column named {which}: give each column its own name "
            "(in SQL with AS, e.g. SELECT a.phone AS phone, b.phone AS other_phone)"
        )
    if ROW in names:
        raise InputColumnsError(
            f"the input has a column named {ROW!r}, the name the reader gives each row's position: "
            f"rename it (in SQL with AS, e.g. SELECT {ROW} AS row_number)"
        )


def _raw_chunks(data, sql, sql_conn_id, parameters, chunk_size) -> Iterator[pd.DataFrame]:
    if isinstance(chunk_size, bool) or operator.index(chunk_size) < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    chunk_size = operator.index(chunk_size)
    if sql is not None:
        if not sql_conn_id:
            raise ValueError("an SQL input needs sql_conn_id, the Airflow connection to read it from")
        yield from _sql_chunks(sql, sql_conn_id, parameters, chunk_size)
        return
    if isinstance(data, pd.DataFrame):
        for start in range(0, len(data), chunk_size):
            yield data.iloc[start : start + chunk_size]
        return
    if isinstance(data, (Mapping, str, bytes)) or not isinstance(data, Sequence):
        raise TypeError(f"input must be a DataFrame or a list of dicts, got {type(data).__name__}")
    for start in range(0, len(data), chunk_size):
        rows = data[start : start + chunk_size]
        bad = next((r for r in rows if not isinstance(r, Mapping)), None)
        if bad is not None:
            raise TypeError(f"every input row must be a dict, got {type(bad).__name__}: {bad!r:.80}")
        yield pd.DataFrame.from_records(rows)


def _sql_chunks(
    sql: str, conn_id: str, parameters: Mapping[str, Any] | Sequence[Any] | None, chunk_size: int
) -> Iterator[pd.DataFrame]:
    """Run ``sql`` on the connection and yield its rows ``chunk_size`` at a time as DataFrames.

    On PostgreSQL (psycopg 3 or psycopg2) the query runs in a server-side cursor inside a read
    transaction, so only one chunk is ever held here; a plain psycopg cursor would pull the whole
    result into client memory on ``execute``. Other databases use a plain cursor and ``fetchmany``
    (sqlite3 steps the statement row by row, so it streams too). An empty result yields one empty
    DataFrame with the query's columns. The cursor is closed, the transaction rolled back (it only
    read) and the connection closed when the rows run out, on error, and on ``close()``.
    """
    hook = get_sql_hook(conn_id)
    conn = hook.get_conn()
    try:
        cursor = _streaming_cursor(conn)
        try:
            rows = _run(conn_id, 0, lambda: _execute_and_fetch(cursor, sql, parameters, chunk_size))
            columns = [col[0] for col in cursor.description or ()]
            if not rows:
                yield pd.DataFrame.from_records([], columns=columns)
                return
            read = 0
            while rows:
                read += len(rows)
                yield _frame(rows, columns)
                rows = _run(conn_id, read, lambda: cursor.fetchmany(chunk_size))
        finally:
            with suppress(Exception):
                cursor.close()
    finally:
        with suppress(Exception):
            conn.rollback()  # ends the read transaction that holds the server-side cursor
        conn.close()


def _streaming_cursor(conn: Any) -> Any:
    """A cursor that fetches rows from the database as they are asked for, tuple rows."""
    driver = type(conn).__module__.partition(".")[0]
    if driver not in ("psycopg", "psycopg2"):
        return conn.cursor()
    # A server-side cursor (DECLARE ... CURSOR WITHOUT HOLD) lives in a transaction.
    if conn.autocommit:
        conn.autocommit = False
    name = f"sms_source_{uuid.uuid4().hex}"
    if driver == "psycopg":
        from psycopg.rows import tuple_row

        return conn.cursor(name=name, row_factory=tuple_row)
    from psycopg2.extensions import cursor as plain_cursor

    return conn.cursor(name=name, cursor_factory=plain_cursor)


def _execute_and_fetch(cursor: Any, sql: str, parameters: Any, chunk_size: int) -> list:
    # psycopg2 describes a named cursor's columns only after its first FETCH: fetch, then read them.
    if parameters is None:
        cursor.execute(sql)
    else:
        cursor.execute(sql, parameters)
    return cursor.fetchmany(chunk_size)


def _run(conn_id: str, read: int, step: Callable[[], Sequence[Any]]) -> list:
    try:
        return list(step())
    except Exception as exc:
        where = f"after {read:,} rows" if read else "before any row was read"
        raise SqlSourceError(
            f"the SQL input query on connection {conn_id!r} failed {where}: "
            f"{type(exc).__name__}: {str(exc).strip()}"
        ) from exc


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """``frame.to_dict("records")``, value for value and type for type, built column by column
    (``Series.tolist``, which yields what ``to_dict``'s row iteration does; object columns boxed by
    pandas' own ``maybe_box_native`` as ``to_dict`` boxes them): about a quarter of its CPU on
    a chunk of a bulk send's audience. Frames with a column of another dtype (datetimes,
    categories, nullable integers...) or with repeated column names go through ``to_dict``."""
    columns = frame.columns.tolist()
    if _box_native is None or not columns or len(set(columns)) != len(columns):
        return frame.to_dict("records")
    values = []
    for i, dtype in enumerate(frame.dtypes):
        if isinstance(dtype, np.dtype) and dtype.kind in "iufb":
            values.append(frame.iloc[:, i].tolist())
        elif isinstance(dtype, np.dtype) and dtype.kind == "O":
            values.append(list(map(_box_native, frame.iloc[:, i].tolist())))
        elif _plain_str(dtype):
            values.append(frame.iloc[:, i].tolist())
        else:
            return frame.to_dict("records")
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


def _plain_str(dtype: Any) -> bool:
    """pandas 3's default ``str`` dtype held in Python objects (missing values NaN, as to_dict
    gives them); ``string`` (``pd.NA``, which to_dict turns into None) and pyarrow's are not."""
    return isinstance(dtype, pd.StringDtype) and dtype.na_value is np.nan and dtype.storage == "python"


try:  # what DataFrame.to_dict boxes object values with (private: without it, to_dict itself)
    from pandas.core.dtypes.cast import maybe_box_native as _box_native
except ImportError:  # pragma: no cover - a pandas that moved it
    _box_native = None


def _frame(rows: list, columns: list[str]) -> pd.DataFrame:
    """Rows as a DataFrame, typed as ``pandas.read_sql`` types them (tz-aware datetimes in UTC)."""
    if not isinstance(rows[0], tuple):
        rows = [tuple(row.values()) if isinstance(row, Mapping) else tuple(row) for row in rows]
    frame = pd.DataFrame.from_records(rows, columns=columns, coerce_float=True)
    for i, dtype in enumerate(frame.dtypes):
        if isinstance(dtype, pd.DatetimeTZDtype):
            frame.isetitem(i, pd.to_datetime(frame.iloc[:, i], errors="coerce", utc=True))
    return frame


def suppression_numbers(numbers: Sequence[Any] | None, sql: str | None, conn_id: str | None) -> list[Any]:
    """The numbers never to message: ``numbers``, and the first column of what ``sql`` returns on
    the connection ``conn_id`` (as written: the campaign normalises them)."""
    numbers = list(numbers or [])
    if sql:
        if not conn_id:
            raise ValueError("suppression_sql needs suppression_conn_id (or sql_conn_id)")
        numbers += [row[0] for row in get_sql_hook(conn_id).get_records(sql)]
    return numbers


def require_columns(columns: Sequence[str], needed: Sequence[str], what: str) -> None:
    """Fail before anything is sent when ``needed`` columns are missing."""
    missing = [c for c in needed if c not in columns]
    if missing:
        raise ValueError(
            f"{what} needs column(s) {', '.join(map(repr, missing))}, "
            f"but the input has {', '.join(map(repr, [c for c in columns if c != '_row']))}"
        )


def shard_of(key: str, shard_count: int) -> int:
    """A stable shard for ``key`` (the same on every worker and every run)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shard_count


def is_truthy(value: Any) -> bool:
    """Opt-out flags as warehouses store them: 1/0, true/false, yes/no, t/f, y/n, NULL."""
    if value is None or (isinstance(value, float) and value != value):
        return False
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "t", "yes", "y"}
    return bool(value)
