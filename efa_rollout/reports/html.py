"""Self-contained HTML reports (one file, inline CSS and SVG) from Jinja2 templates."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from efa_rollout import TEMPLATES_DIR, texts
from efa_rollout.output_safety import safe_value
from efa_rollout.reports.charts import burn_up_svg, stage_bars_svg
from efa_rollout.reports.model import (
    LIGHT_LEGEND,
    LIGHT_ORDER,
    LIGHTS,
    MILESTONE_LABELS,
    MILESTONES,
    CampaignRollup,
    DistrictOverview,
    GroupRollup,
)
from efa_rollout.reports.rollup_groups import sort_key
from efa_rollout.reports.template_cache import DataFolderBytecodeCache
from efa_rollout.settings import get_settings

REPORT_TEMPLATES = TEMPLATES_DIR / "reports"


@functools.cache
def environment() -> Environment:
    """The Jinja2 environment for reports: autoescaped, strict about missing variables."""
    env = Environment(
        loader=FileSystemLoader(REPORT_TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=safe_value,
        bytecode_cache=DataFolderBytecodeCache("reports-html"),
    )
    env.filters.update(
        date_de=date_de,
        datetime_de=datetime_de,
        percent=percent,
        number=number,
        local_date_de=local_date_de,
        breakable=breakable,
    )
    return env


def date_de(value: date | None) -> str:
    """DD.MM.YYYY, or a dash for no date."""
    return value.strftime("%d.%m.%Y") if value else "–"


def datetime_de(value: datetime | None) -> str:
    """DD.MM.YYYY HH:MM in the local time zone, or a dash."""
    if value is None:
        return "–"
    return value.astimezone(get_settings().zone).strftime("%d.%m.%Y %H:%M")


def local_date_de(value: datetime | None) -> str:
    """The local calendar day of a moment as DD.MM.YYYY, or a dash."""
    return date_de(value.astimezone(get_settings().zone).date()) if value else "–"


#: Long compounds in stage labels, with a soft hyphen where a narrow column may break them.
SOFT_HYPHENS = {
    "Informationserhebung": "Informations\u00aderhebung",
    "Zusammenfassung": "Zusammen\u00adfassung",
}


def breakable(label: str) -> str:
    """LABEL with soft hyphens in its long compounds (for narrow table headers)."""
    for word, hyphenated in SOFT_HYPHENS.items():
        label = label.replace(word, hyphenated)
    return label


def percent(value: float) -> str:
    """A share as a German percentage: 0.375 → '37,5 %'."""
    return f"{value * 100:.1f} %".replace(".", ",")


def number(value: int) -> str:
    """An integer with German thousands separators: 10981 → '10.981'."""
    return f"{value:,}".replace(",", ".")


def render_campaign_html(rollup: CampaignRollup) -> str:
    """The campaign report as one HTML document."""
    by_light = sorted(
        rollup.municipalities, key=lambda m: (LIGHT_ORDER[m.light], sort_key(m.name), m.ags)
    )
    stage_svg = stage_bars_svg(rollup)
    burn_up = burn_up_svg(rollup)
    return (
        environment()
        .get_template("campaign.html.j2")
        .render(
            r=rollup,
            municipalities=by_light,
            lights=LIGHTS,
            legend=LIGHT_LEGEND,
            stage_chart=Markup(stage_svg),  # from the autoescaped chart templates
            burn_up_chart=Markup(burn_up) if burn_up else None,
            groups=_group_views(rollup),
            generated=_now(),
            stage_rules=texts.say("report.light_stage_rules"),
            milestone_columns=_milestone_columns(rollup),
            history=_history_by_ags(rollup),
            history_shown=bool(rollup.history) and len(rollup.municipalities) <= HISTORY_HTML_MAX,
        )
    )


def render_overview_html(overview: DistrictOverview) -> str:
    """The district overview (municipalities × campaigns) as one HTML document."""
    return environment().get_template("overview.html.j2").render(o=overview, generated=_now())


def _milestone_columns(rollup: CampaignRollup) -> list[tuple[str, str]]:
    """(field, label) of the milestones this campaign's stages have."""
    keys = {k.key for k in rollup.key_dates}
    return [(name, MILESTONE_LABELS[name]) for name, _, _ in MILESTONES if name in keys]


#: Above this many municipalities the HTML report leaves the history to the XLSX and the CLI.
HISTORY_HTML_MAX = 1000


def _history_by_ags(rollup: CampaignRollup) -> dict[str, list[Any]]:
    """The history entries per AGS ('' for the campaign's own)."""
    result: dict[str, list[Any]] = {}
    for entry in rollup.history:
        result.setdefault(entry.ags or "", []).append(entry)
    return result


def _group_views(rollup: CampaignRollup) -> list[dict[str, Any]]:
    """The three roll-up tables (their headings are the template's, by id) and the stage columns
    worth showing."""
    views = [
        ("verbaende", rollup.associations),
        ("rollen", rollup.roles),
        ("kreise", rollup.districts),
    ]
    return [
        {"id": anchor, "rows": rows, "columns": _stage_columns(rollup, rows)}
        for anchor, rows in views
    ]


def _stage_columns(rollup: CampaignRollup, rows: list[GroupRollup]) -> list[tuple[str, str]]:
    """(key, label) of the stages, paused and not applicable that occur in ROWS."""
    labels = {key: s.label for key, s in rollup.stages.items()}
    labels.update(paused=rollup.paused.label, not_applicable=rollup.not_applicable.label)
    used = {key for row in rows for key, n in row.stages.items() if n}
    return [(key, label) for key, label in labels.items() if key in used]


def _now() -> datetime:
    return datetime.now(UTC)
