"""Composing a campaign mail: its context, rendering and calendar, for queueing and preview."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from efa_rollout.definitions import CampaignDefinition
from efa_rollout.mail.calendar import calendar_attachment
from efa_rollout.mail.context import build_context, context_key, per_mail_values
from efa_rollout.mail.message import Attachment
from efa_rollout.mail.render import RenderedMail, render_mail
from efa_rollout.mail.render_once import RenderOnce
from efa_rollout.settings import Settings
from models import Campaign, Contact, Enrolment, Municipality


@dataclass(frozen=True)
class MailRequest:
    """One logical mail to one municipality, for `queue_campaign_mails`."""

    enrolment: Enrolment
    municipality: Municipality
    kind: str
    sequence: int = 1
    extra: dict[str, Any] | None = None
    not_after: datetime | None = None
    cc_coordinator: bool = False
    recipient_roles: list[str] | None = None
    #: Kept in the row's meta next to what the outbox itself records.
    meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class ComposedMail:
    """A campaign mail rendered, with its calendar entries (if its kind has them)."""

    context: dict[str, Any]
    rendered: RenderedMail
    attachments: list[Attachment]
    #: UID → [date, sequence] of the calendar entries, for the row's meta (None: none).
    calendar: dict[str, list[Any]] | None


def compose_campaign_mail(
    session: Session | None,
    *,
    campaign: Campaign,
    request: MailRequest,
    contacts: Sequence[Contact],
    now: datetime,
    settings: Settings,
    portal_link: str | None,
    attachment_names: list[str] | None = None,
    definition: CampaignDefinition | bool | None = False,
    done_items: set[str] | None = None,
    sent: dict[str, tuple[str, int]] | None = None,
    renders: RenderOnce | None = None,
) -> ComposedMail:
    """Context, rendering and calendar of one campaign mail: what queueing and preview share.

    DEFINITION, DONE_ITEMS and SENT (the calendar entries sent before) may be given by a caller
    that loaded them for a whole batch; otherwise they are read with SESSION. RENDERS: a batch's
    `RenderOnce`, which renders each distinct content once (used without a SESSION only).
    """
    kind, extra = request.kind, request.extra
    if attachment_names is not None:  # what the mail says it carries (the calendar aside)
        extra = {**(extra or {}), "attachment_names": attachment_names}

    def make_context() -> dict[str, Any]:
        return build_context(
            session,
            campaign=campaign,
            enrolment=request.enrolment,
            municipality=request.municipality,
            contacts=contacts,
            kind=kind,
            sequence=request.sequence,
            now=now,
            settings=settings,
            portal_link=portal_link,
            extra=extra,
            definition=definition,
            done_items=done_items,
        )

    if renders is None or session is not None or isinstance(definition, bool):
        context = make_context()
        rendered = render_mail(kind, context)
    else:
        key = context_key(
            campaign=campaign,
            enrolment=request.enrolment,
            kind=kind,
            sequence=request.sequence,
            now=now,
            portal_link=portal_link,
            extra=extra,
            definition=definition,
            done_items=done_items or set(),
        )
        values = per_mail_values(request.municipality, contacts)
        context, rendered = renders.compose(kind, key, values, make_context)
    invite = calendar_attachment(
        session,
        context=context,
        campaign_id=campaign.id,
        ags=request.municipality.ags,
        is_pilot=request.enrolment.is_pilot,
        now=now,
        settings=settings,
        sent=sent,
    )
    if invite is None:
        return ComposedMail(context, rendered, [], None)
    return ComposedMail(context, rendered, [invite[0]], invite[1])
