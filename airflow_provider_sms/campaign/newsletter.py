"""Newsletter: one newsletter to whole contact lists at a scheduled time, created once per campaign key.

How a newsletter reaches a list is the hook's declared capability (``hook.capabilities.newsletter``):

- ``"package"`` (SmsGateway24): the hook's ``save_paket`` to tags; the phone sends it.
- ``"campaign"`` (TextBoost): the hook's ``send_campaign`` to contact lists, with a sender id.
- ``"send"`` (Smstools, no campaign object): the lists' contacts are read and sent by the send
  engine (:class:`~airflow_provider_sms.campaign.send.CampaignSend`) through the message ledger,
  one message per distinct number, each scheduled at ``send_at``.

With the rails (:mod:`airflow_provider_sms.campaign.rails`), a gateway-side newsletter first reads
who the lists hold (the gateway's list where it can be read; for SmsGateway24, which cannot list a
tag, the contact sync's state): when any of them opted out or is over the frequency cap, it is
sent through the ledger instead (``"send"``, one message per number, those left out recorded as
``suppressed``), since a package or campaign reaches everyone in the lists. Otherwise the budget
is checked on lists x segments and the gateway's own newsletter goes out. How it was sent is
recorded, so a retry sends it the same way.

The newsletter table records ``sending`` before the request leaves and the gateway's id after: a
retry returns the recorded id. If an earlier try's answer was lost, the newsletter is looked up
where the gateway can list it (:meth:`SmsGatewayHook.find_newsletter`); where it cannot, or finds
nothing, the run fails as ambiguous rather than risk a second newsletter. Airflow-free: the operator
is :class:`~airflow_provider_sms.operators.newsletter.SmsNewsletterOperator`.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import pendulum

from airflow_provider_sms.campaign.rails import Rails, RailSettings
from airflow_provider_sms.campaign.send import CampaignSend, SendSettings
from airflow_provider_sms.campaign.templates import MessageTemplate
from airflow_provider_sms.exceptions import (
    SmsAmbiguousSendError,
    SmsAuthError,
    SmsGatewayError,
    SmsTransientError,
    SmsValidationError,
)
from airflow_provider_sms.hooks.base import SmsGatewayHook
from airflow_provider_sms.messages import (
    CLOCK_SKEW,
    Contact,
    InvalidPhoneNumberError,
    as_datetime,
    as_utc,
    count_segments,
    normalize_phone,
)
from airflow_provider_sms.storage.ledger import MessageLedger
from airflow_provider_sms.storage.newsletter import CREATED, NewsletterRow, NewsletterTable
from airflow_provider_sms.storage.sources import iter_chunks
from airflow_provider_sms.storage.sync_state import ContactSyncState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Kind:
    """What a kind of newsletter needs before anything is recorded, and what a lost answer means.

    :param create: the :class:`Newsletter` method that creates it.
    :param needs: ``(option, connection extra, what)``: the request fails at the gateway unless the
        option or the extra is set.
    :param resumable: a try left ``sending`` is simply run again (its ledger settles each message).
    :param unfound: why a lost answer that no look-up found stays ambiguous (``{name}``, ``{gateway}``).
    """

    create: str
    needs: tuple[str, str, str] | None
    resumable: bool
    unfound: str


KINDS = {
    "package": _Kind(
        "_package",
        ("device_id", "device_id", "a phone: pass device_id or set the connection's device_id"),
        False,
        "{name} lists no message of it (a paket without messages yet cannot be told apart)",
    ),
    "campaign": _Kind(
        "_campaign",
        ("sender", "sender_id", "a sender: pass sender or set the connection's sender_id"),
        False,
        "{gateway} cannot list newsletters",
    ),
    "send": _Kind("_group_send", None, True, "{gateway} cannot list newsletters"),
}


@dataclass(frozen=True)
class NewsletterSpec:
    """What to send: normalised by :meth:`of` (lists as texts, ``send_at`` aware UTC or None)."""

    list_ids: list[str]
    body: str
    title: str | None = None
    send_at: datetime | None = None
    sender: str | None = None
    sms_type: str = "plain"
    device_id: int | None = None
    sim: int | None = None

    @classmethod
    def of(cls, *, list_ids: Sequence[str | int] | str | int, body: str, send_at: Any = None, **kw: Any):
        if not body or not str(body).strip():
            raise ValueError("the newsletter body is empty")
        return cls(list_ids=_list_ids(list_ids), body=body, send_at=_moment(send_at), **kw)


class Newsletter:
    """One newsletter of ``spec`` through ``hook``, recorded in ``table`` (``sms_conn_id`` is written
    beside it); ``ledger_table`` (on ``table_conn_id``) is the message ledger of ``"send"`` newsletters."""

    def __init__(
        self,
        hook: SmsGatewayHook,
        spec: NewsletterSpec,
        *,
        sms_conn_id: str,
        table_conn_id: str,
        table_name: str,
        ledger_table: str = "sms_messages",
        log: logging.Logger | logging.LoggerAdapter = log,
        rails: RailSettings | None = None,
        state_table: str = "sms_contact_sync",
    ) -> None:
        kind = hook.capabilities.newsletter
        if kind not in KINDS:
            raise ValueError(f"{hook.gateway} has no newsletter")
        self.hook, self.spec, self.kind, self.how = hook, spec, kind, KINDS[kind]
        self.sms_conn_id = sms_conn_id
        self.table_conn_id, self.table_name = table_conn_id, table_name
        self.ledger_table = ledger_table
        self.log = log
        self.rail_settings = rails
        self.state_table = state_table
        self.rails: Rails | None = None
        self._members: list[Contact] | None = None

    def run(self, key: str) -> dict[str, Any]:
        """Create the newsletter under ``key`` unless it was; returns its summary."""
        self.check()
        table = NewsletterTable(self.table_conn_id, self.table_name)
        if self.rail_settings is not None:
            self.rails = Rails(
                self.rail_settings,
                campaign_key=key,
                ledger_conn_id=self.table_conn_id,
                ledger_table=self.ledger_table,
                log=self.log,
            )
        try:
            table.ensure_table()
            result = self._create_once(table, key)
        finally:
            table.close()
            if self.rails is not None:
                self.rails.close()
        send_at = self.spec.send_at
        return {
            "campaign_key": key,
            "gateway": self.hook.gateway,
            "list_ids": self.spec.list_ids,
            "send_at": send_at.isoformat() if send_at else None,
            "via": self.kind,
            **result,
        }

    def check(self) -> None:
        """Fail before anything is recorded or sent when the gateway will refuse the request anyway."""
        if self.how.needs is None:
            return
        option, extra, what = self.how.needs
        if getattr(self.spec, option) is None and self.hook.extra(extra) is None:
            raise ValueError(f"a {self.hook.hook_name} newsletter needs {what}")

    def _create_once(self, table: NewsletterTable, key: str) -> dict[str, Any]:
        spec = self.spec
        digest = hashlib.sha256(spec.body.encode()).hexdigest()
        lists = ",".join(spec.list_ids)
        row = table.get(key)
        if row is not None and (row.body_hash != digest or row.list_ids != lists):
            raise ValueError(
                f"campaign key {key!r} already names a newsletter with another body or other lists "
                f"(table {self.table_name!r}); use a new campaign_key for a new newsletter"
            )
        if row is not None:  # a retry goes the way the first try went
            self.kind = row.via or self.kind
            self.how = KINDS[self.kind]
        if row is not None and row.state == CREATED:
            self.log.info("Newsletter %s was created before: %s", key, row.newsletter_id)
            return {"newsletter_id": row.newsletter_id, "recipients": row.recipients, "created": False}
        if row is None:
            self._route(key)
            values = {
                "gateway": self.hook.gateway,
                "conn_id": self.sms_conn_id,
                "list_ids": lists,
                "title": spec.title or key,
                "body_hash": digest,
                "send_at": table.ts(spec.send_at),
                "via": self.kind,
            }
            if not table.start(key, values):
                raise SmsAmbiguousSendError(f"another try is creating newsletter {key!r} right now")
        elif not self.how.resumable:  # an earlier try left it "sending": its answer was lost
            found = self._look_up(key, row)
            if found is None:
                raise self._ambiguous(key)
            table.finish(key, found, None)
            return {"newsletter_id": found, "recipients": None, "created": True}
        try:
            newsletter_id, recipients, details = self._create(key)
        except SmsAmbiguousSendError:
            found = self._look_up(key, table.get(key))
            if found is None:
                raise self._ambiguous(key) from None
            newsletter_id, recipients, details = found, None, {}
        except SmsGatewayError as exc:
            # Refused, or never left: nothing was created (a group send's ledger keeps its own account).
            if not self.how.resumable and _nothing_created(exc):
                table.forget(key)
            raise
        table.finish(key, newsletter_id, recipients)
        return {"newsletter_id": newsletter_id, "recipients": recipients, "created": True, **details}

    def _create(self, key: str) -> tuple[str, int | None, dict[str, Any]]:
        """Send the newsletter; returns (its id, recipients if known, details for the summary)."""
        return getattr(self, self.how.create)(key)

    def _package(self, key: str) -> tuple[str, None, dict[str, Any]]:
        """A gateway-side package to the lists (the hook's ``save_paket``)."""
        spec = self.spec
        paket_id = self.hook.save_paket(  # type: ignore[attr-defined]
            spec.title or key,
            spec.body,
            spec.list_ids,
            send_at=spec.send_at,
            device_id=spec.device_id,
            sim=spec.sim,
        )
        return paket_id, None, {}

    def _campaign(self, key: str) -> tuple[str, int | None, dict[str, Any]]:
        """A gateway-side campaign to the lists (the hook's ``send_campaign``)."""
        spec = self.spec
        campaign = self.hook.send_campaign(  # type: ignore[attr-defined]
            spec.list_ids,
            spec.body,
            sender_id=spec.sender,
            sms_type=spec.sms_type,
            schedule_time=spec.send_at,
        )
        return str(campaign["uid"]), campaign.get("recipients"), {}

    def _route(self, key: str) -> None:
        """Decide how a new newsletter goes out (:attr:`kind`): the gateway's own newsletter, unless
        the rails must leave someone in the lists out, then through the ledger. Checks the budget
        of a gateway-side newsletter; a ``"send"`` checks its own in the send engine."""
        rails = self.rails
        if rails is None or self.kind == "send":
            return
        settings = rails.settings
        leaving_out = settings.frequency_cap is not None or rails.any_opted_out()
        if not leaving_out and not settings.budget_applies(self.hook):
            return
        members = self.members()
        if members is None:
            raise ValueError(
                f"{self.hook.gateway} cannot list the contacts of list(s) {', '.join(self.spec.list_ids)}, "
                f"and the contact sync's state table {self.state_table!r} (connection {self.table_conn_id!r}) "
                "has no complete record of them, so the opt-outs, the frequency cap and max_cost cannot be "
                "checked: sync the lists with SmsContactSyncOperator (state on the same connection), or "
                "turn those checks off (honour_opt_outs=False...) if the lists are known to be clean"
            )
        left_out = rails.exclusions([c.phone for c in members]) if leaving_out else {}
        if left_out:
            self.log.info(
                "%d of the %d numbers in the lists are left out (%s): the newsletter goes through the ledger, "
                "one message per number, instead of a %s %s",
                len(left_out),
                len(members),
                ", ".join(f"{n} {reason}" for reason, n in sorted(Counter(left_out.values()).items())),
                self.hook.gateway,
                self.kind,
            )
            self.kind, self.how = "send", KINDS["send"]
            return
        segments = len(members) * count_segments(self.spec.body).segments
        rails.check_budget(self.hook, segments, f"newsletter {key!r} to {len(members)} numbers")

    def members(self) -> list[Contact] | None:
        """Every distinct number of the lists (E.164), read once: from the gateway where it lists
        contacts, else from the contact sync's state (None when it has no complete record)."""
        if self._members is not None:
            return self._members
        found: dict[str, Contact] = {}
        if self.hook.capabilities.list_contacts:
            for list_id in self.spec.list_ids:
                for contact in self.hook.list_contacts(list_id):
                    phone = _e164(contact.phone)
                    found.setdefault(phone, replace(contact, phone=phone))
        else:
            state = ContactSyncState(self.table_conn_id, self.state_table, gateway=self.hook.gateway)
            try:
                for list_id in self.spec.list_ids:
                    phones = state.phones(list_id)
                    if phones is None:
                        return None
                    found.update((phone, Contact(phone)) for phone in phones if phone not in found)
            finally:
                state.close()
        self._members = list(found.values())
        return self._members

    def _group_send(self, key: str) -> tuple[str, int, dict[str, Any]]:
        """Every distinct number of the lists, through the bulk send's ledgered path."""
        members = self.members()
        if members is None:
            raise ValueError(f"the numbers of {self.hook.gateway} list(s) {self.spec.list_ids} are not known")
        audience = [
            {"phone": c.phone, "unsubscribed": int(c.unsubscribed), "body": self.spec.body} for c in members
        ]
        summary = self._send(audience, key)
        return key, summary["accepted"], {"send": summary}

    def _send(self, audience: list[dict[str, Any]], key: str) -> dict[str, Any]:
        """The audience through the send engine and the ledger (``table_conn_id``), every message
        scheduled at ``send_at``; the send's summary."""
        ledger = MessageLedger(
            self.table_conn_id, self.ledger_table, gateway=self.hook.gateway, sms_conn_id=self.sms_conn_id
        )
        spec = self.spec
        options = {"device_id": spec.device_id, "sim": spec.sim}  # SmsGateway24's phone, if named
        settings = SendSettings(
            batch_size=self.hook.batch_size,
            region=self.hook.extra("default_region"),
            sender=spec.sender,
            ledger_table=self.ledger_table,
            message_options={k: v for k, v in options.items() if v is not None},
            cost_per_segment=self.rail_settings.cost_per_segment if self.rail_settings else None,
        )
        send_at = spec.send_at
        template = MessageTemplate("{{ body }}")  # each row carries the text verbatim
        engine = CampaignSend(
            settings, self.hook, key, template, set(), ledger, lambda _zone: send_at, self.log, self.rails
        )
        return engine.run(iter_chunks(audience))  # closes the ledger

    def _look_up(self, key: str, row: NewsletterRow | None) -> str | None:
        """The id of the newsletter an earlier request created, if the gateway can tell."""
        if row is None:
            return None
        since = as_datetime(row.requested_at) - CLOCK_SKEW
        found = self.hook.find_newsletter(self.spec.title or key, self.spec.body, since)
        if found is not None:
            self.log.info("Found the newsletter of the lost answer: %s", found)
        return found

    def _ambiguous(self, key: str) -> SmsAmbiguousSendError:
        how = self.how.unfound.format(name=self.hook.hook_name, gateway=self.hook.gateway)
        return SmsAmbiguousSendError(
            f"newsletter {key!r} may or may not have been created: an earlier request lost its answer and "
            f"{how}. Check the gateway's panel; if it is not there, run again with a new campaign_key "
            f"(or delete its row from {self.table_name!r}).",
            gateway=self.hook.gateway,
        )


def _e164(phone: Any) -> str:
    """A listed contact's number in E.164 (gateways write it without the ``+``)."""
    text = str(phone or "").strip()
    try:
        return normalize_phone(text if text.startswith("+") else f"+{text}")
    except InvalidPhoneNumberError:
        return text


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
    moment = as_utc(moment)
    return moment if moment > pendulum.now("UTC") else None


def _nothing_created(exc: SmsGatewayError) -> bool:
    if isinstance(exc, SmsTransientError):
        return not exc.request_sent
    return isinstance(exc, (SmsAuthError, SmsValidationError))
