"""Send windows in the lead's local time: DST both ways, holidays, extreme offsets, midnight."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reengage.domain.send_windows import (
    SendWindow,
    SendWindowError,
    lead_zone,
    parse_closed_dates,
    parse_weekdays,
    parse_window_times,
)

DEFAULT = SendWindow()
BERLIN, NEW_YORK, SYDNEY = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York"), ZoneInfo("Australia/Sydney")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_a_lead_contacted_late_on_friday_gets_monday_morning_local_time() -> None:
    # Friday 2026-11-27 16:00 in Berlin: next window is Monday 08:00 CET = 07:00Z.
    assert DEFAULT.next_opening(utc(2026, 11, 27, 15), BERLIN, "DE") == utc(2026, 11, 30, 7)


def test_inside_the_window_the_instant_itself_is_the_opening() -> None:
    assert DEFAULT.next_opening(utc(2026, 11, 30, 8, 15), BERLIN, "DE") == utc(2026, 11, 30, 8, 15)


def test_window_closes_at_local_end_and_the_next_day_opens() -> None:
    assert DEFAULT.closing(utc(2026, 11, 30, 9), BERLIN, "DE") == utc(2026, 11, 30, 10)
    assert DEFAULT.closing(utc(2026, 11, 30, 10), BERLIN, "DE") is None  # 11:00 local: closed
    assert DEFAULT.next_opening(utc(2026, 11, 30, 10), BERLIN, "DE") == utc(2026, 12, 1, 7)


@pytest.mark.parametrize(
    ("zone", "before", "after"),
    [
        # Berlin springs forward on 2026-03-29 and falls back on 2026-10-25: 08:00 local moves by an hour in UTC.
        (BERLIN, utc(2026, 3, 27, 7), utc(2026, 3, 30, 6)),
        (BERLIN, utc(2026, 10, 23, 6), utc(2026, 10, 26, 7)),
        # New York: 2026-03-08 and 2026-11-01.
        (NEW_YORK, utc(2026, 3, 6, 13), utc(2026, 3, 9, 12)),
        (NEW_YORK, utc(2026, 10, 30, 12), utc(2026, 11, 2, 13)),
        # Sydney (southern hemisphere) falls back on 2026-04-05 and springs forward on 2026-10-04.
        (SYDNEY, utc(2026, 4, 2, 21), utc(2026, 4, 5, 22)),
        (SYDNEY, utc(2026, 10, 1, 22), utc(2026, 10, 4, 21)),
    ],
)
def test_daylight_saving_moves_the_utc_opening_not_the_local_one(
    zone: ZoneInfo, before: datetime, after: datetime
) -> None:
    assert DEFAULT.next_opening(before, zone) == before
    assert before.astimezone(zone).time() == time(8)
    # Monday after the change: still 08:00 local, an hour apart in UTC.
    assert DEFAULT.next_opening(before + timedelta(hours=4), zone) == after
    assert after.astimezone(zone).time() == time(8)


def test_a_window_opening_inside_the_spring_forward_gap_opens_when_the_clocks_jump() -> None:
    night = SendWindow(start=time(2, 30), end=time(4), weekdays=frozenset(range(7)))
    # 2026-03-29 02:00 CET -> 03:00 CEST at 01:00Z; 02:30 does not exist that night.
    assert night.next_opening(utc(2026, 3, 29, 0), BERLIN) == utc(2026, 3, 29, 1)
    assert night.closing(utc(2026, 3, 29, 1), BERLIN) == utc(2026, 3, 29, 2)  # 04:00 CEST


def test_a_window_ending_at_an_ambiguous_fall_back_time_ends_at_its_first_occurrence() -> None:
    night = SendWindow(start=time(1), end=time(2, 30), weekdays=frozenset(range(7)))
    # 2026-10-25: 02:30 CEST (00:30Z) comes first, then 02:30 CET (01:30Z). Never send late.
    assert night.closing(utc(2026, 10, 25, 0), BERLIN) == utc(2026, 10, 25, 0, 30)
    assert not night.is_open(utc(2026, 10, 25, 1), BERLIN)


def test_public_holidays_of_the_leads_country_are_skipped() -> None:
    # 2026-12-24 is a Thursday; Christmas Day (Fri) is a holiday in DE and US, Boxing day a Saturday.
    assert DEFAULT.next_opening(utc(2026, 12, 24, 12), BERLIN, "DE") == utc(2026, 12, 28, 7)
    # German Unity Day (2025-10-03, a Friday) is not a holiday in the US.
    assert DEFAULT.next_opening(utc(2025, 10, 3, 5), BERLIN, "DE") == utc(2025, 10, 6, 6)
    assert DEFAULT.next_opening(utc(2025, 10, 3, 12), NEW_YORK, "US") == utc(2025, 10, 3, 12)


def test_deployment_closed_dates_apply_to_everyone_and_holidays_can_be_off() -> None:
    closed = SendWindow(closed_dates=frozenset({date(2026, 11, 30)}), public_holidays=False)
    assert closed.next_opening(utc(2026, 11, 30, 7), BERLIN, "DE") == utc(2026, 12, 1, 7)
    assert closed.next_opening(utc(2026, 12, 25, 7), BERLIN, "DE") == utc(2026, 12, 25, 7)


def test_utc_plus_14_and_utc_minus_12_leads() -> None:
    kiritimati, baker = ZoneInfo("Pacific/Kiritimati"), ZoneInfo("Etc/GMT+12")
    # 2026-11-30 (Mon) 12:00Z is Tue 02:00 in Kiritimati and Mon 00:00 at UTC-12.
    assert DEFAULT.next_opening(utc(2026, 11, 30, 12), kiritimati) == utc(2026, 11, 30, 18)  # Tue 08:00 local
    assert DEFAULT.next_opening(utc(2026, 11, 30, 12), baker) == utc(2026, 11, 30, 20)  # Mon 08:00 local


def test_a_window_across_local_midnight_belongs_to_the_day_it_starts() -> None:
    night = SendWindow(start=time(22), end=time(2), weekdays=frozenset({4}))  # Friday 22:00 - Saturday 02:00
    tokyo = ZoneInfo("Asia/Tokyo")
    friday_late = datetime(2026, 11, 27, 23, 30, tzinfo=tokyo)
    assert night.is_open(friday_late, tokyo)
    assert night.is_open(datetime(2026, 11, 28, 1, 59, tzinfo=tokyo), tokyo)  # Saturday, still Friday's window
    assert not night.is_open(datetime(2026, 11, 28, 23, tzinfo=tokyo), tokyo)  # Saturday's own evening
    assert night.next_opening(datetime(2026, 11, 28, 2, tzinfo=tokyo), tokyo) == datetime(
        2026, 12, 4, 22, tzinfo=tokyo
    ).astimezone(UTC)


def test_settings_parse_with_specific_errors() -> None:
    assert parse_window_times("08:00-11:30") == (time(8), time(11, 30))
    assert parse_weekdays("mon-fri") == frozenset(range(5))
    assert parse_weekdays("sun-thu") == frozenset({6, 0, 1, 2, 3})
    assert parse_weekdays("Mon, Wed,fri") == frozenset({0, 2, 4})
    assert parse_closed_dates("2026-12-24, 2026-12-31") == frozenset({date(2026, 12, 24), date(2026, 12, 31)})
    for bad, parser in (("8-11", parse_window_times), ("25:00-26:00", parse_window_times), ("funday", parse_weekdays)):
        with pytest.raises(
            SendWindowError, match=repr(bad.split("-")[0]) if parser is parse_window_times else "funday"
        ):
            parser(bad)
    with pytest.raises(SendWindowError, match="2026-13-01"):
        parse_closed_dates("2026-13-01")
    with pytest.raises(SendWindowError, match="same time"):
        SendWindow(start=time(9), end=time(9))


@pytest.mark.parametrize(
    ("attributes", "zone", "country", "source"),
    [
        ({"timezone": "Asia/Singapore"}, "Asia/Singapore", "SG", "timezone"),
        ({"timezone": "Asia/Singapore", "country": "MY"}, "Asia/Singapore", "MY", "timezone"),
        ({"country": "Germany"}, "Europe/Berlin", "DE", "country"),
        ({"country": "usa"}, "America/New_York", "US", "country"),
        ({"country": "AU"}, "Australia/Sydney", "AU", "country"),
        ({"email": "kai@acme.de"}, "Europe/Berlin", "DE", "email domain"),
        ({"email": "ann@firm.co.uk"}, "Europe/London", "GB", "email domain"),
        (
            {"email": "ann@gmail.com", "website": "https://shop.example.fr/about"},
            "Europe/Paris",
            "FR",
            "website domain",
        ),
        ({"email": "dev@startup.io"}, "America/Chicago", "US", "default"),  # .io is sold worldwide
        ({"timezone": "Mars/Olympus", "email": "x@y.nl"}, "Europe/Amsterdam", "NL", "email domain"),
    ],
)
def test_the_leads_zone_follows_the_documented_rule(
    attributes: dict[str, str], zone: str, country: str, source: str
) -> None:
    found = lead_zone(default_zone="America/Chicago", **attributes)
    assert (found.zone, found.country, found.source) == (zone, country, source)


def test_an_unusable_timezone_or_country_is_reported_not_fatal() -> None:
    found = lead_zone(timezone="../etc/passwd", country="Atlantis", default_zone="UTC")
    assert found.source == "default"
    assert any("../etc/passwd" in note for note in found.notes)
    assert any("Atlantis" in note for note in found.notes)


ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Pacific/Kiritimati",
    "Etc/GMT+12",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "America/St_Johns",
]


@st.composite
def windows(draw: st.DrawFn) -> SendWindow:
    start = time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 15, 30, 45])))
    length = draw(st.integers(15, 20 * 60))
    end_minutes = (start.hour * 60 + start.minute + length) % (24 * 60)
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    return SendWindow(start=start, end=time(end_minutes // 60, end_minutes % 60), weekdays=days)


@settings(max_examples=300, deadline=None)
@given(
    window=windows(),
    zone_name=st.sampled_from(ZONES),
    country=st.sampled_from([None, "DE", "US", "AU", "IN", "NZ"]),
    earliest=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)),
)
def test_no_schedule_ever_sends_outside_the_leads_window(
    window: SendWindow, zone_name: str, country: str | None, earliest: datetime
) -> None:
    zone = ZoneInfo(zone_name)
    opening = window.next_opening(earliest, zone, country)
    assert opening >= earliest
    assert window.is_open(opening, zone, country)
    # Nothing earlier qualified: the second before the opening is closed (or before `earliest`).
    if opening > earliest:
        assert not window.is_open(opening - timedelta(seconds=1), zone, country)
    # The local wall clock at the opening is inside the configured hours on an open day.
    local = opening.astimezone(zone)
    started = (
        local.date()
        if (window.crosses_midnight and local.time() >= window.start) or not window.crosses_midnight
        else local.date() - timedelta(days=1)
    )
    assert window.opens_on(started, country)


@pytest.mark.parametrize(
    ("zone", "country"),
    [("US/Eastern", "US"), ("Asia/Calcutta", "IN"), ("Europe/Kiev", "UA"), ("Europe/Copenhagen", "DK")],
)
def test_old_and_alias_zone_names_keep_their_countrys_holidays(zone: str, country: str) -> None:
    # CRMs export old names; zone.tab lists only current ones (and Copenhagen links to Berlin in tzdata)
    found = lead_zone(timezone=zone)
    assert (found.zone, found.country) == (zone, country)
    if country == "US":  # Thanksgiving 2026-11-26: the lead's first window is Friday's
        assert DEFAULT.next_opening(utc(2026, 11, 26, 12), ZoneInfo(zone), found.country) == utc(2026, 11, 27, 13)
