"""Use case: read the bounce mailbox, apply each report to outbox, contacts and suppression list.

Crash safety: every chunk of messages is applied in one transaction and committed BEFORE the
messages are moved. A crash before the commit leaves them in the folder, to be read again; a
crash after it leaves them too, but their key is stored (`BounceReport.report_key`), so the
next run only moves them. Nothing is ever deleted; unrecognised mail is not touched at all.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from efa_rollout.db import get_engine
from efa_rollout.domain.bounces import (
    AUTO_REPLY,
    PERMANENT,
    TRANSIENT,
    UNRECOGNISED,
    RecipientFailure,
    Report,
    parse,
    verp_outbox_id,
)
from efa_rollout.errors import UserError
from efa_rollout.mail.suppression import coordinator_addresses
from efa_rollout.services.suppression import suppress
from efa_rollout.settings import Settings, get_settings
from models import (
    BounceReport,
    Campaign,
    Contact,
    Enrolment,
    Event,
    Municipality,
    OutboxMessage,
)

if TYPE_CHECKING:
    from efa_rollout.mail.bounce_mailbox import BounceMailbox

ACTOR = "unzustellbar"
#: Event of a report about the coordinator's own address (flagged, never suppressed).
COORDINATOR_BOUNCED = "coordinator_address_bounced"
logger = logging.getLogger(__name__)
#: The mail that asks a municipality's other contacts for a working address.
ADDRESS_REQUEST_KIND = "address_request"
#: How far back a bounce without Message-ID is matched to mail sent to its address.
ADDRESS_MATCH_DAYS = 60
CHUNK = 100


@dataclass
class BounceRun:
    """What one pass over the bounce mailbox found and did."""

    dry_run: bool = False
    seen: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    moved: int = 0
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """One German line for the coordinator."""
        c = self.counts
        prefix = "Probelauf (nichts geändert, nichts verschoben): " if self.dry_run else ""
        return (
            f"{prefix}{self.seen} Nachrichten gelesen: {c[PERMANENT]} dauerhaft unzustellbar, "
            f"{c[TRANSIENT]} vorübergehend, {c[AUTO_REPLY]} automatische Antworten, "
            f"{c['already']} schon verarbeitet, {c['unmatched']} ohne passende Mail, "
            f"{c[UNRECOGNISED]} nicht erkannt (bleiben im Postfach); {self.moved} verschoben."
        ) + (
            f" Achtung: {c['coordinator']} Meldung(en) betreffen die Adresse der Koordination "
            "(nicht gesperrt, bitte prüfen)."
            if c["coordinator"]
            else ""
        )


def process_bounces(
    *, now: datetime | None = None, dry_run: bool = False, settings: Settings | None = None
) -> BounceRun:
    """Read every message in the bounce folder once; apply, commit, then move the processed."""
    import time

    # Imported here: IMAP is only needed when the mailbox is read, not by `efa mail outbox`.
    from efa_rollout.mail.bounce_mailbox import BounceMailbox, parse_imap_url

    started = time.perf_counter()
    settings = settings or get_settings()
    if settings.bounce_imap_url is None or not settings.bounce_imap_url.get_secret_value():
        raise UserError(
            "EFA_BOUNCE_IMAP_URL ist nicht gesetzt: kein Postfach für Unzustellbarkeitsmeldungen "
            "(z. B. imaps://benutzer:passwort@mail.example:993/INBOX)."
        )
    now = now or datetime.now(UTC)
    run = BounceRun(dry_run=dry_run)
    config = parse_imap_url(
        settings.bounce_imap_url.get_secret_value(), timeout=settings.smtp_timeout_seconds
    )
    folder = settings.bounce_processed_folder
    with BounceMailbox(config) as box:
        if not dry_run:
            box.ensure_folder(folder)
        uids = box.uids()
        for start in range(0, len(uids), CHUNK):
            done = _process_chunk(box, uids[start : start + CHUNK], run, now, settings)
            if not dry_run and done:
                box.move(done, folder)
                run.moved += len(done)
    run.seconds = time.perf_counter() - started
    return run


def _process_chunk(
    box: BounceMailbox, uids: list[int], run: BounceRun, now: datetime, settings: Settings
) -> list[int]:
    """Apply one chunk in one transaction; the UIDs that may be moved once it is committed."""
    done: list[int] = []
    session = Session(get_engine(), expire_on_commit=False)
    try:
        for uid, raw in box.fetch(uids):
            run.seen += 1
            report = parse(raw)
            if report.kind == UNRECOGNISED:
                run.counts[UNRECOGNISED] += 1
                continue
            if _already_processed(session, report.key):
                run.counts["already"] += 1
                done.append(uid)
                continue
            outcome = apply_report(session, report, now=now, settings=settings)
            if outcome is None:
                run.counts["unmatched"] += 1
                continue
            run.counts[report.kind] += 1
            run.counts["coordinator"] += sum(
                1 for o in outcome if o.get("Kontakt gesperrt") == "nein (Koordination)"
            )
            run.outcomes.extend(outcome)
            done.append(uid)
        if run.dry_run:
            session.rollback()
        else:
            session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    return done


def _already_processed(session: Session, key: str) -> bool:
    return session.exec(select(BounceReport.id).where(BounceReport.report_key == key)).first() is not None  # fmt: skip


def find_outbox_row(
    session: Session, report: Report, address: str | None, now: datetime
) -> OutboxMessage | None:
    """The outbox row a report is about: by original Message-ID, VERP sender, else address."""
    if report.original_message_id:
        row = session.exec(
            select(OutboxMessage).where(OutboxMessage.message_id == report.original_message_id)
        ).first()
        if row is not None:
            return row
    outbox_id = verp_outbox_id(report)
    if outbox_id is not None:
        row = session.get(OutboxMessage, outbox_id)
        if row is not None:
            return row
    if address:
        return _latest_to(session, address, now)
    return None


def _latest_to(session: Session, address: str, now: datetime) -> OutboxMessage | None:
    """The newest campaign mail sent to ADDRESS (a known contact) in the last few weeks."""
    ags = session.exec(
        select(Contact.ags).where(func.lower(Contact.email) == address.lower())
    ).all()
    if not ags:
        return None
    since = now - timedelta(days=ADDRESS_MATCH_DAYS)
    rows = session.exec(
        select(OutboxMessage)
        .where(
            col(OutboxMessage.ags).in_(set(ags)),
            col(OutboxMessage.is_test).is_(False),
            OutboxMessage.queued_at >= since,
        )
        .order_by(col(OutboxMessage.id).desc())
        .limit(50)
    ).all()
    for row in rows:
        if address.lower() in {a.lower() for a in [*row.recipients, *row.cc]}:
            return row
    return None


def apply_report(
    session: Session, report: Report, *, now: datetime, settings: Settings
) -> list[dict[str, Any]] | None:
    """Apply one recognised message; the outcomes, or None when it concerns none of our mail."""
    if report.kind == AUTO_REPLY:
        return _apply_auto_reply(session, report, now)
    outcomes = []
    for failure in report.recipients:
        row = find_outbox_row(session, report, failure.address, now)
        if row is None:
            continue
        address = _recipient_of(row, failure.address)
        outcomes.append(_apply_failure(session, report, row, failure, address, now, settings))
    return outcomes or None


def _recipient_of(row: OutboxMessage, address: str) -> str:
    """The address as the row has it; a forwarded alias maps to a row's only recipient."""
    known = {a.lower(): a for a in [*row.recipients, *row.cc]}
    if address.lower() in known:
        return known[address.lower()].lower()
    if len(row.recipients) == 1:
        return row.recipients[0].lower()
    return address.lower()


