"""Admin and inspection API (``/_sandbox/...``); the human-readable status page ``/`` is ``page.py``.

None of these routes is counted as gateway traffic or ever faulted.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from airflow_provider_sms.sandbox import replies, smsgateway24, smstools, textboost
from airflow_provider_sms.sandbox.common import BadBody, read_json, respond
from airflow_provider_sms.sandbox.config import DEVICE_IDS
from airflow_provider_sms.sandbox.faults import FAULT_KINDS, FaultConfig, FaultInjector
from airflow_provider_sms.sandbox.state import (
    ACCOUNT_NUMBERS,
    BILLED_GATEWAYS,
    GATEWAYS,
    INJECTED,
    Contact,
    Message,
    Reply,
    SandboxState,
)
from airflow_provider_sms.sandbox.validation import e164_from_digits, iso_utc


def _bad_request(message: str) -> JSONResponse:
    return respond({"detail": message}, 400)


def _as_float(number: int | float) -> float:
    """``number`` as a float; a JSON integer too big for one becomes an infinity (then refused)."""
    try:
        return float(number)
    except OverflowError:
        return math.inf if number > 0 else -math.inf


def _gateway_filter(request: Request) -> str | None:
    gateway = request.query_params.get("gateway") or None
    if gateway is not None and gateway not in GATEWAYS:
        raise BadBody(f"unknown gateway {gateway!r}; use one of {', '.join(GATEWAYS)}")
    return gateway


def message_view(state: SandboxState, message: Message, now: float) -> dict[str, Any]:
    """One stored message as ``/_sandbox/messages`` lists it."""
    raw = state.status(message, now)
    view: dict[str, Any] = {
        "gateway": message.gateway,
        "id": message.id,
        "recipient": message.recipient,
        "body": message.body,
        "status": raw,
        "normalized_status": state.normalized(message, raw, now),
        "created_at": iso_utc(message.created_at),
        "send_at": iso_utc(message.send_at),
        "sender": message.sender,
        "type": message.kind,
        "segments": message.segments,
        "count": state.arrivals[(message.gateway, message.recipient, message.body)],
        "extra": message.extra or {},
    }
    if message.gateway == "smstools":
        view["reference"] = message.reference
    elif message.gateway == "smsgateway24":
        view["customerid"] = message.reference
    return view


REPLY_IDS = {
    "smstools": smstools.reply_id,
    "smsgateway24": smsgateway24.reply_id,
    "textboost": textboost.reply_id,
}


def reply_view(reply: Reply, now: float) -> dict[str, Any]:
    """One reply as ``/_sandbox/replies`` lists it: ``id`` is the gateway's own id of it."""
    return {
        "gateway": reply.gateway,
        "id": REPLY_IDS[reply.gateway](reply),
        "from": reply.sender,
        "to": reply.recipient,
        "text": reply.text,
        "received_at": iso_utc(reply.received_at),
        "arrived": reply.received_at <= now,
        "origin": reply.origin,
        "keyword": replies.keyword(reply.text),
        "in_reply_to": reply.in_reply_to,
        "extra": reply.extra or {},
    }


