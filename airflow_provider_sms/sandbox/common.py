"""Request parsing and responses shared by the gateway routers.

Bodies are parsed by hand (``msgspec``/``json``, ``parse_qsl``) rather than through pydantic models:
a 1,000-recipient batch must cost microseconds per recipient, and each gateway words its own
validation errors anyway. Answers are encoded by msgspec too (a 2,000-message page in a few ms).
"""

from __future__ import annotations

import codecs
import hmac
import json
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from fastapi import Request, Response
from fastapi.responses import JSONResponse

GATEWAY_PREFIXES = (
    ("/v1/", "smstools"),
    ("/getdata/", "smsgateway24"),
    ("/api/v3/", "textboost"),
    ("/api/http/", "textboost"),
)


# No gateway request nests deeper than a few levels; a cap keeps a hostile body from reaching
# Python's recursion limit in the parser, or later in rendering or saving what was stored.
MAX_JSON_DEPTH = 32


class BadBody(ValueError):
    """The request body is not what the endpoint accepts (not JSON, not an object...)."""


class TooDeep(BadBody):
    """The JSON nests deeper than ``MAX_JSON_DEPTH``."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# Strict JSON: Python's parser would also take NaN and Infinity, which no gateway sends.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _nested_deeper(data: Any, limit: int) -> bool:
    """Whether ``data`` has containers more than ``limit`` levels deep (iterative: no recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def loads_json(raw: str | bytes) -> Any:
    """Parse strict JSON nested at most ``MAX_JSON_DEPTH`` levels; ``BadBody`` otherwise."""
    try:
        try:
            # msgspec (several times faster) reads what json reads, to the same values; whatever it
            # refuses (not UTF-8, a BOM, escaped lone surrogates, 1e400...) goes to json, which
            # decides as before: same value, or the same error.
            data = msgspec.json.decode(raw)
            text = raw
        except ValueError:  # msgspec.DecodeError, or a text with lone surrogates msgspec cannot read
            text = raw.decode(json.detect_encoding(raw), "surrogatepass") if isinstance(raw, bytes) else raw
            data = _DECODER.decode(text)
    except RecursionError:
        raise TooDeep(f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as exc:  # also UnicodeDecodeError
        raise BadBody(f"the body is not valid JSON: {exc}") from exc
    # Fewer brackets than the cap cannot nest deeper than it: most bodies skip the walk.
    brackets = (b"[", b"{") if isinstance(text, bytes) else ("[", "{")
    if (
        isinstance(data, dict | list)
        and sum(map(text.count, brackets)) > MAX_JSON_DEPTH
        and _nested_deeper(data, MAX_JSON_DEPTH)
    ):
        raise TooDeep(f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep")
    return data


def gateway_of(path: str) -> str | None:
    """Which gateway API a request path belongs to (None for the admin API and the status page)."""
    for prefix, gateway in GATEWAY_PREFIXES:
        if path.startswith(prefix):
            return gateway
    return None


def credentials_match(*pairs: tuple[str, str]) -> bool:
    """Whether each given credential equals the configured one, every pair compared in constant
    time (whatever the outcome of the others)."""
    matches = [hmac.compare_digest(given.encode(), expected.encode()) for given, expected in pairs]
    return all(matches)


def page_items(items: Iterable[Any], page: int, size: int, render: Callable[[Any], Any]) -> list[Any]:
    """The rendered items of page ``page`` (from 1) of ``size`` items each.

    A sequence is sliced (a state's ``Table.ordered()`` slices at the cost of the page); any other
    iterable is walked from its start.
    """
    start = (page - 1) * size
    chosen = (
        items[start : start + size] if isinstance(items, Sequence) else islice(items, start, start + size)
    )
    return [render(item) for item in chosen]


def respond(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``data`` as a JSON answer (compact, UTF-8, as ``JSONResponse`` writes it)."""
    try:
        content = msgspec.json.encode(data)
    except (TypeError, ValueError, OverflowError):  # what msgspec cannot write: JSONResponse decides
        return JSONResponse(data, status_code=status, headers=headers)
    return Response(content, status_code=status, headers=headers, media_type="application/json")


async def read_json(request: Request) -> Any:
    """The JSON body (None when empty); ``BadBody`` when it is not JSON."""
    body = await request.body()
    if not body.strip():
        return None
    return loads_json(body)


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


def wire_party(party: str | None) -> str | None:
    """Our side of a reply as the JSON gateways write numbers: an E.164 number without ``+``, a
    sender id as it is."""
    if party and party.startswith("+") and party[1:].isdigit():
        return party[1:]
    return party
