"""Fake TextBoost (Ultimate SMS) API, served under both ``/api/v3`` and ``/api/http``.

Auth is ``Authorization: Bearer <token>``; under ``/api/http`` an ``api_token`` query or body field
works too. Answers are ``{"status": "success", "data": ...}`` or ``{"status": "error", "message": ...}``
with 401 (``{"message": "Unauthenticated."}``), 403 (not enough SMS units), 404 (unknown uid) or 422
(validation). Lists use Laravel pagination (``page``, ``per_page`` up to 1000, default 25).

Choices where the vendor is silent (documented in the README): one invalid recipient rejects the
whole send with 422 naming it; several recipients answer a list of message objects; lists are
oldest first; ``/sms/campaign`` sends to each distinct phone of the given groups.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime
from itertools import islice
from typing import Any, overload

from fastapi import APIRouter, Request, Response

from airflow_provider_sms.sandbox import delivery
from airflow_provider_sms.sandbox.common import (
    BadBody,
    credentials_match,
    page_items,
    read_fields,
    respond,
    text_field,
    wire_party,
)
from airflow_provider_sms.sandbox.state import Contact, Group, Message, Reply, SandboxState
from airflow_provider_sms.sandbox.validation import (
    MAX_PAGE,
    as_int,
    count_segments,
    digits,
    e164_from_digits,
    format_time,
    iso_utc,
    parse_time,
    sender_is_valid,
)

GATEWAY = "textboost"
PREFIXES = ("/api/v3", "/api/http")
CREATES_MESSAGES = frozenset(
    f"POST {prefix}/sms/{action}" for prefix in PREFIXES for action in ("send", "campaign")
)
SMS_TYPES = frozenset({"plain", "unicode", "voice", "mms", "whatsapp", "viber", "otp"})
GENDERS = frozenset({"male", "female"})
DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 1000


class TextBoostError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def uid(seq: int, salt: int) -> str:
    """A 13-hex-digit uid like PHP's ``uniqid()``; the affine map keeps it unique per sequence number."""
    return f"{(seq * 0x9E3779B1 + salt) % 16**13:013x}"


MESSAGE_SALT = 0x606812E63F78B
REPLY_SEQ_OFFSET = 2**40


def reply_id(reply: Reply) -> str:
    """The uid of a received message: past every sent message's sequence, so never one of theirs."""
    return uid(reply.seq + REPLY_SEQ_OFFSET, MESSAGE_SALT)


def reply_seq(message_id: str) -> int | None:
    """The sequence number a reply's uid was made from (the inverse of :func:`reply_id`: the
    multiplier is odd, so invertible modulo 16**13), or None when ``message_id`` is no uid."""
    try:
        value = int(message_id, 16)
    except ValueError:
        return None
    seq = (value - MESSAGE_SALT) * pow(0x9E3779B1, -1, 16**13) % 16**13
    return seq - REPLY_SEQ_OFFSET


class Merged(Sequence[Message | Reply]):
    """Sent messages and received replies as one list in time order: the stable merge of the two
    (at equal times the message first), which is what iterating it gives (``heapq.merge``).

    When the messages are in creation order (``sorted_sent``: always, unless a state file gave them
    back otherwise) a slice costs its length, not its offset: the split of a position between the
    two lists is found by bisection (:meth:`split`), then a page is merged from there. Otherwise a
    slice walks the merge from the start, as before.
    """

    __slots__ = ("received", "sent", "sorted_sent")

    def __init__(self, sent: Sequence[Message], received: Sequence[Reply], sorted_sent: bool) -> None:
        self.sent, self.received, self.sorted_sent = sent, received, sorted_sent

    def __len__(self) -> int:
        return len(self.sent) + len(self.received)

    def __iter__(self) -> Iterator[Message | Reply]:
        return heapq.merge(self.sent, self.received, key=_time)

    def split(self, position: int) -> tuple[int, int]:
        """How many messages and how many replies the first ``position`` items of the merge hold.

        ``i`` messages are too few while the reply the rest would take last (``p - i - 1``) is not
        earlier than message ``i``, which the merge puts first; that is false from some ``i`` on, the
        answer, so it is found by bisection on ``i``: O(log n).
        """
        sent, received = self.sent, self.received
        low, high = max(0, position - len(received)), min(position, len(sent))
        while low < high:
            middle = (low + high) // 2
            if received[position - middle - 1].received_at >= sent[middle].created_at:
                low = middle + 1
            else:
                high = middle
        return low, position - low

    @overload
    def __getitem__(self, position: int) -> Message | Reply: ...

    @overload
    def __getitem__(self, position: slice) -> list[Message | Reply]: ...

    def __getitem__(self, position: int | slice) -> Message | Reply | list[Message | Reply]:
        if isinstance(position, int):
            at = range(len(self))[position]  # an IndexError when out of range
            return self[at : at + 1][0]
        start, stop, step = position.indices(len(self))
        if step != 1 or not self.sorted_sent:
            return list(self)[position] if step != 1 else list(islice(self, start, stop))
        size = max(0, stop - start)
        sent_from, received_from = self.split(start)
        page = heapq.merge(
            self.sent[sent_from : sent_from + size],
            self.received[received_from : received_from + size],
            key=_time,
        )
        return list(islice(page, size))


