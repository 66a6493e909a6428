"""The queueing side of the outbox: one row per logical mail, rendered and built up front.

Engine and reminder use cases call `queue_campaign_mail`; it is idempotent per
(campaign, municipality, kind, sequence), so a flow may run twice without sending twice.
Nothing here talks SMTP: `efa_rollout.mail.delivery` does that later. The batch form is in
`outbox_batch`, the coordinator's list/retry/cancel in `outbox_admin`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from efa_rollout.domain.audit import EventKind
from efa_rollout.mail.context import (
    KINDS_WITH_LINK,
    build_context,
    campaign_definition,
)
from efa_rollout.mail.message import (
    Attachment,
    InvalidAddressError,
    Recipient,
    build_raw,
    clean_header,
    envelope_recipients,
    make_message_id,
    normalize_address,
)
from efa_rollout.mail.personal_link import (
    PLACEHOLDER,
    count_placeholders,
    issue_mail_token,
    load_link_secret,
)
from efa_rollout.mail.render import MailRenderError, RenderedMail, render_mail
from efa_rollout.services.compose import MailRequest, compose_campaign_mail
from efa_rollout.services.links import portal_url
from efa_rollout.settings import Settings, get_settings
from efa_rollout.texts import say
from models import (
    Campaign,
    Contact,
    Enrolment,
    Event,
    Municipality,
    OutboxMessage,
)

ACTOR = "postausgang"


def _existing(
    session: Session, campaign_id: str | None, ags: str | None, kind: str, sequence: int
) -> OutboxMessage | None:
    return session.exec(
        select(OutboxMessage).where(
            OutboxMessage.campaign_id == campaign_id,
            OutboxMessage.ags == ags,
            OutboxMessage.kind == kind,
            OutboxMessage.sequence == sequence,
        )
    ).first()


def _deliverable(contact: Contact) -> bool:
    if contact.delivery_failed_at is not None:
        return False
    try:
        normalize_address(contact.email)
    except InvalidAddressError:
        return False
    return True


def select_recipients(
    session: Session, *, ags: str, roles: list[str] | None, fallback_to_any: bool
) -> list[Contact]:
    """Deliverable contacts of AGS with a role in ROLES (in that order), one per address."""
    contacts = session.exec(
        select(Contact).where(Contact.ags == ags).order_by(col(Contact.id))
    ).all()
    return choose_recipients(list(contacts), roles, fallback_to_any=fallback_to_any)


def choose_recipients(
    contacts: list[Contact], roles: list[str] | None, *, fallback_to_any: bool
) -> list[Contact]:
    """Of one municipality's CONTACTS: the deliverable ones with a role in ROLES, by address."""
    usable = [c for c in contacts if _deliverable(c)]
    wanted = [r.casefold() for r in roles or []]
    chosen = sorted(
        (c for c in usable if c.role.casefold() in wanted),
        key=lambda c: wanted.index(c.role.casefold()),
    )
    if not chosen and fallback_to_any:
        chosen = usable
    unique: dict[str, Contact] = {}
    for contact in chosen:
        unique.setdefault(normalize_address(contact.email).lower(), contact)
    return list(unique.values())


def _record_not_queued(
    session: Session,
    *,
    campaign: Campaign,
    enrolment: Enrolment,
    kind: str,
    sequence: int,
    now: datetime,
) -> None:
    """Log once per logical mail that it could not be queued, so reports can show it."""
    data = {"kind": kind, "sequence": sequence}
    earlier = session.exec(
        select(Event).where(
            Event.campaign_id == campaign.id,
            Event.ags == enrolment.ags,
            Event.kind == "mail_not_queued",
        )
    ).all()
    if any(e.data == data for e in earlier):
        return
    session.add(
        Event(
            at=now,
            campaign_id=campaign.id,
            ags=enrolment.ags,
            enrolment_id=enrolment.id,
            actor=ACTOR,
            kind=EventKind.MAIL_NOT_QUEUED,
            reason=say("service.events.no_contact"),
            data=data,
        )
    )


