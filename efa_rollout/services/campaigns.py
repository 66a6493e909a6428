"""Campaign use cases: targeting, creation, start and closing the information collection."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from efa_rollout import texts
from efa_rollout.db import session_scope
from efa_rollout.definitions import CampaignDefinition
from efa_rollout.domain.audit import EventKind
from efa_rollout.domain.stages import CampaignStatus
from efa_rollout.domain.text import german_date
from efa_rollout.errors import UserError
from efa_rollout.services.lookup import campaign_definition, get_campaign
from efa_rollout.texts import say
from models import Campaign, Enrolment, Event, Municipality


def slugify(text: str) -> str:
    """'Ostalbkreis' → 'ostalbkreis', 'Schwäbisch Hall' → 'schwaebisch-hall'."""
    text = text.lower()
    for umlaut, plain in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        text = text.replace(umlaut, plain)
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def area_of(session: Session, area_code: str) -> tuple[str, str | None]:
    """(code, name) of a district (5 digits) or state (2 digits) present in the directory."""
    if not re.fullmatch(r"\d{2}|\d{5}", area_code):
        raise UserError(say("service.campaigns.area_invalid", area=area_code))
    column = Municipality.district_code if len(area_code) == 5 else Municipality.state_code
    name_column = Municipality.district_name if len(area_code) == 5 else Municipality.state_name
    # max(): PostgreSQL needs an aggregate for the name next to count() (no GROUP BY).
    row = session.exec(select(func.max(name_column), func.count()).where(column == area_code)).one()
    if not row[1]:
        raise UserError(say("service.campaigns.area_empty", area=area_code))
    return area_code, row[0]


def _target_filter(definition: CampaignDefinition, area_code: str) -> list[Any]:
    """The SQL part of the target: the area and the excluded municipality types."""
    column = Municipality.district_code if len(area_code) == 5 else Municipality.state_code
    conditions: list[Any] = [column == area_code]
    if definition.target.exclude_types:
        conditions.append(
            (col(Municipality.type_code).is_(None))
            | col(Municipality.type_code).not_in(definition.target.exclude_types)
        )
    return conditions


def targeted_municipalities(
    session: Session, definition: CampaignDefinition, area_code: str
) -> list[Municipality]:
    """The municipalities of AREA_CODE that DEFINITION's target selects, by AGS."""
    query = (
        select(Municipality)
        .where(*_target_filter(definition, area_code))
        .order_by(col(Municipality.ags))
    )
    where = definition.target.where
    return [m for m in session.exec(query) if _matches(m.attributes or {}, where)]


def targeted_ags(session: Session, definition: CampaignDefinition, area_code: str) -> list[str]:
    """The AGS of `targeted_municipalities`, read as two columns (no ORM object per row)."""
    query = (
        select(Municipality.ags, Municipality.attributes)
        .where(*_target_filter(definition, area_code))
        .order_by(col(Municipality.ags))
    )
    where = definition.target.where
    return [ags for ags, attributes in session.exec(query) if _matches(attributes or {}, where)]


def first_targeted(
    session: Session, definition: CampaignDefinition, area_code: str
) -> Municipality | None:
    """The first of `targeted_municipalities` (by AGS); one row read when no attribute filter."""
    if definition.target.where:
        return next(iter(targeted_municipalities(session, definition, area_code)), None)
    query = (
        select(Municipality)
        .where(*_target_filter(definition, area_code))
        .order_by(col(Municipality.ags))
    )
    return session.exec(query.limit(1)).first()


