"""Field validation shared by the three fake gateways: phone numbers, SMS segments and dates.

Deliberately independent from the provider's clients: the sandbox checks them, so it must not reuse
their code (a bug there would otherwise be invisible here). Phone numbers are judged as phonenumbers
judges them, through the compiled copy of its metadata (``airflow_provider_sms.phones``, part of the
model and compared with phonenumbers itself by tests/test_phones.py) where that can decide.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from airflow_provider_sms import phones

UTC = timezone.utc

# Characters a phone's keypad or a spreadsheet may put in a number; SmsGateway24 ("all characters are
# allowed") ignores them, the two JSON APIs do not.
_SEPARATORS = str.maketrans("", "", " -.()/\u00a0")


def _canonical(digits: str) -> str | None:
    """``+digits`` in canonical E.164 if phonenumbers calls it a valid number, else None."""
    verdict = phones.international(digits)  # a few µs; None when only phonenumbers can tell
    if verdict is None:
        return _canonical_by_phonenumbers(digits)
    return verdict if type(verdict) is str else None


@lru_cache(maxsize=1 << 16)  # parsing costs ~30 µs per number
def _canonical_by_phonenumbers(digits: str) -> str | None:
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _digits_only(text: str) -> bool:
    return 0 < len(text) <= 17 and text.isascii() and text.isdigit()


def e164_from_digits(raw: object) -> str | None:
    """Smstools and TextBoost numbers: country code and digits, no ``+`` (a leading ``+`` is tolerated).

    Returns the canonical E.164 form (``+31612345678``) or None when the number is not valid.
    """
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        raw = str(raw)
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if text.startswith("+"):
        text = text[1:]
    return _canonical(text) if _digits_only(text) else None


def e164_from_plus(raw: object) -> str | None:
    """SmsGateway24 numbers: ``+`` and digits; spaces, dashes, dots and brackets are ignored.

    A number without ``+`` is refused although the real phone would dial it as a national number:
    the provider promises E.164, and a sandbox that guessed the country would hide that bug.
    """
    if not isinstance(raw, str):
        return None
    text = raw.strip().translate(_SEPARATORS)
    if not text.startswith("+") or not _digits_only(text[1:]):
        return None
    return _canonical(text[1:])


def digits(e164: str) -> str:
    """The ``+``-less form the JSON gateways show (``31612345678``)."""
    return e164[1:]


# GSM 03.38: the basic set costs one septet, the extension set two (escape + character).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


_GSM_ALL = _GSM_BASIC | _GSM_EXTENDED


@lru_cache(maxsize=1024)  # a batch repeats its text for every recipient
def count_segments(text: str) -> int:
    """Number of SMS parts a text needs (GSM-7: 160/153 septets, otherwise UCS-2: 70/67 units)."""
    chars = set(text)  # set algebra runs in C: no per-character Python loop
    if chars <= _GSM_ALL:
        septets = len(text) + sum(text.count(char) for char in chars & _GSM_EXTENDED)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def parse_time(value: object, formats: tuple[str, ...], tz: ZoneInfo | timezone = UTC) -> float | None:
    """Epoch seconds of ``value`` read with the first matching ``strptime`` format in ``tz``, else None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    for fmt in formats:
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return parsed.replace(tzinfo=tz).timestamp()
    return None


# Cached: the messages of one batch share their timestamps, and strftime dominated list rendering.
@lru_cache(maxsize=1 << 16)
def format_time(ts: float, fmt: str, tz: ZoneInfo | timezone = UTC) -> str:
    """``ts`` (epoch seconds) rendered with a ``strftime`` format in ``tz``."""
    return datetime.fromtimestamp(ts, tz).strftime(fmt)


def iso_utc(ts: float) -> str:
    """ISO 8601 in UTC with microseconds and ``Z``, as Laravel serialises dates."""
    return format_time(ts, "%Y-%m-%dT%H:%M:%S.%fZ")


def zone(name: str | None) -> ZoneInfo | timezone | None:
    """The time zone called ``name`` (UTC when empty), or None when it does not exist."""
    if not name or name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


# Longer digit strings are no id, page or count of any gateway (and int() refuses over 4,300 digits).
MAX_INT_DIGITS = 20
# The largest page number the list endpoints take (a signed 32-bit column, as PHP platforms use).
MAX_PAGE = 2**31 - 1


def as_int(value: object) -> int | None:
    """An int from an int or a string of at most 20 ASCII digits (optionally signed), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        body = text[1:] if text[:1] in "+-" else text
        if body.isascii() and body.isdigit() and len(body) <= MAX_INT_DIGITS:
            return int(text)
    return None


def is_digits(text: str) -> bool:
    """ASCII digits only, at most 20 of them (an integer column of the real gateway)."""
    return 0 < len(text) <= MAX_INT_DIGITS and text.isascii() and text.isdigit()


def as_flag(value: object) -> bool | None:
    """A boolean from JSON booleans, 0/1 or the usual words; None when it is none of those."""
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
    return None


def sender_is_valid(sender: str, max_digits: int) -> bool:
    """A sender is a number (``+`` optional, at most ``max_digits`` characters) or ≤ 11 alphanumerics."""
    number = sender[1:] if sender.startswith("+") else sender
    if number.isascii() and number.isdigit():
        return len(sender) <= max_digits
    return 0 < len(sender) <= 11 and sender.isascii() and sender.replace(" ", "").isalnum()