def _ensure_outer_transaction(session: Session) -> None:
    """On SQLite, open the outer transaction explicitly so a SAVEPOINT stays nested in it.

    pysqlite only emits BEGIN before DML; a SAVEPOINT issued first would become the outer
    transaction and its RELEASE would commit behind the caller's back.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.dbapi_connection
    if raw is not None and not raw.in_transaction:
        connection.exec_driver_sql("BEGIN")


@dataclass(frozen=True)
class OutgoingMail:
    """Everything of an outbox row besides the rendered text: envelope, identity, timing."""

    to: list[Recipient]
    cc: list[Recipient]
    campaign_id: str | None
    ags: str | None
    kind: str
    sequence: int
    message_id: str
    now: datetime
    not_after: datetime | None = None
    is_test: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)


def build_mail(rendered: RenderedMail, mail: OutgoingMail, settings: Settings) -> bytes:
    """The complete message of MAIL, as it is stored and sent."""
    return build_raw(
        rendered,
        to=mail.to,
        cc=mail.cc,
        message_id=mail.message_id,
        date=mail.now,
        kind=mail.kind,
        campaign_id=mail.campaign_id,
        ags=mail.ags,
        attachments=mail.attachments,
        settings=settings,
    )


def row_values(
    rendered: RenderedMail, mail: OutgoingMail, *, settings: Settings, sender: str
) -> dict[str, Any]:
    """The column values of one outbox row: the complete message, built now."""
    raw = build_mail(rendered, mail, settings)
    meta = mail.meta
    if mail.attachments:
        meta = {**meta, "attachments": [a.filename for a in mail.attachments]}
    if "link" in meta:
        _check_placeholders(rendered, raw)
    to_addresses = envelope_recipients(mail.to)
    seen = {t.lower() for t in to_addresses}
    cc_addresses = [a for a in envelope_recipients(mail.cc) if a.lower() not in seen]
    return {
        "campaign_id": mail.campaign_id,
        "ags": mail.ags,
        "kind": mail.kind,
        "sequence": mail.sequence,
        "message_id": mail.message_id,
        "sender": sender,
        "recipients": to_addresses,
        "cc": cc_addresses,
        "subject": clean_header(rendered.subject),
        "raw": raw,
        "is_test": mail.is_test,
        "status": "queued",
        "attempts": 0,
        "next_attempt_at": mail.now,
        "not_after": mail.not_after,
        "claimed_by": None,
        "claimed_at": None,
        "queued_at": mail.now,
        "sent_at": None,
        "last_error": None,
        "recipient_status": {},
        "meta": meta,
    }


def store_message(
    session: Session, rendered: RenderedMail, mail: OutgoingMail, *, settings: Settings
) -> OutboxMessage:
    """Add MAIL's outbox row to SESSION (flushed, not committed)."""
    values = row_values(
        rendered, mail, settings=settings, sender=normalize_address(settings.mail_from)
    )
    row = OutboxMessage(**values)
    session.add(row)
    session.flush()
    return row


def _check_placeholders(rendered: RenderedMail, raw: bytes) -> None:
    """Every link placeholder must be findable at hand-over (in the body, not the subject)."""
    expected = rendered.text.count(PLACEHOLDER) + rendered.html.count(PLACEHOLDER)
    if PLACEHOLDER in rendered.subject or count_placeholders(raw) != expected:
        raise MailRenderError(
            say("service.outbox.link_in_subject"),
            details=[say("service.outbox.nothing_queued")],
        )


