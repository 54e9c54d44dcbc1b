"""The compiled phone model (airflow_provider_sms/phones.py) against phonenumbers, its reference: the
same verdict, reason and E.164 text on generated numbers of every calling code, and normalize_phone
answering exactly as its phonenumbers path does. The full 1M comparison and the timing are in
``python -m benchmarks --only phones``."""

from __future__ import annotations

import random
from collections import Counter

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_sms import messages, phones
from airflow_provider_sms.messages import InvalidPhoneNumberError, normalize_phone
from airflow_provider_sms.sandbox import validation
from tests.support.phone_numbers import CODES, examples, generate, reference

SAMPLE = 20_000


@pytest.fixture(scope="module")
def sample() -> list[str]:
    return list(generate(SAMPLE, seed=20))


def test_every_calling_code_is_compiled_from_the_installed_metadata():
    assert len(CODES) == len(phonenumbers.COUNTRY_CODE_TO_REGION_CODE) > 200
    assert {800, 808, 870, 878, 881, 882, 883, 888, 979} <= set(CODES)  # non-geographic entities
    assert sum(1 for code in CODES if examples(code)) == len(CODES)


def test_the_model_agrees_with_phonenumbers_on_a_generated_sample(sample):
    """Valid numbers of every code and type, their one-digit neighbours, random digits of every
    length, a 0 after the code, unknown codes: verdict, reason and E.164 all as phonenumbers'."""
    verdicts: Counter = Counter()
    wrong = []
    for digits in sample:
        fast = phones.international(digits)
        if len(digits) < 3:  # phonenumbers refuses them as "not a number" before any rule
            assert fast is None
            continue
        assert fast is not None, f"{digits}: the model decides 3-20 ASCII digits"
        expected = reference(digits)
        verdicts["valid" if isinstance(expected, str) else expected.reason] += 1
        if fast != expected:
            wrong.append((digits, fast, expected))
    assert wrong == []
    # The sample reaches every outcome, not just one.
    assert verdicts["valid"] > SAMPLE // 5
    assert set(verdicts) == {"valid", *(r.reason for r in phones._BY_LENGTH.values()), "too short"} - {
        phones.LENGTH_REASONS[phonenumbers.ValidationResult.INVALID_COUNTRY_CODE]
    } | {phones.UNKNOWN_CODE.reason}


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    code=st.sampled_from(CODES),
    national=st.text("0123456789", min_size=0, max_size=18),
)
def test_any_digits_after_any_code_agree(code, national):
    digits = f"{code}{national}"
    fast = phones.international(digits)
    if len(digits) < 3 or len(digits) > phones.MAX_DIGITS:
        assert fast is None
    else:
        assert fast == reference(digits)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), code=st.sampled_from(CODES))
def test_example_numbers_changed_digit_by_digit_agree(data, code):
    national = data.draw(st.sampled_from(examples(code)))
    for _ in range(data.draw(st.integers(0, 3))):
        position = data.draw(st.integers(0, len(national)))
        digit = data.draw(st.sampled_from("0123456789"))
        how = data.draw(st.sampled_from(("change", "insert", "drop")))
        tail = national[position + 1 :] if how != "insert" else national[position:]
        national = national[:position] + ("" if how == "drop" else digit) + tail
    digits = f"{code}{national}"
    assert phones.international(digits) == reference(digits)


@pytest.mark.parametrize(
    ("digits", "why"),
    [
        ("378812345", "San Marino: the national prefix rule transforms 8xxxxx into 0549 8xxxxx"),
        ("54111512345678", "Argentina: 15 after the area code becomes a 9 before it"),
        ("54111512345678", "... and a mobile without the 15"),
        ("5491112345678", "Argentina's mobile 9"),
        ("78001234567", "Russia's trunk 8 is kept where stripping it leaves no viable number"),
        ("788001234567", "... and stripped where it does"),
        ("77012345678", "Kazakhstan: +7 chosen by leading digits"),
        ("390669812345", "Vatican City: Italy's code, chosen by leading digits 06698"),
        ("390212345678", "Italy's significant leading 0"),
        ("4402079460958", "the trunk 0 after a calling code is dropped"),
        ("447781123456", "Guernsey after Great Britain failed"),
        ("447797123456", "Jersey"),
        ("447624123456", "Isle of Man by its leading digits"),
        ("12684641234", "Antigua: +1 chosen by area code after the US failed"),
        ("12042345678", "Canada: a region without leading digits after the US"),
        ("16847331234", "American Samoa"),
        ("80012345678", "+800, a non-geographic entity"),
        ("88213123456", "+882"),
        ("883510012345", "+883"),
        ("979123456789", "+979"),
        ("4916800000000000", "a 16-digit German pager number phonenumbers calls valid"),
        ("99912345678", "no such calling code"),
        ("0491512345678", "a leading 0 instead of a calling code"),
        ("491", "a code and one digit"),
        ("4915123456789012345", "longer than any national number"),
        ("3161234", "Dutch, too short"),
        ("31612345678901", "Dutch, too long"),
        ("2025550143", "a number phonenumbers holds invalid for its code"),
    ],
)
def test_the_rules_that_differ_between_countries(digits, why):
    assert phones.international(digits) == reference(digits), why


def test_a_broken_rule_is_noticed(monkeypatch, sample):
    """The comparison is not vacuous: drop the national prefix rule and it finds the difference."""
    monkeypatch.setattr(phones._Country, "strip_prefix", lambda self, national, match: national)
    phones._COUNTRIES.clear()
    try:
        assert any(phones.international(digits) != reference(digits) for digits in sample)
    finally:
        monkeypatch.undo()
        phones._COUNTRIES.clear()


