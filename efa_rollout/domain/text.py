"""German text and formats everyone shares: dates DD.MM.YYYY, weekday names, the signature."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from efa_rollout.settings import Settings

WEEKDAYS = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")


def as_date(value: date | datetime | str) -> date:
    """A date from a date, a datetime (its own calendar day) or an ISO string."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def weekday_name(value: date | datetime | str) -> str:
    """'Freitag'."""
    return WEEKDAYS[as_date(value).weekday()]


def german_date(value: date | datetime | str, *, weekday: bool = False) -> str:
    """DD.MM.YYYY (with weekday: 'Freitag, 01.08.2025')."""
    day = as_date(value)
    text = day.strftime("%d.%m.%Y")
    return f"{WEEKDAYS[day.weekday()]}, {text}" if weekday else text


def german_weekday_date(value: date | datetime | str) -> str:
    """The German weekday and date, e.g. 'Freitag, 15.03.2025'."""
    return german_date(value, weekday=True)


def signature(settings: Settings) -> dict[str, str]:
    """The coordinator's signature block (mails, portal, summary)."""
    return {
        "name": settings.coordinator_name,
        "function": settings.coordinator_function,
        "office": settings.coordinator_office,
        "department": settings.coordinator_department,
        "address": settings.coordinator_address,
        "phone": settings.coordinator_phone,
        "email": settings.coordinator_email,
    }
