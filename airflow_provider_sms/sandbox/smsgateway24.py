"""Fake SmsGateway24 API (``/getdata/<endpoint>``, trailing slash optional).

Every endpoint takes GET query parameters or POST form fields (a JSON object body is accepted too)
and answers HTTP 200 with ``{"error": 0, ...}`` or ``{"error": 1, "message": "..."}``, as the real
service does, also for a wrong or expired token. Times are in the account's timezone (the sandbox's
``timezone`` setting, default UTC), except where getallsms' ``timezone`` field names another.

Choices where the vendor is silent (documented in the README): numbers must be ``+`` and digits;
``addsms`` with several comma-separated numbers stores the valid ones and answers ``sms_id`` (the
first) plus ``sms_ids`` aligned with the input (``null`` for invalid numbers) and ``errors``;
``addalotofsms`` answers ``sms_ids`` aligned with ``smsdata`` and one ``errors`` entry
(``index``, ``sendto``, ``message``) per refused row; ``customerid`` is any string of digits, kept
as an integer; ``savepaket`` creates one message per distinct phone of its tags.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from fastapi import APIRouter, Request, Response

from airflow_provider_sms.sandbox import delivery
from airflow_provider_sms.sandbox.common import (
    BadBody,
    TooDeep,
    credentials_match,
    loads_json,
    read_fields,
    respond,
    text_field,
)
from airflow_provider_sms.sandbox.config import DEVICE_IDS
from airflow_provider_sms.sandbox.state import Contact, Group, Message, Reply, SandboxState
from airflow_provider_sms.sandbox.validation import (
    UTC,
    as_flag,
    as_int,
    count_segments,
    e164_from_plus,
    format_time,
    is_digits,
    parse_time,
    zone,
)

GATEWAY = "smsgateway24"
PREFIX = "/getdata"
_CREATING = ("addsms", "smstosend", "addalotofsms", "savepaket")  # a newsletter creates messages too
CREATES_MESSAGES = frozenset(f"{method} /getdata/{name}" for name in _CREATING for method in ("GET", "POST"))
TOKEN_ERROR = "Token is wrong or expired"
LOGIN_ERROR = "Login or password incorrect"
SMS_ID_BASE = 62_800_000
# Received messages have ids of their own range, far past any sent message's (our choice).
REPLY_ID_BASE = 900_000_000
INCOMING = 5
# Every status a sent message can show (its timelines, scheduled included): filtering by another
# (5, incoming, above all) matches none of them.
MESSAGE_STATUSES = frozenset(
    raw for steps in delivery.TIMELINES["smsgateway24"].values() for _, raw in steps
) | {delivery.SCHEDULED["smsgateway24"]}
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d")
PAKET_TIME_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M")
CREATED_FORMAT = "%Y-%m-%d %H:%M:%S.000000"
# 1 is "New" as the real service titles it (its SDK's tests against the live API assert it).
STATUS_TITLES = {
    1: "New",
    3: "queued",
    2: "sending",
    5: "incoming",
    6: "sent",
    7: "delivered",
    8: "not delivered",
    9: "generic failure",
    10: "no service",
    11: "null pdu",
    12: "radio off",
    100: "not allowed",
    101: "not allowed",
}


def reply_id(reply: Reply) -> int:
    """The sms id of a received message."""
    return REPLY_ID_BASE + reply.seq


def _device(device_id: int, title: str, imei: str, number: str, delay: int) -> dict[str, Any]:
    created = {"date": "2024-01-15 09:30:00.000000", "timezone_type": 3, "timezone": "UTC"}
    return {
        "id": device_id,
        "title": title,
        "number": number,
        "imei": imei,
        "created": created,
        "createdhumanformat": "15.01.2024 09:30:00",
        "serialnumber": f"SANDBOX{device_id}",
        "siminfo": [
            {
                "Slot": "0",
                "IccId": f"8931{device_id}0000000000",
                "Number": number,
                "Roaming": "0",
                "CountryIso": "nl",
                "CarrierName": "Sandbox Mobile",
            }
        ],
        "appversion": "12.1.21",
        "isappversionactual": True,
        "delaybetweeneachsms": delay,
        "delaybetweenrequest": 1,
        "subscription": True,
    }


DEVICES = {
    DEVICE_IDS[0]: _device(DEVICE_IDS[0], "Sandbox phone A", "358240051111110", "+31612345001", 1),
    DEVICE_IDS[1]: _device(DEVICE_IDS[1], "Sandbox phone B", "358240051111128", "+31612345002", 5),
}


class Refused(Exception):
    """Answer ``{"error": 1, "message": ...}``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _required(fields: dict[str, Any], name: str) -> str:
    value = text_field(fields, name)
    if value is None:
        raise Refused(f"Field {name} is required")
    return value


