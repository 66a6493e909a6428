"""The campaign engine as plain functions: create, enrol, advance, override.

Each batch function opens its own transaction, so a batch is the unit a Prefect task retries.
Everything reads and writes the database only: running a function twice changes nothing more.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, func, insert, update
from sqlmodel import Session, col, select

from efa_rollout.db import session_scope
from efa_rollout.definitions import CampaignDefinition, get_definition
from efa_rollout.domain.rules import (
    LIVE_STAGES,
    Facts,
    Timeline,
    due_transitions,
    go_live_blocked,
)
from efa_rollout.domain.stages import EnrolmentStatus, Stage
from efa_rollout.errors import UserError
from efa_rollout.settings import get_settings
from models import Campaign, ChecklistItemState, Enrolment, Event, Municipality, OutboxMessage

CAMPAIGN_STATUS_LABELS = {"created": "angelegt", "running": "läuft", "closed": "abgeschlossen"}


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


def local_today(now: datetime) -> date:
    """The local calendar date of NOW in the configured time zone."""
    return now.astimezone(get_settings().zone).date()


def slugify(text: str) -> str:
    """'Ostalbkreis' → 'ostalbkreis', 'Schwäbisch Hall' → 'schwaebisch-hall'."""
    text = text.lower()
    for umlaut, plain in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        text = text.replace(umlaut, plain)
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


# --- campaigns -------------------------------------------------------------------------------


def area_of(session: Session, area_code: str) -> tuple[str, str | None]:
    """(code, name) of a district (5 digits) or state (2 digits) present in the directory."""
    if not re.fullmatch(r"\d{2}|\d{5}", area_code):
        raise UserError(
            f"»{area_code}« ist kein Kreis- (5 Ziffern) oder Landesschlüssel (2 Ziffern)."
        )
    column = Municipality.district_code if len(area_code) == 5 else Municipality.state_code
    name_column = Municipality.district_name if len(area_code) == 5 else Municipality.state_name
    # max(): PostgreSQL needs an aggregate for the name next to count() (no GROUP BY).
    row = session.exec(select(func.max(name_column), func.count()).where(column == area_code)).one()
    if not row[1]:
        raise UserError(
            f"Im Gemeindeverzeichnis gibt es keine Gemeinden mit dem Schlüssel {area_code}. "
            "Bitte zuerst importieren: efa municipalities import PFAD"
        )
    return area_code, row[0]


def targeted_municipalities(
    session: Session, definition: CampaignDefinition, area_code: str
) -> list[Municipality]:
    """The municipalities of AREA_CODE that DEFINITION's target selects, by AGS."""
    column = Municipality.district_code if len(area_code) == 5 else Municipality.state_code
    query = select(Municipality).where(column == area_code).order_by(col(Municipality.ags))
    if definition.target.exclude_types:
        query = query.where(
            (col(Municipality.type_code).is_(None))
            | col(Municipality.type_code).not_in(definition.target.exclude_types)
        )
    selected = []
    for municipality in session.exec(query):
        if _matches(municipality.attributes or {}, definition.target.where):
            selected.append(municipality)
    return selected


def _matches(attributes: dict[str, Any], where: dict[str, str | list[str]]) -> bool:
    for key, wanted in where.items():
        values = wanted if isinstance(wanted, list) else [wanted]
        if str(attributes.get(key, "")).strip().lower() not in {v.lower() for v in values}:
            return False
    return True


