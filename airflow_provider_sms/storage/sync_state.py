"""The contact sync state and reject tables, on any Airflow SQL connection (common-sql).

The state holds, per (gateway, list, contact key), the gateway's contact id and a hash of the fields
last written, so that a sync sends only what changed. A row whose ``field_hash`` is NULL is a write
in flight: it was about to leave when the row was written, and its outcome is not known yet. One
row per list, with the empty contact key, stands for the list itself: its name (so a list found or
created by name is found again without asking the gateway) and the fact that the state of that list
is complete. Without it, the gateway's list is read before anything is written.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_sms.storage.table import SqlTable, utcnow

log = logging.getLogger(__name__)

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
# The per-row values of a set-based save (the table ``v`` it reads).
SAVE_COLUMNS = [("contact_key", "text"), ("contact_id", "text"), ("phone", "text"), ("field_hash", "text")]
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
LOCK_PREFIX = "lock:"  # list_id of a lock row (no gateway's list id starts so); contact_key is LIST_ROW
LOCK_LEASE = 120.0  # seconds a lock row holds without a heartbeat (its holder died, say)
LOCK_HEARTBEAT = 20.0  # seconds between a holder's refreshes of its lock rows
LOCK_POLL = 0.25  # seconds between a waiting sync's looks at the lock row
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

    def phones(self, list_id: str) -> list[str] | None:
        """The numbers the state says ``list_id`` holds (a write in flight included), or None when
        it has no complete record of that list (or no table): what a gateway that cannot list its
        contacts (SmsGateway24) holds is known only here."""
        if not self.exists() or not self.is_complete(list_id):
            return None
        return sorted({c.phone for c in self.iter_list(list_id) if c.phone})

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
        now = self.ts(utcnow())
        if self.set_based:
            # One INSERT ... SELECT for the batch; a key given twice keeps its last row (one
            # statement may not update a row twice on PostgreSQL).
            last: dict[str, tuple] = {}
            given = 0
            for key, contact_id, phone, field_hash in rows:
                given += 1
                last[key] = (key, contact_id, phone, field_hash)
            if not last:
                return 0
            ph = self.ph
            constants = [self.gateway, list_id, list_name, run_token, now]
            select = (
                f"SELECT {ph}, {ph}, contact_key, contact_id, phone, field_hash, {ph}, {ph}, {ph} "
                "FROM v WHERE true"  # SQLite needs the WHERE before ON CONFLICT
            )
            with self.write_transaction() as cursor:
                for cte, params in self.rows_cte(SAVE_COLUMNS, list(last.values()), fixed=len(constants)):
                    self.run_once(
                        cursor,
                        f"{cte}INSERT INTO {self.quoted} ({cols}) {select} "
                        f"ON CONFLICT ({', '.join(STATE_KEY)}) DO UPDATE SET {updates}",
                        (*params, *constants),
                    )
            return given
        sql = (
            f"INSERT INTO {self.quoted} ({cols}) VALUES ({', '.join([self.ph] * len(names))}) "
            f"ON CONFLICT ({', '.join(STATE_KEY)}) DO UPDATE SET {updates}"
        )
        return self.executemany(
            sql,
            (
                (self.gateway, list_id, key, contact_id, phone, field_hash, list_name, run_token, now)
                for key, contact_id, phone, field_hash in rows
            ),
        )

    def remove(self, list_id: str, keys: Iterable[str]) -> int:
        """Delete the rows of ``keys``: one statement (per SQLite variable-limit piece); returns how
        many keys it was given."""
        keys = list(keys)
        if not keys:
            return 0
        if self.set_based:
            with self.write_transaction() as cursor:
                for cte, params in self.rows_cte([("contact_key", "text")], [(k,) for k in keys], fixed=2):
                    self.run_once(
                        cursor,
                        f"{cte}DELETE FROM {self.quoted} WHERE {self._where_list()} "
                        "AND contact_key IN (SELECT contact_key FROM v)",
                        (*params, self.gateway, list_id),
                    )
            return len(keys)
        return self.executemany(
            f"DELETE FROM {self.quoted} WHERE {self._where_list()} AND contact_key = {self.ph}",
            ((self.gateway, list_id, key) for key in keys),
        )

    # -- locks: one sync of a list at a time ------------------------------------------------------

    @staticmethod
    def lock_id(resource: str) -> str:
        """The lock row's ``list_id`` for ``resource`` (a list id or name), within the column's width."""
        lock_id = f"{LOCK_PREFIX}{resource}"
        return (
            lock_id
            if len(lock_id) <= 128
            else f"{LOCK_PREFIX}{hashlib.sha256(resource.encode()).hexdigest()}"
        )

    def try_lock(self, resource: str, run_token: str, holder: str) -> tuple[str, datetime] | None:
        """Take the lock row of ``resource``, or take it over once its lease ran out; None when
        taken, else the holder and when it last showed it was alive."""
        lock_id = self.lock_id(resource)
        now = utcnow()
        row = (self.gateway, lock_id, LIST_ROW, holder[:128], None, None, None, run_token, self.ts(now))
        if self.insert_ignore([name for name, _ in STATE_COLUMNS], [row], STATE_KEY) == 1:
            return None
        found = self.query(
            f"SELECT run_token, contact_id, synced_at FROM {self.quoted} WHERE {self._where_list()} "
            f"AND contact_key = {self.ph}",
            [self.gateway, lock_id, LIST_ROW],
        )
        if not found:  # released in between: try again
            return self.try_lock(resource, run_token, holder)
        token, other, at = found[0]
        at = self.from_ts(at)
        if now - at > timedelta(seconds=LOCK_LEASE):
            # Compare-and-set on the stale token: of two waiters taking it over, one wins.
            with self.transaction() as cursor:
                cursor.execute(
                    f"UPDATE {self.quoted} SET run_token = {self.ph}, contact_id = {self.ph}, "
                    f"synced_at = {self.ph} WHERE {self._where_list()} AND contact_key = {self.ph} "
                    f"AND run_token = {self.ph}",
                    (run_token, holder[:128], self.ts(now), self.gateway, lock_id, LIST_ROW, token),
                )
                taken = cursor.rowcount == 1
            if taken:
                log.warning(
                    "Took over the lock of %s list %s from %s (silent since %s)",
                    self.gateway,
                    resource,
                    other,
                    at,
                )
                return None
        return other, at

    def refresh_lock(self, resource: str, run_token: str) -> bool:
        """Renew the lease of a lock this run holds; False if it is not held any more."""
        with self.transaction() as cursor:
            cursor.execute(
                f"UPDATE {self.quoted} SET synced_at = {self.ph} WHERE {self._where_list()} "
                f"AND contact_key = {self.ph} AND run_token = {self.ph}",
                (self.ts(utcnow()), self.gateway, self.lock_id(resource), LIST_ROW, run_token),
            )
            return cursor.rowcount == 1

    def unlock(self, resource: str, run_token: str) -> None:
        self.execute(
            f"DELETE FROM {self.quoted} WHERE {self._where_list()} AND contact_key = {self.ph} "
            f"AND run_token = {self.ph}",
            [self.gateway, self.lock_id(resource), LIST_ROW, run_token],
        )

    def drop_stale(self, list_id: str, run_token: str) -> None:
        """Forget the contact rows of ``list_id`` that this run did not write (after a full reconcile)."""
        self.execute(
            f"DELETE FROM {self.quoted} WHERE {self._where_list()} AND contact_key <> {self.ph} "
            f"AND (run_token IS NULL OR run_token <> {self.ph})",
            [self.gateway, list_id, LIST_ROW, run_token],
        )


class SyncLockedError(RuntimeError):
    """Another sync of the same list held its lock for longer than this one would wait."""


class SyncLock:
    """Lock rows in the sync state table, one per list (by id and, while it is resolved, by name),
    held for a sync's duration so two syncs of one list never both create its contacts.

    Works on any SQL database (a row, not a database-specific lock). A waiting sync polls; a
    holder renews its lease from a background thread (on its own connection), so a holder that
    died stops holding after :data:`LOCK_LEASE` seconds and the next sync takes over.
    """

    def __init__(self, conn_id: str, table: str, gateway: str, run_token: str, holder: str) -> None:
        self.conn_id, self.table, self.gateway = conn_id, table, gateway
        self.run_token, self.holder = run_token, holder
        self.state = ContactSyncState(conn_id, table, gateway=gateway)
        self.held: list[str] = []
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, resource: str, timeout: float) -> None:
        """Hold ``resource``, waiting up to ``timeout`` seconds for another sync to finish."""
        deadline = time.monotonic() + timeout
        while (other := self.state.try_lock(resource, self.run_token, self.holder)) is not None:
            if time.monotonic() >= deadline:
                holder, since = other
                raise SyncLockedError(
                    f"another sync of {self.gateway} list {resource} is running ({holder}, alive at "
                    f"{since.isoformat()}); waited {timeout:.0f} s for it. Syncs of one list run one at "
                    f"a time (lock row in {self.table!r})"
                )
            time.sleep(LOCK_POLL)
        self.held.append(resource)
        if self._thread is None:
            self._thread = threading.Thread(target=self._heartbeat, name="sms-sync-lock", daemon=True)
            self._thread.start()

    def check(self) -> None:
        """Raise if a lock was lost (its lease ran out and another sync took it over)."""
        if self.lost:
            raise SyncLockedError(
                f"the lock of {self.gateway} list {self.lost} was taken over by another sync"
            )

    def _heartbeat(self) -> None:
        # Its own table object: a DB-API connection (SQLite's above all) belongs to one thread.
        state = ContactSyncState(self.conn_id, self.table, gateway=self.gateway)
        try:
            while not self._stop.wait(LOCK_HEARTBEAT):
                for resource in list(self.held):
                    try:
                        if not state.refresh_lock(resource, self.run_token):
                            self.lost = resource
                    except Exception:  # a passing database error: the lease outlasts a few of them
                        log.warning("Could not renew the lock of list %s", resource, exc_info=True)
        finally:
            state.close()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            for resource in reversed(self.held):
                self.state.unlock(resource, self.run_token)
        finally:
            self.held.clear()
            self.state.close()


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
