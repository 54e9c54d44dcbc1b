"""Smstools (smsgatewayapi.com): the v1 JSON API of gateways.md, section 1.

Every request carries ``X-Client-Id`` / ``X-Client-Secret`` (connection ``login`` / ``password``);
bodies are JSON; errors are ``{"error": <int>, "errorMsg": "<text>"}``; lists take ``limit`` (1-2000)
and ``page`` (from 1) and are read lazily, page by page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pendulum

if TYPE_CHECKING:
    from airflow_provider_sms.messages import InboundMessage, StatusReport

from airflow_provider_sms.exceptions import (
    SmsAmbiguousSendError,
    SmsAuthError,
    SmsGatewayError,
    SmsValidationError,
)
from airflow_provider_sms.hooks.base import (
    Call,
    Capabilities,
    PageParser,
    ReportBuilder,
    SmsGatewayHook,
    chunked,
    parse_amount,
)
from airflow_provider_sms.messages import (
    Contact,
    ContactResult,
    Credit,
    DeliveryStatus,
    OutboundMessage,
    SendResult,
    accepted,
    as_utc,
    body_hash,
)

# gateways.md, "Smstools status strings" (case-insensitive; anything else is unknown, raw value kept).
STATUS_MAP: dict[str, DeliveryStatus] = {
    "delivered": DeliveryStatus.DELIVERED,
    "sent": DeliveryStatus.SENT,
    "submitted": DeliveryStatus.SENT,
    "buffered": DeliveryStatus.SENT,
    "queued": DeliveryStatus.QUEUED,
    "pending": DeliveryStatus.QUEUED,
    "scheduled": DeliveryStatus.QUEUED,
    "undelivered": DeliveryStatus.UNDELIVERED,
    "expired": DeliveryStatus.UNDELIVERED,
    "failed": DeliveryStatus.FAILED,
    "error": DeliveryStatus.FAILED,
    "rejected": DeliveryStatus.REJECTED,
    "blocked": DeliveryStatus.REJECTED,
    "unsubscribed": DeliveryStatus.REJECTED,
}
DATE_FORMAT = "YYYY-MM-DD HH:mm"  # the API's yyyy-MM-dd HH:mm
PAGE_LIMIT = 2000  # the largest page the API serves
INVALID_CREDENTIALS = 104  # other codes (103 invalid phone, 118 text too long...) are validation errors
# Refusals about a request's numbers or text (no message 102, invalid number 103, destination
# missing 106, too long 118): they reject its messages. Any other refusal (sender, date, a wrong
# URL...) is about the request and fails the send, leaving the messages to be sent once it is fixed.
MESSAGE_ERRORS = frozenset({"102", "103", "106", "118"})
NOT_ENOUGH_CREDITS = 108
# OutboundMessage.options passed on to message/send; other gateways' options are ignored.
SEND_OPTIONS = ("test", "subid")
CONTACT_EXTRA_FIELDS = ("email", *(f"extra{i}" for i in range(1, 9)))
_NUMBER = re.compile(r"\+?\d{5,}")
Outcome = tuple[str | None, str | None, str | None]  # (gateway id, error, error code)


class SmstoolsHook(SmsGatewayHook):
    """Smstools: header auth, JSON bodies, paged lists.

    Connection: ``login`` = client id, ``password`` = client secret, ``host`` = base URL (default
    ``https://api.smsgatewayapi.com``); extras ``sender_id`` (default sender), ``timezone`` (of the
    dates sent and read, default UTC), ``default_region``. ``OutboundMessage.options`` may set
    ``test`` and ``subid``.

    Idempotency: ``reference`` is one per request, while a batch request carries many messages.
    :meth:`send_batch` puts the key of the first message of each request in its ``reference``
    (a single message thus carries its own key), and :meth:`find_sent` identifies a message in the
    logging by its own key, else by recipient and text under the key of another message being looked
    up, else by recipient and text alone (see there).

    Contacts are global at Smstools and belong to one group (``groupid``): ``list_id`` is a group id.

    Answers are read in either style seen in the wild: ids (``ID``, ``groupid``, ``IDs``) as integers
    or strings (returned as strings), flags (``unsubscribed``) as 0/1 or true/false, amounts
    (``credits``, ``use``) as numbers or decimal strings.
    """

    hook_name = "Smstools"
    gateway = "smstools"
    default_base_url = "https://api.smsgatewayapi.com"
    max_batch_size = 1000  # our choice: the docs give no limit for an array ``to``
    capabilities = Capabilities(
        newsletter="send", credit="currency", contact_unsubscribed=True, opt_out_list=True
    )
    status_map = STATUS_MAP

    # ---------------------------------------------------------------------------------------------
    # Auth and envelope

    def _authorize(self, call: Call) -> Call:
        headers = {
            **call.headers,
            "X-Client-Id": self.connection.login or "",
            "X-Client-Secret": self.connection.password or "",
        }
        return replace(call, headers=headers)

    def _raise_for_envelope(self, call: Call, status: int, payload: Any) -> None:
        if status >= 500 or status == 429 or not isinstance(payload, dict):
            return  # transient or not an envelope: base decides
        code = payload.get("error")
        if code in (None, 0, "0", False) or isinstance(code, (list, dict)):
            return
        message = str(payload.get("errorMsg") or f"{call.method} {call.path} failed")
        if status in (401, 403) or str(code) == str(INVALID_CREDENTIALS):
            raise SmsAuthError(message, code=code)
        if str(code) == str(NOT_ENOUGH_CREDITS):  # may pass once credits are bought: not a validation
            raise SmsGatewayError(message, code=code)
        raise SmsValidationError(message, code=code)

    def _test_call(self) -> Call:
        return Call("GET", "v1/balance")

    # ---------------------------------------------------------------------------------------------
    # Messages

    def send_message(
        self,
        to: str | Sequence[str],
        message: str,
        *,
        sender: str | None = None,
        send_at: datetime | None = None,
        reference: str | None = None,
        test: bool = False,
        subid: str | None = None,
    ) -> str | list[str | None]:
        """POST /v1/message/send: the ``messageid``, or for a list ``to`` the ``messageids`` in its
        order (``None`` for a number the gateway refused)."""
        return self._send(
            "v1/message/send", self._send_body(to, message, sender, send_at, reference, test, subid)
        )

    def send_voice(
        self,
        to: str | Sequence[str],
        message: str,
        *,
        gender: str | None = None,
        language: str | None = None,
        sender: str | None = None,
        send_at: datetime | None = None,
        reference: str | None = None,
        test: bool = False,
    ) -> str | list[str | None]:
        """POST /v1/voice/send: text to speech. ``gender`` (Female/Male), ``language`` (en/nl/fr/de)
        and the sender (``sender``, else the connection extra ``sender_id``) are optional and sent
        only when given: the gateway then uses its own defaults."""
        body = self._send_body(to, message, sender, send_at, reference, test, sender_required=False)
        voice = {"gender": gender, "language": language}
        return self._send("v1/voice/send", {**body, **{k: v for k, v in voice.items() if v}})

    def _send_body(
        self,
        to: str | Sequence[str],
        message: str,
        sender: str | None = None,
        send_at: datetime | None = None,
        reference: str | None = None,
        test: bool = False,
        subid: str | None = None,
        *,
        sender_required: bool = True,
        wired: bool = False,
    ) -> dict[str, Any]:
        """The JSON body of a send; ``wired``: ``to`` is already in the gateway's format
        (:meth:`wire_phone` of each number), else each number is normalised here."""
        sender = sender or self.extra("sender_id")
        if not sender and sender_required:
            raise ValueError("Smstools needs a sender: set the connection extra sender_id or pass one")
        body: dict[str, Any] = {
            "message": message,
            "to": to
            if wired
            else self.wire_phone(to)
            if isinstance(to, str)
            else [self.wire_phone(n) for n in to],
            "sender": sender or None,
            "date": None if send_at is None else self.format_time(send_at, DATE_FORMAT),
            "reference": reference,
            "test": test or None,
            "subid": subid,
        }
        return {k: v for k, v in body.items() if v is not None}

    def _send(self, path: str, body: dict[str, Any]) -> str | list[str | None]:
        call = Call("POST", path, json=body, creates_messages=True)
        payload = self._acceptance(call, self.request(call))
        if "messageids" in payload:
            return [None if i is None else str(i) for i in payload["messageids"]]
        return str(payload["messageid"])

    def _acceptance(self, call: Call, payload: Any) -> dict[str, Any]:
        """A send answer that names its messages (``messageid``, or a ``messageids`` list); anything
        else is unreadable, and the messages may have been stored (ambiguous)."""
        payload = self.expect_object(call, payload)
        if not isinstance(payload.get("messageids"), list) and payload.get("messageid") in (None, ""):
            raise self.malformed(call, "no messageid or messageids in the answer")
        return payload

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        """POST /v1/message/send with an array ``to``: one request per distinct (text, sender,
        ``send_at``, options), results in input order.

        Numbers that cannot be normalised, and numbers the gateway answers ``null`` for, are rejects
        of their own rows. A ``send_at`` in the past is sent now. A request refused for its numbers or
        text (:data:`MESSAGE_ERRORS`) rejects its rows; any other refusal is raised. Any other failure after an earlier request of the batch
        was accepted raises :class:`SmsAmbiguousSendError`: look the batch up with :meth:`find_sent`.
        """
        results: list[SendResult | None] = [None] * len(messages)
        groups: dict[tuple[Any, ...], list[tuple[int, str]]] = {}
        now = pendulum.now("UTC")
        chosen: dict[int, tuple[tuple[str, Any], ...]] = {}  # per options mapping: a batch shares one
        for index, phone in self.wire_numbers(messages, results):
            m = messages[index]
            future = m.send_at is not None and as_utc(m.send_at) > now
            send_at = m.send_at if future else None
            options = chosen.get(id(m.options))
            if options is None:
                options = chosen[id(m.options)] = tuple(
                    (k, m.options[k]) for k in SEND_OPTIONS if k in m.options
                )
            groups.setdefault((m.body, m.sender, send_at, options), []).append((index, phone))
        requests = []  # every body first: a missing sender fails before anything leaves
        for (body, sender, send_at, options), rows in groups.items():
            reference = next((messages[i].key for i, _ in rows if messages[i].key), None)
            # The numbers as wire_numbers wrote them: wire_phone(m.to), not normalised a second time.
            to = [phone for _, phone in rows]
            body_ = self._send_body(to, body, sender, send_at, reference, wired=True, **dict(options))
            requests.append((rows, body_))
        sent_before = False
        for rows, request in requests:
            call = Call("POST", "v1/message/send", json=request, creates_messages=True)
            try:
                payload = self._acceptance(call, self.request(call))
            except SmsGatewayError as exc:
                if isinstance(exc, SmsValidationError) and str(exc.code) in MESSAGE_ERRORS:
                    for index, _ in rows:  # refused for its number or text: nothing was stored
                        results[index] = SendResult.rejected(messages[index], exc.message, str(exc.code))
                    continue
                if not sent_before or isinstance(exc, SmsAmbiguousSendError):
                    raise
                raise SmsAmbiguousSendError(
                    f"a batch failed after part of it was accepted ({exc}); look it up before resending",
                    gateway=self.gateway,
                ) from exc
            sent_before = True
            with self.parsing(call):
                outcomes = _send_outcomes([phone for _, phone in rows], payload)
            for (index, _), (message_id, error, code) in zip(rows, outcomes, strict=True):
                m = messages[index]
                results[index] = (
                    accepted(m, message_id)
                    if message_id
                    else SendResult.rejected(m, error or "refused by the gateway", code)
                )
        return results  # type: ignore[return-value]

    def find_sent(
        self, messages: Sequence[OutboundMessage], since: datetime | None = None
    ) -> dict[str, StatusReport]:
        """GET /v1/message/logging from ``since`` (and GET /v1/outbox for scheduled messages not found).

        A logged message is one of ``messages`` when its ``reference`` is that message's key and the
        recipient matches; else when recipient and text match and its ``reference`` is the key of
        another of ``messages`` (the first message of its batch request); else, as a last resort,
        when recipient and text match (a message of another batch or campaign with the same text to
        the same number after ``since`` counts too: a look-up errs towards not sending twice).
        Each report found carries the key it was found for.
        """
        wanted = {m.key: m for m in messages if m.key}
        found: dict[str, tuple[int, StatusReport]] = {}
        self._match(self.iter_statuses(since), wanted, found)
        if any(m.send_at and k not in found for k, m in wanted.items()):
            self._match(self.get_outbox(), wanted, found)
        return {key: replace(report, key=key) for key, (_, report) in found.items()}

    @staticmethod
    def _match(
        reports: Iterable[StatusReport],
        wanted: Mapping[str, OutboundMessage],
        found: dict[str, tuple[int, StatusReport]],
    ) -> None:
        by_text = {(m.to, m.text_hash): key for key, m in wanted.items()}
        for report in reports:
            own = wanted.get(report.key or "")
            if own is not None and own.to == report.recipient:
                key, score = report.key, 2
            else:
                key = by_text.get((report.recipient, body_hash(report.body or "")))
                score = 1 if own is not None else 0
            if key is not None and score > found.get(key, (-1, None))[0]:
                found[key] = (score, report)

    def message_logging(self, since: datetime | None = None) -> Iterator[StatusReport]:
        """GET /v1/message/logging: sent messages with their status (created after ``since``), paged;
        ``key`` is the request's ``reference`` (for a batch request, its first message's key)."""
        return self.iter_statuses(since)

    def _status_listing(self, since: datetime | None, build: ReportBuilder) -> tuple[Call, PageParser]:
        """The logging, newest pages first when ``since`` is given: the API has no date filter, so an
        oldest-first listing is read from its last page backwards, a newest-first one until ``since``."""
        walk: dict[str, bool | None] = {}
        since = None if since is None else as_utc(since)

        def parse(payload: Any, call: Call) -> tuple[list[StatusReport], Call | None]:
            rows = _items(payload, "messages")
            reports = [self._logged(row, build) for row in rows]
            page, last = int(call.params["page"]), _last_page(payload, call, len(rows))
            if since is None:
                return reports, self.with_params(call, page=page + 1) if page < last else None
            recent = [r for r in reports if r.created_at is None or r.created_at >= since]
            older_seen = len(recent) < len(reports)
            if page == 1:
                walk["order"] = _ascending(rows)
            if walk["order"]:  # oldest first: page 1, then from the last page back to 2
                target = last if page == 1 else page - 1
                more = target > 1 and (page == 1 or not older_seen)
            else:  # newest first: until a page reaches back before since (unknown order: every page)
                target = page + 1
                more = page < last and not (older_seen and walk["order"] is False)
            return recent, self.with_params(call, page=target) if more else None

        return Call("GET", "v1/message/logging", params={"limit": PAGE_LIMIT, "page": 1}), parse

    def _logged(self, row: Mapping[str, Any], build: ReportBuilder) -> StatusReport:
        response = row.get("response")
        if response.__class__ is not dict and not isinstance(response, Mapping):
            response = {}
        return build(
            row.get("message_ID") or row.get("ID"),
            row.get("status", response.get("status")),
            recipient=row.get("to"),
            key=row.get("reference", response.get("reference")),
            body=row.get("message"),
            created=row.get("date"),
            updated=response.get("statusdate"),
        )

    def get_outbox(self) -> Iterator[StatusReport]:
        """GET /v1/outbox: scheduled messages not due yet (status ``scheduled``, ``updated_at`` = the
        scheduled time, ``message_id`` = the ``messageid``; cancel them by it), paged."""

        def report(row: Mapping[str, Any]) -> StatusReport:
            return self.report(
                row.get("messageid") or row.get("ID"),
                "scheduled",
                status=DeliveryStatus.SCHEDULED,
                recipient=row.get("to"),
                key=row.get("reference"),
                body=row.get("message"),
                updated=row.get("date"),
            )

        return self._paged("v1/outbox", "messages", report)

    def cancel_scheduled(self, outbox_id: str | int) -> None:
        """DELETE /v1/outbox/{id}: cancel a scheduled message (by its outbox ``ID`` or ``messageid``)."""
        self.request(Call("DELETE", f"v1/outbox/{outbox_id}"))

    def get_inbox(self) -> Iterator[dict[str, Any]]:
        """GET /v1/message/inbox: replies received, as the gateway lists them, paged."""
        return self._paged("v1/message/inbox", "messages", dict)

    def _reply_listing(self, since: datetime | None) -> tuple[Call, PageParser]:
        """GET /v1/message/inbox, every page (the API has no date filter): ``ID``, ``sender`` (the
        phone that wrote), ``receiver`` (our number), ``message``, ``date``."""

        def reply(row: Mapping[str, Any]) -> InboundMessage:
            return self.inbound(
                row.get("ID", row.get("id")),
                row.get("sender", row.get("from")),
                row.get("message"),
                row.get("date"),
                row.get("receiver", row.get("to")),
            )

        return self._listing("v1/message/inbox", "messages", reply)

    # ---------------------------------------------------------------------------------------------
    # Account

    def get_balance(self) -> dict[str, Any]:
        """GET /v1/balance: ``credits`` (a decimal string), ``currency``, ``use``."""
        return self.request_object(Call("GET", "v1/balance"))

    def get_credits(self) -> Decimal:
        """The ``credits`` of GET /v1/balance as a number (the gateway writes a string or a number)."""
        call = Call("GET", "v1/balance")
        payload = self.request_object(call, "credits")
        with self.parsing(call):
            return parse_amount(payload["credits"])

    def get_credit(self) -> Credit:
        """The account's credits (money, in the balance's ``currency``), from GET /v1/balance."""
        call = Call("GET", "v1/balance")
        payload = self.request_object(call, "credits")
        with self.parsing(call):
            currency = payload.get("currency")
            return Credit(
                float(parse_amount(payload["credits"])), "currency", str(currency) if currency else None
            )

    def get_account(self) -> dict[str, Any]:
        """GET /v1/account: username, email, credits, currency, webhookurl, ..."""
        return self.request_object(Call("GET", "v1/account"))

    # ---------------------------------------------------------------------------------------------
    # Contacts

    def add_contact(self, contact: Contact, group_id: str | int) -> str:
        """POST /v1/contact with one object: the new contact's ID."""
        call = Call("POST", "v1/contact", json=self._contact_fields(contact, group_id), idempotent=False)
        ids = self.request_object(call, "ID")["ID"]
        return str(ids[0] if isinstance(ids, list) else ids)

    def add_contacts(self, contacts: Sequence[Contact], group_id: str | int) -> list[ContactResult]:
        """POST /v1/contact with an array: one result per contact, in order.

        The answer lists the new ``IDs`` of the stored rows and one error per refused row, without
        an index: errors are matched to rows by the phone number they name, the ``IDs`` to the
        remaining rows in order. Should the counts not add up, the group is read to match the new
        IDs by phone. Numbers that cannot be normalised are rejected without being sent.
        """
        results: list[ContactResult | None] = [None] * len(contacts)
        rows = self.phone_rows(
            contacts, lambda c: self._contact_fields(c, group_id), self.invalid_contact, results
        )
        if rows:
            call = Call("POST", "v1/contact", json=[fields for _, fields in rows], idempotent=False)
            payload = self.request_object(call)
            ids = payload.get("IDs", payload.get("ID")) or []
            phones = [fields["phone"] for _, fields in rows]
            outcomes = _contact_outcomes(phones, ids, payload.get("errors"))
            if outcomes is None:
                outcomes = self._outcomes_by_group(phones, ids, payload.get("errors"), group_id)
            for (index, _), (contact_id, error, code) in zip(rows, outcomes, strict=True):
                c = contacts[index]
                results[index] = (
                    ContactResult(c, True, contact_id=contact_id)
                    if contact_id
                    else ContactResult(c, False, error=error, error_code=code)
                )
        return results  # type: ignore[return-value]

    def _outcomes_by_group(
        self, phones: list[str], ids: list[Any], errors: Any, group_id: str | int
    ) -> list[Outcome]:
        """Match the new ``IDs`` to rows by phone, reading the group (when the counts do not add up)."""
        new = {str(i) for i in ids}
        by_phone = {
            self.to_wire_phone(c.phone): c.contact_id
            for c in self.get_group_contacts(group_id)
            if c.contact_id in new
        }
        refused = "; ".join(str(e.get("errorMsg")) for e in errors or () if isinstance(e, Mapping))
        return [
            (by_phone[p], None, None) if p in by_phone else (None, refused or "refused by the gateway", None)
            for p in phones
        ]

    def update_contact(self, contact: Contact, group_id: str | int | None = None) -> Contact:
        """PATCH /v1/contact: write every field of ``contact`` (found by its ``contact_id``)."""
        if not contact.contact_id:
            raise ValueError("update_contact needs a contact with a contact_id")
        body = {
            "ID": _id(contact.contact_id),
            "firstname": contact.first_name,
            "lastname": contact.last_name,
            **self._contact_fields(contact, group_id),
        }
        call = Call("PATCH", "v1/contact", json=body)
        return self._contact(self.request_object(call))

    def delete_contact(self, contact_id: str | int) -> None:
        """DELETE /v1/contact/{id}."""
        self.request(Call("DELETE", f"v1/contact/{contact_id}"))

    def get_contacts(self) -> Iterator[Contact]:
        """GET /v1/contact: every contact of the account, paged."""
        return self._paged("v1/contact", "contacts", self._contact)

    def search_contacts(self, keyword: str) -> Iterator[Contact]:
        """GET /v1/contact/search/{keyword}: contacts matching ``keyword``, paged."""
        return self._paged(f"v1/contact/search/{keyword}", "contacts", self._contact)

    def _contact_fields(self, contact: Contact, group_id: str | int | None) -> dict[str, Any]:
        fields = {
            **{k: v for k, v in contact.extra.items() if v is not None},
            "phone": self.wire_phone(contact.phone),
            "groupid": None if group_id is None else _id(group_id),
            "firstname": contact.first_name,
            "lastname": contact.last_name,
            "birthday": contact.birthday.isoformat() if contact.birthday else None,
            "unsubscribed": int(bool(contact.unsubscribed)),
        }
        return {k: v for k, v in fields.items() if v is not None}

    def _contact(self, row: Mapping[str, Any]) -> Contact:
        birthday = row.get("birthday")
        return Contact(
            phone=self.from_wire_phone(row.get("phone")),
            first_name=row.get("firstname") or None,
            last_name=row.get("lastname") or None,
            birthday=date.fromisoformat(str(birthday)[:10]) if birthday else None,
            unsubscribed=_flag(row.get("unsubscribed")),
            extra={k: row[k] for k in CONTACT_EXTRA_FIELDS if row.get(k) not in (None, "")},
            contact_id=None if row.get("ID") is None else str(row["ID"]),
        )

    # ---------------------------------------------------------------------------------------------
    # Groups

    def create_group(self, name: str) -> str:
        """POST /v1/groups: the new group's ID."""
        ids = self.request_object(Call("POST", "v1/groups", json={"name": name}, idempotent=False), "ID")[
            "ID"
        ]
        return str(ids[0] if isinstance(ids, list) else ids)

    def rename_group(self, group_id: str | int, name: str) -> dict[str, Any]:
        """PATCH /v1/groups: the renamed group."""
        return self.request_object(Call("PATCH", "v1/groups", json={"ID": _id(group_id), "name": name}))

    def get_groups(self) -> list[dict[str, Any]]:
        """GET /v1/groups: every group (``id``, ``name``, ``locked``), not paged."""
        call = Call("GET", "v1/groups")
        payload = self.request(call)
        with self.parsing(call):
            return list(payload if isinstance(payload, list) else _items(payload, "groups"))

    def get_group(self, group_id: str | int) -> dict[str, Any]:
        """GET /v1/groups/{id}: the ``groupinfo`` (``ID``, ``name``, ``locked``) plus ``total``, the
        number of its contacts (read them with :meth:`get_group_contacts`)."""
        call = Call("GET", f"v1/groups/{group_id}", params={"limit": 1, "page": 1})
        payload = self.request_object(call)
        return {**payload.get("groupinfo", {}), "total": payload.get("total")}

    def get_group_contacts(self, group_id: str | int) -> Iterator[Contact]:
        """GET /v1/groups/{id}: the group's contacts, paged."""
        return self._paged(f"v1/groups/{group_id}", "contacts", self._contact)

    def delete_group(self, group_id: str | int) -> None:
        """DELETE /v1/groups/{id}: the group and its contacts."""
        self.request(Call("DELETE", f"v1/groups/{group_id}"))

    # ---------------------------------------------------------------------------------------------
    # The neutral contact interface

    def upsert_contacts(self, contacts: Sequence[Contact], list_id: str) -> list[ContactResult]:
        """New contacts in batches (:meth:`add_contacts`); known ones one PATCH each (no batch update)."""
        results: dict[int, ContactResult] = {}
        new = [(i, c) for i, c in enumerate(contacts) if not c.contact_id]
        for batch in chunked(new, self.batch_size):
            outcomes = self.add_contacts([c for _, c in batch], list_id)
            results.update((i, r) for (i, _), r in zip(batch, outcomes, strict=True))

        def update(contact: Contact) -> str | None:
            self.update_contact(contact, list_id)
            return contact.contact_id

        for index, contact in enumerate(contacts):
            if contact.contact_id:
                results[index] = self.write_contact(contact, lambda c=contact: update(c))
        return [results[i] for i in range(len(contacts))]

    def delete_contacts(self, contact_ids: Iterable[str], list_id: str) -> None:
        """DELETE /v1/contact/{id} for each (no batch delete); a contact already gone (HTTP 404) is
        fine. Contacts belong to one group at Smstools, so ``list_id`` is not needed."""
        self.delete_each(contact_ids, self.delete_contact)

    def list_contacts(self, list_id: str) -> Iterator[Contact]:
        """The contacts of group ``list_id`` (:meth:`get_group_contacts`)."""
        return self.get_group_contacts(list_id)

    def create_list(self, name: str) -> str:
        """A new group (:meth:`create_group`)."""
        return self.create_group(name)

    def find_list(self, name: str) -> str | None:
        """The ID of the first group called ``name`` (:meth:`get_groups`)."""
        for group in self.get_groups():
            if str(group.get("name", "")).strip() == name.strip():
                return str(group.get("id", group.get("ID")))
        return None

    # ---------------------------------------------------------------------------------------------
    # Tools

    def get_sender_ids(self) -> list[dict[str, Any]]:
        """GET /v1/senderids: the account's sender ids, as the gateway lists them."""
        call = Call("GET", "v1/senderids")
        payload = self.request(call)
        with self.parsing(call):
            return [row for row in _items(payload, "senderids") if isinstance(row, Mapping)]

    def iter_opt_outs(self) -> Iterator[dict[str, Any]]:
        """GET /v1/optouts/list: the account's opt-out list, paged; each row as the gateway lists it,
        with ``phone`` in E.164 (``+`` and digits)."""

        def opt_out(row: Mapping[str, Any]) -> dict[str, Any]:
            return {**row, "phone": self.from_wire_phone(row.get("phone"))}

        return self._paged("v1/optouts/list", "optouts", opt_out)

    def iter_gateway_opt_outs(self) -> Iterator[tuple[str, datetime | None]]:
        """``(phone, date)`` of every row of :meth:`iter_opt_outs` that names a phone; the date in
        the connection's timezone, None when absent or unreadable."""
        for row in self.iter_opt_outs():
            if row["phone"]:
                yield row["phone"], self.received_time(row.get("date"))

    def format_number(self, number: str, country_code: str | None = None) -> str:
        """POST /v1/format/number: ``number`` as dialled in ``country_code`` (ISO 3166 code such as
        ``NL``, or the calling code) in E.164, as the gateway formats it; an invalid number raises
        :class:`SmsValidationError` (error 103)."""
        body = {"number": number, "countrycode": country_code}
        call = Call("POST", "v1/format/number", json={k: v for k, v in body.items() if v is not None})
        return self.from_wire_phone(self.request_object(call, "number")["number"])

    # ---------------------------------------------------------------------------------------------
    # Paging

    def _paged(self, path: str, key: str, parse: Any) -> Iterator[Any]:
        return self.paginate(*self._listing(path, key, parse))

    def _listing(self, path: str, key: str, parse: Any) -> tuple[Call, PageParser]:
        """The first page of a list endpoint and its parser: the rows under ``key`` through ``parse``,
        then the next page until ``total`` is reached."""

        def parse_page(payload: Any, call: Call) -> tuple[list[Any], Call | None]:
            rows = _items(payload, key)
            page = int(call.params["page"])
            more = page < _last_page(payload, call, len(rows))
            return [parse(row) for row in rows], self.with_params(call, page=page + 1) if more else None

        return Call("GET", path, params={"limit": PAGE_LIMIT, "page": 1}), parse_page

    # ---------------------------------------------------------------------------------------------
    # Newsletters

    def find_newsletter(self, title: str, body: str, since: datetime) -> str | None:
        """Always None: Smstools has no newsletter object; its newsletter is a send to each contact of
        the groups, whose ledger settles every message (see ``find_sent``)."""
        return None


