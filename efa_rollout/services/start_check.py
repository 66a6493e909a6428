"""Before a campaign starts: every mail kind renders, and a broken definition can be re-taken.

A start that failed half-way used to leave the campaign running with enrolments and no
information request, and the stored snapshot kept the error. Now `check_mails_render` runs
before anything is written, and `refresh_definition` re-snapshots the fixed file as long as
no mail of the campaign exists (`check_before_start`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from jinja2 import TemplateError
from sqlalchemy import Engine, func, insert
from sqlmodel import Session, col, select

from efa_rollout.db import session_scope
from efa_rollout.definitions import CampaignDefinition, definition_files, get_definition
from efa_rollout.domain.audit import EventKind
from efa_rollout.domain.stages import CampaignStatus, Stage
from efa_rollout.errors import UserError
from efa_rollout.mail.context import KINDS_WITH_LINK, build_context
from efa_rollout.mail.render import MAIL_KINDS, MAIL_TEMPLATES_DIR, MailRenderError, render_mail
from efa_rollout.services.campaigns import first_targeted
from efa_rollout.services.checklist import recompute_required_open
from efa_rollout.services.links import portal_url
from efa_rollout.services.lookup import campaign_definition, get_campaign
from efa_rollout.services.mail_preview import PREVIEW_LINK_TOKEN, sample_extra, sample_objects
from efa_rollout.settings import get_settings
from efa_rollout.texts import say
from models import Campaign, ChecklistItemState, Enrolment, Event, OutboxMessage


def definition_file(campaign: Campaign) -> str:
    """Where the campaign's definition comes from, for messages (the file, else its key)."""
    path = definition_files().get(campaign.template)
    if path:
        return str(path)
    return say("service.start_check.template_missing", template=campaign.template)


def _resume_hint(campaign_id: str) -> str:
    return say("service.start_check.resume", campaign=campaign_id)


def render_problems(
    session: Session, campaign: Campaign, definition: CampaignDefinition, now: datetime
) -> list[str]:
    """One German line per mail kind that does not render (empty: all render).

    Uses the campaign's real dates, its first targeted municipality (a sample one if none)
    and sample variables per kind; nothing is stored and no link is issued.
    """
    settings = get_settings()
    first = first_targeted(session, definition, campaign.area_code)
    _, _, sample_municipality = sample_objects(now)
    municipality = first or sample_municipality
    attribute = definition.target.role_attribute
    role = (municipality.attributes or {}).get(attribute) if attribute else None
    enrolment = Enrolment(
        campaign_id=campaign.id,
        ags=municipality.ags,
        stage=Stage.INFORMATION_COLLECTION.value,
        stage_entered_at=now,
        role=str(role) if role else None,
        is_pilot=municipality.ags in set(definition.target.pilots),
    )
    probe = Campaign(
        id=campaign.id,
        template=campaign.template,
        title=campaign.title,
        service=campaign.service,
        area_code=campaign.area_code,
        go_live=campaign.go_live,
        dates=campaign.dates,
        definition=definition.model_dump(mode="json"),
    )
    link = portal_url(settings.portal_base_url, PREVIEW_LINK_TOKEN)
    problems = []
    for kind in MAIL_KINDS:
        coordinator_mail = kind == "weekly_report"
        where = say("service.start_check.where_paragraph", kind=kind)
        try:
            context = build_context(
                None,
                campaign=probe,
                enrolment=None if coordinator_mail else enrolment,
                municipality=None if coordinator_mail else municipality,
                contacts=[],
                kind=kind,
                sequence=1,
                now=now,
                settings=settings,
                portal_link=link if kind in KINDS_WITH_LINK else None,
                extra=sample_extra(kind, now),
            )
            where = say("service.start_check.where_template", path=MAIL_TEMPLATES_DIR / kind)
            render_mail(kind, context)
        except MailRenderError as error:
            hints = (
                " " + say("service.start_check.hints", hints="; ".join(error.details))
                if error.details
                else ""
            )
            problems.append(
                say(
                    "service.start_check.problem",
                    kind=kind,
                    where=where,
                    message=error.message,
                    hints=hints,
                )
            )
        except TemplateError as error:
            problems.append(
                say(
                    "service.start_check.template_error",
                    kind=kind,
                    where=where,
                    error_type=type(error).__name__,
                    error=error,
                )
            )
    return problems


