"""CSV (for Excel: ';', UTF-8 with BOM) and Markdown renderings of a campaign report."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from efa_rollout.output_safety import csv_cell, markdown_cell
from efa_rollout.reports.html import date_de, datetime_de, number, percent
from efa_rollout.reports.model import LIGHT_LEGEND, LIGHTS, CampaignRollup
from efa_rollout.reports.tables import Column, Table, municipality_table

BOM = "\ufeff"


def campaign_csv(rollup: CampaignRollup) -> bytes:
    """The municipality view as CSV that Excel opens directly (';', UTF-8 with BOM)."""
    return table_csv(municipality_table(rollup))


def table_csv(table: Table) -> bytes:
    """TABLE as CSV bytes: ';' separated, UTF-8 with BOM, German dates and numbers."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow([csv_cell(column.header) for column in table.columns])
    for row in table.rows:
        writer.writerow([_csv_value(v, c) for v, c in zip(row, table.columns, strict=True)])
    return (BOM + buffer.getvalue()).encode("utf-8")


def _csv_value(value: Any, column: Column) -> str:
    """A CSV cell: text from the data neutralised against formulas, numbers as written."""
    text = text_value(value, column)
    return csv_cell(text) if isinstance(value, str) else text


def text_value(value: Any, column: Column | None = None) -> str:
    """A value as German text: DD.MM.YYYY, ja/nein, '37,5 %'."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return datetime_de(value)
    if isinstance(value, date):
        return date_de(value)
    if isinstance(value, bool):
        return "ja" if value else "nein"
    if isinstance(value, float):
        return (
            percent(value) if column and column.kind == "percent" else f"{value}".replace(".", ",")
        )
    return str(value)


def campaign_markdown(rollup: CampaignRollup, *, limit: int | None = None) -> str:
    """The report as Markdown; LIMIT caps the lists (for Prefect artifacts), None shows all."""
    lines = [
        f"# Statusbericht: {_md(rollup.title)}",
        "",
        _facts(rollup),
        "",
        "## Stufen",
        "",
        *_md_table(
            ["Stufe", "Gemeinden", "Anteil"],
            [
                [s.label, number(s.count), percent(s.share)]
                for s in [*rollup.stages.values(), rollup.paused, rollup.not_applicable]
            ],
        ),
        "",
        "## Ampel",
        "",
        *_md_table(
            ["Ampel", "Gemeinden", "Bedeutung"],
            [
                [label, number(rollup.lights[key]), LIGHT_LEGEND[key]]
                for key, label in LIGHTS.items()
            ],
        ),
        "",
        *_municipality_section(rollup, limit),
        *_overdue_section(rollup, limit),
        *_failed_mail_section(rollup, limit),
        *_without_contact_section(rollup, limit),
    ]
    if rollup.attribution:
        lines += ["---", "", f"_{rollup.attribution}_", ""]
    return "\n".join(lines)


def _facts(rollup: CampaignRollup) -> str:
    parts = [f"Stand: {date_de(rollup.today)}"]
    if rollup.area_name:
        parts.append(f"Gebiet: {_md(rollup.area_name)}")
    parts.append(f"Go-Live: {date_de(rollup.go_live)}")
    if rollup.collection_deadline:
        parts.append(f"Rückmeldefrist: {date_de(rollup.collection_deadline)}")
    parts.append(f"{number(rollup.total)} Gemeinden, {number(rollup.answered)} mit Fragebogen")
    return " · ".join(parts)


def _municipality_section(rollup: CampaignRollup, limit: int | None) -> list[str]:
    """Municipalities; with a limit, only those needing attention (red, then yellow)."""
    if limit is None:
        rows = rollup.municipalities
        title = "## Ampel je Gemeinde"
    else:
        rows = [m for m in rollup.municipalities if m.light == "red"]
        rows += [m for m in rollup.municipalities if m.light == "yellow"]
        title = "## Gemeinden mit Handlungsbedarf"
    table = [
        [
            f"{m.light_label}",
            f"{_md(m.name)} ({m.ags})",
            m.stage_label,
            str(m.items_open),
            str(m.items_overdue),
            "ja" if m.answered else "nein",
            _md("; ".join(m.reasons)) or "–",
        ]
        for m in rows
    ]
    headers = ["Ampel", "Gemeinde", "Stufe", "Offen", "Überfällig", "Fragebogen", "Gründe"]
    return _section(title, headers, table, limit, "Alle Gemeinden sind im Plan.")


def _overdue_section(rollup: CampaignRollup, limit: int | None) -> list[str]:
    table = [
        [f"{_md(o.name)} ({o.ags})", _md(o.title), date_de(o.due), str(o.days_overdue)]
        for o in rollup.overdue
    ]
    headers = ["Gemeinde", "Punkt", "Fällig am", "Tage überfällig"]
    return _section("## Überfällige Punkte", headers, table, limit, "Keine überfälligen Punkte.")


def _failed_mail_section(rollup: CampaignRollup, limit: int | None) -> list[str]:
    table = [
        [
            f"{_md(f.name or '–')} ({f.ags or '–'})",
            _md(f.subject),
            f.status_label,
            datetime_de(f.queued_at),
            "ja" if f.resolved else "nein",
        ]
        for f in rollup.failed_mail
    ]
    headers = ["Gemeinde", "Betreff", "Status", "Eingereiht", "Später zugestellt"]
    return _section("## Mailfehler", headers, table, limit, "Keine Mailfehler.")


def _without_contact_section(rollup: CampaignRollup, limit: int | None) -> list[str]:
    table = [[f"{_md(w.name)} ({w.ags})", w.reason] for w in rollup.without_contact]
    return _section(
        "## Ohne funktionierende Ansprechperson",
        ["Gemeinde", "Grund"],
        table,
        limit,
        "Alle Gemeinden haben eine zustellbare Adresse.",
    )


def _section(
    title: str, headers: list[str], rows: list[list[str]], limit: int | None, empty: str
) -> list[str]:
    """A heading with a table (cut to LIMIT rows with a note), or a sentence when empty."""
    if not rows:
        return [title, "", f"_{empty}_", ""]
    shown = rows if limit is None else rows[:limit]
    lines = [title, "", *_md_table(headers, shown), ""]
    if len(shown) < len(rows):
        lines += [
            f"_… und {number(len(rows) - len(shown))} weitere (siehe HTML- oder XLSX-Bericht)._",
            "",
        ]
    return lines


def _md_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A Markdown table; columns of numbers are right-aligned."""
    rows = list(rows)
    rule = [
        "---:" if rows and all(_numeric(row[i]) for row in rows) else "---"
        for i in range(len(headers))
    ]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _numeric(cell: str) -> bool:
    """'1.234', '12', '37,5 %' count as numbers."""
    return bool(cell) and cell.replace(".", "").replace(",", "").removesuffix(" %").isdigit()


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell (see `efa_rollout.output_safety`)."""
    return markdown_cell(text)
