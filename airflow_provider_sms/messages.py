"""The message model: normalised delivery statuses, phone numbers, segments and the value types."""

from __future__ import annotations

import enum
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, TypeVar

import pendulum
import phonenumbers

from airflow_provider_sms import phones

__all__ = [
    "Contact",
    "ContactResult",
    "Credit",
    "DeliveryStatus",
    "InboundMessage",
    "InvalidPhoneNumberError",
    "OptOutEvent",
    "OutboundMessage",
    "SegmentCount",
    "SendOutcome",
    "SendResult",
    "StatusReport",
    "body_hash",
    "count_segments",
    "map_status",
    "normalize_phone",
]


class DeliveryStatus(str, enum.Enum):
    """One status vocabulary for every gateway (see gateways.md, "Normalised delivery status")."""

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    REJECTED = "rejected"
    RECEIVED = "received"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value

    @property
    def is_final(self) -> bool:
        return self in _FINAL

    @property
    def rank(self) -> int:
        """Position in a message's life; a stored status is only replaced by a higher rank."""
        return _RANK[self]

    def advance(self, new: DeliveryStatus) -> DeliveryStatus:
        """The status to keep when ``new`` is observed after ``self``: never move backwards."""
        return new if new.rank > self.rank else self


_FINAL = frozenset(
    {DeliveryStatus.DELIVERED, DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED, DeliveryStatus.REJECTED}
)
# Final statuses share the top rank, so once final a message keeps its first outcome.
_RANK = {
    DeliveryStatus.UNKNOWN: 0,
    DeliveryStatus.SCHEDULED: 1,
    DeliveryStatus.QUEUED: 2,
    DeliveryStatus.SENDING: 3,
    DeliveryStatus.SENT: 4,
    DeliveryStatus.RECEIVED: 5,
    **dict.fromkeys(_FINAL, 5),
}


def map_status(raw: object, table: Mapping[str, DeliveryStatus]) -> DeliveryStatus:
    """Map a gateway's raw status through ``table`` (case-insensitive); unknown values stay ``UNKNOWN``."""
    if raw is None:
        return DeliveryStatus.UNKNOWN
    return table.get(str(raw).strip().lower(), DeliveryStatus.UNKNOWN)


# ---------------------------------------------------------------------------------------------------
# Phone numbers


class InvalidPhoneNumberError(ValueError):
    """A phone number that cannot be normalised to E.164; the message says why."""

    def __init__(self, raw: object, reason: str) -> None:
        self.raw = raw
        self.reason = reason
        super().__init__(f"invalid phone number {raw!r}: {reason}")


_PARSE_REASONS = phones.PARSE_REASONS
_LENGTH_REASONS = phones.LENGTH_REASONS
# "+" (or "00") and digits with the separators people write, all of which phonenumbers reads as
# punctuation (not as an extension or a second number): the compiled model's fast path.
_INTERNATIONAL = re.compile(r"(?:\+|00)[0-9 ().\-/]{3,61}")
_SEPARATORS = str.maketrans("", "", " ().-/")
_E164_TOO_LONG = "too long: E.164 allows at most 15 digits"


# The E.164 numbers normalize_phone gave lately, in two generations of at most _RECENT_MAX each: a
# bulk send checks a recipient as it reads the row and again as the hook puts the message on the
# wire, a few thousand numbers later; the second time is a dict probe instead of a check. The answer
# for an E.164 text never changes (it is its own answer, whatever the region), so the memo is exact.
_recent: dict[str, str] = {}
_older: dict[str, str] = {}
_RECENT_MAX = 1 << 13


