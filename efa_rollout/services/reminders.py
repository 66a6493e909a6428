"""Reminders for a campaign's open items: select candidates in batches, decide, queue the mail.

`process_batch` decides and queues for one batch, `process_ids` runs it in its own transaction;
the whole-campaign loop is `services.orchestration.remind` (plain calls or Prefect tasks).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Engine, and_, not_, or_
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from efa_rollout.definitions import CampaignDefinition
from efa_rollout.domain.audit import EventKind
from efa_rollout.domain.reminder_plan import REMINDER_STAGES, open_items
from efa_rollout.domain.reminders import (
    DROPPED_EVENT,
    Action,
    DroppedReminder,
    ReminderDecision,
    SentMail,
    decide_reminder,
)
from efa_rollout.domain.stages import CampaignStatus, EnrolmentStatus, Stage
from efa_rollout.domain.text import german_date
from efa_rollout.domain.workdays import WorkCalendar
from efa_rollout.services.batches import BATCH_SIZE, chunks
from efa_rollout.services.bulk_gc import fewer_collections
from efa_rollout.services.lookup import campaign_definition, get_campaign
from efa_rollout.services.reminder_report import ReminderReport, ReminderRow
from efa_rollout.texts import say
from models import Campaign, ChecklistItemState, Enrolment, Event, Municipality, OutboxMessage

DEFAULT_ACTOR = "erinnerungen"
#: Outbox meta key: the (item key, due date) pairs a reminder or escalation asked for.
COVERED_META = "reminder_items"


def campaigns_to_remind(session: Session, campaign_id: str | None) -> list[Campaign]:
    """The running campaigns, or the one named (a German error when it does not exist)."""
    if campaign_id is None:
        query = (
            select(Campaign).where(Campaign.status == CampaignStatus.RUNNING).order_by(Campaign.id)
        )
        return list(session.exec(query).all())
    return [get_campaign(session, campaign_id)]


def _candidate_filter(campaign: Campaign) -> Any:
    """Active enrolments in a reminder stage; in collection only with incomplete answers."""
    stages = sorted(s.value for s in REMINDER_STAGES if s != Stage.INFORMATION_COLLECTION)
    collecting = and_(
        col(Enrolment.stage) == Stage.INFORMATION_COLLECTION.value,
        not_(col(Enrolment.answers_complete)),
    )
    in_stage: ColumnElement[bool] = col(Enrolment.stage).in_(stages)
    if campaign.collection_closed_at is None:
        in_stage = or_(in_stage, collecting)
    return and_(
        col(Enrolment.campaign_id) == campaign.id,
        col(Enrolment.status) == EnrolmentStatus.ACTIVE.value,
        in_stage,
    )


def candidate_id_batches(
    session: Session, campaign: Campaign, size: int = BATCH_SIZE
) -> list[list[int]]:
    """The ids of the campaign's reminder candidates, in batches of at most SIZE."""
    ids = session.exec(
        select(Enrolment.id).where(_candidate_filter(campaign)).order_by(col(Enrolment.id))
    ).all()
    return [list(part) for part in chunks([i for i in ids if i is not None], size)]


def _load_candidates(
    session: Session, campaign: Campaign, ids: Sequence[int]
) -> list[tuple[Enrolment, Municipality]]:
    query = (
        select(Enrolment, Municipality)
        .join(Municipality, col(Municipality.ags) == col(Enrolment.ags))
        .where(_candidate_filter(campaign), col(Enrolment.id).in_(list(ids)))
        .order_by(col(Enrolment.ags))
    )
    return [(e, m) for e, m in session.exec(query).all()]


def _done_keys(session: Session, ids: Sequence[int]) -> dict[int, set[str]]:
    rows = session.exec(
        select(ChecklistItemState.enrolment_id, ChecklistItemState.item_key).where(
            col(ChecklistItemState.enrolment_id).in_(list(ids)),
            col(ChecklistItemState.done),
        )
    ).all()
    done: dict[int, set[str]] = defaultdict(set)
    for enrolment_id, key in rows:
        done[enrolment_id].add(key)
    return done


def _history(
    session: Session, campaign_id: str, ags_list: Sequence[str], calendar: WorkCalendar
) -> dict[str, list[SentMail]]:
    """Every campaign mail per municipality (its local day; for reminders what they asked for)."""
    # sqlalchemy's select (sqlmodel's is typed for up to four columns): the same rows as exec().
    rows = cast(  # mypy unpacks a Row of Any columns as object
        "Iterable[tuple[Any, ...]]",
        session.execute(
            core_select(
                col(OutboxMessage.ags),
                col(OutboxMessage.kind),
                col(OutboxMessage.sequence),
                col(OutboxMessage.not_after),
                col(OutboxMessage.queued_at),
                col(OutboxMessage.meta),
            ).where(
                col(OutboxMessage.campaign_id) == campaign_id,
                col(OutboxMessage.ags).in_(list(ags_list)),
                not_(col(OutboxMessage.is_test)),
            )
        ).all(),
    )
    history: dict[str, list[SentMail]] = defaultdict(list)
    for ags, kind, sequence, not_after, queued_at, meta in rows:
        day = calendar.local_date(not_after or queued_at)
        history[ags or ""].append(SentMail(kind, sequence, day, covered_of(meta)))
    return history


