"""SmsNewsletterOperator: one newsletter to whole contact lists at a scheduled time, created once."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import pendulum
from airflow.sdk import BaseOperator, Context

from airflow_provider_sms.exceptions import (
    SmsAmbiguousSendError,
    SmsAuthError,
    SmsGatewayError,
    SmsTransientError,
    SmsValidationError,
)
from airflow_provider_sms.hooks import get_gateway_hook
from airflow_provider_sms.hooks.base import SmsGatewayHook
from airflow_provider_sms.messages import CLOCK_SKEW, as_datetime
from airflow_provider_sms.operators.send import SmsBulkSendOperator, default_campaign_key
from airflow_provider_sms.storage.table import SqlTable, utcnow

SENDING, CREATED = "sending", "created"
# How far before the recorded request time a look-up searches (clock skew between us and the gateway).
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
]


@dataclass(frozen=True)
class NewsletterRow:
    state: str
    newsletter_id: str | None
    body_hash: str | None
    list_ids: str | None
    requested_at: Any
    recipients: int | None


class NewsletterTable(SqlTable):
    """Newsletters created per campaign key (default table ``sms_newsletters``): ``sending`` is written
    before the request leaves, ``created`` with the gateway's id once it answered."""

    def ensure_table(self) -> None:
        self.create(COLUMNS, ("campaign_key",))

    def get(self, campaign_key: str) -> NewsletterRow | None:
        rows = self.query(
            f"SELECT state, newsletter_id, body_hash, list_ids, requested_at, recipients FROM {self.quoted} "
            f"WHERE campaign_key = {self.ph}",
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


class SmsNewsletterOperator(BaseOperator):
    """Create a newsletter to whole contact lists, at a scheduled time, exactly once per campaign key.

    - SmsGateway24: ``savepaket`` to tags (``time_to_send`` in the connection's timezone); the phone
      sends it.
    - TextBoost: ``/sms/campaign`` to contact lists, with a sender id and a schedule.
    - Smstools (no campaign object): the groups' contacts are read and sent through
      :class:`SmsBulkSendOperator`'s ledger, one message per distinct number, scheduled with ``date``.

    The newsletter table records ``sending`` before the request leaves and the gateway's id after: a
    retry returns the recorded id. If an earlier try's answer was lost, the newsletter is looked up
    where the gateway allows it (SmsGateway24: its messages carry the paket id, title and body;
    Smstools: the ledger settles each message); TextBoost cannot list campaigns, so there (and when an
    SmsGateway24 look-up finds nothing) the task fails as ambiguous rather than risk a second newsletter.

    :param sms_conn_id: connection of the gateway (type ``smstools``, ``smsgateway24`` or ``textboost``).
    :param list_ids: the contact lists (Smstools groups, SmsGateway24 tags, TextBoost contact groups)
        (templated).
    :param body: the message text (templated).
    :param title: the newsletter's title (templated; SmsGateway24 shows it); default the campaign key.
    :param send_at: when to send (templated): a datetime or an ISO 8601 text (without offset: UTC);
        default, or in the past: now.
    :param campaign_key: identifies the newsletter (templated); default
        ``<dag_id>.<task_id>.<logical date or run id>``. A retry with the same key creates nothing new.
    :param ledger_conn_id: SQL connection of the newsletter table (and of the Smstools ledger).
    :param newsletter_table: table of created newsletters.
    :param ledger_table: message ledger table (Smstools).
    :param sender: sender id or number (TextBoost ``sender_id``, Smstools ``sender``); default the
        connection's ``sender_id`` extra.
    :param sms_type: TextBoost message type (``plain``, ``unicode``...).
    :param device_id: SmsGateway24 phone; default the connection's ``device_id`` extra.
    :param sim: SmsGateway24 SIM slot; default the connection's ``sim`` extra.
    """

    template_fields: Sequence[str] = ("list_ids", "body", "title", "send_at", "campaign_key", "sender")
    ui_color = "#f7ece6"

    def __init__(
        self,
        *,
        sms_conn_id: str,
        list_ids: Sequence[str | int] | str | int,
        body: str,
        title: str | None = None,
        send_at: datetime | str | None = None,
        campaign_key: str | None = None,
        ledger_conn_id: str = "sqlite_default",
        newsletter_table: str = "sms_newsletters",
        ledger_table: str = "sms_messages",
        sender: str | None = None,
        sms_type: str = "plain",
        device_id: int | None = None,
        sim: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sms_conn_id = sms_conn_id
        self.list_ids = list_ids
        self.body = body
        self.title = title
        self.send_at = send_at
        self.campaign_key = campaign_key
        self.ledger_conn_id = ledger_conn_id
        self.newsletter_table = newsletter_table
        self.ledger_table = ledger_table
        self.sender = sender
        self.sms_type = sms_type
        self.device_id = device_id
        self.sim = sim

    @cached_property
    def hook(self) -> SmsGatewayHook:
        return get_gateway_hook(self.sms_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        key = self.campaign_key or default_campaign_key(context)
        if not self.body or not str(self.body).strip():
            raise ValueError("the newsletter body is empty")
        lists = _list_ids(self.list_ids)
        send_at = _moment(self.send_at)
        self._check_fields()
        table = NewsletterTable(self.ledger_conn_id, self.newsletter_table)
        try:
            table.ensure_table()
            result = self._create_once(context, table, key, lists, send_at)
        finally:
            table.close()
        summary = {
            "campaign_key": key,
            "gateway": self.hook.gateway,
            "list_ids": lists,
            "send_at": send_at.isoformat() if send_at else None,
            **result,
        }
        self.log.info("Newsletter %s: %s", key, summary)
        return summary

    def _check_fields(self) -> None:
        """Fail before anything is recorded or sent when the gateway will refuse the request anyway."""
        gateway = self.hook.gateway
        if gateway == "textboost" and not (self.sender or self.hook.extra("sender_id")):
            raise ValueError(
                "a TextBoost newsletter needs a sender: pass sender or set the connection's sender_id"
            )
        if gateway == "smsgateway24" and self.device_id is None and self.hook.extra("device_id") is None:
            raise ValueError(
                "a SmsGateway24 newsletter needs a phone: pass device_id or set the connection's"
            )

    def _create_once(
        self, context: Context, table: NewsletterTable, key: str, lists: list[str], send_at: datetime | None
    ) -> dict[str, Any]:
        digest = hashlib.sha256(self.body.encode()).hexdigest()
        row = table.get(key)
        if row is not None and (row.body_hash != digest or row.list_ids != ",".join(lists)):
            raise ValueError(
                f"campaign key {key!r} already names a newsletter with another body or other lists "
                f"(table {self.newsletter_table!r}); use a new campaign_key for a new newsletter"
            )
        if row is not None and row.state == CREATED:
            self.log.info("Newsletter %s was created before: %s", key, row.newsletter_id)
            return {"newsletter_id": row.newsletter_id, "recipients": row.recipients, "created": False}
        if row is None:
            values = {
                "gateway": self.hook.gateway,
                "conn_id": self.sms_conn_id,
                "list_ids": ",".join(lists),
                "title": self.title or key,
                "body_hash": digest,
                "send_at": table.ts(send_at),
            }
            if not table.start(key, values):
                raise SmsAmbiguousSendError(f"another try is creating newsletter {key!r} right now")
        elif self.hook.gateway != "smstools":  # an earlier try left it "sending": its answer was lost
            found = self._look_up(key, lists, row)
            if found is None:
                raise self._ambiguous(key)
            table.finish(key, found, None)
            return {"newsletter_id": found, "recipients": None, "created": True}
        try:
            newsletter_id, recipients, details = self._create(context, key, lists, send_at)
        except SmsAmbiguousSendError:
            found = self._look_up(key, lists, table.get(key))
            if found is None:
                raise self._ambiguous(key) from None
            newsletter_id, recipients, details = found, None, {}
        except SmsGatewayError as exc:
            # Refused, or never left: nothing was created (the Smstools ledger keeps its own account).
            if self.hook.gateway != "smstools" and _nothing_created(exc):
                table.forget(key)
            raise
        table.finish(key, newsletter_id, recipients)
        return {"newsletter_id": newsletter_id, "recipients": recipients, "created": True, **details}

    def _create(
        self, context: Context, key: str, lists: list[str], send_at: datetime | None
    ) -> tuple[str, int | None, dict[str, Any]]:
        """Send the newsletter; returns (its id, recipients if known, details for the summary)."""
        hook, gateway = self.hook, self.hook.gateway
        if gateway == "smsgateway24":
            paket_id = hook.save_paket(
                self.title or key, self.body, lists, send_at=send_at, device_id=self.device_id, sim=self.sim
            )
            return paket_id, None, {}
        if gateway == "textboost":
            campaign = hook.send_campaign(
                lists,
                self.body,
                sender_id=self.sender,
                sms_type=self.sms_type,
                schedule_time=send_at,
            )
            return str(campaign["uid"]), campaign.get("recipients"), {}
        if gateway == "smstools":
            return self._group_send(context, key, lists, send_at)
        raise ValueError(f"{gateway} has no newsletter")

    def _group_send(
        self, context: Context, key: str, lists: list[str], send_at: datetime | None
    ) -> tuple[str, int, dict[str, Any]]:
        """Smstools: every distinct number of the groups, through the bulk send's ledgered path."""
        audience: dict[str, dict[str, Any]] = {}
        for list_id in lists:
            for contact in self.hook.list_contacts(list_id):
                audience.setdefault(
                    contact.phone,
                    {"phone": contact.phone, "unsubscribed": int(contact.unsubscribed), "body": self.body},
                )
        send = _GroupSend(
            task_id=f"{self.task_id}__group_send",
            send_at=send_at,
            sms_conn_id=self.sms_conn_id,
            message="{{ body }}",  # the body is already rendered: each row carries it verbatim
            audience=list(audience.values()),
            campaign_key=key,
            ledger_conn_id=self.ledger_conn_id,
            ledger_table=self.ledger_table,
            sender=self.sender,
        )
        send.hook = self.hook  # one session (and one set of credentials) for the whole newsletter
        summary = send.run_campaign(context)
        return key, summary["accepted"], {"send": summary}

    def _look_up(self, key: str, lists: list[str], row: NewsletterRow | None) -> str | None:
        """The id of the newsletter an earlier request created, if the gateway can tell."""
        if self.hook.gateway != "smsgateway24" or row is None:
            return None  # TextBoost has no endpoint that lists campaigns
        since = as_datetime(row.requested_at) - CLOCK_SKEW
        title = self.title or key
        for sms in _sg24_paket_messages(self.hook, since):
            if str(sms.get("pakettitle")) == title and sms.get("paketbody") == self.body:
                self.log.info("Found the newsletter of the lost answer: paket %s", sms["paketid"])
                return str(sms["paketid"])
        return None

    def _ambiguous(self, key: str) -> SmsAmbiguousSendError:
        how = (
            "SmsGateway24 lists no message of it (a paket without messages yet cannot be told apart)"
            if self.hook.gateway == "smsgateway24"
            else f"{self.hook.gateway} cannot list newsletters"
        )
        return SmsAmbiguousSendError(
            f"newsletter {key!r} may or may not have been created: an earlier request lost its answer and "
            f"{how}. Check the gateway's panel; if it is not there, run again with a new campaign_key "
            f"(or delete its row from {self.newsletter_table!r}).",
            gateway=self.hook.gateway,
        )


class _GroupSend(SmsBulkSendOperator):
    """The bulk send with one schedule time for every message (a newsletter's ``send_at``)."""

    def __init__(self, *, send_at: datetime | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._send_at = send_at

    def send_at_in(self, tz: str | None) -> datetime | None:
        return self._send_at


def _sg24_paket_messages(hook: Any, since: datetime) -> list[dict[str, Any]]:
    # StatusReport carries no paket id, so read getallsms' own rows (see the report: a hook method
    # returning pakets would replace this).
    payload = hook.request(hook._get_all_sms_call(begindate=since))
    smss = payload.get("smss") or {}
    rows = smss.values() if isinstance(smss, dict) else smss
    return [sms for sms in rows if sms.get("paketid")]


def _list_ids(value: Sequence[str | int] | str | int) -> list[str]:
    items = value.split(",") if isinstance(value, str) else [value] if isinstance(value, int) else value
    ids = [str(item).strip() for item in items if str(item).strip()]
    if not ids:
        raise ValueError("list_ids is empty: name at least one contact list")
    return ids


def _moment(value: datetime | str | None) -> datetime | None:
    """The schedule time as an aware UTC datetime; None (send now) when unset or not in the future."""
    if value in (None, ""):
        return None
    moment = value if isinstance(value, datetime) else pendulum.parse(str(value), tz="UTC")
    moment = pendulum.instance(moment, tz="UTC").in_timezone("UTC")
    return moment if moment > pendulum.now("UTC") else None


def _nothing_created(exc: SmsGatewayError) -> bool:
    if isinstance(exc, SmsTransientError):
        return not exc.request_sent
    return isinstance(exc, (SmsAuthError, SmsValidationError))
