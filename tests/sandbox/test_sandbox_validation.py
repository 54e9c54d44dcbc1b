"""The sandbox's own validation helpers: phone formats per gateway, SMS segments, senders."""

from __future__ import annotations

import pytest

from airflow_provider_sms.sandbox.delivery import normalize, outcome_for, raw_status
from airflow_provider_sms.sandbox.validation import (
    count_segments,
    e164_from_digits,
    e164_from_plus,
    sender_is_valid,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("31612345678", "+31612345678"),
        ("+31612345678", "+31612345678"),
        (31612345678, "+31612345678"),
        ("4407911123456", "+447911123456"),  # canonical E.164 drops the national trunk 0
        ("5512", None),
        ("0612345678", None),  # national format: not "country code first"
        ("31 612345678", None),
        ("", None),
        (None, None),
        (True, None),
    ],
)
def test_digits_numbers_for_smstools_and_textboost(raw, expected):
    assert e164_from_digits(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+31612345678", "+31612345678"),
        ("+31 6-1234 5678", "+31612345678"),
        ("+1 (202) 555-0123", "+12025550123"),
        ("31612345678", None),  # SmsGateway24 wants the "+"
        ("+3161", None),
        ("+31abc", None),
    ],
)
def test_plus_numbers_for_smsgateway24(raw, expected):
    assert e164_from_plus(raw) == expected


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters cost two septets
        ("€" * 81, 2),
        ("é" * 160, 1),  # é is in the GSM basic set
        ("ж" * 70, 1),
        ("ж" * 71, 2),
        ("😀" * 35, 1),  # two UTF-16 units each
        ("😀" * 36, 2),
    ],
)
def test_segments(text, segments):
    assert count_segments(text) == segments


@pytest.mark.parametrize(
    ("sender", "valid"),
    [
        ("Shop", True),
        ("My Shop 123", True),
        ("TwelveLetter", False),
        ("+3197010", True),
        ("1" * 15, False),
        ("", False),
    ],
)
def test_senders(sender, valid):
    assert sender_is_valid(sender, 14) is valid


def test_outcomes_depend_only_on_the_last_two_digits():
    assert [outcome_for(n) for n in ("+31612345613", "+31612345666", "+31612345678")] == [
        "undelivered",
        "failed",
        "delivered",
    ]


def test_zero_delivery_seconds_means_final_at_once_and_future_sends_are_scheduled():
    assert raw_status("smstools", "+31612345678", 100.0, 100.0, 0) == "delivered"
    assert raw_status("smsgateway24", "+31612345678", 200.0, 100.0, 2) == 1
    assert normalize("smsgateway24", 1, scheduled=True) == "scheduled"
    assert normalize("textboost", "ENROUTE") == "sent"
    assert normalize("smstools", "mystery") == "unknown"