def check_mails_render(
    session: Session,
    campaign: Campaign,
    definition: CampaignDefinition,
    now: datetime,
    *,
    source: str | None = None,
) -> None:
    """Raise a German UserError naming file, kind and template/paragraph if a mail fails."""
    problems = render_problems(session, campaign, definition, now)
    if not problems:
        return
    raise UserError(
        say("service.start_check.cannot_start", campaign=campaign.id, count=len(problems)),
        details=[
            say("service.start_check.definition", source=source)
            if source
            else say("service.start_check.definition_stored", source=definition_file(campaign)),
            *problems,
            _resume_hint(campaign.id),
        ],
    )


def campaign_mail_count(session: Session, campaign_id: str) -> tuple[int, int]:
    """(all outbox rows, rows that left or may have left) of the campaign."""
    rows = session.exec(
        select(OutboxMessage.status, func.count())
        .where(OutboxMessage.campaign_id == campaign_id)
        .group_by(col(OutboxMessage.status))
    ).all()
    total = sum(n for _, n in rows)
    sent = sum(n for status, n in rows if status not in ("queued", "cancelled"))
    return total, sent


def check_before_start(
    engine: Engine, campaign_id: str, now: datetime, *, refresh: bool, actor: str
) -> None:
    """The start's first step: re-take the definition (if asked), then check every mail renders.

    On any error nothing is written. With REFRESH the file is loaded afresh; it replaces the
    snapshot only when it renders and when no mail of the campaign was queued or sent.
    """
    with session_scope(engine) as session:
        campaign = get_campaign(session, campaign_id)
        if campaign.status == CampaignStatus.CLOSED:
            raise UserError(say("service.start_check.closed", campaign=campaign_id))
        if not refresh:
            try:
                definition = campaign_definition(campaign)
            except MailRenderError as error:
                raise UserError(error.message, details=[_resume_hint(campaign_id)]) from None
            check_mails_render(session, campaign, definition, now)
            return
        total, sent = campaign_mail_count(session, campaign_id)
        if total:
            raise UserError(
                say(
                    "service.start_check.not_refreshable",
                    campaign=campaign_id,
                    total=total,
                    sent=sent,
                ),
                details=[
                    say("service.start_check.same_definition"),
                    say("service.start_check.new_campaign"),
                ],
            )
        source = definition_file(campaign)
        definition = get_definition(campaign.template)  # validation errors name the file
        check_mails_render(session, campaign, definition, now, source=source)
        _take_snapshot(session, campaign, definition, now=now, actor=actor, source=source)


def _take_snapshot(
    session: Session,
    campaign: Campaign,
    definition: CampaignDefinition,
    *,
    now: datetime,
    actor: str,
    source: str,
) -> None:
    """Store DEFINITION as the campaign's snapshot; keep pilots and dates chosen at creation."""
    snapshot = definition.model_dump(mode="json")
    earlier_pilots = (campaign.definition or {}).get("target", {}).get("pilots", [])
    snapshot["target"]["pilots"] = sorted(set(definition.target.pilots) | set(earlier_pilots))
    # Dates stay as resolved at creation (with the coordinator's overrides); only dates the
    # new definition needs and the campaign lacks are added.
    dates = dict(campaign.dates or {})
    for key, value in definition.resolve_dates(campaign.go_live).items():
        dates.setdefault(key, value)
    campaign.definition = snapshot
    campaign.dates = dates
    session.add(campaign)
    _sync_checklists(session, campaign, CampaignDefinition.model_validate(snapshot), now)
    session.add(
        Event(
            at=now,
            campaign_id=campaign.id,
            actor=actor,
            kind=EventKind.DEFINITION_REFRESHED,
            reason=say("service.start_check.refreshed", file=Path(source).name),
            data={"source": source},
        )
    )


def _sync_checklists(
    session: Session, campaign: Campaign, definition: CampaignDefinition, now: datetime
) -> None:
    """Checklist rows of enrolments left by an earlier failed start, after the new definition."""
    enrolments = session.exec(select(Enrolment).where(Enrolment.campaign_id == campaign.id)).all()
    for enrolment in enrolments:
        have = set(
            session.exec(
                select(ChecklistItemState.item_key).where(
                    ChecklistItemState.enrolment_id == enrolment.id
                )
            ).all()
        )
        missing = [
            {"enrolment_id": enrolment.id, "item_key": i.key, "done": False, "updated_at": now}
            for i in definition.items_for(enrolment.role, enrolment.is_pilot)
            if i.key not in have
        ]
        if missing:
            session.execute(insert(ChecklistItemState), missing)
        recompute_required_open(session, enrolment, definition)
