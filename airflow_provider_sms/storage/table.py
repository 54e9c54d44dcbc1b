"""SQL plumbing shared by the ledger, sync state, reject and report tables: any Airflow SQL
connection through common-sql, user-given names validated and quoted, values always bound."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import BaseHook

log = logging.getLogger(__name__)
LOCK_POLL_SECONDS = 0.5
IN_SLICE = 500  # values per IN (...) list: well under SQLite's and PostgreSQL's parameter limits
MAX_NAME = 63  # PostgreSQL's identifier limit (longer names are silently truncated there)
_NAME = re.compile(rf"^[A-Za-z_][A-Za-z0-9_]{{0,{MAX_NAME - 1}}}$")
# UPDATE ... FROM, what a batch's state change needs to be one statement, came with SQLite 3.33.
SQLITE_UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33, 0)
# Bound variables per SQLite statement: the default limit since 3.32 (999 before it, where the
# per-row statements run instead).
SQLITE_VARIABLES = 32_766
PG_TYPES = frozenset({"text", "bigint", "integer"})


class SqlLockTimeout(TimeoutError):
    """Another process held a lock for longer than the caller would wait."""


def quote_name(name: str, *, what: str = "table") -> str:
    """Validate a (possibly schema-qualified) table or column name and quote each part.

    Only letters, digits and underscores are accepted: a name is never a place for SQL.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} name must be a non-empty string, got {name!r}")
    parts = name.split(".")
    if len(parts) > 2 or not all(_NAME.match(part) for part in parts):
        raise ValueError(
            f"invalid {what} name {name!r}: use letters, digits and underscores "
            "(optionally one schema prefix, e.g. marketing.sms_messages)"
        )
    return ".".join(f'"{part}"' for part in parts)


def derived_name(base: str, suffix: str) -> str:
    """``<base>_<suffix>`` (e.g. an index named after its table), shortened deterministically with
    a hash of ``base`` when it would pass the 63-character limit, so it never collides or gets cut."""
    name = f"{base}_{suffix}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(base.encode()).hexdigest()[:10]
    keep = MAX_NAME - len(suffix) - len(digest) - 2
    return f"{base[:keep]}_{digest}_{suffix}"


def ddl_lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for DDL on the table ``name`` (its unqualified part, so
    ``public.t`` and ``t`` share one: serialising a little more than needed is harmless)."""
    digest = hashlib.sha256(f"airflow-provider-sms:ddl:{name.split('.')[-1]}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def get_sql_hook(conn_id: str):
    """The common-sql ``DbApiHook`` of any Airflow SQL connection (SQLite, PostgreSQL, ...)."""
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    hook = BaseHook.get_connection(conn_id).get_hook()
    if not isinstance(hook, DbApiHook):
        raise TypeError(f"connection {conn_id!r} is not an SQL connection (got {type(hook).__name__})")
    return hook


def check_dialect_name(name: str, dialect: str, conn_id: str) -> None:
    """Refuse, before any statement, a table name the connection's database cannot hold."""
    if dialect == "sqlite" and "." in name:
        raise ValueError(
            f"SQLite has no schemas: table {name!r} on connection {conn_id!r} cannot be "
            f"schema-qualified; use a plain name such as {name.split('.')[-1]!r}"
        )


_TEXT, _INT_OR_NULL = frozenset({str}), frozenset({int, type(None)})


