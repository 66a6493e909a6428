"""The tick's batch statements: a few per batch, with SQL text that does not grow with it.

On PostgreSQL a batch's ids go in as one array (`= ANY(...)`, `unnest`), not as a placeholder
per row: psycopg parses the placeholders of every statement on each execute (Python regex,
uncached above 4 KB of text), and a statement per row (the ORM's bulk UPDATE/INSERT as an
`executemany`) was most of Germany's tick there. Constant text also lets psycopg prepare it.
On SQLite, in process, a long IN list costs nothing to send, and the driver's own
`executemany` inserts a row in about a microsecond.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, BigInteger, String, any_, bindparam, insert, text, update
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from models import Enrolment, Event, table_of
from models._types import JSONType, UTCDateTime

_ENROLMENT = table_of(Enrolment)
_EVENT = table_of(Event)


def postgres(session: Session) -> bool:
    """Whether SESSION talks to PostgreSQL."""
    return session.get_bind().dialect.name == "postgresql"


def among(session: Session, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """COLUMN IN VALUES: on PostgreSQL as one array parameter (`= ANY`)."""
    if not postgres(session):
        return column.in_(values)
    element = BigInteger() if column.type.python_type is int else column.type
    array = bindparam(None, list(values), type_=ARRAY(element), unique=True)
    return column == any_(array)


def move(session: Session, stage: str, ids: Sequence[int], now: datetime) -> None:
    """Put the locked enrolments IDS into STAGE as of NOW, bumping their version."""
    table = _ENROLMENT
    session.execute(
        update(table)
        .where(among(session, table.c.id, ids))
        .values(
            stage=stage,
            stage_entered_at=now,
            version=table.c.version + 1,  # the rows are locked: no lost update
            updated_at=now,
        )
    )


#: What a batch's stage events share, and what differs between them.
_SHARED = ("at", "campaign_id", "actor", "kind", "data")
_VARYING = ("ags", "enrolment_id", "from_stage", "to_stage", "reason")
_COLUMNS = ", ".join((*_SHARED, *_VARYING))

_INSERT_EVENTS_PG = text(
    f"INSERT INTO event ({_COLUMNS}) SELECT :at, :campaign_id, :actor, :kind, "
    "CAST(:data AS JSON), v.ags, v.enrolment_id, v.from_stage, v.to_stage, v.reason "
    "FROM unnest(CAST(:ags AS TEXT[]), CAST(:enrolment_id AS BIGINT[]), "
    "CAST(:from_stage AS TEXT[]), CAST(:to_stage AS TEXT[]), CAST(:reason AS TEXT[])) "
    "WITH ORDINALITY AS v(ags, enrolment_id, from_stage, to_stage, reason, n) ORDER BY v.n"
).bindparams(
    bindparam("at", type_=UTCDateTime()),
    bindparam("data", type_=JSONType()),
    *(bindparam(name, type_=ARRAY(String())) for name in ("ags", "from_stage", "to_stage")),
    bindparam("enrolment_id", type_=ARRAY(BigInteger())),
    bindparam("reason", type_=ARRAY(String())),
)
_INSERT_EVENTS_SQLITE = (
    f"INSERT INTO event ({_COLUMNS}) VALUES ({', '.join('?' * (len(_SHARED) + len(_VARYING)))})"
)


def insert_events(session: Session, events: Sequence[dict[str, Any]]) -> None:
    """Insert EVENTS (rows as `event_row` makes them), in this order.

    A batch's stage events share their time, campaign, actor, kind and data: those are
    converted once (by the columns' own bind processors, so the rows hold what Core writes),
    the rest go in as arrays (PostgreSQL) or through the driver's `executemany` (SQLite).
    """
    if not events:
        return
    first = events[0]
    if any(e[name] != first[name] for e in events[1:] for name in _SHARED):
        session.execute(insert(_EVENT), list(events))  # not one batch's stage events
        return
    shared = {name: first[name] for name in _SHARED} | {"kind": str(first["kind"])}
    if postgres(session):
        values = shared | {name: [e[name] for e in events] for name in _VARYING}
        session.execute(_INSERT_EVENTS_PG, values)
        return
    connection = session.connection()
    fixed = tuple(_bound(connection.dialect, name, shared[name]) for name in _SHARED)
    rows = [(*fixed, *(e[name] for name in _VARYING)) for e in events]
    connection.exec_driver_sql(_INSERT_EVENTS_SQLITE, rows)


def _bound(dialect: Dialect, name: str, value: Any) -> Any:
    """VALUE as the event column NAME's bind processor hands it to the driver."""
    processor = _EVENT.c[name].type.dialect_impl(dialect).bind_processor(dialect)
    return processor(value) if processor is not None else value
