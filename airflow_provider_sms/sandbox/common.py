"""Request parsing and responses shared by the gateway routers.

Bodies are parsed by hand (``json.loads``, ``parse_qsl``) rather than through pydantic models:
a 1,000-recipient batch must cost microseconds per recipient, and each gateway words its own
validation errors anyway.
"""

from __future__ import annotations

import codecs
import json
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import JSONResponse

GATEWAY_PREFIXES = (
    ("/v1/", "smstools"),
    ("/getdata/", "smsgateway24"),
    ("/api/v3/", "textboost"),
    ("/api/http/", "textboost"),
)


class BadBody(ValueError):
    """The request body is not what the endpoint accepts (not JSON, not an object...)."""


def gateway_of(path: str) -> str | None:
    """Which gateway API a request path belongs to (None for the admin API and the status page)."""
    for prefix, gateway in GATEWAY_PREFIXES:
        if path.startswith(prefix):
            return gateway
    return None


def respond(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=headers)


async def read_json(request: Request) -> Any:
    """The JSON body (None when empty); ``BadBody`` when it is not JSON."""
    body = await request.body()
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError as exc:
        raise BadBody(f"the body is not valid JSON: {exc}") from exc


async def read_fields(request: Request) -> dict[str, Any]:
    """Query parameters merged with the body's fields (JSON object, urlencoded or multipart form).

    Body fields win over query parameters with the same name.
    """
    fields: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    if not body.strip():
        return fields
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form()
        except Exception as exc:  # a malformed body, or python-multipart missing
            raise BadBody(f"the multipart body cannot be read: {exc}") from exc
        fields.update(form.multi_items())
    elif "json" in content_type or body.lstrip()[:1] in (b"{", b"["):
        data = await read_json(request)
        if not isinstance(data, dict):
            raise BadBody("the JSON body must be an object")
        fields.update(data)
    else:
        fields.update(parse_form(body))
    return fields


def _unquote(raw: bytes) -> str:
    data = raw.replace(b"+", b" ")
    if b"%" in data:
        # "%HH" → "\xHH", decoded in C: 10x faster than urllib on a 1,000-row addalotofsms body.
        data = codecs.escape_decode(data.replace(b"\\", b"\\\\").replace(b"%", b"\\x"))[0]
    return data.decode("utf-8", "replace")


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict (the last of repeated names wins)."""
    try:
        fields = {}
        for pair in body.split(b"&"):
            if pair:
                name, _, value = pair.partition(b"=")
                fields[_unquote(name)] = _unquote(value)
        return fields
    except ValueError:  # a malformed %-escape: let the lenient standard parser decide
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def text_field(fields: dict[str, Any], name: str) -> str | None:
    """A field as text: strings stripped, numbers converted; None when missing or blank."""
    value = fields.get(name)
    if value is None or isinstance(value, bool | dict | list):
        return None
    text = str(value).strip()
    return text or None
