"""Calling windows from the number itself: each +1 area code in its own zone (808 Honolulu,
902 Halifax, 787 Puerto Rico, 709 Halifax or St John's, mainland examples), checked at the
window's edges in injected time, winter and summer. The old table put every +1 number in the
four mainland zones, so Honolulu was called from 07:00 local and the Atlantic numbers until
22:00 (St John's 22:30); the edge tests below fail on it."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from control_plane.campaigns.timezones import DAYS, Window, contact_zones, number_zones, zone

WINDOW = Window("09:00", "21:00", DAYS)
JUST = timedelta(seconds=1)

# number -> the zones it may be in
AREA_CODES = {
    "+18085550123": ("Pacific/Honolulu",),
    "+19025550123": ("America/Halifax",),
    "+17875550123": ("America/Puerto_Rico",),
    "+17095550123": ("America/Halifax", "America/St_Johns"),  # Labrador keeps Atlantic time
    "+12125550123": ("America/New_York",),
    "+13125550123": ("America/Chicago",),
    "+13035550123": ("America/Denver",),
    "+16025550123": ("America/Phoenix",),
    "+13105550123": ("America/Los_Angeles",),
}

WINTER = date(2027, 1, 13)  # a Wednesday, no DST anywhere
SUMMER = date(2027, 7, 14)  # a Wednesday, DST on the mainland, Halifax and St John's (not Hawaii, PR, Arizona)


def _zones(number: str) -> list[ZoneInfo]:
    return [zone(name) for name in contact_zones(number, None, "UTC")]


def _local(day: date, hhmm: time, name: str) -> datetime:
    return datetime.combine(day, hhmm, ZoneInfo(name)).astimezone(UTC)


@pytest.mark.parametrize("number", sorted(AREA_CODES))
def test_each_area_code_resolves_to_its_own_zones(number):
    assert set(number_zones(number)) == set(AREA_CODES[number])


@pytest.mark.parametrize("day", [WINTER, SUMMER], ids=["winter", "summer"])
@pytest.mark.parametrize("number", sorted(AREA_CODES))
def test_window_edges_in_the_numbers_own_zones(number, day):
    zones = _zones(number)
    names = AREA_CODES[number]
    # Open only once it is 09:00 in every zone the number may be in, closed once it is 21:00 in any.
    opens = max(_local(day, time(9), name) for name in names)
    closes = min(_local(day, time(21), name) for name in names)
    assert WINDOW.next_open_in_all(opens - JUST, zones) == opens
    assert WINDOW.next_open_in_all(opens, zones) == opens
    assert WINDOW.next_open_in_all(closes - JUST, zones) == closes - JUST
    tomorrow = max(_local(day + timedelta(days=1), time(9), name) for name in names)
    assert WINDOW.next_open_in_all(closes, zones) == tomorrow


@pytest.mark.parametrize("day", [WINTER, SUMMER], ids=["winter", "summer"])
def test_the_issues_cases_wait_for_local_hours(day):
    seven_am = _local(day, time(7), "Pacific/Honolulu")
    assert WINDOW.next_open_in_all(seven_am, _zones("+18085550123")) == _local(day, time(9), "Pacific/Honolulu")
    for number, name in (("+19025550123", "America/Halifax"), ("+17875550123", "America/Puerto_Rico"),
                         ("+17095550123", "America/St_Johns")):
        late = _local(day, time(21, 15), name)
        assert WINDOW.next_open_in_all(late, _zones(number)) > late, number
    # 709 opens at 09:00 Halifax time, when St John's is already at 09:30.
    assert WINDOW.next_open_in_all(_local(day, time(9, 15), "America/St_Johns"), _zones("+17095550123")) == \
        _local(day, time(9), "America/Halifax")


def test_the_contacts_explicit_zone_takes_precedence():
    assert contact_zones("+18085550123", "America/New_York", "UTC") == ("America/New_York",)
    assert contact_zones("+18085550123", None, "UTC") == ("Pacific/Honolulu",)


def test_numbers_without_a_known_place_fall_back_to_the_windows_zone():
    assert contact_zones("+37912345678", None, "Europe/Rome") == ("Europe/Rome",)  # unassigned code
    assert contact_zones(None, None, "UTC") == ("UTC",)
    assert contact_zones("not a number", None, "UTC") == ("UTC",)


def test_a_number_that_may_be_anywhere_in_plus_one_waits_for_hours_open_everywhere():
    """A toll-free number is not tied to a place: it may be anywhere from Guam to St John's and
    Pago Pago, so it is called only in the hour and a half when 09:00-21:00 holds in all of
    them (23:00-00:30 UTC in winter: from 09:00 tomorrow in Guam to 21:00 in St John's)."""
    names = number_zones("+18005550123")
    assert {"Pacific/Guam", "Pacific/Pago_Pago", "Pacific/Honolulu", "America/St_Johns"} <= set(names)
    found = WINDOW.next_open_in_all(_local(WINTER, time(12), "America/New_York"), _zones("+18005550123"))
    assert found == datetime.combine(WINTER, time(23), UTC)
    for name in names:
        assert time(9) <= found.astimezone(ZoneInfo(name)).time() < time(21), name
    closes = _local(WINTER, time(21), "America/St_Johns")
    assert WINDOW.next_open_in_all(closes - JUST, _zones("+18005550123")) == closes - JUST
    assert WINDOW.next_open_in_all(closes, _zones("+18005550123")) == found + timedelta(days=1)
    # Weekdays only: Guam's Saturday morning is Pago Pago's Friday, so Friday 23:00 UTC is out.
    weekdays = Window("09:00", "21:00", DAYS[:5])
    friday = datetime.combine(WINTER + timedelta(days=2), time(22), UTC)
    assert weekdays.next_open_in_all(friday, _zones("+18005550123")) == friday + timedelta(days=3, hours=1)


def _reference_next_open(window: Window, now: datetime, zones: list[ZoneInfo]) -> datetime | None:
    """The obvious search: now, else the first zone opening time at which every zone is open."""
    if window.open_in_all(now, zones):
        return now
    candidates = sorted({opens for tz in zones for opens, _ in window._intervals(now, tz) if opens > now})
    return next((c for c in candidates if window.open_in_all(c, zones)), None)


ZONE_NAMES = ("Asia/Tokyo", "Europe/London", "America/New_York", "America/St_Johns", "Pacific/Honolulu",
              "Australia/Adelaide", "Asia/Kolkata", "Pacific/Chatham", "America/Sao_Paulo", "UTC")


@given(names=st.lists(st.sampled_from(ZONE_NAMES), min_size=1, max_size=5, unique=True),
       start=st.integers(0, 23), length=st.integers(1, 23), days=st.sets(st.sampled_from(DAYS), min_size=1),
       now=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)))
@hypothesis_settings(max_examples=300, deadline=None)
def test_next_open_in_all_agrees_with_trying_each_opening_time(names, start, length, days, now):
    end = (start + length) % 24
    window = Window(f"{start:02d}:00", f"{end:02d}:00", sorted(days, key=DAYS.index))
    zones = [zone(name) for name in names]
    assert window.next_open_in_all(now, zones) == _reference_next_open(window, now, zones)
