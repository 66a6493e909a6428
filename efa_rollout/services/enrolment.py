"""Enrolment: take the targeted municipalities into a campaign and ask them for information."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine, insert
from sqlmodel import Session, col, select

from efa_rollout.db import session_scope
from efa_rollout.definitions import CampaignDefinition
from efa_rollout.domain.audit import EventKind, event_row
from efa_rollout.domain.stages import EnrolmentStatus, Stage
from efa_rollout.services.bulk_gc import fewer_collections
from efa_rollout.services.lookup import campaign_definition, get_campaign, load_batch
from efa_rollout.services.progression import BatchResult
from efa_rollout.texts import say
from models import (
    Campaign,
    ChecklistItemState,
    Enrolment,
    Event,
    Municipality,
    OutboxMessage,
    table_of,
)


@fewer_collections()
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
        # Core tables, not the ORM's bulk insert: the same statements without its per-row work.
        table = table_of(Enrolment)
        inserted = cast(  # mypy unpacks a Row of Any columns as object
            "Sequence[tuple[Any, ...]]",
            session.execute(
                insert(table).returning(table.c.id, table.c.ags, table.c.role, table.c.is_pilot),
                rows,
            ).all(),
        )
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
                event_row(
                    campaign_id,
                    ags,
                    enrolment_id,
                    actor,
                    now,
                    EventKind.ENROLLED,
                    None,
                    Stage.INFORMATION_COLLECTION,
                    say("service.events.enrolled"),
                )
            )
        if items:
            session.execute(insert(table_of(ChecklistItemState)), items)
        session.execute(insert(table_of(Event)), events)
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


@fewer_collections()
def _queue_kind(
    engine: Engine,
    campaign_id: str,
    ids: Sequence[int],
    *,
    now: datetime,
    kind: str,
    stages: set[Stage],
) -> BatchResult:
    from efa_rollout.services.compose import MailRequest
    from efa_rollout.services.outbox_batch import QUEUED, queue_campaign_mails

    result = BatchResult()
    with session_scope(engine) as session:
        campaign = get_campaign(session, campaign_id)
        requests = [
            MailRequest(enrolment, municipality, kind)
            for enrolment, municipality in load_batch(session, ids)
            if enrolment.status == EnrolmentStatus.ACTIVE and Stage(enrolment.stage) in stages
        ]
        outcomes = queue_campaign_mails(session, campaign=campaign, requests=requests, now=now)
        result.mails_queued += outcomes.count(QUEUED)
    return result


def without_information_request(session: Session, campaign_id: str) -> list[str]:
    """Names of enrolled municipalities that have no information request in the outbox."""
    asked = select(OutboxMessage.ags).where(
        OutboxMessage.campaign_id == campaign_id, OutboxMessage.kind == "information_request"
    )
    rows = session.exec(
        select(Municipality.name)
        .join(Enrolment, col(Enrolment.ags) == col(Municipality.ags))
        .where(Enrolment.campaign_id == campaign_id, col(Enrolment.ags).not_in(asked))
        .order_by(col(Municipality.name))
    ).all()
    return list(rows)
