"""Queueing a batch of campaign mails at once: the start's and the reminders' path.

Same rows and the same mail as `services.outbox.queue_campaign_mail`, one request at a time
there; here the definition, settings and link secret once per batch, one query each for the
existing rows, contacts and checklist states, and rows and portal tokens inserted in bulk.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from efa_rollout.mail.calendar import KINDS_WITH_CALENDAR, sent_dates_batch
from efa_rollout.mail.context import KINDS_WITH_LINK, campaign_definition
from efa_rollout.mail.message import (
    Recipient,
    normalize_address,
)
from efa_rollout.mail.personal_link import (
    PLACEHOLDER,
    derive_token,
    hash_token,
    load_link_secret,
    new_nonce,
)
from efa_rollout.mail.render_once import RenderOnce
from efa_rollout.services.bulk_gc import fewer_collections
from efa_rollout.services.compose import MailRequest, compose_campaign_mail
from efa_rollout.services.links import portal_url
from efa_rollout.services.outbox import (
    ACTOR,
    OutgoingMail,
    choose_recipients,
    coordinator_cc,
    logical_message_id,
    row_values,
)
from efa_rollout.settings import get_settings
from efa_rollout.texts import say
from models import (
    Campaign,
    ChecklistItemState,
    Contact,
    Event,
    OutboxMessage,
    PortalToken,
    table_of,
)

#: What became of a MailRequest.
QUEUED, EXISTS, NO_RECIPIENT = "queued", "exists", "no_recipient"


@fewer_collections()
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
    renders = RenderOnce()
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
        chosen = choose_recipients(
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
            renders=renders,
        )
        if composed.calendar is not None:
            meta["calendar"] = composed.calendar
        mail = OutgoingMail(
            to=[Recipient(c.email, c.name) for c in chosen],
            cc=coordinator_cc(settings) if request.cc_coordinator else [],
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
        rows.append(row_values(composed.rendered, mail, settings=settings, sender=sender))
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
                reason=say("service.events.no_contact"),
                data=data,
            )
        )
