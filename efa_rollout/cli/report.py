"""`efa report`: status reports per campaign (HTML, XLSX, CSV, Markdown) and the district overview."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from efa_rollout.cli._common import parse_as_of
from efa_rollout.errors import UserError
from efa_rollout.texts import say


def report(
    campaign: str | None = typer.Argument(
        None, metavar="KAMPAGNE", help="Kampagnen-ID (entfällt bei --overview)."
    ),
    fmt: str = typer.Option(
        "html",
        "--format",
        "-f",
        help="html, xlsx, csv, md, onepager-html oder onepager-pdf "
        "(Übersicht: html, xlsx, onepager-html, onepager-pdf).",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Zieldatei; Standard: data/reports/<kampagne>-<datum>.<format>."
    ),
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help="Stichtag (JJJJ-MM-TT, TT.MM.JJJJ oder ISO-Zeitpunkt); Standard: jetzt.",
    ),
    overview: bool = typer.Option(
        False,
        "--overview",
        help="Übersicht aller Gemeinden × aller Kampagnen statt einer Kampagne.",
    ),
    area: str | None = typer.Option(
        None,
        "--area",
        help="Nur für --overview: Landes- (2), Bezirks- (3) oder Kreisschlüssel (5).",
    ),
) -> None:
    """Erstellt einen Statusbericht zu einer Kampagne oder die Übersicht aller Kampagnen.

    Gibt den Pfad der geschriebenen Datei aus.
    """
    moment = parse_as_of(as_of) or datetime.now(UTC)
    fmt = fmt.lower().lstrip(".")
    if overview:
        path = _overview(campaign, fmt, out, area, moment)
    else:
        path = _campaign(campaign, fmt, out, area, moment)
    typer.echo(str(path))


def _campaign(
    campaign: str | None, fmt: str, out: Path | None, area: str | None, moment: datetime
) -> Path:
    """Write one campaign's report."""
    from efa_rollout.db import session_scope
    from efa_rollout.reports.files import CAMPAIGN_FORMATS, write_campaign_report
    from efa_rollout.reports.rollup import campaign_rollup

    if campaign is None:
        raise UserError(say("cli.report.campaign_missing"))
    if area is not None:
        raise UserError(say("cli.report.area_without_overview"))
    if fmt not in CAMPAIGN_FORMATS:
        allowed = ", ".join(CAMPAIGN_FORMATS)
        raise UserError(say("cli.report.format_unknown", format=fmt, allowed=allowed))
    with session_scope() as session:
        rollup = campaign_rollup(session, campaign, as_of=moment, with_history=True)
    return write_campaign_report(rollup, fmt, out)


def _overview(
    campaign: str | None, fmt: str, out: Path | None, area: str | None, moment: datetime
) -> Path:
    """Write the overview of all municipalities × all campaigns."""
    from efa_rollout.db import session_scope
    from efa_rollout.reports.files import OVERVIEW_FORMATS, write_overview_report
    from efa_rollout.reports.overview import district_overview
    from efa_rollout.settings import get_settings

    if campaign is not None:
        raise UserError(say("cli.report.campaign_with_overview"))
    if fmt not in OVERVIEW_FORMATS:
        allowed = f" {say('cli.report.or')} ".join(OVERVIEW_FORMATS)
        raise UserError(say("cli.report.overview_format", allowed=allowed, format=fmt))
    if area is not None and not (area.isdigit() and len(area) in (2, 3, 5)):
        raise UserError(say("cli.report.area_invalid", area=area))
    with session_scope() as session:
        overview = district_overview(session, area_code=area, as_of=moment)
        if fmt.startswith("onepager-"):
            from efa_rollout.reports.files import write_district_onepager
            from efa_rollout.reports.rollup import campaign_rollup

            rollups = [campaign_rollup(session, c.id, as_of=moment) for c in overview.campaigns]
            day = moment.astimezone(get_settings().zone).date()
            stem = f"uebersicht-{area or 'alle'}"
            return write_district_onepager(rollups, overview.area_name or "", day, fmt, out, stem)
    return write_overview_report(overview, fmt, out)