#: History kind of a mail from another campaign: it counts for the one-mail-a-day rule only.
OTHER_CAMPAIGN = "other_campaign"


def _other_campaigns_today(
    session: Session,
    campaign_id: str,
    ags_list: Sequence[str],
    now: datetime,
    calendar: WorkCalendar,
) -> dict[str, list[SentMail]]:
    """Today's mails to these municipalities from other campaigns (one mail a day in all)."""
    today = calendar.local_date(now)
    start = calendar.local_moment(today, time(0))
    end = calendar.local_moment(today + timedelta(days=1), time(0))
    rows = session.exec(
        select(OutboxMessage.ags).where(
            OutboxMessage.campaign_id != campaign_id,
            col(OutboxMessage.ags).in_(list(ags_list)),
            not_(col(OutboxMessage.is_test)),
            col(OutboxMessage.queued_at) >= start,
            col(OutboxMessage.queued_at) < end,
        )
    ).all()
    found: dict[str, list[SentMail]] = defaultdict(list)
    for ags in rows:
        found[ags or ""].append(SentMail(OTHER_CAMPAIGN, 0, today))
    return found


def covered_of(meta: dict[str, Any] | None) -> tuple[tuple[str, date], ...] | None:
    """The (item key, due) pairs a reminder asked for, from its outbox meta (None: unknown)."""
    pairs = (meta or {}).get(COVERED_META)
    if pairs is None:
        return None
    return tuple((str(key), date.fromisoformat(due)) for key, due in pairs)


def _logged_drops(
    session: Session, campaign_id: str, ids: Sequence[int]
) -> set[tuple[int, str, str | None]]:
    """(enrolment id, ISO day, ISO deadline) of every step already logged as dropped."""
    rows = session.exec(
        select(Event.enrolment_id, Event.data).where(
            Event.campaign_id == campaign_id,
            Event.kind == DROPPED_EVENT,
            col(Event.enrolment_id).in_(list(ids)),
        )
    ).all()
    logged: set[tuple[int, str, str | None]] = set()
    for eid, data in rows:
        if eid is None:
            continue
        for drop in data.get("drops", []):
            logged.add((eid, drop["day"], drop["deadline"]))
        if "drops" not in data:  # logged before steps were kept per deadline
            logged.update((eid, str(day), None) for day in data.get("days", []))
    return logged


@dataclass(frozen=True)
class _CampaignFacts:
    campaign: Campaign
    definition: CampaignDefinition
    collection_deadline: date


def _campaign_facts(campaign: Campaign) -> _CampaignFacts:
    definition = campaign_definition(campaign)
    value = (campaign.dates or {}).get("collection_deadline")
    deadline = (
        date.fromisoformat(value)
        if value
        else campaign.go_live + timedelta(days=definition.dates.collection_deadline)
    )
    return _CampaignFacts(campaign, definition, deadline)


def _decide(
    facts: _CampaignFacts,
    enrolment: Enrolment,
    done: set[str],
    history: list[SentMail],
    now: datetime,
    calendar: WorkCalendar,
) -> tuple[ReminderDecision, int]:
    items = open_items(
        facts.definition,
        stage=enrolment.stage,
        role=enrolment.role,
        is_pilot=enrolment.is_pilot,
        go_live=enrolment.go_live or facts.campaign.go_live,
        collection_deadline=facts.collection_deadline,
        answers_complete=enrolment.answers_complete,
        done_keys=done,
        collection_closed=facts.campaign.collection_closed_at is not None,
    )
    decision = decide_reminder(
        now=now,
        items=items,
        history=history,
        plan=facts.definition.reminders,
        calendar=calendar,
        stage=enrolment.stage,
        status=enrolment.status,
        active_since=calendar.local_date(enrolment.stage_entered_at),
    )
    return decision, len(items)


def _new_drops(
    enrolment: Enrolment, decision: ReminderDecision, logged: set[tuple[int, str, str | None]]
) -> list[DroppedReminder]:
    """The dropped steps of DECISION not logged before."""
    assert enrolment.id is not None
    return [
        d
        for d in decision.dropped
        if (enrolment.id, d.day.isoformat(), d.deadline.isoformat()) not in logged
        and (enrolment.id, d.day.isoformat(), None) not in logged
    ]


def drop_event(
    enrolment: Enrolment, drops: Sequence[DroppedReminder], now: datetime, actor: str
) -> Event:
    """One event for the reminder days of ENROLMENT that passed without a mail."""
    days = ", ".join(sorted({german_date(d.day) for d in drops}, key=_day_key))
    return Event(
        at=now,
        campaign_id=enrolment.campaign_id,
        ags=enrolment.ags,
        enrolment_id=enrolment.id,
        actor=actor,
        kind=EventKind.REMINDER_DROPPED,
        reason=say("service.reminders.dropped", days=days),
        data={
            "days": [d.day.isoformat() for d in drops],
            "reminder_kinds": [d.kind.value for d in drops],
            "deadline": drops[0].deadline.isoformat(),
            "drops": [
                {"day": d.day.isoformat(), "kind": d.kind.value, "deadline": d.deadline.isoformat()}
                for d in drops
            ],
        },
    )