def _matches(attributes: Mapping[str, Any], where: dict[str, str | list[str]]) -> bool:
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
    allow_past: bool = False,
) -> Campaign:
    """Create a campaign from DEFINITION for AREA_CODE; refuses what cannot work.

    Refused (German message naming what): an existing name, unknown area or date keys, a
    target without municipalities, pilots not in the directory or not in the target, and a
    go-live before NOW unless ALLOW_PAST (catching up a rollout that already happened).
    Dates already past are not refused: `past_dates` lists them as a warning.
    """
    code, area_name = area_of(session, area_code)
    campaign_id = name or f"{definition.key}-{slugify(area_name or code)}"
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,79}", campaign_id):
        raise UserError(say("service.campaigns.name_invalid", campaign=campaign_id))
    if session.get(Campaign, campaign_id) is not None:
        raise UserError(say("service.campaigns.exists", campaign=campaign_id))
    unknown_dates = (
        set(date_overrides or {}) - set(type(definition.dates).model_fields) - {"go_live"}
    )
    if unknown_dates:
        raise UserError(
            say("service.campaigns.dates_unknown", dates=", ".join(sorted(unknown_dates)))
        )
    today = _today(now)
    if go_live < today and not allow_past:
        raise UserError(
            say(
                "service.campaigns.go_live_past",
                go_live=german_date(go_live),
                today=german_date(today),
            ),
            details=[say("service.campaigns.go_live_past_hint")],
        )
    targeted = targeted_ags(session, definition, code)
    if not targeted:
        raise UserError(
            say(
                "service.campaigns.no_target",
                template=definition.key,
                area=area_name or code,
                code=code,
            ),
            details=[
                say(
                    "service.campaigns.target",
                    where=definition.target.where or say("service.campaigns.target_all"),
                )
            ],
        )
    _check_pilots(session, pilots, set(targeted), definition.key, area_name or code)
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
        status=CampaignStatus.CREATED,
        created_at=now,
    )
    session.add(campaign)
    session.add(
        Event(
            at=now,
            campaign_id=campaign_id,
            actor=actor,
            kind=EventKind.CAMPAIGN_CREATED,
            reason=f"aus Vorlage {definition.key}, Go-Live {german_date(go_live)}",
            data={"area": code, "dates": campaign.dates},
        )
    )
    return campaign


def pending_enrolment_ags(session: Session, campaign: Campaign) -> list[str]:
    """Targeted municipalities not yet enrolled in CAMPAIGN."""
    definition = campaign_definition(campaign)
    targeted = targeted_ags(session, definition, campaign.area_code)
    enrolled = set(session.exec(select(Enrolment.ags).where(Enrolment.campaign_id == campaign.id)))
    return [ags for ags in targeted if ags not in enrolled]


def mark_started(engine: Engine, campaign_id: str, *, now: datetime, actor: str) -> bool:
    """Set CAMPAIGN_ID running (once); True when it was not running before."""
    with session_scope(engine) as session:
        campaign = get_campaign(session, campaign_id)
        if campaign.status == CampaignStatus.RUNNING:
            return False
        if campaign.status == CampaignStatus.CLOSED:
            raise UserError(say("service.campaigns.closed", campaign=campaign_id))
        campaign.status = CampaignStatus.RUNNING
        campaign.started_at = now
        session.add(campaign)
        session.add(
            Event(at=now, campaign_id=campaign_id, actor=actor, kind=EventKind.CAMPAIGN_STARTED)
        )
        return True


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
            kind=EventKind.COLLECTION_CLOSED,
            reason="Informationserhebung geschlossen",
        )
    )
    return True


def _today(now: datetime) -> date:
    from efa_rollout.settings import get_settings

    return now.astimezone(get_settings().zone).date()


def _check_pilots(
    session: Session, pilots: Sequence[str], targeted: set[str], template: str, area: str
) -> None:
    """Every pilot exists in the directory and is in the campaign's target."""
    problems = []
    for ags in pilots:
        municipality = session.get(Municipality, ags)
        if municipality is None:
            problems.append(say("service.campaigns.pilot_unknown", ags=ags))
        elif ags not in targeted:
            problems.append(
                say(
                    "service.campaigns.pilot_outside",
                    ags=ags,
                    name=municipality.name,
                    template=template,
                    area=area,
                )
            )
    if problems:
        raise UserError(say("service.campaigns.pilots_invalid"), details=problems)


#: The definition's key dates as the coordinator reads them (templates/texts/domain.ini).
_DATE_LABELS: Mapping[str, str] = texts.table("campaign_date")


def past_dates(campaign: Campaign, now: datetime) -> list[str]:
    """Key dates of CAMPAIGN already before NOW, as German lines (a warning at creation)."""
    today = _today(now)
    lines = []
    entries = [("go_live", campaign.go_live.isoformat())]
    for key, value in (campaign.dates or {}).items():
        for day in value if isinstance(value, list) else [value]:
            if day:
                entries.append((key, str(day)))
    for key, day in sorted(entries, key=lambda e: e[1]):
        if date.fromisoformat(day[:10]) < today:
            lines.append(f"{_DATE_LABELS.get(key, key)}: {german_date(day)}")
    return lines


