"""SmsGateway24 (smsgateway24.com): an Android phone sends the messages; the server queues them.

Every endpoint is a POST with form fields under ``/getdata/`` (see gateways.md, section 2). Auth is a
token from ``gettoken`` (connection ``login`` = account email, ``password`` = account password),
cached for the hook's life and fetched again once when the gateway answers a login/token error.
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pendulum

if TYPE_CHECKING:
    from airflow_provider_sms.messages import (
        Contact,
        ContactResult,
        InboundMessage,
        OutboundMessage,
        StatusReport,
    )

from airflow_provider_sms.exceptions import SmsAuthError, SmsValidationError
from airflow_provider_sms.hooks.base import Call, Capabilities, PageParser, ReportBuilder, SmsGatewayHook
from airflow_provider_sms.messages import DeliveryStatus, InvalidPhoneNumberError, SendResult, accepted

# gateways.md, "Status codes" (1 with a future ``timetosend`` is scheduled: see ``_report``).
STATUS_MAP: dict[str, DeliveryStatus] = {
    "1": DeliveryStatus.QUEUED,
    "3": DeliveryStatus.QUEUED,
    "2": DeliveryStatus.SENDING,
    "5": DeliveryStatus.RECEIVED,
    "6": DeliveryStatus.SENT,
    "7": DeliveryStatus.DELIVERED,
    "8": DeliveryStatus.UNDELIVERED,
    "9": DeliveryStatus.FAILED,
    "10": DeliveryStatus.FAILED,
    "11": DeliveryStatus.FAILED,
    "12": DeliveryStatus.FAILED,
    "100": DeliveryStatus.FAILED,
    "101": DeliveryStatus.FAILED,
}
INCOMING = "5"  # the status of an SMS the phone received
NEWSLETTER_TIME_FORMAT = "DD.MM.YYYY HH:mm:ss"  # PHP "d.m.Y H:i:s": PHP's H is the zero-padded hour
# When addalotofsms answers without sms_ids, messages created since (request time - this) are looked up,
# so that a gateway clock a little behind ours does not hide them.
_AUTH_ERROR = re.compile(r"login|password|token|auth", re.IGNORECASE)


class SmsGateway24Hook(SmsGatewayHook):
    """SmsGateway24: token auth, form-field POSTs, messages sent by an Android phone.

    Connection: ``login`` = account email, ``password`` = account password, ``host`` = base URL
    (default ``https://smsgateway24.com/getdata/``); extras ``device_id`` (default phone), ``sim``
    (default slot: 0/1 SMS, 2/3 WhatsApp, 4/5 RCS; default 0) and ``timezone`` (dates sent to and
    read from the gateway; use the account's timezone). Per message, ``OutboundMessage.options``
    may set ``device_id``, ``sim`` and ``urgent``; ``OutboundMessage.sender`` is ignored (the phone's
    SIM is the sender).

    Contacts: SmsGateway24 can only create tags (``savetag``) and contacts (``savecontact``). It has
    no endpoint to update, delete or list contacts, nor to list tags: :meth:`upsert_contacts` saves
    every contact again (see there what an update means), :meth:`delete_contacts`,
    :meth:`list_contacts` and :meth:`find_list` raise ``NotImplementedError``.
    """

    hook_name = "SmsGateway24"
    gateway = "smsgateway24"
    default_base_url = "https://smsgateway24.com/getdata"
    default_path = "/getdata/"
    max_batch_size = 500  # our choice: the docs give no limit for addalotofsms
    phone_with_plus = True
    capabilities = Capabilities(
        list_contacts=False, delete_contacts=False, find_list=False, newsletter="package"
    )
    status_map = STATUS_MAP

    # ---------------------------------------------------------------------------------------------
    # Auth and envelope

    def _login_fields(self) -> dict[str, str]:
        return {"email": self.connection.login or "", "pass": self.connection.password or ""}

    def _token_call(self) -> Call:
        return Call("POST", "gettoken", data=self._login_fields(), authenticated=False)

    def _accept_token(self, payload: Any) -> None:
        token = payload.get("token") if isinstance(payload, dict) else None
        if not token:
            raise SmsAuthError("gettoken answered without a token", gateway=self.gateway)
        self._remember_secret(token)
        self._token = token

    def _authorize(self, call: Call) -> Call:
        data = dict(call.data or {})
        if isinstance(data.get("datajson"), Mapping):  # addalotofsms carries the token inside its JSON
            data["datajson"] = json.dumps({"token": self._token, **data["datajson"]})
            if len(data) == 1:  # the body is this one large field: encoded here, byte for byte as
                # requests and aiohttp would, without urllib's Python loop over every character
                body = b"datajson=" + _quote_plus(data["datajson"])
                return replace(call, data=body, headers={**call.headers, "Content-Type": FORM_TYPE})
        else:
            data["token"] = self._token
        return replace(call, data=data)

    def _raise_for_envelope(self, call: Call, status: int, payload: Any) -> None:
        if status >= 500 or status == 429 or not isinstance(payload, dict):
            return  # transient: base decides about retries
        if str(payload.get("error") or 0) == "0":
            return
        message = str(payload.get("message") or f"{call.path} failed")
        is_auth = status in (401, 403) or _AUTH_ERROR.search(message)
        raise (SmsAuthError if is_auth else SmsValidationError)(message, code=payload.get("error"))

    def _test_call(self) -> Call:
        return self._token_call()

    def get_token(self, refresh: bool = False) -> str:
        """gettoken: the hook's cached token, fetched on first use (or again with ``refresh``)."""
        with self._token_lock:  # not beside a request's own refresh (see _ensure_token)
            if self._token is None or refresh:
                self._accept_token(self.request(self._token_call()))
            return self._token

    # ---------------------------------------------------------------------------------------------
    # Sending

    def add_sms(
        self,
        sendto: str | Sequence[str],
        body: str,
        *,
        customer_id: int | str | None = None,
        send_at: datetime | None = None,
        device_id: int | None = None,
        sim: int | None = None,
        urgent: bool = False,
        file: str | os.PathLike | tuple[str, bytes] | None = None,
    ) -> str:
        """addsms: one message to one or more numbers; returns the ``sms_id`` (the first one's).

        :param customer_id: the message's key (digits), stored as ``customerid``: the message can be
            found again by it (:meth:`get_all_sms`).
        :param file: an image for WhatsApp slots (``sim`` 2/3): a path, or ``(filename, content)``;
            sent as multipart.
        """
        fields = self._sms_fields(sendto, body, device_id, sim, send_at, customer_id, urgent)
        call = Call("POST", "addsms", data=fields, files=_image(file), creates_messages=True)
        return str(self.request_object(call, "sms_id")["sms_id"])

    def sms_to_send(
        self,
        sendto: str | Sequence[str],
        body: str,
        *,
        customer_id: int | str | None = None,
        send_at: datetime | None = None,
        device_id: int | None = None,
        sim: int | None = None,
        urgent: bool = False,
    ) -> str:
        """smstosend: as :meth:`add_sms`, authenticated by email and password (form fields, never the
        URL) instead of a token; returns the ``sms_id``."""
        fields = {
            **self._login_fields(),
            **self._sms_fields(sendto, body, device_id, sim, send_at, customer_id, urgent),
        }
        call = Call("POST", "smstosend", data=fields, authenticated=False, creates_messages=True)
        return str(self.request_object(call, "sms_id")["sms_id"])

    def add_a_lot_of_sms(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        """addalotofsms: many messages in one request; one :class:`SendResult` per message, in order.

        ``key`` goes to ``customerid`` (digits). Numbers that cannot be normalised are rejected without
        being sent. When the answer has no ``sms_ids`` (the real gateway's), the messages are looked up
        with getallsms by ``customerid``; a keyed message the gateway does not list was refused by it.
        """
        rows: list[dict[str, Any]] = []
        results: list[SendResult | None] = []
        shared: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any]]] = {}
        for message in messages:
            try:
                rows.append(self._row(message, shared))
                results.append(None)
            except InvalidPhoneNumberError as exc:
                results.append(SendResult.rejected(message, str(exc), "invalid_phone"))
        sent = [m for m, r in zip(messages, results, strict=True) if r is None]
        if not sent:
            return results
        started = pendulum.now("UTC")
        call = Call("POST", "addalotofsms", data={"datajson": {"smsdata": rows}}, creates_messages=True)
        # The acceptance is the envelope's "error": 0 (an error code was raised by the envelope check).
        payload = self.request_object(call)
        if "error" not in payload:
            raise self.malformed(call, 'no "error" field: the answer does not say the messages were accepted')
        outcomes = iter(self._batch_outcomes(sent, payload, started))
        return [r if r is not None else next(outcomes) for r in results]

    def _row(
        self, message: OutboundMessage, shared: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any]]]
    ) -> dict[str, Any]:
        """:meth:`_sms_fields` of one addalotofsms row, equal to it in value and order; the fields
        around the number and key are built once per text, schedule and options object in
        ``shared`` (a batch's messages share them: per message, only the number is read)."""
        key = message.key or None
        if key is not None and not str(key).isdigit():  # the order of _sms_fields' checks
            raise ValueError(f"SmsGateway24 customerid must be digits, got {key!r}")
        sendto = self.wire_phone(message.to)
        options = message.options
        around = (message.body, message.send_at, id(options) if options else None)
        fields = shared.get(around)
        if fields is None:
            whole = self._sms_fields(
                message.to,
                message.body,
                options.get("device_id"),
                options.get("sim"),
                message.send_at,
                None,
                options.get("urgent"),
            )
            urgent = {"urgent": whole.pop("urgent")} if "urgent" in whole else {}
            del whole["sendto"]
            fields = shared[around] = (whole, urgent)
        head, tail = fields
        if key is None:
            return {"sendto": sendto, **head, **tail}
        return {"sendto": sendto, **head, "customerid": int(key), **tail}

    def _batch_outcomes(
        self, sent: list[OutboundMessage], payload: dict[str, Any], started: datetime
    ) -> list[SendResult]:
        """What the answer says of each message. The real gateway answers only ``"error": 0``: every
        message is accepted, its id unknown (the caller looks the ids up by ``customerid``,
        :meth:`find_sent`); our sandbox also answers ``sms_ids`` aligned with the input."""
        ids = payload.get("sms_ids")
        if isinstance(ids, list) and len(ids) == len(sent):
            errors = _row_errors(payload.get("errors"))
            return [
                accepted(m, str(i))
                if i is not None
                else SendResult.rejected(m, errors.get(n, "refused by the gateway"), None)
                for n, (m, i) in enumerate(zip(sent, ids, strict=True))
            ]
        return [accepted(m) for m in sent]

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        """Send through addalotofsms (see :meth:`add_a_lot_of_sms`)."""
        return self.add_a_lot_of_sms(messages)

    def save_paket(
        self,
        title: str,
        body: str,
        tag_ids: Sequence[int | str],
        *,
        send_at: datetime | None = None,
        device_id: int | None = None,
        sim: int | None = None,
    ) -> str:
        """savepaket: a newsletter to every contact of ``tag_ids`` at ``send_at`` (default: now);
        returns the ``paket_id``. The phone starts it (tap start on the device)."""
        fields = {
            "title": title,
            "body": body,
            "tags": ",".join(str(t) for t in tag_ids),
            "device_id": self._device(device_id),
            "sim": self._sim(sim),
            "time_to_send": self.format_time(send_at or pendulum.now("UTC"), NEWSLETTER_TIME_FORMAT),
        }
        call = Call("POST", "savepaket", data=fields, creates_messages=True)
        return str(self.request_object(call, "paket_id")["paket_id"])

    # ---------------------------------------------------------------------------------------------
    # Statuses

    def get_all_sms(
        self,
        *,
        device_id: int | None = None,
        status: int | None = None,
        begindate: datetime | None = None,
        enddate: datetime | None = None,
        sim: int | None = None,
        customer_id: int | str | None = None,
        phone: str | None = None,
        order_by_desc: bool | None = None,
    ) -> list[StatusReport]:
        """getallsms: every message (incoming included) matching the filters (raw ``status`` code).

        ``timezone`` is always the connection's: the dates are written in it and the gateway reads them so.
        """
        call = self._get_all_sms_call(
            device_id=device_id,
            status=status,
            begindate=begindate,
            enddate=enddate,
            sim=sim,
            customer_id=customer_id,
            phone=phone,
            order_by_desc=order_by_desc,
        )
        payload = self.request(call)
        with self.parsing(call):
            return [self._report(sms, self.report) for sms in _sms_rows(payload)]

    def count_sms(self, **filters: Any) -> int:
        """getallsms with ``onlycount=1``: how many messages match the filters of :meth:`get_all_sms`."""
        call = self._get_all_sms_call(onlycount=True, **filters)
        count = self.request_object(call)
        with self.parsing(call):
            return int(count["count"])

    def _get_all_sms_call(
        self,
        *,
        onlycount: bool = False,
        device_id: int | None = None,
        status: int | None = None,
        begindate: datetime | None = None,
        enddate: datetime | None = None,
        sim: int | None = None,
        customer_id: int | str | None = None,
        phone: str | None = None,
        order_by_desc: bool | None = None,
    ) -> Call:
        fields = {
            "device_id": device_id,
            "status": status,
            "begindate": None if begindate is None else self.format_time(begindate),
            "enddate": None if enddate is None else self.format_time(enddate),
            "sim": sim,
            "customerid": customer_id,
            "phone": None if phone is None else self.wire_phone(phone),
            "orderbydesc": order_by_desc,
            "timezone": self.timezone,
            "onlycount": onlycount or None,
        }
        return Call("POST", "getallsms", data=_form(fields))

    def get_sms_status(self, sms_id: int | str) -> StatusReport:
        """getsmsstatus: one message's status."""
        payload = self.request_object(Call("POST", "getsmsstatus", data={"sms_id": sms_id}))
        return self.report(payload.get("sms_id") or sms_id, payload.get("status"))

    def _status_listing(self, since: datetime | None, build: ReportBuilder) -> tuple[Call, PageParser]:
        def parse(payload: Any, call: Call) -> tuple[list[StatusReport], None]:
            """One getallsms answer (never paged), see :func:`_sms_rows`."""
            return [self._report(sms, build) for sms in _sms_rows(payload)], None

        return self._get_all_sms_call(begindate=since), parse

    def _reply_listing(self, since: datetime | None) -> tuple[Call, PageParser]:
        """getallsms with ``status`` 5 (incoming SMS) from ``since``, one answer (never paged); a row
        of another status (a gateway ignoring the filter) is left out. ``sendto`` is the phone that
        wrote, ``deviceid`` (the recipient) the phone that received it."""

        def parse(payload: Any, call: Call) -> tuple[list[InboundMessage], None]:
            return [
                self.inbound(
                    sms.get("id"),
                    sms.get("sendto"),
                    sms.get("body"),
                    sms.get("created"),
                    sms.get("deviceid"),
                    recipient_is_phone=False,
                )
                for sms in _sms_rows(payload)
                if str(sms.get("status")) == INCOMING
            ], None

        return self._get_all_sms_call(status=int(INCOMING), begindate=since), parse

    def find_sent(
        self, messages: Sequence[OutboundMessage], since: datetime | None = None
    ) -> dict[str, StatusReport]:
        """getallsms by ``customerid``: one listing from ``since`` when given, else one request per key."""
        wanted = {int(m.key): m.key for m in messages if m.key}
        if since is not None:
            listing = self.get_all_sms(begindate=since)
        else:
            listing = [report for key in wanted for report in self.get_all_sms(customer_id=key)]
        return {wanted[int(r.key)]: r for r in listing if r.key and r.key.isdigit() and int(r.key) in wanted}

    def _report(self, sms: Mapping[str, Any], build: ReportBuilder) -> StatusReport:
        raw = sms.get("status")
        send_at = self.parse_time(sms.get("timetosend"))
        scheduled = str(raw) == "1" and send_at is not None and send_at > pendulum.now("UTC")
        return build(
            sms["id"],
            raw,
            status=DeliveryStatus.SCHEDULED if scheduled else None,
            recipient=sms.get("sendto"),
            key=sms.get("customerid"),
            body=sms.get("body"),
            created=sms.get("created"),
            updated=sms.get("senttime"),
        )

    # ---------------------------------------------------------------------------------------------
    # Devices

    def get_all_devices(self) -> list[dict[str, Any]]:
        """getalldevices: the account's phones (id, title, imei, siminfo, delays, subscription...)."""
        devices = self.request_object(Call("POST", "getalldevices")).get("device") or {}
        return list(devices.values() if isinstance(devices, Mapping) else devices)

    def get_device_status(self, device_id: int | None = None) -> dict[str, Any]:
        """getdevicestatus: ``device_id``, ``title`` and ``last_seen`` (aware datetime) of a phone."""
        payload = self.request_object(
            Call("POST", "getdevicestatus", data={"device_id": self._device(device_id)})
        )
        return {
            "device_id": str(payload.get("device_id")),
            "title": payload.get("title"),
            "last_seen": self.parse_time(payload.get("lastseen")),
        }

    # ---------------------------------------------------------------------------------------------
    # Tags and contacts

    def save_tag(self, title: str) -> str:
        """savetag: create a tag (contact list); returns the ``tag_id``."""
        call = Call("POST", "savetag", data={"title": title}, idempotent=False)
        return str(self.request_object(call, "tag_id")["tag_id"])

    def save_contact(self, phone: str, tag_id: int | str, full_name: str | None = None) -> str:
        """savecontact: add ``phone`` to the tag (sent as ``ctag_id``); returns the ``contact_id``."""
        fields = {"phone": self.wire_phone(phone), "ctag_id": tag_id, "fullname": full_name or ""}
        call = Call("POST", "savecontact", data=fields, idempotent=False)
        return str(self.request_object(call, "contact_id")["contact_id"])

    def create_list(self, name: str) -> str:
        """A new tag called ``name`` (savetag)."""
        return self.save_tag(name)

    def upsert_contacts(self, contacts: Sequence[Contact], list_id: str) -> list[ContactResult]:
        """savecontact for every contact, one request each (the gateway has no batch endpoint).

        SmsGateway24 cannot update a contact, so a contact with a ``contact_id`` is saved again:
        the answer's ``contact_id`` (the new record) is returned, and the gateway keeps the earlier
        record too. Unless the gateway merges them, the tag then holds the phone twice (a newsletter
        reaches it twice), or the old number stays in the tag when the phone changed. To apply
        changes exactly, sync into a fresh tag (:meth:`create_list`) and send newsletters to it.
        Invalid numbers and the gateway's refusals are rejects of their own row.
        """
        return [
            self.write_contact(c, lambda c=c: self.save_contact(c.phone, list_id, c.full_name))
            for c in contacts
        ]

    def delete_contacts(self, contact_ids: Iterable[str], list_id: str) -> None:
        raise NotImplementedError(
            "SmsGateway24 has no endpoint to delete contacts: remove them in its web panel, or sync "
            "into a fresh tag (create_list) and send newsletters to that tag."
        )

    def list_contacts(self, list_id: str) -> Iterator[Contact]:
        raise NotImplementedError(
            "SmsGateway24 has no endpoint to list contacts: keep the contact ids upsert_contacts "
            "returns (the contact sync state does), or sync again with full_refresh into a fresh tag."
        )

    def find_list(self, name: str) -> str | None:
        raise NotImplementedError(
            "SmsGateway24 has no endpoint to list tags: pass the tag id, or keep the id create_list returns."
        )

    # ---------------------------------------------------------------------------------------------
    # Field builders

    def _device(self, device_id: int | None) -> int:
        value = device_id if device_id is not None else self.extra("device_id")
        if value is None:
            raise ValueError("SmsGateway24 needs a device_id: set the connection extra or pass one")
        return int(value)

    def _sim(self, sim: int | None) -> int:
        return int(sim if sim is not None else self.extra("sim", 0))

    def _sms_fields(
        self,
        sendto: str | Sequence[str],
        body: str,
        device_id: int | None,
        sim: int | None,
        send_at: datetime | None,
        customer_id: int | str | None,
        urgent: bool | None,
    ) -> dict[str, Any]:
        """The fields of one message, as addsms, smstosend and each addalotofsms row take them."""
        if customer_id is not None and not str(customer_id).isdigit():
            raise ValueError(f"SmsGateway24 customerid must be digits, got {customer_id!r}")
        numbers = [sendto] if isinstance(sendto, str) else sendto
        fields = {
            "sendto": ",".join(self.wire_phone(n) for n in numbers),
            "body": body,
            "device_id": self._device(device_id),
            "sim": self._sim(sim),
            "timetosend": None if send_at is None else self.format_time(send_at),
            "customerid": None if customer_id is None else int(customer_id),
            "urgent": urgent or None,
        }
        return _form(fields)

    # ---------------------------------------------------------------------------------------------
    # Newsletters

    def find_newsletter(self, title: str, body: str, since: datetime) -> str | None:
        """The ``paket_id`` of a savepaket titled ``title`` with ``body``, found by its messages
        created since ``since`` (getallsms rows carry ``paketid``, ``pakettitle`` and ``paketbody``);
        None when none is listed (a paket the phone has not started yet has no messages)."""
        call = self._get_all_sms_call(begindate=since)
        payload = self.request(call)
        with self.parsing(call):
            for sms in _sms_rows(payload):
                if (
                    sms.get("paketid")
                    and str(sms.get("pakettitle")) == title
                    and sms.get("paketbody") == body
                ):
                    return str(sms["paketid"])
        return None


