"""What one bounce report does: the outbox row's recipient state, contact flags, suppression, events."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from efa_rollout.domain.bounces import (
    PERMANENT,
    TRANSIENT,
    RecipientFailure,
    Report,
)
from efa_rollout.mail.suppression import coordinator_addresses
from efa_rollout.services.suppression import ACTOR, suppress
from efa_rollout.settings import Settings
from efa_rollout.texts import say
from models import (
    BounceReport,
    Campaign,
    Contact,
    Enrolment,
    Event,
    Municipality,
    OutboxMessage,
)

logger = logging.getLogger(__name__)


#: Event of a report about the coordinator's own address (flagged, never suppressed).
COORDINATOR_BOUNCED = "coordinator_address_bounced"
#: The mail that asks a municipality's other contacts for a working address.
ADDRESS_REQUEST_KIND = "address_request"


def apply_failure(
    session: Session,
    report: Report,
    row: OutboxMessage,
    failure: RecipientFailure,
    address: str,
    now: datetime,
    settings: Settings,
) -> dict[str, Any]:
    """Record one recipient's failure; mark, flag, suppress as its kind demands."""
    diagnostic = failure.diagnostic or report.subject
    session.add(
        BounceReport(
            report_key=report.key,
            recipient=address,
            kind=failure.kind,
            status_code=failure.status,
            diagnostic=diagnostic[:1000],
            outbox_id=row.id,
            ags=row.ags,
            processed_at=now,
            data={"detector": report.detector, "reported_address": failure.address},
        )
    )
    _mark_row(session, row, address, failure, diagnostic, now)
    label = say(
        "service.bounce.permanent" if failure.kind == PERMANENT else "service.bounce.transient"
    )
    code = f"{failure.status} " if failure.status else ""
    log_event(
        session,
        row,
        "mail_bounced" if failure.kind == PERMANENT else "mail_bounced_transient",
        say(
            "service.bounce.bounced", address=address, label=label, code=code, diagnostic=diagnostic
        ),
        now,
        {"outbox_id": row.id, "recipient": address, "status": failure.status},
    )
    flagged = False
    coordinator = address in coordinator_addresses(settings)
    if coordinator:
        # Never suppress our own address: the weekly report, the summaries' copies and every
        # reply would silently stop. Logged loudly instead, for the coordinator to check.
        _coordinator_bounced(session, row, address, failure.kind, f"{code}{diagnostic}", now)
    elif failure.kind == PERMANENT:
        suppress(session, address, reason=diagnostic, status=failure.status, row=row, now=now)
        flagged = _flag_contacts(session, row, address, f"{code}{diagnostic}", now)
    elif _transient_count(session, address, now, settings) >= settings.bounce_transient_threshold:
        reason = say(
            "service.bounce.transient_repeated",
            threshold=settings.bounce_transient_threshold,
            days=settings.bounce_transient_window_days,
            code=code,
            diagnostic=diagnostic,
        )
        flagged = _flag_contacts(session, row, address, reason, now)
    if flagged:
        ask_for_working_address(session, row, address, now)
    return {
        "Art": failure.kind,
        "Empfänger": address,
        "AGS": row.ags or "",
        "Mail": row.id,
        "Status": failure.status or "",
        "Kontakt gesperrt": "ja" if flagged else ("nein (Koordination)" if coordinator else "nein"),
        "Meldung": diagnostic[:200],
    }


def _coordinator_bounced(
    session: Session, row: OutboxMessage, address: str, kind: str, text: str, now: datetime
) -> None:
    """A report about the coordinator's own address: an event and a warning, no suppression."""
    how = say(
        "service.bounce.coordinator_permanent"
        if kind == PERMANENT
        else "service.bounce.coordinator_transient"
    )
    reason = say("service.bounce.coordinator", address=address, kind=how, text=text)
    logger.warning("%s", reason)
    log_event(
        session,
        row,
        COORDINATOR_BOUNCED,
        reason,
        now,
        {"outbox_id": row.id, "recipient": address, "kind": kind},
    )


