"""Writing reports to files: formats, default paths under data/reports/."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

from efa_rollout import texts
from efa_rollout.errors import UserError
from efa_rollout.private_files import write_private
from efa_rollout.reports.model import CampaignRollup, DistrictOverview
from efa_rollout.settings import get_settings

CampaignFormat = Literal["html", "xlsx", "csv", "md"]
OverviewFormat = Literal["html", "xlsx"]
CAMPAIGN_FORMATS: tuple[str, ...] = ("html", "xlsx", "csv", "md", "onepager-html", "onepager-pdf")
OVERVIEW_FORMATS: tuple[str, ...] = ("html", "xlsx", "onepager-html", "onepager-pdf")
ONEPAGER_FORMATS: tuple[str, ...] = ("onepager-html", "onepager-pdf")


def reports_dir() -> Path:
    """data/reports/ (from the settings' data folder)."""
    return get_settings().data_dir / "reports"


def default_path(stem: str, day: date, fmt: str) -> Path:
    """data/reports/<stem>-<YYYY-MM-DD>.<fmt> ('onepager-pdf' → <stem>-onepager-<day>.pdf)."""
    if fmt in ONEPAGER_FORMATS:
        stem, fmt = f"{stem}-onepager", fmt.removeprefix("onepager-")
    return reports_dir() / f"{stem}-{day.isoformat()}.{fmt}"


def render_campaign(rollup: CampaignRollup, fmt: str) -> bytes:
    """The campaign report in FMT (html, xlsx, csv, md) as bytes."""
    renderers: dict[str, Callable[[CampaignRollup], bytes]] = {
        "html": _campaign_html,
        "xlsx": _campaign_xlsx,
        "csv": _campaign_csv,
        "md": _campaign_md,
        "onepager-html": _campaign_onepager_html,
        "onepager-pdf": _campaign_onepager_pdf,
    }
    if fmt not in renderers:
        formats = ", ".join(CAMPAIGN_FORMATS)
        raise UserError(texts.say("report.error.unknown_format", fmt=fmt, formats=formats))
    return renderers[fmt](rollup)


def render_overview(overview: DistrictOverview, fmt: str) -> bytes:
    """The district overview in FMT (html, xlsx) as bytes."""
    if fmt == "html":
        from efa_rollout.reports.html import render_overview_html

        return render_overview_html(overview).encode("utf-8")
    if fmt == "xlsx":
        from efa_rollout.reports.xlsx import overview_workbook

        return overview_workbook(overview)
    formats = f" {texts.say('report.error.or')} ".join(OVERVIEW_FORMATS)
    raise UserError(texts.say("report.error.overview_format", fmt=fmt, formats=formats))


def write_report(
    campaign_id: str, *, fmt: str = "html", out: Path | None = None, as_of: datetime | None = None
) -> Path:
    """Roll up CAMPAIGN_ID at AS_OF (default: now) and write its report in FMT; return the path."""
    from efa_rollout.db import session_scope
    from efa_rollout.reports.rollup import campaign_rollup

    with session_scope() as session:
        rollup = campaign_rollup(
            session, campaign_id, as_of=as_of or datetime.now(UTC), with_history=True
        )
    return write_campaign_report(rollup, fmt, out)


def write_campaign_report(rollup: CampaignRollup, fmt: str, out: Path | None = None) -> Path:
    """Write the campaign report in FMT to OUT (default under data/reports/); return the path."""
    path = out or default_path(rollup.campaign_id, rollup.today, fmt)
    return _write(path, render_campaign(rollup, fmt))


def write_overview_report(overview: DistrictOverview, fmt: str, out: Path | None = None) -> Path:
    """Write the district overview in FMT to OUT (default under data/reports/); return the path."""
    stem = f"uebersicht-{overview.area_code or 'alle'}"
    path = out or default_path(
        stem, overview.generated_at.astimezone(get_settings().zone).date(), fmt
    )
    return _write(path, render_overview(overview, fmt))


def _write(path: Path, content: bytes) -> Path:
    """Write atomically enough for a report: to a temporary name, then rename."""
    path = path.expanduser()
    try:
        write_private(path, content)  # reports name municipalities and contacts: 0600
    except OSError as error:
        message = texts.say("report.error.not_written", path=path, error=error)
        raise UserError(message) from None
    return path.resolve()


def _campaign_html(rollup: CampaignRollup) -> bytes:
    from efa_rollout.reports.html import render_campaign_html

    return render_campaign_html(rollup).encode("utf-8")


def _campaign_xlsx(rollup: CampaignRollup) -> bytes:
    from efa_rollout.reports.xlsx import campaign_workbook

    return campaign_workbook(rollup)


def _campaign_csv(rollup: CampaignRollup) -> bytes:
    from efa_rollout.reports.text import campaign_csv

    return campaign_csv(rollup)


def _campaign_md(rollup: CampaignRollup) -> bytes:
    from efa_rollout.reports.text import campaign_markdown

    return campaign_markdown(rollup).encode("utf-8")


def _campaign_onepager_html(rollup: CampaignRollup) -> bytes:
    from efa_rollout.reports.onepager import campaign_onepager, render_onepager_html

    return render_onepager_html(campaign_onepager(rollup)).encode("utf-8")


def _campaign_onepager_pdf(rollup: CampaignRollup) -> bytes:
    from efa_rollout.reports.pdf import html_to_pdf

    return html_to_pdf(_campaign_onepager_html(rollup).decode("utf-8"))


def write_district_onepager(
    rollups: list[CampaignRollup], area_name: str, day: date, fmt: str, out: Path | None, stem: str
) -> Path:
    """Write the district's one-pager (HTML or PDF) over ROLLUPS; return the path."""
    from efa_rollout.reports.onepager import district_onepager, render_onepager_html

    html = render_onepager_html(district_onepager(rollups, area_name, day))
    if fmt == "onepager-pdf":
        from efa_rollout.reports.pdf import html_to_pdf

        content = html_to_pdf(html)
    else:
        content = html.encode("utf-8")
    return _write(out or default_path(stem, day, fmt), content)