def normalize_phone(raw: object, default_region: str | None = None) -> str:
    """Return ``raw`` as an E.164 string (``+4915123456789``) or raise :class:`InvalidPhoneNumberError`.

    Accepts spaces, dashes, dots, parentheses, a leading ``00`` and, with ``default_region``
    (ISO 3166 alpha-2, e.g. ``"DE"``), national numbers.
    """
    if type(raw) is str:
        e164 = _recent.get(raw) or _older.get(raw)
        if e164 is not None:
            return e164
        text = raw.strip()
    else:
        if raw is None or (isinstance(raw, float) and raw != raw):  # None or NaN from pandas
            raise InvalidPhoneNumberError(raw, "empty")
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)  # a numeric column read as float
        text = str(raw).strip()
    if not text:
        raise InvalidPhoneNumberError(raw, "empty")
    # An international number reads the same in every region: one cache entry, whoever asks.
    region = default_region.upper() if default_region and text[0] != "+" else None
    # International numbers are judged by the compiled metadata; the rest (and what it cannot
    # decide) by phonenumbers, cached: that costs 30-60 µs per number.
    e164 = _international(text, region) or _normalize(text, region)
    _remember(e164)
    return e164


def _remember(e164: str) -> None:
    global _recent, _older
    if len(_recent) >= _RECENT_MAX:  # a new generation; the one before it is forgotten
        _recent, _older = {}, _recent
    _recent[e164] = e164


def _international(text: str, region: str | None) -> str | None:
    """What :func:`_reference` answers for an international number, decided by the compiled metadata
    (:mod:`airflow_provider_sms.phones`) in a few µs; None when only phonenumbers can tell."""
    if text[0] == "+":
        digits = text[1:]
        if not (digits.isdigit() and digits.isascii()):
            if not _INTERNATIONAL.fullmatch(text):
                return None
            digits = digits.translate(_SEPARATORS)
    elif text[0] != "0":
        if not (text.isdigit() and text.isascii()):
            return None
        # Bare digits: parse refuses them for want of a region, then "+" and the digits is tried;
        # with a region, the digits are "+" and digits only when they start with its calling code.
        verdict = phones.international(text)
        if type(verdict) is str and len(verdict) <= 16:
            if region is None or text.startswith(_calling_code(region)):
                return verdict
        elif verdict is not None and region is None:
            raise InvalidPhoneNumberError(text, phones.UNKNOWN_CODE.reason)
        return None  # a national reading in the region comes first: phonenumbers decides
    elif _INTERNATIONAL.fullmatch(text):  # "00" and the digits
        text = "+" + text[2:]
        digits = text[1:].translate(_SEPARATORS)
    else:
        return None
    verdict = phones.international(digits)
    if type(verdict) is str:
        if len(verdict) > 16:  # phonenumbers' metadata accepts a few 16-digit numbers; E.164 stops at 15
            raise InvalidPhoneNumberError(text, _E164_TOO_LONG)
        return verdict
    if verdict is None or (verdict is phones.UNKNOWN_CODE and region is not None):
        return None  # with a region, parse retries the digits as dialled from there ("00" only)
    raise InvalidPhoneNumberError(text, verdict.reason)


@lru_cache(maxsize=256)
def _calling_code(region: str) -> str:
    return str(phonenumbers.country_code_for_region(region))


@lru_cache(maxsize=65536)
def _normalize(text: str, region: str | None) -> str:
    return _reference(text, region)


def _reference(text: str, region: str | None) -> str:
    """The phonenumbers path: what :func:`_international` must answer the same as, and the answer
    for whatever it cannot decide (national numbers, letters, odd characters...)."""
    if any(ch.isalpha() for ch in text):
        raise InvalidPhoneNumberError(text, "contains letters")
    if text.startswith("00"):
        text = "+" + text[2:]
    # Warehouses often store international numbers as bare digits ("4915123456789", the gateways'
    # own format). Read them so when they start with the region's country code, or fail nationally.
    bare_international = text.isdigit() and not text.startswith("0")
    if bare_international and region:
        country_code = str(phonenumbers.country_code_for_region(region))
        if text.startswith(country_code):
            try:
                return _parse_valid("+" + text, None)
            except InvalidPhoneNumberError:
                pass
    try:
        return _parse_valid(text, region)
    except InvalidPhoneNumberError:
        if bare_international:
            try:
                return _parse_valid("+" + text, None)
            except InvalidPhoneNumberError:
                pass
        raise


def _parse_valid(text: str, region: str | None) -> str:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumberError(text, _PARSE_REASONS.get(exc.error_type, str(exc))) from None
    if not phonenumbers.is_valid_number(number):
        possible = phonenumbers.is_possible_number_with_reason(number)
        reason = _LENGTH_REASONS.get(possible, "not a valid number for its country")
        raise InvalidPhoneNumberError(text, reason)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if len(e164) > 16:
        raise InvalidPhoneNumberError(text, _E164_TOO_LONG)
    return e164