def create_campaign(
    session: Session,
    *,
    definition: CampaignDefinition,
    area_code: str,
    go_live: date,
    now: datetime,
    name: str | None = None,
    date_overrides: dict[str, date] | None = None,
    pilots: Sequence[str] = (),
    actor: str,
) -> Campaign:
    """Create a campaign from DEFINITION for AREA_CODE; refuses an existing name."""
    code, area_name = area_of(session, area_code)
    campaign_id = name or f"{definition.key}-{slugify(area_name or code)}"
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,79}", campaign_id):
        raise UserError(
            f"Kampagnenname »{campaign_id}«: nur Kleinbuchstaben, Ziffern und Bindestriche."
        )
    if session.get(Campaign, campaign_id) is not None:
        raise UserError(
            f"Die Kampagne »{campaign_id}« gibt es schon (efa campaign show {campaign_id})."
        )
    unknown_dates = (
        set(date_overrides or {}) - set(type(definition.dates).model_fields) - {"go_live"}
    )
    if unknown_dates:
        raise UserError(f"Unbekannte Termine: {', '.join(sorted(unknown_dates))}.")
    snapshot = definition.model_dump(mode="json")
    snapshot["target"]["pilots"] = sorted(set(definition.target.pilots) | set(pilots))
    campaign = Campaign(
        id=campaign_id,
        template=definition.key,
        title=definition.title,
        service=definition.service,
        area_code=code,
        area_name=area_name,
        go_live=go_live,
        dates=definition.resolve_dates(go_live, date_overrides),
        definition=snapshot,
        status="created",
        created_at=now,
    )
    session.add(campaign)
    session.add(
        Event(
            at=now,
            campaign_id=campaign_id,
            actor=actor,
            kind="campaign_created",
            reason=f"aus Vorlage {definition.key}, Go-Live {go_live.strftime('%d.%m.%Y')}",
            data={"area": code, "dates": campaign.dates},
        )
    )
    return campaign


def campaign_definition(campaign: Campaign) -> CampaignDefinition:
    """The definition snapshot stored with CAMPAIGN."""
    return CampaignDefinition.model_validate(campaign.definition)


def get_campaign(session: Session, campaign_id: str) -> Campaign:
    """The campaign CAMPAIGN_ID, or a German error listing the known ones."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        known = ", ".join(session.exec(select(Campaign.id).order_by(Campaign.id)).all()) or "keine"
        raise UserError(f"Keine Kampagne »{campaign_id}« (vorhanden: {known}).")
    return campaign


def timeline_of(campaign: Campaign) -> Timeline:
    """The stage rules' view of CAMPAIGN."""
    return Timeline.from_campaign(
        dates=campaign.dates,
        definition=campaign_definition(campaign),
        collection_closed=campaign.collection_closed_at is not None,
    )


def running_campaign_ids(session: Session, only: str | None = None) -> list[str]:
    """IDs of started, not closed campaigns (or just ONLY, checked to exist)."""
    if only:
        get_campaign(session, only)
        return [only]
    query = select(Campaign.id).where(Campaign.status == "running").order_by(Campaign.id)
    return list(session.exec(query).all())


# --- start: enrol and ask for information -----------------------------------------------------


def pending_enrolment_ags(session: Session, campaign: Campaign) -> list[str]:
    """Targeted municipalities not yet enrolled in CAMPAIGN."""
    definition = campaign_definition(campaign)
    targeted = [m.ags for m in targeted_municipalities(session, definition, campaign.area_code)]
    enrolled = set(session.exec(select(Enrolment.ags).where(Enrolment.campaign_id == campaign.id)))
    return [ags for ags in targeted if ags not in enrolled]


def mark_started(engine: Engine, campaign_id: str, *, now: datetime, actor: str) -> bool:
    """Set CAMPAIGN_ID running (once); True when it was not running before."""
    with session_scope(engine) as session:
        campaign = get_campaign(session, campaign_id)
        if campaign.status == "running":
            return False
        if campaign.status == "closed":
            raise UserError(f"Die Kampagne »{campaign_id}« ist abgeschlossen.")
        campaign.status = "running"
        campaign.started_at = now
        session.add(campaign)
        session.add(Event(at=now, campaign_id=campaign_id, actor=actor, kind="campaign_started"))
        return True


def enrol_batch(
    engine: Engine, campaign_id: str, ags_list: Sequence[str], *, now: datetime, actor: str
) -> BatchResult:
    """Enrol AGS_LIST (skipping enrolled ones) with their checklist rows, in one transaction."""
    result = BatchResult()
    with session_scope(engine) as session:
        campaign = get_campaign(session, campaign_id)
        definition = campaign_definition(campaign)
        already = set(
            session.exec(
                select(Enrolment.ags).where(
                    Enrolment.campaign_id == campaign_id, col(Enrolment.ags).in_(ags_list)
                )
            )
        )
        municipalities = session.exec(
            select(Municipality).where(col(Municipality.ags).in_(ags_list))
        ).all()
        new = [m for m in municipalities if m.ags not in already]
        if not new:
            return result
        rows = [_enrolment_row(campaign, definition, m, now) for m in new]
        inserted = session.execute(
            insert(Enrolment).returning(
                Enrolment.id, Enrolment.ags, Enrolment.role, Enrolment.is_pilot
            ),
            rows,
        ).all()
        items, events = [], []
        for enrolment_id, ags, role, is_pilot in inserted:
            for item in definition.items_for(role, is_pilot):
                items.append(
                    {
                        "enrolment_id": enrolment_id,
                        "item_key": item.key,
                        "done": False,
                        "updated_at": now,
                    }
                )
            events.append(
                _event(
                    campaign_id,
                    ags,
                    enrolment_id,
                    actor,
                    now,
                    "enrolled",
                    None,
                    Stage.INFORMATION_COLLECTION,
                    "in die Kampagne aufgenommen",
                )
            )
        if items:
            session.execute(insert(ChecklistItemState), items)
        session.execute(insert(Event), events)
        result.enrolled = len(inserted)
    return result


