"""Unit of work of the weekly report: one Prefect task per campaign."""

from __future__ import annotations

from datetime import datetime

from prefect import task

from efa_rollout.reports.weekly import WeeklyReport
from efa_rollout.services.reports import report_campaign_week


@task(retries=1, retry_delay_seconds=5)
def report_campaign(campaign_id: str, now: datetime, send_mail: bool) -> WeeklyReport:
    """Roll up one campaign, write HTML/XLSX/Markdown, queue the coordinator's mail once a week."""
    return report_campaign_week(campaign_id, now, send_mail)
