"""Campaign roll-ups: a handful of grouped SQL queries per campaign, none per municipality.

A report is judged at AS_OF: days in stage, due and overdue items use AS_OF's local date, and rows
stamped after AS_OF (ticks, sent mail, submitted answers, events) are left out. Stage, status,
ticked items and the milestone dates are replayed from the event log up to AS_OF
(`efa_rollout.services.history`), so a past date shows that day's stage next to that day's
checklist; enrolments without stage events keep their stored values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from efa_rollout import texts
from efa_rollout.definitions import STORED, CampaignDefinition
from efa_rollout.reports.checklist import ChecklistFigures, ChecklistJudge, done_keys
from efa_rollout.reports.lights import judge
from efa_rollout.reports.model import (
    MILESTONES,
    STATUS_TEXT,
    CampaignRollup,
    FailedMail,
    KeyDate,
    MunicipalityStatus,
    OverdueItem,
)
from efa_rollout.reports.rollup_groups import (
    association_of,
    district_name,
    district_of,
    group_counts,
    group_rollups,
    light_counts,
    role_of,
    sort_key,
    stage_counts,
    stage_label,
    stage_summaries,
    without_contact,
)
from efa_rollout.reports.rollup_queries import (
    FAILED_STATUSES,
    E,
    M,
    RollupContext,
    answers_subquery,
    contacts_subquery,
    done_subquery,
    mail_subquery,
    run_query,
)
from efa_rollout.reports.timeline import campaign_timeline
from efa_rollout.services.bulk_gc import fewer_collections
from efa_rollout.services.history import PastState, campaign_history, past_states
from efa_rollout.services.lookup import get_campaign
from efa_rollout.services.stamps import raw, utc
from efa_rollout.settings import get_settings
from models import (
    OutboxMessage,
)

MAIL_STATUS_LABELS: Mapping[str, str] = texts.table("report.mail_status")


@fewer_collections()
def campaign_rollup(
    session: Session, campaign_id: str, *, as_of: datetime, with_history: bool = False
) -> CampaignRollup:
    """All views of one campaign's status, judged at AS_OF (an aware datetime), with its history."""
    ctx = _context(session, campaign_id, as_of)
    stage_order = _stage_order(ctx.definition, session, campaign_id)
    municipalities, overdue = _municipalities(session, ctx)
    stage_order += sorted({m.stage for m in municipalities} - set(stage_order))
    counts = stage_counts(municipalities)
    total = sum(counts.values())
    stages, paused, not_applicable = stage_summaries(stage_order, counts, total, municipalities)
    groups = group_counts(municipalities)
    status, completed_on = _campaign_status(ctx, municipalities)
    return CampaignRollup(
        campaign_id=ctx.campaign.id,
        title=ctx.campaign.title,
        service=ctx.campaign.service,
        area_name=ctx.campaign.area_name,
        status=status,
        completed_on=completed_on,
        key_dates=_key_dates(ctx, municipalities),
        district_name=district_name(municipalities),
        as_of=ctx.as_of,
        today=ctx.today,
        go_live=ctx.campaign.go_live,
        dates=dict(ctx.campaign.dates),
        stage_order=stage_order,
        stages=stages,
        paused=paused,
        not_applicable=not_applicable,
        total=total,
        lights=light_counts(municipalities),
        municipalities=municipalities,
        associations=group_rollups(groups, municipalities, association_of),
        roles=group_rollups(groups, municipalities, role_of),
        districts=group_rollups(groups, municipalities, district_of),
        timeline=campaign_timeline(session, campaign_id, stage_order, as_of=ctx.as_of),
        overdue=overdue,
        failed_mail=_failed_mail(session, ctx, municipalities),
        without_contact=without_contact(municipalities),
        attribution=_attribution(session, campaign_id),
        history=campaign_history(session, campaign_id, as_of=ctx.as_of) if with_history else [],
    )


def _context(session: Session, campaign_id: str, as_of: datetime) -> RollupContext:
    """Load the campaign and its definition snapshot; check AS_OF."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    campaign = get_campaign(session, campaign_id)
    definition = CampaignDefinition.model_validate(campaign.definition, context={STORED: True})
    today = as_of.astimezone(get_settings().zone).date()
    deadline = campaign.dates.get("collection_deadline")
    return RollupContext(
        campaign=campaign,
        definition=definition,
        as_of=as_of,
        today=today,
        go_live=campaign.go_live,
        deadline=date.fromisoformat(deadline) if deadline else None,
    )


def _stage_order(definition: CampaignDefinition, session: Session, campaign_id: str) -> list[str]:
    """The definition's stages in pipeline order, plus any stored stage it does not name."""
    order = [stage.value for stage in definition.ordered_stages()]
    query = select(col(E.stage)).where(col(E.campaign_id) == campaign_id).distinct()
    stored = run_query(session, query).scalars().all()
    return order + sorted(stage for stage in stored if stage not in order)


