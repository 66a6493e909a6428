"""Column types shared by the tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Table, inspect
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import PopulateDict


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


class LazyDialectIndex(Index):
    """An index whose dialect options (`postgresql_where`, ...) are checked on first use."""

    # SQLAlchemy checks them when the index is built, by loading each dialect named: on SQLite
    # that imported the PostgreSQL dialect and its four drivers (~22 ms) in every CLI process.
    # They are read only for DDL and by Alembic's comparison, so they are checked then.

    def _validate_dialect_kwargs(self, kwargs: dict[str, Any]) -> None:
        self.__dict__["_unchecked_dialect_kwargs"] = dict(kwargs)

    @property
    def dialect_options(self) -> Any:
        options = self.__dict__.get("_dialect_options")
        if options is None:
            options = self.__dict__["_dialect_options"] = PopulateDict(self._kw_reg_for_dialect_cls)
            super()._validate_dialect_kwargs(self.__dict__.pop("_unchecked_dialect_kwargs", {}))
        return options


def utcnow() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


JSONType = JSON
