"""The status listings' fast paths (recipients, timestamps) against the slow paths they replace."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

import pendulum
import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_sms.hooks import base
from airflow_provider_sms.hooks.base import SmsGatewayHook

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/Sao_Paulo",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/New_York",
]


class ZoneHook(SmsGatewayHook):
    conn_type = "zonedemo"
    gateway = "zonedemo"


def hook_in(zone: str, monkeypatch) -> ZoneHook:
    monkeypatch.setenv("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    conn_id = f"zone_{zone.replace('/', '_').lower()}"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps({"conn_type": "zonedemo", "host": "https://x.test", "extra": {"timezone": zone}}),
    )
    return ZoneHook(conn_id)


def same_moment(fast, slow) -> None:
    """Equal as pendulum would return it: value, type, zone, offset and fold."""
    assert type(fast) is type(slow)
    assert fast == slow
    assert fast.isoformat() == slow.isoformat()
    assert str(fast.tzinfo) == str(slow.tzinfo)
    assert fast.fold == slow.fold


# ------------------------------------------------------------------------------------------------ times
@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize(
    "text",
    [
        "2026-05-29",
        "2026-05-29 17:21",  # Smstools
        "2026-05-29 17:21:27",  # SmsGateway24 senttime
        "2026-05-29 17:21:27.000000",  # SmsGateway24 created (PHP DateTime)
        "2026-05-29T17:21:27.123456Z",  # TextBoost (Laravel)
        "2026-05-29T17:21:27.1Z",
        "2026-05-29T17:21Z",
        "2026-03-29 02:30",  # Berlin: in the spring-forward gap
        "2026-10-25 02:30",  # Berlin: twice (fold)
        "2026-04-05 01:45",  # Lord Howe: a 30-minute fold
        "2026-11-01 01:30",  # New York: twice
        "2026-02-21 23:30",  # Sao Paulo (no DST since 2019)
        "0001-01-01 00:00",
        "9999-12-31 23:59:59.999999",
    ],
)
def test_plain_texts_read_as_pendulum_reads_them(text, zone, monkeypatch):
    hook = hook_in(zone, monkeypatch)
    same_moment(hook.parse_time(text), pendulum.parse(text, tz=zone))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    moment=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),
    shape=st.sampled_from(
        ["%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S.%fZ"]
    ),
    zone=st.sampled_from(ZONES),
)
def test_any_plain_text_reads_as_pendulum_reads_it(moment, shape, zone, monkeypatch):
    text = moment.strftime(shape)
    same_moment(hook_in(zone, monkeypatch).parse_time(text), pendulum.parse(text, tz=zone))


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_php_datetime_objects_use_their_own_zone(zone, monkeypatch):
    value = {"date": "2026-10-25 02:30:00.000000", "timezone_type": 3, "timezone": "Europe/Berlin"}
    same_moment(
        hook_in(zone, monkeypatch).parse_time(value), pendulum.parse(value["date"], tz="Europe/Berlin")
    )


def test_plain_texts_do_not_go_through_pendulum_parse(monkeypatch):
    hook = hook_in("Europe/Berlin", monkeypatch)

    def refuse(*args, **kwargs):
        raise AssertionError("pendulum.parse called")

    monkeypatch.setattr(base.pendulum, "parse", refuse)
    assert hook.parse_time("2026-05-29 17:21") == pendulum.datetime(2026, 5, 29, 15, 21)
    assert hook.parse_time("2026-05-29T17:21:27.5Z") == pendulum.datetime(2026, 5, 29, 17, 21, 27, 500000)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_other_texts_still_go_to_pendulum(zone, monkeypatch):
    hook = hook_in(zone, monkeypatch)
    for text in ("2026-05-29T17:21:27+02:00", "2026-05-29T17:21:27.1234567", "20260529T172127", "2026-W22"):
        same_moment(hook.parse_time(text), pendulum.parse(text, tz=zone))


@pytest.mark.parametrize(
    "value", [None, "", "not a date", "2026-13-01 10:00", "2026-02-30", "2026-05-29 25:00"]
)
def test_missing_or_unreadable_times_are_none(value, monkeypatch):
    assert hook_in("Europe/Berlin", monkeypatch).parse_time(value) is None


def test_an_unknown_zone_reads_as_before(monkeypatch):
    hook = hook_in("Mars/Olympus_Mons", monkeypatch)
    assert hook.parse_time("2026-05-29 17:21") is None  # pendulum does not know the zone either


def test_cached_times_are_the_same_value_every_time(monkeypatch):
    hook = hook_in("Europe/Berlin", monkeypatch)
    first = hook.parse_time("2026-05-29 17:21")
    assert hook.parse_time("2026-05-29 17:21") is first  # immutable, so sharing is safe
    assert first + timedelta(hours=1) == pendulum.datetime(2026, 5, 29, 16, 21)


# ------------------------------------------------------------------------------------------------ recipients
@pytest.mark.parametrize(
    "raw, expected",
    [
        ("31612345678", "+31612345678"),  # international digits without "+" (Smstools, TextBoost)
        ("+31612345678", "+31612345678"),  # with "+" (SmsGateway24)
        (31612345678, "+31612345678"),  # a JSON number
        ("12015550123", "+12015550123"),  # a one-digit calling code
        ("4915112345678", "+4915112345678"),
        (None, None),
        ("", None),
        ("+", "+"),  # not a number: given back as it came, like from_wire_phone
    ],
)
def test_listed_recipients(raw, expected):
    assert SmsGatewayHook.from_wire_recipient(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        " 31612345678 ",  # spaces
        "+31 6 1234 5678",
        "0031612345678",  # 00 prefix
        "4402071234567",  # a trunk 0 after the calling code: phonenumbers drops it
        "3161234",  # shorter than 8 digits
        "9991234567890",  # no such calling code
        "06 12345678",  # national
        "phone",
        "١٢٣٤٥٦٧٨٩٠١",  # non-ASCII digits
        "31612345678901234",  # longer than E.164
        True,
    ],
)
def test_anything_else_takes_the_slow_path(raw):
    assert SmsGatewayHook.from_wire_recipient(raw) == (SmsGatewayHook.from_wire_phone(raw) or None)


def test_valid_numbers_read_as_from_wire_phone_reads_them():
    """Every example number phonenumbers has (each region, each type), as the gateways list them."""
    numbers = set()
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in (
            phonenumbers.PhoneNumberType.MOBILE,
            phonenumbers.PhoneNumberType.FIXED_LINE,
            phonenumbers.PhoneNumberType.TOLL_FREE,
            phonenumbers.PhoneNumberType.VOIP,
        ):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                numbers.add(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164))
    assert len(numbers) > 700
    for e164 in numbers:
        for raw in (e164, e164[1:]):
            assert SmsGatewayHook.from_wire_recipient(raw) == SmsGatewayHook.from_wire_phone(raw) == e164


def test_digits_phonenumbers_rejects_keep_their_plus():
    """The one difference, by design: a listed number phonenumbers holds invalid (the gateway took
    it) gets its "+" instead of coming back bare."""
    assert SmsGatewayHook.from_wire_phone("31600") == "31600"  # short: both take the slow path
    assert SmsGatewayHook.from_wire_phone("3161234567890") == "3161234567890"  # too long for NL
    assert SmsGatewayHook.from_wire_recipient("3161234567890") == "+3161234567890"


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("378891234", "+3780549891234"),  # San Marino: 6 digits parse with 0549 in front
        ("+378891234", "+3780549891234"),
        ("54111512345678", "+5491112345678"),  # Argentina: area code + 15 becomes 9 + area code
        ("37858912345", "+37858912345"),  # San Marino's own 0549-less landline form stays
    ],
)
def test_numbers_parse_rewrites_are_read_as_phonenumbers_reads_them(raw, e164):
    assert phonenumbers.is_valid_number(phonenumbers.parse("+" + raw.lstrip("+")))
    assert SmsGatewayHook.from_wire_recipient(raw) == SmsGatewayHook.from_wire_phone(raw) == e164


def test_valid_numbers_of_every_calling_code_read_as_from_wire_phone_reads_them():
    """Generated from phonenumbers' metadata: for each region and type a few numbers that fit the
    type's pattern (the examples alone miss national prefixes like San Marino's), in wire form."""
    rng = random.Random(20)
    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        code = str(metadata.country_code)
        for desc in (metadata.mobile, metadata.fixed_line, metadata.toll_free):
            if desc is None or not desc.national_number_pattern or not desc.possible_length:
                continue
            for length in desc.possible_length:
                for _ in range(6):
                    national = "".join(rng.choice("0123456789") for _ in range(length))
                    digits = code + national
                    if not 8 <= len(digits) <= 15:
                        continue
                    checked += 1
                    assert SmsGatewayHook.from_wire_recipient(digits) == (
                        SmsGatewayHook.from_wire_phone(digits) or None
                    ) or not _valid(digits), digits
    assert checked > 5000


def _valid(digits: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse("+" + digits))
    except phonenumbers.NumberParseException:
        return False


# ------------------------------------------------------------------------------------------------ caches
def test_repeated_texts_read_as_pendulum_reads_them_in_each_zone(monkeypatch):
    """The per-zone cache: the same text in two zones is two moments, each pendulum's, every time."""
    texts = ["2026-10-25 02:30", "2026-03-29 02:30", "2026-05-29T17:21:27.5Z", "2026-05-29 17:21:27"]
    for _ in range(3):
        for zone in ZONES:
            hook = hook_in(zone, monkeypatch)
            for text in texts:
                same_moment(hook.parse_time(text), pendulum.parse(text, tz=zone))
    for text in ("2026-05-29T17:21:27+02:00", "not a date", "2026-13-01 10:00"):  # never cached
        for _ in range(2):
            expected = None if "+" not in text else pendulum.parse(text, tz="UTC")
            assert hook_in("UTC", monkeypatch).parse_time(text) == expected
        assert text not in base._TIMES.get("UTC", {})