# --- per-municipality view ------------------------------------------------------------------


def _municipalities(
    session: Session, ctx: RollupContext
) -> tuple[list[MunicipalityStatus], list[OverdueItem]]:
    """One row per enrolment with its checklist, answer, mail and contact figures; the overdue list."""
    done, answers, mail, contacts = (
        done_subquery(ctx),
        answers_subquery(ctx),
        mail_subquery(ctx),
        contacts_subquery(ctx),
    )
    query = (
        select(
            col(E.id),
            col(E.ags),
            col(M.name),
            col(M.association_code),
            col(M.association_name),
            col(M.district_code),
            col(M.district_name),
            col(E.role),
            col(E.is_pilot),
            col(E.status),
            col(E.stage),
            raw(col(E.stage_entered_at)).label("stage_entered_at"),
            col(E.go_live),
            col(E.answers_complete),
            done.c.done_keys,
            answers.c.submitted,
            mail.c.last_sent,
            mail.c.last_failed,
            mail.c.failed,
            mail.c.last_unclear,
            mail.c.unclear,
            contacts.c.contacts,
            contacts.c.working,
        )
        .select_from(E)
        .join(M, col(M.ags) == col(E.ags))
        .outerjoin(done, done.c.enrolment_id == E.id)
        .outerjoin(answers, answers.c.enrolment_id == E.id)
        .outerjoin(mail, mail.c.ags == E.ags)
        .outerjoin(contacts, contacts.c.ags == E.ags)
        .where(col(E.campaign_id) == ctx.campaign_id)
    )
    checklist = ChecklistJudge(ctx.definition, ctx.today)
    zone = get_settings().zone
    states = past_states(session, ctx.campaign_id, as_of=ctx.as_of)
    result: list[MunicipalityStatus] = []
    overdue: list[OverdueItem] = []
    for row in run_query(session, query).all():
        state = states.get(row[0])
        if state is not None and state.replayed_stage and not state.enrolled:
            continue  # enrolled after AS_OF: not part of the campaign yet
        status, figures = _municipality(row[1:], ctx, checklist, zone, state)
        result.append(status)
        if status.status == "active":
            overdue.extend(_overdue_of(status, figures, ctx.today))
    result.sort(key=lambda m: (sort_key(m.name), m.ags))
    overdue.sort(key=lambda o: (-o.days_overdue, sort_key(o.name), o.ags, o.item_key))
    return result, overdue


def _municipality(
    row: Any, ctx: RollupContext, checklist: ChecklistJudge, zone: Any, state: PastState | None
) -> tuple[MunicipalityStatus, ChecklistFigures]:
    """A MunicipalityStatus from one result row and its replayed STATE, with checklist and light."""
    (
        ags,
        name,
        association_code,
        association_name,
        district_code,
        district_name,
        role,
        is_pilot,
        status,
        stage,
        stage_entered_at,
        own_go_live,
        answers_complete,
        done,
        submitted,
        last_sent_raw,
        last_failed_raw,
        failed,
        last_unclear_raw,
        unclear,
        contacts,
        working,
    ) = row
    done_now = done_keys(done)
    entered_at = utc(stage_entered_at)
    milestones: dict[str, Any] = {}  # MunicipalityStatus date fields by name
    if state is not None:
        if state.replayed_stage and state.stage:
            stage, entered_at = state.stage, state.stage_entered
        status = state.status or status
        done_now = frozenset(state.done_keys(done_now))
        if state.answers_complete is not None:
            answers_complete = state.answers_complete
        milestones = {
            name: state.milestones[stage_key].astimezone(zone).date()
            for name, stage_key, _ in MILESTONES
            if stage_key in state.milestones
        }
    go_live = own_go_live or ctx.go_live
    entered = entered_at.astimezone(zone).date()
    figures = (
        ChecklistFigures()
        if status == "not_applicable"
        else checklist.evaluate(role, bool(is_pilot), go_live, done_now)
    )
    last_sent, last_failed, last_unclear = (
        utc(last_sent_raw),
        utc(last_failed_raw),
        utc(last_unclear_raw),
    )
    result = MunicipalityStatus(
        ags=ags,
        name=name,
        association_code=association_code,
        association_name=association_name,
        district_code=district_code,
        district_name=district_name,
        role=role,
        is_pilot=bool(is_pilot),
        status=status,
        status_label=STATUS_TEXT.get(status, status),
        stage=stage,
        stage_label=stage_label(stage),
        stage_entered=entered,
        days_in_stage=max((ctx.today - entered).days, 0),
        go_live=go_live,
        items_total=figures.total,
        items_open=figures.open,
        items_overdue=figures.overdue,
        required_overdue=figures.required_overdue,
        items_due_soon=figures.due_soon,
        next_due=figures.next_due,
        oldest_overdue=figures.oldest_overdue,
        answered=bool(submitted),
        answers_complete=bool(answers_complete),
        last_contact=last_sent,
        failed_mail=failed or 0,
        unresolved_failed_mail=_unresolved(last_failed, last_sent),
        unclear_mail=unclear or 0,
        unresolved_unclear_mail=_unresolved(last_unclear, last_sent),
        contacts=contacts or 0,
        working_contacts=working or 0,
        **milestones,
    )
    result.light, result.reasons = judge(result, today=ctx.today, deadline=ctx.deadline)
    return result, figures


