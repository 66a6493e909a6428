"""The summary on its date: due or not, the coordinator's approval, and sending it.

One path for the schedule, the CLI and `--no-prefect`: `release_summary` brings the stages up
to date, checks that the summary is due (its date has come, municipalities wait for it, none has
gone out yet) and, when the definition asks for it, that the coordinator approved it; then it
builds and queues the summary and moves those who got it on. Decisions are events in our
database (`summary_approved`, `summary_rejected`), whoever took them (CLI or Prefect UI).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from efa_rollout.db import session_scope
from efa_rollout.domain.audit import EventKind
from efa_rollout.domain.stages import EnrolmentStatus, Stage
from efa_rollout.domain.text import german_date
from efa_rollout.domain.waiting import SummaryFacts
from efa_rollout.errors import UserError
from efa_rollout.services import lookup
from efa_rollout.services.clock import local_today
from efa_rollout.texts import say
from models import Campaign, Enrolment, Event, OutboxMessage

if TYPE_CHECKING:  # orchestration (mail building, Jinja) only where a step runs: ~0.4 s
    from efa_rollout.services.orchestration import BatchRunner

APPROVED = EventKind.SUMMARY_APPROVED
REJECTED = EventKind.SUMMARY_REJECTED
REQUESTED = EventKind.SUMMARY_APPROVAL_REQUESTED
DECISION_KINDS = (APPROVED, REJECTED)

#: Enrolments per transaction when stages are brought up to date (as the tick's batches).
BATCH_SIZE = 2000

SENT = "sent"
NOT_DUE = "not_due"
AWAITING_APPROVAL = "awaiting_approval"


@dataclass(frozen=True)
class Approval:
    """The coordinator's latest decision on a campaign's summary."""

    required: bool
    decision: str | None = None
    note: str | None = None
    actor: str | None = None
    at: datetime | None = None

    @property
    def approved(self) -> bool:
        """Whether the summary may go out (approved, or no approval needed)."""
        return not self.required or self.decision == APPROVED

    @property
    def rejected_note(self) -> str | None:
        """The note of a rejection that still stands."""
        if self.decision != REJECTED:
            return None
        return self.note or say("service.summary_release.no_reason")


@dataclass
class Release:
    """What one release of a campaign's summary did, in German for the coordinator."""

    campaign_id: str
    outcome: str
    message: str
    result: dict[str, Any] = field(default_factory=dict)
    stage_changes: int = 0

    @property
    def sent(self) -> bool:
        """Whether the summary was queued in this release."""
        return self.outcome == SENT


def summary_date(campaign: Campaign) -> date:
    """The campaign's summary date (the day after the collection deadline when it has none)."""
    dates = campaign.dates or {}
    if dates.get("summary"):
        return date.fromisoformat(dates["summary"])
    deadline = dates.get("collection_deadline")
    base = date.fromisoformat(deadline) if deadline else campaign.go_live - timedelta(days=84)
    return base + timedelta(days=1)


def approval_required(campaign: Campaign) -> bool:
    """Whether the campaign's definition asks for the coordinator's approval."""
    return lookup.campaign_definition(campaign).summary.approval


def approval_of(session: Session, campaign: Campaign) -> Approval:
    """The latest approval decision on CAMPAIGN's summary."""
    required = approval_required(campaign)
    event = session.exec(
        select(Event)
        .where(Event.campaign_id == campaign.id, col(Event.kind).in_(DECISION_KINDS))
        .order_by(col(Event.at).desc(), col(Event.id).desc())
        .limit(1)
    ).first()
    if event is None:
        return Approval(required)
    return Approval(required, event.kind, event.reason, event.actor, event.at)


def summary_facts(session: Session, campaign: Campaign) -> SummaryFacts:
    """The facts the waiting rule needs about the summary."""
    approval = approval_of(session, campaign)
    return SummaryFacts(
        date=summary_date(campaign),
        approval_required=approval.required,
        approved=approval.approved,
        rejected_note=approval.rejected_note,
    )


def decide(
    session: Session,
    campaign_id: str,
    *,
    approve: bool,
    note: str | None,
    actor: str,
    now: datetime,
) -> Event:
    """Record the coordinator's approval or rejection (a rejection needs a note); flushes."""
    campaign = lookup.get_campaign(session, campaign_id)
    if not approval_required(campaign):
        raise UserError(
            say("service.summary_release.not_required", campaign=campaign_id),
            details=[say("service.summary_release.send_with", campaign=campaign_id)],
        )
    note = (note or "").strip() or None
    if not approve and note is None:
        raise UserError(say("service.summary_release.note_needed"))
    event = Event(
        at=now,
        campaign_id=campaign_id,
        actor=actor,
        kind=APPROVED if approve else REJECTED,
        reason=note or ("Zusammenfassung freigegeben" if approve else None),
        data={"decision": "approve" if approve else "reject"},
    )
    session.add(event)
    session.flush()
    return event


def _summary_sent(session: Session, campaign_id: str) -> bool:
    query = select(OutboxMessage.id).where(
        OutboxMessage.campaign_id == campaign_id,
        OutboxMessage.kind == "summary",
        col(OutboxMessage.status) != "cancelled",
    )
    return session.exec(query.limit(1)).first() is not None


def waiting_count(session: Session, campaign_id: str) -> int:
    """Active municipalities in summary_distribution (they wait for the summary)."""
    return len(
        session.exec(
            select(Enrolment.id).where(
                Enrolment.campaign_id == campaign_id,
                Enrolment.status == EnrolmentStatus.ACTIVE.value,
                Enrolment.stage == Stage.SUMMARY_DISTRIBUTION.value,
            )
        ).all()
    )