def test_the_time_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(base, "_TIMES", {})
    monkeypatch.setattr(base, "_CACHE_SIZE", 8)
    hook = hook_in("Europe/Berlin", monkeypatch)
    for second in range(30):
        text = f"2026-05-29 17:21:{second:02d}"
        same_moment(hook.parse_time(text), pendulum.parse(text, tz="Europe/Berlin"))
        assert len(base._TIMES["Europe/Berlin"]) <= 8
    for index in range(20):
        base._remember_time(f"Zone/{index}", "2026-05-29", pendulum.datetime(2026, 5, 29))
        assert len(base._TIMES) <= 8


# ------------------------------------------------------------------------------------------------ report()
def _gateway_hooks(monkeypatch):
    from airflow_provider_sms.hooks.smsgateway24 import SmsGateway24Hook
    from airflow_provider_sms.hooks.smstools import SmstoolsHook
    from airflow_provider_sms.hooks.textboost import TextBoostHook

    hooks = []
    for cls in (SmstoolsHook, SmsGateway24Hook, TextBoostHook):
        conn_id = f"fast_{cls.conn_type}"
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}",
            json.dumps(
                {
                    "conn_type": cls.conn_type,
                    "host": "https://x.test",
                    "login": "u",
                    "password": "p",
                    "extra": {"timezone": "Europe/Berlin"},
                }
            ),
        )
        hooks.append(cls(conn_id))
    return hooks


