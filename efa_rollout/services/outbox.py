"""The queueing side of the outbox: one row per logical mail, rendered and built up front.

Engine and reminder use cases call `queue_campaign_mail`; it is idempotent per
(campaign, municipality, kind, sequence), so a flow may run twice without sending twice.
Nothing here talks SMTP: `efa_rollout.mail.delivery` does that later. Also the coordinator's
admin actions on queued mail: list, retry, cancel.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from efa_rollout.definitions import CampaignDefinition
from efa_rollout.domain.audit import EventKind
from efa_rollout.mail.calendar import KINDS_WITH_CALENDAR, calendar_attachment, sent_dates_batch
from efa_rollout.mail.context import (
    KINDS_WITH_LINK,
    build_context,
    campaign_definition,
)
from efa_rollout.mail.ledger import FINAL_RECIPIENT_STATES
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
    derive_token,
    hash_token,
    issue_mail_token,
    load_link_secret,
    new_nonce,
)
from efa_rollout.mail.render import MailRenderError, RenderedMail, render_mail
from efa_rollout.mail.suppression import event_row as suppression_event
from efa_rollout.mail.suppression import suppressed_reasons, suppressed_state
from efa_rollout.services.links import portal_url
from efa_rollout.settings import Settings, get_settings
from models import (
    Campaign,
    ChecklistItemState,
    Contact,
    Enrolment,
    Event,
    Municipality,
    OutboxMessage,
    PortalToken,
    table_of,
)

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
    return _choose_recipients(list(contacts), roles, fallback_to_any=fallback_to_any)


def _choose_recipients(
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


def _row_values(
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
    values = _row_values(
        rendered, mail, settings=settings, sender=normalize_address(settings.mail_from)
    )
    row = OutboxMessage(**values)
    session.add(row)
    session.flush()
    return row


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
) -> ComposedMail:
    """Context, rendering and calendar of one campaign mail: what queueing and preview share.

    DEFINITION, DONE_ITEMS and SENT (the calendar entries sent before) may be given by a caller
    that loaded them for a whole batch; otherwise they are read with SESSION.
    """
    kind, extra = request.kind, request.extra
    if attachment_names is not None:  # what the mail says it carries (the calendar aside)
        extra = {**(extra or {}), "attachment_names": attachment_names}
    context = build_context(
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
    rendered = render_mail(kind, context)
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


def _check_placeholders(rendered: RenderedMail, raw: bytes) -> None:
    """Every link placeholder must be findable at hand-over (in the body, not the subject)."""
    expected = rendered.text.count(PLACEHOLDER) + rendered.html.count(PLACEHOLDER)
    if PLACEHOLDER in rendered.subject or count_placeholders(raw) != expected:
        raise MailRenderError(
            "Der persönliche Portal-Link darf nur im Text der Mail stehen, nicht im Betreff.",
            details=["Es wurde nichts in den Postausgang gestellt."],
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
                cc=_coordinator_cc(settings) if cc_coordinator else [],
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


#: What became of a MailRequest.
QUEUED, EXISTS, NO_RECIPIENT = "queued", "exists", "no_recipient"


def queue_campaign_mails(
    session: Session, *, campaign: Campaign, requests: Sequence[MailRequest], now: datetime
) -> list[str]:
    """Queue a batch of mails of CAMPAIGN: QUEUED, EXISTS or NO_RECIPIENT per request.

    The batch form of `queue_campaign_mail` (same rows, same mail): the definition, settings
    and link secret once; existing rows, contacts and checklist states with one query each;
    rows and portal tokens inserted in bulk. A concurrent writer that queued the same logical
    mail first wins (ON CONFLICT DO NOTHING): EXISTS. Renders everything before it writes, so a
    template error raises with nothing stored. Does not commit.
    """
    if not requests:
        return []
    settings = get_settings()
    definition = campaign_definition(campaign)
    default_roles = definition.contact_roles if definition else ["Hauptamt"]
    ags_list = sorted({r.municipality.ags for r in requests})
    existing = _existing_keys(session, campaign.id, ags_list)
    contacts = _contacts_by_ags(session, ags_list)
    from efa_rollout.services.suppression import drop_suppressed, suppressed_addresses

    blocked = suppressed_addresses(session, [c.email for cs in contacts.values() for c in cs])
    done = _done_items(session, [r.enrolment.id for r in requests if r.enrolment.id is not None])
    sent = (
        sent_dates_batch(session, campaign.id, ags_list)
        if any(r.kind in KINDS_WITH_CALENDAR for r in requests)
        else {}
    )
    secret = (
        load_link_secret(settings.data_dir)
        if any(r.kind in KINDS_WITH_LINK for r in requests)
        else b""
    )
    sender = normalize_address(settings.mail_from)
    results: list[str] = []
    rows: list[dict[str, Any]] = []
    tokens: dict[str, dict[str, Any]] = {}
    without: list[MailRequest] = []
    for request in requests:
        ags = request.municipality.ags
        key = (ags, request.kind, request.sequence)
        if key in existing:
            results.append(EXISTS)
            continue
        existing.add(key)  # the same mail twice in one batch: once
        roles = request.recipient_roles if request.recipient_roles is not None else default_roles
        chosen = _choose_recipients(
            contacts.get(ags, []), roles, fallback_to_any=request.recipient_roles is None
        )
        if any(c.email.lower() in blocked for c in chosen):  # rare: logged per logical mail
            chosen = drop_suppressed(
                session,
                chosen,
                campaign_id=campaign.id,
                ags=ags,
                kind=request.kind,
                sequence=request.sequence,
                now=now,
            )
        if not chosen:
            without.append(request)
            results.append(NO_RECIPIENT)
            continue
        message_id = logical_message_id(campaign.id, ags, request.kind, request.sequence, settings)
        meta: dict[str, Any] = {
            **(request.meta or {}),
            "contact_ids": [c.id for c in chosen],
            "enrolment_id": request.enrolment.id,
        }
        link = None
        if request.kind in KINDS_WITH_LINK:
            nonce = new_nonce()
            token_hash = hash_token(derive_token(secret, nonce, message_id))
            meta["link"] = {"nonce": nonce, "hash": token_hash}
            tokens[message_id] = {
                "campaign_id": campaign.id,
                "ags": ags,
                "token_hash": token_hash,
                "created_at": now,
                "expires_at": now + timedelta(days=settings.portal_token_days),
                "revoked_at": None,
            }
            link = portal_url(settings.portal_base_url, PLACEHOLDER)
        composed = compose_campaign_mail(
            None,
            campaign=campaign,
            request=request,
            contacts=chosen,
            now=now,
            settings=settings,
            portal_link=link,
            attachment_names=[],
            definition=definition,
            done_items=done.get(request.enrolment.id or 0, set()),  # stored: never None
            sent=sent.get(ags, {}),
        )
        if composed.calendar is not None:
            meta["calendar"] = composed.calendar
        mail = OutgoingMail(
            to=[Recipient(c.email, c.name) for c in chosen],
            cc=_coordinator_cc(settings) if request.cc_coordinator else [],
            campaign_id=campaign.id,
            ags=ags,
            kind=request.kind,
            sequence=request.sequence,
            message_id=message_id,
            now=now,
            not_after=request.not_after,
            meta=meta,
            attachments=composed.attachments,
        )
        rows.append(_row_values(composed.rendered, mail, settings=settings, sender=sender))
        results.append(QUEUED)
    inserted = _insert_rows(session, rows)
    if tokens:
        wanted = [tokens[m] for m in inserted if m in tokens]
        if wanted:
            session.execute(insert(table_of(PortalToken)), wanted)
    if len(inserted) < len(rows):  # lost a race to a concurrent writer for these
        lost = {r["message_id"] for r in rows} - inserted
        index = 0
        for position, result in enumerate(results):
            if result == QUEUED:
                if rows[index]["message_id"] in lost:
                    results[position] = EXISTS
                index += 1
    _record_not_queued_batch(session, campaign, without, now)
    return results


def _existing_keys(
    session: Session, campaign_id: str, ags_list: list[str]
) -> set[tuple[str, str, int]]:
    """(AGS, kind, sequence) of the mails of CAMPAIGN_ID to AGS_LIST already in the outbox."""
    query = select(OutboxMessage.ags, OutboxMessage.kind, OutboxMessage.sequence).where(
        OutboxMessage.campaign_id == campaign_id,
        col(OutboxMessage.ags).in_(ags_list),
    )
    return {(a, k, s) for a, k, s in session.exec(query)}  # type: ignore[misc]


def _contacts_by_ags(session: Session, ags_list: list[str]) -> dict[str, list[Contact]]:
    contacts: dict[str, list[Contact]] = {}
    query = select(Contact).where(col(Contact.ags).in_(ags_list)).order_by(col(Contact.id))
    for contact in session.exec(query):
        contacts.setdefault(contact.ags, []).append(contact)
    return contacts


def _done_items(session: Session, enrolment_ids: list[int]) -> dict[int, set[str]]:
    done: dict[int, set[str]] = {}
    if not enrolment_ids:
        return done
    query = select(ChecklistItemState.enrolment_id, ChecklistItemState.item_key).where(
        col(ChecklistItemState.enrolment_id).in_(enrolment_ids),
        col(ChecklistItemState.done).is_(True),
    )
    for enrolment_id, key in session.exec(query):
        done.setdefault(enrolment_id, set()).add(key)
    return done


def _insert_rows(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert outbox ROWS, skipping any a concurrent writer inserted first; their Message-IDs."""
    if not rows:
        return set()
    from sqlalchemy.dialects import postgresql, sqlite

    table = table_of(OutboxMessage)
    dialect = session.connection().dialect.name
    insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert_for(table).on_conflict_do_nothing().returning(table.c.message_id)
    result = session.execute(statement, rows)
    return set(result.scalars().all())


