"""``--state FILE``: the sandbox state kept in SQLite across restarts.

The server snapshots the rows that changed (``SandboxState.collect_changes``) every
``save_interval`` seconds and once more at shutdown, so a normal stop and start loses nothing; a
crash (SIGKILL) can lose the last interval, but never makes ids come back: blocks of ids are
reserved in the file before they are handed out (``reserve_ids``). Request statistics and faults
are not kept.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

from airflow_provider_sms.sandbox.state import SnapshotBatch

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
"""


class SqliteStore:
    """One SQLite file: ``meta`` (sequences, tokens, balances, clock) and ``records`` (one row per object)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            connection.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        # A connection per call: writes run in a worker thread, and sqlite3 connections are thread-bound.
        connection = sqlite3.connect(self.path)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    def load(self) -> tuple[dict[str, Any], dict[str, list[tuple[str, str]]]]:
        """The stored metadata and, per kind, the ``(key, data)`` rows in insertion order."""
        connection = self._connect()
        try:
            meta = {
                key: json.loads(value) for key, value in connection.execute("SELECT key, value FROM meta")
            }
            rows: defaultdict[str, list[tuple[str, str]]] = defaultdict(list)
            for kind, key, data in connection.execute("SELECT kind, key, data FROM records ORDER BY rowid"):
                rows[kind].append((key, data))
        finally:
            connection.close()
        return meta, dict(rows)

    def reserve_ids(self, reserved: dict[str, int]) -> None:
        """Record, durably and at once, the last id reserved per sequence (``SandboxState.next_seq``).

        Its own meta key, which snapshots never write: a snapshot collected before a reservation
        but written after it cannot lower the mark.
        """
        connection = self._connect()
        try:
            with connection:
                connection.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('id_reserved', ?)",
                    (json.dumps(reserved),),
                )
        finally:
            connection.close()

    def write(self, batch: SnapshotBatch) -> None:
        """Apply one batch atomically."""
        connection = self._connect()
        try:
            with connection:
                if batch.wipe:
                    connection.execute("DELETE FROM records")
                connection.executemany("DELETE FROM records WHERE kind = ? AND key = ?", batch.deletes)
                # Delete-then-insert (not REPLACE) would reorder rows; upsert keeps the original rowid.
                connection.executemany(
                    "INSERT INTO records (kind, key, data) VALUES (?, ?, ?) "
                    "ON CONFLICT (kind, key) DO UPDATE SET data = excluded.data",
                    batch.upserts,
                )
                connection.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    [(key, json.dumps(value)) for key, value in batch.meta.items()],
                )
        finally:
            connection.close()