def not_due_reason(session: Session, campaign: Campaign, today: date) -> str | None:
    """Why the scheduled summary is not due on TODAY, or None when it is."""
    if campaign.status != "running":
        return say("service.summary_release.not_running", status=campaign.status)
    when = summary_date(campaign)
    if today < when:
        return say("service.summary_release.not_yet_due", day=german_date(when))
    if _summary_sent(session, campaign.id):
        return say("service.summary_release.already_sent")
    if waiting_count(session, campaign.id) == 0:
        return say("service.summary_release.nobody_waiting")
    return None


def advance_stages(
    engine: Engine,
    campaign_id: str,
    *,
    now: datetime,
    actor: str,
    runner: BatchRunner | None = None,
) -> int:
    """Apply the due stage transitions (as the tick does, never go-live); returns how many."""
    from efa_rollout.services import orchestration

    advanced = orchestration.advance_campaign(
        campaign_id,
        now,
        actor=actor,
        include_go_live=False,
        send_latest_summary=False,  # the summary step decides which version goes out
        runner=runner or orchestration.BatchRunner(engine),
    )
    return len(advanced.result.changes)


def request_approval(engine: Engine, campaign_id: str, *, now: datetime, actor: str) -> bool:
    """Log once that the summary waits for approval (until a decision); True when logged now."""
    with session_scope(engine) as session:
        last = session.exec(
            select(Event.kind)
            .where(
                Event.campaign_id == campaign_id,
                col(Event.kind).in_((REQUESTED, *DECISION_KINDS)),
            )
            .order_by(col(Event.at).desc(), col(Event.id).desc())
            .limit(1)
        ).first()
        if last == REQUESTED:
            return False
        session.add(
            Event(
                at=now,
                campaign_id=campaign_id,
                actor=actor,
                kind=REQUESTED,
                reason=say("service.summary_release.requested"),
            )
        )
    return True


def check_release(
    engine: Engine, campaign_id: str, *, now: datetime, force: bool = False
) -> Release | None:
    """A Release saying why nothing goes out (not due, awaiting approval), or None: send it."""
    today = local_today(now)
    with session_scope(engine) as session:
        campaign = lookup.get_campaign(session, campaign_id)
        reason = None if force else not_due_reason(session, campaign, today)
        if reason:
            return Release(campaign_id, NOT_DUE, reason)
        approval = approval_of(session, campaign)
    if not approval.approved:
        note = (
            " " + say("service.summary_release.rejected", note=approval.note)
            if approval.decision == REJECTED
            else ""
        )
        return Release(
            campaign_id,
            AWAITING_APPROVAL,
            say("service.summary_release.awaiting", rejected=note, campaign=campaign_id),
        )
    return None


def send_summary(
    engine: Engine,
    campaign_id: str,
    *,
    now: datetime,
    close_collection: bool = False,
    runner: BatchRunner | None = None,
) -> Release:
    """Build and queue the summary, then move those who got it on (no checks)."""
    from efa_rollout.services import orchestration

    runner = runner or orchestration.BatchRunner(engine)
    result = orchestration.distribute_summary(
        campaign_id, now, close_collection=close_collection, runner=runner
    )
    return Release(
        campaign_id,
        SENT,
        f"Zusammenfassung Version {result['version']}: {result['queued']} in den Postausgang "
        f"gestellt, {result['already']} hatten sie bereits, {result['stage_changes']} "
        "Stufenwechsel.",
        result=result,
        stage_changes=result["stage_changes"],
    )


def _settled(engine: Engine, campaign_id: str, now: datetime) -> Release | None:
    """NOT_DUE when the campaign is not running, its date is ahead or its summary went out."""
    today = local_today(now)
    with session_scope(engine) as session:
        campaign = lookup.get_campaign(session, campaign_id)
        if campaign.status != "running" or today < summary_date(campaign):
            return Release(campaign_id, NOT_DUE, not_due_reason(session, campaign, today) or "")
        if _summary_sent(session, campaign_id):
            return Release(campaign_id, NOT_DUE, not_due_reason(session, campaign, today) or "")
    return None


def release_summary(
    engine: Engine,
    campaign_id: str,
    *,
    now: datetime,
    actor: str,
    force: bool = False,
    close_collection: bool = False,
    runner: BatchRunner | None = None,
) -> Release:
    """The summary step: stages up to date, due and approved? then send (FORCE: not waiting
    for the date, e.g. `efa summary send`; never past a missing approval)."""
    if not (force or close_collection):
        early = _settled(engine, campaign_id, now)
        if early is not None:
            return early  # nothing to bring up to date for: the daily run stays cheap
    advance_stages(engine, campaign_id, now=now, actor=actor, runner=runner)
    blocked = check_release(engine, campaign_id, now=now, force=force or close_collection)
    if blocked is not None:
        if blocked.outcome == AWAITING_APPROVAL:
            request_approval(engine, campaign_id, now=now, actor=actor)
        return blocked
    return send_summary(
        engine, campaign_id, now=now, close_collection=close_collection, runner=runner
    )


def preview(session: Session, campaign_id: str, *, now: datetime) -> dict[str, Any]:
    """The summary as it would go out now (HTML and PDF), without storing or sending it."""
    from efa_rollout.services.summary import build_summary_data, latest_summary
    from efa_rollout.services.summary_document import render_html, render_pdf

    campaign = lookup.get_campaign(session, campaign_id)
    data = build_summary_data(session, campaign)
    latest = latest_summary(session, campaign_id)
    version = (latest.version if latest else 0) + 1
    generated = local_today(now)
    return {
        "data": data,
        "version": version,
        "html": render_html(data, version=version, generated=generated),
        "pdf": render_pdf(data, version=version, generated=generated),
        "approval": approval_of(session, campaign),
        "summary_date": summary_date(campaign),
        "waiting": waiting_count(session, campaign_id),
    }