def _record_not_queued_batch(
    session: Session, campaign: Campaign, requests: list[MailRequest], now: datetime
) -> None:
    """`_record_not_queued` for a batch: one query for the events already logged."""
    if not requests:
        return
    logged = {
        (e.ags, json.dumps(e.data, sort_keys=True))
        for e in session.exec(
            select(Event).where(
                Event.campaign_id == campaign.id,
                col(Event.ags).in_(sorted({r.municipality.ags for r in requests})),
                Event.kind == "mail_not_queued",
            )
        )
    }
    for request in requests:
        data = {"kind": request.kind, "sequence": request.sequence}
        key = (request.municipality.ags, json.dumps(data, sort_keys=True))
        if key in logged:
            continue
        logged.add(key)
        session.add(
            Event(
                at=now,
                campaign_id=campaign.id,
                ags=request.municipality.ags,
                enrolment_id=request.enrolment.id,
                actor=ACTOR,
                kind="mail_not_queued",
                reason="keine zustellbare Ansprechperson",
                data=data,
            )
        )


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
        blocked = _left_out_suppressed(session, row, states, now)
        for address in blocked:
            problems.append(
                f"{row.id}: nicht an {address} – Adresse gesperrt (unzustellbar gemeldet); "
                f"aufheben mit »efa contacts unsuppress {address}«"
            )
        if blocked and not _open_recipients(row, states):
            row.recipient_status = states
            session.add(row)
            problems.append(f"{row.id}: nicht erneut gesendet – kein offener Empfänger ohne Sperre")
            continue
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


