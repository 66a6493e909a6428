"""The summary (Zusammenfassung): one document per campaign, as HTML and PDF, versioned.

It tells every municipality what was collected and what happens next: who is how far (phase,
answers submitted), the key answers side by side, open points, the next steps with their
deadlines and the central dates. ``build_summary`` stores a new SummaryDocument only when the
content changed (by hash); ``distribute_summary`` queues one mail of kind ``summary`` per
municipality and version, with the PDF attached.

The content deliberately holds nothing that changes by itself (no "today", no checklist ticks,
no stage moves within the preparation phase), so that the summary is not sent again merely
because time passed or because it was just sent.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from efa_rollout.definitions import CampaignDefinition
from efa_rollout.domain.audit import EventKind
from efa_rollout.domain.stages import EnrolmentStatus, Stage
from efa_rollout.domain.text import german_date, signature
from efa_rollout.mail.context import municipality_label
from efa_rollout.services.answers import format_answer, latest_response
from efa_rollout.services.lookup import campaign_definition, get_campaign
from efa_rollout.services.summary_document import SUMMARY_DIR, render_html, render_pdf
from efa_rollout.texts import say
from models import Campaign, Enrolment, Event, Municipality, OutboxMessage, SummaryDocument

MAIL_KIND = "summary"


OPEN_POINTS_FIELD = "offene_punkte"


_FOLD = str.maketrans({"ä": "a", "ö": "o", "ü": "u", "ß": "ss", "Ä": "a", "Ö": "o", "Ü": "u"})


@cache
def words() -> dict[str, Any]:
    """The words of the summary's data, from templates/summary/words.yaml."""
    import yaml

    return cast("dict[str, Any]", yaml.safe_load((SUMMARY_DIR / "words.yaml").read_text("utf-8")))


def _sort_key(municipality: Municipality) -> tuple[str, str]:
    return (municipality.name.casefold().translate(_FOLD), municipality.ags)


def _central_dates(campaign: Campaign) -> list[dict[str, str]]:
    dates: list[tuple[str, int, str]] = []
    labels: dict[str, str] = words()["dates"]
    order = list(labels)
    for key, label in labels.items():
        value = campaign.dates.get(key)
        if key == "go_live":
            value = value or campaign.go_live.isoformat()
        if not value:
            continue
        values = value if isinstance(value, list) else [value]
        numbered = key == "trainings" and len(values) > 1
        for number, iso in enumerate(values, start=1):
            text = (
                words()["numbered_date"].format(label=label, number=number) if numbered else label
            )
            dates.append((str(iso), order.index(key), text))
    return [
        {"iso": iso, "date": german_date(iso, weekday=True), "label": label}
        for iso, _, label in sorted(dates)
    ]


def _next_steps(definition: CampaignDefinition, go_live: date) -> list[dict[str, str]]:
    steps = []
    note = words()["notes"]
    for item in sorted(definition.checklist, key=lambda i: i.due):
        notes = []
        if item.pilots_only:
            notes.append(note["pilots_only"])
        if item.roles:
            notes.append(note["roles"].format(roles=", ".join(item.roles)))
        if not item.required:
            notes.append(note["recommended"])
        steps.append(
            {
                "title": item.title,
                "owner": item.owner,
                "due": german_date(go_live + timedelta(days=item.due)),
                "note": ", ".join(notes),
            }
        )
    return steps


