"""Campaign use cases: targeting, creation, start and closing the information collection."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from efa_rollout.db import session_scope
from efa_rollout.definitions import CampaignDefinition
from efa_rollout.domain.audit import EventKind
from efa_rollout.domain.stages import CampaignStatus
from efa_rollout.domain.text import german_date
from efa_rollout.errors import UserError
from efa_rollout.services.lookup import campaign_definition, get_campaign
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
    targeted = [m.ags for m in targeted_municipalities(session, definition, campaign.area_code)]
    enrolled = set(session.exec(select(Enrolment.ags).where(Enrolment.campaign_id == campaign.id)))
    return [ags for ags in targeted if ags not in enrolled]


def mark_started(engine: Engine, campaign_id: str, *, now: datetime, actor: str) -> bool:
    """Set CAMPAIGN_ID running (once); True when it was not running before."""
    with session_scope(engine) as session:
        campaign = get_campaign(session, campaign_id)
        if campaign.status == CampaignStatus.RUNNING:
            return False
        if campaign.status == CampaignStatus.CLOSED:
            raise UserError(f"Die Kampagne »{campaign_id}« ist abgeschlossen.")
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
