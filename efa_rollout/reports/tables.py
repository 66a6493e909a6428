"""The report's views as plain tables (German headers, typed values), shared by XLSX and CSV.

Sheet titles, column headers and the rows of the sheet Überblick come from the catalogue
(``templates/texts/reports.ini``: ``[report.sheet]``, ``[report.column]``, ``[report.fact]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from efa_rollout import texts
from efa_rollout.reports.model import (
    LIGHT_LEGEND,
    LIGHTS,
    MILESTONE_LABELS,
    CampaignRollup,
    DistrictOverview,
    GroupRollup,
)


@dataclass(frozen=True, slots=True)
class Column:
    """A column: German header, kind (text/int/date/datetime/percent/bool) and width in characters."""

    header: str
    kind: str = "text"
    width: int = 14


#: Sheet titles, column headers, the group columns' headers (read on first use).
SHEET: Mapping[str, str] = texts.table("report.sheet")
HEADER: Mapping[str, str] = texts.table("report.column")
GROUP: Mapping[str, str] = texts.table("report.group")


def column(key: str, kind: str = "text", width: int = 14) -> Column:
    """The column KEY of ``[report.column]`` (a milestone's of ``[report.milestone]``)."""
    return Column(MILESTONE_LABELS[key] if key in MILESTONE_LABELS else HEADER[key], kind, width)


def fact(key: str, **params: Any) -> str:
    """A row label of the sheet Überblick (``[report.fact]``)."""
    return texts.say(f"report.fact.{key}", **params)


@dataclass(slots=True)
class Table:
    """One view: a sheet title, its columns and its rows of typed values."""

    title: str
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)


def campaign_tables(rollup: CampaignRollup) -> list[Table]:
    """Every view of a campaign, in sheet order."""
    return [
        summary_table(rollup),
        municipality_table(rollup),
        overdue_table(rollup),
        group_table("associations", rollup.associations, rollup),
        group_table("roles", rollup.roles, rollup),
        group_table("districts", rollup.districts, rollup),
        timeline_table(rollup),
        failed_mail_table(rollup),
        history_table(rollup),
    ]


def history_table(rollup: CampaignRollup) -> Table:
    """Every event up to the report date, with mail attempts and SMTP replies, in order."""
    columns = [
        column("at", "datetime", 17),
        column("ags", width=10),
        column("municipality", width=26),
        column("kind", width=30),
        column("what", width=70),
        column("who", width=28),
        column("why", width=50),
    ]
    itself = texts.say("report.history_campaign")
    rows = [
        [e.at, e.ags or "", e.name or itself, e.kind_label, e.what, e.who, e.why or ""]
        for e in rollup.history
    ]
    return Table(SHEET["history"], columns, rows)


def summary_table(rollup: CampaignRollup) -> Table:
    """Key figures: dates, stage counts, lights, lists' lengths and the legend."""
    table = Table(
        SHEET["summary"],
        [column("fact", width=34), column("value", width=40), column("share", "percent", 10)],
    )
    total = rollup.total

    def share(count: int) -> float:
        return count / total if total else 0.0

    add = table.rows.append
    add([fact("campaign"), rollup.campaign_id, None])
    add([fact("title"), rollup.title, None])
    add([fact("area"), rollup.area_name or "–", None])
    add([fact("today"), rollup.today, None])
    add([fact("status"), rollup.status_label, None])
    if rollup.completed_on:
        add([fact("completed_on"), rollup.completed_on, None])
    add([fact("go_live"), rollup.go_live, None])
    add([fact("collection_deadline"), rollup.collection_deadline, None])
    for key in rollup.key_dates:
        add([fact("key_planned", label=key.label), key.planned, None])
        add([fact("key_first_reached", label=key.label), key.first_reached, None])
        add([fact("key_reached", label=key.label), key.reached, share(key.reached)])
    add([fact("total"), total, None])
    for summary in [*rollup.stages.values(), rollup.paused, rollup.not_applicable]:
        add([fact("stage", label=summary.label), summary.count, summary.share])
    for light, label in LIGHTS.items():
        add([fact("light", label=label), rollup.lights[light], share(rollup.lights[light])])
    add([fact("answered"), rollup.answered, share(rollup.answered)])
    add([fact("overdue"), len(rollup.overdue), None])
    add([fact("failed_mail"), len(rollup.failed_mail), None])
    add([fact("without_contact"), len(rollup.without_contact), None])
    for light, label in LIGHTS.items():
        add([fact("legend", label=label), LIGHT_LEGEND[light], None])
    add([fact("stage_rules"), texts.say("report.light_stage_rules"), None])
    if rollup.attribution:
        add([fact("source"), rollup.attribution, None])
    return table