def _log(
    session: Session, campaign: Campaign, kind: EventKind, reason: str, now: datetime, actor: str
) -> None:
    session.add(Event(at=now, campaign_id=campaign.id, actor=actor, kind=kind, reason=reason))


def close_campaign(
    session: Session, campaign_id: str, *, now: datetime, actor: str, reason: str
) -> Campaign:
    """Close a campaign (done): no more mails, the portal becomes read-only; logged."""
    campaign = get_campaign(session, campaign_id)
    if campaign.status in (CampaignStatus.CLOSED, CampaignStatus.CANCELLED):
        label = CampaignStatus(campaign.status).label
        raise UserError(say("service.campaigns.already", campaign=campaign_id, status=label))
    campaign.status = CampaignStatus.CLOSED
    session.add(campaign)
    _log(session, campaign, EventKind.CAMPAIGN_CLOSED, reason, now, actor)
    return campaign


def cancel_campaign(
    session: Session, campaign_id: str, *, now: datetime, actor: str, reason: str
) -> tuple[Campaign, int]:
    """Cancel a campaign: closed, and mails not yet sent are cancelled; (campaign, cancelled)."""
    from models import OutboxMessage

    campaign = get_campaign(session, campaign_id)
    if campaign.status in (CampaignStatus.CLOSED, CampaignStatus.CANCELLED):
        label = CampaignStatus(campaign.status).label
        raise UserError(say("service.campaigns.already", campaign=campaign_id, status=label))
    pending = session.exec(
        select(OutboxMessage).where(
            OutboxMessage.campaign_id == campaign_id,
            col(OutboxMessage.status).in_(("queued", "retrying")),
        )
    ).all()
    for row in pending:
        row.status = "cancelled"
        row.next_attempt_at = None
        session.add(row)
    campaign.status = CampaignStatus.CANCELLED
    session.add(campaign)
    _log(
        session,
        campaign,
        EventKind.CAMPAIGN_CANCELLED,
        say("service.campaigns.cancelled", reason=reason, count=len(pending)),
        now,
        actor,
    )
    return campaign, len(pending)


def delete_campaign(session: Session, campaign_id: str, *, now: datetime, actor: str) -> None:
    """Delete a campaign that has sent nothing yet (a mistake at creation); logged.

    Its enrolments, answers, ticks, links, summaries and unsent mails go; the event log
    stays (with the deletion as its last entry).
    """
    from sqlalchemy import delete

    from models import (
        ChecklistItemState,
        DeliveryAttempt,
        OutboxMessage,
        PortalToken,
        QuestionnaireResponse,
        SummaryDocument,
        table_of,
    )

    campaign = get_campaign(session, campaign_id)
    sent = session.exec(
        select(func.count())
        .select_from(OutboxMessage)
        .where(
            OutboxMessage.campaign_id == campaign_id,
            col(OutboxMessage.status).not_in(("queued", "cancelled")),
        )
    ).one()
    if sent:
        raise UserError(
            say("service.campaigns.not_deletable", campaign=campaign_id, sent=sent),
            details=[say("service.campaigns.cancel_instead", campaign=campaign_id)],
        )
    ids = list(session.exec(select(Enrolment.id).where(Enrolment.campaign_id == campaign_id)))
    outbox_ids = list(
        session.exec(select(OutboxMessage.id).where(OutboxMessage.campaign_id == campaign_id))
    )
    attempts = table_of(DeliveryAttempt)
    session.execute(delete(attempts).where(attempts.c.outbox_id.in_(outbox_ids)))
    for rows in map(table_of, (ChecklistItemState, QuestionnaireResponse)):
        session.execute(delete(rows).where(rows.c.enrolment_id.in_(ids)))
    for rows in map(table_of, (OutboxMessage, PortalToken, SummaryDocument, Enrolment)):
        session.execute(delete(rows).where(rows.c.campaign_id == campaign_id))
    session.delete(campaign)
    session.add(
        Event(
            at=now,
            campaign_id=campaign_id,
            actor=actor,
            kind=EventKind.CAMPAIGN_DELETED,
            reason=say("service.campaigns.deleted", count=len(ids)),
        )
    )