def _device_id(fields: dict[str, Any]) -> int:
    device_id = as_int(_required(fields, "device_id"))
    if device_id is None or device_id not in DEVICES:
        raise Refused("Device not found")
    return device_id


def _sim(fields: dict[str, Any]) -> int:
    sim = as_int(fields.get("sim", 0) if fields.get("sim") not in (None, "") else 0)
    if sim is None or not 0 <= sim <= 5:
        raise Refused("Field sim must be 0 or 1 (SIM slots), 2 or 3 (WhatsApp), 4 or 5 (RCS)")
    return sim


def _stamp(ts: float, tz: Any) -> dict[str, Any]:
    """PHP's DateTime as json_encode writes it."""
    return {"date": format_time(ts, CREATED_FORMAT, tz), "timezone_type": 3, "timezone": str(tz)}


def create_router(state: SandboxState) -> APIRouter:
    """The SmsGateway24 routes (relative to ``PREFIX``), bound to ``state``."""
    router = APIRouter(tags=["SmsGateway24"])
    config = state.config
    messages, groups = state.messages[GATEWAY], state.groups[GATEWAY]

    def login_ok(fields: dict[str, Any]) -> bool:
        email, password = str(fields.get("email") or ""), str(fields.get("pass") or "")
        return credentials_match((email, config.smsgateway24_email), (password, config.smsgateway24_password))

    def endpoint(name: str, auth: str = "token") -> Callable[[Callable[..., dict[str, Any]]], Any]:
        """Register ``handler(fields)`` for GET and POST (the app makes a trailing slash optional).

        ``auth``: ``token`` (field ``token``), ``login`` (``email`` and ``pass``) or ``none``.
        """

        def register(handler: Callable[..., dict[str, Any]]) -> Any:
            async def view(request: Request) -> Response:
                try:
                    fields = await read_fields(request)
                    if auth == "token" and not state.token_valid(fields.get("token")):
                        raise Refused(TOKEN_ERROR)
                    if auth == "login" and not login_ok(fields):
                        raise Refused(LOGIN_ERROR)
                    return respond({"error": 0, **handler(fields)})
                except Refused as exc:
                    return respond({"error": 1, "message": exc.message})
                except BadBody as exc:
                    return respond({"error": 1, "message": str(exc)})

            view.__name__ = f"smsgateway24_{name}"
            for method in ("POST", "GET"):  # one route per method: each gets its own /docs operation
                router.add_api_route(f"/{name}", view, methods=[method], summary=handler.__doc__)
            return handler

        return register

    # ------------------------------------------------------------------ messages
    def sms_values(fields: dict[str, Any]) -> dict[str, Any]:
        """The validated fields of one message, except ``sendto``."""
        body = text_field(fields, "body")
        filename = getattr(fields.get("file"), "filename", None)  # a multipart upload
        if body is None and filename:
            # The real service uploads the image to S3 and sends its URL instead of a body.
            body = f"https://sandbox.invalid/uploads/{filename}"
        if body is None:
            raise Refused("Field body is required")
        values: dict[str, Any] = {"body": body, "device_id": _device_id(fields), "sim": _sim(fields)}
        values["timetosend"] = text_field(fields, "timetosend")
        values["send_at"] = None
        if values["timetosend"] is not None:
            values["send_at"] = parse_time(values["timetosend"], TIME_FORMATS, state.zone(GATEWAY))
            if values["send_at"] is None:
                raise Refused("Field timetosend must be YYYY-MM-DD or YYYY-MM-DD HH:MM:SS")
        customerid = text_field(fields, "customerid")
        if customerid is not None:
            if not is_digits(customerid):
                raise Refused("Field customerid must be an integer of at most 20 digits")
            customerid = str(int(customerid))  # an integer column on the real service
        values["customerid"] = customerid
        urgent = as_flag(fields.get("urgent", 0))
        if urgent is None:
            raise Refused("Field urgent must be 0 or 1")
        values["urgent"] = int(urgent)
        return values

    def store(recipient: str, values: dict[str, Any], now: float, paket: dict[str, Any] | None = None) -> int:
        seq = state.next_seq("message")
        sms_id = SMS_ID_BASE + seq
        extra = {"device_id": values["device_id"], "sim": values["sim"], "urgent": values.get("urgent", 0)}
        if paket:
            extra.update(paket)
        send_at = values["send_at"]
        state.add_message(
            Message(
                gateway=GATEWAY,
                id=sms_id,
                seq=seq,
                recipient=recipient,
                body=values["body"],
                created_at=now,
                send_at=now if send_at is None else max(send_at, now),
                segments=count_segments(values["body"]),
                reference=values.get("customerid"),
                schedule=values.get("timetosend"),
                extra=extra,
            )
        )
        return sms_id

    def add_sms(fields: dict[str, Any]) -> dict[str, Any]:
        sendto = _required(fields, "sendto")
        values = sms_values(fields)
        numbers = [part.strip() for part in sendto.split(",") if part.strip()]
        recipients = [e164_from_plus(number) for number in numbers]
        if not any(recipients):
            raise Refused(f"Phone number {numbers[0] if numbers else sendto} is not valid")
        now = state.now()
        ids: list[int | None] = []
        errors = []
        for index, (number, recipient) in enumerate(zip(numbers, recipients, strict=True)):
            if recipient is None:
                ids.append(None)
                errors.append(
                    {"index": index, "sendto": number, "message": f"Phone number {number} is not valid"}
                )
            else:
                ids.append(store(recipient, values, now))
        result: dict[str, Any] = {
            "sms_id": next(sms_id for sms_id in ids if sms_id is not None),
            "message": "Sms has been saved successfully",
        }
        if len(numbers) > 1:
            result["sms_ids"] = ids
        if errors:
            result["errors"] = errors
        return result

    @endpoint("addsms")
    def addsms(fields: dict[str, Any]) -> dict[str, Any]:
        """Create messages (comma-separated ``sendto``) with a token."""
        return add_sms(fields)

    @endpoint("smstosend", auth="login")
    def smstosend(fields: dict[str, Any]) -> dict[str, Any]:
        """As addsms, authenticated with ``email`` and ``pass``."""
        return add_sms(fields)

    @endpoint("addalotofsms", auth="none")
    def addalotofsms(fields: dict[str, Any]) -> dict[str, Any]:
        """Create many messages from ``datajson`` = {"token", "smsdata": [...]}."""
        raw = fields.get("datajson")
        if raw in (None, ""):
            raise Refused("Field datajson is required")
        if isinstance(raw, dict):
            data = raw
        elif isinstance(raw, str):
            try:
                data = loads_json(raw)
            except TooDeep as exc:
                raise Refused(f"Field datajson: {exc}") from None
            except BadBody:
                raise Refused("Field datajson is not valid JSON") from None
        else:
            raise Refused("Field datajson is not valid JSON")
        if not isinstance(data, dict):
            raise Refused("Field datajson must be a JSON object")
        if not state.token_valid(data.get("token") or fields.get("token")):
            raise Refused(TOKEN_ERROR)
        rows = data.get("smsdata")
        if not isinstance(rows, list) or not rows:
            raise Refused("Field smsdata is required")
        now = state.now()
        ids: list[int | None] = []
        errors = []
        for index, row in enumerate(rows):
            try:
                if not isinstance(row, dict):
                    raise Refused("Each smsdata item must be an object")
                number = _required(row, "sendto")
                recipient = e164_from_plus(number)
                if recipient is None:
                    raise Refused(f"Phone number {number} is not valid")
                ids.append(store(recipient, sms_values(row), now))
            except Refused as exc:
                ids.append(None)
                sendto = row.get("sendto") if isinstance(row, dict) else None
                errors.append({"index": index, "sendto": sendto, "message": exc.message})
        saved = len(rows) - len(errors)
        result: dict[str, Any] = {"message": f"{saved} sms have been saved successfully", "sms_ids": ids}
        if errors:
            result["errors"] = errors
        return result

    def render(message: Message, raw: int | str, tz: Any) -> dict[str, Any]:
        extra = message.extra or {}
        sent = None
        if raw in (6, 7, 8):
            sent_at = delivery.status_started_at(
                GATEWAY, message.recipient, message.send_at, 6, config.delivery_seconds
            )
            sent = format_time(sent_at or message.send_at, TIME_FORMATS[0], tz)
        return {
            "id": message.id,
            "sendto": message.recipient,
            "body": message.body,
            "customerid": None if message.reference is None else int(message.reference),
            "status": raw,
            "statustitle": STATUS_TITLES.get(int(raw), "unknown"),
            "deviceid": extra.get("device_id"),
            "sim": extra.get("sim"),
            "urgent": extra.get("urgent") or None,
            "created": _stamp(message.created_at, tz),
            "senttime": sent,
            "timetosend": message.schedule,
            "paketid": extra.get("paket_id"),
            "pakettitle": extra.get("paket_title"),
            "paketbody": message.body if "paket_id" in extra else None,
        }

    def render_reply(reply: Reply, tz: Any) -> dict[str, Any]:
        extra = reply.extra or {}
        return {
            "id": reply_id(reply),
            "sendto": reply.sender,
            "body": reply.text,
            "customerid": None,
            "status": INCOMING,
            "statustitle": STATUS_TITLES[INCOMING],
            "deviceid": extra.get("device_id"),
            "sim": extra.get("sim"),
            "urgent": None,
            "created": _stamp(reply.received_at, tz),
            "senttime": None,
            "timetosend": None,
            "paketid": None,
            "pakettitle": None,
            "paketbody": None,
        }

    @endpoint("getallsms")
    def getallsms(fields: dict[str, Any]) -> dict[str, Any]:
        """Messages, filtered by device_id, status, begindate, enddate, sim, customerid, phone."""
        name = text_field(fields, "timezone")
        tz = state.zone(GATEWAY) if name is None else zone(name)
        if tz is None:
            raise Refused("Unknown timezone")
        wanted: dict[str, int | None] = {}
        for name in ("device_id", "status", "sim", "onlycount", "orderbydesc"):
            text = text_field(fields, name)
            wanted[name] = None if text is None else as_int(text)
            if text is not None and wanted[name] is None:
                raise Refused(f"Field {name} must be an integer")
        begin = end = None
        if text_field(fields, "begindate"):
            begin = parse_time(fields["begindate"], TIME_FORMATS, tz)
            if begin is None:
                raise Refused("Field begindate must be YYYY-MM-DD or YYYY-MM-DD HH:MM:SS")
        if text_field(fields, "enddate"):
            end = parse_time(fields["enddate"], TIME_FORMATS, tz)
            if end is None:
                raise Refused("Field enddate must be YYYY-MM-DD or YYYY-MM-DD HH:MM:SS")
            if len(str(fields["enddate"]).strip()) == 10:  # a bare date includes the whole day
                end += 86_400 - 1e-6
        customerid = text_field(fields, "customerid")
        phone = "".join(ch for ch in text_field(fields, "phone") or "" if ch.isdigit())
        if customerid is not None:
            if not is_digits(customerid):
                raise Refused("Field customerid must be an integer of at most 20 digits")
            rows = messages.rows
            candidates: Any = [rows[key] for key in state.by_customerid.get(str(int(customerid)), ())]
        else:
            candidates = messages.between(begin, end)  # by bisection: the filters below still apply

        now = state.now()
        device_id, status, sim = wanted["device_id"], wanted["status"], wanted["sim"]
        if status is not None and status not in MESSAGE_STATUSES:
            candidates = ()  # e.g. status 5, incoming: no sent message ever shows it
        received: list[Reply] = []
        if customerid is None and status in (None, INCOMING):  # an incoming SMS has no customerid
            # Arrived (by now) and within begindate/enddate: by bisection on the arrival time.
            for reply in state.replies_between(GATEWAY, begin, now if end is None else min(end, now)):
                extra = reply.extra or {}
                if (
                    (device_id is not None and extra.get("device_id") != device_id)
                    or (sim is not None and extra.get("sim") != sim)
                    or (phone and phone not in reply.sender)
                ):
                    continue
                received.append(reply)
        found: list[tuple[Message, int | str]] = []
        for message in candidates:
            extra = message.extra or {}
            if device_id is not None and extra.get("device_id") != device_id:
                continue
            if sim is not None and extra.get("sim") != sim:
                continue
            if (begin is not None and message.created_at < begin) or (
                end is not None and message.created_at > end
            ):
                continue
            if phone and phone not in message.recipient:
                continue
            raw = state.status(message, now)
            if status is not None and raw != status:
                continue
            found.append((message, raw))
        if wanted["onlycount"]:
            return {"message": "OK", "count": len(found) + len(received)}
        rows = [render(message, raw, tz) for message, raw in found]
        if received:  # in time order among the messages, as the gateway lists them
            replies = ((reply.received_at, render_reply(reply, tz)) for reply in received)
            sent = ((message.created_at, row) for (message, _), row in zip(found, rows, strict=True))
            rows = [row for _, row in heapq.merge(sent, replies, key=itemgetter(0))]
        if wanted["orderbydesc"]:
            rows.reverse()
        smss = {str(row["id"]): row for row in rows}
        return {"message": "OK", "count": len(rows), "smss": smss}

    def find_reply(sms_id: int | None) -> Reply | None:
        """The received message ``sms_id`` names, once it has arrived."""
        if sms_id is None or sms_id <= REPLY_ID_BASE:
            return None
        reply = state.replies[GATEWAY].get(str(sms_id - REPLY_ID_BASE))
        return reply if reply is not None and reply.received_at <= state.now() else None

    @endpoint("getsmsstatus")
    def getsmsstatus(fields: dict[str, Any]) -> dict[str, Any]:
        """The status of one message."""
        sms_id = as_int(_required(fields, "sms_id"))
        message = messages.get(str(sms_id)) if sms_id is not None else None
        if message is None:
            reply = find_reply(sms_id)
            if reply is None:
                raise Refused("Sms not found")
            return {
                "sms_id": reply_id(reply),
                "status": INCOMING,
                "status_description": STATUS_TITLES[INCOMING].capitalize(),
                "message": "OK",
            }
        raw = state.status(message, state.now())
        return {
            "sms_id": message.id,
            "status": raw,
            "status_description": STATUS_TITLES.get(int(raw), "unknown").capitalize(),
            "message": "OK",
        }

    # ------------------------------------------------------------------ tags, contacts, pakets
    @endpoint("savetag")
    def savetag(fields: dict[str, Any]) -> dict[str, Any]:
        """Create a tag (contact list)."""
        title = _required(fields, "title")
        tag_id = 8_300 + state.next_seq("smsgateway24.tag")
        now = state.now()
        state.add_group(Group(gateway=GATEWAY, id=tag_id, name=title, created_at=now, updated_at=now))
        return {"tag_id": tag_id, "message": "OK"}

    @endpoint("savecontact")
    def savecontact(fields: dict[str, Any]) -> dict[str, Any]:
        """Add a contact to a tag (``ctag_id``, or ``tag_id`` as the PHP SDK sends it)."""
        phone = _required(fields, "phone")
        tag_text = text_field(fields, "ctag_id") or text_field(fields, "tag_id")
        if tag_text is None:
            raise Refused("Field ctag_id is required")
        if "fullname" not in fields:
            raise Refused("Field fullname is required")
        tag_id = as_int(tag_text)
        if tag_id is None or groups.get(str(tag_id)) is None:
            raise Refused("Tag not found")
        recipient = e164_from_plus(phone)
        if recipient is None:
            raise Refused(f"Phone number {phone} is not valid")
        contact_id = 15_954_700 + state.next_seq("smsgateway24.contact")
        now = state.now()
        fullname = str(fields.get("fullname") or "")
        state.add_contact(
            Contact(
                gateway=GATEWAY,
                id=contact_id,
                list_id=tag_id,
                phone=recipient,
                created_at=now,
                updated_at=now,
                first_name=fullname,
                fields={"fullname": fullname},
            )
        )
        return {"contact_id": contact_id, "message": "ok"}

    @endpoint("savepaket")
    def savepaket(fields: dict[str, Any]) -> dict[str, Any]:
        """Create a newsletter: one message per distinct phone of the given tags."""
        title = _required(fields, "title")
        values = sms_values({**fields, "timetosend": None, "customerid": None, "urgent": 0})
        tag_ids = []
        for part in _required(fields, "tags").split(","):
            tag_id = as_int(part.strip())
            if tag_id is None or groups.get(str(tag_id)) is None:
                raise Refused(f"Tag {part.strip()} not found")
            tag_ids.append(tag_id)
        now = state.now()
        when_text = text_field(fields, "time_to_send")
        if when_text not in (None, "0"):
            values["send_at"] = parse_time(when_text, PAKET_TIME_FORMATS, state.zone(GATEWAY))
            if values["send_at"] is None:
                raise Refused("Field time_to_send must be DD.MM.YYYY H:i:s")
            values["timetosend"] = format_time(values["send_at"], TIME_FORMATS[0], state.zone(GATEWAY))
        paket_id = 5_000 + state.next_seq("smsgateway24.paket")
        paket = {"paket_id": paket_id, "paket_title": title}
        phones = dict.fromkeys(
            contact.phone for tag_id in tag_ids for contact in state.members_of(GATEWAY, tag_id)
        )
        for phone in phones:
            store(phone, values, now, paket)
        state.add_newsletter(
            GATEWAY,
            str(paket_id),
            {
                "id": paket_id,
                "title": title,
                "body": values["body"],
                "tags": tag_ids,
                "device_id": values["device_id"],
                "sim": values["sim"],
                "send_at": values["send_at"] or now,
                "recipients": len(phones),
                "created_at": now,
            },
        )
        return {"paket_id": paket_id, "message": "OK"}

    # ------------------------------------------------------------------ auth and devices
    @endpoint("gettoken", auth="none")
    def gettoken(fields: dict[str, Any]) -> dict[str, Any]:
        """A token for ``email`` and ``pass``; it expires after the token ttl (sandbox clock)."""
        _required(fields, "email")
        _required(fields, "pass")
        if not login_ok(fields):
            raise Refused(LOGIN_ERROR)
        return {"message": "OK", "token": state.issue_token()}

    @endpoint("getalldevices")
    def getalldevices(fields: dict[str, Any]) -> dict[str, Any]:
        """The account's phones."""
        lastseen = _stamp(state.now() - 5, UTC)
        devices = {str(device_id): {**device, "lastseen": lastseen} for device_id, device in DEVICES.items()}
        return {"message": "OK", "count": len(devices), "device": devices}

    @endpoint("getdevicestatus")
    def getdevicestatus(fields: dict[str, Any]) -> dict[str, Any]:
        """When a phone last called the server."""
        device_id = _device_id(fields)
        return {
            "device_id": device_id,
            "title": DEVICES[device_id]["title"],
            "lastseen": _stamp(state.now() - 5, UTC),
            "message": "OK",
        }

    async def unknown(request: Request) -> Response:
        return respond({"error": 1, "message": "Unknown method"}, 404)

    router.add_api_route("/{name}", unknown, methods=["GET", "POST"], include_in_schema=False)

    return router