def _time(item: Message | Reply) -> float:
    return item.received_at if isinstance(item, Reply) else item.created_at


def create_router(state: SandboxState) -> APIRouter:
    """The TextBoost routes (without prefix: the app mounts them under each of ``PREFIXES``)."""
    router = APIRouter(tags=["TextBoost"])
    config = state.config
    messages, groups, contacts = state.messages[GATEWAY], state.groups[GATEWAY], state.contacts[GATEWAY]

    def authorised(request: Request, fields: dict[str, Any]) -> bool:
        expected = config.textboost_token
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credentials_match((token.strip(), expected)):
            return True
        api_token = fields.get("api_token")
        return (
            request.url.path.startswith("/api/http/")
            and isinstance(api_token, str)
            and credentials_match((api_token, expected))
        )

    def route(method: str, path: str) -> Callable[[Callable[..., Any]], Any]:
        """Register ``handler(request, fields, **path_params)``; it returns ``data`` or raises."""

        def register(handler: Callable[..., Any]) -> Any:
            async def endpoint(request: Request) -> Response:
                try:
                    fields = await read_fields(request)
                except BadBody as exc:
                    return respond({"status": "error", "message": str(exc)}, 400)
                if not authorised(request, fields):
                    return respond({"message": "Unauthenticated."}, 401)
                try:
                    data = handler(request, fields, **request.path_params)
                except TextBoostError as exc:
                    return respond({"status": "error", "message": exc.message}, exc.status)
                return respond({"status": "success", "data": data})

            endpoint.__name__ = f"textboost_{handler.__name__}"
            router.add_api_route(path, endpoint, methods=[method], summary=handler.__doc__)
            return handler

        return register

    def paginate(
        request: Request, fields: dict[str, Any], items: Collection[Any], render: Callable[[Any], Any]
    ) -> dict[str, Any]:
        page = as_int(fields.get("page", 1))
        per_page = as_int(fields.get("per_page", DEFAULT_PER_PAGE))
        if page is None or not 1 <= page <= MAX_PAGE:
            raise TextBoostError(422, f"The page must be an integer from 1 to {MAX_PAGE}.")
        if per_page is None or per_page < 1:
            raise TextBoostError(422, "The per page must be an integer of at least 1.")
        per_page = min(per_page, MAX_PER_PAGE)
        total = len(items)
        last_page = max(1, math.ceil(total / per_page))
        start = (page - 1) * per_page
        shown = page_items(items, page, per_page, render)
        path = str(request.url.replace(query=""))
        extra = f"&per_page={per_page}" if "per_page" in fields else ""

        def url(number: int) -> str:
            return f"{path}?page={number}{extra}"

        return {
            "current_page": page,
            "data": shown,
            "first_page_url": url(1),
            "from": start + 1 if shown else None,
            "last_page": last_page,
            "last_page_url": url(last_page),
            "links": [],
            "next_page_url": url(page + 1) if page < last_page else None,
            "path": path,
            "per_page": per_page,
            "prev_page_url": url(page - 1) if page > 1 else None,
            "to": start + len(shown) if shown else None,
            "total": total,
        }

    # ------------------------------------------------------------------ contact groups
    def render_group(group: Group) -> dict[str, Any]:
        return {
            "uid": group.id,
            "name": group.name,
            "contacts_count": len(state.members.get((GATEWAY, str(group.id)), ())),
            "created_at": iso_utc(group.created_at),
            "updated_at": iso_utc(group.updated_at),
        }

    def find_group(group_id: str) -> Group:
        group = groups.get(group_id)
        if group is None:
            raise TextBoostError(404, f"Contact group {group_id} not found.")
        return group

    def group_name(fields: dict[str, Any]) -> str:
        name = text_field(fields, "name")
        if name is None:
            raise TextBoostError(422, "The name field is required.")
        return name

    @route("POST", "/contacts")
    def create_group(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
        """Create a contact group."""
        now = state.now()
        group = Group(
            gateway=GATEWAY,
            id=uid(state.next_seq("textboost.group"), 0x6065ECDC9184A),
            name=group_name(fields),
            created_at=now,
            updated_at=now,
        )
        state.add_group(group)
        return render_group(group)

    @route("GET", "/contacts")
    def list_groups(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
        """Contact groups (paginated)."""
        return paginate(request, fields, groups.ordered(), render_group)

    @route("POST", "/contacts/{group_id}/show")
    def show_group(request: Request, fields: dict[str, Any], group_id: str) -> dict[str, Any]:
        """One contact group."""
        return render_group(find_group(group_id))

    @route("PATCH", "/contacts/{group_id}")
    def rename_group(request: Request, fields: dict[str, Any], group_id: str) -> dict[str, Any]:
        """Rename a contact group."""
        group = find_group(group_id)
        state.rename_group(group, group_name(fields))
        return render_group(group)

    @route("DELETE", "/contacts/{group_id}")
    def delete_group(request: Request, fields: dict[str, Any], group_id: str) -> None:
        """Delete a contact group and its contacts."""
        find_group(group_id)
        state.remove_group(GATEWAY, group_id)

    # ------------------------------------------------------------------ contacts
    def render_contact(contact: Contact) -> dict[str, Any]:
        return {
            "uid": contact.id,
            "group_id": contact.list_id,
            "phone": digits(contact.phone),
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "status": "subscribe",
            "created_at": iso_utc(contact.created_at),
            "updated_at": iso_utc(contact.updated_at),
        }

    def contact_field(fields: dict[str, Any], name: str) -> str | None:
        """``name`` as sent: lower-case, or upper-case (``PHONE``, ``FIRST_NAME``) as newer releases
        of the platform and the vendor's own examples spell it; the lower-case one wins if both are."""
        return next((spelling for spelling in (name, name.upper()) if spelling in fields), None)

    def contact_values(fields: dict[str, Any]) -> dict[str, Any]:
        key = contact_field(fields, "phone")
        raw = None if key is None else text_field(fields, key)
        if raw is None:
            raise TextBoostError(422, "The phone field is required.")
        phone = e164_from_digits(raw)
        if phone is None:
            raise TextBoostError(422, f"The phone {raw} is not a valid phone number.")
        values = {"phone": phone}
        for name in ("first_name", "last_name"):
            key = contact_field(fields, name)
            if key is not None:
                values[name] = text_field(fields, key)
        return values

    def find_contact(group_id: str, contact_id: str) -> Contact:
        find_group(group_id)
        contact = contacts.get(contact_id)
        if contact is None or contact.list_id != group_id:
            raise TextBoostError(404, f"Contact {contact_id} not found.")
        return contact

    @route("POST", "/contacts/{group_id}/store")
    def store_contact(request: Request, fields: dict[str, Any], group_id: str) -> dict[str, Any]:
        """Add a contact to a group."""
        find_group(group_id)
        values = contact_values(fields)
        now = state.now()
        contact = Contact(
            gateway=GATEWAY,
            id=uid(state.next_seq("textboost.contact"), 0x606732AEC8705),
            list_id=group_id,
            phone=values["phone"],
            created_at=now,
            updated_at=now,
            first_name=values.get("first_name"),
            last_name=values.get("last_name"),
        )
        state.add_contact(contact)
        return render_contact(contact)

    @route("POST", "/contacts/{group_id}/search/{contact_id}")
    def show_contact(
        request: Request, fields: dict[str, Any], group_id: str, contact_id: str
    ) -> dict[str, Any]:
        """One contact."""
        return render_contact(find_contact(group_id, contact_id))

    @route("PATCH", "/contacts/{group_id}/update/{contact_id}")
    def update_contact(
        request: Request, fields: dict[str, Any], group_id: str, contact_id: str
    ) -> dict[str, Any]:
        """Change a contact's phone and names."""
        contact = find_contact(group_id, contact_id)
        state.update_contact(contact, **contact_values(fields))
        return render_contact(contact)

    @route("DELETE", "/contacts/{group_id}/delete/{contact_id}")
    def delete_contact(request: Request, fields: dict[str, Any], group_id: str, contact_id: str) -> None:
        """Delete a contact."""
        state.remove_contact(GATEWAY, str(find_contact(group_id, contact_id).id))

    @route("POST", "/contacts/{group_id}/all")
    def group_contacts(request: Request, fields: dict[str, Any], group_id: str) -> dict[str, Any]:
        """A group's contacts (paginated)."""
        find_group(group_id)
        return paginate(request, fields, state.members_of(GATEWAY, group_id), render_contact)

    # ------------------------------------------------------------------ messages
    def render_message(message: Message, now: float | None = None) -> dict[str, Any]:
        now = state.now() if now is None else now
        raw = state.status(message, now)
        since = (
            None
            if now < message.send_at
            else delivery.status_started_at(
                GATEWAY, message.recipient, message.send_at, raw, config.delivery_seconds
            )
        )
        return {
            "uid": message.id,
            "to": digits(message.recipient),
            "from": message.sender,
            "message": message.body,
            "status": raw,
            "cost": str(message.segments),
            "sms_count": message.segments,
            "direction": "outgoing",
            "sms_type": message.kind,
            "schedule_time": message.schedule,
            "campaign_uid": (message.extra or {}).get("campaign_uid"),
            "created_at": iso_utc(message.created_at),
            "updated_at": iso_utc(since or message.created_at),
        }

    def sms_values(fields: dict[str, Any]) -> dict[str, Any]:
        """The validated fields of a send or a campaign, except the recipients."""
        sender = text_field(fields, "sender_id")
        if sender is None:
            raise TextBoostError(422, "The sender id field is required.")
        if not sender_is_valid(sender, 16):
            raise TextBoostError(
                422, "The sender id must be a phone number or at most 11 alphanumeric characters."
            )
        sms_type = text_field(fields, "type")
        if sms_type is None:
            raise TextBoostError(422, "The type field is required.")
        if sms_type not in SMS_TYPES:
            raise TextBoostError(422, "The selected type is invalid.")
        text = fields.get("message")
        text = text if isinstance(text, str) else ""
        if sms_type != "mms" and not text.strip():
            raise TextBoostError(422, "The message field is required.")
        extra: dict[str, Any] = {}
        if sms_type == "voice":
            if text_field(fields, "language") is None:
                raise TextBoostError(422, "The language field is required.")
            if fields.get("gender") not in GENDERS:
                raise TextBoostError(422, "The selected gender is invalid.")
            extra.update(language=fields["language"], gender=fields["gender"])
        if sms_type == "mms":
            if text_field(fields, "media_url") is None:
                raise TextBoostError(422, "The media url field is required.")
            extra["media_url"] = fields["media_url"]
        if text_field(fields, "dlt_template_id") is not None:
            extra["dlt_template_id"] = text_field(fields, "dlt_template_id")
        now = state.now()
        send_at, schedule = now, text_field(fields, "schedule_time")
        if schedule is not None:
            when = parse_time(schedule, ("%Y-%m-%d %H:%M",), state.zone(GATEWAY))
            if when is None:
                raise TextBoostError(422, "The schedule time does not match the format Y-m-d H:i.")
            if when < now - 60:  # minute precision: "this minute" still counts as now
                raise TextBoostError(422, "The schedule time must be a date after now.")
            send_at = max(when, now)
        return {
            "sender": sender,
            "kind": sms_type,
            "body": text,
            "segments": count_segments(text) if text else 1,
            "now": now,
            "send_at": send_at,
            "schedule": schedule,
            "extra": extra,
        }

    def store_message(recipient: str, values: dict[str, Any], extra: dict[str, Any] | None = None) -> Message:
        seq = state.next_seq("message")
        message = Message(
            gateway=GATEWAY,
            id=uid(seq, MESSAGE_SALT),
            seq=seq,
            recipient=recipient,
            body=values["body"],
            created_at=values["now"],
            send_at=values["send_at"],
            segments=values["segments"],
            sender=values["sender"],
            kind=values["kind"],
            schedule=values["schedule"],
            extra={**values["extra"], **(extra or {})} or None,
        )
        state.add_message(message)
        return message

    def charge(units: int) -> None:
        if not state.charge(GATEWAY, units):
            raise TextBoostError(403, "You do not have enough sms unit to send this message.")

    @route("POST", "/sms/send")
    def send(request: Request, fields: dict[str, Any]) -> Any:
        """Send to one or more comma-separated recipients; any invalid number rejects the request."""
        raw = fields.get("recipient")
        numbers = raw if isinstance(raw, list) else [part.strip() for part in str(raw or "").split(",")]
        numbers = [str(number).strip() for number in numbers if str(number).strip()]
        if not numbers:
            raise TextBoostError(422, "The recipient field is required.")
        values = sms_values(fields)
        recipients = []
        for number in numbers:
            recipient = e164_from_digits(number)
            if recipient is None:
                raise TextBoostError(422, f"The recipient {number} is not a valid phone number.")
            recipients.append(recipient)
        charge(values["segments"] * len(recipients))
        sent = [render_message(store_message(recipient, values), values["now"]) for recipient in recipients]
        return sent[0] if len(sent) == 1 else sent

    @route("POST", "/sms/campaign")
    def campaign(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
        """Send to every distinct phone of the groups in ``contact_list_id`` (comma-separated uids)."""
        list_ids = [part.strip() for part in str(text_field(fields, "contact_list_id") or "").split(",")]
        list_ids = [list_id for list_id in list_ids if list_id]
        if not list_ids:
            raise TextBoostError(422, "The contact list id field is required.")
        for list_id in list_ids:
            find_group(list_id)
        values = sms_values(fields)
        phones = dict.fromkeys(
            contact.phone for list_id in list_ids for contact in state.members_of(GATEWAY, list_id)
        )
        charge(values["segments"] * len(phones))
        campaign_uid = uid(state.next_seq("textboost.campaign"), 0x61A8C0F3B2D1E)
        for phone in phones:
            store_message(phone, values, {"campaign_uid": campaign_uid})
        data = {
            "uid": campaign_uid,
            "contact_list_id": list_ids,
            "sender_id": values["sender"],
            "sms_type": values["kind"],
            "message": values["body"],
            "schedule_time": values["schedule"],
            "status": "Scheduled" if values["send_at"] > values["now"] else "Queued",
            "recipients": len(phones),
            "cost": str(values["segments"] * len(phones)),
            "created_at": iso_utc(values["now"]),
        }
        state.add_newsletter(GATEWAY, campaign_uid, data)
        return data

    # Counters of GET /campaign/{uid}/view by the raw status of the campaign's messages (queued and
    # scheduled messages are in none: they have not left yet).
    stat_of = {"Sent": "enroute_count", "Delivered": "delivered_count"}
    stat_of |= {"Undelivered": "undelivered_count", "Failed": "failed_count"}
    stat_names = (
        "enroute_count", "delivered_count", "expired_count", "undelivered_count",
        "rejected_count", "accepted_count", "skipped_count", "failed_count",
    )  # fmt: skip
    final = frozenset({"Delivered", "Undelivered", "Failed"})

    def display_time(ts: float | None) -> str | None:
        """The platform's display format in the account's timezone, e.g. ``30th Aug 25, 8:14 AM``."""
        if ts is None:
            return None
        day = int(format_time(ts, "%d", state.zone(GATEWAY)))
        suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
        rest = format_time(ts, " %b %y, %I:%M %p", state.zone(GATEWAY))
        hour_at = rest.index(", ") + 2
        return f"{day}{suffix}{rest[:hour_at]}{rest[hour_at:].removeprefix('0')}"

    @route("GET", "/campaign/{campaign_id}/view")
    def view_campaign(request: Request, fields: dict[str, Any], campaign_id: str) -> dict[str, Any]:
        """One campaign of ``/sms/campaign``: its status and per-status counters of its messages."""
        data = state.newsletters[GATEWAY].get(campaign_id)
        if data is None:
            raise TextBoostError(404, f"Campaign {campaign_id} not found.")
        now = state.now()
        sent = [m for m in messages.rows.values() if (m.extra or {}).get("campaign_uid") == campaign_id]
        raws = [str(state.status(message, now)) for message in sent]
        stats = dict.fromkeys(stat_names, 0)
        for raw in raws:
            if raw in stat_of:
                stats[stat_of[raw]] += 1
        start = min((m.send_at for m in sent), default=None)
        done = all(raw in final for raw in raws)
        finished = [
            delivery.status_started_at(GATEWAY, m.recipient, m.send_at, raw, config.delivery_seconds)
            for m, raw in zip(sent, raws, strict=True)
        ]
        status = "processing"
        if start is not None and start > now:
            status = "scheduled"
        elif done:
            status = "done"
        return {
            "id": campaign_id,
            "name": f"API campaign {campaign_id}",
            "message": data["message"],
            "status": status,
            "type": data["sms_type"],
            "created_at": display_time(datetime.fromisoformat(data["created_at"]).timestamp()),
            "start_at": display_time(start),
            "delivery_at": display_time(max((t for t in finished if t is not None), default=None))
            if done and sent
            else None,
            "stats": stats,
        }

    def render_reply(reply: Reply) -> dict[str, Any]:
        return {
            "uid": reply_id(reply),
            "to": wire_party(reply.recipient),
            "from": digits(reply.sender),
            "message": reply.text,
            "status": "Delivered",
            "cost": "0",
            "sms_count": count_segments(reply.text) if reply.text else 1,
            "direction": "incoming",
            "sms_type": "plain",
            "schedule_time": None,
            "campaign_uid": None,
            "created_at": iso_utc(reply.received_at),
            "updated_at": iso_utc(reply.received_at),
        }

    @route("GET", "/sms")
    def list_messages(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
        """Messages sent and received (``direction`` outgoing or incoming), oldest first (paginated)."""
        now = state.now()
        received = state.arrived_replies(GATEWAY, now)
        if not received:
            return paginate(request, fields, messages.ordered(), lambda message: render_message(message, now))
        # With replies, a page is merged from where it starts in each list, found by bisection.
        return paginate(
            request,
            fields,
            Merged(messages.ordered(), received, messages.rows.monotone()),
            lambda item: render_reply(item) if isinstance(item, Reply) else render_message(item, now),
        )

    @route("GET", "/sms/{message_id}")
    def show_message(request: Request, fields: dict[str, Any], message_id: str) -> dict[str, Any]:
        """One message, sent or received."""
        message = messages.get(message_id)
        if message is not None:
            return render_message(message)
        reply = state.replies[GATEWAY].get(str(reply_seq(message_id)))
        if reply is not None and reply_id(reply) == message_id and reply.received_at <= state.now():
            return render_reply(reply)
        raise TextBoostError(404, f"Message {message_id} not found.")

    # ------------------------------------------------------------------ account
    def units() -> str:
        balance = state.balance[GATEWAY]
        return str(int(balance)) if float(balance).is_integer() else f"{balance:.2f}"

    @route("GET", "/balance")
    def balance(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
        """Remaining SMS units (one per segment sent)."""
        return {"remaining_balance": units(), "expired_on": "2099-12-31"}

    @route("GET", "/me")
    def profile(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
        """The account profile."""
        return {
            "uid": "5f8d2c3b1a0e9",
            "first_name": "Sandbox",
            "last_name": "Account",
            "email": "textboost-sandbox@example.com",
            "locale": "en",
            "timezone": state.timezones[GATEWAY],
            "sms_unit": units(),
        }

    return router