def queue_campaign_mail(
    session: Session,
    *,
    campaign: Campaign,
    enrolment: Enrolment,
    municipality: Municipality,
    kind: str,
    sequence: int,
    now: datetime,
    extra: dict[str, Any] | None = None,
    not_after: datetime | None = None,
    cc_coordinator: bool = False,
    recipient_roles: list[str] | None = None,
    attachments: list[Attachment | tuple[str, bytes, str]] | None = None,
) -> OutboxMessage | None:
    """Queue one logical mail to a municipality; None if it exists or nobody can receive it.

    Renders and builds the complete message now (a template error raises before anything
    is stored). Does not commit: the row is part of the caller's transaction.
    ATTACHMENTS: Attachment objects or (filename, bytes, MIME type) tuples.
    """
    if _existing(session, campaign.id, municipality.ags, kind, sequence) is not None:
        return None
    settings = get_settings()
    definition = campaign_definition(campaign)
    roles = (
        recipient_roles
        if recipient_roles is not None
        else (definition.contact_roles if definition else ["Hauptamt"])
    )
    contacts = select_recipients(
        session, ags=municipality.ags, roles=roles, fallback_to_any=recipient_roles is None
    )
    from efa_rollout.services.suppression import drop_suppressed  # services import this module

    contacts = drop_suppressed(
        session,
        contacts,
        campaign_id=campaign.id,
        ags=municipality.ags,
        kind=kind,
        sequence=sequence,
        now=now,
    )
    if not contacts:
        _record_not_queued(
            session, campaign=campaign, enrolment=enrolment, kind=kind, sequence=sequence, now=now
        )
        return None
    files = [Attachment.of(a) for a in attachments or []]
    message_id = logical_message_id(campaign.id, municipality.ags, kind, sequence, settings)
    meta: dict[str, Any] = {"contact_ids": [c.id for c in contacts], "enrolment_id": enrolment.id}
    _ensure_outer_transaction(session)
    try:
        with session.begin_nested():
            link = None
            if kind in KINDS_WITH_LINK:
                # Only the token's hash and a nonce are stored; the token is derived again
                # from the link secret when the mail is handed over (personal_link).
                meta["link"] = issue_mail_token(
                    session,
                    secret=load_link_secret(settings.data_dir),
                    campaign_id=campaign.id,
                    ags=municipality.ags,
                    message_id=message_id,
                    now=now,
                    valid_days=settings.portal_token_days,
                )
                link = portal_url(settings.portal_base_url, PLACEHOLDER)
            composed = compose_campaign_mail(
                session,
                campaign=campaign,
                request=MailRequest(enrolment, municipality, kind, sequence, extra),
                contacts=contacts,
                now=now,
                settings=settings,
                portal_link=link,
                attachment_names=[a.filename for a in files],
            )
            if composed.calendar is not None:
                meta["calendar"] = composed.calendar
            mail = OutgoingMail(
                to=[Recipient(c.email, c.name) for c in contacts],
                cc=coordinator_cc(settings) if cc_coordinator else [],
                campaign_id=campaign.id,
                ags=municipality.ags,
                kind=kind,
                sequence=sequence,
                message_id=message_id,
                now=now,
                not_after=not_after,
                meta=meta,
                attachments=files + composed.attachments,
            )
            return store_message(session, composed.rendered, mail, settings=settings)
    except IntegrityError:
        return None  # a concurrent writer queued the same logical mail first


def queue_coordinator_mail(
    session: Session,
    *,
    campaign: Campaign,
    kind: str,
    sequence: int,
    now: datetime,
    extra: dict[str, Any] | None = None,
    to: list[str] | None = None,
) -> OutboxMessage | None:
    """Queue a mail to the coordinator (e.g. the weekly report); None if it exists already."""
    if _existing(session, campaign.id, None, kind, sequence) is not None:
        return None
    settings = get_settings()
    addresses = to or [settings.coordinator_email]
    context = build_context(
        session,
        campaign=campaign,
        enrolment=None,
        municipality=None,
        contacts=[],
        kind=kind,
        sequence=sequence,
        now=now,
        settings=settings,
        portal_link=None,
        extra=extra,
    )
    rendered = render_mail(kind, context)
    _ensure_outer_transaction(session)
    try:
        with session.begin_nested():
            mail = OutgoingMail(
                to=[Recipient(a) for a in addresses],
                cc=[],
                campaign_id=campaign.id,
                ags=None,
                kind=kind,
                sequence=sequence,
                message_id=logical_message_id(campaign.id, None, kind, sequence, settings),
                now=now,
            )
            return store_message(session, rendered, mail, settings=settings)
    except IntegrityError:
        return None


def coordinator_cc(settings: Settings) -> list[Recipient]:
    return [Recipient(settings.coordinator_email, settings.coordinator_name)]


def logical_message_id(
    campaign_id: str | None, ags: str | None, kind: str, sequence: int | str, settings: Settings
) -> str:
    return make_message_id(
        campaign_id=campaign_id,
        ags=ags,
        kind=kind,
        sequence=sequence,
        domain=settings.effective_message_id_domain,
    )
