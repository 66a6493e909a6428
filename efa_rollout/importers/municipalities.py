"""Import the municipality directory (GV100AD, CSV, XLSX) as one all-or-nothing upsert."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlmodel import Session, col

from efa_rollout.importers.gv100ad import STATE_NAMES, TYPE_LABELS, Gv100adDirectory, read_gv100ad
from efa_rollout.importers.tabular import (
    FORMAT_GV100AD,
    ColumnMap,
    Row,
    Table,
    detect_format,
    file_label,
    map_columns,
    read_table,
    require_fields,
)
from efa_rollout.importers.validation import (
    ErrorCollector,
    FieldError,
    ImportResult,
    RowError,
    describe_lines,
    display_name,
    duplicate_lines,
    in_selection,
    max_length,
    parse_ags,
    parse_ars,
    parse_digits,
    parse_district_filter,
    parse_population,
    parse_postal_code,
    parse_state_filter,
)
from efa_rollout.texts import say
from models._types import table_of, utcnow
from models.directory import Municipality

CHUNK = 500

MUNICIPALITY_ALIASES: dict[str, tuple[str, ...]] = {
    "ags": (
        "AGS",
        "Gemeindeschlüssel",
        "Amtlicher Gemeindeschlüssel",
        "Gemeindekennziffer",
        "GKZ",
        "AGS8",
        "Municipality key",
        "Municipality code",
    ),
    "ars": ("ARS", "Regionalschlüssel", "Amtlicher Regionalschlüssel", "Regional key"),
    "name": (
        "Name",
        "Gemeindename",
        "Gemeinde",
        "Name der Gemeinde",
        "Stadt/Gemeinde",
        "Kommune",
        "Municipality",
        "Municipality name",
    ),
    "official_name": ("Amtlicher Name", "Amtliche Bezeichnung", "Official name"),
    "type_code": ("Textkennzeichen", "Typ", "Type", "Type code"),
    "association_code": ("Gemeindeverbandsschlüssel", "Verbandsschlüssel", "Association code"),
    "association_name": ("Gemeindeverband", "Verband", "Association", "Association name"),
    "district_code": ("Kreisschlüssel", "Kreis-AGS", "District code", "District key"),
    "district_name": ("Kreis", "Landkreis", "Kreisname", "District", "District name"),
    "state_name": ("Bundesland", "Land", "State", "State name"),
    "population": (
        "Einwohner",
        "Einwohnerzahl",
        "Einwohner insgesamt",
        "Bevölkerung",
        "Population",
        "Inhabitants",
    ),
    "postal_code": ("PLZ", "Postleitzahl", "Postal code", "Zip code", "Zip"),
}

_COLUMNS = tuple(c.name for c in table_of(Municipality).columns)
_COMPARED = tuple(c for c in _COLUMNS if c not in ("source", "updated_at"))


@dataclass
class MunicipalityRecord:
    """One municipality read from a file: the columns it sets and where it came from."""

    line: int
    ags: str
    values: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    insert_defaults: dict[str, Any] = field(default_factory=dict)
    name_column: str | None = None


def import_municipalities(
    session: Session,
    path: Path,
    *,
    district: str | None = None,
    state: str | None = None,
    raise_on_error: bool = True,
) -> ImportResult:
    """Import PATH (GV100AD, CSV or XLSX) into the directory; nothing is written on errors."""
    district, state = parse_district_filter(district), parse_state_filter(state)
    fmt = detect_format(path)
    if fmt == FORMAT_GV100AD:
        directory = read_gv100ad(path, district=district, state=state)
        records, errors = records_from_gv100ad(directory), directory.errors
        skipped = directory.skipped
    else:
        table = read_table(path)
        fmt = table.format
        records, errors, skipped = records_from_table(table, district=district, state=state)
    return upsert_municipalities(
        session,
        records,
        source=file_label(path),
        fmt=fmt,
        errors=errors,
        skipped=skipped,
        raise_on_error=raise_on_error,
        may_add=fmt == FORMAT_GV100AD,
    )


def records_from_gv100ad(directory: Gv100adDirectory) -> list[MunicipalityRecord]:
    """The municipalities of a GV100AD file as records setting every directory column."""
    return [
        MunicipalityRecord(
            m.line, m.ags, m.values(), name_column=say("import.municipality.name_column")
        )
        for m in directory.municipalities
    ]


def records_from_table(
    table: Table, *, district: str | None = None, state: str | None = None
) -> tuple[list[MunicipalityRecord], list[RowError], int]:
    """Records, row errors and the number of rows outside the filters, from a CSV/XLSX table."""
    columns = map_columns(table.headers, MUNICIPALITY_ALIASES)
    require_fields(table, columns, {"ags": say("import.ags_column")})
    collector = ErrorCollector(table.source)
    records: list[MunicipalityRecord] = []
    keys: list[tuple[str, int]] = []
    skipped = 0
    for row in table.rows:
        ags = collector.parse(row.line, columns.header("ags"), columns.value(row, "ags"), parse_ags)
        if ags is None:
            continue
        if not in_selection(ags, district, state):
            skipped += 1
            continue
        keys.append((ags, row.line))
        before = len(collector.errors)
        record = _record_from_row(row, ags, columns, collector)
        if len(collector.errors) == before:
            records.append(record)
    _check_duplicates(keys, columns.header("ags"), collector)
    return records, sorted(collector.errors, key=lambda e: e.line or 0), skipped


def _record_from_row(
    row: Row, ags: str, columns: ColumnMap, collector: ErrorCollector
) -> MunicipalityRecord:
    """The record of one table row (errors go to COLLECTOR)."""
    record = MunicipalityRecord(row.line, ags, name_column=columns.header("name"))
    for name, parser in _field_parsers(ags).items():
        value = columns.value(row, name)
        if not value and not (name == "name" and columns.has("name")):
            continue
        parsed = collector.parse(row.line, columns.header(name), value, parser)
        if parsed is not None:
            _set_field(record, name, parsed)
    record.attributes = dict(columns.extra_values(row))
    return record


def _field_parsers(ags: str) -> dict[str, Callable[[str], Any]]:
    """The parser of every known column, for a row with key AGS."""
    return {
        "ars": lambda v: parse_ars(v, ags),
        "name": _parse_name,
        "official_name": max_length(200),
        "type_code": _parse_type,
        "association_code": lambda v: parse_digits(
            v, 4, say("import.municipality.association_key")
        ),
        "association_name": max_length(200),
        "district_code": lambda v: _check_district_code(v, ags),
        "district_name": lambda v: _parse_district_name(v, ags),
        "state_name": max_length(100),
        "population": parse_population,
        "postal_code": parse_postal_code,
    }


def _set_field(record: MunicipalityRecord, name: str, value: Any) -> None:
    """Store a parsed cell in RECORD (name also gives the official name of new rows)."""
    if name == "name":
        record.values["name"] = display_name(value)
        record.insert_defaults["official_name"] = value
    elif name == "type_code":
        record.values.update(type_code=value, type_label=TYPE_LABELS[value])
    elif name != "district_code" and value != "":
        record.values[name] = value


def _parse_name(value: str) -> str:
    """A required municipality name of at most 200 characters."""
    text = max_length(200)(value)
    if not text:
        raise FieldError(say("import.value.name_missing"))
    return text


def _parse_type(value: str) -> str:
    """A Textkennzeichen (60–67) or its German label (e.g. `Große Kreisstadt`)."""
    text = value.strip()
    if text in TYPE_LABELS:
        return text
    by_label = {label.lower(): code for code, label in TYPE_LABELS.items()}
    if text.lower() in by_label:
        return by_label[text.lower()]
    raise FieldError(say("import.municipality.type_unknown"))


def _check_district_code(value: str, ags: str) -> str:
    """A district key that must match the AGS's first five digits."""
    code = parse_digits(value, 5, say("import.municipality.district_key"))
    if code != ags[:5]:
        raise FieldError(say("import.municipality.district_mismatch", ags=ags))
    return code