def pg_array(values: Sequence[Any]) -> str:
    """A PostgreSQL array literal (``{"a","b",NULL}``) of texts or integers, bound as ONE text
    parameter and cast (``%s::text[]``): the server reads it with ``array_in``. About a third of
    the client CPU of the driver's own list binding (psycopg 3 and psycopg2 alike), no more server
    CPU. Every text is quoted, so '', 'NULL', commas and braces stay texts."""
    kinds = set(map(type, values))  # one pass in C, not a generator per column
    if kinds <= _TEXT:  # the common case: one join, escaped if needed
        text = '","'.join(values)
        if "\\" in text or '"' in text:
            text = '","'.join(v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
        return '{"' + text + '"}' if values else "{}"
    if kinds <= _INT_OR_NULL:  # counts, row numbers, NULLs
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


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


SQLITE_BUSY_MS = 30_000  # how long a SQLite connection waits for another's lock


def _switch_to_wal(conn: Any) -> None:
    """``PRAGMA journal_mode=WAL``, tried again while another connection holds the file (up to
    :data:`SQLITE_BUSY_MS`). SQLite answers "database is locked" at once, without its busy handler,
    when two processes switch a new file at the same moment (seen in two tries of one campaign
    started together); the second finds it switched already."""
    deadline = time.monotonic() + SQLITE_BUSY_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@dataclass
class SqlTable:
    """A table the provider owns on a SQL connection, written in batches.

    Holds one DB-API connection for its life; each write is one transaction.
    """

    conn_id: str
    name: str

    def __post_init__(self) -> None:
        self.quoted = quote_name(self.name)
        self.hook = get_sql_hook(self.conn_id)
        self.dialect = self.hook.dialect_name
        check_dialect_name(self.name, self.dialect, self.conn_id)
        self.ph = self.hook.placeholder
        self._conn = None

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @property
    def timestamp_type(self) -> str:
        return "TIMESTAMP WITH TIME ZONE" if self.is_postgres else "TEXT"

    def ts(self, value: datetime | None) -> Any:
        """A timestamp as this database stores it (ISO-8601 UTC text where there is no native type)."""
        if value is None or self.is_postgres:
            return value
        return value.astimezone(timezone.utc).isoformat(timespec="microseconds")

    @staticmethod
    def from_ts(value: Any) -> datetime | None:
        """A stored timestamp as an aware datetime (the inverse of :meth:`ts`: SQLite's text is read)."""
        if value is None or isinstance(value, datetime):
            return value
        moment = datetime.fromisoformat(str(value))
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)

    @property
    def conn(self):
        if self._conn is None:
            self._conn = self.hook.get_conn()
            if self.dialect == "sqlite":
                self._conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
                # An audience streamed from the same SQLite file must not block our writes.
                _switch_to_wal(self._conn)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor inside one transaction: committed on success, rolled back on error."""
        try:
            with closing(self.conn.cursor()) as cursor:
                yield cursor
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise

    @contextmanager
    def write_transaction(self) -> Iterator[Any]:
        """:meth:`transaction` for statements that write from its start. On SQLite it begins
        explicitly (``BEGIN IMMEDIATE``, waiting out other writers under ``busy_timeout``): Python's
        sqlite3 opens a transaction by itself only before ``INSERT``/``UPDATE``/..., not before a
        statement that starts with ``WITH``, which would otherwise commit on its own."""
        conn = self.conn
        if self.dialect == "sqlite" and not conn.in_transaction:
            conn.execute("BEGIN IMMEDIATE")
        with self.transaction() as cursor:
            yield cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.transaction() as cursor:
            cursor.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        rows = [tuple(row) for row in rows]
        if rows:
            with self.transaction() as cursor:
                self._executemany(cursor, sql, rows)
        return len(rows)

    @staticmethod
    def _executemany(cursor: Any, sql: str, rows: list[tuple]) -> None:
        if type(cursor).__module__.startswith("psycopg2"):
            # psycopg2's executemany is one round trip per row; execute_batch sends pages.
            from psycopg2.extras import execute_batch

            execute_batch(cursor, sql, rows, page_size=1000)
        else:
            cursor.executemany(sql, rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with closing(self.conn.cursor()) as cursor:
            cursor.execute(sql, tuple(params))
            rows = cursor.fetchall()
        self.conn.commit()  # ends the read transaction (PostgreSQL would otherwise hold it open)
        return rows

    def exists(self) -> bool:
        """Whether the table exists (a dry run reads a table without creating it). A database
        that cannot be reached raises: that is not a missing table."""
        conn = self.conn
        try:
            self.query(f"SELECT 1 FROM {self.quoted} WHERE 1 = 0")
        except Exception:
            conn.rollback()
            return False
        return True

    @property
    def set_based(self) -> bool:
        """Whether a batch's change can be one statement here (PostgreSQL, SQLite from 3.33)."""
        return self.is_postgres or (self.dialect == "sqlite" and SQLITE_UPDATE_FROM)

    def rows_cte(
        self, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]], *, fixed: int = 0
    ) -> Iterator[tuple[str, list[Any]]]:
        """``WITH v(<columns>) AS (...)`` over ``rows`` and its parameters, to start a statement that
        reads the rows as the table ``v``; ``columns`` are ``(name, type)`` with the types of
        :data:`PG_TYPES`. PostgreSQL: one ``unnest`` of one array literal per column, whatever the
        number of rows (one statement). SQLite: ``VALUES (?, ?), ...`` in as few pieces as its
        bound-variable limit allows with ``fixed`` more parameters in the statement (one piece up
        to ~2,000 rows of 16 columns)."""
        names = ", ".join(quote_name(name, what="column") for name, _ in columns)
        if self.is_postgres:
            if not {kind for _, kind in columns} <= PG_TYPES:
                raise ValueError(f"column types must be among {sorted(PG_TYPES)}: {columns}")
            arrays = ", ".join(f"{self.ph}::{kind}[]" for _, kind in columns)
            params = (
                [pg_array(column) for column in zip(*rows, strict=True)] if rows else ["{}"] * len(columns)
            )
            yield f"WITH v ({names}) AS (SELECT * FROM unnest({arrays})) ", params
            return
        one = "(" + ", ".join([self.ph] * len(columns)) + ")"
        per_piece = max(1, (SQLITE_VARIABLES - fixed) // len(columns))
        for start in range(0, len(rows), per_piece):
            part = rows[start : start + per_piece]
            params = [value for row in part for value in row]
            yield f"WITH v ({names}) AS (VALUES {', '.join([one] * len(part))}) ", params

    @staticmethod
    def run_once(cursor: Any, sql: str, params: Sequence[Any]) -> None:
        """Execute a batch statement planned for its own values: psycopg 3 prepares a statement on
        the server from its 5th execution, after which PostgreSQL may run a generic plan that cannot
        see how many rows the batch's arrays hold. Planning costs well under a µs per row of a batch."""
        if type(cursor).__module__.startswith("psycopg."):
            cursor.execute(sql, params, prepare=False)
        else:
            cursor.execute(sql, params)

    def changed(self, cursor: Any) -> int:
        """The rows the cursor's last statement changed. Python's sqlite3 gives -1 for a statement
        that starts with ``WITH``, so SQLite is asked (``changes()``, no I/O)."""
        if cursor.rowcount >= 0 or self.dialect != "sqlite":
            return cursor.rowcount
        cursor.execute("SELECT changes()")
        return int(cursor.fetchone()[0])

    def in_clause(self, count: int) -> str:
        return "(" + ", ".join([self.ph] * count) + ")"

    def one_of(self, column: str, values: Sequence[str]) -> Iterator[tuple[str, list[Any]]]:
        """``(condition, params)`` saying that ``column`` is one of the texts ``values``: one for the
        whole list where the database takes a list as one parameter (PostgreSQL ``= ANY``, SQLite
        ``json_each``), else one per slice of :data:`IN_SLICE` (``IN (...)``). None for no values."""
        values = list(values)
        if not values:
            return
        name = quote_name(column, what="column")
        if self.is_postgres:
            yield f"{name} = ANY({self.ph})", [values]
        elif self.dialect == "sqlite":
            yield f"{name} IN (SELECT value FROM json_each({self.ph}))", [json.dumps(values)]
        else:
            for start in range(0, len(values), IN_SLICE):
                part = values[start : start + IN_SLICE]
                yield f"{name} IN {self.in_clause(len(part))}", part

    def create(
        self, columns: Sequence[tuple[str, str]], primary_key: Sequence[str], fillfactor: int | None = None
    ) -> None:
        """CREATE TABLE IF NOT EXISTS with ``(name, type)`` columns; ``TIMESTAMP`` maps per dialect.
        ``fillfactor`` (PostgreSQL only; a table that exists keeps its own): the percentage of each
        page new rows fill, the rest left for later versions of its rows."""
        cols = ", ".join(
            f"{quote_name(name, what='column')} {self.timestamp_type if kind == 'TIMESTAMP' else kind}"
            for name, kind in columns
        )
        pk = ", ".join(quote_name(c, what="column") for c in primary_key)
        storage = f" WITH (fillfactor = {int(fillfactor)})" if fillfactor and self.is_postgres else ""
        self.ddl([f"CREATE TABLE IF NOT EXISTS {self.quoted} ({cols}, PRIMARY KEY ({pk})){storage}"])

    def create_index(self, suffix: str, columns: Sequence[str], where: str = "") -> str:
        """CREATE INDEX IF NOT EXISTS ``<table>_<suffix>`` (hash-shortened past 63 characters, see
        :func:`derived_name`) on ``columns``, partial with ``where`` (SQL of this package's own, never
        a user's); returns the index name."""
        name = derived_name(self.name.split(".")[-1], suffix)
        index = quote_name(name, what="index")
        cols = ", ".join(quote_name(c, what="column") for c in columns)
        predicate = f" WHERE {where}" if where else ""
        self.ddl([f"CREATE INDEX IF NOT EXISTS {index} ON {self.quoted} ({cols}){predicate}"])
        return name

    def index_exists(self, suffix: str) -> bool:
        """Whether this table's index ``<table>_<suffix>`` (as :meth:`create_index` names it) exists."""
        parts = self.name.split(".")
        name = derived_name(parts[-1], suffix)
        if self.is_postgres:
            qualified = ".".join([*(quote_name(p) for p in parts[:-1]), quote_name(name, what="index")])
            return bool(self.query("SELECT to_regclass(%s) IS NOT NULL", [qualified])[0][0])
        if self.dialect != "sqlite":
            raise NotImplementedError(f"index_exists: PostgreSQL and SQLite only, not {self.dialect}")
        return bool(
            self.query(f"SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = {self.ph}", [name])
        )

    def ddl(self, statements: Sequence[str]) -> None:
        """Run ``CREATE ... IF NOT EXISTS`` statements in one transaction (see :meth:`ddl_transaction`)."""
        with self.ddl_transaction() as cursor:
            for statement in statements:
                cursor.execute(statement)

    @contextmanager
    def ddl_transaction(self) -> Iterator[Any]:
        """A transaction for DDL on this table, serialised with any other session's on PostgreSQL.

        There ``IF NOT EXISTS`` is no guard against a concurrent first creation: both sessions see
        no table, both insert its catalog rows, and the second fails with ``UniqueViolation``
        (pg_type) or ``DuplicateTable``. A transaction-scoped advisory lock keyed on the table name
        makes the second wait for the first's commit, then find the table.
        """
        with self.transaction() as cursor:
            if self.is_postgres:
                cursor.execute(f"SELECT pg_advisory_xact_lock({self.ph})", (ddl_lock_key(self.name),))
            yield cursor

    def widen_to_text(self, columns: Sequence[str]) -> list[str]:
        """Make ``columns`` that an earlier version created as ``VARCHAR(n)`` plain ``TEXT``, so
        values longer than ``n`` no longer fail the write (PostgreSQL; SQLite does not enforce
        lengths). Changing VARCHAR to TEXT rewrites nothing there. Returns the columns changed."""
        if not self.is_postgres:
            return []
        with self.ddl_transaction() as cursor:  # checked under the lock: concurrent runs widen once
            cursor.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND NOT attisdropped "
                "AND atttypid = 'varchar'::regtype AND atttypmod > 0 AND attname = ANY(%s)",
                (self.quoted, list(columns)),
            )
            narrow = sorted(row[0] for row in cursor.fetchall())
            if narrow:
                changes = ", ".join(f"ALTER COLUMN {quote_name(c, what='column')} TYPE TEXT" for c in narrow)
                cursor.execute(f"ALTER TABLE {self.quoted} {changes}")
        return narrow

    def add_columns(self, columns: Sequence[tuple[str, str]]) -> list[str]:
        """Add ``(name, type)`` columns that a table created by an earlier version lacks (nullable
        types only). Checked under the DDL lock: concurrent runs add each column once."""
        with self.ddl_transaction() as cursor:
            if self.is_postgres:
                cursor.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                    "AND NOT attisdropped AND attnum > 0",
                    (self.quoted,),
                )
                present = {row[0] for row in cursor.fetchall()}
            else:
                cursor.execute(f"PRAGMA table_info({self.quoted})")
                present = {row[1] for row in cursor.fetchall()}
            missing = [(name, kind) for name, kind in columns if name not in present]
            for name, kind in missing:
                cursor.execute(
                    f"ALTER TABLE {self.quoted} ADD COLUMN {quote_name(name, what='column')} {kind}"
                )
        return [name for name, _ in missing]

    def insert_ignore(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], key: Sequence[str]) -> int:
        """Insert rows whose key is not there yet (``ON CONFLICT DO NOTHING``: SQLite and PostgreSQL)
        in one transaction; returns how many were inserted, as the driver counts them."""
        cols = ", ".join(quote_name(c, what="column") for c in columns)
        conflict = ", ".join(quote_name(c, what="column") for c in key)
        values = ", ".join([self.ph] * len(columns))
        sql = f"INSERT INTO {self.quoted} ({cols}) VALUES ({values}) ON CONFLICT ({conflict}) DO NOTHING"
        rows = [tuple(row) for row in rows]
        if not rows:
            return 0
        with self.transaction() as cursor:
            self._executemany(cursor, sql, rows)
            # sqlite3 and psycopg 3 sum the rows of every execution; with psycopg2 only a single page
            # (up to 1,000 rows, e.g. the newsletter's one-row claim) is counted exactly.
            return cursor.rowcount if cursor.rowcount >= 0 else len(rows)

    @contextmanager
    def exclusive(self, name: str, *, timeout: float, waiting: str = "") -> Iterator[None]:
        """Hold an exclusive lock called ``name`` (scoped to this table) while the block runs.

        The lock dies with its holder, so a killed process never leaves it behind and no clock is
        compared: a PostgreSQL session advisory lock on a connection of its own, an ``flock`` on a
        file beside a SQLite database. Other databases get no lock (a warning says so). Waits at
        most ``timeout`` seconds, logging ``waiting`` while it does, then raises SqlLockTimeout.
        """
        digest = hashlib.sha256(f"{self.name}\x1f{name}".encode()).digest()
        if self.is_postgres:
            holder = _PostgresLock(self.hook, int.from_bytes(digest[:8], "big", signed=True))
        elif self.dialect == "sqlite" and (path := self._sqlite_path()):
            holder = _FileLock(f"{path}.sms-locks", digest.hex()[:32])
        else:
            log.warning(
                "No lock on %s databases: concurrent runs are kept apart only row by row", self.dialect
            )
            yield
            return
        deadline = time.monotonic() + timeout
        next_note = 0.0
        while not holder.try_acquire():
            now = time.monotonic()
            if now >= deadline:
                holder.close()
                raise SqlLockTimeout(
                    f"{waiting or name}: still held by another process after {timeout:.0f} s"
                )
            if now >= next_note and waiting:
                log.info("Waiting: %s", waiting)
                next_note = now + 30
            time.sleep(LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            holder.close()

    def _sqlite_path(self) -> str:
        """The file of the main SQLite database ('' for an in-memory one)."""
        rows = self.query("PRAGMA database_list")
        return next((str(row[2] or "") for row in rows if row[1] == "main"), "")


class _PostgresLock:
    """A session advisory lock on its own connection: released when it closes or its process dies."""

    def __init__(self, hook: Any, key: int) -> None:
        self.key = key
        self.conn = hook.get_conn()
        self.conn.autocommit = True

    def try_acquire(self) -> bool:
        with closing(self.conn.cursor()) as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
            return bool(cursor.fetchone()[0])

    def close(self) -> None:
        self.conn.close()  # ends the session, and with it the lock


class _FileLock:
    """``flock`` on a file: released when it is closed or its process dies."""

    def __init__(self, folder: str, name: str) -> None:
        os.makedirs(folder, exist_ok=True)
        self.fd = os.open(os.path.join(folder, f"{name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        os.close(self.fd)
