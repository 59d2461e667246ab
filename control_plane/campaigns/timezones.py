"""Where a contact is, in time: its calling window, in its own time zone.

The zone is the contact's explicit ``timezone`` column, else the zones its number may be in
(``phonenumbers``: the area code, so +1 808 is Honolulu and +1 902 Halifax), else the
campaign window's ``timezone``. A number that may be in several zones (a mobile, a
toll-free number, an area code spanning two) must be inside the window in *every* one of
them: a contact whose zone is only guessed is never called outside the window wherever it
may be. Zone data comes from the ``tzdata`` wheel where the system has none (slim images).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as pn_timezone

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class UnknownTimeZone(ValueError):
    pass


@functools.lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; :class:`UnknownTimeZone` when it does not exist."""
    if not isinstance(name, str) or not name or len(name) > 64 or name.startswith("/") or ".." in name:
        raise UnknownTimeZone("not an IANA time zone name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UnknownTimeZone("unknown time zone") from None


@functools.lru_cache(maxsize=4096)
def number_zones(e164: str) -> tuple[str, ...]:
    """The zones the number may be in, from libphonenumber's data; ``()`` when it cannot say.

    One zone for most geographic numbers (+1 808 is Pacific/Honolulu, +1 709 may be Halifax
    or St John's); the whole country's zones for numbers not tied to a place (most mobiles,
    toll-free). A number the library does not know as valid (an area code newer than its
    data) is placed by its longest known prefix, at worst its country.
    """
    try:
        parsed = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return ()
    zones = pn_timezone.time_zones_for_number(parsed)
    if _unknown(zones):
        zones = pn_timezone.time_zones_for_geographical_number(parsed)
    return () if _unknown(zones) else tuple(zones)


def _unknown(zones: Sequence[str]) -> bool:
    return not zones or pn_timezone.UNKNOWN_TIMEZONE in zones


def contact_zones(e164: str | None, explicit: str | None, fallback: str) -> tuple[str, ...]:
    """The contact's explicit zone, else every zone its number may be in, else ``fallback``."""
    if explicit:
        return (explicit,)
    zones = number_zones(e164) if e164 else ()
    return zones or (fallback,)


def parse_hhmm(value: str) -> time:
    hours, _, minutes = value.partition(":")
    if len(value) != 5 or not hours.isdigit() or not minutes.isdigit():
        raise ValueError("expected HH:MM")
    h, m = int(hours), int(minutes)
    if h == 24 and m == 0:
        return time(23, 59, 59, 999999)
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError("expected HH:MM between 00:00 and 24:00")
    return time(h, m)


class Window:
    """Daily calling hours on some days of the week, evaluated in a given zone.

    ``end <= start`` is an overnight window (22:00-02:00), belonging to the day it starts on.
    """

    __slots__ = ("start", "end", "days")

    def __init__(self, start: str, end: str, days: Sequence[str]) -> None:
        self.start = parse_hhmm(start)
        self.end = parse_hhmm(end)
        self.days = frozenset(DAYS.index(d) for d in days)

    def _intervals(self, around: datetime, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
        local = around.astimezone(tz)
        out = []
        for offset in range(-1, 9):
            day = local.date() + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            opens = datetime.combine(day, self.start, tz)
            closes_day = day if self.end > self.start else day + timedelta(days=1)
            closes = datetime.combine(closes_day, self.end, tz)
            out.append((opens.astimezone(UTC), closes.astimezone(UTC)))
        return out

    def is_open(self, now: datetime, tz: ZoneInfo) -> bool:
        return any(opens <= now < closes for opens, closes in self._intervals(now, tz))

    def next_open(self, now: datetime, tz: ZoneInfo) -> datetime | None:
        """When the window next opens (``now`` if it is open); ``None`` if it never does."""
        for opens, closes in self._intervals(now, tz):
            if opens <= now < closes:
                return now
        later = [opens for opens, _ in self._intervals(now, tz) if opens > now]
        return min(later) if later else None

    def open_in_all(self, now: datetime, zones: Sequence[ZoneInfo]) -> bool:
        return all(self.is_open(now, tz) for tz in zones)

    def next_open_in_all(self, now: datetime, zones: Sequence[ZoneInfo]) -> datetime | None:
        """The first moment from ``now`` on when the window is open in every zone (within 8 days).

        The zones' open intervals are intersected once, so a number that may be in dozens of
        zones (toll-free: the whole of +1) costs one pass per zone, not one per candidate time.
        """
        if not zones:
            return now
        common = self._intervals(now, zones[0])
        for tz in zones[1:]:
            common = _intersect(common, self._intervals(now, tz))
            if not common:
                return None
        for opens, closes in common:
            if closes > now:
                return max(opens, now)
        return None


def _intersect(a: list[tuple[datetime, datetime]], b: list[tuple[datetime, datetime]]
               ) -> list[tuple[datetime, datetime]]:
    """The overlap of two sorted lists of disjoint half-open intervals, sorted."""
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        opens, closes = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if opens < closes:
            out.append((opens, closes))
        if a[i][1] <= b[j][1]:
            i += 1
        else:
            j += 1
    return out