def _reference_report(
    hook,
    message_id,
    raw_status,
    *,
    status=None,
    recipient=None,
    key=None,
    body=None,
    created=None,
    updated=None,
):
    """report() as it was written before its fast paths: the slow reference."""
    from airflow_provider_sms.messages import StatusReport, map_status

    return StatusReport(
        message_id=str(message_id),
        status=map_status(raw_status, hook.status_map) if status is None else status,
        raw_status=None if raw_status is None else str(raw_status),
        recipient=SmsGatewayHook.from_wire_recipient(recipient),
        key=None if key in (None, "") else str(key),
        body=body,
        created_at=hook.parse_time(created),
        updated_at=hook.parse_time(updated),
    )


def _same_report(fast, slow) -> None:
    import dataclasses
    import pickle

    assert type(fast) is type(slow)
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert vars(fast) == vars(slow) and list(vars(fast)) == list(vars(slow))
    for name in vars(slow):
        assert type(getattr(fast, name)) is type(getattr(slow, name))
    assert pickle.loads(pickle.dumps(fast)) == slow
    assert dataclasses.replace(fast, key="x") == dataclasses.replace(slow, key="x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.status = None


def test_status_report_keeps_what_the_fast_constructor_relies_on():
    """base._status_report sets __dict__ at once: StatusReport must stay a plain frozen dataclass."""

    from airflow_provider_sms.messages import StatusReport

    assert not hasattr(StatusReport, "__post_init__") and "__slots__" not in vars(StatusReport)
    assert StatusReport.__dataclass_params__.frozen


RAW_STATUSES = [
    None,
    "delivered",
    "DELIVERED",
    " Delivered ",
    "failed",
    "sent",
    "queued",
    "weird",
    "",
    1,
    2,
    5,
]
VALUES = st.one_of(st.none(), st.just(""), st.integers(-5, 10**12), st.text(max_size=12))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    message_id=st.one_of(st.integers(0, 10**9), st.text(min_size=1, max_size=10)),
    raw_status=st.one_of(st.sampled_from(RAW_STATUSES), st.text(max_size=8)),
    recipient=st.one_of(VALUES, st.sampled_from(["31612345678", "+4915112345678", "0031612345678"])),
    key=VALUES,
    body=st.one_of(st.none(), st.text(max_size=5)),
    created=st.one_of(
        st.none(), st.just(""), st.sampled_from(["2026-10-25 02:30", "2026-05-29T17:21:27.5Z"])
    ),
    updated=st.one_of(st.none(), st.sampled_from(["2026-03-29 02:30:00", "2026-05-29T17:21:27+02:00", "x"])),
)
def test_report_is_the_reference_report_field_by_field(
    message_id, raw_status, recipient, key, body, created, updated, monkeypatch
):
    for hook in _gateway_hooks(monkeypatch):
        for _ in range(2):  # the second time from the caches
            args = dict(recipient=recipient, key=key, body=body, created=created, updated=updated)
            _same_report(
                hook.report(message_id, raw_status, **args),
                _reference_report(hook, message_id, raw_status, **args),
            )
        given_status = base.DeliveryStatus.SCHEDULED
        _same_report(
            hook.report(message_id, raw_status, status=given_status),
            _reference_report(hook, message_id, raw_status, status=given_status),
        )