def _parse_district_name(value: str, ags: str) -> str:
    """A district name; a column of digits is taken as a district key and checked instead."""
    if value.strip().isascii() and value.strip().isdigit():
        _check_district_code(value, ags)
        return ""
    return max_length(200)(value)


def _check_duplicates(
    keys: list[tuple[str, int]], column: str | None, collector: ErrorCollector
) -> None:
    """Record an error for every row whose AGS occurs in more than one row."""
    duplicates = duplicate_lines(keys)
    for ags, line in keys:
        if line in duplicates:
            lines = describe_lines(duplicates[line])
            collector.add(line, column, ags, say("import.value.ags_repeated", lines=lines))


def upsert_municipalities(
    session: Session,
    records: Sequence[MunicipalityRecord],
    *,
    source: str,
    fmt: str,
    errors: Sequence[RowError] = (),
    skipped: int = 0,
    raise_on_error: bool = True,
    may_add: bool = True,
) -> ImportResult:
    """Insert new and update changed municipalities in bulk; write nothing if there are errors.

    Only the official directory (GV100AD) may add municipalities (MAY_ADD); any other file
    only adds attributes to known ones, so a made-up key cannot create a municipality.
    """
    existing = load_municipality_rows(session, [r.ags for r in records])
    collector = ErrorCollector(source)
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    result = ImportResult(source, fmt, skipped=skipped)
    for record in records:
        current = existing.get(record.ags)
        if current is None and not may_add:
            collector.add(record.line, None, record.ags, say("import.municipality.unknown_ags"))
            continue
        if current is None:
            row = _new_row(record, collector)
            if row is not None:
                inserts.append({**row, "source": source, "updated_at": now})
            continue
        changes = _changes(current, record)
        if changes:
            updates.append({**changes, "ags": record.ags, "source": source, "updated_at": now})
        else:
            result.unchanged += 1
    result.added, result.changed = len(inserts), len(updates)
    result.errors = sorted([*errors, *collector.errors], key=lambda e: e.line or 0)
    if result.errors:
        if raise_on_error:
            result.raise_for_errors()
        return result
    if inserts:
        session.execute(insert(Municipality), inserts)
    if updates:
        session.execute(update(Municipality), updates)
    return result


