"""The queueing side of the outbox: one row per logical mail, rendered and built up front.

Engine and reminder use cases call `queue_campaign_mail`; it is idempotent per
(campaign, municipality, kind, sequence), so a flow may run twice without sending twice.
Nothing here talks SMTP: `efa_rollout.mail.delivery` does that later. Also the coordinator's
admin actions on queued mail: list, retry, cancel.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from efa_rollout.domain.audit import EventKind
from efa_rollout.mail.calendar import calendar_attachment
from efa_rollout.mail.context import (
    KINDS_WITH_LINK,
    build_context,
    campaign_definition,
)
from efa_rollout.mail.message import (
    Attachment,
    InvalidAddressError,
    Recipient,
    build_message,
    envelope_recipients,
    make_message_id,
    message_bytes,
    normalize_address,
)
from efa_rollout.mail.render import RenderedMail, render_mail
from efa_rollout.services.links import issue_token, portal_url
from efa_rollout.settings import Settings, get_settings
from models import Campaign, Contact, Enrolment, Event, Municipality, OutboxMessage

ACTOR = "postausgang"


RETRYABLE_STATUSES = ("unknown", "failed_permanently", "retrying")


CANCELLABLE_STATUSES = ("queued", "retrying", "unknown", "failed_permanently")


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
            reason="keine zustellbare Ansprechperson",
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


def store_message(
    session: Session,
    *,
    rendered: RenderedMail,
    to: list[Recipient],
    cc: list[Recipient],
    campaign_id: str | None,
    ags: str | None,
    kind: str,
    sequence: int,
    message_id: str,
    now: datetime,
    not_after: datetime | None,
    is_test: bool,
    meta: dict[str, Any],
    settings: Settings,
    attachments: list[Attachment] | None = None,
) -> OutboxMessage:
    message = build_message(
        rendered,
        to=to,
        cc=cc,
        message_id=message_id,
        date=now,
        kind=kind,
        campaign_id=campaign_id,
        ags=ags,
        attachments=attachments or [],
        settings=settings,
    )
    if attachments:
        meta = {**meta, "attachments": [a.filename for a in attachments]}
    to_addresses = envelope_recipients(to)
    cc_addresses = [
        a for a in envelope_recipients(cc) if a.lower() not in {t.lower() for t in to_addresses}
    ]
    row = OutboxMessage(
        campaign_id=campaign_id,
        ags=ags,
        kind=kind,
        sequence=sequence,
        message_id=message_id,
        sender=normalize_address(settings.mail_from),
        recipients=to_addresses,
        cc=cc_addresses,
        subject=str(message["Subject"]),
        raw=message_bytes(message),
        is_test=is_test,
        status="queued",
        next_attempt_at=now,
        not_after=not_after,
        queued_at=now,
        meta=meta,
    )
    session.add(row)
    session.flush()
    return row


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
    from efa_rollout.services.bounces import drop_suppressed  # services import this module

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
    extra = {**(extra or {}), "attachment_names": [a.filename for a in files]}
    _ensure_outer_transaction(session)
    try:
        with session.begin_nested():
            link = None
            if kind in KINDS_WITH_LINK:
                token = issue_token(
                    session,
                    campaign_id=campaign.id,
                    ags=municipality.ags,
                    now=now,
                    valid_days=settings.portal_token_days,
                )
                link = portal_url(settings.portal_base_url, token)
            context = build_context(
                session,
                campaign=campaign,
                enrolment=enrolment,
                municipality=municipality,
                contacts=contacts,
                kind=kind,
                sequence=sequence,
                now=now,
                settings=settings,
                portal_link=link,
                extra=extra,
            )
            rendered = render_mail(kind, context)
            meta: dict[str, Any] = {"contact_ids": [c.id for c in contacts]}
            meta["enrolment_id"] = enrolment.id
            invite = calendar_attachment(
                session,
                context=context,
                campaign_id=campaign.id,
                ags=municipality.ags,
                is_pilot=enrolment.is_pilot,
                now=now,
                settings=settings,
            )
            if invite is not None:
                files.append(invite[0])
                meta["calendar"] = invite[1]
            return store_message(
                session,
                rendered=rendered,
                to=[Recipient(c.email, c.name) for c in contacts],
                cc=_coordinator_cc(settings) if cc_coordinator else [],
                campaign_id=campaign.id,
                ags=municipality.ags,
                kind=kind,
                sequence=sequence,
                message_id=logical_message_id(
                    campaign.id, municipality.ags, kind, sequence, settings
                ),
                now=now,
                not_after=not_after,
                is_test=False,
                meta=meta,
                settings=settings,
                attachments=files,
            )
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
            return store_message(
                session,
                rendered=rendered,
                to=[Recipient(a) for a in addresses],
                cc=[],
                campaign_id=campaign.id,
                ags=None,
                kind=kind,
                sequence=sequence,
                message_id=logical_message_id(campaign.id, None, kind, sequence, settings),
                now=now,
                not_after=None,
                is_test=False,
                meta={},
                settings=settings,
            )
    except IntegrityError:
        return None


def _coordinator_cc(settings: Settings) -> list[Recipient]:
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


def list_messages(
    session: Session,
    *,
    statuses: list[str] | None = None,
    campaign_id: str | None = None,
    limit: int = 200,
) -> list[OutboxMessage]:
    """Outbox rows, newest first, filtered by status and campaign."""
    query = select(OutboxMessage).order_by(col(OutboxMessage.id).desc()).limit(limit)
    if statuses:
        query = query.where(col(OutboxMessage.status).in_(statuses))
    if campaign_id:
        query = query.where(OutboxMessage.campaign_id == campaign_id)
    return list(session.exec(query).all())


def _select_for_action(
    session: Session, ids: list[int] | None, statuses: list[str] | None
) -> tuple[list[OutboxMessage], list[str]]:
    """Rows named by ID or status; unknown IDs reported."""
    problems: list[str] = []
    rows: list[OutboxMessage] = []
    if ids:
        for outbox_id in ids:
            row = session.get(OutboxMessage, outbox_id)
            if row is None:
                problems.append(f"{outbox_id}: gibt es nicht")
            else:
                rows.append(row)
    if statuses:
        rows.extend(
            session.exec(select(OutboxMessage).where(col(OutboxMessage.status).in_(statuses))).all()
        )
    return rows, problems


def retry_messages(
    session: Session,
    *,
    now: datetime,
    ids: list[int] | None = None,
    statuses: list[str] | None = None,
    actor: str | None = None,
) -> tuple[list[OutboxMessage], list[str]]:
    """Send again (same Message-ID) to every recipient not yet served; (rows, problems)."""
    rows, problems = _select_for_action(session, ids, statuses)
    retried: list[OutboxMessage] = []
    for row in rows:
        if row.status not in RETRYABLE_STATUSES:
            problems.append(f"{row.id}: Status »{row.status}« kann nicht erneut gesendet werden")
            continue
        states = {
            a: s for a, s in (row.recipient_status or {}).items() if s.get("status") == "sent"
        }
        previous = row.status
        row.recipient_status = states
        row.status = "retrying"
        row.next_attempt_at = now
        row.claimed_by = row.claimed_at = None
        row.meta = {
            **(row.meta or {}),
            "manual_retry_at": now.isoformat(),
            "manual_retries": int((row.meta or {}).get("manual_retries", 0)) + 1,
        }
        session.add(row)
        session.add(
            _action_event(row, EventKind.MAIL_RETRY_REQUESTED, f"vorher: {previous}", now, actor)
        )
        retried.append(row)
    return retried, problems


def cancel_messages(
    session: Session, *, now: datetime, ids: list[int], actor: str | None = None
) -> tuple[list[OutboxMessage], list[str]]:
    """Cancel messages not yet sent; (rows, problems)."""
    rows, problems = _select_for_action(session, ids, None)
    cancelled: list[OutboxMessage] = []
    for row in rows:
        if row.status not in CANCELLABLE_STATUSES:
            problems.append(f"{row.id}: Status »{row.status}« kann nicht storniert werden")
            continue
        previous = row.status
        row.status = "cancelled"
        row.next_attempt_at = None
        session.add(row)
        session.add(_action_event(row, EventKind.MAIL_CANCELLED, f"vorher: {previous}", now, actor))
        cancelled.append(row)
    return cancelled, problems


def _action_event(
    row: OutboxMessage, kind: EventKind, reason: str, now: datetime, actor: str | None
) -> Event:
    return Event(
        at=now,
        campaign_id=row.campaign_id,
        ags=row.ags,
        actor=actor or get_settings().actor,
        kind=kind,
        reason=reason,
        data={"outbox_id": row.id, "message_id": row.message_id},
    )
