"""The opt-out table: one row per phone number (E.164) that said STOP, or START again after it.

The provider owns it (default ``sms_opt_outs``, created if missing on any Airflow SQL connection);
the send, the newsletter and the contact sync read it by number, and whatever reads replies writes
it through :meth:`OptOutTable.record`. A START keeps the row (``opted_out`` False) for the audit:
who opted out, when, from which reply, and when they came back.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from airflow_provider_sms.messages import OptOutEvent, normalize_phone
from airflow_provider_sms.storage.table import SqlTable, quote_name, utcnow

__all__ = ["OptOutEvent", "OptOutTable"]

COLUMNS: list[tuple[str, str]] = [
    ("phone", "VARCHAR(32) NOT NULL"),
    ("opted_out", "BOOLEAN NOT NULL"),
    ("since", "TIMESTAMP"),  # never NULL: every event has its time
    ("gateway", "VARCHAR(32)"),
    ("source", "VARCHAR(64) NOT NULL"),
    ("source_reply_id", "TEXT"),
    ("keyword", "TEXT"),
    ("updated_at", "TIMESTAMP"),
]
NAMES = [name for name, _ in COLUMNS]
ROWS_PER_STATEMENT = 1_000  # 8,000 parameters: within SQLite's (32,766) and PostgreSQL's (65,535) limits


class OptOutTable(SqlTable):
    """The opt-out table ``table`` on the SQL connection ``conn_id`` (SQLite, PostgreSQL).

    Holds one DB-API connection until :meth:`close`; use it from one thread.
    """

    def __init__(self, conn_id: str, table: str = "sms_opt_outs") -> None:
        super().__init__(conn_id, table)

    def ensure(self) -> None:
        """Create the table if it is missing (an empty table: nobody has opted out yet)."""
        self.create(COLUMNS, ("phone",))

    def record(self, events: Iterable[OptOutEvent]) -> int:
        """Write ``events``; per number the newest ``since`` wins, in the table and among the events.

        An event no newer than the number's row changes nothing, so replaying old replies (a STOP
        older than a START already recorded) cannot opt a number out again, and recording the same
        events twice writes nothing the second time. Of two events of one number at the same
        instant, the opt-out wins. Every number is checked first (an invalid one raises
        :class:`~airflow_provider_sms.messages.InvalidPhoneNumberError` and nothing is written);
        then one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` per 1,000 numbers, all in one
        transaction. Returns how many rows were inserted or changed.
        """
        newest: dict[str, OptOutEvent] = {}
        for event in events:
            phone = normalize_phone(event.phone)
            held = newest.get(phone)
            if held is None or (event.since, event.opted_out) > (held.since, held.opted_out):
                newest[phone] = event
        if not newest:
            return 0
        now = self.ts(utcnow())
        rows = [
            (
                phone,
                e.opted_out,
                self.ts(e.since),
                e.gateway,
                e.source,
                e.source_reply_id,
                e.keyword,
                now,
            )
            for phone, e in sorted(newest.items())
        ]
        cols = ", ".join(quote_name(c, what="column") for c in NAMES)
        updates = ", ".join(
            f"{quote_name(c, what='column')} = excluded.{quote_name(c, what='column')}" for c in NAMES[1:]
        )
        written = 0
        with self.transaction() as cursor:
            for start in range(0, len(rows), ROWS_PER_STATEMENT):
                part = rows[start : start + ROWS_PER_STATEMENT]
                values = ", ".join(["(" + ", ".join([self.ph] * len(NAMES)) + ")"] * len(part))
                cursor.execute(
                    f'INSERT INTO {self.quoted} AS o ({cols}) VALUES {values} ON CONFLICT ("phone") '
                    f'DO UPDATE SET {updates} WHERE o."since" < excluded."since"',
                    tuple(value for row in part for value in row),
                )
                written += max(cursor.rowcount, 0)
        return written

    def opted_out(self, numbers: Iterable[str] | None = None) -> set[str]:
        """The numbers opted out now: all of them, or those among ``numbers`` (E.164, compared as
        given: one query per call on SQLite and PostgreSQL)."""
        select = f'SELECT "phone" FROM {self.quoted} WHERE "opted_out" = {self.ph}'
        if numbers is None:
            return {row[0] for row in self.query(select, [True])}
        found: set[str] = set()
        for condition, params in self.one_of("phone", sorted(set(numbers))):
            found.update(row[0] for row in self.query(f"{select} AND {condition}", [True, *params]))
        return found

    def counts(self, since: datetime | None = None) -> dict[str, int]:
        """``{"opted_out": numbers opted out now, "resubscribed": numbers back in after a START}``,
        of every row, or of those whose last event is at or after ``since``."""
        where, params = "", []
        if since is not None:
            where, params = f' WHERE "since" >= {self.ph}', [self.ts(since)]
        rows = self.query(
            f'SELECT "opted_out", COUNT(*) FROM {self.quoted}{where} GROUP BY "opted_out"', params
        )
        counts = {"opted_out": 0, "resubscribed": 0}
        for opted_out, n in rows:
            counts["opted_out" if opted_out else "resubscribed"] += int(n)
        return counts

    def rows(self, numbers: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The rows of ``numbers`` as dicts of their columns (``since`` an aware datetime)."""
        found: dict[str, dict[str, Any]] = {}
        cols = ", ".join(quote_name(c, what="column") for c in NAMES)
        for condition, params in self.one_of("phone", sorted(set(numbers))):
            for row in self.query(f"SELECT {cols} FROM {self.quoted} WHERE {condition}", params):
                item = dict(zip(NAMES, row, strict=True))
                item["opted_out"] = bool(item["opted_out"])
                item["since"] = self.from_ts(item["since"])
                item["updated_at"] = self.from_ts(item["updated_at"])
                found[item["phone"]] = item
        return found
