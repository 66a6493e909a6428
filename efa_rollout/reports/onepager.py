"""The committee one-pager ("Sachstandsbericht"): sentences from the data, dates, open items, a chart.

One template for HTML and PDF: the PDF is Chromium printing the same HTML on A4 (pdf.py). The
sentences, milestones and cells come from the catalogue (``templates/texts/reports.ini``:
``[report.onepager]``, ``[report.onepager_milestone]``, ``[report.onepager_cell]``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from markupsafe import Markup

from efa_rollout import texts
from efa_rollout.reports.model import MILESTONE_LABELS as DATE_COLUMN_LABELS
from efa_rollout.reports.model import CampaignRollup, MunicipalityStatus
from efa_rollout.reports.tables import HEADER

#: Campaign dates worth announcing as milestones, in German.
MILESTONE_LABELS: Mapping[str, str] = texts.table("report.onepager_milestone")
MAX_OPEN_ROWS = 10
MAX_MILESTONES = 6


def de(day: date | None) -> str:
    """DD.MM.YYYY."""
    return day.strftime("%d.%m.%Y") if day else "–"


def german_list(names: Sequence[str]) -> str:
    """'A', 'A und B', 'A, B und C'."""
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return texts.say("report.onepager.and", first=", ".join(names[:-1]), last=names[-1])


def _municipalities(count: int) -> str:
    return (
        texts.say("report.onepager.one_municipality")
        if count == 1
        else texts.say("report.onepager.municipalities", count=count)
    )


def status_sentences(r: CampaignRollup) -> list[str]:
    """The committee's sentences about R at its report date, past and future phrased as they are."""
    key = {k.key: k for k in r.key_dates}
    taking_part = [m for m in r.municipalities if m.status != "not_applicable"]
    total = len(taking_part)
    clauses = [_live_clause(r, taking_part, key)]
    pilot = _pilot_clause(r, taking_part, key)
    if pilot:
        clauses.append(pilot)
    mandatory = _mandatory_clause(r, key)
    if mandatory:
        clauses.append(mandatory)
    first = "; ".join(clauses)
    sentences = [first + "."]  # starts with the service's name, spelt as it is (eWA)
    if r.status == "completed":
        sentences.append(texts.say("report.onepager.completed", day=de(r.completed_on)))
    collecting = sum(1 for m in taking_part if m.stage == "information_collection")
    if collecting and r.collection_deadline:
        sentences.append(
            texts.say(
                "report.onepager.collecting"
                if r.today <= r.collection_deadline
                else "report.onepager.collected",
                answered=r.answered,
                total=total,
                deadline=de(r.collection_deadline),
            )
        )
    behind = sorted({o.name for o in r.overdue if o.required})
    if behind:
        sentences.append(
            texts.say("report.onepager.behind", municipalities=_municipalities(len(behind)))
        )
    elif r.status != "completed":
        sentences.append(texts.say("report.onepager.none_behind"))
    return sentences


def _live_clause(r: CampaignRollup, taking_part: list[MunicipalityStatus], key: dict) -> str:
    live = [m for m in taking_part if m.live_since]
    first = key["live_since"].first_reached if "live_since" in key else None
    if live and first:
        return texts.say(
            "report.onepager.live_everywhere"
            if len(live) == len(taking_part)
            else "report.onepager.live_partly",
            service=r.service,
            day=de(first),
            live=len(live),
            total=len(taking_part),
        )
    if r.go_live > r.today:
        municipalities = _municipalities(len(taking_part))
        return texts.say(
            "report.onepager.goes_live",
            service=r.service,
            day=de(r.go_live),
            municipalities=municipalities,
        )
    return texts.say("report.onepager.not_yet_live", service=r.service, day=de(r.go_live))


def _pilot_clause(r: CampaignRollup, taking_part: list[MunicipalityStatus], key: dict) -> str:
    pilots = [m for m in taking_part if m.is_pilot]
    if not pilots:
        return ""
    names = german_list([m.name for m in pilots])
    one = len(pilots) == 1
    silent = [m.silent_since for m in pilots if m.silent_since]
    if silent:
        return texts.say(
            "report.onepager.pilot_silent_one" if one else "report.onepager.pilot_silent_many",
            names=names,
            day=de(min(silent)),
        )
    planned = key["silent_since"].planned if "silent_since" in key else None
    if planned and planned > r.today:
        return texts.say(
            "report.onepager.pilot_starts_one" if one else "report.onepager.pilot_starts_many",
            names=names,
            day=de(planned),
        )
    return ""


def _mandatory_clause(r: CampaignRollup, key: dict) -> str:
    mandatory = key.get("mandatory_since")
    if mandatory is None:
        return ""
    day = mandatory.planned or mandatory.first_reached  # the legal date, not the tick's day
    if day is None:
        return ""
    return texts.say(
        "report.onepager.mandatory_since" if day <= r.today else "report.onepager.mandatory_from",
        day=de(day),
    )


def next_milestones(r: CampaignRollup, *, prefix: str = "") -> list[tuple[date, str]]:
    """The campaign's dates after the report date, earliest first."""
    result = []
    for name, value in r.dates.items():
        label = MILESTONE_LABELS.get(name)
        if not label:
            continue
        for raw in value if isinstance(value, list) else [value]:
            day = date.fromisoformat(raw)
            if day > r.today:
                result.append((day, f"{prefix}{label}"))
    return sorted(result)