def build_summary_data(session: Session, campaign: Campaign) -> dict[str, Any]:
    """The summary's content as plain data (deterministic: the same facts give the same data).

    Only submitted answers are shown: drafts are not meant to be shared with other
    municipalities. Municipalities marked not applicable are left out; a pause is the
    coordinator's business and not shown (nor does it make a new version).
    """
    from efa_rollout.settings import get_settings

    definition = campaign_definition(campaign)
    rows = session.exec(
        select(Enrolment, Municipality)
        .join(Municipality, col(Municipality.ags) == col(Enrolment.ags))
        .where(
            Enrolment.campaign_id == campaign.id,
            Enrolment.status != EnrolmentStatus.NOT_APPLICABLE.value,
        )
    ).all()
    rows = sorted(rows, key=lambda pair: _sort_key(pair[1]))
    key_fields = [q for q in definition.questionnaire if q.key_answer]
    open_field = next((q for q in definition.questionnaire if q.key == OPEN_POINTS_FIELD), None)
    municipalities: list[dict[str, Any]] = []
    key_rows: list[dict[str, Any]] = []
    open_points: list[dict[str, Any]] = []
    counts = {"total": 0, "submitted": 0, "started": 0, "missing": 0}
    for enrolment, municipality in rows:
        assert enrolment.id is not None
        label = municipality_label(municipality)
        submitted = latest_response(session, enrolment.id, submitted_only=True)
        started = submitted is None and latest_response(session, enrolment.id) is not None
        state = (
            ("submitted" if submitted.complete else "incomplete")
            if submitted is not None
            else "started"
            if started
            else "missing"
        )
        answers_text = words()["answers"][state]
        counts["total"] += 1
        counts["submitted" if submitted else "started" if started else "missing"] += 1
        stage = Stage(enrolment.stage)
        municipalities.append(
            {
                "ags": municipality.ags,
                "name": label,
                "phase": words()["phases"].get(stage.value, stage.label),
                "answers": answers_text,
                "ready": bool(submitted and submitted.complete),
                "pilot": enrolment.is_pilot,
            }
        )
        if submitted is None:
            open_points.append(
                {
                    "name": label,
                    "text": "",
                    "missing": [words()["questionnaire_missing"]],
                }
            )
            continue
        applicable = {q.key for q in definition.fields_for(enrolment.role, enrolment.is_pilot)}
        key_rows.append(
            {
                "name": label,
                "values": [
                    format_answer(q, submitted.answers.get(q.key)) if q.key in applicable else "–"
                    for q in key_fields
                ],
            }
        )
        missing = [
            q.label
            for q in definition.fields_for(enrolment.role, enrolment.is_pilot)
            if q.required and q.key not in submitted.answers
        ]
        text = (
            format_answer(open_field, submitted.answers.get(open_field.key)) if open_field else ""
        )
        if text or missing:
            open_points.append({"name": label, "text": text, "missing": missing})
    settings = get_settings()
    return {
        "campaign": {
            "id": campaign.id,
            "title": campaign.title,
            "service": campaign.service,
            "area_name": campaign.area_name or campaign.area_code,
            "description": definition.description,
        },
        "go_live": german_date(campaign.go_live, weekday=True),
        "collection_deadline": (
            german_date(campaign.dates["collection_deadline"], weekday=True)
            if campaign.dates.get("collection_deadline")
            else None
        ),
        "dates": _central_dates(campaign),
        "counts": counts,
        "municipalities": municipalities,
        "key_fields": [q.label for q in key_fields],
        "key_rows": key_rows,
        "open_points": open_points,
        "next_steps": _next_steps(definition, campaign.go_live),
        "coordinator": signature(settings),
    }


def content_hash(data: dict[str, Any]) -> str:
    """SHA-256 of the content (canonical JSON)."""
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def pdf_filename(campaign: Campaign, version: int) -> str:
    """E.g. 'Zusammenfassung-ewa-ostalbkreis-v2.pdf'."""
    slug = re.sub(r"[^A-Za-z0-9-]+", "-", campaign.id).strip("-")
    return f"Zusammenfassung-{slug}-v{version}.pdf"


def latest_summary(session: Session, campaign_id: str) -> SummaryDocument | None:
    """The newest summary version of a campaign."""
    return session.exec(
        select(SummaryDocument)
        .where(SummaryDocument.campaign_id == campaign_id)
        .order_by(col(SummaryDocument.version).desc())
        .limit(1)
    ).first()


def build_summary(session: Session, campaign: Campaign, *, now: datetime) -> SummaryDocument:
    """The current summary: the latest version when its content is unchanged, else a new one.

    A new version is stored (flushed, not committed) with an Event ``summary_built``.
    """
    return _build(session, campaign, now=now)[0]


def _build(session: Session, campaign: Campaign, *, now: datetime) -> tuple[SummaryDocument, bool]:
    """The current summary and whether it is a new version."""
    from efa_rollout.settings import get_settings

    data = build_summary_data(session, campaign)
    digest = content_hash(data)
    latest = latest_summary(session, campaign.id)
    if latest is not None and latest.content_hash == digest:
        return latest, False
    version = (latest.version if latest else 0) + 1
    generated = now.astimezone(get_settings().zone).date()
    document = SummaryDocument(
        campaign_id=campaign.id,
        version=version,
        content_hash=digest,
        html=render_html(data, version=version, generated=generated),
        pdf=render_pdf(data, version=version, generated=generated, created_at=now),
        created_at=now,
    )
    session.add(document)
    session.add(
        Event(
            at=now,
            campaign_id=campaign.id,
            actor="zusammenfassung",
            kind=EventKind.SUMMARY_BUILT,
            reason=f"Zusammenfassung Version {version} erstellt",
            data={"version": version, "content_hash": digest, **data["counts"]},
        )
    )
    session.flush()
    return document, True


_FROM_SUMMARY = Stage.pipeline()[Stage.pipeline().index(Stage.SUMMARY_DISTRIBUTION) :]


def eligible_enrolments(
    session: Session, campaign_id: str, *, ids: Sequence[int] | None = None
) -> list[tuple[Enrolment, Municipality]]:
    """Active enrolments in stage summary_distribution or later (among IDS), by AGS."""
    query = (
        select(Enrolment, Municipality)
        .join(Municipality, col(Municipality.ags) == col(Enrolment.ags))
        .where(
            Enrolment.campaign_id == campaign_id,
            Enrolment.status == EnrolmentStatus.ACTIVE.value,
            col(Enrolment.stage).in_([s.value for s in _FROM_SUMMARY]),
        )
        .order_by(col(Enrolment.ags))
    )
    if ids is not None:
        query = query.where(col(Enrolment.id).in_(list(ids)))
    return [(e, m) for e, m in session.exec(query).all()]


