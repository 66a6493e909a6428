"""Campaign roll-ups: a handful of grouped SQL queries per campaign, none per municipality.

A report is judged at AS_OF: days in stage, due and overdue items use AS_OF's local date, and rows
stamped after AS_OF (ticks, sent mail, submitted answers, events) are left out. Stage, status,
ticked items and the milestone dates are replayed from the event log up to AS_OF
(`efa_rollout.services.history`), so a past date shows that day's stage next to that day's
checklist; enrolments without stage events keep their stored values.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Subquery, and_, case, func, or_, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from efa_rollout.definitions import CampaignDefinition
from efa_rollout.domain.stages import STAGE_LABELS
from efa_rollout.reports.checklist import ChecklistFigures, ChecklistJudge, done_keys
from efa_rollout.reports.lights import judge
from efa_rollout.reports.model import (
    LIGHTS,
    MILESTONES,
    STATUS_TEXT,
    CampaignRollup,
    FailedMail,
    GroupRollup,
    KeyDate,
    MunicipalityStatus,
    OverdueItem,
    StageSummary,
    WithoutContact,
    role_label,
)
from efa_rollout.reports.stamps import raw, utc
from efa_rollout.reports.timeline import campaign_timeline
from efa_rollout.services.history import PastState, campaign_history, past_states
from efa_rollout.services.lookup import get_campaign
from efa_rollout.settings import get_settings
from models import (
    Campaign,
    ChecklistItemState,
    Contact,
    Enrolment,
    Municipality,
    OutboxMessage,
    QuestionnaireResponse,
)

FAILED_STATUSES = ("failed_permanently", "unknown")
MAIL_STATUS_LABELS = {
    "failed_permanently": "dauerhaft gescheitert",
    "unknown": "Zustellung ungeklärt",
}
GV100AD_ATTRIBUTION = (
    "Gemeindedaten: © Statistisches Bundesamt (Destatis), Gemeindeverzeichnis (dl-de/by-2-0)"
)

E = Enrolment
M = Municipality
CIS = ChecklistItemState


@dataclass(frozen=True, slots=True)
class _Context:
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


def campaign_rollup(
    session: Session, campaign_id: str, *, as_of: datetime, with_history: bool = False
) -> CampaignRollup:
    """All views of one campaign's status, judged at AS_OF (an aware datetime), with its history."""
    ctx = _context(session, campaign_id, as_of)
    stage_order = _stage_order(ctx.definition, session, campaign_id)
    municipalities, overdue = _municipalities(session, ctx)
    stage_order += sorted({m.stage for m in municipalities} - set(stage_order))
    counts = _stage_counts(municipalities)
    total = sum(counts.values())
    stages, paused, not_applicable = _stage_summaries(stage_order, counts, total, municipalities)
    groups = _group_counts(municipalities)
    status, completed_on = _campaign_status(ctx, municipalities)
    return CampaignRollup(
        campaign_id=ctx.campaign.id,
        title=ctx.campaign.title,
        service=ctx.campaign.service,
        area_name=ctx.campaign.area_name,
        status=status,
        completed_on=completed_on,
        key_dates=_key_dates(ctx, municipalities),
        district_name=_district_name(municipalities),
        as_of=ctx.as_of,
        today=ctx.today,
        go_live=ctx.campaign.go_live,
        dates=dict(ctx.campaign.dates),
        stage_order=stage_order,
        stages=stages,
        paused=paused,
        not_applicable=not_applicable,
        total=total,
        lights=_light_counts(municipalities),
        municipalities=municipalities,
        associations=_groups(groups, municipalities, _association_of),
        roles=_groups(groups, municipalities, _role_of),
        districts=_groups(groups, municipalities, _district_of),
        timeline=campaign_timeline(session, campaign_id, stage_order, as_of=ctx.as_of),
        overdue=overdue,
        failed_mail=_failed_mail(session, ctx, municipalities),
        without_contact=_without_contact(municipalities),
        attribution=_attribution(session, campaign_id),
        history=campaign_history(session, campaign_id, as_of=ctx.as_of) if with_history else [],
    )


