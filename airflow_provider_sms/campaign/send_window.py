"""Send windows: the local hours in which a recipient may get a message, and when they next open."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from datetime import time as wall_clock
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

HourMinute = tuple[int, int]
UTC = timezone.utc


class UnknownTimezoneError(ValueError):
    """A time zone name that the tz database does not know."""


def parse_window(window: tuple[str, str]) -> tuple[HourMinute, HourMinute]:
    """``("09:00", "20:00")`` → ``((9, 0), (20, 0))``; a clear ValueError for anything else."""
    try:
        start, end = (tuple(int(p) for p in t.split(":")) for t in window)
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"send_window must be two 'HH:MM' times, got {window!r}") from None
    if not (start < end and all(0 <= h < 24 and 0 <= m < 60 for h, m in (start, end))):
        raise ValueError(f"send_window must be ('HH:MM', 'HH:MM') with start before end, got {window!r}")
    return start, end  # type: ignore[return-value]


@lru_cache(maxsize=1024)
def _zone_or_none(name: str) -> ZoneInfo | None:
    # Cached, unknown names included: an audience repeats the same few names millions of times.
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return None


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Berlin``, ``UTC``...), or UnknownTimezoneError."""
    found = _zone_or_none(name)
    if found is None:
        raise UnknownTimezoneError(f"unknown timezone {name[:100]!r}")
    return found


def is_missing(value: object) -> bool:
    """None, NaN/NaT/pd.NA or blank text: the row gives no time zone."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, float):
        return math.isnan(value)
    try:
        return bool(value != value)  # NaT; pd.NA's comparison is ambiguous and raises
    except (TypeError, ValueError):
        return True


def wall_time(day: date, hour_minute: HourMinute, tz: ZoneInfo) -> datetime:
    """The first instant (in UTC) at or after the local wall-clock time ``hour_minute`` on ``day``.

    A wall time that happens twice (autumn) is its first occurrence; one that does not happen at all
    (in the spring-forward gap) is the end of the gap: 02:30 in Berlin on the spring-forward day is
    03:00 local. (``pendulum``'s ``replace(hour=...)`` from a time after the change keeps the
    post-change offset's neighbour and lands an hour early, at 01:30 local.)
    """
    naive = datetime.combine(day, wall_clock(*hour_minute))
    earlier = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if earlier.astimezone(tz).replace(tzinfo=None) == naive:
        return earlier  # exists (for a repeated time, fold=0 is its first occurrence)
    # In a gap, fold=0 reads the wall time with the offset before the change (an instant after the
    # gap) and fold=1 with the offset after it (an instant before): the change lies between them.
    lo = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    hi = earlier
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0)


class SendWindow:
    """Local hours ``[start, end)`` in which messages may be delivered, per time zone.

    ``next_opening`` reads ``clock`` (epoch seconds; tests replace it) on every call and caches one
    answer per zone for as long as it holds (until the window next opens or closes there), so a
    long run always answers for the current time at the cost of a dict look-up per row.
    """

    def __init__(
        self,
        start: HourMinute,
        end: HourMinute,
        timezone: str = "UTC",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.start = start
        self.end = end
        self.timezone = timezone
        zone(timezone)  # an unknown default zone fails here, not on the first row
        self.clock = clock
        # zone name -> (valid from, valid until, answer), in epoch seconds
        self._answers: dict[str, tuple[float, float, datetime | None]] = {}

    def next_opening(self, timezone: str | None = None, now: float | None = None) -> datetime | None:
        """When the window next opens in ``timezone`` (default: the window's), in UTC; None while open."""
        name = timezone or self.timezone
        now = self.clock() if now is None else now
        cached = self._answers.get(name)
        if cached is not None and cached[0] <= now < cached[1]:
            return cached[2]
        opening, until = self._next_opening(now, zone(name))
        self._answers[name] = (now, until.timestamp(), opening)
        return opening

    def _next_opening(self, now: float, tz: ZoneInfo) -> tuple[datetime | None, datetime]:
        """(the next opening or None while open, when that answer changes)."""
        instant = datetime.fromtimestamp(now, UTC)
        today = instant.astimezone(tz).date()
        opening = wall_time(today, self.start, tz)
        if instant < opening:
            return opening, opening
        closing = wall_time(today, self.end, tz)
        if instant < closing:
            return None, closing
        tomorrow = wall_time(today + timedelta(days=1), self.start, tz)
        return tomorrow, tomorrow

    def zone_of(self, value: object) -> str:
        """The zone name a row's time zone cell stands for: missing → the window's own zone;
        a name the tz database does not know → UnknownTimezoneError."""
        if is_missing(value):
            return self.timezone
        name = str(value).strip()
        zone(name)
        return name