def _sms_rows(payload: Any) -> list[Mapping[str, Any]]:
    """The rows of a getallsms answer: ``smss`` is an object keyed by id (``[]`` when empty). An
    answer without ``smss`` (nor ``count: 0``) raises ``KeyError``: read as empty, it would prove
    messages absent that may be there."""
    smss = payload["smss"] if "smss" in payload or str(payload.get("count")) != "0" else {}
    smss = smss or {}
    return list(smss.values() if isinstance(smss, Mapping) else smss)


def _row_errors(errors: Any) -> dict[int, str]:
    """Our sandbox's per-row errors of addalotofsms (``[{"index", "sendto", "message"}]``), by row."""
    rows = [e for e in errors or () if isinstance(e, Mapping) and isinstance(e.get("index"), int)]
    return {e["index"]: str(e.get("message") or "refused by the gateway") for e in rows}


FORM_TYPE = "application/x-www-form-urlencoded"
_ALWAYS_SAFE = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~"
_ESCAPES = [b"%%%02X" % byte for byte in range(256)]


def _quote_plus(text: str) -> bytes:
    """``urllib.parse.quote_plus(text, safe="")`` (what ``urlencode`` writes of a value), as bytes:
    one ``bytes.replace`` per distinct byte to escape instead of a dictionary look-up per character,
    several times faster on a 500-row addalotofsms body."""
    raw = text.encode("utf-8")
    escaped = set(raw.translate(None, _ALWAYS_SAFE)) - {0x20}
    for byte in sorted(escaped, key=lambda b: b != 0x25):  # "%" first: its escapes add more "%"
        raw = raw.replace(bytes((byte,)), _ESCAPES[byte])
    return raw.replace(b" ", b"+")


def _form(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Form fields without the unset ones; booleans as 0/1."""
    return {k: int(v) if isinstance(v, bool) else v for k, v in fields.items() if v is not None}


def _image(file: str | os.PathLike | tuple[str, bytes] | None) -> dict[str, Any] | None:
    if file is None:
        return None
    if isinstance(file, tuple):
        name, content = file
    else:
        name, content = Path(file).name, Path(file).read_bytes()
    return {"file": (name, content, mimetypes.guess_type(name)[0] or "application/octet-stream")}