@dataclass(slots=True)
class OpenItems:
    """What one municipality still has to do."""

    name: str
    ags: str
    open: int
    overdue: int = 0


def open_items(r: CampaignRollup) -> list[OpenItems]:
    """Municipalities with open checklist items, those with overdue required ones first."""
    rows = [
        OpenItems(name=m.name, ags=m.ags, open=m.items_open, overdue=m.items_overdue)
        for m in r.municipalities
        if m.status == "active" and m.items_open and m.stage != "completed"
    ]
    return sorted(rows, key=lambda o: (-o.overdue, -o.open, o.name))


def common_overdue(rollups: Sequence[CampaignRollup], limit: int = 4) -> list[tuple[str, int]]:
    """The overdue items most municipalities share: (title, how many)."""
    counts: dict[str, int] = defaultdict(int)
    for r in rollups:
        for o in r.overdue:
            counts[o.title if len(rollups) == 1 else f"{r.service}: {o.title}"] += 1
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]


@dataclass(slots=True)
class OnePager:
    """What the one-pager template shows."""

    heading: str
    area_name: str
    today: date
    sentences: list[str]
    columns: list[str]
    rows: list[list[str]]
    open_rows: list[OpenItems]
    more_open: int
    common_overdue: list[tuple[str, int]]
    milestones: list[tuple[date, str]]
    chart: Markup | None
    chart_caption: str
    generated: datetime = field(default_factory=lambda: datetime.now(UTC))


DATE_COLUMNS = ("pilot_since", "silent_since", "live_since", "mandatory_since")


def campaign_onepager(r: CampaignRollup) -> OnePager:
    """The one-pager of one campaign."""
    from efa_rollout.reports.charts import burn_up_svg

    used = [
        c for c in DATE_COLUMNS if c != "pilot_since" or any(m.is_pilot for m in r.municipalities)
    ]
    used = [c for c in used if c in {k.key for k in r.key_dates}]
    rows = [
        [
            m.name,
            m.stage_label + ("" if m.status == "active" else f" ({m.status_label})"),
            *[de(getattr(m, c)) for c in used],
        ]
        for m in r.municipalities
    ]
    items = open_items(r)
    svg = burn_up_svg(r, chart_id="onepager-burnup", size=(1100, 220), font=15)
    return OnePager(
        heading=texts.say("report.onepager.heading", service=r.service),
        area_name=r.area_name or r.district_name or "",
        today=r.today,
        sentences=status_sentences(r),
        columns=[HEADER["municipality"], HEADER["stage"], *[DATE_COLUMN_LABELS[c] for c in used]],
        rows=rows,
        open_rows=items[:MAX_OPEN_ROWS],
        more_open=max(len(items) - MAX_OPEN_ROWS, 0),
        common_overdue=common_overdue([r]),
        milestones=next_milestones(r)[:MAX_MILESTONES],
        chart=Markup(svg) if svg else None,  # from the autoescaped chart templates
        chart_caption=texts.say("report.onepager.chart_caption"),
    )


def district_onepager(rollups: Sequence[CampaignRollup], area_name: str, today: date) -> OnePager:
    """The one-pager of a district: every campaign's sentences, municipalities × campaigns."""
    from efa_rollout.reports.charts import live_bars_svg

    sentences = [s for r in rollups for s in status_sentences(r)[:1]]
    by_ags: dict[str, dict[str, str]] = defaultdict(dict)
    names: dict[str, str] = {}
    for r in rollups:
        for m in r.municipalities:
            names[m.ags] = m.name
            by_ags[m.ags][r.campaign_id] = _cell(m)
    rows = [
        [names[ags], *[by_ags[ags].get(r.campaign_id, "–") for r in rollups]]
        for ags in sorted(names, key=lambda a: (names[a], a))
    ]
    items: list[OpenItems] = []
    for r in rollups:
        for o in open_items(r):
            o.name = f"{o.name} ({r.service})"
            items.append(o)
    items.sort(key=lambda o: (-o.overdue, -o.open, o.name))
    milestones = sorted(m for r in rollups for m in next_milestones(r, prefix=f"{r.service}: "))
    return OnePager(
        heading=texts.say("report.onepager.heading_district"),
        area_name=area_name,
        today=today,
        sentences=sentences,
        columns=[HEADER["municipality"], *[r.service for r in rollups]],
        rows=rows,
        open_rows=items[:MAX_OPEN_ROWS],
        more_open=max(len(items) - MAX_OPEN_ROWS, 0),
        common_overdue=common_overdue(rollups),
        milestones=milestones[:MAX_MILESTONES],
        chart=Markup(live_bars_svg(rollups, width=1100, font=15)) if rollups else None,
        chart_caption=texts.say("report.onepager.chart_caption_district"),
    )


def _cell(m: MunicipalityStatus) -> str:
    """A district cell: the latest reached date, else the stage."""
    if m.status == "not_applicable":
        return texts.say("report.onepager_cell.not_applicable")
    for name in ("mandatory_since", "live_since", "silent_since", "pilot_since"):
        day = getattr(m, name)
        if day:
            return texts.say(f"report.onepager_cell.{name}", day=de(day))
    return m.stage_label


def render_onepager_html(page: OnePager) -> str:
    """The one-pager as one HTML document (A4 portrait when printed)."""
    from efa_rollout.reports.html import environment

    return environment().get_template("onepager.html.j2").render(p=page, generated=page.generated)
