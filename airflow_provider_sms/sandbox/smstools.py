"""Fake Smstools v1 API (``/v1/...``, JSON bodies, ``X-Client-Id``/``X-Client-Secret`` headers).

Errors are ``{"error": <code>, "errorMsg": "<text>"}`` with HTTP 400 (401 for credentials, 404 for
unknown ids). Codes follow the vendor's table: 102 no message, 103 invalid phone number,
104 invalid credentials, 106 destination missing, 108 not enough credits, 109/111 sender,
114 empty or malformed request, 118 message too long, 121 bad schedule date, 122 no contacts,
123 missing ID, 124 groupid required, 125 group not found, 126 name required, 133 message not
found, 135/136 paging, 139 other invalid parameters (our choice where the vendor is silent).

Numbers at submission: as the real service, a number that is possible but not valid (``+3161245678``)
is accepted with a messageid and fails at delivery (status ``failed``); only numbers that cannot be
phone numbers at all get 103. ``smstools_validate_at_submission`` restores the strict check (103 for
every number phonenumbers does not call valid).

Ids and flags: ``smstools_id_style`` ``numbers`` answers ids as integers and ``unsubscribed`` as 0/1
(the seed); ``strings`` answers ids as strings, ``unsubscribed`` as true/false and ``use`` as a
string (as clients written by others model them). Requests may use either form in both styles.

Messageids are 30 lower-case letters and digits, like the real service's, derived from the message's
sequence number (reserved in blocks in the state file, so never reused after a crash) and a salt.

Batch send (our choice, documented): with an array ``to`` the answer is ``messageids`` aligned with
``to``, ``null`` for invalid numbers, plus ``errors`` (one 103 per invalid number); valid numbers
are stored and charged.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, Iterable
from functools import lru_cache
from typing import Any

import phonenumbers
from fastapi import APIRouter, Request, Response

from airflow_provider_sms.sandbox import delivery, replies
from airflow_provider_sms.sandbox.common import (
    BadBody,
    credentials_match,
    page_items,
    read_json,
    respond,
    wire_party,
)
from airflow_provider_sms.sandbox.state import Contact, Group, Message, Reply, SandboxState, outcome_of
from airflow_provider_sms.sandbox.validation import (
    MAX_PAGE,
    as_flag,
    as_int,
    count_segments,
    digits,
    e164_from_digits,
    format_time,
    parse_time,
    sender_is_valid,
)

GATEWAY = "smstools"
PREFIX = "/v1"
CREATES_MESSAGES = frozenset({"POST /v1/message/send", "POST /v1/voice/send"})
DEFAULT_LIMIT = 100
MAX_MESSAGE_LENGTH = 612
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
_CONTACT_TEXT_FIELDS = ("email", *(f"extra{i}" for i in range(1, 9)))
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
MESSAGE_ID_LENGTH = 30
# Every number below 36**3 as its three base-36 digits, lowest first.
_BASE36_TRIPLES = tuple(a + b + c for c in _BASE36 for b in _BASE36 for a in _BASE36)
MAX_REFERENCE_LENGTH = 255
SENDER_IDS = ("SMS sandbox", "Shop", "3197010240000")  # the account's registered senders (our choice)


class SmstoolsError(Exception):
    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def error_response(code: int, message: str, status: int = 400) -> Response:
    return respond({"error": code, "errorMsg": message}, status)


@lru_cache(maxsize=16)
def _hmac_pads(salt: str) -> tuple[Any, Any]:
    """SHA-256 states after HMAC's inner and outer key pads (RFC 2104): copying them costs half of
    ``hmac.digest``, which sets the key up anew for every message."""
    key = salt.encode()
    if len(key) > 64:  # longer than SHA-256's block: the key is its hash
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return hashlib.sha256(bytes(k ^ 0x36 for k in key)), hashlib.sha256(bytes(k ^ 0x5C for k in key))


def message_id(seq: int, salt: str) -> str:
    """An opaque 30-character id of lower-case letters and digits (like the real service's
    ``e0ncuxht345hjmbjvv2feky0azflcw``), a keyed hash of the sequence number: the same ``seq`` and
    ``salt`` always give the same id, and two sequence numbers collide with a chance of 36**-30."""
    inner_pad, outer_pad = _hmac_pads(salt)
    inner, outer = inner_pad.copy(), outer_pad.copy()
    inner.update(str(seq).encode())
    outer.update(inner.digest())
    number = int.from_bytes(outer.digest(), "big")
    # The 30 lowest base-36 digits of the hash, lowest first, three at a time (a third of the
    # big-integer divisions one digit at a time would take).
    chars = []
    for _ in range(MESSAGE_ID_LENGTH // 3):
        number, rest = divmod(number, 36**3)
        chars.append(_BASE36_TRIPLES[rest])
    return "".join(chars)


def possible_number(raw: object) -> str | None:
    """``+digits`` when ``raw`` (digits, a leading ``+`` tolerated) is a possible phone number by its
    length and country code, though perhaps not a valid one; else None."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        return None
    text = str(raw).strip().removeprefix("+")
    if not (0 < len(text) <= 17 and text.isascii() and text.isdigit()):
        return None
    try:
        number = phonenumbers.parse("+" + text, None)
    except phonenumbers.NumberParseException:
        return None
    return "+" + text if phonenumbers.is_possible_number(number) else None


