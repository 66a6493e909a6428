"""Overrides by the coordinator: move an enrolment to a stage, pause, resume or exclude it."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from efa_rollout.domain.audit import EventKind
from efa_rollout.domain.stages import EnrolmentStatus, Stage
from efa_rollout.errors import UserError
from efa_rollout.services.lookup import campaign_definition, get_campaign
from efa_rollout.texts import say
from models import Enrolment, Event


def set_stage(
    session: Session, enrolment: Enrolment, stage: Stage, *, reason: str, actor: str, now: datetime
) -> Event:
    """Move ENROLMENT to STAGE by hand (logged as an override)."""
    campaign = get_campaign(session, enrolment.campaign_id)
    definition = campaign_definition(campaign)
    if stage not in definition.stages:
        allowed = ", ".join(s.value for s in definition.ordered_stages())
        raise UserError(say("service.overrides.stage_unknown", stage=stage, allowed=allowed))
    event = Event(
        at=now,
        campaign_id=enrolment.campaign_id,
        ags=enrolment.ags,
        enrolment_id=enrolment.id,
        actor=actor,
        kind=EventKind.STAGE_CHANGED,
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
        kind=EventKind.STATUS_CHANGED,
        reason=reason,
        data={"from": enrolment.status, "to": status.value, "override": True},
    )
    enrolment.status = status.value
    enrolment.version += 1
    enrolment.updated_at = now
    session.add(enrolment)
    session.add(event)
    return event
