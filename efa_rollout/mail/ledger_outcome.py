"""One attempt's outcome in the ledger: attempt log, row status, retry schedule, contact flags.

The common case (accepted for every pending recipient, row still ours) is one short statement
pair; everything else (refusals, deferrals, unknown outcomes, rows taken over meanwhile) goes
through the ORM, where the retry schedule and the flags of refused contacts are decided.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, insert, update
from sqlmodel import Session, col, select

from efa_rollout.domain.audit import EventKind
from efa_rollout.mail.ledger_state import (
    ACTOR,
    Bind,
    Claimed,
    SendResult,
    attempt_values,
    backoff,
    begin,
    pending_recipients,
    plain_success,
    session_on,
)
from efa_rollout.mail.message import normalize_address
from efa_rollout.settings import Settings
from models import Contact, DeliveryAttempt, Event, OutboxMessage, table_of

_OUTBOX = table_of(OutboxMessage)
_ATTEMPT = table_of(DeliveryAttempt)
_OURS = (
    (_OUTBOX.c.id == bindparam("row_id"))
    & (_OUTBOX.c.status == "sending")
    & (_OUTBOX.c.claimed_by == bindparam("worker"))
)


# Built once (SQLAlchemy then only looks them up in its cache); the claim and the group
# commit, the hot path, are plain DB-API statements (efa_rollout.mail.ledger_sql).
_MARK_SENT = (
    update(_OUTBOX)
    .where(_OURS)
    .values(
        status="sent",
        sent_at=func.coalesce(_OUTBOX.c.sent_at, bindparam("now", type_=_OUTBOX.c.sent_at.type)),
        next_attempt_at=None,
        attempts=_OUTBOX.c.attempts + 1,
        claimed_by=None,
        claimed_at=None,
        recipient_status=bindparam("recipient_status"),
        last_error=None,
    )
)
_FINISH_ATTEMPT = (
    update(_ATTEMPT)
    .where(_ATTEMPT.c.id == bindparam("attempt_id"))
    .values(
        at=bindparam("at"),
        outcome=bindparam("outcome"),
        smtp_code=bindparam("smtp_code"),
        smtp_text=bindparam("smtp_text"),
    )
)


def record_outcome(
    bind: Bind,
    *,
    claimed: Claimed,
    worker: str,
    result: SendResult,
    now: datetime,
    attempt_id: int | None,
    settings: Settings,
) -> str:
    """Store one attempt's outcome (attempt log, row status, contact flags); the new status."""
    if _record_plain_success(
        bind, claimed=claimed, worker=worker, result=result, now=now, attempt_id=attempt_id
    ):
        return "sent"
    with session_on(bind) as session:
        row = session.get(OutboxMessage, claimed.id)
        assert row is not None
        _log_attempt(session, claimed.id, worker, result, now, attempt_id)
        if result.outcome == "skipped":
            return row.status
        still_ours = row.status == "sending" and row.claimed_by == worker
        late_success = row.status == "unknown" and result.outcome == "sent"
        if not (still_ours or late_success):
            return row.status  # someone else took the row over; their decision stands
        merged = {**(row.recipient_status or {}), **result.recipients}
        row.recipient_status = merged
        row.attempts += 1
        row.claimed_by = row.claimed_at = None
        _apply_status(row, result, now, settings)
        session.add(row)
        refused = [a for a in result.recipients if result.recipients[a]["status"] == "refused"]
        if refused:
            _flag_contacts(session, row, refused, result, now)
        return row.status


def _record_plain_success(
    bind: Bind,
    *,
    claimed: Claimed,
    worker: str,
    result: SendResult,
    now: datetime,
    attempt_id: int | None,
) -> bool:
    """The common case in one short statement pair: accepted for everyone, row still ours."""
    merged = plain_success(claimed, result)
    if merged is None:
        return False
    with begin(bind) as connection:
        parameters = {"row_id": claimed.id, "worker": worker, "now": now}
        updated = connection.execute(_MARK_SENT, {**parameters, "recipient_status": merged})
        if not updated.rowcount:
            return False
        values = attempt_values(result, now)
        if attempt_id is None:
            connection.execute(
                insert(_ATTEMPT).values(outbox_id=claimed.id, worker=worker, **values)
            )
        else:
            connection.execute(_FINISH_ATTEMPT, {"attempt_id": attempt_id, **values})
    return True


