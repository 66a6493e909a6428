"""Use case: the suppression list — who gets no mail after a bounce, and lifting it again.

Queueing leaves suppressed addresses out here (`drop_suppressed`); delivery checks again in the
claim's transaction (`mail.suppression`), for mail queued before the bounce or sent again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from efa_rollout.errors import UserError
from efa_rollout.texts import say
from models import Contact, Event, OutboxMessage, Suppression

ACTOR = "unzustellbar"


def suppress(
    session: Session,
    address: str,
    *,
    reason: str,
    status: str | None,
    row: OutboxMessage | None,
    now: datetime,
) -> Suppression:
    """Put ADDRESS on the suppression list (or renew a lifted entry)."""
    address = address.lower()
    entry = session.exec(select(Suppression).where(Suppression.email == address)).first()
    if entry is None:
        entry = Suppression(email=address, reason=reason[:1000], created_at=now)
    elif entry.lifted_at is None:
        return entry
    entry.reason, entry.status_code = reason[:1000], status
    entry.outbox_id = row.id if row else None
    entry.created_at, entry.lifted_at, entry.lifted_by = now, None, None
    session.add(entry)
    return entry


def suppressed_addresses(session: Session, addresses: list[str]) -> set[str]:
    """Those of ADDRESSES on the suppression list (lower case)."""
    wanted = {a.lower() for a in addresses}
    if not wanted:
        return set()
    rows = session.exec(
        select(Suppression.email).where(
            col(Suppression.email).in_(wanted),
            col(Suppression.lifted_at).is_(None),
        )
    ).all()
    return set(rows)


def drop_suppressed(
    session: Session,
    contacts: list[Contact],
    *,
    campaign_id: str | None,
    ags: str,
    kind: str,
    sequence: int,
    now: datetime,
) -> list[Contact]:
    """CONTACTS without suppressed addresses; each dropped one logged once per logical mail."""
    blocked = suppressed_addresses(session, [c.email for c in contacts])
    if not blocked:
        return contacts
    earlier = session.exec(
        select(Event).where(
            Event.campaign_id == campaign_id,
            Event.ags == ags,
            Event.kind == "mail_recipient_suppressed",
        )
    ).all()
    for address in sorted(blocked):
        data = {"kind": kind, "sequence": sequence, "recipient": address}
        if any(e.data == data for e in earlier):
            continue
        session.add(
            Event(
                at=now,
                campaign_id=campaign_id,
                ags=ags,
                actor=ACTOR,
                kind="mail_recipient_suppressed",
                reason=say("service.suppression.not_sent", address=address),
                data=data,
            )
        )
    return [c for c in contacts if c.email.lower() not in blocked]


def suppression_notes(session: Session, campaign_id: str | None = None) -> list[str]:
    """German lines for `efa mail outbox`: mail not sent to a still suppressed address."""
    query = select(Event).where(Event.kind == "mail_recipient_suppressed")
    if campaign_id:
        query = query.where(Event.campaign_id == campaign_id)
    events = session.exec(query.order_by(col(Event.id).desc()).limit(200)).all()
    active = suppressed_addresses(session, [str(e.data.get("recipient")) for e in events])
    return [
        say(
            "service.suppression.not_queued",
            address=e.data["recipient"],
            campaign=e.campaign_id or say("service.suppression.no_campaign"),
            ags=e.ags,
            kind=e.data["kind"],
            sequence=e.data["sequence"],
        )
        for e in events
        if e.data.get("recipient") in active
    ]


def unsuppress(session: Session, address: str, *, now: datetime, actor: str) -> int:
    """Lift the suppression of ADDRESS and the contacts' flags; how many contacts were cleared."""
    address = address.strip().lower()
    entry = session.exec(select(Suppression).where(Suppression.email == address)).first()
    if entry is None or entry.lifted_at is not None:
        raise UserError(say("service.suppression.not_suppressed", address=address))
    entry.lifted_at, entry.lifted_by = now, actor
    session.add(entry)
    contacts = session.exec(select(Contact).where(func.lower(Contact.email) == address)).all()
    for contact in contacts:
        contact.delivery_failed_at = contact.delivery_failure = None
        session.add(contact)
        session.add(
            Event(
                at=now,
                ags=contact.ags,
                actor=actor,
                kind="address_unsuppressed",
                reason=say("service.suppression.lifted", address=address, reason=entry.reason)[
                    :1000
                ],
                data={"contact_id": contact.id, "recipient": address},
            )
        )
    return len(contacts)
