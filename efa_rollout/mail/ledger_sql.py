"""The group commit of the delivery ledger as plain DB-API statements (the hot path).

The same rows and values as SQLAlchemy Core would write (the columns' own bind processors
convert datetimes and JSON), in fewer statements and without Core's per-execute work
(cache-key lookup, execution context, result processing), which was most of the ledger's
time per message: a group is, on PostgreSQL, one statement in autocommit (data-modifying CTEs:
lock the claims still ours and insert the in-flight markers, mark sent and finish the
attempts), so one round trip; on SQLite four short in-process ones in one transaction. What
the callers wait for is committed before they go on, exactly as before (see `efa_rollout.mail.ledger.commit_group`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect

from models import DeliveryAttempt, OutboxMessage, table_of

_OUTBOX = table_of(OutboxMessage)
_ATTEMPT = table_of(DeliveryAttempt)
OUT, ATT = _OUTBOX.name, _ATTEMPT.name
HANDOVER_TEXT = "Übergabe der Nachricht an den Mailserver begonnen."
#: A hand-over renews the claim's lease (claimed_at) only when the claim is older than this: the
#: lease (15 minutes, ledger_state.CLAIM_LEASE) then always has most of its time left.
LEASE_REFRESH = timedelta(minutes=1)
_SENT_SET = (
    "status = 'sent', sent_at = COALESCE({o}.sent_at, {now}), next_attempt_at = NULL, "
    "attempts = {o}.attempts + 1, claimed_by = NULL, claimed_at = NULL, last_error = NULL"
)

#: One plain success: (outbox id, merged recipient states, attempt id or None, SMTP code, text).
Success = tuple[int, dict[str, Any], int | None, int | None, str]


@dataclass(frozen=True)
class _Binds:
    """How a datetime and a JSON value are passed to this dialect's driver."""

    postgres: bool
    datetime: Callable[[Any], Any]
    json: Callable[[Any], Any]


@cache
def _binds(dialect: Dialect) -> _Binds:
    def processor(column: Any) -> Callable[[Any], Any]:
        found = column.type.dialect_impl(dialect).bind_processor(dialect)
        return found if found is not None else (lambda value: value)

    return _Binds(
        postgres=dialect.name == "postgresql",
        datetime=processor(_OUTBOX.c.claimed_at),
        json=processor(_OUTBOX.c.recipient_status),
    )


def commit_group(
    connection: Connection,
    *,
    worker: str,
    now: datetime,
    handed: Sequence[int],
    successes: Sequence[Success],
    logged: Sequence[Success],
) -> tuple[dict[int, int], set[int]]:
    """One transaction: markers for HANDED rows still ours, SUCCESSES marked sent.

    LOGGED are successes without an attempt row (no hand-over marker): their attempt is
    inserted. Returns the attempt id per handed row still ours and the ids marked sent.
    """
    assert not connection.in_transaction(), "the group commit runs its own transaction"
    binds = _binds(connection.dialect)
    dbapi: Any = connection.connection.driver_connection
    at = binds.datetime(now)
    stale = binds.datetime(now - LEASE_REFRESH)
    if binds.postgres:
        return _commit_group_pg(dbapi, binds, worker, at, stale, handed, [*successes, *logged])
    cursor = dbapi.cursor()
    try:
        cursor.execute("BEGIN IMMEDIATE")  # as efa_rollout.db does for every transaction
        attempt_ids: dict[int, int] = {}
        if handed:
            attempt_ids = _handover_sqlite(cursor, handed, worker, at, stale)
        done: set[int] = set()
        if successes or logged:
            done = _mark_sent_sqlite(cursor, binds, [*successes, *logged], worker, at)
            _log_attempts(cursor, binds, [s for s in logged if s[0] in done], worker, at)
        cursor.execute("COMMIT")
    except BaseException:
        if dbapi.in_transaction:
            cursor.execute("ROLLBACK")
        raise
    finally:
        cursor.close()
    return attempt_ids, done