#: The municipality sheet's (and CSV's) columns: catalogue key, kind, width.
MUNICIPALITY_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("ags", "text", 10),
    ("municipality", "text", 28),
    ("association", "text", 28),
    ("district", "text", 20),
    ("role", "text", 16),
    ("pilot", "bool", 7),
    ("status", "text", 16),
    ("stage", "text", 26),
    ("stage_entered", "date", 13),
    ("days_in_stage", "int", 9),
    ("go_live", "date", 12),
    ("pilot_since", "date", 12),
    ("silent_since", "date", 12),
    ("live_since", "date", 12),
    ("mandatory_since", "date", 12),
    ("completed_on", "date", 12),
    ("items_total", "int", 8),
    ("items_done", "int", 9),
    ("items_open", "int", 8),
    ("items_overdue", "int", 10),
    ("required_overdue", "int", 10),
    ("items_due_soon", "int", 10),
    ("next_due", "date", 13),
    ("answered", "bool", 12),
    ("answers_complete", "bool", 12),
    ("last_contact", "datetime", 17),
    ("failed_mail", "int", 10),
    ("unclear_mail", "int", 12),
    ("contacts", "int", 9),
    ("working_contacts", "int", 10),
    ("light", "text", 8),
    ("reasons", "text", 60),
)


def municipality_table(rollup: CampaignRollup) -> Table:
    """One row per municipality: stage, items, answers, contact and traffic light."""
    rows = [
        [
            m.ags,
            m.name,
            m.association_name,
            m.district_name or m.district_code,
            m.role_label,
            m.is_pilot,
            m.status_label,
            m.stage_label,
            m.stage_entered,
            m.days_in_stage,
            m.go_live,
            m.pilot_since,
            m.silent_since,
            m.live_since,
            m.mandatory_since,
            m.completed_on,
            m.items_total,
            m.items_done,
            m.items_open,
            m.items_overdue,
            m.required_overdue,
            m.items_due_soon,
            m.next_due,
            m.answered,
            m.answers_complete,
            m.last_contact,
            m.failed_mail,
            m.unclear_mail,
            m.contacts,
            m.working_contacts,
            m.light_label,
            "; ".join(m.reasons),
        ]
        for m in rollup.municipalities
    ]
    columns = [column(key, kind, width) for key, kind, width in MUNICIPALITY_COLUMNS]
    return Table(SHEET["municipalities"], columns, rows)


def overdue_table(rollup: CampaignRollup) -> Table:
    """Overdue checklist items, longest overdue first."""
    columns = [
        column("ags", width=10),
        column("municipality", width=28),
        column("item", width=50),
        column("item_key", width=22),
        column("owner", width=16),
        column("required", "bool", 8),
        column("due", "date", 12),
        column("days_overdue", "int", 10),
    ]
    rows = [
        [o.ags, o.name, o.title, o.item_key, o.owner, o.required, o.due, o.days_overdue]
        for o in rollup.overdue
    ]
    return Table(SHEET["overdue"], columns, rows)