def _enrolment_row(
    campaign: Campaign, definition: CampaignDefinition, municipality: Municipality, now: datetime
) -> dict[str, Any]:
    attribute = definition.target.role_attribute
    role = (
        str(municipality.attributes.get(attribute))
        if attribute and municipality.attributes.get(attribute)
        else None
    )
    is_pilot = municipality.ags in set(campaign.definition["target"].get("pilots", []))
    required = sum(1 for item in definition.items_for(role, is_pilot) if item.required)
    return {
        "campaign_id": campaign.id,
        "ags": municipality.ags,
        "stage": Stage.INFORMATION_COLLECTION.value,
        "stage_entered_at": now,
        "status": EnrolmentStatus.ACTIVE.value,
        "role": role,
        "role_attributes": {attribute: role} if attribute else {},
        "is_pilot": is_pilot,
        "answers_complete": False,
        "required_open": required,
        "version": 0,
        "updated_at": now,
    }


def _event(
    campaign_id: str,
    ags: str,
    enrolment_id: int | None,
    actor: str,
    now: datetime,
    kind: str,
    from_stage: str | None,
    to_stage: str | None,
    reason: str | None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "at": now,
        "campaign_id": campaign_id,
        "ags": ags,
        "enrolment_id": enrolment_id,
        "actor": actor,
        "kind": kind,
        "from_stage": str(from_stage) if from_stage else None,
        "to_stage": str(to_stage) if to_stage else None,
        "reason": reason,
        "data": data or {},
    }


def enrolment_ids(
    session: Session, campaign_id: str, *, stages: Iterable[Stage] | None = None
) -> list[int]:
    """IDs of CAMPAIGN_ID's enrolments (optionally only in STAGES), in a stable order."""
    query = (
        select(Enrolment.id).where(Enrolment.campaign_id == campaign_id).order_by(col(Enrolment.id))
    )
    if stages is not None:
        query = query.where(col(Enrolment.stage).in_([s.value for s in stages]))
    return [i for i in session.exec(query) if i is not None]


def queue_information_requests(
    engine: Engine, campaign_id: str, ids: Sequence[int], *, now: datetime
) -> BatchResult:
    """Queue the information request to every active enrolment of IDS still collecting."""
    return _queue_kind(
        engine,
        campaign_id,
        ids,
        now=now,
        kind="information_request",
        stages={Stage.INFORMATION_COLLECTION},
    )


def _queue_kind(
    engine: Engine,
    campaign_id: str,
    ids: Sequence[int],
    *,
    now: datetime,
    kind: str,
    stages: set[Stage],
) -> BatchResult:
    from efa_rollout.mail.outbox import queue_campaign_mail

    result = BatchResult()
    with session_scope(engine) as session:
        campaign = get_campaign(session, campaign_id)
        for enrolment, municipality in _load_batch(session, ids):
            if enrolment.status != EnrolmentStatus.ACTIVE or Stage(enrolment.stage) not in stages:
                continue
            queued = queue_campaign_mail(
                session,
                campaign=campaign,
                enrolment=enrolment,
                municipality=municipality,
                kind=kind,
                sequence=1,
                now=now,
            )
            result.mails_queued += queued is not None
    return result


