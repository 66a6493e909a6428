"""CSV (for Excel: ';', UTF-8 with BOM) and Markdown renderings of a campaign report."""

from __future__ import annotations

import csv
import functools
import io
from datetime import date, datetime
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from efa_rollout import texts
from efa_rollout.output_safety import csv_cell, markdown_cell
from efa_rollout.reports.html import REPORT_TEMPLATES, date_de, datetime_de, number, percent
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
        return texts.say("report.yes" if value else "report.no")
    if isinstance(value, float):
        return (
            percent(value) if column and column.kind == "percent" else f"{value}".replace(".", ",")
        )
    return str(value)


def campaign_markdown(rollup: CampaignRollup, *, limit: int | None = None) -> str:
    """The report as Markdown; LIMIT caps the lists (for Prefect artifacts), None shows all.

    The document is ``templates/reports/campaign.md.j2``.
    """
    return (
        markdown_environment()
        .get_template("campaign.md.j2")
        .render(r=rollup, limit=limit, lights=LIGHTS, legend=LIGHT_LEGEND)
    )


@functools.cache
def markdown_environment() -> Environment:
    """The Jinja2 environment of the Markdown report: plain text, strict about missing variables.

    No autoescape (Markdown is no HTML): text from the data goes through the ``md`` filter.
    """
    env = Environment(
        loader=FileSystemLoader(REPORT_TEMPLATES),
        autoescape=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.do"],
    )
    env.filters.update(
        md=markdown_cell, date_de=date_de, datetime_de=datetime_de, number=number, percent=percent
    )
    env.tests.update(numeric=_numeric)
    return env


def _numeric(cell: str) -> bool:
    """'1.234', '12', '37,5 %' count as numbers."""
    return bool(cell) and cell.replace(".", "").replace(",", "").removesuffix(" %").isdigit()