def reply_id(reply: Reply) -> int:
    """The inbox ``ID`` of a reply (numbers style)."""
    return reply.seq


def _paging(request: Request) -> tuple[int, int]:
    query = request.query_params
    limit = as_int(query.get("limit", DEFAULT_LIMIT))
    if limit is None or not 1 <= limit <= 2000:
        raise SmstoolsError(135, "The limit parameter must be an integer between 1 and 2000.")
    page = as_int(query.get("page", 1))
    if page is None or not 1 <= page <= MAX_PAGE:
        raise SmstoolsError(136, f"The page parameter must be an integer from 1 to {MAX_PAGE}.")
    return limit, page


def _page(
    request: Request, items: Iterable[Any], total: int, key: str, render: Callable[[Any], Any]
) -> dict[str, Any]:
    limit, page = _paging(request)
    shown = page_items(items, page, limit, render)
    return {"total": total, "shown": len(shown), "page": page, "limit": limit, key: shown}


async def _json_object(request: Request) -> dict[str, Any]:
    body = await read_json(request)
    if body is None:
        raise SmstoolsError(114, "Empty request.")
    if not isinstance(body, dict):
        raise SmstoolsError(114, "The request body must be a JSON object.")
    return body


def create_router(state: SandboxState) -> APIRouter:
    """The Smstools routes (relative to ``PREFIX``), bound to ``state``."""
    router = APIRouter(tags=["Smstools"])
    config = state.config
    groups, contacts, messages = state.groups[GATEWAY], state.contacts[GATEWAY], state.messages[GATEWAY]
    salt = config.smstools_id_salt or secrets.token_hex(16)
    strings = config.smstools_id_style == "strings"

    def ident(value: Any) -> Any:
        """An id as this sandbox's style answers it."""
        return str(value) if strings and value is not None else value

    def flag(value: Any) -> Any:
        """A 0/1 flag as this sandbox's style answers it."""
        return bool(value) if strings else int(bool(value))

    def authorised(request: Request) -> bool:
        client_id = request.headers.get("x-client-id", "")
        secret = request.headers.get("x-client-secret", "")
        return credentials_match(
            (client_id, config.smstools_client_id), (secret, config.smstools_client_secret)
        )

    def route(method: str, path: str) -> Callable[[Callable[..., Awaitable[Any]]], Any]:
        """Register ``handler`` behind the credential check; it returns a JSON-able value or raises."""

        def register(handler: Callable[..., Awaitable[Any]]) -> Any:
            async def endpoint(request: Request) -> Response:
                if not authorised(request):
                    return error_response(104, "Invalid credentials.", 401)
                try:
                    return respond(await handler(request, **request.path_params))
                except SmstoolsError as exc:
                    return error_response(exc.code, exc.message, exc.status)
                except BadBody as exc:
                    return error_response(114, str(exc))

            endpoint.__name__ = f"smstools_{handler.__name__}"
            router.add_api_route(path, endpoint, methods=[method], summary=handler.__doc__)
            return handler

        return register

    # ------------------------------------------------------------------ messages
    async def send(request: Request, kind: str) -> dict[str, Any]:
        body = await _json_object(request)
        text = body.get("message")
        if not isinstance(text, str) or not text.strip():
            raise SmstoolsError(102, "No message provided.")
        if len(text) > MAX_MESSAGE_LENGTH:
            raise SmstoolsError(118, "SMS message cannot be longer than 612 characters.")
        sender = body.get("sender")
        if sender is None or str(sender).strip() == "":
            if kind != "voice":  # optional for a voice message (the vendor's SDK sends none)
                raise SmstoolsError(109, "Sender name cannot be empty.")
            sender = None
        else:
            sender = str(sender)
            if not sender_is_valid(sender, 14):
                raise SmstoolsError(111, "Invalid sender name. Maximum 11 characters or 14 digits.")
        to = body.get("to")
        batch = isinstance(to, list)
        numbers: list[Any] = to if batch else [to]
        if to is None or to == "" or not numbers:
            raise SmstoolsError(106, "Destination number is missing.")
        extra: dict[str, Any] = {}
        if kind == "voice":  # gender and language are optional (the vendor's SDK sends neither)
            if body.get("gender") not in (None, "", "Female", "Male"):
                raise SmstoolsError(139, "gender must be Female or Male.")
            if body.get("language") not in (None, "", "en", "nl", "fr", "de"):
                raise SmstoolsError(139, "language must be one of en, nl, fr, de.")
            extra.update((k, body[k]) for k in ("gender", "language") if body.get(k))
        reference = body.get("reference")
        if reference is not None:
            reference = str(reference)
            if len(reference) > MAX_REFERENCE_LENGTH:
                raise SmstoolsError(139, "reference cannot be longer than 255 characters.")
        test = as_flag(body.get("test", False))
        if test is None:
            raise SmstoolsError(139, "test must be a boolean.")
        if body.get("subid") is not None:
            extra["subid"] = body["subid"]
        now = state.now()
        send_at, schedule = now, None
        if body.get("date") not in (None, ""):
            when = parse_time(body["date"], ("%Y-%m-%d %H:%M", DATE_FORMAT), state.zone(GATEWAY))
            # The format has minute precision, so "this minute" still counts as now.
            if when is None or when < now - 60:
                raise SmstoolsError(121, "Scheduled date is invalid or in the past.")
            send_at, schedule = max(when, now), str(body["date"])

        recipients: list[str | None] = [e164_from_digits(number) for number in numbers]
        undeliverable: set[int] = set()
        if not config.smstools_validate_at_submission:  # as the real service: they fail at delivery
            for index, number in enumerate(numbers):
                if recipients[index] is None:
                    recipients[index] = possible_number(number)
                    if recipients[index] is not None:
                        undeliverable.add(index)
        if not batch and recipients[0] is None:
            raise SmstoolsError(103, f"Phone number {numbers[0]} is not valid")
        segments = count_segments(text)
        accepted = sum(1 for recipient in recipients if recipient)
        if not test and accepted and not state.charge(GATEWAY, segments * accepted):
            raise SmstoolsError(108, "Not enough credits.")
        ids: list[str | None] = []
        errors = []
        for index, (number, recipient) in enumerate(zip(numbers, recipients, strict=True)):
            if recipient is None:
                ids.append(None)
                errors.append({"error": 103, "errorMsg": f"Phone number {number} is not valid"})
                continue
            seq = state.next_seq("message")
            ids.append(message_id(seq, salt))
            fields = {**extra, "undeliverable": True} if index in undeliverable else extra
            if not test:  # test mode validates and answers, but stores and charges nothing
                state.add_message(
                    Message(
                        gateway=GATEWAY,
                        id=ids[-1],
                        seq=seq,
                        recipient=recipient,
                        body=text,
                        created_at=now,
                        send_at=send_at,
                        segments=segments,
                        sender=sender,
                        reference=reference,
                        kind=kind,
                        schedule=schedule,
                        extra=fields or None,
                    )
                )
        if not batch:
            return {"messageid": ids[0]}
        return {"messageids": ids, "errors": errors} if errors else {"messageids": ids}

    @route("POST", "/message/send")
    async def send_message(request: Request) -> dict[str, Any]:
        """Send an SMS to one number or an array of numbers."""
        return await send(request, "sms")

    @route("POST", "/voice/send")
    async def send_voice(request: Request) -> dict[str, Any]:
        """Send a voice message (text to speech)."""
        return await send(request, "voice")

    def logged(message: Message, now: float) -> dict[str, Any]:
        tz = state.zone(GATEWAY)
        raw = state.status(message, now)
        since = message.created_at if now < message.send_at else None
        if since is None:
            since = delivery.status_started_at(
                GATEWAY, message.recipient, message.send_at, raw, config.delivery_seconds, outcome_of(message)
            )
        extra = message.extra or {}
        return {
            "ID": ident(message.seq),
            "message_ID": message.id,
            "message": message.body,
            "to": digits(message.recipient),
            "sender": message.sender,
            "date": format_time(message.created_at, DATE_FORMAT, tz),
            "type": message.kind,
            "status": raw,
            "reference": message.reference,
            "response": {
                "status": raw,
                "statusdate": format_time(since or message.created_at, DATE_FORMAT, tz),
                "reference": message.reference,
                "subid": extra.get("subid"),
            },
        }

    @route("GET", "/message/logging")
    async def message_logging(request: Request) -> dict[str, Any]:
        """Sent messages with their delivery status, oldest first (paged)."""
        now = state.now()
        return _page(request, messages.ordered(), len(messages), "messages", lambda m: logged(m, now))

    def outbox_items() -> list[Message]:
        now, scheduled = state.now(), state.scheduled[GATEWAY]
        items = []
        for key in list(scheduled):
            message = messages.get(key)
            if message is None or message.send_at <= now:
                del scheduled[key]  # due now: it left the outbox for good (the clock never goes back)
            else:
                items.append(message)
        return items

    @route("GET", "/outbox")
    async def outbox(request: Request) -> dict[str, Any]:
        """Scheduled messages that are not due yet (paged)."""
        items = outbox_items()
        return _page(
            request,
            items,
            len(items),
            "messages",
            lambda m: {
                "ID": ident(m.seq),
                "message": m.body,
                "to": digits(m.recipient),
                "type": m.kind,
                "date": format_time(m.send_at, "%Y-%m-%d %H:%M", state.zone(GATEWAY)),
                "reference": m.reference,
                "messageid": m.id,
            },
        )

    @route("DELETE", "/outbox/{item_id}")
    async def cancel(request: Request, item_id: str) -> dict[str, Any]:
        """Cancel a scheduled message (by its numeric ID or its messageid); the credits come back."""
        for message in outbox_items():
            if item_id in (str(message.seq), message.id):
                state.remove_message(GATEWAY, str(message.id))
                state.charge(GATEWAY, -message.segments)  # a negative charge is a refund
                return {"ID": ident(message.seq), "messageid": message.id, "deleted": True}
        raise SmstoolsError(133, "Message not found.", 404)

    def received(reply: Reply) -> dict[str, Any]:
        return {
            "ID": ident(reply.seq),
            "message": reply.text,
            "sender": digits(reply.sender),
            "receiver": wire_party(reply.recipient),
            "type": "sms",
            "date": format_time(reply.received_at, DATE_FORMAT, state.zone(GATEWAY)),
        }

    @route("GET", "/message/inbox")
    async def inbox(request: Request) -> dict[str, Any]:
        """Messages received (replies, simulated or injected), oldest first (paged)."""
        arrived = state.arrived_replies(GATEWAY, state.now())
        return _page(request, arrived, len(arrived), "messages", received)

    # ------------------------------------------------------------------ account
    @route("GET", "/balance")
    async def balance(request: Request) -> dict[str, Any]:
        """Remaining credits (one credit per segment sent)."""
        return {
            "credits": f"{state.balance[GATEWAY]:.2f}",
            "currency": "EUR",
            "use": f"{state.spent[GATEWAY]:.2f}" if strings else round(state.spent[GATEWAY], 2),
        }

    @route("GET", "/account")
    async def account(request: Request) -> dict[str, Any]:
        """The account profile."""
        return {
            "username": config.smstools_client_id,
            "email": "smstools-sandbox@example.com",
            "firstname": "Sandbox",
            "lastname": "Account",
            "company": "SMS sandbox",
            "credits": f"{state.balance[GATEWAY]:.2f}",
            "currency": "EUR",
            "webhookurl": None,
            "timezone": state.timezones[GATEWAY],
        }

    # ------------------------------------------------------------------ contacts
    def render_contact(contact: Contact) -> dict[str, Any]:
        fields = contact.fields or {}
        rendered = {
            "ID": ident(contact.id),
            "phone": digits(contact.phone),
            "firstname": contact.first_name,
            "lastname": contact.last_name,
            "unsubscribed": flag(fields.get("unsubscribed", 0)),
            "groupid": ident(contact.list_id),
            "email": fields.get("email"),
            "birthday": fields.get("birthday"),
        }
        rendered.update((f"extra{i}", fields.get(f"extra{i}")) for i in range(1, 9))
        return rendered

    def contact_values(row: Any, partial: bool = False) -> dict[str, Any]:
        """Validated contact attributes from one request row (``partial``: only the fields given)."""
        if not isinstance(row, dict):
            raise SmstoolsError(139, "Each contact must be a JSON object.")
        values: dict[str, Any] = {}
        if not partial or "phone" in row:
            if row.get("phone") in (None, ""):
                raise SmstoolsError(103, "Phone number is required.")
            values["phone"] = e164_from_digits(row["phone"])
            if values["phone"] is None:
                raise SmstoolsError(103, f"Phone number {row['phone']} is not valid")
        if not partial or "groupid" in row:
            if row.get("groupid") in (None, ""):
                raise SmstoolsError(124, "Parameter groupid is required.")
            group_id = as_int(row["groupid"])
            if group_id is None or groups.get(str(group_id)) is None:
                raise SmstoolsError(125, "Group not found.")
            values["list_id"] = group_id
        for source, target in (("firstname", "first_name"), ("lastname", "last_name")):
            if source in row:
                values[target] = None if row[source] is None else str(row[source])
        fields: dict[str, Any] = {}
        if row.get("birthday") not in (None, ""):
            if parse_time(row["birthday"], ("%Y-%m-%d",)) is None:
                raise SmstoolsError(139, "birthday must be a date as yyyy-MM-dd.")
            fields["birthday"] = row["birthday"]
        if "unsubscribed" in row:
            flag = as_flag(row["unsubscribed"])
            if flag is None:
                raise SmstoolsError(139, "unsubscribed must be 0 or 1.")
            fields["unsubscribed"] = int(flag)
        fields.update((name, str(row[name])) for name in _CONTACT_TEXT_FIELDS if row.get(name) is not None)
        values["fields"] = fields
        return values

    def store_contact(values: dict[str, Any]) -> int:
        contact_id = 1_000_000 + state.next_seq("smstools.contact")
        now = state.now()
        state.add_contact(
            Contact(
                gateway=GATEWAY,
                id=contact_id,
                list_id=values["list_id"],
                phone=values["phone"],
                created_at=now,
                updated_at=now,
                first_name=values.get("first_name"),
                last_name=values.get("last_name"),
                fields=values["fields"] or None,
            )
        )
        return contact_id

    @route("POST", "/contact")
    async def add_contact(request: Request) -> dict[str, Any]:
        """Add one contact (object body) or many (array body; invalid rows come back as errors)."""
        body = await read_json(request)
        if isinstance(body, dict):
            return {"ID": [ident(store_contact(contact_values(body)))]}
        if not isinstance(body, list):
            raise SmstoolsError(
                114, "Empty request." if body is None else "The body must be an object or array."
            )
        if not body:
            raise SmstoolsError(122, "No contacts provided.")
        ids, errors = [], []
        for row in body:
            try:
                ids.append(ident(store_contact(contact_values(row))))
            except SmstoolsError as exc:
                errors.append({"error": exc.code, "errorMsg": exc.message})
        return {"IDs": ids, "errors": errors} if errors else {"IDs": ids}

    def find_contact(contact_id: Any) -> Contact:
        number = as_int(contact_id)
        contact = contacts.get(str(number)) if number is not None else None
        if contact is None:
            raise SmstoolsError(139, "Contact not found.", 404)
        return contact

    @route("PATCH", "/contact")
    async def update_contact(request: Request) -> dict[str, Any]:
        """Change fields of a contact given by ``ID``."""
        body = await _json_object(request)
        if body.get("ID") in (None, ""):
            raise SmstoolsError(123, "Object is missing an ID.")
        contact = find_contact(body["ID"])
        values = contact_values(body, partial=True)
        values["fields"] = {**(contact.fields or {}), **values["fields"]} or None
        state.update_contact(contact, **values)
        return render_contact(contact)

    @route("DELETE", "/contact/{contact_id}")
    async def delete_contact(request: Request, contact_id: str) -> dict[str, Any]:
        """Delete a contact."""
        contact = find_contact(contact_id)
        state.remove_contact(GATEWAY, str(contact.id))
        return {"ID": ident(contact.id), "deleted": True}

    @route("GET", "/contact")
    async def list_contacts(request: Request) -> dict[str, Any]:
        """All contacts (paged)."""
        return _page(request, contacts.ordered(), len(contacts), "contacts", render_contact)

    @route("GET", "/contact/search/{keyword}")
    async def search_contacts(request: Request, keyword: str) -> dict[str, Any]:
        """Contacts whose phone, names or email contain ``keyword`` (case-insensitive, paged)."""
        needle = keyword.lower().lstrip("+")
        found = [
            contact
            for contact in contacts.rows.values()
            if needle in digits(contact.phone)
            or needle in (contact.first_name or "").lower()
            or needle in (contact.last_name or "").lower()
            or needle in str((contact.fields or {}).get("email") or "").lower()
        ]
        return _page(request, found, len(found), "contacts", render_contact)

    # ------------------------------------------------------------------ groups
    def find_group(group_id: Any) -> Group:
        number = as_int(group_id)
        group = groups.get(str(number)) if number is not None else None
        if group is None:
            raise SmstoolsError(125, "Group not found.", 404)
        return group

    def group_name(body: dict[str, Any]) -> str:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise SmstoolsError(126, "Name is required.")
        return name.strip()

    @route("POST", "/groups")
    async def add_group(request: Request) -> dict[str, Any]:
        """Create a group."""
        name = group_name(await _json_object(request))
        group_id = 10_000 + state.next_seq("smstools.group")
        now = state.now()
        state.add_group(Group(GATEWAY, group_id, name, now, now))
        return {"ID": [ident(group_id)]}

    @route("PATCH", "/groups")
    async def rename_group(request: Request) -> dict[str, Any]:
        """Rename a group given by ``ID``."""
        body = await _json_object(request)
        if body.get("ID") in (None, ""):
            raise SmstoolsError(123, "Object is missing an ID.")
        group = find_group(body["ID"])
        state.rename_group(group, group_name(body))
        return {"ID": ident(group.id), "name": group.name, "locked": flag(0)}

    @route("GET", "/groups")
    async def list_groups(request: Request) -> list[dict[str, Any]]:
        """All groups (not paged)."""
        return [
            {"id": ident(group.id), "name": group.name, "locked": flag(0)} for group in groups.rows.values()
        ]

    @route("GET", "/groups/{group_id}")
    async def show_group(request: Request, group_id: str) -> dict[str, Any]:
        """A group and its contacts (paged)."""
        group = find_group(group_id)
        members = state.members_of(GATEWAY, group.id)
        page = _page(request, members, len(members), "contacts", render_contact)
        return {"groupinfo": {"ID": ident(group.id), "name": group.name, "locked": flag(0)}, **page}

    @route("DELETE", "/groups/{group_id}")
    async def delete_group(request: Request, group_id: str) -> dict[str, Any]:
        """Delete a group and its contacts."""
        group = find_group(group_id)
        state.remove_group(GATEWAY, str(group.id))
        return {"ID": ident(group.id), "deleted": True}

    # ------------------------------------------------------------------ tools
    @route("GET", "/senderids")
    async def sender_ids(request: Request) -> dict[str, Any]:
        """The account's registered sender ids (the sandbox accepts any valid sender regardless)."""
        return {
            "senderids": [
                {"ID": ident(index), "senderid": name, "status": "approved"}
                for index, name in enumerate(SENDER_IDS, start=1)
            ]
        }

    @route("GET", "/optouts/list")
    async def opt_outs(request: Request) -> dict[str, Any]:
        """The account's opt-out list, oldest first (paged): every number that replied a stop keyword
        (and no start keyword since) or belongs to a contact marked ``unsubscribed``, once."""
        tz = state.zone(GATEWAY)
        since: dict[str, float] = {}
        for reply in state.arrived_replies(GATEWAY, state.now()):
            word = replies.keyword(reply.text)
            if word == replies.STOP:
                since.setdefault(reply.sender, reply.received_at)
            elif word == replies.START:
                since.pop(reply.sender, None)
        for contact in contacts.rows.values():
            if (contact.fields or {}).get("unsubscribed"):
                since.setdefault(contact.phone, contact.updated_at)
        items = sorted(since.items(), key=lambda item: item[1])  # stable: ties keep their order
        return _page(
            request,
            items,
            len(items),
            "optouts",
            lambda item: {"phone": digits(item[0]), "date": format_time(item[1], DATE_FORMAT, tz)},
        )

    @route("POST", "/format/number")
    async def format_number(request: Request) -> dict[str, Any]:
        """A number in the international form the API takes (digits, country code first, no ``+``):
        ``number`` as dialled in ``countrycode`` (ISO 3166 code such as ``NL``, or the calling code
        such as ``31``); without a ``countrycode`` the number must start with its country code."""
        body = await _json_object(request)
        raw = body.get("number")
        if raw in (None, "") or isinstance(raw, (bool, list, dict)):
            raise SmstoolsError(103, "Phone number is required.")
        country = str(body.get("countrycode") or "").strip().removeprefix("+")
        if country.isdigit():
            country = phonenumbers.region_code_for_country_code(int(country))
        region = country.upper() or None
        if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
            raise SmstoolsError(139, f"Unknown countrycode {body.get('countrycode')}.")
        text = str(raw).strip()
        if region is None and not text.startswith("+"):
            text = "+" + text
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            raise SmstoolsError(103, f"Phone number {raw} is not valid")
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return {
            "number": digits(e164),
            "countrycode": phonenumbers.region_code_for_number(number),
            "valid": flag(1),
        }

    return router
