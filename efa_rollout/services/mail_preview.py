"""Sample data, previews and test mails, for the coordinator's checks before sending."""

from __future__ import annotations

import email
import email.policy
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from efa_rollout.errors import UserError
from efa_rollout.mail.context import (
    KINDS_WITH_LINK,
    build_context,
    campaign_definition,
)
from efa_rollout.mail.message import Recipient, make_message_id, normalize_address
from efa_rollout.mail.render import MAIL_KINDS, RenderedMail, render_mail
from efa_rollout.services.compose import MailRequest, compose_campaign_mail
from efa_rollout.services.links import portal_url
from efa_rollout.services.lookup import get_campaign
from efa_rollout.services.outbox import (
    OutgoingMail,
    build_mail,
    logical_message_id,
    select_recipients,
    store_message,
)
from efa_rollout.settings import get_settings
from efa_rollout.texts import say
from models import Campaign, Enrolment, Municipality, OutboxMessage

PREVIEW_LINK_TOKEN = "VORSCHAU-KEIN-GUELTIGER-LINK"


@dataclass
class MailPreview:
    """A mail as it would be queued: headers, text, HTML; nothing stored."""

    headers: dict[str, str]
    text: str
    html: str
    raw: bytes
    warnings: list[str] = field(default_factory=list)


def sample_objects(now: datetime) -> tuple[Campaign, Enrolment, Municipality]:
    """A made-up campaign and municipality for test mails; never stored."""
    go_live = (now + timedelta(days=70)).date()
    go_live += timedelta(days=(7 - go_live.weekday()) % 7)  # a Monday, like real go-lives
    campaign = Campaign(
        id="beispiel",
        template="beispiel",
        title="ViBa BW im Musterkreis (Beispiel)",
        service="ViBa BW",
        area_code="08999",
        go_live=go_live,
        dates={
            "collection_deadline": (go_live - timedelta(days=49)).isoformat(),
            "trainings": [(go_live - timedelta(days=21)).isoformat()],
            "mandatory_from": (go_live + timedelta(days=150)).isoformat(),
        },
    )
    municipality = Municipality(
        ags="08999999", name="Musterhausen", type_code="64", district_code="08999", state_code="08"
    )
    enrolment = Enrolment(
        campaign_id="beispiel", ags="08999999", stage="checklist_follow_up", stage_entered_at=now
    )
    return campaign, enrolment, municipality


def sample_extra(kind: str, now: datetime) -> dict[str, Any]:
    """Made-up variables a kind needs, for test mails and template checks."""
    today = now.date()
    items = [
        {
            "title": "Ansprechpersonen und Funktionspostfach gemeldet",
            "due": today - timedelta(days=3),
        },
        {"title": "Schulung besucht", "due": today + timedelta(days=10)},
    ]
    samples: dict[str, dict[str, Any]] = {
        "information_request": {
            "questions": [
                {"label": "Ansprechperson im Bauamt", "required": True},
                {"label": "Funktionspostfach für Benachrichtigungen", "required": True},
            ]
        },
        "summary": {
            "checklist": [{**i, "done": False, "overdue": False} for i in items],
        },
        "reminder": {"open_items": items, "open_questions": ["Sitzungsrhythmus des Gemeinderats"]},
        "escalation": {"open_items": items, "reminders_sent": 3},
        "submission_confirmation": {
            "submitted_at": now,
            "version": 2,
            "complete": False,
            "missing": ["Funktionspostfach für Benachrichtigungen"],
        },
        "weekly_report": {
            "week": f"{now.isocalendar().week}/{now.isocalendar().year}",
            "as_of": today,
            "rows": [
                {
                    "municipality": "Gemeinde Musterhausen",
                    "stage": "Checklisten-Nachverfolgung",
                    "open_items": 2,
                    "overdue_items": 1,
                },
                {
                    "municipality": "Stadt Beispielstadt",
                    "stage": "Go-Live",
                    "open_items": 0,
                    "overdue_items": 0,
                },
            ],
            "undeliverable": [
                {
                    "municipality": "Gemeinde Musterhausen",
                    "contact": "bauamt@musterhausen.example",
                    "reason": "550 Mailbox unavailable",
                }
            ],
            "mail_stats": {"zugestellt": 40, "ungewiss": 0},
        },
    }
    return samples.get(kind, {})


