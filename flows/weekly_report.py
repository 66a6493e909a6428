"""Flow: the weekly status report per running campaign – files, artifacts, and a mail to the coordinator."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, tags

from efa_rollout.db import get_engine, session_scope
from efa_rollout.prefect_api import campaign_tags
from efa_rollout.reports.model import LIGHTS
from efa_rollout.reports.weekly import (
    WeeklyReport,
    campaigns_for_report,
)
from efa_rollout.services.clock import resolve_as_of
from efa_rollout.texts import say
from flows._prefect import artifact_key, publish_markdown, publish_table, run_name
from tasks.reports import report_campaign

FLOW_NAME = "weekly-report"


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    as_of = params.get("as_of")
    if isinstance(as_of, str):
        as_of = datetime.fromisoformat(as_of)
    return run_name(params.get("campaign") or "alle", "wochenbericht", as_of)


def publish_artifacts(report: WeeklyReport) -> None:
    """Table, Markdown summary and links to the files of one campaign's report."""
    key = f"wochenbericht-{report.campaign_id}"
    title = report.title
    publish_table(key, report.rows, say("flow.weekly_report.table", title=title, week=report.week))
    publish_markdown(
        f"{key}-zusammenfassung", report.markdown, say("flow.weekly_report.summary", title=title)
    )
    for fmt, path in report.files.items():
        described = say("flow.weekly_report.file", title=title, format=fmt.upper())
        publish_link(f"{key}-{fmt}", path, described)


def publish_link(key: str, path: Path, description: str) -> None:
    """A link artifact to a report file (no-op outside a flow run)."""
    from prefect.artifacts import create_link_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return
    create_link_artifact(
        key=artifact_key(key),
        link=path.resolve().as_uri(),
        link_text=path.name,
        description=description,
    )


def summary_markdown(reports: list[WeeklyReport]) -> str:
    """One line per campaign: lights, overdue items, failed mail, files, mail note."""
    lights = " | ".join(LIGHTS.values())
    lines = [
        say("flow.weekly_report.title"),
        "",
        say("flow.weekly_report.head", lights=lights),
        "|---|---:|" + "---:|" * len(LIGHTS) + "---:|---:|---|",
    ]
    for r in reports:
        counts = " | ".join(str(r.lights[key]) for key in LIGHTS)
        lines.append(
            f"| {r.campaign_id} | {r.total} | {counts} | {r.overdue} | {r.failed_mail} | "
            f"{r.mail_note or say('flow.weekly_report.no_mail_note')} |"
        )
    if not reports:
        lines += ["", say("flow.weekly_report.no_campaign")]
    return "\n".join(lines) + "\n"


@flow(name=FLOW_NAME, flow_run_name=_flow_run_name, log_prints=False)
def weekly_report(
    campaign: str | None = None, as_of: datetime | None = None, send_mail: bool = True
) -> list[WeeklyReport]:
    """Build the weekly report of every running campaign (or the one named) and mail it."""
    logger = get_run_logger()
    now = resolve_as_of(as_of)
    with session_scope(get_engine()) as session:
        ids = campaigns_for_report(session, campaign)
    reports = []
    for campaign_id in ids:
        with tags(*campaign_tags(campaign_id, None)):
            report = report_campaign(campaign_id, now, send_mail)
        publish_artifacts(report)
        logger.info(_log_line(report))
        reports.append(report)
    publish_markdown(
        f"wochenberichte-{campaign or 'alle'}",
        summary_markdown(reports),
        say("flow.weekly_report.all"),
    )
    return reports


def _log_line(report: WeeklyReport) -> str:
    counts = ", ".join(f"{label} {report.lights[key]}" for key, label in LIGHTS.items())
    files: Any = ", ".join(str(p) for p in report.files.values())
    mail = report.mail_note or say("flow.weekly_report.no_mail")
    return say(
        "flow.weekly_report.log", campaign=report.campaign_id, counts=counts, mail=mail, files=files
    )


if __name__ == "__main__":
    weekly_report()