def _overdue_of(m: MunicipalityStatus, figures: ChecklistFigures, today: date) -> list[OverdueItem]:
    """The overdue list's rows for one municipality."""
    return [
        OverdueItem(
            ags=m.ags,
            name=m.name,
            item_key=item.key,
            title=item.title,
            owner=item.owner,
            required=item.required,
            due=due,
            days_overdue=(today - due).days,
        )
        for item, due in figures.overdue_items
    ]


def _unresolved(last_failed: datetime | None, last_sent: datetime | None) -> bool:
    """A failure counts until a later mail to the municipality was delivered."""
    return last_failed is not None and (last_sent is None or last_sent < last_failed)


# --- the campaign as a whole: status and the dates that matter -------------------------------


def _campaign_status(
    ctx: RollupContext, municipalities: Sequence[MunicipalityStatus]
) -> tuple[str, date | None]:
    """The campaign's status at AS_OF; 'completed' (with the day) once every municipality is."""
    started = ctx.campaign.started_at
    if started is None or utc(started) > ctx.as_of:
        return "created", None
    taking_part = [m for m in municipalities if m.status != "not_applicable"]
    if taking_part and all(m.stage == "completed" for m in taking_part):
        days = [m.completed_on or m.stage_entered for m in taking_part]
        return "completed", max(days)
    return ("running" if ctx.campaign.status == "completed" else ctx.campaign.status), None


#: The campaign's key dates as people name them (the municipality columns say "Live seit").
KEY_DATE_LABELS: Mapping[str, str] = texts.table("report.key_date")


def _key_dates(ctx: RollupContext, municipalities: Sequence[MunicipalityStatus]) -> list[KeyDate]:
    """Pilot, silent go-live, go-live, mandatory from, completed: planned, first reached, how many."""
    result = []
    stages = set(ctx.definition.stages)
    for name, stage_key, date_key in MILESTONES:
        if stage_key not in stages:
            continue
        planned = ctx.go_live if date_key == "go_live" else ctx.campaign.dates.get(date_key)
        if isinstance(planned, str):
            planned = date.fromisoformat(planned)
        reached = [getattr(m, name) for m in municipalities if getattr(m, name)]
        result.append(
            KeyDate(
                key=name,
                label=KEY_DATE_LABELS[name],
                planned=planned or None,
                first_reached=min(reached) if reached else None,
                reached=len(reached),
            )
        )
    return result


# Key functions read the grouping columns by attribute: from a SQL row or a MunicipalityStatus.


# --- lists: overdue items, failed mail, no working contact -----------------------------------


def _failed_mail(
    session: Session, ctx: RollupContext, municipalities: Sequence[MunicipalityStatus]
) -> list[FailedMail]:
    """Campaign mail that failed permanently or whose delivery is unknown, newest first."""
    om = OutboxMessage
    query = (
        select(
            col(om.ags),
            col(M.name),
            col(om.kind),
            col(om.subject),
            col(om.recipients),
            col(om.status),
            col(om.queued_at),
            col(om.last_error),
        )
        .outerjoin(M, col(M.ags) == col(om.ags))
        .where(
            col(om.campaign_id) == ctx.campaign_id,
            col(om.is_test).is_(False),
            col(om.status).in_(FAILED_STATUSES),
            col(om.queued_at) <= ctx.as_of,
        )
        .order_by(col(om.queued_at).desc(), col(om.id).desc())
    )
    last_sent = {m.ags: m.last_contact for m in municipalities}
    return [
        FailedMail(
            ags=row.ags,
            name=row.name,
            kind=row.kind,
            subject=row.subject,
            recipients=list(row.recipients or []),
            status=row.status,
            status_label=MAIL_STATUS_LABELS.get(row.status, row.status),
            queued_at=row.queued_at,
            last_error=row.last_error,
            resolved=_later(last_sent.get(row.ags), row.queued_at),
        )
        for row in run_query(session, query)
    ]


def _later(sent: datetime | None, failed: datetime) -> bool:
    return sent is not None and sent > failed


def _attribution(session: Session, campaign_id: str) -> str | None:
    """The Destatis notice when the campaign's municipalities come from GV100AD."""
    query = (
        select(col(M.ags))
        .join(E, col(E.ags) == col(M.ags))
        .where(col(E.campaign_id) == campaign_id, col(M.source).ilike("%gv100%"))
        .limit(1)
    )
    return texts.say("report.gv100ad_attribution") if run_query(session, query).first() else None