def queue_test_mail(session: Session, *, address: str, kind: str, now: datetime) -> OutboxMessage:
    """Queue a '[TEST] ' copy of KIND with sample data to ADDRESS; never counts as campaign mail."""
    if kind not in MAIL_KINDS:
        known = ", ".join(MAIL_KINDS)
        raise UserError(say("service.mail_preview.kind_unknown", kind=kind, known=known))
    settings = get_settings()
    normalize_address(address)
    campaign, enrolment, municipality = sample_objects(now)
    link = portal_url(settings.portal_base_url, "TESTLINK") if kind in KINDS_WITH_LINK else None
    context = build_context(
        None,
        campaign=campaign,
        enrolment=enrolment,
        municipality=municipality,
        contacts=[],
        kind=kind,
        sequence=1,
        now=now,
        settings=settings,
        portal_link=link,
        extra=sample_extra(kind, now),
    )
    rendered = render_mail(kind, context)
    rendered = RenderedMail(f"[TEST] {rendered.subject}", rendered.text, rendered.html)
    unique = f"{now:%Y%m%d%H%M%S}-{secrets.token_hex(4)}"
    mail = OutgoingMail(
        to=[Recipient(address)],
        cc=[],
        campaign_id=None,
        ags=None,
        kind=kind,
        sequence=1,
        message_id=make_message_id(
            campaign_id="test",
            ags=None,
            kind=kind,
            sequence=unique,
            domain=settings.effective_message_id_domain,
        ),
        now=now,
        is_test=True,
        meta={"test": True},
    )
    return store_message(session, rendered, mail, settings=settings)


def preview_campaign_mail(
    session: Session,
    *,
    campaign_id: str,
    ags: str,
    kind: str,
    now: datetime,
    sequence: int = 1,
    extra: dict[str, Any] | None = None,
) -> MailPreview:
    """How KIND would look for AGS in CAMPAIGN_ID; nothing is queued, no link is issued."""
    settings = get_settings()
    campaign = get_campaign(session, campaign_id)
    municipality = session.get(Municipality, ags)
    if municipality is None:
        raise UserError(say("service.mail_preview.not_in_directory", ags=ags))
    enrolment = session.exec(
        select(Enrolment).where(Enrolment.campaign_id == campaign_id, Enrolment.ags == ags)
    ).first()
    if enrolment is None:
        raise UserError(say("service.mail_preview.not_enrolled", ags=ags, campaign=campaign_id))
    definition = campaign_definition(campaign)
    roles = definition.contact_roles if definition else ["Hauptamt"]
    fallback, cc = True, []
    if kind == "escalation" and definition is not None:
        # As the reminder policy sends it: the escalation roles only, the coordinator in Cc.
        roles, fallback = list(definition.reminders.escalation_roles), False
        cc = [Recipient(settings.coordinator_email, settings.coordinator_name)]
    contacts = select_recipients(session, ags=ags, roles=roles, fallback_to_any=fallback)
    warnings = [] if contacts else [say("service.mail_preview.nobody")]
    link = (
        portal_url(settings.portal_base_url, PREVIEW_LINK_TOKEN)
        if kind in KINDS_WITH_LINK
        else None
    )
    composed = compose_campaign_mail(
        session,
        campaign=campaign,
        request=MailRequest(enrolment, municipality, kind, sequence, extra),
        contacts=contacts,
        now=now,
        settings=settings,
        portal_link=link,
    )
    to = [Recipient(c.email, c.name) for c in contacts] or [
        Recipient("keine-ansprechperson@example.invalid")
    ]
    mail = OutgoingMail(
        to=to,
        cc=cc,
        campaign_id=campaign.id,
        ags=ags,
        kind=kind,
        sequence=sequence,
        message_id=logical_message_id(campaign.id, ags, kind, sequence, settings),
        now=now,
        attachments=composed.attachments,
    )
    raw = build_mail(composed.rendered, mail, settings)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    headers = {name: str(value) for name, value in parsed.items()}
    rendered = composed.rendered
    return MailPreview(headers, rendered.text, rendered.html, raw, warnings)
