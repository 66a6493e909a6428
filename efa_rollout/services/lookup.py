"""Lookups of stored entities: a campaign, its definition snapshot, enrolments, with German errors."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import func
from sqlmodel import Session, col, select

from efa_rollout.domain.rules import (
    Timeline,
)
from efa_rollout.domain.stages import CampaignStatus, EnrolmentStatus, Stage
from efa_rollout.errors import UserError
from efa_rollout.texts import say
from models import (
    Campaign,
    Enrolment,
    Municipality,
)

if TYPE_CHECKING:
    from efa_rollout.definitions import CampaignDefinition


def campaign_definition(campaign: Campaign) -> CampaignDefinition:
    """The definition snapshot stored with CAMPAIGN (the current template when there is none)."""
    # Imported here: read-only commands that never parse a definition skip pydantic's models.
    from efa_rollout.definitions import STORED, CampaignDefinition, get_definition

    if campaign.definition:
        return CampaignDefinition.model_validate(campaign.definition, context={STORED: True})
    return get_definition(campaign.template)


def all_campaigns(session: Session) -> list[Campaign]:
    """Every campaign, by id."""
    return list(session.exec(select(Campaign).order_by(col(Campaign.id))).all())


def get_campaign(session: Session, campaign_id: str) -> Campaign:
    """The campaign CAMPAIGN_ID, or the one German error listing the known ones."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        known = session.exec(select(Campaign.id).order_by(col(Campaign.id))).all()
        raise UserError(
            say("service.lookup.campaign_unknown", campaign=campaign_id),
            details=[
                say(
                    "service.lookup.campaigns_known",
                    known=", ".join(known) or say("service.lookup.no_campaigns"),
                )
            ],
        )
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
    query = (
        select(Campaign.id).where(Campaign.status == CampaignStatus.RUNNING).order_by(Campaign.id)
    )
    return list(session.exec(query).all())


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


def load_batch(
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


def find_enrolment(session: Session, campaign_id: str, ags: str) -> Enrolment:
    """The enrolment of AGS in CAMPAIGN_ID; a German UserError when there is none."""
    code = ags.strip()
    if code.isdigit() and len(code) == 7:
        code = code.zfill(8)  # Excel lost the leading zero
    if not (code.isdigit() and len(code) == 8):
        raise UserError(say("service.lookup.ags_invalid", ags=ags))
    get_campaign(session, campaign_id)
    enrolment = session.exec(
        select(Enrolment).where(Enrolment.campaign_id == campaign_id, Enrolment.ags == code)
    ).first()
    if enrolment is None:
        municipality = session.get(Municipality, code)
        who = (
            say("service.lookup.municipality", name=municipality.name, ags=code)
            if municipality
            else say("service.lookup.municipality_key", ags=code)
        )
        raise UserError(say("service.lookup.not_enrolled", who=who, campaign=campaign_id))
    return enrolment


def enrolment_stages(session: Session, campaign_id: str) -> list[tuple[str, str, str, str]]:
    """(AGS, name, stage, status) of every enrolment of CAMPAIGN_ID, by AGS."""
    rows = session.exec(
        select(Enrolment.ags, Municipality.name, Enrolment.stage, Enrolment.status)
        .join(Municipality, col(Municipality.ags) == col(Enrolment.ags))
        .where(Enrolment.campaign_id == campaign_id)
        .order_by(col(Enrolment.ags))
    ).all()
    return [(ags, name, stage, status) for ags, name, stage, status in rows]


def municipality_label(session: Session, ags: str) -> str:
    """'Hüttlingen (08136027)', or the AGS alone when it is not in the directory."""
    municipality = session.get(Municipality, ags)
    return f"{municipality.name} ({ags})" if municipality else ags


def enrolment_of_link(
    session: Session, campaign_id: str, ags: str
) -> tuple[Campaign, Enrolment, Municipality] | None:
    """What a portal link points to, or None when any of it is gone."""
    campaign = session.get(Campaign, campaign_id)
    municipality = session.get(Municipality, ags)
    enrolment = session.exec(
        select(Enrolment).where(Enrolment.campaign_id == campaign_id, Enrolment.ags == ags)
    ).first()
    if campaign is None or municipality is None or enrolment is None:
        return None
    return campaign, enrolment, municipality