def test_report_on_generated_pages_of_each_gateway_is_the_reference(monkeypatch):
    """Each gateway's own row reader (what its listing calls) against the reference report()."""
    rng = random.Random(7)
    for hook in _gateway_hooks(monkeypatch):
        statuses = [*hook.status_map, *(s.upper() for s in hook.status_map), "unknown-thing", None]
        fast, slow = [], []
        for i in range(500):
            raw = rng.choice(statuses)
            args = dict(
                recipient=rng.choice([f"316{rng.randrange(10**7, 10**8)}", f"+316{i:08d}", "", None, "12"]),
                key=rng.choice([None, "", f"k{i}", i]),
                body=rng.choice([None, "Hello", ""]),
                created=f"2026-05-29 17:{rng.randrange(60):02d}:{rng.randrange(60):02d}",
                updated=rng.choice([None, "2026-10-25T02:30:00.25Z", "2026-10-25 02:30"]),
            )
            fast.append(hook.report(rng.choice([i, str(i)]), raw, **args))
            slow.append(_reference_report(hook, str(i), raw, **args))
        for f, s in zip(fast, slow, strict=True):
            _same_report(f, s)


def test_the_status_cache_follows_the_table_and_is_bounded(monkeypatch):
    from airflow_provider_sms.messages import DeliveryStatus, map_status

    monkeypatch.setattr(base, "_CACHE_SIZE", 4)
    for hook in _gateway_hooks(monkeypatch):
        for raw in [*hook.status_map, "nope", " DELIVERED ", 3, None] * 2:
            assert hook.map_status(raw) is map_status(raw, hook.status_map)
            assert len(hook.__dict__["_statuses"][1]) <= 4
        hook.status_map = {"delivered": DeliveryStatus.FAILED}  # another table: not the old answers
        assert hook.map_status("delivered") is DeliveryStatus.FAILED