# ---------------------------------------------------------------------------------------------------
# normalize_phone: the fast path answers as the phonenumbers path it stands in for


def _outcome(function, *args):
    try:
        return function(*args)
    except InvalidPhoneNumberError as exc:
        return ("invalid", exc.raw, exc.reason)


def _written(rng: random.Random, digits: str) -> str:
    """``digits`` as people and warehouses write international numbers."""
    form = rng.randrange(5)
    if form == 0:
        return "+" + digits
    if form == 1:
        return "00" + digits
    if form == 2:
        return digits
    spaced = "".join(c + (rng.choice(" ().-/") if rng.random() < 0.25 else "") for c in digits)
    return ("+" if form == 3 else "00") + spaced + rng.choice(("", " ", ")", "-"))


REGIONS = (None, None, "DE", "us", "GB", "IT", "AR", "RU", "SM", "NL", "ZZ")


def test_normalize_phone_answers_as_its_phonenumbers_path(sample):
    rng = random.Random(7)
    decided = 0
    for digits in sample[:10_000]:
        raw, region = _written(rng, digits), rng.choice(REGIONS)
        got = _outcome(normalize_phone, raw, region)
        text = raw.strip()  # what normalize_phone hands on
        passed = region.upper() if region and not text.startswith("+") else None
        assert got == _outcome(messages._reference, text, passed), (text, region)
        decided += _outcome(messages._international, text, passed) is not None
    assert decided > 8_000  # most took the fast path


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("+49 (0) 151 23456789", None),
        ("+44 (0)20 7946 0958", None),
        ("0049 0 151 23456789", "DE"),
        ("+0049 151 23456789", None),
        ("0000 49 151 23456789", "DE"),  # "+00 49...": no code, so parse retries it as dialled from DE
        ("00011 1 202 555 0143", "US"),  # ... and from the US (011)
        ("00999 1234 5678", "DE"),
        ("00 1 23", None),
        ("+1 2", None),
        ("+(((123", None),
        ("+1 268 464 1234 )", None),
        ("+49 168 0000 0000 000", None),  # valid for phonenumbers, 16 digits for E.164
        ("4916800000000000", None),
        ("4916800000000000", "DE"),
        ("999123456", None),
        ("4915123456789", "us"),
        ("15123456789", "DE"),  # bare digits starting with the US code, read nationally in DE
        ("0015123456789", "DE"),
        ("+378 812345", None),
        ("+١٢٣٤٥٦٧٨٩٠", None),  # non-ASCII digits: phonenumbers' path
        ("+49 151 2345 6789" + " " * 300, None),
        (4915123456789, None),
        (4915123456789.0, "DE"),
    ],
)
def test_normalize_phone_edge_cases_answer_as_the_phonenumbers_path(raw, region):
    text = str(int(raw) if isinstance(raw, float) else raw).strip()
    passed = region.upper() if region and not text.startswith("+") else None
    assert _outcome(normalize_phone, raw, region) == _outcome(messages._reference, text, passed)


def test_the_sandbox_validates_as_phonenumbers_does(sample):
    for digits in sample[:3_000]:
        assert validation._canonical(digits) == validation._canonical_by_phonenumbers(digits)


def test_a_number_normalised_lately_is_its_own_answer_in_any_region(sample):
    """The memo of recent answers (a bulk send checks each recipient twice: as it reads the row, and
    as the hook puts the message on the wire) is exact: every E.164 answer, asked again in any
    region, is its own answer for phonenumbers too."""
    rng = random.Random(11)
    answers = [
        got
        for got in (_outcome(normalize_phone, "+" + digits, None) for digits in sample[:10_000])
        if isinstance(got, str) and got.startswith("+")
    ]
    assert len(answers) > 3_000
    for e164 in answers:
        assert _outcome(messages._reference, e164, None) == e164
        assert normalize_phone(e164, rng.choice(REGIONS)) == e164


def test_the_memo_answers_without_a_second_check_and_stays_bounded(monkeypatch):
    checks = []
    real = messages._international

    def counted(text, region):
        checks.append(text)
        return real(text, region)

    monkeypatch.setattr(messages, "_international", counted)
    monkeypatch.setattr(messages, "_recent", {})
    monkeypatch.setattr(messages, "_older", {})
    assert normalize_phone("+49 151 2345 6789") == "+4915123456789"
    assert normalize_phone("+4915123456789") == "+4915123456789"
    assert normalize_phone("+4915123456789", "US") == "+4915123456789"
    assert checks == ["+49 151 2345 6789"]  # the E.164 answer was remembered, not its spelling
    assert normalize_phone(" +4915123456789") == "+4915123456789" and len(checks) == 2
    with pytest.raises(InvalidPhoneNumberError):
        normalize_phone("+49 1")
    with pytest.raises(InvalidPhoneNumberError):  # a refusal is checked again each time
        normalize_phone("+49 1")
    assert len(checks) == 4

    size = messages._RECENT_MAX
    numbers = [f"+316{10_000_000 + i}" for i in range(3 * size)]
    for number in numbers:
        normalize_phone(number)
    assert len(messages._recent) + len(messages._older) <= 2 * size
    checks.clear()
    normalize_phone(numbers[-size])  # within the last generation: remembered
    normalize_phone(numbers[0])  # two generations ago: forgotten, checked again
    assert checks == [numbers[0]]