def group_table(kind: str, groups: list[GroupRollup], rollup: CampaignRollup) -> Table:
    """Totals per group of KIND (associations, roles, districts): lights, answers, items, and
    active municipalities per stage."""
    stage_keys = [*rollup.stage_order, "paused", "not_applicable"]
    labels = {key: s.label for key, s in rollup.stages.items()}
    labels.update(paused=rollup.paused.label, not_applicable=rollup.not_applicable.label)
    columns = [
        column("key", width=12),
        Column(GROUP[kind], width=34),
        column("total", "int", 10),
        *[Column(label, "int", 8) for label in LIGHTS.values()],
        column("answered_count", "int", 11),
        column("answered_share", "percent", 11),
        column("open_items", "int", 10),
        column("overdue_items", "int", 10),
        *[Column(labels.get(key, key), "int", 12) for key in stage_keys],
    ]
    rows = [
        [
            g.key,
            g.label,
            g.total,
            *[g.lights[key] for key in LIGHTS],
            g.answered,
            g.answered_share,
            g.items_open,
            g.items_overdue,
            *[g.stages.get(key, 0) for key in stage_keys],
        ]
        for g in groups
    ]
    return Table(SHEET[kind], columns, rows)


def timeline_table(rollup: CampaignRollup) -> Table:
    """The burn-up as numbers: one row per day, one column per stage."""
    stages = list(rollup.timeline[-1].stages) if rollup.timeline else list(rollup.stage_order)
    labels = {key: s.label for key, s in rollup.stages.items()}
    columns = [column("day", "date", 12), *[Column(labels.get(s, s), "int", 14) for s in stages]]
    rows = [[p.day, *[p.stages.get(s, 0) for s in stages]] for p in rollup.timeline]
    return Table(SHEET["timeline"], columns, rows)


def failed_mail_table(rollup: CampaignRollup) -> Table:
    """Failed or unknown mail, and whether a later mail got through."""
    columns = [
        column("ags", width=10),
        column("municipality", width=28),
        column("kind", width=16),
        column("subject", width=50),
        column("recipients", width=36),
        column("status", width=22),
        column("queued_at", "datetime", 17),
        column("error", width=40),
        column("resolved", "bool", 10),
    ]
    rows = [
        [
            f.ags,
            f.name,
            f.kind,
            f.subject,
            ", ".join(f.recipients),
            f.status_label,
            f.queued_at,
            f.last_error,
            f.resolved,
        ]
        for f in rollup.failed_mail
    ]
    return Table(SHEET["failed_mail"], columns, rows)


def overview_tables(overview: DistrictOverview) -> list[Table]:
    """The district overview: a campaigns sheet and a municipalities × campaigns sheet."""
    campaigns = Table(
        SHEET["campaigns"],
        [
            column("campaign", width=24),
            column("title", width=44),
            column("service", width=16),
            column("status", width=14),
            column("go_live", "date", 12),
            column("mandatory_from", "date", 14),
            column("total", "int", 10),
            column("stage_summary", width=80),
        ],
        [
            [
                c.id,
                c.title,
                c.service,
                c.status_label,
                c.go_live,
                c.mandatory_from,
                c.enrolled,
                c.stage_summary(overview.stage_labels),
            ]
            for c in overview.campaigns
        ],
    )
    grid = Table(
        SHEET["municipalities"],
        [
            column("ags", width=10),
            column("municipality", width=28),
            column("association", width=28),
            column("district", width=20),
            *[Column(f"{c.service} ({c.id})", width=26) for c in overview.campaigns],
        ],
        [
            [
                row.ags,
                row.name,
                row.association_name,
                row.district_name or row.district_code,
                *[_cell_text(row.cells.get(c.id)) for c in overview.campaigns],
            ]
            for row in overview.rows
        ],
    )
    return [campaigns, grid]


def _cell_text(cell: Any) -> str:
    """Stage (and status) with the milestones reached, or a dash when not taking part."""
    if cell is None:
        return "–"
    return f"{cell.text} ({cell.dates_text})" if cell.dates_text else cell.text
