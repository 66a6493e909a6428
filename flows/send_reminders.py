"""Flow: remind municipalities of open items, once a working day, and escalate when due."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger

from efa_rollout.domain.text import german_date
from efa_rollout.services import orchestration
from efa_rollout.services.clock import local_day, resolve_as_of
from efa_rollout.services.reminder_report import ReminderReport, summary_line
from efa_rollout.services.reminders import DEFAULT_ACTOR
from efa_rollout.texts import say, table
from flows._prefect import publish_markdown, publish_table, run_name, tag_run_with_campaign
from tasks.runner import TaskRunner

FLOW_NAME = "send-reminders"
#: Rows per table artifact; the Markdown summary always has the full counts.
MAX_TABLE_ROWS = 1000


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    as_of = params.get("as_of")
    if isinstance(as_of, str):
        as_of = datetime.fromisoformat(as_of)
    return run_name(params.get("campaign") or "alle", "erinnerungen", as_of)


def table_rows(report: ReminderReport) -> list[dict[str, Any]]:
    """Artifact rows: municipality, open items, decision, reason."""
    column = table("flow.send_reminders.columns")
    return [
        {
            column["name"]: say("flow.send_reminders.municipality", name=row.name, ags=row.ags),
            column["open"]: row.open_items,
            column["decision"]: row.label,
            column["deadline"]: german_date(row.deadline) if row.deadline else "",
            column["dropped"]: row.dropped,
            column["reason"]: row.reason,
        }
        for row in report.rows[:MAX_TABLE_ROWS]
    ]


def summary_markdown(reports: list[ReminderReport], as_of: datetime, dry_run: bool) -> str:
    """The run's Markdown summary, one table row per campaign."""
    day = german_date(datetime.fromisoformat(local_day(as_of)).date())
    lines = [
        say(
            "flow.send_reminders.title_dry_run" if dry_run else "flow.send_reminders.title",
            day=day,
        ),
        "",
        say("flow.send_reminders.head"),
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in reports:
        lines.append(
            f"| {r.campaign_id} | {r.evaluated} | {r.reminders} | {r.escalations} | "
            f"{r.dropped} | {r.deferred} | {r.without_recipient} |"
        )
    notes = [
        say("flow.send_reminders.note", campaign=r.campaign_id, note=r.note)
        for r in reports
        if r.note
    ]
    if notes:
        lines += ["", *notes]
    if not reports:
        lines += ["", say("flow.send_reminders.no_campaign")]
    return "\n".join(lines) + "\n"


def publish_campaign(report: ReminderReport) -> None:
    """One campaign's decisions as a table artifact."""
    publish_table(
        f"erinnerungen-{report.campaign_id}",
        table_rows(report),
        say("flow.send_reminders.table", campaign=report.campaign_id, line=summary_line(report)),
    )


@flow(name=FLOW_NAME, flow_run_name=_flow_run_name, log_prints=False)
def send_reminders(
    campaign: str | None = None, as_of: datetime | None = None, dry_run: bool = False
) -> list[ReminderReport]:
    """Queue the due reminders and escalations of every running campaign (or the one named)."""
    tag_run_with_campaign(campaign)
    logger = get_run_logger()
    now = resolve_as_of(as_of)
    reports = orchestration.remind(
        campaign_id=campaign,
        as_of=now,
        dry_run=dry_run,
        actor=f"{DEFAULT_ACTOR} ({FLOW_NAME})",
        runner=TaskRunner(),
        on_campaign=publish_campaign,
    )
    for report in reports:
        logger.info(summary_line(report))
    publish_markdown(
        f"erinnerungen-{campaign or 'alle'}",
        summary_markdown(reports, now, dry_run),
        say("flow.send_reminders.summary"),
    )
    return reports