def _mark_row(
    session: Session,
    row: OutboxMessage,
    address: str,
    failure: RecipientFailure,
    diagnostic: str,
    now: datetime,
) -> None:
    states = dict(row.recipient_status or {})
    previous = dict(states.get(address) or {})
    if failure.kind == PERMANENT:
        states[address] = {
            **previous,
            "status": "bounced",
            "code": failure.status,
            "text": diagnostic[:300],
            "at": now.isoformat(),
        }
    else:
        states[address] = {
            **previous,
            "status": previous.get("status", "sent"),
            "transient_reports": int(previous.get("transient_reports", 0)) + 1,
            "last_report": diagnostic[:300],
        }
    row.recipient_status = states
    targets = [a.lower() for a in [*row.recipients, *row.cc]]
    bounced = [a for a in targets if (states.get(a) or {}).get("status") == "bounced"]
    if failure.kind == PERMANENT and bounced and len(bounced) == len(targets):
        row.status = "failed_permanently"
        row.next_attempt_at = None
        row.last_error = f"Unzustellbar gemeldet: {failure.status or ''} {diagnostic}".strip()[
            :1000
        ]
    elif failure.kind == PERMANENT:
        row.last_error = f"Teilweise unzustellbar gemeldet: {', '.join(bounced)}"[:1000]
    session.add(row)


def _transient_count(session: Session, address: str, now: datetime, settings: Settings) -> int:
    session.flush()
    since = now - timedelta(days=settings.bounce_transient_window_days)
    return int(
        session.exec(
            select(func.count()).where(
                BounceReport.recipient == address,
                BounceReport.kind == TRANSIENT,
                BounceReport.processed_at >= since,
            )
        ).one()
    )


def _flag_contacts(
    session: Session, row: OutboxMessage, address: str, reason: str, now: datetime
) -> bool:
    """Flag every contact with ADDRESS as unreachable; True if one was newly flagged."""
    newly = False
    contacts = session.exec(select(Contact).where(func.lower(Contact.email) == address)).all()
    for contact in contacts:
        if contact.delivery_failed_at is not None:
            continue
        contact.delivery_failed_at = now
        contact.delivery_failure = reason[:500]
        session.add(contact)
        newly = True
        session.add(
            Event(
                at=now,
                campaign_id=row.campaign_id if contact.ags == row.ags else None,
                ags=contact.ags,
                actor=ACTOR,
                kind="contact_undeliverable",
                reason=say(
                    "service.bounce.contact_unreachable", email=contact.email, reason=reason
                )[:1000],
                data={"contact_id": contact.id, "outbox_id": row.id},
            )
        )
    return newly


def ask_for_working_address(
    session: Session, row: OutboxMessage, address: str, now: datetime
) -> OutboxMessage | None:
    """Once per campaign and municipality: ask its other contacts for a working address."""
    from efa_rollout.services.outbox import queue_campaign_mail

    if not row.campaign_id or not row.ags or row.is_test or row.kind == ADDRESS_REQUEST_KIND:
        return None
    campaign = session.get(Campaign, row.campaign_id)
    municipality = session.get(Municipality, row.ags)
    enrolment = session.exec(
        select(Enrolment).where(Enrolment.campaign_id == row.campaign_id, Enrolment.ags == row.ags)
    ).first()
    if campaign is None or municipality is None or enrolment is None:
        return None
    session.flush()
    return queue_campaign_mail(
        session,
        campaign=campaign,
        enrolment=enrolment,
        municipality=municipality,
        kind=ADDRESS_REQUEST_KIND,
        sequence=1,
        now=now,
        extra={"failed_address": address, "failed_subject": row.subject},
    )


def log_event(
    session: Session,
    row: OutboxMessage,
    kind: str,
    reason: str,
    now: datetime,
    data: dict[str, Any],
) -> None:
    session.add(
        Event(
            at=now,
            campaign_id=row.campaign_id,
            ags=row.ags,
            actor=ACTOR,
            kind=kind,
            reason=reason[:1000],
            data=data,
        )
    )
