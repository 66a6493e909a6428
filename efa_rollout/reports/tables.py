"""The report's views as plain tables (German headers, typed values), shared by XLSX, CSV and Markdown."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from efa_rollout import texts
from efa_rollout.reports.model import (
    LIGHT_LEGEND,
    LIGHTS,
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
        group_table("Verbände", "Verband", rollup.associations, rollup),
        group_table("Rollen", "Rolle", rollup.roles, rollup),
        group_table("Kreise", "Kreis", rollup.districts, rollup),
        timeline_table(rollup),
        failed_mail_table(rollup),
        history_table(rollup),
    ]


def history_table(rollup: CampaignRollup) -> Table:
    """Every event up to the report date, with mail attempts and SMTP replies, in order."""
    columns = [
        Column("Zeitpunkt", "datetime", 17),
        Column("AGS", width=10),
        Column("Gemeinde", width=26),
        Column("Art", width=30),
        Column("Was", width=70),
        Column("Wer", width=28),
        Column("Warum", width=50),
    ]
    rows = [
        [e.at, e.ags or "", e.name or "Kampagne", e.kind_label, e.what, e.who, e.why or ""]
        for e in rollup.history
    ]
    return Table("Geschichte", columns, rows)


def summary_table(rollup: CampaignRollup) -> Table:
    """Key figures: dates, stage counts, lights, lists' lengths and the legend."""
    table = Table(
        "Überblick",
        [Column("Angabe", width=34), Column("Wert", width=40), Column("Anteil", "percent", 10)],
    )
    total = rollup.total

    def share(count: int) -> float:
        return count / total if total else 0.0

    add = table.rows.append
    add(["Kampagne", rollup.campaign_id, None])
    add(["Titel", rollup.title, None])
    add(["Gebiet", rollup.area_name or "–", None])
    add(["Stand", rollup.today, None])
    add(["Status der Kampagne", rollup.status_label, None])
    if rollup.completed_on:
        add(["Abgeschlossen am", rollup.completed_on, None])
    add(["Go-Live", rollup.go_live, None])
    add(["Rückmeldefrist Fragebogen", rollup.collection_deadline, None])
    for key in rollup.key_dates:
        add([f"{key.label}: geplant", key.planned, None])
        add([f"{key.label}: zuerst erreicht", key.first_reached, None])
        add([f"{key.label}: Gemeinden", key.reached, share(key.reached)])
    add(["Gemeinden gesamt", total, None])
    for summary in [*rollup.stages.values(), rollup.paused, rollup.not_applicable]:
        add([f"Stufe: {summary.label}", summary.count, summary.share])
    for light, label in LIGHTS.items():
        add([f"Ampel: {label}", rollup.lights[light], share(rollup.lights[light])])
    add(["Fragebogen beantwortet", rollup.answered, share(rollup.answered)])
    add(["Überfällige Checklistenpunkte", len(rollup.overdue), None])
    add(["Mailfehler", len(rollup.failed_mail), None])
    add(["Ohne funktionierende Ansprechperson", len(rollup.without_contact), None])
    for light, label in LIGHTS.items():
        add([f"Legende {label}", LIGHT_LEGEND[light], None])
    add(["Legende Stufe und Ampel", texts.say("report.light_stage_rules"), None])
    if rollup.attribution:
        add(["Quelle", rollup.attribution, None])
    return table


MUNICIPALITY_COLUMNS = [
    Column("AGS", width=10),
    Column("Gemeinde", width=28),
    Column("Verband", width=28),
    Column("Kreis", width=20),
    Column("Rolle", width=16),
    Column("Pilot", "bool", 7),
    Column("Status", width=16),
    Column("Stufe", width=26),
    Column("In Stufe seit", "date", 13),
    Column("Tage in Stufe", "int", 9),
    Column("Go-Live", "date", 12),
    Column("Pilot seit", "date", 12),
    Column("Silent Go-Live", "date", 12),
    Column("Live seit", "date", 12),
    Column("Verpflichtend ab", "date", 12),
    Column("Abgeschlossen am", "date", 12),
    Column("Punkte", "int", 8),
    Column("Erledigt", "int", 9),
    Column("Offen", "int", 8),
    Column("Überfällig", "int", 10),
    Column("davon Pflicht", "int", 10),
    Column("In 10 Tagen fällig", "int", 10),
    Column("Nächste Fälligkeit", "date", 13),
    Column("Fragebogen beantwortet", "bool", 12),
    Column("Antworten vollständig", "bool", 12),
    Column("Letzter Kontakt", "datetime", 17),
    Column("Mailfehler", "int", 10),
    Column("Kontakte", "int", 9),
    Column("Zustellbar", "int", 10),
    Column("Ampel", width=8),
    Column("Gründe", width=60),
]


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
            m.contacts,
            m.working_contacts,
            m.light_label,
            "; ".join(m.reasons),
        ]
        for m in rollup.municipalities
    ]
    return Table("Gemeinden", MUNICIPALITY_COLUMNS, rows)


