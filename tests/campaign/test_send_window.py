"""SendWindow: openings across daylight-saving changes, the clock read per call, time zone cells.

Every instant here is fixed and passed in (``now=`` or a fake clock): nothing reads the wall clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from airflow_provider_sms.campaign.send_window import SendWindow, UnknownTimezoneError, parse_window

UTC = timezone.utc


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def window(start: str, end: str, tz: str = "Europe/Berlin", clock=None) -> SendWindow:
    if clock is None:
        return SendWindow(*parse_window((start, end)), timezone=tz)
    return SendWindow(*parse_window((start, end)), timezone=tz, clock=clock)


# Berlin springs forward on 2027-03-28 at 02:00 CET (01:00 UTC) to 03:00 CEST: 02:30 never happens.
@pytest.mark.parametrize(
    "now",
    [
        utc(2027, 3, 27, 20, 0),  # 21:00 CET the evening before
        utc(2027, 3, 28, 0, 40),  # 01:40 CET, twenty minutes before the change
        utc(2027, 3, 28, 0, 59, 59),
    ],
)
def test_an_opening_in_the_spring_forward_gap_is_the_end_of_the_gap(now):
    opening = window("02:30", "20:00").next_opening(now=now.timestamp())
    assert opening == utc(2027, 3, 28, 1, 0)  # 03:00 CEST, the first instant at or after 02:30


@pytest.mark.parametrize("now", [utc(2027, 3, 28, 1, 0), utc(2027, 3, 28, 2, 45), utc(2027, 3, 28, 17, 59)])
def test_the_window_is_open_from_the_end_of_the_gap_until_closing(now):
    assert window("02:30", "20:00").next_opening(now=now.timestamp()) is None


def test_a_closing_in_the_gap_is_the_end_of_the_gap_too():
    w = window("01:00", "02:30")
    assert w.next_opening(now=utc(2027, 3, 28, 0, 59).timestamp()) is None  # 01:59 CET: open
    # closed at 03:00 CEST, opens again at 01:00 CEST the next day
    assert w.next_opening(now=utc(2027, 3, 28, 1, 0).timestamp()) == utc(2027, 3, 28, 23, 0)


def test_the_next_day_opening_after_a_gap_day_is_its_own_wall_time():
    # Closed at 03:20 CEST on the change day; tomorrow's 02:30 CEST is 00:30 UTC (not 23:30 UTC).
    w = window("02:30", "03:10")
    assert w.next_opening(now=utc(2027, 3, 28, 1, 20).timestamp()) == utc(2027, 3, 29, 0, 30)


def test_a_thirty_minute_gap():
    # Lord Howe Island moves from +10:30 to +11:00 at 02:00 local on 2027-10-03: 02:15 never happens.
    w = window("02:15", "20:00", tz="Australia/Lord_Howe")
    assert w.next_opening(now=utc(2027, 10, 2, 15, 0).timestamp()) == utc(2027, 10, 2, 15, 30)


def test_an_opening_that_happens_twice_is_its_first_occurrence():
    # Berlin falls back on 2027-10-31 at 03:00 CEST to 02:00 CET: 02:30 happens twice.
    w = window("02:30", "20:00")
    assert w.next_opening(now=utc(2027, 10, 30, 20, 0).timestamp()) == utc(2027, 10, 31, 0, 30)


def test_an_ordinary_day_and_the_next_day():
    w = window("09:00", "20:00")
    assert w.next_opening(now=utc(2027, 1, 10, 7, 59).timestamp()) == utc(2027, 1, 10, 8, 0)
    assert w.next_opening(now=utc(2027, 1, 10, 8, 0).timestamp()) is None
    assert w.next_opening(now=utc(2027, 1, 10, 18, 59, 59).timestamp()) is None
    assert w.next_opening(now=utc(2027, 1, 10, 19, 0).timestamp()) == utc(2027, 1, 11, 8, 0)
    assert w.next_opening("America/Los_Angeles", now=utc(2027, 1, 10, 19, 0).timestamp()) is None  # 11:00


def test_the_clock_is_read_on_every_call_and_a_cached_answer_expires_at_the_boundary():
    now = [utc(2027, 1, 10, 7, 50).timestamp()]  # 08:50 Berlin
    w = window("09:00", "20:00", clock=lambda: now[0])
    assert w.next_opening() == utc(2027, 1, 10, 8, 0)
    now[0] += 9 * 60  # 08:59
    assert w.next_opening() == utc(2027, 1, 10, 8, 0)
    now[0] += 60  # 09:00: the window opened
    assert w.next_opening() is None
    now[0] += 11 * 3600  # 20:00: closed again
    assert w.next_opening() == utc(2027, 1, 11, 8, 0)
    now[0] -= 11 * 3600  # a clock set back (tests do) is answered for, not served from the cache
    assert w.next_opening() is None


@pytest.mark.parametrize("cell", [None, float("nan"), pd.NA, pd.NaT, "", "   "])
def test_an_empty_timezone_cell_means_the_window_timezone(cell):
    assert window("09:00", "20:00").zone_of(cell) == "Europe/Berlin"


@pytest.mark.parametrize("cell", ["Mars/Olympus", "nan", "../../etc/passwd", "/etc/localtime", 42, "Europe/"])
def test_an_unknown_timezone_cell_is_refused_with_its_name(cell):
    with pytest.raises(UnknownTimezoneError, match="unknown timezone"):
        window("09:00", "20:00").zone_of(cell)


def test_a_known_timezone_cell_is_used_as_written_without_surrounding_blanks():
    assert window("09:00", "20:00").zone_of(" America/Los_Angeles ") == "America/Los_Angeles"


def test_an_unknown_window_timezone_fails_at_once():
    with pytest.raises(UnknownTimezoneError, match="Europe/Berln"):
        window("09:00", "20:00", tz="Europe/Berln")


def test_openings_are_exact_minutes_in_utc():
    opening = window("09:30", "20:00", tz="Asia/Kolkata").next_opening(now=utc(2027, 1, 10, 0, 0).timestamp())
    assert opening == utc(2027, 1, 10, 4, 0) and opening.tzinfo is UTC
    assert opening - utc(2027, 1, 10) == timedelta(hours=4)
