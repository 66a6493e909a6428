"""Progression (the tick): apply due stage transitions per batch, with events and stage mail."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from efa_rollout.db import session_scope
from efa_rollout.domain.audit import EventKind, event_row
from efa_rollout.domain.rules import (
    LIVE_STAGES,
    Facts,
    Timeline,
    Transition,
    due_transitions,
    go_live_blocked,
)
from efa_rollout.domain.stages import EnrolmentStatus, Stage
from efa_rollout.services import progression_sql
from efa_rollout.services.clock import local_today
from efa_rollout.services.lookup import get_campaign, load_batch, timeline_of
from models import Campaign, Enrolment, Municipality, OutboxMessage


@dataclass
class Change:
    """One applied transition, for artifacts and CLI output."""

    ags: str
    name: str
    from_stage: str
    to_stage: str
    reason: str

    def as_row(self) -> dict[str, str]:
        """A row for table artifacts (German headers)."""
        return {
            "AGS": self.ags,
            "Gemeinde": self.name,
            "von": Stage(self.from_stage).label,
            "nach": Stage(self.to_stage).label,
            "Grund": self.reason,
        }


@dataclass(frozen=True)
class AdvanceOptions:
    """How a tick advances its batches: who acts, whether go-live is due, summary mails."""

    actor: str
    include_go_live: bool
    send_latest_summary: bool = True


@dataclass
class BatchResult:
    """What a batch did."""

    enrolled: int = 0
    mails_queued: int = 0
    changes: list[Change] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def merge(self, other: BatchResult) -> BatchResult:
        """Add OTHER's figures to this one."""
        self.enrolled += other.enrolled
        self.mails_queued += other.mails_queued
        self.changes.extend(other.changes)
        self.blocked.extend(other.blocked)
        return self


#: What the tick reads per enrolment: plain columns, no ORM objects (10,000+ rows per tick).
_TICK_COLUMNS = (
    col(Enrolment.id),
    col(Enrolment.ags),
    col(Enrolment.stage),
    col(Enrolment.status),
    col(Enrolment.is_pilot),
    col(Enrolment.answers_complete),
    col(Enrolment.required_open),
    col(Enrolment.go_live),
    col(Enrolment.version),
    col(Municipality.name),
)


def _load_tick_rows(session: Session, ids: Sequence[int]) -> list[Any]:
    """The batch's rows, locked (PostgreSQL: rows another tick holds are skipped)."""
    query = (
        core_select(*_TICK_COLUMNS)  # sqlmodel's select is typed for up to four columns
        .join(Municipality, col(Municipality.ags) == col(Enrolment.ags))
        .where(progression_sql.among(session, col(Enrolment.id), ids))
        .order_by(col(Enrolment.id))
        # PostgreSQL: concurrent ticks skip each other's batches; SQLite: BEGIN IMMEDIATE already.
        .with_for_update(skip_locked=True, of=Enrolment)
    )
    return list(session.connection().execute(query).all())  # Core rows: no ORM result work


class _Decisions:
    """The rules' verdict for a tick row: computed once per distinct set of facts.

    Most of a batch shares its facts (same stage, no answers yet, ...), so the rules run a
    handful of times per batch instead of once per enrolment.
    """

    def __init__(self, timeline: Timeline, today: date, include_go_live: bool) -> None:
        self._timeline, self._today, self._include_go_live = timeline, today, include_go_live
        self._seen: dict[tuple[Any, ...], tuple[list[Transition], bool]] = {}

    def __call__(self, row: Any, summary_received: bool) -> tuple[list[Transition], bool]:
        """(the due transitions, whether go-live is blocked) for ROW."""
        key = (
            row.stage,
            row.status,
            row.is_pilot,
            row.answers_complete,
            row.required_open,
            summary_received,
            row.go_live,
        )
        found = self._seen.get(key)
        if found is None:
            facts = Facts(
                stage=Stage(row.stage),
                status=EnrolmentStatus(row.status),
                is_pilot=row.is_pilot,
                answers_complete=row.answers_complete,
                required_open=row.required_open,
                summary_received=summary_received,
                own_go_live=row.go_live,
            )
            timeline, today = self._timeline, self._today
            found = self._seen[key] = (
                due_transitions(facts, timeline, today, include_go_live=self._include_go_live),
                go_live_blocked(facts, timeline, today),
            )
        return found


