"""Working days and sending times: BW public holidays, weekends, closing days, the mail window."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from efa_rollout.domain.text import german_date, weekday_name

if TYPE_CHECKING:
    from efa_rollout.settings import Settings

BERLIN = ZoneInfo("Europe/Berlin")

#: Upper bound for day-by-day searches (a year without a working day is a configuration error).
_MAX_SEARCH_DAYS = 366


def parse_closing_day(value: str) -> tuple[int, int]:
    """(month, day) from 'MM-DD', e.g. '12-24'."""
    try:
        month, day = (int(part) for part in value.strip().split("-"))
        date(2024, month, day)  # a leap year, so 02-29 is accepted
    except ValueError:
        raise ValueError(
            f"Schließtag »{value}« ist kein Tag im Format MM-TT (z. B. 12-24)"
        ) from None
    return month, day


@functools.lru_cache(maxsize=64)
def public_holidays(subdivision: str, year: int) -> dict[date, str]:
    """The public holidays of German state SUBDIVISION in YEAR, with German names (cached)."""
    import holidays

    found = holidays.country_holidays("DE", subdiv=subdivision, years=year, language="de")
    return dict(found.items())


@dataclass(frozen=True)
class WorkCalendar:
    """Which days town halls work, and when mail may go out (local time, end exclusive)."""

    zone: ZoneInfo = BERLIN
    window_start: time = time(8, 0)
    window_end: time = time(16, 0)
    closing_days: frozenset[tuple[int, int]] = frozenset({(12, 24), (12, 31)})
    subdivision: str = "BW"

    def __post_init__(self) -> None:
        if self.window_start >= self.window_end:
            raise ValueError("Das Versandfenster muss vor seinem Ende beginnen.")

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> WorkCalendar:
        """The calendar configured in SETTINGS (default: the process-wide settings)."""
        if settings is None:
            from efa_rollout.settings import get_settings

            settings = get_settings()
        return cls(
            zone=settings.zone,
            window_start=settings.sending_window_start,
            window_end=settings.sending_window_end,
            closing_days=closing_day_set(settings.closing_days),
            subdivision=settings.holiday_subdivision,
        )

    # --- days -------------------------------------------------------------------------------

    def holiday_name(self, day: date) -> str | None:
        """The German name of the public holiday on DAY, or None."""
        return public_holidays(self.subdivision, day.year).get(day)

    def is_closing_day(self, day: date) -> bool:
        """Whether DAY is a configured closing day (e.g. 24.12., 31.12.)."""
        return (day.month, day.day) in self.closing_days

    def non_working_reason(self, day: date) -> str | None:
        """Why DAY is no working day ('Samstag', 'Feiertag Fronleichnam', 'Schließtag'), or None."""
        if day.weekday() >= 5:
            return weekday_name(day)
        name = self.holiday_name(day)
        if name is not None:
            return f"Feiertag {name}"
        if self.is_closing_day(day):
            return "Schließtag"
        return None

    def is_working_day(self, day: date) -> bool:
        """Whether town halls work on DAY (no weekend, BW holiday or closing day)."""
        return self.non_working_reason(day) is None

    def next_working_day(self, day: date, *, include_today: bool = False) -> date:
        """The first working day after DAY (or DAY itself with include_today)."""
        return self._search(day, 1, include_today)

    def previous_working_day(self, day: date, *, include_today: bool = False) -> date:
        """The last working day before DAY (or DAY itself with include_today)."""
        return self._search(day, -1, include_today)

    def _search(self, day: date, step: int, include_today: bool) -> date:
        candidate = day if include_today else day + timedelta(days=step)
        for _ in range(_MAX_SEARCH_DAYS):
            if self.is_working_day(candidate):
                return candidate
            candidate += timedelta(days=step)
        raise ValueError(f"Kein Arbeitstag innerhalb eines Jahres ab {german_date(day)}.")

    def add_working_days(self, day: date, count: int) -> date:
        """The COUNT-th working day after DAY (before it when negative; DAY itself for 0)."""
        step = 1 if count > 0 else -1
        result = day
        for _ in range(abs(count)):
            result = self._search(result, step, include_today=False)
        return result

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (START, END]; negative (−count of (END, START]) when END < START."""
        if end < start:
            return -self.working_days_between(end, start)
        return sum(
            1
            for offset in range(1, (end - start).days + 1)
            if self.is_working_day(start + timedelta(days=offset))
        )

    # --- moments ----------------------------------------------------------------------------

    def local_date(self, moment: datetime) -> date:
        """The local calendar day of the aware MOMENT."""
        return _aware(moment).astimezone(self.zone).date()

    def local_moment(self, day: date, at: time) -> datetime:
        """Local wall-clock time AT on DAY, as an aware UTC datetime (correct across DST)."""
        return datetime.combine(day, at, tzinfo=self.zone).astimezone(UTC)

    def window_opens(self, day: date) -> datetime:
        """When the sending window opens on DAY (UTC)."""
        return self.local_moment(day, self.window_start)

    def window_closes(self, day: date) -> datetime:
        """When the sending window closes on DAY (UTC); the late-send limit for DAY's mail."""
        return self.local_moment(day, self.window_end)

    def in_sending_window(self, moment: datetime) -> bool:
        """Whether mail may go out at MOMENT: a working day, start <= local time < end."""
        day = self.local_date(moment)
        if not self.is_working_day(day):
            return False
        return self.window_opens(day) <= _aware(moment) < self.window_closes(day)

    def next_send_time(self, moment: datetime) -> datetime:
        """MOMENT if inside the window, else the next window opening on a working day (UTC)."""
        moment = _aware(moment).astimezone(UTC)
        day = self.local_date(moment)
        if self.is_working_day(day):
            if moment < self.window_opens(day):
                return self.window_opens(day)
            if moment < self.window_closes(day):
                return moment
        return self.window_opens(self.next_working_day(day))


def closing_day_set(values: Iterable[str]) -> frozenset[tuple[int, int]]:
    """The (month, day) pairs of configured closing days."""
    return frozenset(parse_closing_day(value) for value in values)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime given; use an aware datetime")
    return moment


def iter_working_days(calendar: WorkCalendar, start: date, end: date) -> Iterator[date]:
    """The working days from START to END (both inclusive), in order."""
    day = start if calendar.is_working_day(start) else calendar.next_working_day(start)
    while day <= end:
        yield day
        day = calendar.next_working_day(day)
