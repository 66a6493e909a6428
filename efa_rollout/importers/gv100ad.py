"""Read the Destatis municipality directory GV100AD (fixed-width text, one record a line)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from efa_rollout.importers.tabular import file_label, read_text
from efa_rollout.importers.validation import (
    ErrorCollector,
    FieldError,
    RowError,
    ars_from_ags,
    describe_lines,
    display_name,
    duplicate_lines,
    in_selection,
    parse_ags,
    parse_digits,
    parse_population,
    parse_postal_code,
)
from efa_rollout.texts import say, table

#: Municipality types by Textkennzeichen (60–67), as stored in `type_label`.
TYPE_LABELS: Mapping[str, str] = table("municipality_type")
UNINCORPORATED_TYPES = frozenset({"65", "66"})

#: The states by key (an AGS's first two digits).
STATE_NAMES: Mapping[str, str] = table("state_name")

MIN_MUNICIPALITY_LENGTH = 124
_NAME = slice(22, 72)
#: How the errors name the fields of a record 60 (by key: ags, association, name, …).
_COLUMN: Mapping[str, str] = table("import.gv100ad_column")


@functools.cache
def _labels() -> dict[str, str]:
    """The field names and the association key's name, looked up once (read per line)."""
    return {**_COLUMN, "association_key": say("import.municipality.association_key")}


@dataclass(frozen=True)
class Gv100adMunicipality:
    """One record 60 (Gemeinde), with its association, district and state resolved."""

    line: int
    ags: str
    association_code: str
    official_name: str
    type_code: str
    population: int | None
    postal_code: str | None
    association_name: str | None = None
    district_name: str | None = None
    state_name: str | None = None

    @property
    def ars(self) -> str:
        """The 12-digit Regionalschlüssel."""
        return ars_from_ags(self.ags, self.association_code)

    def values(self) -> dict[str, Any]:
        """The Municipality columns this record sets."""
        return {
            "ars": self.ars,
            "name": display_name(self.official_name),
            "official_name": self.official_name,
            "type_code": self.type_code,
            "type_label": TYPE_LABELS[self.type_code],
            "association_code": self.association_code,
            "association_name": self.association_name,
            "district_code": self.ags[:5],
            "district_name": self.district_name,
            "state_code": self.ags[:2],
            "state_name": self.state_name or STATE_NAMES.get(self.ags[:2]),
            "population": self.population,
            "postal_code": self.postal_code,
        }


@dataclass
class Gv100adDirectory:
    """The municipalities read from a GV100AD file (after filters), plus errors and skips."""

    source: str
    municipalities: list[Gv100adMunicipality] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    skipped: int = 0
    status_date: str | None = None


def read_gv100ad(
    path: Path, *, district: str | None = None, state: str | None = None
) -> Gv100adDirectory:
    """Read PATH; keep municipalities in DISTRICT/STATE (5/2-digit keys, None: all)."""
    text, _encoding = read_text(path)
    lines = (line.rstrip("\r") for line in text.split("\n"))
    return parse_gv100ad(lines, file_label(path), district=district, state=state)


def parse_gv100ad(
    lines: Iterable[str], source: str, *, district: str | None = None, state: str | None = None
) -> Gv100adDirectory:
    """Parse GV100AD LINES (named SOURCE in errors) into a Gv100adDirectory."""
    states: dict[str, str] = {}
    districts: dict[str, str] = {}
    associations: dict[tuple[str, str], str] = {}
    raw: list[Gv100adMunicipality] = []
    directory = Gv100adDirectory(source)
    collector = ErrorCollector(source)
    for number, line in enumerate(lines, start=1):
        kind = line[:2]
        if kind == "10":
            states[line[10:12]] = line[_NAME].strip()
        elif kind == "40":
            districts[line[10:15]] = line[_NAME].strip()
        elif kind == "50":
            associations[(line[10:15], line[18:22])] = line[_NAME].strip()
        elif kind == "60":
            directory.status_date = directory.status_date or line[2:10]
            record = parse_municipality_line(line, number, collector)
            if record is None:
                continue
            if in_selection(record.ags, district, state):
                raw.append(record)
            else:
                directory.skipped += 1
    directory.municipalities = [_resolved(r, states, districts, associations) for r in raw]
    _check_duplicates(directory.municipalities, collector)
    directory.errors = sorted(collector.errors, key=lambda e: e.line or 0)
    return directory


def parse_municipality_line(
    line: str, number: int, collector: ErrorCollector
) -> Gv100adMunicipality | None:
    """A record 60 line as a Gv100adMunicipality, or None after recording its errors."""
    if len(line.rstrip("\r\n")) < MIN_MUNICIPALITY_LENGTH:
        collector.add(number, None, None, say("import.municipality.record_too_short"))
        return None
    before = len(collector.errors)
    labels = _labels()
    ags = collector.parse(number, labels["ags"], line[10:18], _strict_ags)
    association = collector.parse(
        number,
        labels["association"],
        line[18:22],
        lambda v: parse_digits(v, 4, labels["association_key"]),
    )
    name = collector.parse(number, labels["name"], line[_NAME], _required_name)
    type_code = collector.parse(number, labels["type"], line[122:124], _type)
    population = collector.parse(
        number, labels["population"], line[139:150], _optional(parse_population)
    )
    postal_code = collector.parse(
        number, labels["postal_code"], line[165:170], _optional(parse_postal_code)
    )
    if len(collector.errors) > before:
        return None
    assert ags and association and name and type_code
    return Gv100adMunicipality(number, ags, association, name, type_code, population, postal_code)


def _strict_ags(value: str) -> str:
    """An AGS in the fixed-width field: exactly 8 digits, state 01–16."""
    if len(value.strip()) != 8:
        raise FieldError(say("import.value.ags_invalid"))
    return parse_ags(value)


def _required_name(value: str) -> str:
    """The official name; must not be empty."""
    name = value.strip()
    if not name:
        raise FieldError(say("import.value.name_missing"))
    return name


def _type(value: str) -> str:
    """A known Textkennzeichen (60–67)."""
    if value not in TYPE_LABELS:
        raise FieldError(say("import.municipality.gv100ad_type_unknown"))
    return value


def _optional(parser: Any) -> Any:
    """PARSER for non-blank values; blank or `*****` (several postal codes) yield None."""

    def parse(value: str) -> Any:
        text = value.strip()
        return None if not text or set(text) == {"*"} else parser(text)

    return parse


def _resolved(
    record: Gv100adMunicipality,
    states: dict[str, str],
    districts: dict[str, str],
    associations: dict[tuple[str, str], str],
) -> Gv100adMunicipality:
    """RECORD with the names of its association, district and state filled in."""
    return replace(
        record,
        association_name=associations.get((record.ags[:5], record.association_code)),
        district_name=districts.get(record.ags[:5]),
        state_name=states.get(record.ags[:2]),
    )


def _check_duplicates(records: list[Gv100adMunicipality], collector: ErrorCollector) -> None:
    """Record an error for every line whose AGS occurs more than once."""
    duplicates = duplicate_lines((r.ags, r.line) for r in records)
    for record in records:
        if record.line in duplicates:
            lines = describe_lines(duplicates[record.line])
            reason = say("import.value.ags_repeated", lines=lines)
            collector.add(record.line, _COLUMN["ags"], record.ags, reason)
