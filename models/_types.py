"""Column types shared by the tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Table, inspect
from sqlalchemy.types import TypeDecorator


def table_of(model: type[Any]) -> Table:
    """The Core table of a table model: its `__table__`, which SQLModel does not declare in types."""
    table = inspect(model).local_table
    assert isinstance(table, Table)
    return table


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes stored as naive UTC (SQLite keeps no offset)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware datetime (UTC)")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


JSONType = JSON
