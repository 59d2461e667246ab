"""Where a contact is, in time: its calling window, in its own time zone.

The zone is the contact's explicit ``timezone`` column, else the zones of its number's
country calling code (a small built-in table), else the campaign window's ``timezone``.
A country spanning several zones (the US, Canada, Australia, Brazil...) lists them all and
the window must be open in *every* one of them: a contact whose zone is only guessed is
never called outside the window wherever it may be.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Country calling code -> representative IANA zones (several where a country spans them).
COUNTRY_ZONES: dict[str, tuple[str, ...]] = {
    "1": ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"),
    "7": ("Europe/Moscow",),
    "20": ("Africa/Cairo",), "27": ("Africa/Johannesburg",), "30": ("Europe/Athens",),
    "31": ("Europe/Amsterdam",), "32": ("Europe/Brussels",), "33": ("Europe/Paris",), "34": ("Europe/Madrid",),
    "36": ("Europe/Budapest",), "39": ("Europe/Rome",), "40": ("Europe/Bucharest",), "41": ("Europe/Zurich",),
    "43": ("Europe/Vienna",), "44": ("Europe/London",), "45": ("Europe/Copenhagen",),
    "46": ("Europe/Stockholm",), "47": ("Europe/Oslo",), "48": ("Europe/Warsaw",), "49": ("Europe/Berlin",),
    "51": ("America/Lima",), "52": ("America/Mexico_City", "America/Tijuana"),
    "54": ("America/Argentina/Buenos_Aires",), "55": ("America/Sao_Paulo", "America/Manaus"),
    "56": ("America/Santiago",), "57": ("America/Bogota",), "58": ("America/Caracas",),
    "60": ("Asia/Kuala_Lumpur",), "61": ("Australia/Sydney", "Australia/Adelaide", "Australia/Perth"),
    "62": ("Asia/Jakarta",), "63": ("Asia/Manila",), "64": ("Pacific/Auckland",), "65": ("Asia/Singapore",),
    "66": ("Asia/Bangkok",), "81": ("Asia/Tokyo",), "82": ("Asia/Seoul",), "84": ("Asia/Ho_Chi_Minh",),
    "86": ("Asia/Shanghai",), "90": ("Europe/Istanbul",), "91": ("Asia/Kolkata",), "92": ("Asia/Karachi",),
    "94": ("Asia/Colombo",), "212": ("Africa/Casablanca",), "216": ("Africa/Tunis",), "233": ("Africa/Accra",),
    "234": ("Africa/Lagos",), "254": ("Africa/Nairobi",), "351": ("Europe/Lisbon",), "352": ("Europe/Luxembourg",),
    "353": ("Europe/Dublin",), "354": ("Atlantic/Reykjavik",), "358": ("Europe/Helsinki",),
    "359": ("Europe/Sofia",), "370": ("Europe/Vilnius",), "371": ("Europe/Riga",), "372": ("Europe/Tallinn",),
    "380": ("Europe/Kyiv",), "385": ("Europe/Zagreb",), "386": ("Europe/Ljubljana",), "420": ("Europe/Prague",),
    "421": ("Europe/Bratislava",), "852": ("Asia/Hong_Kong",), "886": ("Asia/Taipei",), "880": ("Asia/Dhaka",),
    "966": ("Asia/Riyadh",), "971": ("Asia/Dubai",), "972": ("Asia/Jerusalem",), "974": ("Asia/Qatar",),
}


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


def country_zones(e164: str) -> tuple[str, ...]:
    """Zones of the number's country calling code (longest match), or ``()`` when not in the table."""
    digits = e164.lstrip("+")
    for length in (3, 2, 1):
        zones = COUNTRY_ZONES.get(digits[:length])
        if zones:
            return zones
    return ()


def contact_zones(e164: str | None, explicit: str | None, fallback: str) -> tuple[str, ...]:
    if explicit:
        return (explicit,)
    zones = country_zones(e164) if e164 else ()
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
        """The first moment from ``now`` on when the window is open in every zone (within 8 days)."""
        if self.open_in_all(now, zones):
            return now
        candidates = sorted({opens for tz in zones for opens, _ in self._intervals(now, tz) if opens > now})
        for candidate in candidates:
            if self.open_in_all(candidate, zones):
                return candidate
        return None
