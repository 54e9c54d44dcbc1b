"""The newsletter table: one row per campaign key of a newsletter sent to whole contact lists, so
a retry returns the newsletter an earlier try created instead of creating another."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_provider_sms.storage.table import SqlTable, utcnow

SENDING, CREATED = "sending", "created"
COLUMNS: list[tuple[str, str]] = [
    ("campaign_key", "VARCHAR(250) NOT NULL"),
    ("gateway", "VARCHAR(32)"),
    ("conn_id", "VARCHAR(250)"),
    ("list_ids", "VARCHAR(1000)"),
    ("title", "VARCHAR(250)"),
    ("body_hash", "VARCHAR(64)"),
    ("send_at", "TIMESTAMP"),
    ("state", "VARCHAR(16) NOT NULL"),
    ("newsletter_id", "VARCHAR(128)"),
    ("recipients", "INTEGER"),
    ("requested_at", "TIMESTAMP"),
    ("updated_at", "TIMESTAMP"),
    ("via", "VARCHAR(16)"),  # how it was sent: "package", "campaign", "send" (NULL: the gateway's own)
]


@dataclass(frozen=True)
class NewsletterRow:
    state: str
    newsletter_id: str | None
    body_hash: str | None
    list_ids: str | None
    requested_at: Any
    recipients: int | None
    via: str | None = None


class NewsletterTable(SqlTable):
    """Newsletters created per campaign key (default table ``sms_newsletters``): ``sending`` is written
    before the request leaves, ``created`` with the gateway's id once it answered."""

    def ensure_table(self) -> None:
        self.create(COLUMNS, ("campaign_key",))
        self.add_columns([("via", "VARCHAR(16)")])  # tables created before it was recorded

    def get(self, campaign_key: str) -> NewsletterRow | None:
        rows = self.query(
            "SELECT state, newsletter_id, body_hash, list_ids, requested_at, recipients, via "
            f"FROM {self.quoted} WHERE campaign_key = {self.ph}",
            [campaign_key],
        )
        return NewsletterRow(*rows[0]) if rows else None

    def start(self, campaign_key: str, values: dict[str, Any]) -> bool:
        """Record ``sending``; False if the key is already there (another try got here first)."""
        now = self.ts(utcnow())
        row = {
            **values,
            "campaign_key": campaign_key,
            "state": SENDING,
            "requested_at": now,
            "updated_at": now,
        }
        return bool(self.insert_ignore(list(row), [list(row.values())], ("campaign_key",)))

    def finish(self, campaign_key: str, newsletter_id: str | None, recipients: int | None) -> None:
        self.execute(
            f"UPDATE {self.quoted} SET state = {self.ph}, newsletter_id = {self.ph}, recipients = {self.ph}, "
            f"updated_at = {self.ph} WHERE campaign_key = {self.ph}",
            [CREATED, newsletter_id, recipients, self.ts(utcnow()), campaign_key],
        )

    def forget(self, campaign_key: str) -> None:
        """The request provably created nothing: a later try may send it."""
        self.execute(f"DELETE FROM {self.quoted} WHERE campaign_key = {self.ph}", [campaign_key])
