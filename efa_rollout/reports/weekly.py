"""The weekly report per campaign: files, artifact content and the coordinator's mail (no Prefect here)."""

from __future__ import annotations

import email
import inspect
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from efa_rollout import texts
from efa_rollout.domain.stages import CampaignStatus
from efa_rollout.reports.files import write_campaign_report
from efa_rollout.reports.model import LIGHT_ORDER, CampaignRollup
from efa_rollout.reports.rollup import campaign_rollup
from efa_rollout.reports.rollup_groups import sort_key
from efa_rollout.reports.tables import HEADER
from efa_rollout.reports.text import campaign_markdown
from efa_rollout.services.lookup import get_campaign
from efa_rollout.settings import get_settings
from models import Campaign, OutboxMessage

MAIL_KIND = "weekly_report"
WEEKLY_FORMATS = ("html", "xlsx", "md")
#: Municipalities listed in the mail body (most urgent first); the attachments have all.
MAIL_ROWS = 250
#: Rows of the Prefect table artifact.
ARTIFACT_ROWS = 1000
ATTACHMENT_TYPES = {
    "html": ("text", "html"),
    "xlsx": ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "csv": ("text", "csv"),
    "md": ("text", "markdown"),
}
#: Outbox statuses in the weekly mail, in this order.
OUTBOX_STATUS_TEXT: Mapping[str, str] = texts.table("report.outbox_status")


@dataclass(slots=True)
class WeeklyReport:
    """What one weekly run produced for one campaign."""

    campaign_id: str
    title: str
    week: str
    files: dict[str, Path]
    lights: dict[str, int]
    total: int
    overdue: int
    failed_mail: int
    outbox_id: int | None = None
    mail_note: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    markdown: str = ""


def campaigns_for_report(session: Session, campaign: str | None) -> list[str]:
    """The campaign named (any status), or every running campaign."""
    if campaign:
        get_campaign(session, campaign)
        return [campaign]
    query = (
        select(col(Campaign.id))
        .where(col(Campaign.status) == CampaignStatus.RUNNING)
        .order_by(col(Campaign.id))
    )
    return list(session.connection().execute(query).scalars())


def week_sequence(as_of: datetime) -> int:
    """The outbox sequence of AS_OF's ISO week: 2025-W21 → 202521."""
    iso = as_of.astimezone(get_settings().zone).isocalendar()
    return iso.year * 100 + iso.week


def week_label(as_of: datetime) -> str:
    """'21/2025' for the subject line."""
    iso = as_of.astimezone(get_settings().zone).isocalendar()
    return f"{iso.week}/{iso.year}"


def build_weekly_report(
    session: Session, campaign_id: str, *, as_of: datetime, out_dir: Path | None = None
) -> tuple[CampaignRollup, WeeklyReport]:
    """Roll up CAMPAIGN_ID at AS_OF and write its HTML, XLSX and Markdown files."""
    rollup = campaign_rollup(session, campaign_id, as_of=as_of)
    files = {
        fmt: write_campaign_report(rollup, fmt, _target(out_dir, rollup, fmt))
        for fmt in WEEKLY_FORMATS
    }
    report = WeeklyReport(
        campaign_id=campaign_id,
        title=rollup.title,
        week=week_label(as_of),
        files=files,
        lights=dict(rollup.lights),
        total=rollup.total,
        overdue=len(rollup.overdue),
        failed_mail=len(rollup.failed_mail),
        rows=artifact_rows(rollup),
        markdown=campaign_markdown(rollup, limit=20),
    )
    return rollup, report


def _target(out_dir: Path | None, rollup: CampaignRollup, fmt: str) -> Path | None:
    if out_dir is None:
        return None
    return out_dir / f"{rollup.campaign_id}-{rollup.today.isoformat()}.{fmt}"


def artifact_rows(rollup: CampaignRollup, limit: int = ARTIFACT_ROWS) -> list[dict[str, Any]]:
    """Table artifact rows, most urgent first."""
    h = HEADER
    answered, unanswered = texts.say("report.answered"), texts.say("report.unanswered")
    return [
        {
            h["light"]: m.light_label,
            h["municipality"]: f"{m.name} ({m.ags})",
            h["stage"]: m.stage_label,
            h["days_in_stage"]: m.days_in_stage,
            h["items_open"]: m.items_open,
            h["items_overdue"]: m.items_overdue,
            h["questionnaire"]: answered if m.answered else unanswered,
            h["reasons"]: "; ".join(m.reasons),
        }
        for m in _by_urgency(rollup)[:limit]
    ]


