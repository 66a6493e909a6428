"""The grouped SQL of one roll-up: per enrolment its ticked items, answers, mail and contacts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Subquery, and_, case, func, or_, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from efa_rollout.definitions import CampaignDefinition
from efa_rollout.services.stamps import raw
from models import (
    Campaign,
    ChecklistItemState,
    Contact,
    Enrolment,
    Municipality,
    OutboxMessage,
    QuestionnaireResponse,
)

E = Enrolment


M = Municipality


CIS = ChecklistItemState


@dataclass(frozen=True, slots=True)
class RollupContext:
    """What every query of one roll-up needs."""

    campaign: Campaign
    definition: CampaignDefinition
    as_of: datetime
    today: date
    go_live: date
    deadline: date | None

    @property
    def campaign_id(self) -> str:
        return self.campaign.id


def done_subquery(ctx: RollupContext) -> Subquery:
    """Per enrolment: the checklist keys ticked by AS_OF, aggregated to 'a,b,c'."""
    return (
        select(
            col(CIS.enrolment_id),
            func.aggregate_strings(col(CIS.item_key), ",").label("done_keys"),
        )
        .join(E, col(E.id) == col(CIS.enrolment_id))
        .where(
            col(E.campaign_id) == ctx.campaign_id,
            col(CIS.done).is_(True),
            or_(col(CIS.done_at).is_(None), col(CIS.done_at) <= ctx.as_of),
        )
        .group_by(col(CIS.enrolment_id))
        .subquery("done")
    )


def answers_subquery(ctx: RollupContext) -> Subquery:
    """Per enrolment: how many answer versions were submitted by AS_OF."""
    qr = QuestionnaireResponse
    return (
        select(col(qr.enrolment_id), func.count().label("submitted"))
        .join(E, col(E.id) == col(qr.enrolment_id))
        .where(
            col(E.campaign_id) == ctx.campaign_id,
            col(qr.status) == "submitted",
            col(qr.created_at) <= ctx.as_of,
        )
        .group_by(col(qr.enrolment_id))
        .subquery("answers")
    )


def mail_subquery(ctx: RollupContext) -> Subquery:
    """Per municipality: last mail sent, last failure and last unclear delivery (by AS_OF)."""
    om = OutboxMessage
    sent = and_(col(om.status) == "sent", col(om.sent_at) <= ctx.as_of)
    queued = col(om.queued_at) <= ctx.as_of
    # A mail whose fate is unknown may well have arrived: counted apart from the failures.
    failed = and_(col(om.status) == "failed_permanently", queued)
    unclear = and_(col(om.status) == "unknown", queued)
    return (
        select(
            col(om.ags),
            raw(func.max(case((sent, col(om.sent_at))))).label("last_sent"),
            raw(func.max(case((failed, col(om.queued_at))))).label("last_failed"),
            count_if(failed).label("failed"),
            raw(func.max(case((unclear, col(om.queued_at))))).label("last_unclear"),
            count_if(unclear).label("unclear"),
        )
        .where(
            col(om.campaign_id) == ctx.campaign_id,
            col(om.is_test).is_(False),
            col(om.ags).is_not(None),
        )
        .group_by(om.ags)
        .subquery("mail")
    )


def contacts_subquery(ctx: RollupContext) -> Subquery:
    """Per municipality of the campaign: contacts, and those whose address still works."""
    working = or_(
        col(Contact.delivery_failed_at).is_(None), col(Contact.delivery_failed_at) > ctx.as_of
    )
    enrolled = select(col(E.ags)).where(col(E.campaign_id) == ctx.campaign_id)
    return (
        select(
            col(Contact.ags),
            func.count().label("contacts"),
            count_if(working).label("working"),
        )
        .where(col(Contact.ags).in_(enrolled))
        .group_by(Contact.ags)
        .subquery("contacts")
    )


def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """SUM(CASE WHEN condition THEN 1 ELSE 0 END)."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def run_query(session: Session, query: Any) -> Any:
    """Execute a Core query on the session's connection (rows as tuples)."""
    return session.connection().execute(query)


FAILED_STATUSES = ("failed_permanently", "unknown")