def _log_attempt(
    session: Session,
    outbox_id: int,
    worker: str,
    result: SendResult,
    now: datetime,
    attempt_id: int | None,
) -> None:
    values = attempt_values(result, now)
    if attempt_id is None:
        session.add(DeliveryAttempt(outbox_id=outbox_id, worker=worker, **values))
    else:
        session.execute(
            update(DeliveryAttempt).where(col(DeliveryAttempt.id) == attempt_id).values(**values)
        )
    for address, state in result.recipients.items():
        if state["status"] in ("refused", "deferred"):
            session.add(
                DeliveryAttempt(
                    outbox_id=outbox_id,
                    at=now,
                    worker=worker,
                    outcome="failed" if state["status"] == "refused" else "retry",
                    smtp_code=state.get("code"),
                    smtp_text=str(state.get("text") or "")[:1000],
                    recipient=address,
                )
            )


def _age_start(row: OutboxMessage) -> datetime:
    """When the retry clock started: queueing, or the coordinator's last manual retry."""
    manual = (row.meta or {}).get("manual_retry_at")
    return max(row.queued_at, datetime.fromisoformat(manual)) if manual else row.queued_at


def _apply_status(
    row: OutboxMessage, result: SendResult, now: datetime, settings: Settings
) -> None:
    reply = f"{result.code} {result.text}".strip() if result.code else result.text
    if result.outcome == "unknown":
        row.status, row.next_attempt_at = "unknown", None
        row.last_error = f"Zustellung ungewiss ({result.stage}): {reply}"[:1000]
        return
    if result.stage == "link":
        row.status, row.next_attempt_at = "failed_permanently", None
        row.last_error = result.text[:1000]
        return
    if result.outcome == "failed" and result.stage != "rcpt":
        row.status, row.next_attempt_at = "failed_permanently", None
        row.last_error = f"Dauerhaft abgelehnt ({result.stage}): {reply}"[:1000]
        return
    pending = pending_recipients(row)
    delivered = [a for a, s in row.recipient_status.items() if s.get("status") == "sent"]
    refused = [a for a, s in row.recipient_status.items() if s.get("status") == "refused"]
    if not pending:
        if delivered:
            row.status, row.next_attempt_at = "sent", None
            row.sent_at = row.sent_at or now
            suppressed = [
                a for a, s in row.recipient_status.items() if s.get("status") == "suppressed"
            ]
            left_out = [
                *(f"{a} (abgelehnt)" for a in refused),
                *(f"{a} (gesperrt)" for a in suppressed),
            ]
            row.last_error = (
                f"Teilweise zugestellt; nicht an: {', '.join(left_out)}"[:1000]
                if left_out
                else None
            )
        else:
            row.status, row.next_attempt_at = "failed_permanently", None
            row.last_error = f"Alle Empfänger dauerhaft abgelehnt: {reply}"[:1000]
        return
    if delivered:
        row.sent_at = row.sent_at or now
    max_age = timedelta(hours=settings.retry_max_age_hours)
    if now - _age_start(row) >= max_age:
        row.status, row.next_attempt_at = "failed_permanently", None
        row.last_error = (
            f"Zustellung nach {settings.retry_max_age_hours:g} Stunden aufgegeben: {reply}"
        )[:1000]
        return
    row.status = "retrying"
    row.next_attempt_at = min(now + backoff(row.attempts), _age_start(row) + max_age)
    partial = f" (bereits zugestellt an {', '.join(delivered)})" if delivered else ""
    row.last_error = f"Vorübergehender Fehler ({result.stage}): {reply}{partial}"[:1000]


def _flag_contacts(
    session: Session, row: OutboxMessage, refused: list[str], result: SendResult, now: datetime
) -> None:
    """Flag the directory contacts behind permanently refused addresses, and log it."""
    if not row.ags or row.is_test:
        return
    wanted = {a.lower() for a in refused}
    for contact in session.exec(select(Contact).where(Contact.ags == row.ags)).all():
        try:
            address = normalize_address(contact.email).lower()
        except Exception:
            continue
        if address not in wanted:
            continue
        state = result.recipients.get(address) or next(
            s for a, s in result.recipients.items() if a.lower() == address
        )
        reason = f"{state.get('code')} {state.get('text') or ''}".strip()[:500]
        contact.delivery_failed_at = now
        contact.delivery_failure = reason
        session.add(contact)
        session.add(
            Event(
                at=now,
                campaign_id=row.campaign_id,
                ags=row.ags,
                actor=ACTOR,
                kind=EventKind.CONTACT_UNDELIVERABLE,
                reason=f"Mail an {contact.email} dauerhaft abgelehnt: {reason}"[:1000],
                data={"contact_id": contact.id, "outbox_id": row.id, "code": state.get("code")},
            )
        )