def advance_batch(
    engine: Engine,
    campaign_id: str,
    ids: Sequence[int],
    *,
    now: datetime,
    options: AdvanceOptions,
) -> BatchResult:
    """Apply every due transition to the enrolments IDS, with events and mails, atomically."""
    actor, include_go_live = options.actor, options.include_go_live
    result = BatchResult()
    today = local_today(now)
    with session_scope(engine) as session:
        campaign = get_campaign(session, campaign_id)
        timeline = timeline_of(campaign)
        rows = _load_tick_rows(session, ids)
        with_summary = _ags_with_mail(session, campaign_id, [r.ags for r in rows], "summary")
        events: list[dict[str, Any]] = []
        moved: dict[str, list[int]] = {}  # target stage → enrolment ids
        stage_now: dict[int, str] = {}
        decide = _Decisions(timeline, today, include_go_live)
        for row in rows:
            transitions, blocked = decide(row, row.ags in with_summary)
            if blocked:
                result.blocked.append(row.ags)
            stage_now[row.id] = row.stage
            if not transitions:
                continue
            stage_now[row.id] = transitions[-1].to_stage.value
            moved.setdefault(stage_now[row.id], []).append(row.id)
            for step in transitions:
                events.append(
                    event_row(
                        campaign_id,
                        row.ags,
                        row.id,
                        actor,
                        now,
                        EventKind.STAGE_CHANGED,
                        step.from_stage,
                        step.to_stage,
                        step.reason,
                    )
                )
                result.changes.append(
                    Change(row.ags, row.name, step.from_stage, step.to_stage, step.reason)
                )
        for stage, moved_ids in moved.items():
            progression_sql.move(session, stage, moved_ids, now)
        progression_sql.insert_events(session, events)
        live = [
            (row.id, row.ags, Stage(stage_now[row.id]), row.go_live)
            for row in rows
            # Stage is a StrEnum: the stored value is found in LIVE_STAGES as it is.
            if row.status == EnrolmentStatus.ACTIVE and stage_now[row.id] in LIVE_STAGES
        ]
        result.mails_queued += _queue_stage_mail(session, campaign, live, now=now, today=today)
        if options.send_latest_summary:
            waiting = [
                row.id
                for row in rows
                if row.status == EnrolmentStatus.ACTIVE
                and stage_now[row.id] == Stage.SUMMARY_DISTRIBUTION
                and row.ags not in with_summary
            ]
            result.mails_queued += _queue_latest_summary(session, campaign, waiting, now=now)
    return result


def _ags_with_mail(session: Session, campaign_id: str, ags: Sequence[str], kind: str) -> set[str]:
    query = select(OutboxMessage.ags).where(
        OutboxMessage.campaign_id == campaign_id,
        OutboxMessage.kind == kind,
        progression_sql.among(session, col(OutboxMessage.ags), ags),
        col(OutboxMessage.status) != "cancelled",
    )
    return {a for a in session.exec(query) if a}


#: Days after go-live when the after-care question goes out (or the end of after-care).
AFTER_CARE_QUESTION_DAY = 14


def _queue_stage_mail(
    session: Session,
    campaign: Campaign,
    live: list[tuple[int, str, Stage, date | None]],
    *,
    now: datetime,
    today: date,
) -> int:
    """Mail that belongs to a stage: go-live notice once live, after-care question later.

    LIVE: (enrolment id, AGS, stage, own go-live) of the batch's active, live enrolments.
    """
    from efa_rollout.services.outbox import queue_campaign_mail

    timeline = timeline_of(campaign)
    wanted: list[tuple[int, str, str]] = []
    for enrolment_id, ags, stage, own_go_live in live:
        wanted.append((enrolment_id, ags, "go_live"))
        if stage == Stage.AFTER_CARE:
            live_since = own_go_live or timeline.go_live
            question_day = min(
                AFTER_CARE_QUESTION_DAY, timeline.after_care_days or AFTER_CARE_QUESTION_DAY
            )
            if (today - live_since).days >= question_day:
                wanted.append((enrolment_id, ags, "after_care"))
    if not wanted:
        return 0
    # One query for the whole batch instead of one per municipality and kind: once a campaign
    # is live, every tick asks this for every enrolment (queue_campaign_mail checks again).
    existing = set(
        session.exec(
            select(OutboxMessage.ags, OutboxMessage.kind).where(
                OutboxMessage.campaign_id == campaign.id,
                progression_sql.among(
                    session, col(OutboxMessage.ags), sorted({a for _, a, _ in wanted})
                ),
                col(OutboxMessage.kind).in_({kind for _, _, kind in wanted}),
                OutboxMessage.sequence == 1,
            )
        )
    )
    missing = [(i, ags, kind) for i, ags, kind in wanted if (ags, kind) not in existing]
    if not missing:
        return 0
    objects = {
        enrolment.id: (enrolment, municipality)
        for enrolment, municipality in load_batch(session, sorted({i for i, _, _ in missing}))
    }
    queued = 0
    for enrolment_id, _ags, kind in missing:
        enrolment, municipality = objects[enrolment_id]
        message = queue_campaign_mail(
            session,
            campaign=campaign,
            enrolment=enrolment,
            municipality=municipality,
            kind=kind,
            sequence=1,
            now=now,
        )
        queued += message is not None
    return queued


def _queue_latest_summary(
    session: Session, campaign: Campaign, waiting: list[int], *, now: datetime
) -> int:
    """Late arrivals in summary_distribution get the latest summary that already went out.

    WAITING: enrolment ids in that stage without any summary. A new version is only ever made
    by the summary flow (the coordinator's step), so this never re-sends anything.
    """
    if not waiting:
        return 0
    from efa_rollout.services.summary import latest_summary, queue_summary_mail

    document = latest_summary(session, campaign.id)
    if document is None:
        return 0
    queued = 0
    for enrolment, municipality in load_batch(session, waiting):
        message = queue_summary_mail(
            session,
            campaign=campaign,
            enrolment=enrolment,
            municipality=municipality,
            document=document,
            now=now,
        )
        queued += message is not None
    return queued