# ------------------------------------------------------------------------------------------------ the collector
def _recorded_pauses(monkeypatch, *, enabled=True) -> list[str]:
    import gc

    calls: list[str] = []
    monkeypatch.setattr(gc, "disable", lambda: calls.append("disable"))
    monkeypatch.setattr(gc, "enable", lambda: calls.append("enable"))
    monkeypatch.setattr(gc, "collect", lambda generation=2: calls.append(f"collect {generation}"))
    monkeypatch.setattr(gc, "isenabled", lambda: enabled)
    return calls


def test_collector_paused_sweeps_every_nth_batch_and_resumes_also_when_the_write_fails(monkeypatch):
    calls = _recorded_pauses(monkeypatch)
    with base.collector_paused(sweep_every=3) as sweep:
        for _ in range(7):
            sweep()
        assert calls == ["disable", "collect 0", "collect 0"]  # the 3rd and the 6th batch
    assert calls[-1] == "enable"
    calls.clear()
    with pytest.raises(RuntimeError), base.collector_paused() as sweep:
        sweep()
        raise RuntimeError("the write failed")
    assert calls == ["disable", "enable"]


def test_collector_paused_leaves_a_collector_that_is_off_alone(monkeypatch):
    """Off already (the caller's choice, or an outer pause): no sweep, not switched on at the end."""
    calls = _recorded_pauses(monkeypatch, enabled=False)
    with base.collector_paused(sweep_every=1) as sweep:
        sweep()
    assert calls == []


def test_collector_paused_really_pauses_frees_what_dies_and_sweeps_cycles():
    """On the real collector: off inside, on after (nested pauses resume once, at the outer end); a
    batch nothing refers to any more is freed at once (reference counting), a reference cycle made
    inside waits for a sweep."""
    import gc
    import weakref

    class Row:
        pass

    def cycle() -> weakref.ref:
        row = Row()
        row.itself = row
        return weakref.ref(row)

    assert gc.isenabled()
    with base.collector_paused(sweep_every=2) as sweep:
        assert not gc.isenabled()
        with base.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
        batch = [Row() for _ in range(100)]
        probe = weakref.ref(batch[0])
        del batch
        assert probe() is None
        in_cycle = cycle()
        sweep()
        assert in_cycle() is not None  # the first batch: no sweep yet
        sweep()
        assert in_cycle() is None
        left = cycle()
    assert gc.isenabled()
    gc.collect()
    assert left() is None


# ------------------------------------------------------------------------------------------------ look-ups
def test_wanted_statuses_keep_what_the_keep_function_keeps():
    """_Wanted takes the status without calling _status_of: the same found dict, the same stop."""
    from airflow_provider_sms.messages import DeliveryStatus, StatusReport

    rng = random.Random(3)
    reports = [
        StatusReport(str(rng.randrange(50)), rng.choice(list(DeliveryStatus)), "x") for _ in range(300)
    ]
    ids = [str(i) for i in range(0, 60, 2)]
    for keep in (base._status_of, base._whole_report):
        fast, slow = base._Wanted(ids, keep), base._Wanted(ids, lambda r, keep=keep: keep(r))
        assert fast.statuses is (keep is base._status_of) and not slow.statuses
        for report in reports:
            done = fast.take(report)
            assert done == slow.take(report)
            assert fast.found == slow.found and list(fast.found) == list(slow.found)
            assert all(a is b for a, b in zip(fast.found, slow.found, strict=True))  # the caller's ids
            if done:
                break
