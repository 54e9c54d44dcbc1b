"""International phone numbers judged by libphonenumber's own metadata, compiled for speed.

``phonenumbers.parse`` + ``is_valid_number`` + ``format_number`` cost 30-60 µs per number; a campaign
meets each recipient once, so a cache does not help. :func:`international` gives the same verdict
and the same E.164 text for a number written as ``+`` and digits in a dict look-up and one or two
regular expressions per number. It is compiled, per country calling code on first use, from the
metadata the installed ``phonenumbers`` ships, following its own rules step by step:

- ``parse``: the calling code is the first of the first 1, 2 or 3 digits that is one; the rest must
  hold 2 to 17 digits once the main region's national prefix is stripped (or transformed: Argentina's
  ``15``, San Marino's ``0549``...) where what remains is still a possible length;
- ``is_valid_number``: the region is the first of the code's regions whose leading digits match,
  or (for a region without them) whose patterns the number fits; the number must fit that region's
  general pattern and lengths and one number type's pattern and lengths (mobile only where its
  pattern differs from fixed line's); non-geographic codes (+800, +882, +979...) use their own entity;
- an invalid number's reason is ``is_possible_number_with_reason``: the main region's lengths.

What it cannot decide exactly (fewer than 3 digits, a non-ASCII digit, more than
:data:`MAX_DIGITS`) it hands back as None: the caller asks ``phonenumbers``, which stays the
reference (tests/test_phones.py and ``python -m benchmarks --only phones`` compare the two).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from re import Pattern
from typing import NamedTuple

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, ValidationResult

__all__ = [
    "LENGTH_REASONS",
    "MAX_DIGITS",
    "PARSE_REASONS",
    "UNKNOWN_CODE",
    "Invalid",
    "as_written",
    "international",
]

PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code (give a default region "
    "or an international number starting with +)",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}
LENGTH_REASONS = {
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "too short: a local number without its area code",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    ValidationResult.INVALID_LENGTH: "wrong length for its country",
}
# A possible length that is still invalid (the digits fit no pattern).
NOT_VALID = "not a valid number for its country"


class Invalid(NamedTuple):
    """``phonenumbers`` refuses the number; ``reason`` is the text ``normalize_phone`` gives."""

    reason: str


# The calling code is unknown (or starts with 0): ``phonenumbers.parse`` raises INVALID_COUNTRY_CODE
# when it has no default region. With one, it would retry the digits as dialled from that region.
UNKNOWN_CODE = Invalid(PARSE_REASONS[NumberParseException.INVALID_COUNTRY_CODE])
_TOO_SHORT_NSN = Invalid(PARSE_REASONS[NumberParseException.TOO_SHORT_NSN])
_TOO_LONG_NSN = Invalid(PARSE_REASONS[NumberParseException.TOO_LONG])
_BY_LENGTH = {code: Invalid(LENGTH_REASONS.get(code, NOT_VALID)) for code in range(6)}

# Longer digit strings are decided by phonenumbers (none is valid: 3 + 17 at most, and longer ones
# are rare enough not to need speed).
MAX_DIGITS = 20
_MIN_NSN, _MAX_NSN = 2, 17  # phonenumbers' _MIN_LENGTH_FOR_NSN, _MAX_LENGTH_FOR_NSN
_CODES = {str(code): code for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}
# The calling code the first three digits start with, as parse finds it: the first of the first 1,
# 2 or 3 digits that is one (the codes are prefix-free today, but that is not assumed).
_CODE_OF = {
    f"{n:03}": code
    for n in range(100, 1000)
    for code in [next((f"{n:03}"[:k] for k in (1, 2, 3) if f"{n:03}"[:k] in _CODES), None)]
    if code is not None
}
# The number types phonenumbers' _number_type_helper tries: a number is valid when it fits any of
# them, so they are tried here in the order of how common they are.
_TYPES = (
    "fixed_line",
    "mobile",
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)


def international(digits: str) -> str | Invalid | None:
    """Judge ``+digits`` as ``phonenumbers`` does (``digits``: ASCII digits, no separators).

    Returns the E.164 text ``format_number(parse("+" + digits), E164)`` when ``is_valid_number``
    holds, an :class:`Invalid` with the reason when it does not (:data:`UNKNOWN_CODE` when no calling
    code starts the digits), or None when only ``phonenumbers`` can tell. E.164's 15-digit limit is
    not applied: phonenumbers calls a few 16-digit numbers valid, and so does this.
    """
    size = len(digits)
    if size < 3 or size > MAX_DIGITS or not digits.isascii() or not digits.isdigit():
        return None
    code = _CODE_OF.get(digits[:3])
    if code is None:
        return UNKNOWN_CODE
    country = _COUNTRIES.get(code) or _compile(code)
    national = digits[len(code) :]
    if len(national) < _MIN_NSN:
        return _TOO_SHORT_NSN
    if country.prefix is not None:
        match = country.prefix.match(national)
        if match is not None:
            national = country.strip_prefix(national, match)
    if len(national) > _MAX_NSN:
        return _TOO_LONG_NSN
    if country.single is not None:  # most codes: one region
        pattern = country.single.get(len(national))
        if pattern is not None and pattern.fullmatch(national) is not None:
            return country.plus + national
    elif country.is_valid(national):
        return country.plus + national
    return country.reasons[len(national)]


def as_written(digits: str) -> str | None:
    """``"+" + digits`` when ``parse`` keeps the national number as written: a known calling code,
    then no trunk ``0`` and no national prefix for parsing (none to strip or transform, unlike San
    Marino's ``549123`` that parses as ``0549549123``); else None. For a number phonenumbers holds
    valid it is then exactly its E.164 text, without judging validity. ``digits``: ASCII digits."""
    code = _CODE_OF.get(digits[:3])
    if code is None:
        return None
    size = len(code)
    if digits[size : size + 1] in ("0", ""):
        return None
    try:
        prefix = _PARSE_PREFIX[code]
    except KeyError:  # listings read thousands of numbers: one look-up, not the whole country
        prefix = _PARSE_PREFIX[code] = (_COUNTRIES.get(code) or _compile(code)).prefix
    if prefix is not None:
        match = prefix.match(digits, size)
        # An empty match strips nothing (Argentina's prefix is all optional), unless a group it
        # captured feeds the transform rule.
        if match is not None and (match.end() > size or any(match.groups())):
            return None
    return "+" + digits


# ---------------------------------------------------------------------------------------------------
# The compiled metadata


# Per national number length, the one pattern a valid number of one region fits.
_Table = dict[int, Pattern[str]]


@dataclass(frozen=True, slots=True)
class _Step:
    """Choosing a region among a calling code's regions: either one region without leading digits,
    chosen when its patterns fit, or consecutive regions with leading digits in one alternation,
    chosen by the first that matches (``marks``: the alternation's marker group -> region)."""

    leading: Pattern[str] | None
    marks: dict[int, int]
    tables: tuple[_Table, ...]


@dataclass(frozen=True, slots=True)
class _Country:
    """One calling code: how its regions are chosen and its main region's parsing rules."""

    code: str
    plus: str
    single: _Table | None  # the only region's patterns
    steps: tuple[_Step, ...]  # with several regions, phonenumbers' order
    prefix: Pattern[str] | None  # national_prefix_for_parsing
    transform: str | None  # national_prefix_transform_rule
    general: Pattern[str] | None  # the main region's general pattern (whether a number is "viable")
    reasons: tuple[Invalid, ...]  # by national number length: is_possible_number_with_reason
    possible: tuple[bool, ...]  # by length: parse keeps a stripped national prefix

    def is_valid(self, national: str) -> bool:
        """``is_valid_number``: the first region chosen by its leading digits or its patterns."""
        size = len(national)
        if self.single is not None:
            pattern = self.single.get(size)
            return pattern is not None and pattern.fullmatch(national) is not None
        for step in self.steps:
            if step.leading is None:
                pattern = step.tables[0].get(size)
                if pattern is not None and pattern.fullmatch(national) is not None:
                    return True
            else:
                match = step.leading.match(national)
                if match is not None:
                    pattern = step.tables[step.marks[match.lastindex]].get(size)
                    return pattern is not None and pattern.fullmatch(national) is not None
        return False

    def strip_prefix(self, national: str, match: re.Match[str]) -> str:
        """phonenumbers' ``_maybe_strip_national_prefix_carrier_code`` (``match``: its prefix at the
        start of ``national``) and what ``parse`` keeps of it."""
        if not self.transform or match.groups()[-1] is None:
            if not match.end():  # an empty prefix (Argentina's is all optional): nothing changes
                return national
            candidate = national[match.end() :]
        else:
            candidate = match.re.sub(self.transform, national, count=1)
        if self._viable(national) and not self._viable(candidate):
            return national
        return candidate if self.possible[len(candidate)] else national

    def _viable(self, national: str) -> bool:
        return self.general is not None and self.general.fullmatch(national) is not None


_COUNTRIES: dict[str, _Country] = {}
_PARSE_PREFIX: dict[str, Pattern[str] | None] = {}  # national_prefix_for_parsing by calling code
_LOCK = threading.Lock()


def _compile(code: str) -> _Country:
    with _LOCK:
        if code not in _COUNTRIES:
            _COUNTRIES[code] = _compile_country(_CODES[code])
        return _COUNTRIES[code]


def _metadata(code: int, region: str) -> PhoneMetadata | None:
    return PhoneMetadata.metadata_for_region_or_calling_code(code, region)


def _length_result(length: int, lengths: tuple[int, ...], local: tuple[int, ...]) -> int:
    """phonenumbers' ``_test_number_length`` for the general description."""
    if length in local:
        return ValidationResult.IS_POSSIBLE_LOCAL_ONLY
    if length == lengths[0]:
        return ValidationResult.IS_POSSIBLE
    if length < lengths[0]:
        return ValidationResult.TOO_SHORT
    if length > lengths[-1]:
        return ValidationResult.TOO_LONG
    return ValidationResult.IS_POSSIBLE if length in lengths[1:] else ValidationResult.INVALID_LENGTH


def _compile_country(code: int) -> _Country:
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]
    main = _metadata(code, regions[0])
    general = main.general_desc
    lengths, local = tuple(general.possible_length), tuple(general.possible_length_local_only)
    # By length, up to any a stripped or transformed national number can have (MAX_DIGITS + 4).
    results = [_length_result(n, lengths, local) for n in range(2 * MAX_DIGITS)]
    chosen = [  # phonenumbers skips a region without metadata
        (metadata.leading_digits, _patterns_by_length(metadata))
        for metadata in (_metadata(code, region) for region in regions)
        if metadata is not None
    ]
    prefix = main.national_prefix_for_parsing or None
    transform = main.national_prefix_transform_rule or None
    pattern = general.national_number_pattern
    return _Country(
        code=str(code),
        plus=f"+{code}",
        single=chosen[0][1] if len(chosen) == 1 else None,
        steps=_steps(chosen) if len(chosen) > 1 else (),
        prefix=re.compile(prefix) if prefix else None,
        transform=transform,
        general=re.compile(pattern) if pattern else None,
        reasons=tuple(_BY_LENGTH[result] for result in results),
        possible=tuple(
            result
            not in (
                ValidationResult.TOO_SHORT,
                ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
                ValidationResult.INVALID_LENGTH,
            )
            for result in results
        ),
    )


def _steps(regions: list[tuple[str | None, _Table]]) -> tuple[_Step, ...]:
    steps: list[_Step] = []
    group: list[tuple[str, _Table]] = []
    for leading, table in [*regions, (None, None)]:
        if leading is not None:
            group.append((leading, table))
            continue
        if group:  # one alternation: each region's leading digits, then an empty marker group
            alternatives, marks, groups = [], {}, 0
            for index, (pattern, _) in enumerate(group):
                groups += re.compile(pattern).groups + 1
                marks[groups] = index
                alternatives.append(f"(?:{pattern})()")
            steps.append(_Step(re.compile("|".join(alternatives)), marks, tuple(t for _, t in group)))
            group = []
        if table is not None:
            steps.append(_Step(None, {}, (table,)))
    return tuple(steps)


def _patterns_by_length(metadata: PhoneMetadata) -> _Table:
    """For each length a valid number can have, one pattern: the general one (as a look-ahead) and
    the number types of that length (phonenumbers' ``_number_type_helper`` is not UNKNOWN)."""
    general = metadata.general_desc
    if general is None or not general.national_number_pattern:
        return {}
    types = [getattr(metadata, name) for name in _TYPES]
    if metadata.same_mobile_and_fixed_line_pattern:  # then phonenumbers never tries mobile
        del types[1]
    types = [desc for desc in types if desc is not None and desc.national_number_pattern]
    out = {}
    for length in range(_MIN_NSN, _MAX_NSN + 1):
        if general.possible_length and length not in general.possible_length:
            continue
        fitting = [
            d.national_number_pattern for d in types if not d.possible_length or length in d.possible_length
        ]
        if fitting:
            alternatives = "|".join(f"(?:{p})" for p in dict.fromkeys(fitting))
            out[length] = re.compile(f"(?=(?:{general.national_number_pattern})\\Z)(?:{alternatives})")
    return out
