"""Timestamps fetched as stored and parsed fast (the ORM's SQLite datetime parsing is slow)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import String, type_coerce


def raw(column: Any) -> Any:
    """A timestamp column fetched as stored; parse it with `utc()`."""
    return type_coerce(column, String())


@overload
def utc(value: str | datetime) -> datetime: ...
@overload
def utc(value: None) -> None: ...
def utc(value: str | datetime | None) -> datetime | None:
    """An aware UTC datetime from a stored timestamp (SQLite text or a naive UTC datetime)."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
