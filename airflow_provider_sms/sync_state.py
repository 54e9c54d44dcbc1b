"""The contact sync state and reject tables, on any Airflow SQL connection (common-sql).

The state holds, per (gateway, list, contact key), the gateway's contact id and a hash of the fields
last written, so that a sync sends only what changed. A row whose ``field_hash`` is NULL is a write
in flight: it was about to leave when the row was written, and its outcome is not known yet. One
row per list, with the empty contact key, stands for the list itself: its name (so a list found or
created by name is found again without asking the gateway) and the fact that the state of that list
is complete. Without it, the gateway's list is read before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_sms.sql import SqlTable, utcnow

LIST_ROW = ""  # contact_key of the row that stands for the list itself
STATE_COLUMNS: list[tuple[str, str]] = [
    ("gateway", "VARCHAR(32) NOT NULL"),
    ("list_id", "VARCHAR(128) NOT NULL"),
    ("contact_key", "VARCHAR(250) NOT NULL"),
    ("contact_id", "VARCHAR(128)"),
    ("phone", "VARCHAR(32)"),
    ("field_hash", "VARCHAR(64)"),
    ("list_name", "VARCHAR(250)"),
    ("run_token", "VARCHAR(64)"),
    ("synced_at", "TIMESTAMP"),
]
STATE_KEY = ("gateway", "list_id", "contact_key")
REJECT_COLUMNS: list[tuple[str, str]] = [
    ("run_key", "VARCHAR(250) NOT NULL"),
    ("source_row", "BIGINT NOT NULL"),
    ("gateway", "VARCHAR(32)"),
    ("list_id", "VARCHAR(128)"),
    ("contact_key", "VARCHAR(250)"),
    ("phone", "VARCHAR(250)"),
    ("reason", "TEXT"),
    ("error_code", "VARCHAR(32)"),
    ("created_at", "TIMESTAMP"),
]
SLICE = 500  # keys per IN (...) query
PAGE = 5_000  # rows per page when a whole list is read


@dataclass(frozen=True)
class SyncedContact:
    """A contact as the state remembers it; ``field_hash`` None means a write was in flight."""

    key: str
    contact_id: str | None
    phone: str | None
    field_hash: str | None


class ContactSyncState(SqlTable):
    """The sync state table (default ``sms_contact_sync``) of one gateway."""

    def __init__(self, conn_id: str, table: str = "sms_contact_sync", *, gateway: str) -> None:
        super().__init__(conn_id, table)
        self.gateway = gateway

    def ensure_table(self) -> None:
        self.create(STATE_COLUMNS, STATE_KEY)

    def exists(self) -> bool:
        """Whether the table exists (a dry run reads the state without creating it)."""
        try:
            self.query(f"SELECT 1 FROM {self.quoted} WHERE 1 = 0")
        except Exception:
            self.conn.rollback()
            return False
        return True

    def _where_list(self) -> str:
        return f"gateway = {self.ph} AND list_id = {self.ph}"

    def find_list(self, name: str) -> str | None:
        """The id of the list synced before under ``name``."""
        rows = self.query(
            f"SELECT list_id FROM {self.quoted} WHERE gateway = {self.ph} AND contact_key = {self.ph} "
            f"AND list_name = {self.ph} ORDER BY synced_at DESC",
            [self.gateway, LIST_ROW, name],
        )
        return rows[0][0] if rows else None

    def is_complete(self, list_id: str) -> bool:
        """Whether a sync of ``list_id`` ran to its end (or created the list): the state can be trusted."""
        return bool(
            self.query(
                f"SELECT 1 FROM {self.quoted} WHERE {self._where_list()} AND contact_key = {self.ph}",
                [self.gateway, list_id, LIST_ROW],
            )
        )

    def count_in_flight(self, list_id: str) -> int:
        rows = self.query(
            f"SELECT COUNT(*) FROM {self.quoted} WHERE {self._where_list()} AND contact_key <> {self.ph} "
            "AND field_hash IS NULL",
            [self.gateway, list_id, LIST_ROW],
        )
        return int(rows[0][0])

    def mark_list(self, list_id: str, name: str | None, run_token: str) -> None:
        """Record that the state of ``list_id`` is complete (and its name)."""
        self.save(list_id, [(LIST_ROW, None, None, None)], run_token, list_name=name)

    def load(self, list_id: str, keys: Sequence[str]) -> dict[str, SyncedContact]:
        found: dict[str, SyncedContact] = {}
        for start in range(0, len(keys), SLICE):
            part = list(keys[start : start + SLICE])
            rows = self.query(
                f"SELECT contact_key, contact_id, phone, field_hash FROM {self.quoted} "
                f"WHERE {self._where_list()} AND contact_key IN {self.in_clause(len(part))}",
                [self.gateway, list_id, *part],
            )
            found.update((row[0], SyncedContact(*row)) for row in rows)
        return found

    def iter_list(self, list_id: str) -> Iterator[SyncedContact]:
        """Every contact row of ``list_id``, read in pages (keyset paging: memory stays flat)."""
        after = LIST_ROW
        while True:
            rows = self.query(
                f"SELECT contact_key, contact_id, phone, field_hash FROM {self.quoted} "
                f"WHERE {self._where_list()} AND contact_key > {self.ph} ORDER BY contact_key LIMIT {PAGE}",
                [self.gateway, list_id, after],
            )
            yield from (SyncedContact(*row) for row in rows)
            if len(rows) < PAGE:
                return
            after = rows[-1][0]

    def save(
        self,
        list_id: str,
        rows: Iterable[tuple[str, str | None, str | None, str | None]],
        run_token: str,
        *,
        list_name: str | None = None,
    ) -> int:
        """Insert or replace ``(contact_key, contact_id, phone, field_hash)`` rows in one transaction."""
        names = [name for name, _ in STATE_COLUMNS]
        cols = ", ".join(f'"{n}"' for n in names)
        # A list row saved without a name keeps the one it had (the name finds the list again).
        target = self.quoted.split(".")[-1]
        updates = ", ".join(
            f'"{n}" = COALESCE(excluded."{n}", {target}."{n}")'
            if n == "list_name"
            else f'"{n}" = excluded."{n}"'
            for n in names
            if n not in STATE_KEY
        )
        sql = (
            f"INSERT INTO {self.quoted} ({cols}) VALUES ({', '.join([self.ph] * len(names))}) "
            f"ON CONFLICT ({', '.join(STATE_KEY)}) DO UPDATE SET {updates}"
        )
        now = self.ts(utcnow())
        return self.executemany(
            sql,
            (
                (self.gateway, list_id, key, contact_id, phone, field_hash, list_name, run_token, now)
                for key, contact_id, phone, field_hash in rows
            ),
        )

    def remove(self, list_id: str, keys: Iterable[str]) -> int:
        return self.executemany(
            f"DELETE FROM {self.quoted} WHERE {self._where_list()} AND contact_key = {self.ph}",
            ((self.gateway, list_id, key) for key in keys),
        )

    def drop_stale(self, list_id: str, run_token: str) -> None:
        """Forget the contact rows of ``list_id`` that this run did not write (after a full reconcile)."""
        self.execute(
            f"DELETE FROM {self.quoted} WHERE {self._where_list()} AND contact_key <> {self.ph} "
            f"AND (run_token IS NULL OR run_token <> {self.ph})",
            [self.gateway, list_id, LIST_ROW, run_token],
        )


class ContactRejects(SqlTable):
    """Rows a sync could not write (default table ``sms_contact_rejects``), with the reason, per run."""

    def ensure_table(self) -> None:
        self.create(REJECT_COLUMNS, ("run_key", "source_row"))

    def clear(self, run_key: str) -> None:
        """Forget an earlier try's rejects of this run: the rows are judged again."""
        self.execute(f"DELETE FROM {self.quoted} WHERE run_key = {self.ph}", [run_key])

    def add(self, run_key: str, rows: Iterable[Sequence[Any]]) -> int:
        """``(source_row, gateway, list_id, contact_key, phone, reason, error_code)`` rows."""
        now = self.ts(utcnow())
        return self.insert_ignore(
            [name for name, _ in REJECT_COLUMNS],
            ((run_key, *row, now) for row in rows),
            ("run_key", "source_row"),
        )