# The whole group as one statement (data-modifying CTEs over arrays, so the text is constant and
# psycopg prepares it): lock the handed rows still ours (FOR UPDATE) and insert their in-flight
# markers, renewing claimed_at only of a claim older than LEASE_REFRESH (a new row version);
# mark the successes still ours sent and finish their attempts. A row is never in both lists
# (its success follows the commit of its marker), so no row is updated twice.
_GROUP_PG = (
    f"WITH ours AS (SELECT id FROM {OUT} WHERE id = ANY(%(hids)s::bigint[]) "
    f"AND status = 'sending' AND claimed_by = %(worker)s FOR UPDATE), "
    f"fresh AS (UPDATE {OUT} SET claimed_at = %(at)s WHERE id IN (SELECT id FROM ours) "
    f"AND claimed_at < %(stale)s), "
    f"marks AS (INSERT INTO {ATT} (outbox_id, at, worker, outcome, smtp_text) "
    f"SELECT id, %(at)s, %(worker)s, 'in_flight', %(text)s FROM ours RETURNING id, outbox_id), "
    f"v AS (SELECT * FROM unnest(%(ids)s::bigint[], %(states)s::text[], "
    f"%(aids)s::bigint[], %(codes)s::integer[], %(texts)s::text[]) "
    f"AS v(id, states, aid, code, text)), "
    f"done AS (UPDATE {OUT} SET {_SENT_SET.format(o=OUT, now='%(at)s')}, "
    f"recipient_status = CAST(v.states AS JSON) FROM v WHERE {OUT}.id = v.id "
    f"AND {OUT}.status = 'sending' AND {OUT}.claimed_by = %(worker)s RETURNING {OUT}.id), "
    f"fin AS (UPDATE {ATT} SET at = %(at)s, outcome = 'sent', smtp_code = v.code, "
    f"smtp_text = v.text FROM v WHERE {ATT}.id = v.aid AND v.id IN (SELECT id FROM done)) "
    f"SELECT outbox_id, id FROM marks UNION ALL SELECT id, NULL FROM done"
)


def _commit_group_pg(
    dbapi: Any,
    binds: _Binds,
    worker: str,
    at: Any,
    stale: Any,
    handed: Sequence[int],
    successes: Sequence[Success],
) -> tuple[dict[int, int], set[int]]:
    """The group as one statement; alone in autocommit it is its own transaction (one round
    trip instead of BEGIN, statements and COMMIT each waiting for the server)."""
    logged = [s for s in successes if s[2] is None]  # no marker: their attempt row is inserted
    single = not logged and dbapi.info.transaction_status.name == "IDLE"
    cursor = dbapi.cursor()
    try:
        if single:
            dbapi.autocommit = True
        cursor.execute(
            _GROUP_PG,
            {
                "hids": list(handed),
                "ids": [s[0] for s in successes],
                "states": [binds.json(s[1]) for s in successes],
                "aids": [s[2] for s in successes],
                "codes": [s[3] for s in successes],
                "texts": [s[4] for s in successes],
                "at": at,
                "stale": stale,
                "worker": worker,
                "text": HANDOVER_TEXT,
            },
        )
        rows = cursor.fetchall()
        attempt_ids = {row_id: attempt_id for row_id, attempt_id in rows if attempt_id is not None}
        done = {row_id for row_id, attempt_id in rows if attempt_id is None}
        if not single:
            _log_attempts(cursor, binds, [s for s in logged if s[0] in done], worker, at)
            dbapi.commit()
    except BaseException:
        if not single:
            dbapi.rollback()
        raise
    finally:
        if single:
            dbapi.autocommit = False
        cursor.close()
    return attempt_ids, done


def _handover_sqlite(
    cursor: Any, handed: Sequence[int], worker: str, at: Any, stale: Any
) -> dict[int, int]:
    # Under BEGIN IMMEDIATE nobody else writes until the commit: reading the ownership is
    # enough, and the row (with its ~5 KB raw in overflow pages) is rewritten only when its
    # claim is older than LEASE_REFRESH.
    marks = ", ".join("?" * len(handed))
    cursor.execute(
        f"SELECT id, claimed_at IS NULL OR claimed_at < ? FROM {OUT} WHERE id IN ({marks}) "
        f"AND status = 'sending' AND claimed_by = ?",
        [stale, *handed, worker],
    )
    found = cursor.fetchall()
    ours = sorted(row[0] for row in found)
    if not ours:
        return {}
    refresh = [row[0] for row in found if row[1]]
    if refresh:
        cursor.execute(
            f"UPDATE {OUT} SET claimed_at = ? WHERE id IN ({', '.join('?' * len(refresh))})",
            [at, *refresh],
        )
    cursor.execute(
        f"INSERT INTO {ATT} (outbox_id, at, worker, outcome, smtp_text) VALUES "
        + ", ".join("(?, ?, ?, 'in_flight', ?)" for _ in ours)
        + " RETURNING id, outbox_id",
        [value for row_id in ours for value in (row_id, at, worker, HANDOVER_TEXT)],
    )
    return {outbox_id: attempt_id for attempt_id, outbox_id in cursor.fetchall()}