# ---------------------------------------------------------------------------------------------------
# Segments (3GPP TS 23.038 GSM 7-bit default alphabet and its extension table)

_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("^{}\\[~]|€\f")
_GSM_ALL = _GSM_BASIC | _GSM_EXTENSION


@dataclass(frozen=True)
class SegmentCount:
    """How a text travels as SMS: its encoding, length in that encoding's units, and segment count."""

    encoding: str  # "GSM-7" or "UCS-2"
    characters: int  # user-perceived code points
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int

    @property
    def per_segment(self) -> int:
        single, multi = (160, 153) if self.encoding == "GSM-7" else (70, 67)
        return single if self.segments <= 1 else multi


@lru_cache(maxsize=4096)  # a campaign has few distinct texts, and hooks count them again
def count_segments(text: str) -> SegmentCount:
    """Count the SMS segments ``text`` needs: GSM-7 at 160/153 per segment, else UCS-2 at 70/67."""
    if _GSM_ALL.issuperset(text):
        units = len(text) + (0 if _GSM_BASIC.issuperset(text) else sum(map(text.count, _GSM_EXTENSION)))
        encoding, single, multi = "GSM-7", 160, 153
    else:
        units = len(text.encode("utf-16-le")) // 2  # astral characters take two units
        encoding, single, multi = "UCS-2", 70, 67
    segments = 1 if units <= single else -(-units // multi)
    return SegmentCount(encoding=encoding, characters=len(text), units=units, segments=segments)


# ---------------------------------------------------------------------------------------------------
# Value types: operators speak these, never a gateway's raw JSON.


@lru_cache(maxsize=4096)
def body_hash(body: str) -> str:
    """SHA-256 of a text as gateways store it (surrounding white space trimmed): what the ledger keeps
    of each text sent, and what look-ups compare."""
    return hashlib.sha256(body.strip().encode()).hexdigest()


@dataclass(frozen=True)
class OutboundMessage:
    """One SMS to send.

    ``to`` is E.164. ``key`` is the idempotency key the gateway stores with the message where it
    can (Smstools ``reference``, SmsGateway24 ``customerid``, which must be digits) so that a lost
    answer can be looked up. ``options`` carries gateway-specific send fields (``sim``, ``type``...).
    """

    to: str
    body: str
    key: str | None = None
    sender: str | None = None
    send_at: datetime | None = None
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    # For a look-up after an earlier try: the :func:`body_hash` of the text that try sent (the
    # template or the row may have changed since); look-ups match it instead of ``body``.
    sent_hash: str | None = None

    @property
    def text_hash(self) -> str:
        """What a look-up matches a listed message's text against."""
        return self.sent_hash or body_hash(self.body)


@dataclass(frozen=True)
class SendResult:
    """The gateway's answer for one :class:`OutboundMessage`, in the order they were given."""

    message: OutboundMessage
    accepted: bool
    message_id: str | None = None
    status: DeliveryStatus = DeliveryStatus.QUEUED
    error: str | None = None
    error_code: str | None = None

    @classmethod
    def rejected(cls, message: OutboundMessage, error: str, code: str | None = None) -> SendResult:
        """The gateway (or a check before it) refused ``message``; ``error`` says why."""
        return cls(message, accepted=False, status=DeliveryStatus.REJECTED, error=error, error_code=code)


@dataclass(frozen=True)
class SendOutcome:
    """What one message's ledger row becomes after its request or a look-up: its ledger ``state``
    (``accepted``, ``rejected``, ``pending``...), the gateway's id and status, or why it failed."""

    recipient: str
    state: str
    message_id: str | None = None
    status: str | None = None
    raw_status: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class StatusReport:
    """A message's status as the gateway reports it: normalised, with the raw value kept."""

    message_id: str
    status: DeliveryStatus
    raw_status: str | None
    recipient: str | None = None
    key: str | None = None
    body: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class InboundMessage:
    """A message a gateway received (a reply to one we sent, or any text to our number).

    ``sender`` is the phone that wrote it, in E.164 where it can be normalised, else as the gateway
    gave it (empty when the gateway did not say). ``recipient`` is our side as the gateway names it
    (our number, sender id or device), None when it does not say. ``message_id`` is the gateway's
    id as text: what makes a reply the same reply when it is read again.
    """

    gateway: str
    message_id: str
    sender: str
    recipient: str | None
    text: str
    received_at: datetime | None


@dataclass(frozen=True)
class Contact:
    """A contact in a gateway's list; ``phone`` is E.164, ``contact_id`` is the gateway's id once known."""

    phone: str
    first_name: str | None = None
    last_name: str | None = None
    birthday: date | None = None
    unsubscribed: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)
    contact_id: str | None = None

    @property
    def full_name(self) -> str | None:
        name = " ".join(part for part in (self.first_name, self.last_name) if part)
        return name or None