def _apply_failure(
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
    label = (
        "dauerhaft unzustellbar" if failure.kind == PERMANENT else "vorübergehend nicht zugestellt"
    )
    code = f"{failure.status} " if failure.status else ""
    _event(
        session,
        row,
        "mail_bounced" if failure.kind == PERMANENT else "mail_bounced_transient",
        f"Mail an {address} {label}: {code}{diagnostic}",
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
        reason = (
            f"{settings.bounce_transient_threshold} vorübergehende Fehler in "
            f"{settings.bounce_transient_window_days} Tagen, zuletzt: {code}{diagnostic}"
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
    reason = (
        f"Mail an die Adresse der Koordination {address} als unzustellbar gemeldet "
        f"({'dauerhaft' if kind == PERMANENT else 'vorübergehend'}): {text}. Die Adresse wird "
        "nicht gesperrt; bitte EFA_COORDINATOR_EMAIL, EFA_REPLY_TO und EFA_MAIL_FROM prüfen."
    )
    logger.warning("%s", reason)
    _event(
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
                reason=f"{contact.email} nicht erreichbar (Unzustellbarkeitsmeldung): {reason}"[
                    :1000
                ],
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


def _apply_auto_reply(
    session: Session, report: Report, now: datetime
) -> list[dict[str, Any]] | None:
    """Record an auto-reply (not a bounce): an event, the absence date when the text names one."""
    row = find_outbox_row(session, report, report.auto_reply_from, now)
    if row is None:
        return None
    address = (report.auto_reply_from or "").lower()
    session.add(
        BounceReport(
            report_key=report.key,
            recipient=address,
            kind=AUTO_REPLY,
            diagnostic=report.diagnostic[:1000],
            outbox_id=row.id,
            ags=row.ags,
            processed_at=now,
            data={"absent_until": report.absent_until, "subject": report.subject[:300]},
        )
    )
    what = (
        f"Abwesenheitsnotiz bis {report.absent_until}"
        if report.absent_until
        else "Automatische Antwort"
    )
    _event(
        session,
        row,
        "auto_reply_received",
        f"{what} von {address or 'unbekannt'}: {report.subject}"[:1000],
        now,
        {"outbox_id": row.id, "recipient": address, "absent_until": report.absent_until},
    )
    return [
        {
            "Art": AUTO_REPLY,
            "Empfänger": address,
            "AGS": row.ags or "",
            "Mail": row.id,
            "Status": "",
            "Kontakt gesperrt": "nein",
            "Meldung": what,
        }
    ]


def _event(
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


def unreachable_municipalities(session: Session, *, as_of: datetime) -> list[dict[str, Any]]:
    """Per running campaign: the municipalities without a working contact."""
    from efa_rollout.reports.rollup import campaign_rollup

    campaigns = session.exec(
        select(Campaign).where(Campaign.status != "closed").order_by(col(Campaign.id))
    ).all()
    rows = []
    for campaign in campaigns:
        rollup = campaign_rollup(session, campaign.id, as_of=as_of)
        rows += [
            {"Kampagne": campaign.id, "AGS": w.ags, "Gemeinde": w.name, "Grund": w.reason}
            for w in rollup.without_contact
        ]
    return rows
