"""Where audiences and contact lists come from: a DataFrame, a SQL query or a list of dicts,
always streamed as DataFrame chunks so memory stays flat as the input grows."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pandas as pd

from airflow_provider_sms.sql import get_sql_hook

DEFAULT_CHUNK_SIZE = 5_000


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
    """
    if (data is None) == (sql is None):
        raise ValueError("give exactly one input: a DataFrame or list of dicts, or an SQL query")
    offset = 0
    for chunk in _raw_chunks(data, sql, sql_conn_id, parameters, chunk_size):
        chunk = chunk.reset_index(drop=True)
        chunk.insert(0, "_row", range(offset, offset + len(chunk)))
        offset += len(chunk)
        yield chunk


def _raw_chunks(data, sql, sql_conn_id, parameters, chunk_size) -> Iterator[pd.DataFrame]:
    if sql is not None:
        if not sql_conn_id:
            raise ValueError("an SQL input needs sql_conn_id, the Airflow connection to read it from")
        yield from get_sql_hook(sql_conn_id).get_df_by_chunks(sql, parameters, chunksize=chunk_size)
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