def _context(session: Session, campaign_id: str, as_of: datetime) -> _Context:
    """Load the campaign and its definition snapshot; check AS_OF."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    campaign = get_campaign(session, campaign_id)
    definition = CampaignDefinition.model_validate(campaign.definition)
    today = as_of.astimezone(get_settings().zone).date()
    deadline = campaign.dates.get("collection_deadline")
    return _Context(
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
    stored = _run(session, query).scalars().all()
    return order + sorted(stage for stage in stored if stage not in order)


def stage_label(stage: str) -> str:
    """German label of a stage key (the key itself when unknown)."""
    return _LABELS.get(stage, stage)


_LABELS: dict[str, str] = {stage.value: label for stage, label in STAGE_LABELS.items()}


# --- per-municipality view ------------------------------------------------------------------


def _done(ctx: _Context) -> Subquery:
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


def _answers(ctx: _Context) -> Subquery:
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


def _mail(ctx: _Context) -> Subquery:
    """Per municipality: last mail sent and last failure in this campaign (by AS_OF)."""
    om = OutboxMessage
    sent = and_(col(om.status) == "sent", col(om.sent_at) <= ctx.as_of)
    failed = and_(col(om.status).in_(FAILED_STATUSES), col(om.queued_at) <= ctx.as_of)
    return (
        select(
            col(om.ags),
            raw(func.max(case((sent, col(om.sent_at))))).label("last_sent"),
            raw(func.max(case((failed, col(om.queued_at))))).label("last_failed"),
            _count_if(failed).label("failed"),
        )
        .where(
            col(om.campaign_id) == ctx.campaign_id,
            col(om.is_test).is_(False),
            col(om.ags).is_not(None),
        )
        .group_by(om.ags)
        .subquery("mail")
    )


def _contacts(ctx: _Context) -> Subquery:
    """Per municipality of the campaign: contacts, and those whose address still works."""
    working = or_(
        col(Contact.delivery_failed_at).is_(None), col(Contact.delivery_failed_at) > ctx.as_of
    )
    enrolled = select(col(E.ags)).where(col(E.campaign_id) == ctx.campaign_id)
    return (
        select(
            col(Contact.ags),
            func.count().label("contacts"),
            _count_if(working).label("working"),
        )
        .where(col(Contact.ags).in_(enrolled))
        .group_by(Contact.ags)
        .subquery("contacts")
    )


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """SUM(CASE WHEN condition THEN 1 ELSE 0 END)."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _municipalities(
    session: Session, ctx: _Context
) -> tuple[list[MunicipalityStatus], list[OverdueItem]]:
    """One row per enrolment with its checklist, answer, mail and contact figures; the overdue list."""
    done, answers, mail, contacts = _done(ctx), _answers(ctx), _mail(ctx), _contacts(ctx)
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
    for row in _run(session, query).all():
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
    row: Any, ctx: _Context, checklist: ChecklistJudge, zone: Any, state: PastState | None
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
            for name, stage_key, _, _ in MILESTONES
            if stage_key in state.milestones
        }
    go_live = own_go_live or ctx.go_live
    entered = entered_at.astimezone(zone).date()
    figures = (
        ChecklistFigures()
        if status == "not_applicable"
        else checklist.evaluate(role, bool(is_pilot), go_live, done_now)
    )
    last_sent, last_failed = utc(last_sent_raw), utc(last_failed_raw)
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


def sort_key(name: str) -> str:
    """A German-friendly sort key: umlauts sort with their base letter."""
    folded = name.casefold()
    for umlaut, base in (("ä", "a"), ("ö", "o"), ("ü", "u"), ("ß", "ss")):
        folded = folded.replace(umlaut, base)
    return folded


# --- stage counts ---------------------------------------------------------------------------


def _stage_counts(municipalities: Iterable[MunicipalityStatus]) -> Counter[tuple[str, str]]:
    """Enrolments per (stage, status) at AS_OF (the replayed ones)."""
    return Counter((m.stage, m.status) for m in municipalities)


def _stage_summaries(
    order: list[str],
    counts: Counter[tuple[str, str]],
    total: int,
    municipalities: list[MunicipalityStatus],
) -> tuple[dict[str, StageSummary], StageSummary, StageSummary]:
    """Active enrolments per stage (zero included), and paused / not applicable apart."""
    members: dict[str, list[dict[str, str]]] = defaultdict(list)
    for m in municipalities:
        members[m.stage if m.status == "active" else m.status].append(m.ref())

    def summary(key: str, label: str, count: int) -> StageSummary:
        share = count / total if total else 0.0
        return StageSummary(label=label, count=count, share=share, municipalities=members[key])

    stages = {
        stage: summary(stage, stage_label(stage), counts[(stage, "active")]) for stage in order
    }
    paused = sum(n for (_, status), n in counts.items() if status == "paused")
    excluded = sum(n for (_, status), n in counts.items() if status == "not_applicable")
    return (
        stages,
        summary("paused", "Pausiert", paused),
        summary("not_applicable", "Nicht zutreffend", excluded),
    )


def _light_counts(municipalities: Iterable[MunicipalityStatus]) -> dict[str, int]:
    counts = dict.fromkeys(LIGHTS, 0)
    for m in municipalities:
        counts[m.light] += 1
    return counts


# --- roll-ups per association, role and district ----------------------------------------------

_GroupKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class _GroupCount:
    """Enrolments of one association, district, role, stage and status."""

    association_code: str | None
    association_name: str | None
    district_code: str
    district_name: str | None
    role: str | None
    stage: str
    status: str
    n: int