def _mark_sent_sqlite(
    cursor: Any, binds: _Binds, successes: Sequence[Success], worker: str, at: Any
) -> set[int]:
    cursor.execute(
        f"UPDATE {OUT} SET {_SENT_SET.format(o=OUT, now='?')}, recipient_status = v.column2 "
        "FROM (VALUES " + ", ".join("(?, ?)" for _ in successes) + ") AS v "
        f"WHERE {OUT}.id = v.column1 AND {OUT}.status = 'sending' AND {OUT}.claimed_by = ? "
        f"RETURNING {OUT}.id",
        [at, *(value for s in successes for value in (s[0], binds.json(s[1]))), worker],
    )
    done = {row[0] for row in cursor.fetchall()}
    finished = [s for s in successes if s[0] in done and s[2] is not None]
    if finished:
        cursor.execute(
            f"UPDATE {ATT} SET at = ?, outcome = 'sent', smtp_code = v.column2, "
            "smtp_text = v.column3 FROM (VALUES "
            + ", ".join("(?, ?, ?)" for _ in finished)
            + f") AS v WHERE {ATT}.id = v.column1",
            [at, *(value for s in finished for value in (s[2], s[3], s[4]))],
        )
    return done


def _log_attempts(
    cursor: Any, binds: _Binds, logged: Sequence[Success], worker: str, at: Any
) -> None:
    """The attempt rows of successes that had no hand-over marker (e.g. .eml files)."""
    if not logged:
        return
    mark = "%s" if binds.postgres else "?"
    cursor.executemany(
        f"INSERT INTO {ATT} (outbox_id, at, worker, outcome, smtp_code, smtp_text) "
        f"VALUES ({mark}, {mark}, {mark}, 'sent', {mark}, {mark})",
        [(s[0], at, worker, s[3], s[4]) for s in logged],
    )


@contextmanager
def autocommit(connection: Connection) -> Iterator[None]:
    """PostgreSQL: each statement on CONNECTION's driver its own transaction, one round trip
    (no BEGIN and COMMIT waiting for the server). CONNECTION must hold no transaction."""
    assert not connection.in_transaction()
    dbapi: Any = connection.connection.driver_connection
    dbapi.autocommit = True
    try:
        yield
    finally:
        dbapi.autocommit = False


def is_postgres(connection: Connection) -> bool:
    """Whether CONNECTION's statements here are PostgreSQL's (else SQLite's)."""
    return _binds(connection.dialect).postgres


def claim(
    connection: Connection,
    *,
    columns: Sequence[str],
    worker: str,
    now: datetime,
    size: int,
    only_ids: Sequence[int] | None,
) -> list[dict[str, Any]]:
    """Claim up to SIZE due rows, COLUMNS of each, decoded: in CONNECTION's open transaction
    (SQLite, committed with the suppression check), or inside `autocommit` (PostgreSQL, the
    statement its own transaction)."""
    dbapi: Any = connection.connection.driver_connection
    assert connection.in_transaction() or getattr(dbapi, "autocommit", False), (
        "the claim runs in a transaction or as a statement of its own"
    )
    binds = _binds(connection.dialect)
    at = binds.datetime(now)
    if binds.postgres:
        only = " AND id = ANY(%(only)s)" if only_ids is not None else ""
        sql = (
            f"UPDATE {OUT} SET status = 'sending', claimed_by = %(worker)s, claimed_at = %(at)s "
            f"WHERE id IN (SELECT id FROM {OUT} WHERE status IN ('queued', 'retrying') "
            f"AND (next_attempt_at IS NULL OR next_attempt_at <= %(at)s){only} "
            "ORDER BY next_attempt_at, id LIMIT %(size)s FOR UPDATE SKIP LOCKED) "
            f"AND status IN ('queued', 'retrying') RETURNING {', '.join(columns)}"
        )
        parameters: Any = {"worker": worker, "at": at, "size": size, "only": list(only_ids or ())}
    else:
        only = f" AND id IN ({', '.join('?' * len(only_ids))})" if only_ids is not None else ""
        # `+status`: the outer row check must not use the status index. With it, SQLite walked
        # every due row's index entry and tested it against the ten ids (Germany: ~10 ms per
        # claim, 21,546 due rows); without it, ten primary-key lookups.
        sql = (
            f"UPDATE {OUT} SET status = 'sending', claimed_by = ?, claimed_at = ? "
            f"WHERE id IN (SELECT id FROM {OUT} WHERE status IN ('queued', 'retrying') "
            f"AND (next_attempt_at IS NULL OR next_attempt_at <= ?){only} "
            "ORDER BY next_attempt_at, id LIMIT ?) "
            f"AND +status IN ('queued', 'retrying') RETURNING {', '.join(columns)}"
        )
        parameters = [worker, at, at, *(only_ids or ()), size]
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, parameters)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return [_decoded(dict(zip(columns, row, strict=True))) for row in rows]


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    """Driver values as the columns' types give them: JSON parsed, booleans, bytes."""
    for name in ("recipients", "cc", "recipient_status", "meta"):
        if isinstance(row.get(name), str):
            row[name] = json.loads(row[name])
    if "is_test" in row:
        row["is_test"] = bool(row["is_test"])
    if isinstance(row.get("raw"), memoryview):
        row["raw"] = bytes(row["raw"])
    return row
