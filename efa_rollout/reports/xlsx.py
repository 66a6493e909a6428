"""XLSX workbooks (openpyxl, write-only): one sheet per view, frozen header, filter, real dates."""

from __future__ import annotations

import io
from datetime import date, datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import Cell, WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from efa_rollout.output_safety import spreadsheet_text
from efa_rollout.reports.model import CampaignRollup, DistrictOverview
from efa_rollout.reports.tables import Column, Table, campaign_tables, overview_tables
from efa_rollout.settings import get_settings

DATE_FORMAT = "DD.MM.YYYY"
DATETIME_FORMAT = "DD.MM.YYYY HH:MM"
PERCENT_FORMAT = "0.0 %"
HEADER_FONT = Font(bold=True)
HEADER_FILL = PatternFill("solid", fgColor="D9E2EC")
HEADER_ALIGNMENT = Alignment(wrap_text=True, vertical="top")


def campaign_workbook(rollup: CampaignRollup) -> bytes:
    """The campaign report as an XLSX file (bytes)."""
    return _workbook(campaign_tables(rollup))


def overview_workbook(overview: DistrictOverview) -> bytes:
    """The district overview as an XLSX file (bytes)."""
    return _workbook(overview_tables(overview))


def _workbook(tables: list[Table]) -> bytes:
    """Write TABLES, one sheet each, into a new workbook."""
    workbook = Workbook(write_only=True)
    for table in tables:
        _sheet(workbook, table)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _sheet(workbook: Workbook, table: Table) -> None:
    """One sheet: widths, frozen header row, auto filter over all rows."""
    sheet = workbook.create_sheet(title=table.title[:31])
    for index, column in enumerate(table.columns, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = column.width
    sheet.freeze_panes = "A2"
    last = f"{get_column_letter(len(table.columns))}{len(table.rows) + 1}"
    sheet.auto_filter.ref = f"A1:{last}"
    sheet.append([_header(sheet, column) for column in table.columns])
    zone = get_settings().zone
    for row in table.rows:
        sheet.append(
            [
                _cell(sheet, value, column, zone)
                for value, column in zip(row, table.columns, strict=True)
            ]
        )


def _header(sheet: Any, column: Column) -> Cell:
    cell = WriteOnlyCell(sheet, value=spreadsheet_text(column.header))
    cell.font, cell.fill, cell.alignment = HEADER_FONT, HEADER_FILL, HEADER_ALIGNMENT
    return cell


def _cell(sheet: Any, value: Any, column: Column, zone: Any) -> Any:
    """A typed cell: dates as dates (DD.MM.YYYY), local times, shares as percent, safe text."""
    if isinstance(value, datetime):
        local = value.astimezone(zone).replace(tzinfo=None) if value.tzinfo else value
        return _formatted(sheet, local, DATETIME_FORMAT)
    if isinstance(value, date):
        return _formatted(sheet, value, DATE_FORMAT)
    if isinstance(value, bool):
        return "ja" if value else "nein"
    if isinstance(value, float) and column.kind == "percent":
        return _formatted(sheet, value, PERCENT_FORMAT)
    if isinstance(value, str):
        return spreadsheet_text(value)
    return value


def _formatted(sheet: Any, value: Any, number_format: str) -> Cell:
    cell = WriteOnlyCell(sheet, value=value)
    cell.number_format = number_format
    return cell