def _open_recipients(row: OutboxMessage, states: dict[str, Any]) -> list[str]:
    """Envelope addresses of ROW not yet final in STATES (sent, refused, suppressed)."""
    final = {a for a, s in states.items() if s.get("status") in FINAL_RECIPIENT_STATES}
    return list(dict.fromkeys(a for a in [*row.recipients, *row.cc] if a not in final))


def _left_out_suppressed(
    session: Session, row: OutboxMessage, states: dict[str, Any], now: datetime
) -> list[str]:
    """Mark ROW's open recipients that are suppressed in STATES, log each; their addresses."""
    open_addresses = _open_recipients(row, states)
    if not open_addresses:
        return []
    reasons = suppressed_reasons(session.connection(), open_addresses)
    blocked = [a for a in open_addresses if a.lower() in reasons]
    for address in blocked:
        reason = reasons[address.lower()]
        states[address] = suppressed_state(reason, now)
        session.add(
            Event(
                **suppression_event(
                    outbox_id=row.id or 0,
                    campaign_id=row.campaign_id,
                    ags=row.ags,
                    kind=row.kind,
                    sequence=row.sequence,
                    address=address.lower(),
                    reason=reason,
                    stage="retry",
                    now=now,
                )
            )
        )
    return [a.lower() for a in blocked]


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
