"""Working days in Baden-Württemberg, closing days, the sending window and daylight saving."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from efa_rollout.domain.text import german_date, german_weekday_date
from efa_rollout.domain.workdays import (
    WorkCalendar,
    parse_closing_day,
    public_holidays,
)
from efa_rollout.settings import Settings

BERLIN = ZoneInfo("Europe/Berlin")
CAL = WorkCalendar()


def local(*args: int) -> datetime:
    """An aware Europe/Berlin datetime."""
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


# --- holidays, weekends, closing days --------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "reason"),
    [
        (date(2025, 1, 6), "Feiertag Heilige Drei Könige"),
        (date(2025, 6, 19), "Feiertag Fronleichnam"),
        (date(2024, 11, 1), "Feiertag Allerheiligen"),
        (date(2025, 12, 24), "Schließtag"),
        (date(2025, 12, 31), "Schließtag"),
        (date(2025, 3, 15), "Samstag"),
        (date(2025, 3, 16), "Sonntag"),
    ],
)
def test_non_working_days_and_why(day: date, reason: str) -> None:
    assert not CAL.is_working_day(day)
    assert CAL.non_working_reason(day) == reason


@pytest.mark.parametrize(
    "day",
    [
        date(2025, 3, 14),  # an ordinary Friday
        date(2024, 10, 31),  # Reformationstag is no holiday in Baden-Württemberg
        date(2025, 11, 17),  # Buß- und Bettag: only Saxony
        date(2025, 12, 23),
        date(2025, 12, 29),
    ],
)
def test_working_days(day: date) -> None:
    assert CAL.is_working_day(day)
    assert CAL.non_working_reason(day) is None


def test_bw_has_twelve_public_holidays_and_the_cache_is_per_year() -> None:
    public_holidays.cache_clear()
    assert len(public_holidays("BW", 2025)) == 12
    CAL.is_working_day(date(2025, 5, 2))
    CAL.is_working_day(date(2025, 8, 4))
    info = public_holidays.cache_info()
    assert info.misses == 1 and info.hits >= 2


def test_subdivision_matters() -> None:
    berlin = WorkCalendar(subdivision="BE")
    assert berlin.is_working_day(date(2025, 6, 19))  # no Fronleichnam in Berlin
    assert not CAL.is_working_day(date(2025, 6, 19))


def test_calendar_from_settings_uses_configured_closing_days_and_window() -> None:
    settings = Settings(
        closing_days=["12-24"],
        sending_window_start=time(9, 0),
        sending_window_end=time(15, 0),
        timezone="Europe/Berlin",
    )
    cal = WorkCalendar.from_settings(settings)
    assert not cal.is_working_day(date(2025, 12, 24))
    assert cal.is_working_day(date(2025, 12, 31))  # not configured any more
    assert not cal.in_sending_window(local(2025, 3, 14, 8, 30))
    assert cal.in_sending_window(local(2025, 3, 14, 9, 0))


def test_default_calendar_matches_default_settings() -> None:
    assert WorkCalendar.from_settings(Settings()) == CAL


@pytest.mark.parametrize("value", ["24.12.", "13-01", "12-32", "x"])
def test_bad_closing_day_is_rejected(value: str) -> None:
    with pytest.raises(ValueError, match="MM-TT"):
        parse_closing_day(value)


# --- stepping over days ----------------------------------------------------------------------


def test_next_and_previous_working_day() -> None:
    # Heilige Drei Könige 2025 is a Monday; the weekend before it is no working day.
    assert CAL.next_working_day(date(2025, 1, 3)) == date(2025, 1, 7)
    assert CAL.previous_working_day(date(2025, 1, 7)) == date(2025, 1, 3)
    assert CAL.previous_working_day(date(2025, 1, 6), include_today=True) == date(2025, 1, 3)
    assert CAL.next_working_day(date(2025, 1, 7), include_today=True) == date(2025, 1, 7)
    assert CAL.next_working_day(date(2025, 1, 7)) == date(2025, 1, 8)
    # Fronleichnam (Thursday) and Allerheiligen (Friday 2024) move a deadline back one day.
    assert CAL.previous_working_day(date(2025, 6, 19), include_today=True) == date(2025, 6, 18)
    assert CAL.previous_working_day(date(2024, 11, 1), include_today=True) == date(2024, 10, 31)


def test_add_working_days_across_christmas_and_new_year() -> None:
    # 24.12. closing, 25./26. holidays, weekend, 31.12. closing, 1.1. holiday, 6.1.2026 holiday.
    start = date(2025, 12, 23)
    assert CAL.add_working_days(start, 1) == date(2025, 12, 29)
    assert CAL.add_working_days(start, 2) == date(2025, 12, 30)
    assert CAL.add_working_days(start, 3) == date(2026, 1, 2)
    assert CAL.add_working_days(start, 5) == date(2026, 1, 7)
    assert CAL.add_working_days(date(2026, 1, 2), -3) == start
    assert CAL.add_working_days(start, 0) == start


def test_add_working_days_from_a_non_working_day() -> None:
    assert CAL.add_working_days(date(2025, 3, 15), 1) == date(2025, 3, 17)
    assert CAL.add_working_days(date(2025, 3, 15), -1) == date(2025, 3, 14)


def test_working_days_between() -> None:
    assert CAL.working_days_between(date(2025, 12, 23), date(2026, 1, 2)) == 3
    assert CAL.working_days_between(date(2026, 1, 2), date(2025, 12, 23)) == -3
    assert CAL.working_days_between(date(2025, 3, 10), date(2025, 3, 17)) == 5
    assert CAL.working_days_between(date(2025, 3, 14), date(2025, 3, 14)) == 0
    for n in (1, 4, 9, 20):
        target = CAL.add_working_days(date(2025, 12, 19), n)
        assert CAL.working_days_between(date(2025, 12, 19), target) == n


# --- sending window and daylight saving ------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (local(2025, 3, 14, 7, 59, 59), False),
        (local(2025, 3, 14, 8, 0), True),
        (local(2025, 3, 14, 15, 59, 59), True),
        (local(2025, 3, 14, 16, 0), False),
        (local(2025, 3, 15, 10, 0), False),  # Saturday
        (local(2025, 6, 19, 10, 0), False),  # Fronleichnam
        (local(2025, 12, 24, 10, 0), False),  # closing day
    ],
)
def test_sending_window_edges(moment: datetime, inside: bool) -> None:
    assert CAL.in_sending_window(moment) is inside


def test_next_send_time_inside_the_window_is_now() -> None:
    moment = local(2025, 3, 14, 10, 30)
    assert CAL.next_send_time(moment) == moment
    assert CAL.next_send_time(moment).tzinfo == UTC


def test_next_send_time_before_and_after_the_window() -> None:
    assert CAL.next_send_time(local(2025, 3, 14, 6, 0)) == local(2025, 3, 14, 8, 0)
    # Friday at 16:00 sharp is already outside: Monday 08:00.
    assert CAL.next_send_time(local(2025, 3, 14, 16, 0)) == local(2025, 3, 17, 8, 0)
    # Before Fronleichnam: Friday after it.
    assert CAL.next_send_time(local(2025, 6, 18, 17, 0)) == local(2025, 6, 20, 8, 0)
    # Christmas Eve: the next working day is 29.12.
    assert CAL.next_send_time(local(2025, 12, 23, 16, 30)) == local(2025, 12, 29, 8, 0)


def test_next_send_time_across_the_spring_dst_switch() -> None:
    # Sunday 30.03.2025 clocks go forward: Monday 08:00 CEST is 06:00 UTC.
    sunday = datetime(2025, 3, 30, 12, 0, tzinfo=UTC)
    assert CAL.next_send_time(sunday) == datetime(2025, 3, 31, 6, 0, tzinfo=UTC)
    # From Friday after the window (still winter time), too.
    friday = datetime(2025, 3, 28, 15, 30, tzinfo=UTC)  # 16:30 CET
    assert CAL.next_send_time(friday) == datetime(2025, 3, 31, 6, 0, tzinfo=UTC)


def test_next_send_time_across_the_autumn_dst_switch() -> None:
    # Sunday 26.10.2025 clocks go back: Monday 08:00 CET is 07:00 UTC.
    sunday = datetime(2025, 10, 26, 12, 0, tzinfo=UTC)
    assert CAL.next_send_time(sunday) == datetime(2025, 10, 27, 7, 0, tzinfo=UTC)
    friday = datetime(2025, 10, 24, 14, 30, tzinfo=UTC)  # 16:30 CEST
    assert CAL.next_send_time(friday) == datetime(2025, 10, 27, 7, 0, tzinfo=UTC)


def test_window_closes_is_local_end_in_utc() -> None:
    assert CAL.window_closes(date(2025, 3, 28)) == datetime(2025, 3, 28, 15, 0, tzinfo=UTC)
    assert CAL.window_closes(date(2025, 3, 31)) == datetime(2025, 3, 31, 14, 0, tzinfo=UTC)


def test_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        CAL.next_send_time(datetime(2025, 3, 14, 10, 0))


def test_local_date_uses_the_time_zone() -> None:
    # 23:30 UTC on 14.03. is already 15.03. in Germany.
    assert CAL.local_date(datetime(2025, 3, 14, 23, 30, tzinfo=UTC)) == date(2025, 3, 15)


# --- German dates ----------------------------------------------------------------------------


def test_german_dates() -> None:
    assert german_date(date(2025, 3, 4)) == "04.03.2025"
    assert german_weekday_date(date(2025, 3, 14)) == "Freitag, 14.03.2025"
    assert german_weekday_date(date(2025, 6, 19)) == "Donnerstag, 19.06.2025"
    assert german_weekday_date(date(2025, 3, 16)) == "Sonntag, 16.03.2025"