def _have_version(session: Session, campaign_id: str, version: int) -> set[str]:
    """AGS that already have an outbox row for summary VERSION (any status but cancelled)."""
    query = select(OutboxMessage.ags).where(
        OutboxMessage.campaign_id == campaign_id,
        OutboxMessage.kind == MAIL_KIND,
        OutboxMessage.sequence == version,
        col(OutboxMessage.status) != "cancelled",
    )
    return {ags for ags in session.exec(query) if ags}


def queue_summary_mail(
    session: Session,
    *,
    campaign: Campaign,
    enrolment: Enrolment,
    municipality: Municipality,
    document: SummaryDocument,
    now: datetime,
) -> OutboxMessage | None:
    """Queue DOCUMENT (PDF attached) to one municipality; None when it already has it."""
    from efa_rollout.services.outbox import queue_campaign_mail

    attachment = (pdf_filename(campaign, document.version), document.pdf, "application/pdf")
    extra: dict[str, Any] = {"summary_version": document.version}
    kwargs: dict[str, Any] = {"attachments": [attachment]}
    return queue_campaign_mail(
        session,
        campaign=campaign,
        enrolment=enrolment,
        municipality=municipality,
        kind=MAIL_KIND,
        sequence=document.version,
        now=now,
        extra=extra,
        **kwargs,
    )


def _distribute(
    session: Session,
    campaign: Campaign,
    document: SummaryDocument,
    pairs: Sequence[tuple[Enrolment, Municipality]],
    *,
    now: datetime,
    actor: str,
) -> list[dict[str, Any]]:
    """Queue the summary for PAIRS that lack this version; one row per municipality."""
    have = _have_version(session, campaign.id, document.version)
    rows: list[dict[str, Any]] = []
    for enrolment, municipality in pairs:
        row = {
            "ags": municipality.ags,
            "gemeinde": municipality.name,
            "version": document.version,
        }
        if municipality.ags in have:
            rows.append({**row, "ergebnis": "hatte diese Version bereits"})
            continue
        message = queue_summary_mail(
            session,
            campaign=campaign,
            enrolment=enrolment,
            municipality=municipality,
            document=document,
            now=now,
        )
        if message is None:
            rows.append({**row, "ergebnis": say("service.events.summary_not_sent")})
            continue
        session.add(
            Event(
                at=now,
                campaign_id=campaign.id,
                ags=municipality.ags,
                enrolment_id=enrolment.id,
                actor=actor,
                kind=EventKind.SUMMARY_QUEUED,
                reason=f"Zusammenfassung Version {document.version} in den Postausgang gestellt",
                data={"version": document.version, "outbox_id": message.id},
            )
        )
        rows.append({**row, "ergebnis": "in den Postausgang gestellt"})
    session.flush()
    return rows


#: Municipalities per transaction when distributing with an engine.
DISTRIBUTION_BATCH = 200


def distribute_summary(
    engine_or_session: Engine | Session, campaign_id: str, *, now: datetime, actor: str
) -> dict[str, Any]:
    """Build the current summary and queue it to everyone in summary_distribution or later.

    Only municipalities that have not had this version get a mail (sequence = version), so a
    second run queues nothing and a new version goes to all eligible ones. With a Session the
    caller commits; with an Engine the work is committed in batches.
    Returns {"version", "new_version", "queued", "already", "not_queued", "rows"}.
    """
    if isinstance(engine_or_session, Session):
        session = engine_or_session
        campaign = get_campaign(session, campaign_id)
        document, created = _build(session, campaign, now=now)
        pairs = eligible_enrolments(session, campaign_id)
        rows = _distribute(session, campaign, document, pairs, now=now, actor=actor)
    else:
        from efa_rollout.db import session_scope

        with session_scope(engine_or_session) as session:
            campaign = get_campaign(session, campaign_id)
            document, created = _build(session, campaign, now=now)
            ids = [e.id for e, _ in eligible_enrolments(session, campaign_id)]
        rows = []
        for start in range(0, len(ids), DISTRIBUTION_BATCH):
            batch = [i for i in ids[start : start + DISTRIBUTION_BATCH] if i is not None]
            with session_scope(engine_or_session) as session:
                campaign = get_campaign(session, campaign_id)
                pairs = eligible_enrolments(session, campaign_id, ids=batch)
                rows.extend(_distribute(session, campaign, document, pairs, now=now, actor=actor))
    queued = sum(1 for r in rows if r["ergebnis"] == "in den Postausgang gestellt")
    already = sum(1 for r in rows if r["ergebnis"] == "hatte diese Version bereits")
    return {
        "campaign": campaign_id,
        "version": document.version,
        "new_version": created,
        "queued": queued,
        "already": already,
        "not_queued": len(rows) - queued - already,
        "rows": rows,
    }