def _new_reply(state: SandboxState, body: Any) -> Reply:
    """The reply a ``POST /_sandbox/replies`` body describes; ``BadBody`` when it is not one."""
    usage = (
        'expected {"gateway": "smstools|smsgateway24|textboost", "from": "<phone>", "text": "<text>", '
        '"to": "<optional: our number or sender id; SmsGateway24: a device id>", '
        '"received_at": "<optional ISO 8601 time, naive is UTC>"}'
    )
    if not isinstance(body, dict):
        raise BadBody(usage)
    gateway, text = body.get("gateway"), body.get("text")
    if gateway not in GATEWAYS:
        raise BadBody(f"unknown gateway {gateway!r}; use one of {', '.join(GATEWAYS)}")
    if not isinstance(text, str) or not text:
        raise BadBody(f"text must be a non-empty string; {usage}")
    sender = e164_from_digits(body.get("from"))
    if sender is None:
        raise BadBody(f"from must be a valid phone number (country code first), got {body.get('from')!r}")
    to, extra = body.get("to"), {}
    if gateway == "smsgateway24":
        device = DEVICE_IDS[0] if to in (None, "") else to
        if isinstance(device, bool) or str(device).strip() not in {str(d) for d in DEVICE_IDS}:
            raise BadBody(f"to must be one of the devices {', '.join(map(str, DEVICE_IDS))}, got {to!r}")
        extra = {"device_id": int(device), "sim": 0}
        recipient: str | None = str(int(device))
    elif to in (None, ""):
        recipient = ACCOUNT_NUMBERS[gateway]
    elif isinstance(to, str | int) and not isinstance(to, bool):
        recipient = e164_from_digits(to) or str(to).strip()
    else:
        raise BadBody(f"to must be a number or a sender id, got {to!r}")
    received_at = state.now()
    if body.get("received_at") not in (None, ""):
        try:
            moment = datetime.fromisoformat(str(body["received_at"]).strip())
        except ValueError:
            raise BadBody(f"received_at must be an ISO 8601 time, got {body['received_at']!r}") from None
        received_at = (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
    return Reply(
        gateway=gateway,
        seq=state.next_seq("reply"),
        sender=sender,
        recipient=recipient,
        text=text,
        received_at=received_at,
        origin=INJECTED,
        extra=extra or None,
    )


def contact_view(state: SandboxState, contact: Contact) -> dict[str, Any]:
    """One stored contact as ``/_sandbox/contacts`` lists it."""
    return {
        "gateway": contact.gateway,
        "id": contact.id,
        "list_id": contact.list_id,
        "phone": contact.phone,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "fields": contact.fields or {},
        "created_at": iso_utc(contact.created_at),
        "count": state.contact_arrivals[(contact.gateway, str(contact.list_id), contact.phone)],
    }


def _reply_counts(state: SandboxState, gateway: str, now: float) -> dict[str, int]:
    arrived = len(state.arrived_replies(gateway, now))
    return {"arrived": arrived, "pending": len(state.replies[gateway]) - arrived}


def collect_stats(state: SandboxState, injector: FaultInjector) -> dict[str, Any]:
    """Counts of requests, messages (per raw and normalised status), contacts, lists and faults."""
    now = state.now()
    duplicates = Counter(gateway for (gateway, _, _), count in state.arrivals.items() if count > 1)
    messages: dict[str, Any] = {}
    for gateway in GATEWAYS:
        raw_counts: Counter[str] = Counter()
        normalized: Counter[str] = Counter()
        for message in state.messages[gateway].rows.values():
            raw = state.status(message, now)
            raw_counts[str(raw)] += 1
            normalized[state.normalized(message, raw, now)] += 1
        messages[gateway] = {
            "total": len(state.messages[gateway]),
            "by_status": dict(raw_counts),
            "by_normalized_status": dict(normalized),
            "duplicates": duplicates[gateway],
        }
    by_endpoint: dict[str, dict[str, int]] = {gateway: {} for gateway in GATEWAYS}
    for (gateway, endpoint), count in sorted(state.requests.items()):
        by_endpoint[gateway][endpoint] = count
    return {
        "clock": {
            "now": iso_utc(now),
            "offset_seconds": state.clock.offset,
            "frozen": state.clock.frozen,
            "delivery_seconds": state.config.delivery_seconds,
            "timezones": dict(state.timezones),
        },
        "requests": {
            "total": sum(state.requests.values()),
            "by_gateway": {gateway: sum(by_endpoint[gateway].values()) for gateway in GATEWAYS},
            "by_endpoint": by_endpoint,
        },
        "messages": {"total": sum(item["total"] for item in messages.values()), "by_gateway": messages},
        "contacts": {"by_gateway": {gateway: len(state.contacts[gateway]) for gateway in GATEWAYS}},
        "lists": {"by_gateway": {gateway: len(state.groups[gateway]) for gateway in GATEWAYS}},
        "newsletters": {"by_gateway": {gateway: len(state.newsletters[gateway]) for gateway in GATEWAYS}},
        "replies": {
            "by_gateway": {gateway: _reply_counts(state, gateway, now) for gateway in GATEWAYS},
            "simulation": {"rate": state.reply_rate, "seconds": state.reply_seconds},
        },
        "balance": dict(state.balance),
        "faults": {
            "config": injector.config.to_dict(),
            "injected": {kind: injector.counts[kind] for kind in FAULT_KINDS},
        },
    }


def create_admin_router(state: SandboxState, injector: FaultInjector) -> APIRouter:
    """The ``/_sandbox`` routes, bound to ``state`` and ``injector``."""
    router = APIRouter(prefix="/_sandbox", tags=["Sandbox admin"])
    default_seed = state.config.seed

    @router.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness probe."""
        return {"status": "ok", "now": iso_utc(state.now())}

    @router.post("/reset")
    async def reset() -> dict[str, Any]:
        """Clear messages, replies, contacts, lists, newsletters, counters; restore balances, the clock
        and the reply simulation's settings."""
        state.reset()
        injector.reset_counts()
        return {"status": "ok"}

    @router.post("/advance")
    async def advance(request: Request) -> Any:
        """Move the sandbox clock forward by ``{"seconds": x}``."""
        try:
            body = await read_json(request)
        except BadBody as exc:
            return _bad_request(str(exc))
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            return _bad_request('expected {"seconds": <number of seconds, from 0 to 10 years>}')
        try:
            state.advance(_as_float(seconds))
        except ValueError as exc:
            return _bad_request(f"cannot advance the sandbox clock: {exc}")
        return {"now": iso_utc(state.now()), "offset_seconds": state.clock.offset}

    @router.post("/clock")
    async def set_clock(request: Request) -> Any:
        """Freeze the sandbox clock where it stands (``{"frozen": true}``: time then moves only through
        ``/advance``) or let it run with real time again; ``/reset`` restores the start-up setting."""
        try:
            body = await read_json(request)
        except BadBody as exc:
            return _bad_request(str(exc))
        frozen = body.get("frozen") if isinstance(body, dict) else None
        if not isinstance(frozen, bool):
            return _bad_request('expected {"frozen": true} or {"frozen": false}')
        state.set_frozen(frozen)
        return {"now": iso_utc(state.now()), "frozen": state.clock.frozen}

    @router.get("/timezone")
    async def get_timezone() -> dict[str, str]:
        """Each account's timezone, in which its schedule and date fields are read and written."""
        return dict(state.timezones)

    @router.post("/timezone")
    async def set_timezone(request: Request) -> Any:
        """Set ``{"timezone": "Europe/Berlin"}`` for every account, or for one with ``"gateway"``."""
        try:
            body = await read_json(request)
            if not isinstance(body, dict) or not isinstance(body.get("timezone"), str):
                raise BadBody('expected {"timezone": "<IANA name>", "gateway": "<optional gateway>"}')
            gateway = body.get("gateway")
            if gateway is not None and gateway not in GATEWAYS:
                raise BadBody(f"unknown gateway {gateway!r}; use one of {', '.join(GATEWAYS)}")
            state.set_timezone(body["timezone"], gateway)
        except ValueError as exc:  # BadBody too
            return _bad_request(str(exc))
        return dict(state.timezones)

    @router.get("/faults")
    async def get_faults() -> dict[str, Any]:
        """The fault settings in force."""
        return injector.config.to_dict()

    @router.post("/faults")
    async def set_faults(request: Request) -> Any:
        """Replace the fault settings (keys not given take their defaults; the seed the server's)."""
        try:
            body = await read_json(request)
            if not isinstance(body, dict):
                raise BadBody("expected a JSON object of fault settings")
            config = FaultConfig.from_dict(body, base=FaultConfig(seed=default_seed))
        except (BadBody, ValueError, TypeError) as exc:
            return _bad_request(str(exc))
        injector.configure(config)
        return config.to_dict()

    @router.delete("/faults")
    async def clear_faults() -> dict[str, Any]:
        """Stop injecting faults."""
        injector.configure(FaultConfig(seed=default_seed))
        return injector.config.to_dict()

    @router.get("/messages")
    async def list_messages(request: Request) -> Any:
        """Stored messages (``?gateway=``, ``?recipient=``, ``?duplicates=true`` to keep count > 1)."""
        try:
            gateway = _gateway_filter(request)
        except BadBody as exc:
            return _bad_request(str(exc))
        recipient = request.query_params.get("recipient")
        only_duplicates = request.query_params.get("duplicates", "").lower() in ("1", "true", "yes")
        now = state.now()
        views = []
        for message in state.iter_messages(gateway):
            if recipient and message.recipient != recipient:
                continue
            if only_duplicates and state.arrivals[(message.gateway, message.recipient, message.body)] < 2:
                continue
            views.append(message_view(state, message, now))
        return respond(views)  # a JSONResponse skips FastAPI's slow generic encoder on big lists

    @router.get("/contacts")
    async def list_contacts(request: Request) -> Any:
        """Stored contacts (``?gateway=``), each with how many times its (list, phone) arrived."""
        try:
            gateway = _gateway_filter(request)
        except BadBody as exc:
            return _bad_request(str(exc))
        return respond(
            [
                contact_view(state, contact)
                for gw in ((gateway,) if gateway else GATEWAYS)
                for contact in state.contacts[gw].rows.values()
            ]
        )

    @router.get("/stats")
    async def stats() -> dict[str, Any]:
        """Request, message, contact and fault counts."""
        return collect_stats(state, injector)

    @router.post("/balance")
    async def set_balance(request: Request) -> Any:
        """Set ``{"gateway": "smstools" | "textboost", "balance": x}``: the credits (Smstools) or SMS
        units (TextBoost) left; ``reset`` restores the starting balance."""
        try:
            body = await read_json(request)
            amount = body.get("balance") if isinstance(body, dict) else None
            gateway = body.get("gateway") if isinstance(body, dict) else None
            if (
                gateway not in BILLED_GATEWAYS
                or isinstance(amount, bool)
                or not isinstance(amount, int | float)
            ):
                raise BadBody(
                    f'expected {{"gateway": one of {", ".join(BILLED_GATEWAYS)}, "balance": <number>}}'
                )
            if not 0 <= _as_float(amount) < math.inf:
                raise BadBody("balance must be a finite number, 0 or more")
        except BadBody as exc:
            return _bad_request(str(exc))
        state.balance[gateway] = _as_float(amount)
        return dict(state.balance)

    @router.get("/replies")
    async def list_replies(request: Request) -> Any:
        """Replies (``?gateway=``), arrived or not yet, oldest first: ``id`` (the gateway's), ``from``,
        ``to``, ``text``, ``received_at``, ``arrived``, ``origin`` (simulated or injected),
        ``keyword`` (stop, start or null, by the sandbox's own rule), ``in_reply_to``, ``extra``."""
        try:
            gateway = _gateway_filter(request)
        except BadBody as exc:
            return _bad_request(str(exc))
        now = state.now()
        # Each gateway's replies are kept in this order already (sequence numbers are server-wide).
        rows = heapq.merge(
            *(state.reply_order[gw] for gw in ((gateway,) if gateway else GATEWAYS)),
            key=lambda reply: (reply.received_at, reply.seq),
        )
        return respond([reply_view(reply, now) for reply in rows])

    @router.post("/replies")
    async def inject_reply(request: Request) -> Any:
        """Receive a reply at a gateway: ``{"gateway", "from", "text", "to"?, "received_at"?}`` (default
        now; a later time shows it once the clock gets there). Answers the reply with its ``id``."""
        try:
            reply = _new_reply(state, await read_json(request))
        except BadBody as exc:
            return _bad_request(str(exc))
        state.add_reply(reply)
        return respond(reply_view(reply, state.now()), 201)

    @router.get("/reply-simulation")
    async def get_reply_simulation() -> dict[str, Any]:
        """The share of recipients who reply (``rate``) and the reply delay bound (``seconds``)."""
        return {"rate": state.reply_rate, "seconds": state.reply_seconds}

    @router.post("/reply-simulation")
    async def set_reply_simulation(request: Request) -> Any:
        """Set ``{"rate": 0..1, "seconds": x}`` (either may be left out) for messages sent from now on;
        ``{"rate": 0}`` turns simulated replies off. ``reset`` restores the start-up settings."""
        try:
            body = await read_json(request)
            if not isinstance(body, dict) or not set(body) <= {"rate", "seconds"}:
                raise BadBody('expected {"rate": <share from 0 to 1>, "seconds": <seconds>}')
            state.set_reply_simulation(body.get("rate"), body.get("seconds"))
        except ValueError as exc:  # BadBody too
            return _bad_request(str(exc))
        return {"rate": state.reply_rate, "seconds": state.reply_seconds}

    @router.post("/expire-tokens")
    async def expire_tokens() -> dict[str, Any]:
        """Invalidate every SmsGateway24 token now."""
        state.expire_tokens()
        return {"status": "ok"}

    return router