def _queue_all(
    session: Session,
    facts: _CampaignFacts,
    sending: list[tuple[ReminderRow, ReminderDecision, Enrolment, Municipality]],
    now: datetime,
    calendar: WorkCalendar,
) -> list[bool]:
    """Queue the decided mails of a batch in one go; False where nobody could receive it."""
    from efa_rollout.services.compose import MailRequest
    from efa_rollout.services.outbox_batch import NO_RECIPIENT, queue_campaign_mails

    today = calendar.local_date(now)
    requests = []
    for _, decision, enrolment, municipality in sending:
        assert decision.mail_kind is not None and decision.sequence is not None
        requests.append(
            MailRequest(
                enrolment,
                municipality,
                decision.mail_kind,
                decision.sequence,
                extra=decision.mail_extra(today),
                not_after=decision.not_after,
                cc_coordinator=decision.cc_coordinator,
                recipient_roles=(
                    list(decision.recipient_roles) if decision.recipient_roles else None
                ),
                # what this mail asked for, per deadline: the ladder's history (cap, make-up)
                meta={COVERED_META: [[key, due.isoformat()] for key, due in decision.covered]},
            )
        )
    outcomes = queue_campaign_mails(session, campaign=facts.campaign, requests=requests, now=now)
    return [outcome != NO_RECIPIENT for outcome in outcomes]


def process_batch(
    session: Session,
    campaign: Campaign,
    ids: Sequence[int],
    *,
    now: datetime,
    dry_run: bool = False,
    actor: str = DEFAULT_ACTOR,
    calendar: WorkCalendar | None = None,
) -> ReminderReport:
    """Decide and (unless DRY_RUN) queue reminders for the enrolments IDS; flushes only."""
    calendar = calendar or WorkCalendar.from_settings()
    facts = _campaign_facts(campaign)
    report = ReminderReport(campaign.id, dry_run=dry_run)
    candidates = _load_candidates(session, campaign, ids)
    if not candidates:
        return report
    enrolment_ids = [e.id for e, _ in candidates if e.id is not None]
    done = _done_keys(session, enrolment_ids)
    ags_list = [e.ags for e, _ in candidates]
    history = _history(session, campaign.id, ags_list, calendar)
    for ags, other in _other_campaigns_today(session, campaign.id, ags_list, now, calendar).items():
        history[ags].extend(other)
    logged = _logged_drops(session, campaign.id, enrolment_ids)
    sending: list[tuple[ReminderRow, ReminderDecision, Enrolment, Municipality]] = []
    for enrolment, municipality in candidates:
        assert enrolment.id is not None
        decision, open_count = _decide(
            facts, enrolment, done[enrolment.id], history[enrolment.ags], now, calendar
        )
        row = ReminderRow(
            ags=enrolment.ags,
            name=municipality.name,
            open_items=open_count,
            action=decision.action,
            reason=decision.reason,
            sequence=decision.sequence,
            reminder_kind=decision.reminder_kind,
            deadline=decision.deadline,
        )
        report.evaluated += 1
        drops = _new_drops(enrolment, decision, logged)
        if drops and not dry_run:
            session.add(drop_event(enrolment, drops, now, actor))
        row.dropped = len(drops)
        report.dropped += row.dropped
        if decision.action == Action.WAIT:
            report.deferred += 1
        if decision.sends:
            sending.append((row, decision, enrolment, municipality))
        report.rows.append(row)
    queued = (
        [True] * len(sending) if dry_run else _queue_all(session, facts, sending, now, calendar)
    )
    for (row, decision, _, _), ok in zip(sending, queued, strict=True):
        row.queued = ok
        _count_mail(report, decision, ok)
    session.flush()
    return report


def _day_key(text: str) -> str:
    """Sort key for DD.MM.YYYY."""
    return text[6:] + text[3:5] + text[:2]


def _count_mail(report: ReminderReport, decision: ReminderDecision, queued: bool) -> None:
    if not queued:
        report.without_recipient += 1
    elif decision.action == Action.ESCALATE:
        report.escalations += 1
    else:
        report.reminders += 1


def not_running_note(campaign: Campaign) -> str | None:
    """Why a campaign gets no reminders, or None when it is running."""
    if campaign.status == CampaignStatus.RUNNING:
        return None
    return say("service.reminders.not_running", status=campaign.status)


@fewer_collections()
def process_ids(
    engine: Engine,
    campaign_id: str,
    ids: Sequence[int],
    *,
    now: datetime,
    dry_run: bool = False,
    actor: str = DEFAULT_ACTOR,
) -> ReminderReport:
    """One batch in its own transaction (rolled back in a dry run)."""
    with Session(engine, expire_on_commit=False) as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        report = process_batch(session, campaign, ids, now=now, dry_run=dry_run, actor=actor)
        if dry_run:
            session.rollback()
        else:
            session.commit()
    return report
