"""The coordinator's actions on queued mail: list, send again (same Message-ID), cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from efa_rollout.domain.audit import EventKind
from efa_rollout.mail.ledger_state import FINAL_RECIPIENT_STATES
from efa_rollout.mail.suppression import event_row as suppression_event
from efa_rollout.mail.suppression import suppressed_reasons, suppressed_state
from efa_rollout.settings import get_settings
from efa_rollout.texts import say
from models import (
    Event,
    OutboxMessage,
)

RETRYABLE_STATUSES = ("unknown", "failed_permanently", "retrying")


CANCELLABLE_STATUSES = ("queued", "retrying", "unknown", "failed_permanently")


def list_messages(
    session: Session,
    *,
    statuses: list[str] | None = None,
    campaign_id: str | None = None,
    limit: int = 200,
) -> list[OutboxMessage]:
    """Outbox rows, newest first, filtered by status and campaign."""
    query = select(OutboxMessage).order_by(col(OutboxMessage.id).desc()).limit(limit)
    if statuses:
        query = query.where(col(OutboxMessage.status).in_(statuses))
    if campaign_id:
        query = query.where(OutboxMessage.campaign_id == campaign_id)
    return list(session.exec(query).all())


def _select_for_action(
    session: Session, ids: list[int] | None, statuses: list[str] | None
) -> tuple[list[OutboxMessage], list[str]]:
    """Rows named by ID or status; unknown IDs reported."""
    problems: list[str] = []
    rows: list[OutboxMessage] = []
    if ids:
        for outbox_id in ids:
            row = session.get(OutboxMessage, outbox_id)
            if row is None:
                problems.append(say("service.outbox_admin.unknown", id=outbox_id))
            else:
                rows.append(row)
    if statuses:
        rows.extend(
            session.exec(select(OutboxMessage).where(col(OutboxMessage.status).in_(statuses))).all()
        )
    return rows, problems


def retry_messages(
    session: Session,
    *,
    now: datetime,
    ids: list[int] | None = None,
    statuses: list[str] | None = None,
    actor: str | None = None,
) -> tuple[list[OutboxMessage], list[str]]:
    """Send again (same Message-ID) to every recipient not yet served; (rows, problems)."""
    rows, problems = _select_for_action(session, ids, statuses)
    retried: list[OutboxMessage] = []
    for row in rows:
        if row.status not in RETRYABLE_STATUSES:
            problems.append(say("service.outbox_admin.not_retryable", id=row.id, status=row.status))
            continue
        states = {
            a: s for a, s in (row.recipient_status or {}).items() if s.get("status") == "sent"
        }
        blocked = _left_out_suppressed(session, row, states, now)
        for address in blocked:
            problems.append(say("service.outbox_admin.suppressed", id=row.id, address=address))
        if blocked and not _open_recipients(row, states):
            row.recipient_status = states
            session.add(row)
            problems.append(say("service.outbox_admin.nobody_left", id=row.id))
            continue
        previous = row.status
        row.recipient_status = states
        row.status = "retrying"
        row.next_attempt_at = now
        row.claimed_by = row.claimed_at = None
        row.meta = {
            **(row.meta or {}),
            "manual_retry_at": now.isoformat(),
            "manual_retries": int((row.meta or {}).get("manual_retries", 0)) + 1,
        }
        session.add(row)
        session.add(
            _action_event(row, EventKind.MAIL_RETRY_REQUESTED, f"vorher: {previous}", now, actor)
        )
        retried.append(row)
    return retried, problems


def _open_recipients(row: OutboxMessage, states: dict[str, Any]) -> list[str]:
    """Envelope addresses of ROW not yet final in STATES (sent, refused, suppressed)."""
    final = {a for a, s in states.items() if s.get("status") in FINAL_RECIPIENT_STATES}
    return list(dict.fromkeys(a for a in [*row.recipients, *row.cc] if a not in final))


def _left_out_suppressed(
    session: Session, row: OutboxMessage, states: dict[str, Any], now: datetime
) -> list[str]:
    """Mark ROW's open recipients that are suppressed in STATES, log each; their addresses."""
    open_addresses = _open_recipients(row, states)
    if not open_addresses:
        return []
    reasons = suppressed_reasons(session.connection(), open_addresses)
    blocked = [a for a in open_addresses if a.lower() in reasons]
    for address in blocked:
        reason = reasons[address.lower()]
        states[address] = suppressed_state(reason, now)
        session.add(
            Event(
                **suppression_event(
                    outbox_id=row.id or 0,
                    campaign_id=row.campaign_id,
                    ags=row.ags,
                    kind=row.kind,
                    sequence=row.sequence,
                    address=address.lower(),
                    reason=reason,
                    stage="retry",
                    now=now,
                )
            )
        )
    return [a.lower() for a in blocked]


def cancel_messages(
    session: Session, *, now: datetime, ids: list[int], actor: str | None = None
) -> tuple[list[OutboxMessage], list[str]]:
    """Cancel messages not yet sent; (rows, problems)."""
    rows, problems = _select_for_action(session, ids, None)
    cancelled: list[OutboxMessage] = []
    for row in rows:
        if row.status not in CANCELLABLE_STATUSES:
            problems.append(
                say("service.outbox_admin.not_cancellable", id=row.id, status=row.status)
            )
            continue
        previous = row.status
        row.status = "cancelled"
        row.next_attempt_at = None
        session.add(row)
        session.add(_action_event(row, EventKind.MAIL_CANCELLED, f"vorher: {previous}", now, actor))
        cancelled.append(row)
    return cancelled, problems


def _action_event(
    row: OutboxMessage, kind: EventKind, reason: str, now: datetime, actor: str | None
) -> Event:
    return Event(
        at=now,
        campaign_id=row.campaign_id,
        ags=row.ags,
        actor=actor or get_settings().actor,
        kind=kind,
        reason=reason,
        data={"outbox_id": row.id, "message_id": row.message_id},
    )
