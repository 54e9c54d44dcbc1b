from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pendulum
import pytest

from airflow_provider_sms.messages import (
    DeliveryStatus,
    InvalidPhoneNumberError,
    as_utc,
    count_segments,
    map_status,
    normalize_phone,
)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+49 151 23456789", None, "+4915123456789"),  # Germany, international
        ("0151 23456789", "DE", "+4915123456789"),  # Germany, national
        ("(202) 555-0143", "US", "+12025550143"),  # USA, parentheses and dash
        ("+1-202-555-0143", None, "+12025550143"),
        ("0044 20 7946 0958", None, "+442079460958"),  # UK, leading 00
        ("020 7946 0958", "gb", "+442079460958"),  # UK, national, lower-case region
        ("+33 6 12 34 56 78", None, "+33612345678"),  # France
        ("11 98765-4321", "BR", "+5511987654321"),  # Brazil, national
        ("+55 (11) 98765-4321", None, "+5511987654321"),
        ("+91 98765 43210", None, "+919876543210"),  # India
        (4915123456789.0, "DE", "+4915123456789"),  # a numeric column read as float
        ("  +4915123456789  ", None, "+4915123456789"),
        ("4915123456789", None, "+4915123456789"),  # bare international digits, the gateways' format
        ("4915123456789", "DE", "+4915123456789"),
    ],
)
def test_normalize_phone_gives_e164(raw, region, expected):
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("123", "DE", "too short"),
        ("+4915", None, "too short"),
        ("+1 555 0100", None, "too short"),
        ("call me", None, "contains letters"),
        ("0151-CALL-NOW", "DE", "contains letters"),
        ("", None, "empty"),
        ("   ", None, "empty"),
        (None, None, "empty"),
        (float("nan"), None, "empty"),
        ("2025550143", None, "unknown country code"),
        ("+999 1234 5678", None, "unknown country code"),
        ("+49 151 234567890123456", None, "too long"),
    ],
)
def test_normalize_phone_rejects_with_a_reason(raw, region, reason):
    with pytest.raises(InvalidPhoneNumberError) as info:
        normalize_phone(raw, region)
    assert reason in info.value.reason
    assert reason in str(info.value)


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" + "a" * 159, "GSM-7", 161, 2),  # extension character counts two septets
        ("{}[]" + "a" * 152, "GSM-7", 160, 1),
        ("Ж" * 70, "UCS-2", 70, 1),
        ("Ж" * 71, "UCS-2", 71, 2),
        ("Ж" * 134, "UCS-2", 134, 2),
        ("Ж" * 135, "UCS-2", 135, 3),
        ("😀", "UCS-2", 2, 1),  # outside the BMP: two UTF-16 units
        ("😀" * 35, "UCS-2", 70, 1),
        ("😀" * 36, "UCS-2", 72, 2),
        ("Olá, João! Ação às 10h", "UCS-2", 22, 1),  # ç and ã are not GSM-7
        ("", "GSM-7", 0, 1),
    ],
)
def test_count_segments(text, encoding, units, segments):
    count = count_segments(text)
    assert (count.encoding, count.units, count.segments) == (encoding, units, segments)
    assert count.characters == len(text)


def test_one_non_gsm_character_switches_the_whole_text_to_ucs2():
    assert count_segments("a" * 69 + "Ж").segments == 1
    assert count_segments("a" * 70 + "Ж").segments == 2


def test_final_statuses():
    final = {s for s in DeliveryStatus if s.is_final}
    assert final == {"delivered", "undelivered", "failed", "rejected"}


@pytest.mark.parametrize(
    ("stored", "observed", "kept"),
    [
        ("queued", "sent", "sent"),
        ("sent", "delivered", "delivered"),
        ("delivered", "sent", "delivered"),  # a late "sent" never overwrites a final status
        ("delivered", "queued", "delivered"),
        ("undelivered", "delivered", "undelivered"),  # the first outcome stays
        ("unknown", "queued", "queued"),
        ("queued", "unknown", "queued"),
        ("scheduled", "queued", "queued"),
    ],
)
def test_status_never_moves_backwards(stored, observed, kept):
    assert DeliveryStatus(stored).advance(DeliveryStatus(observed)) is DeliveryStatus(kept)


