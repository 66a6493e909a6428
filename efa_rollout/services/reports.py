"""Report use cases: one campaign's weekly report, its files, and the coordinator's mail."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from efa_rollout.db import get_engine, session_scope
from efa_rollout.reports.weekly import WeeklyReport, build_weekly_report, queue_weekly_mail
from efa_rollout.texts import say

#: The files attached to the coordinator's weekly mail.
MAIL_FORMATS = ("html", "xlsx")


def report_campaign_week(
    campaign_id: str, now: datetime, send_mail: bool, engine: Engine | None = None
) -> WeeklyReport:
    """Roll up one campaign, write HTML/XLSX/Markdown, queue the coordinator's mail once a week."""
    with session_scope(engine or get_engine()) as session:
        rollup, report = build_weekly_report(session, campaign_id, as_of=now)
        if send_mail:
            files = {fmt: report.files[fmt] for fmt in MAIL_FORMATS}
            row = queue_weekly_mail(session, rollup, files, now=now)
            report.outbox_id = row.id if row else None
            report.mail_note = (
                say("service.reports.queued")
                if row
                else say("service.reports.already_queued", week=report.week)
            )
    return report
