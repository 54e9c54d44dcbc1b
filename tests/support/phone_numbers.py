"""International numbers for comparing ``airflow_provider_sms.phones`` with ``phonenumbers``: the
reference verdict and seeded generators that reach every calling code and every rule (shared by
tests/test_phones.py and ``python -m benchmarks --only phones``).

The digits are what follows ``+``. Generated kinds, for every calling code:
- phonenumbers' example numbers (each region or non-geographic entity, each number type), whole
  and with one digit changed, dropped or added (valid numbers and their nearest invalid neighbours);
- random digits of every length 1-17 after the code, with and without a leading 0 (the national
  prefix of many regions, and Italy's significant 0);
- digit strings with no calling code (unknown codes, a leading 0) and of 3-20 digits in all.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from functools import cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from airflow_provider_sms.phones import LENGTH_REASONS, NOT_VALID, PARSE_REASONS, Invalid

CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
_TYPES = [t for t in PhoneNumberType.values() if t != PhoneNumberType.UNKNOWN]
_DESCS = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number", "voip")
_DESCS += ("pager", "uan", "voicemail")


def reference(digits: str) -> str | Invalid:
    """``+digits`` judged by phonenumbers itself: E.164 when valid, else the reason."""
    try:
        number = phonenumbers.parse("+" + digits, None)
    except NumberParseException as exc:
        return Invalid(PARSE_REASONS.get(exc.error_type, str(exc)))
    if not phonenumbers.is_valid_number(number):
        return Invalid(LENGTH_REASONS.get(phonenumbers.is_possible_number_with_reason(number), NOT_VALID))
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


@cache
def examples(code: int) -> tuple[str, ...]:
    """phonenumbers' example numbers of every region of ``code`` and every type (national digits)."""
    found = set()
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]:
        if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
            metadata = phonenumbers.PhoneMetadata.metadata_for_nongeo_region(code)
            descs = (getattr(metadata, name) for name in _DESCS)
            found.update(desc.example_number for desc in descs if desc is not None and desc.example_number)
            continue
        for kind in _TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.add(phonenumbers.national_significant_number(number))
    return tuple(sorted(found))


def _mutate(rng: random.Random, national: str) -> str:
    position = rng.randrange(len(national) + 1)
    digit = str(rng.randrange(10))
    how = rng.randrange(3)
    if how == 0 and position < len(national):  # change one digit
        return national[:position] + digit + national[position + 1 :]
    if how == 1 and position < len(national):  # drop one
        return national[:position] + national[position + 1 :]
    return national[:position] + digit + national[position:]  # add one


def _random_digits(rng: random.Random, length: int) -> str:
    return "".join(rng.choices("0123456789", k=length))


def generate(count: int, seed: int = 0) -> Iterator[str]:
    """``count`` digit strings (after ``+``), cycling through every calling code and every kind."""
    rng = random.Random(seed)
    produced = 0
    while produced < count:
        for code in CODES:
            prefix = str(code)
            for national in _one_round(rng, code):
                yield prefix + national
                produced += 1
                if produced == count:
                    return
        yield _random_digits(rng, rng.randint(3, 20))  # any code or none
        yield "0" + _random_digits(rng, rng.randint(2, 16))
        produced += 2


def _one_round(rng: random.Random, code: int) -> Iterator[str]:
    samples = examples(code)
    for example in rng.sample(samples, min(3, len(samples))):
        yield example
        yield _mutate(rng, example)
        yield _mutate(rng, _mutate(rng, example))
    length = rng.randint(1, 17)
    yield _random_digits(rng, length)
    yield "0" + _random_digits(rng, length - 1)
    if samples:  # a valid-looking start with a random length
        start = rng.choice(samples)[: rng.randint(1, 4)]
        yield start + _random_digits(rng, max(0, rng.randint(1, 17) - len(start)))
