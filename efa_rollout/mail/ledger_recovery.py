"""The ledger after an interruption: late rows cancelled, abandoned claims recovered, claims given back.

A row in `sending` whose claimer is dead (its process is gone, or its lease ran out) is
recovered: without an in-flight attempt the message provably never reached the server and
is queued again; with one it may or may not have, so it becomes `unknown` and is only
re-sent when the coordinator says so (`efa mail retry`), with the same Message-ID.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from efa_rollout.mail.ledger_state import (
    CLAIM_LEASE,
    DUE_STATUSES,
    Bind,
    Recovery,
    claim_is_abandoned,
    pending_recipients,
    session_on,
)
from models import DeliveryAttempt, OutboxMessage


def cancel_late(bind: Bind, *, now: datetime) -> int:
    """Cancel due rows whose not_after has passed: a late reminder is worse than none."""
    with session_on(bind) as session:
        result = session.exec(  # exec(): typed as a CursorResult, which has rowcount
            update(OutboxMessage)
            .where(
                col(OutboxMessage.status).in_(DUE_STATUSES),
                col(OutboxMessage.not_after).is_not(None),
                col(OutboxMessage.not_after) < now,
            )
            .values(
                status="cancelled",
                next_attempt_at=None,
                last_error="Nicht versandt: spätester Versandzeitpunkt überschritten.",
            )
        )
        return result.rowcount or 0


def recover_stale_claims(bind: Bind, *, now: datetime, lease: timedelta = CLAIM_LEASE) -> Recovery:
    """Requeue abandoned claims never handed over; mark those caught mid-hand-over unknown."""
    recovery = Recovery()
    with session_on(bind) as session:
        rows = session.exec(select(OutboxMessage).where(OutboxMessage.status == "sending")).all()
        for row in rows:
            if not claim_is_abandoned(row.claimed_by, row.claimed_at, now, lease):
                continue
            in_flight = session.exec(
                select(DeliveryAttempt).where(
                    DeliveryAttempt.outbox_id == row.id, DeliveryAttempt.outcome == "in_flight"
                )
            ).all()
            if in_flight:
                _mark_unknown_after_crash(session, row, in_flight, now)
                recovery.unknown += 1
            else:
                row.status = "retrying" if row.attempts else "queued"
                row.next_attempt_at = now
                row.claimed_by = row.claimed_at = None
                session.add(row)
                recovery.requeued += 1
    return recovery


def _mark_unknown_after_crash(
    session: Session, row: OutboxMessage, in_flight: Sequence[DeliveryAttempt], now: datetime
) -> None:
    text = (
        "Zustellprozess während der Übergabe an den Mailserver abgebrochen; ob der Server "
        "die Nachricht angenommen hat, ist ungewiss."
    )
    for attempt in in_flight:
        attempt.outcome = "unknown"
        attempt.smtp_text = text
        session.add(attempt)
    status = dict(row.recipient_status or {})
    for address in pending_recipients(row):
        status[address] = {"status": "unknown", "code": None, "text": text}
    row.recipient_status = status
    row.status = "unknown"
    row.attempts += 1
    row.next_attempt_at = None
    row.claimed_by = row.claimed_at = None
    row.last_error = f"{text} Erneut senden mit: efa mail retry {row.id}"
    session.add(row)


def release(bind: Bind, *, ids: list[int], worker: str) -> int:
    """Give back claimed rows that were not handed over (orderly shutdown, interruption)."""
    if not ids:
        return 0
    with session_on(bind) as session:
        rows = session.exec(
            select(OutboxMessage).where(
                col(OutboxMessage.id).in_(ids),
                OutboxMessage.status == "sending",
                OutboxMessage.claimed_by == worker,
            )
        ).all()
        released = 0
        for row in rows:
            in_flight = session.exec(
                select(DeliveryAttempt.id).where(
                    DeliveryAttempt.outbox_id == row.id, DeliveryAttempt.outcome == "in_flight"
                )
            ).first()
            if in_flight is not None:
                continue  # handed over: the next run's recovery marks it unknown
            row.status = "retrying" if row.attempts else "queued"
            row.claimed_by = row.claimed_at = None
            session.add(row)
            released += 1
        return released