def _items(payload: Any, key: str) -> list[Any]:
    """The items of a list answer: under ``key``, else under its only list-valued field; an answer
    that holds no list (``null``, a text, an object without one and without ``total: 0``) raises
    ``ValueError``: read as an empty list, it would prove messages absent that may be there."""
    if isinstance(payload, list):
        return payload
    if not isinstance(payload, Mapping):
        raise ValueError(f"a list answer was expected, got {type(payload).__name__}")
    if isinstance(payload.get(key), list):
        return payload[key]
    lists = [v for v in payload.values() if isinstance(v, list)]
    if len(lists) == 1:
        return lists[0]
    if not lists and str(payload.get("total")) == "0":
        return []
    raise ValueError(f"no {key} list in the answer")


def _last_page(payload: Any, call: Call, shown: int) -> int:
    """The last page from ``total`` and ``limit``; without a total, a full page suggests another."""
    page, limit = int(call.params["page"]), int(call.params["limit"])
    total = payload.get("total") if isinstance(payload, Mapping) else None
    if total is None:
        return page + 1 if shown >= limit else page
    return max(1, -(-int(total) // limit))


def _ascending(rows: list[Any]) -> bool | None:
    """Whether a logging page lists oldest first (by numeric ``ID``); None when it cannot tell."""
    try:
        first, last = int(rows[0]["ID"]), int(rows[-1]["ID"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None
    return None if first == last else first < last


def _refusals(errors: Any) -> dict[str, list[tuple[str, str]]]:
    """A batch answer's errors by the phone number their text names (they carry no row index);
    errors naming no number are kept under ``""``."""
    by_phone: dict[str, list[tuple[str, str]]] = {}
    for error in errors or ():
        if isinstance(error, Mapping):
            text, code = str(error.get("errorMsg") or "refused by the gateway"), str(error.get("error"))
            for number in _NUMBER.findall(text) or ["+"]:
                by_phone.setdefault(number.lstrip("+"), []).append((text, code))
    return by_phone


def _refusal(refusals: dict[str, list[tuple[str, str]]], phone: str) -> Outcome:
    """The error of a refused row: the one naming its phone, else one naming none, else a generic one."""
    named = refusals.get(phone) or refusals.get("") or [("refused by the gateway", None)]
    text, code = named.pop(0) if len(named) > 1 else named[0]
    return None, text, code


def _send_outcomes(phones: Sequence[str], payload: Mapping[str, Any]) -> list[Outcome]:
    """(messageid, error, code) per number of an array ``to``, from ``messageids`` aligned with it."""
    refusals = _refusals(payload.get("errors"))
    ids = payload.get("messageids", [payload.get("messageid")])
    if not isinstance(ids, list) or len(ids) != len(phones):
        raise SmsAmbiguousSendError(
            f"message/send answered {ids!r} for {len(phones)} numbers; look the batch up",
            gateway="smstools",
        )
    return [(str(i), None, None) if i else _refusal(refusals, p) for p, i in zip(phones, ids, strict=True)]


def _contact_outcomes(phones: Sequence[str], ids: Sequence[Any], errors: Any) -> list[Outcome] | None:
    """(ID, error, code) per row of a contact batch: rows named by an error are refused, the stored
    rows' ``IDs`` (in order) go to the others. None when the counts do not add up."""
    refusals = _refusals(errors)
    kept = [p for p in phones if p not in refusals]
    if not ids:
        return [_refusal(refusals, p) for p in phones]
    if len(kept) != len(ids):
        return None
    stored = iter(ids)
    return [_refusal(refusals, p) if p in refusals else (str(next(stored)), None, None) for p in phones]


def _flag(value: Any) -> bool:
    """A flag written 0/1, true/false or as their strings (anything else that is set counts as on)."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "n", "off", "null")
    return bool(value)


def _id(value: str | int) -> int | str:
    """Numeric ids as JSON numbers, as the API documents them."""
    text = str(value)
    return int(text) if text.isdigit() else text
