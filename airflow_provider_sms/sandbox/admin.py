"""Admin and inspection API (``/_sandbox/...``); the human-readable status page ``/`` is ``page.py``.

None of these routes is counted as gateway traffic or ever faulted.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from airflow_provider_sms.sandbox.common import BadBody, read_json, respond
from airflow_provider_sms.sandbox.faults import FAULT_KINDS, FaultConfig, FaultInjector
from airflow_provider_sms.sandbox.state import GATEWAYS, Contact, Message, SandboxState
from airflow_provider_sms.sandbox.validation import iso_utc


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
        """Clear messages, contacts, lists, newsletters, counters; restore balances and the clock."""
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

    @router.post("/expire-tokens")
    async def expire_tokens() -> dict[str, Any]:
        """Invalidate every SmsGateway24 token now."""
        state.expire_tokens()
        return {"status": "ok"}

    return router
