"""Use case: read the bounce mailbox, apply each report to outbox, contacts and suppression list.

Crash safety: every chunk of messages is applied in one transaction and committed BEFORE the
messages are moved. A crash before the commit leaves them in the folder, to be read again; a
crash after it leaves them too, but their key is stored (`BounceReport.report_key`), so the
next run only moves them. Nothing is ever deleted; unrecognised mail is not touched at all.
"""

from __future__ import annotations

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
    Report,
    parse,
    verp_outbox_id,
)
from efa_rollout.errors import UserError
from efa_rollout.services.bounce_effects import apply_failure, log_event
from efa_rollout.settings import Settings, get_settings
from efa_rollout.texts import say
from models import (
    BounceReport,
    Campaign,
    Contact,
    OutboxMessage,
)

if TYPE_CHECKING:
    from efa_rollout.mail.bounce_mailbox import BounceMailbox

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
        prefix = say("service.bounces.dry_run") + " " if self.dry_run else ""
        text = say(
            "service.bounces.summary",
            prefix=prefix,
            seen=self.seen,
            permanent=c[PERMANENT],
            transient=c[TRANSIENT],
            auto_reply=c[AUTO_REPLY],
            already=c["already"],
            unmatched=c["unmatched"],
            unrecognised=c[UNRECOGNISED],
            moved=self.moved,
        )
        if c["coordinator"]:
            text += " " + say("service.bounces.coordinator", count=c["coordinator"])
        return text


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
        raise UserError(say("service.bounces.no_mailbox"))
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
        return apply_auto_reply(session, report, now)
    outcomes = []
    for failure in report.recipients:
        row = find_outbox_row(session, report, failure.address, now)
        if row is None:
            continue
        address = _recipient_of(row, failure.address)
        outcomes.append(apply_failure(session, report, row, failure, address, now, settings))
    return outcomes or None


def _recipient_of(row: OutboxMessage, address: str) -> str:
    """The address as the row has it; a forwarded alias maps to a row's only recipient."""
    known = {a.lower(): a for a in [*row.recipients, *row.cc]}
    if address.lower() in known:
        return known[address.lower()].lower()
    if len(row.recipients) == 1:
        return row.recipients[0].lower()
    return address.lower()


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


def apply_auto_reply(
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
        say("service.bounces.absent_until", day=report.absent_until)
        if report.absent_until
        else say("service.bounces.auto_reply")
    )
    log_event(
        session,
        row,
        "auto_reply_received",
        say(
            "service.bounces.auto_reply_from",
            what=what,
            address=address or say("service.bounces.unknown_sender"),
            subject=report.subject,
        )[:1000],
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