def _load_batch(
    session: Session, ids: Sequence[int], *, lock: bool = False
) -> list[tuple[Enrolment, Municipality]]:
    query = (
        select(Enrolment, Municipality)
        .join(Municipality, col(Municipality.ags) == col(Enrolment.ags))
        .where(col(Enrolment.id).in_(ids))
        .order_by(col(Enrolment.id))
    )
    if lock:
        # PostgreSQL: concurrent ticks skip each other's batches; SQLite: BEGIN IMMEDIATE already.
        query = query.with_for_update(skip_locked=True, of=Enrolment)
    return [(e, m) for e, m in session.exec(query)]


# --- the tick: evaluate and apply due transitions -------------------------------------------


def facts_of(enrolment: Enrolment, *, summary_received: bool) -> Facts:
    """The rules' view of ENROLMENT."""
    return Facts(
        stage=Stage(enrolment.stage),
        status=EnrolmentStatus(enrolment.status),
        is_pilot=enrolment.is_pilot,
        answers_complete=enrolment.answers_complete,
        required_open=enrolment.required_open,
        summary_received=summary_received,
        own_go_live=enrolment.go_live,
    )


#: What the tick reads per enrolment: plain columns, no ORM objects (10,000+ rows per tick).
_TICK_COLUMNS = (
    Enrolment.id,
    Enrolment.ags,
    Enrolment.stage,
    Enrolment.status,
    Enrolment.is_pilot,
    Enrolment.answers_complete,
    Enrolment.required_open,
    Enrolment.go_live,
    Enrolment.version,
    Municipality.name,
)


def _load_tick_rows(session: Session, ids: Sequence[int]) -> list[Any]:
    """The batch's rows, locked (PostgreSQL: rows another tick holds are skipped)."""
    query = (
        select(*_TICK_COLUMNS)
        .join(Municipality, col(Municipality.ags) == col(Enrolment.ags))
        .where(col(Enrolment.id).in_(ids))
        .order_by(col(Enrolment.id))
        # PostgreSQL: concurrent ticks skip each other's batches; SQLite: BEGIN IMMEDIATE already.
        .with_for_update(skip_locked=True, of=Enrolment)
    )
    return list(session.execute(query).all())


def advance_batch(
    engine: Engine,
    campaign_id: str,
    ids: Sequence[int],
    *,
    now: datetime,
    actor: str,
    include_go_live: bool,
    send_latest_summary: bool = True,
) -> BatchResult:
    """Apply every due transition to the enrolments IDS, with events and mails, atomically."""
    result = BatchResult()
    today = local_today(now)
    with session_scope(engine) as session:
        campaign = get_campaign(session, campaign_id)
        timeline = timeline_of(campaign)
        rows = _load_tick_rows(session, ids)
        with_summary = _ags_with_mail(session, campaign_id, [r.ags for r in rows], "summary")
        events: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        stage_now: dict[int, str] = {}
        for row in rows:
            facts = Facts(
                stage=Stage(row.stage),
                status=EnrolmentStatus(row.status),
                is_pilot=row.is_pilot,
                answers_complete=row.answers_complete,
                required_open=row.required_open,
                summary_received=row.ags in with_summary,
                own_go_live=row.go_live,
            )
            transitions = due_transitions(facts, timeline, today, include_go_live=include_go_live)
            if go_live_blocked(facts, timeline, today):
                result.blocked.append(row.ags)
            stage_now[row.id] = row.stage
            if not transitions:
                continue
            stage_now[row.id] = transitions[-1].to_stage.value
            updates.append(
                {
                    "id": row.id,
                    "stage": stage_now[row.id],
                    "stage_entered_at": now,
                    "version": row.version + 1,  # the row is locked: no lost update
                    "updated_at": now,
                }
            )
            for step in transitions:
                events.append(
                    _event(
                        campaign_id,
                        row.ags,
                        row.id,
                        actor,
                        now,
                        "stage_changed",
                        step.from_stage,
                        step.to_stage,
                        step.reason,
                    )
                )
                result.changes.append(
                    Change(row.ags, row.name, step.from_stage, step.to_stage, step.reason)
                )
        if updates:
            session.execute(update(Enrolment), updates)  # bulk UPDATE by primary key
        if events:
            session.execute(insert(Event), events)
        live = [
            (row.id, row.ags, Stage(stage_now[row.id]), row.go_live)
            for row in rows
            if row.status == EnrolmentStatus.ACTIVE and Stage(stage_now[row.id]) in LIVE_STAGES
        ]
        result.mails_queued += _queue_stage_mail(session, campaign, live, now=now, today=today)
        if send_latest_summary:
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
        col(OutboxMessage.ags).in_(ags),
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
    from efa_rollout.mail.outbox import queue_campaign_mail

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
                col(OutboxMessage.ags).in_({ags for _, ags, _ in wanted}),
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
        for enrolment, municipality in _load_batch(session, sorted({i for i, _, _ in missing}))
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
    from efa_rollout.summary import latest_summary, queue_summary_mail

    document = latest_summary(session, campaign.id)
    if document is None:
        return 0
    queued = 0
    for enrolment, municipality in _load_batch(session, waiting):
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