def test_map_status_is_case_insensitive_and_keeps_unknowns_unknown():
    table = {"delivered": DeliveryStatus.DELIVERED}
    assert map_status("Delivered", table) is DeliveryStatus.DELIVERED
    assert map_status(" DELIVERED ", table) is DeliveryStatus.DELIVERED
    assert map_status("carrier said no", table) is DeliveryStatus.UNKNOWN
    assert map_status(None, table) is DeliveryStatus.UNKNOWN


def test_an_international_number_normalises_the_same_whatever_the_region():
    assert {normalize_phone("+49 151 2345 6789", region) for region in (None, "DE", "us", "FR")} == {
        "+4915123456789"
    }
    # A national number still needs (and uses) its region.
    assert normalize_phone("0151 2345 6789", "DE") == "+4915123456789"


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 3, 29, 1, 30),
        pendulum.naive(2026, 3, 29, 1, 30),
        pendulum.datetime(2026, 3, 29, 3, 30, tz="Europe/Berlin"),
        datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc),
    ],
    ids=["naive", "naive-pendulum", "berlin", "aware-utc"],
)
def test_as_utc_takes_naive_values_as_utc_pendulum_ones_included(value):
    moment = as_utc(value)
    assert moment.tzinfo is not None
    assert moment == pendulum.datetime(2026, 3, 29, 1, 30, tz="UTC")
    assert moment.utcoffset() == timedelta(0)


def test_evolve_is_dataclasses_replace():
    """messages.evolve equals dataclasses.replace for the classes the send path copies (and a
    class with __post_init__, which it hands to replace), leaves the original alone, stays frozen."""
    import dataclasses
    import datetime as dt
    import pickle
    import random

    from airflow_provider_sms.messages import (
        Credit,
        DeliveryStatus,
        OutboundMessage,
        SendOutcome,
        SendResult,
        evolve,
    )
    from airflow_provider_sms.storage.ledger import LedgerEntry

    rng = random.Random(20)
    when = [None, dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)]
    texts = [None, "", "x", "+31612345678", "é"]
    message = OutboundMessage("+31612345678", "Hi", key="1", options={"test": True})
    pools = {
        OutboundMessage: {
            "to": texts[1:],
            "body": texts[1:],
            "key": texts,
            "sender": texts,
            "send_at": when,
            "options": [{}, {"sim": 2}],
            "sent_hash": texts,
        },
        SendResult: {
            "message": [message, OutboundMessage("+1", "x")],
            "accepted": [True, False],
            "message_id": texts,
            "status": list(DeliveryStatus),
            "error": texts,
            "error_code": texts,
        },
        SendOutcome: {
            "recipient": texts[1:],
            "state": ["accepted", "rejected"],
            "message_id": texts,
            "status": texts,
            "raw_status": texts,
            "error": texts,
        },
        LedgerEntry: {
            "recipient": texts[1:],
            "state": ["pending", "sending"],
            "idempotency_key": ["1"],
            "message_id": texts,
            "body_hash": texts,
            "segments": [None, 1],
            "error": texts,
            "source_row": [None, 3],
            "sent_at": when,
        },
    }
    for cls, pool in pools.items():
        for _ in range(500):
            instance = cls(**{n: rng.choice(v) for n, v in pool.items()})
            before = repr(instance)
            names = rng.sample(list(pool), rng.randrange(len(pool) + 1))
            changes = {n: rng.choice(pool[n]) for n in names}
            got, want = evolve(instance, **changes), dataclasses.replace(instance, **changes)
            assert type(got) is cls and got == want and repr(got) == repr(want) and hash(got) == hash(want)
            assert repr(instance) == before and pickle.loads(pickle.dumps(got)) == want
            with pytest.raises(dataclasses.FrozenInstanceError):
                got.__setattr__(names[0] if names else next(iter(pool)), None)
        with pytest.raises(TypeError):
            evolve(instance, no_such_field=1)
    credit = Credit(5.0, "currency", "EUR")  # a __post_init__ check: evolve goes through replace
    assert evolve(credit, amount=6.0) == dataclasses.replace(credit, amount=6.0)
    with pytest.raises(ValueError):
        evolve(credit, unit="coins")