def _group_counts(municipalities: Iterable[MunicipalityStatus]) -> list[_GroupCount]:
    """Enrolments per association, district, role, stage and status at AS_OF."""
    counts = Counter(
        (
            m.association_code,
            m.association_name,
            m.district_code,
            m.district_name,
            m.role,
            m.stage,
            m.status,
        )
        for m in municipalities
    )
    return [_GroupCount(*key, n=n) for key, n in counts.items()]


# --- the campaign as a whole: status and the dates that matter -------------------------------


def _campaign_status(
    ctx: _Context, municipalities: Sequence[MunicipalityStatus]
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
KEY_DATE_LABELS = {
    "pilot_since": "Pilotphase",
    "silent_since": "Silent Go-Live",
    "live_since": "Go-Live",
    "mandatory_since": "Verpflichtende Nutzung",
    "completed_on": "Abschluss",
}


def _key_dates(ctx: _Context, municipalities: Sequence[MunicipalityStatus]) -> list[KeyDate]:
    """Pilot, silent go-live, go-live, mandatory from, completed: planned, first reached, how many."""
    result = []
    stages = set(ctx.definition.stages)
    for name, stage_key, date_key, label in MILESTONES:
        if stage_key not in stages:
            continue
        planned = ctx.go_live if date_key == "go_live" else ctx.campaign.dates.get(date_key)
        if isinstance(planned, str):
            planned = date.fromisoformat(planned)
        reached = [getattr(m, name) for m in municipalities if getattr(m, name)]
        result.append(
            KeyDate(
                key=name,
                label=KEY_DATE_LABELS.get(name, label),
                planned=planned or None,
                first_reached=min(reached) if reached else None,
                reached=len(reached),
            )
        )
    return result


def _district_name(municipalities: Sequence[MunicipalityStatus]) -> str | None:
    """The district's name when all municipalities are in one."""
    names = {m.district_name or m.district_code for m in municipalities}
    return names.pop() if len(names) == 1 else None


# Key functions read the grouping columns by attribute: from a SQL row or a MunicipalityStatus.


def _association_of(row: Any) -> _GroupKey:
    code = row.association_code
    key = f"{row.district_code}{code}" if code else f"{row.district_code}-ohne"
    district = row.district_name or row.district_code
    return key, row.association_name or f"ohne Gemeindeverband ({district})"


def _role_of(row: Any) -> _GroupKey:
    return row.role or "", role_label(row.role)


def _district_of(row: Any) -> _GroupKey:
    return row.district_code, row.district_name or row.district_code


def _groups(
    counts: Sequence[Any], municipalities: Sequence[MunicipalityStatus], key_of: Any
) -> list[GroupRollup]:
    """Fold the SQL counts into groups, then add lights, answers and items per group."""
    groups: dict[str, GroupRollup] = {}
    for row in counts:
        key, label = key_of(row)
        group = groups.setdefault(key, GroupRollup(key=key, label=label))
        bucket = row.stage if row.status == "active" else row.status
        group.stages[bucket] = group.stages.get(bucket, 0) + row.n
        group.total += row.n
    for m in municipalities:
        group = groups[key_of(m)[0]]
        group.lights[m.light] += 1
        group.answered += int(m.answered)
        if m.status == "active":  # as in the overdue list: paused ones are not chased
            group.items_open += m.items_open
            group.items_overdue += m.items_overdue
    return sorted(groups.values(), key=lambda g: (sort_key(g.label), g.key))


# --- lists: overdue items, failed mail, no working contact -----------------------------------


def _failed_mail(
    session: Session, ctx: _Context, municipalities: Sequence[MunicipalityStatus]
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
        for row in _run(session, query)
    ]


def _later(sent: datetime | None, failed: datetime) -> bool:
    return sent is not None and sent > failed


def _without_contact(municipalities: Iterable[MunicipalityStatus]) -> list[WithoutContact]:
    """Taking part, but nobody to write to: no contact, or every address failed."""
    result = []
    for m in municipalities:
        if m.status == "not_applicable" or m.working_contacts:
            continue
        reason = "alle Adressen unzustellbar" if m.contacts else "keine Ansprechperson hinterlegt"
        result.append(WithoutContact(ags=m.ags, name=m.name, contacts=m.contacts, reason=reason))
    return result


def _attribution(session: Session, campaign_id: str) -> str | None:
    """The Destatis notice when the campaign's municipalities come from GV100AD."""
    query = (
        select(col(M.ags))
        .join(E, col(E.ags) == col(M.ags))
        .where(col(E.campaign_id) == campaign_id, col(M.source).ilike("%gv100%"))
        .limit(1)
    )
    return GV100AD_ATTRIBUTION if _run(session, query).first() else None


def _run(session: Session, query: Any) -> Any:
    """Execute a Core query on the session's connection (rows as tuples)."""
    return session.connection().execute(query)
