"""German text and formats everyone shares: dates DD.MM.YYYY, weekday names."""

from __future__ import annotations

from datetime import date

WEEKDAYS = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")


def german_date(value: date | str, *, weekday: bool = False) -> str:
    """DD.MM.YYYY (with weekday: 'Freitag, 01.08.2025')."""
    day = date.fromisoformat(value) if isinstance(value, str) else value
    text = day.strftime("%d.%m.%Y")
    return f"{WEEKDAYS[day.weekday()]}, {text}" if weekday else text