# --- overrides by the coordinator -----------------------------------------------------------


def set_stage(
    session: Session, enrolment: Enrolment, stage: Stage, *, reason: str, actor: str, now: datetime
) -> Event:
    """Move ENROLMENT to STAGE by hand (logged as an override)."""
    campaign = get_campaign(session, enrolment.campaign_id)
    definition = campaign_definition(campaign)
    if stage not in definition.stages:
        allowed = ", ".join(s.value for s in definition.ordered_stages())
        raise UserError(
            f"Die Stufe »{stage}« gibt es in dieser Kampagne nicht (möglich: {allowed})."
        )
    event = Event(
        at=now,
        campaign_id=enrolment.campaign_id,
        ags=enrolment.ags,
        enrolment_id=enrolment.id,
        actor=actor,
        kind="stage_changed",
        from_stage=enrolment.stage,
        to_stage=stage.value,
        reason=reason,
        data={"override": True},
    )
    enrolment.stage = stage.value
    enrolment.stage_entered_at = now
    enrolment.version += 1
    enrolment.updated_at = now
    session.add(enrolment)
    session.add(event)
    return event


def set_status(
    session: Session,
    enrolment: Enrolment,
    status: EnrolmentStatus,
    *,
    reason: str,
    actor: str,
    now: datetime,
) -> Event | None:
    """Pause, resume or exclude ENROLMENT (logged); None when nothing changes."""
    if enrolment.status == status.value:
        return None
    event = Event(
        at=now,
        campaign_id=enrolment.campaign_id,
        ags=enrolment.ags,
        enrolment_id=enrolment.id,
        actor=actor,
        kind="status_changed",
        reason=reason,
        data={"from": enrolment.status, "to": status.value, "override": True},
    )
    enrolment.status = status.value
    enrolment.version += 1
    enrolment.updated_at = now
    session.add(enrolment)
    session.add(event)
    return event


def get_enrolment(session: Session, campaign_id: str, ags: str) -> Enrolment:
    """The enrolment of AGS in CAMPAIGN_ID, or a German error."""
    get_campaign(session, campaign_id)
    enrolment = session.exec(
        select(Enrolment).where(Enrolment.campaign_id == campaign_id, Enrolment.ags == ags)
    ).first()
    if enrolment is None:
        raise UserError(f"Die Gemeinde {ags} nimmt an der Kampagne »{campaign_id}« nicht teil.")
    return enrolment


def stage_counts(session: Session, campaign_id: str) -> dict[str, int]:
    """Active enrolments per stage (a quick roll-up for CLI output)."""
    query = (
        select(Enrolment.stage, func.count())
        .where(
            Enrolment.campaign_id == campaign_id, Enrolment.status == EnrolmentStatus.ACTIVE.value
        )
        .group_by(Enrolment.stage)
    )
    return {stage: count for stage, count in session.exec(query)}


def utc(moment: datetime | None) -> datetime:
    """MOMENT (or now) as aware UTC."""
    return (moment or datetime.now(UTC)).astimezone(UTC)


__all__ = [
    "BatchResult",
    "Change",
    "advance_batch",
    "create_campaign",
    "enrol_batch",
    "get_campaign",
    "get_definition",
]


def close_collection(session: Session, campaign_id: str, *, now: datetime, actor: str) -> bool:
    """The coordinator closes information collection (once); True when it was open."""
    campaign = get_campaign(session, campaign_id)
    if campaign.collection_closed_at is not None:
        return False
    campaign.collection_closed_at = now
    session.add(campaign)
    session.add(
        Event(
            at=now,
            campaign_id=campaign_id,
            actor=actor,
            kind="collection_closed",
            reason="Informationserhebung geschlossen",
        )
    )
    return True