@dataclass(frozen=True)
class ContactResult:
    """The outcome of writing one :class:`Contact`, in input order."""

    contact: Contact
    accepted: bool
    contact_id: str | None = None
    error: str | None = None
    error_code: str | None = None


@dataclass(frozen=True)
class OptOutEvent:
    """A number opting out (``opted_out=True``: STOP) or back in (``False``: START) at ``since``.

    ``phone`` is E.164; ``since`` is when the reply or event happened (aware; the newer event of a
    number wins). ``source`` says where it came from (``"reply"``, ``"gateway list"``,
    ``"manual"``), ``source_reply_id`` which reply, ``keyword`` the word that decided it.
    """

    phone: str
    opted_out: bool
    since: datetime
    gateway: str | None = None
    source: str = "manual"
    source_reply_id: str | None = None
    keyword: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.since, datetime) or self.since.tzinfo is None:
            raise ValueError(f"OptOutEvent.since must be an aware datetime, got {self.since!r}")
        if not isinstance(self.opted_out, bool):
            raise ValueError(f"OptOutEvent.opted_out must be True or False, got {self.opted_out!r}")
        if not self.source:
            raise ValueError("OptOutEvent.source must say where the event came from")


@dataclass(frozen=True)
class Credit:
    """What is left on a gateway account: ``amount`` of money (``unit="currency"``, in
    ``currency``) or of SMS segments (``unit="segments"``)."""

    amount: float
    unit: str
    currency: str | None = None

    def __post_init__(self) -> None:
        if self.unit not in ("currency", "segments"):
            raise ValueError(f"Credit.unit must be 'currency' or 'segments', got {self.unit!r}")


# ---------------------------------------------------------------------------------------------------
# Delivery progress: what the sensor, the trigger and the report share.

# How far before a recorded send time a look-up or a status listing starts (clock skew between us
# and the gateway).
CLOCK_SKEW = timedelta(minutes=10)


def as_datetime(value: Any) -> datetime | None:
    """A datetime from a datetime or an ISO-8601 text (as SQLite and templates hand them over)."""
    if value is None or isinstance(value, datetime):
        return value
    return pendulum.parse(str(value))