def overdue_table(rollup: CampaignRollup) -> Table:
    """Overdue checklist items, longest overdue first."""
    columns = [
        Column("AGS", width=10),
        Column("Gemeinde", width=28),
        Column("Punkt", width=50),
        Column("Schlüssel", width=22),
        Column("Zuständig", width=16),
        Column("Pflicht", "bool", 8),
        Column("Fällig am", "date", 12),
        Column("Tage überfällig", "int", 10),
    ]
    rows = [
        [o.ags, o.name, o.title, o.item_key, o.owner, o.required, o.due, o.days_overdue]
        for o in rollup.overdue
    ]
    return Table("Überfällig", columns, rows)


def group_table(
    title: str, header: str, groups: list[GroupRollup], rollup: CampaignRollup
) -> Table:
    """Totals per group: lights, answers, items, and active municipalities per stage."""
    stage_keys = [*rollup.stage_order, "paused", "not_applicable"]
    labels = {key: s.label for key, s in rollup.stages.items()}
    labels.update(paused=rollup.paused.label, not_applicable=rollup.not_applicable.label)
    columns = [
        Column("Schlüssel", width=12),
        Column(header, width=34),
        Column("Gemeinden", "int", 10),
        *[Column(label, "int", 8) for label in LIGHTS.values()],
        Column("Beantwortet", "int", 11),
        Column("Anteil beantwortet", "percent", 11),
        Column("Offene Punkte", "int", 10),
        Column("Überfällige Punkte", "int", 10),
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
    return Table(title, columns, rows)


def timeline_table(rollup: CampaignRollup) -> Table:
    """The burn-up as numbers: one row per day, one column per stage."""
    stages = list(rollup.timeline[-1].stages) if rollup.timeline else list(rollup.stage_order)
    labels = {key: s.label for key, s in rollup.stages.items()}
    columns = [Column("Tag", "date", 12), *[Column(labels.get(s, s), "int", 14) for s in stages]]
    rows = [[p.day, *[p.stages.get(s, 0) for s in stages]] for p in rollup.timeline]
    return Table("Verlauf", columns, rows)


def failed_mail_table(rollup: CampaignRollup) -> Table:
    """Failed or unknown mail, and whether a later mail got through."""
    columns = [
        Column("AGS", width=10),
        Column("Gemeinde", width=28),
        Column("Art", width=16),
        Column("Betreff", width=50),
        Column("Empfänger", width=36),
        Column("Status", width=22),
        Column("Eingereiht", "datetime", 17),
        Column("Fehler", width=40),
        Column("Später zugestellt", "bool", 10),
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
    return Table("Mailfehler", columns, rows)


def overview_tables(overview: DistrictOverview) -> list[Table]:
    """The district overview: a campaigns sheet and a municipalities × campaigns sheet."""
    campaigns = Table(
        "Kampagnen",
        [
            Column("Kampagne", width=24),
            Column("Titel", width=44),
            Column("Dienst", width=16),
            Column("Status", width=14),
            Column("Go-Live", "date", 12),
            Column("Verpflichtend ab", "date", 14),
            Column("Gemeinden", "int", 10),
            Column("Stufen (aktive Gemeinden)", width=80),
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
        "Gemeinden",
        [
            Column("AGS", width=10),
            Column("Gemeinde", width=28),
            Column("Verband", width=28),
            Column("Kreis", width=20),
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
