"""The tick's batch statements: a few per batch, with SQL text that does not grow with it.

On PostgreSQL a batch's ids go in as one array (`= ANY(...)`, `unnest`), not as a placeholder
per row: psycopg parses the placeholders of every statement on each execute (Python regex,
uncached above 4 KB of text), and a statement per row (the ORM's bulk UPDATE/INSERT as an
`executemany`) was most of Germany's tick there. Constant text also lets psycopg prepare it.
On SQLite, in process, a long IN list and a multi-row INSERT cost nothing to send.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, BigInteger, String, any_, bindparam, insert, text, update
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


#: The columns that differ between a batch's stage events (the others are the batch's own).
_VARYING = ("ags", "enrolment_id", "from_stage", "to_stage", "reason")

_INSERT_EVENTS_PG = text(
    "INSERT INTO event (at, campaign_id, actor, kind, data, "
    + ", ".join(_VARYING)
    + ") SELECT :at, :campaign_id, :actor, :kind, CAST(:data AS JSON), "
    + ", ".join(f"v.{name}" for name in _VARYING)
    + " FROM unnest(CAST(:ags AS TEXT[]), CAST(:enrolment_id AS BIGINT[]), "
    "CAST(:from_stage AS TEXT[]), CAST(:to_stage AS TEXT[]), CAST(:reason AS TEXT[])) "
    "WITH ORDINALITY AS v(" + ", ".join(_VARYING) + ", n) ORDER BY v.n"
).bindparams(
    bindparam("at", type_=UTCDateTime()),
    bindparam("data", type_=JSONType()),
    *(bindparam(name, type_=ARRAY(String())) for name in ("ags", "from_stage", "to_stage")),
    bindparam("enrolment_id", type_=ARRAY(BigInteger())),
    bindparam("reason", type_=ARRAY(String())),
)


def insert_events(session: Session, events: Sequence[dict[str, Any]]) -> None:
    """Insert EVENTS (rows as `event_row` makes them) in this order, in one or a few statements."""
    if not events:
        return
    first = events[0]
    shared = ("at", "campaign_id", "actor", "kind", "data")
    if postgres(session) and all(all(e[k] == first[k] for k in shared) for e in events):
        values = {k: first[k] for k in shared} | {"kind": str(first["kind"])}
        values.update({name: [e[name] for e in events] for name in _VARYING})
        session.execute(_INSERT_EVENTS_PG, values)
        return
    # SQLAlchemy's insertmanyvalues (a multi-row INSERT per 1,000 rows) needs RETURNING.
    session.execute(insert(_EVENT).returning(_EVENT.c.id), list(events))