def load_municipality_rows(session: Session, ags_list: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored columns of the municipalities in AGS_LIST, keyed by AGS (chunked queries)."""
    table = table_of(Municipality)
    wanted = sorted(set(ags_list))
    rows: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        statement = select(*(table.c[c] for c in _COMPARED)).where(table.c.ags.in_(chunk))
        for row in session.execute(statement).mappings():
            rows[row["ags"]] = dict(row)
    return rows


def _new_row(record: MunicipalityRecord, collector: ErrorCollector) -> dict[str, Any] | None:
    """All columns of a new municipality, or None after recording that its name is missing."""
    if not record.values.get("name"):
        reason = say("import.municipality.new_name_missing")
        column = record.name_column or say("import.municipality.name_column")
        collector.add(record.line, column, "", reason)
        return None
    row: dict[str, Any] = dict.fromkeys(_COMPARED)
    row.update(
        ags=record.ags,
        district_code=record.ags[:5],
        state_code=record.ags[:2],
        state_name=STATE_NAMES.get(record.ags[:2]),
    )
    row.update(record.insert_defaults)
    row.update(record.values)
    row["attributes"] = dict(record.attributes)
    return row


def _changes(current: dict[str, Any], record: MunicipalityRecord) -> dict[str, Any]:
    """The columns RECORD would change in the stored row CURRENT (attributes merged)."""
    changes = {k: v for k, v in record.values.items() if current.get(k) != v}
    stored = current.get("attributes") or {}
    merged = {**stored, **record.attributes}
    if merged != stored:
        changes["attributes"] = merged
    return changes


def list_municipalities(
    session: Session, *, district: str | None = None, state: str | None = None
) -> list[Municipality]:
    """The municipalities in DISTRICT and STATE (None: all), ordered by AGS."""
    district, state = parse_district_filter(district), parse_state_filter(state)
    statement = select(Municipality).order_by(Municipality.ags)
    if district:
        statement = statement.where(col(Municipality.district_code) == district)
    if state:
        statement = statement.where(col(Municipality.state_code) == state)
    return list(session.execute(statement).scalars())