def _by_urgency(rollup: CampaignRollup) -> list[Any]:
    return sorted(
        rollup.municipalities, key=lambda m: (LIGHT_ORDER[m.light], sort_key(m.name), m.ags)
    )


def mail_extra(session: Session, rollup: CampaignRollup) -> dict[str, Any]:
    """The variables of the 'weekly_report' mail template."""
    rows = [
        {
            "municipality": f"{m.name} ({m.light_label})",
            "stage": m.stage_label,
            "open_items": m.items_open,
            "overdue_items": m.items_overdue,
        }
        for m in _by_urgency(rollup)[:MAIL_ROWS]
    ]
    undeliverable = [
        {"municipality": w.name, "contact": "–", "reason": w.reason} for w in rollup.without_contact
    ]
    undeliverable += [
        {
            "municipality": f.name or "–",
            "contact": ", ".join(f.recipients),
            "reason": f.last_error or f.status_label,
        }
        for f in rollup.failed_mail
        if not f.resolved
    ]
    return {
        "week": week_label(rollup.as_of),
        "as_of": rollup.today,
        "rows": rows,
        "undeliverable": undeliverable,
        "mail_stats": _mail_stats(session, rollup),
    }


def _mail_stats(session: Session, rollup: CampaignRollup) -> dict[str, int]:
    """Campaign mail queued in the seven days up to AS_OF, by status (German)."""
    om = OutboxMessage
    since = rollup.as_of - timedelta(days=7)
    query = (
        select(col(om.status), func.count())
        .where(
            col(om.campaign_id) == rollup.campaign_id,
            col(om.is_test).is_(False),
            col(om.ags).is_not(None),
            col(om.queued_at) > since,
            col(om.queued_at) <= rollup.as_of,
        )
        .group_by(om.status)
    )
    counts = Counter({status: n for status, n in session.connection().execute(query)})
    return {OUTBOX_STATUS_TEXT.get(s, s): counts[s] for s in OUTBOX_STATUS_TEXT if counts[s]}


def queue_weekly_mail(
    session: Session, rollup: CampaignRollup, files: dict[str, Path], *, now: datetime
) -> OutboxMessage | None:
    """Queue the coordinator's weekly mail with the report files attached; None if already queued."""
    from efa_rollout.services.outbox import queue_coordinator_mail

    campaign = get_campaign(session, rollup.campaign_id)
    attachments = [_attachment(fmt, path) for fmt, path in files.items()]
    options: dict[str, Any] = {}
    native = "attachments" in inspect.signature(queue_coordinator_mail).parameters
    if native:
        options["attachments"] = attachments
    row = queue_coordinator_mail(
        session,
        campaign=campaign,
        kind=MAIL_KIND,
        sequence=week_sequence(rollup.as_of),
        now=now,
        extra=mail_extra(session, rollup),
        **options,
    )
    if row is not None and not native:
        row.raw = with_attachments(row.raw, attachments)
        row.meta = {**(row.meta or {}), "attachments": [name for name, _, _ in attachments]}
        session.add(row)
        session.flush()
    return row


def _attachment(fmt: str, path: Path) -> tuple[str, bytes, str]:
    """(file name, content, MIME type) of a report file."""
    maintype, subtype = ATTACHMENT_TYPES.get(fmt, ("application", "octet-stream"))
    return path.name, path.read_bytes(), f"{maintype}/{subtype}"


def with_attachments(raw: bytes, attachments: list[tuple[str, bytes, str]]) -> bytes:
    """RAW (a stored message) with ATTACHMENTS added; the Message-ID and headers stay as they are.

    Only used while the outbox's coordinator mail takes no attachments itself.
    """
    from efa_rollout.mail.message import MAIL_POLICY, message_bytes

    message = email.message_from_bytes(raw, policy=MAIL_POLICY)
    for name, content, mime_type in attachments:
        maintype, subtype = mime_type.split("/", 1)
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
    return message_bytes(message)
