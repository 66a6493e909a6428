"""The moment a use case runs for: AS_OF values, local calendar days in the configured zone."""

from __future__ import annotations

from datetime import UTC, date, datetime

from efa_rollout.settings import get_settings


def resolve_as_of(as_of: datetime | None) -> datetime:
    """AS_OF as an aware UTC datetime (now when None; naive values are local time)."""
    if as_of is None:
        return datetime.now(UTC)
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=get_settings().zone)
    return as_of.astimezone(UTC)


def local_day(moment: datetime) -> str:
    """The local calendar day of MOMENT as YYYY-MM-DD."""
    return moment.astimezone(get_settings().zone).date().isoformat()


def local_today(now: datetime) -> date:
    """The local calendar date of NOW in the configured time zone."""
    return now.astimezone(get_settings().zone).date()