def as_utc(value: datetime) -> pendulum.DateTime:
    """``value`` as an aware pendulum time in UTC; a naive value (a pendulum one included) is UTC.

    ``pendulum.instance(naive, tz="UTC")`` is no substitute: it leaves a naive pendulum
    ``DateTime`` naive, which then compares as local time or not at all.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return pendulum.instance(value).in_timezone("UTC")


# Statuses that end a message without delivering it.
FAILED_STATUSES = frozenset({DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED, DeliveryStatus.REJECTED})
# Listed in ``counts`` for ids the gateway did not (yet) list.
MISSING = "missing"

SUCCESS, FAILED, TIMEOUT, ERROR = "success", "failed", "timeout", "error"


@dataclass(frozen=True)
class DeliveryProgress:
    """How far a set of messages has come: counts per normalised status (``missing`` for unlisted)."""

    total: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def final(self) -> int:
        return sum(n for status, n in self.counts.items() if status != MISSING and _status(status).is_final)

    @property
    def failed(self) -> int:
        return sum(
            n for status, n in self.counts.items() if status != MISSING and _status(status) in FAILED_STATUSES
        )

    @property
    def final_ratio(self) -> float:
        return self.final / self.total if self.total else 1.0

    @property
    def failed_ratio(self) -> float:
        return self.failed / self.total if self.total else 0.0

    def outcome(self, min_final_ratio: float, max_failed_ratio: float | None) -> str | None:
        """``failed``, ``success`` or None (keep waiting). Final statuses never change, so once the
        failed share is over the limit it stays over: there is no point waiting for the rest."""
        if max_failed_ratio is not None and self.failed_ratio > max_failed_ratio:
            return FAILED
        if self.final_ratio >= min_final_ratio:
            return SUCCESS
        return None

    def summary(self) -> str:
        counts = ", ".join(f"{status} {n}" for status, n in sorted(self.counts.items()))
        return (
            f"{self.final} of {self.total} messages final ({self.final_ratio:.1%}), "
            f"{self.failed} not delivered ({self.failed_ratio:.1%})" + (f"; {counts}" if counts else "")
        )

    def payload(self, status: str, message: str) -> dict[str, Any]:
        """The body of a :class:`TriggerEvent` (and the sensor's XCom)."""
        return {
            "status": status,
            "message": message,
            "total": self.total,
            "final": self.final,
            "failed": self.failed,
            "counts": dict(sorted(self.counts.items())),
        }


def assess(message_ids: Iterable[str], statuses: Mapping[str, DeliveryStatus]) -> DeliveryProgress:
    """Count ``message_ids`` by their status in ``statuses`` (ids absent there count as ``missing``)."""
    counts: Counter = Counter()
    total = 0
    for message_id in message_ids:
        total += 1
        status = statuses.get(message_id)
        counts[MISSING if status is None else status.value] += 1
    return DeliveryProgress(total, dict(counts))


def merge_statuses(
    known: dict[str, DeliveryStatus], statuses: Mapping[str, DeliveryStatus]
) -> dict[str, DeliveryStatus]:
    """Fold freshly listed statuses into ``known`` without moving any status backwards."""
    for message_id, status in statuses.items():
        previous = known.get(message_id)
        known[message_id] = status if previous is None else previous.advance(status)
    return known


def _status(value: str) -> DeliveryStatus:
    try:
        return DeliveryStatus(value)
    except ValueError:
        return DeliveryStatus.UNKNOWN


_D = TypeVar("_D")
_COPYABLE: dict[type, frozenset[str] | None] = {}  # per class: its field names, None to use replace()


def evolve(instance: _D, **changes: Any) -> _D:
    """``dataclasses.replace(instance, **changes)``, equal to what it gives, for the send path's
    many small copies: the instance's fields copied at once with the changes, instead of reading
    each field and a frozen ``__init__``'s ``object.__setattr__`` per field (a third of the CPU).
    Classes with a ``__post_init__``, ``__slots__`` or a field outside ``__init__`` go through
    ``replace`` itself; unknown names raise TypeError as there."""
    cls = type(instance)
    try:
        names = _COPYABLE[cls]
    except KeyError:
        names = _COPYABLE[cls] = _copyable_fields(cls)
    if names is None:
        return replace(instance, **changes)  # type: ignore[type-var]
    if not names.issuperset(changes):
        raise TypeError(f"{cls.__name__} has no field {sorted(changes.keys() - names)[0]!r}")
    copy = object.__new__(cls)
    values = copy.__dict__
    values.update(instance.__dict__)
    values.update(changes)
    return copy


_ACCEPTED = SendResult(OutboundMessage("", ""), accepted=True)


def accepted(message: OutboundMessage, message_id: str | None = None) -> SendResult:
    """``SendResult(message, accepted=True, message_id=message_id)``, copied from one template
    (:func:`evolve`): the hooks make one per message of every batch."""
    return evolve(_ACCEPTED, message=message, message_id=message_id)


def _copyable_fields(cls: type) -> frozenset[str] | None:
    if not is_dataclass(cls) or hasattr(cls, "__post_init__") or "__slots__" in cls.__dict__:
        return None
    every = fields(cls)
    if not all(f.init for f in every):
        return None
    return frozenset(f.name for f in every)
