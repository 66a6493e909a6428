"""`efa remind`: queue the due reminders and escalations (without Prefect)."""

from __future__ import annotations

from datetime import datetime

import typer

from efa_rollout.cli._common import parse_as_of, parse_date
from efa_rollout.cli._flows import NO_WAIT, run_if_served
from efa_rollout.texts import say


def reminder_moment(value: str | None) -> datetime | None:
    """--as-of as a moment; a bare date means that day when the sending window opens."""
    if value is None or len(value.strip()) != 10:
        return parse_as_of(value)
    from efa_rollout.domain.workdays import WorkCalendar

    calendar = WorkCalendar.from_settings()
    return calendar.window_opens(parse_date(value.strip(), option="--as-of"))


def remind(
    campaign: str | None = typer.Option(
        None, "--campaign", "-c", help="Nur diese Kampagne (Standard: alle laufenden)."
    ),
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help="Stichtag (JJJJ-MM-TT: bei Öffnung des Versandfensters) oder ISO-Zeitpunkt.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Nichts vormerken, nur anzeigen, was versandt würde."
    ),
    no_wait: bool = NO_WAIT,
) -> None:
    """Fällige Erinnerungen und Eskalationen zu offenen Punkten vormerken."""
    from efa_rollout.services.orchestration import remind as run_reminders
    from efa_rollout.services.reminder_report import row_line, summary_line

    moment = reminder_moment(as_of)
    served, reports = (False, None)
    if not dry_run:  # a dry run shows its rows here; it changes nothing on the server
        tags = [f"campaign:{campaign}"] if campaign else []
        served, reports = run_if_served(
            "erinnerungen", tags=tags, wait=not no_wait, campaign=campaign, as_of=moment
        )
        if served and reports is None:
            return
    if not served:
        reports = run_reminders(campaign_id=campaign, as_of=moment, dry_run=dry_run)
    if dry_run:
        typer.echo(say("cli.remind.dry_run"))
    if not reports:
        typer.echo(say("cli.remind.no_campaign"))
    for report in reports or []:
        typer.echo(summary_line(report))
        if dry_run:
            for row in report.actions:
                typer.echo(f"  {row_line(row)}")
