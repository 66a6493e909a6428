"""Import municipal contacts (CSV, XLSX) as one all-or-nothing upsert keyed by AGS, role, e-mail."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlmodel import Session, col

from efa_rollout.domain.contacts import MAX_CONTACT_TEXT, MAX_PHONE, is_phone
from efa_rollout.importers.municipalities import CHUNK, MUNICIPALITY_ALIASES
from efa_rollout.importers.tabular import (
    ColumnMap,
    Row,
    Table,
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
    duplicate_lines,
    max_length,
    parse_ags,
    parse_bool,
    parse_email,
    parse_salutation,
)
from efa_rollout.texts import say
from models._types import table_of, utcnow
from models.directory import Contact, Municipality

ContactKey = tuple[str, str, str]

CONTACT_ALIASES: dict[str, tuple[str, ...]] = {
    "ags": MUNICIPALITY_ALIASES["ags"],
    "role": ("Rolle", "Role", "Projektrolle", "Zuständigkeit"),
    "salutation": ("Anrede", "Salutation"),
    "salutation_title": ("Anredetitel", "Titel in der Anrede", "Anrede-Titel", "Salutation title"),
    "name": ("Name", "Ansprechperson", "Ansprechpartner", "Kontakt", "Contact", "Contact name"),
    "first_name": ("Vorname", "First name", "Given name"),
    "last_name": ("Nachname", "Familienname", "Last name", "Surname"),
    "function": ("Funktion", "Function", "Position", "Amtsbezeichnung", "Job title"),
    "email": ("E-Mail", "E-Mail-Adresse", "Mail", "Email address", "Mailadresse"),
    "phone": ("Telefon", "Telefonnummer", "Tel", "Phone", "Phone number", "Durchwahl"),
    "is_shared_mailbox": (
        "Funktionspostfach",
        "Shared mailbox",
        "Sammelpostfach",
        "Gruppenpostfach",
    ),
}
_OPTIONAL_PARSERS: dict[str, Callable[[str], Any]] = {
    "salutation": parse_salutation,
    "salutation_title": lambda v: max_length(100)(v) or None,
    "function": lambda v: max_length(MAX_CONTACT_TEXT)(v) or None,
    "phone": lambda v: _parse_phone(v) or None,
    "is_shared_mailbox": parse_bool,
}
_COLUMNS = tuple(c.name for c in table_of(Contact).columns)
_ABSENT: Any = object()


@dataclass
class ContactRecord:
    """One contact read from a file: its key, the columns it sets and its line."""

    line: int
    ags: str
    role: str
    email: str
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> ContactKey:
        """The upsert key: AGS, role, e-mail lowercased."""
        return (self.ags, self.role, self.email.lower())


def import_contacts(session: Session, path: Path, *, raise_on_error: bool = True) -> ImportResult:
    """Import the contacts in PATH (CSV or XLSX); nothing is written on errors."""
    table = read_table(path)
    columns = map_columns(table.headers, CONTACT_ALIASES)
    require_fields(table, columns, _required())
    known = known_ags(session, _candidate_ags(table, columns))
    records, errors = records_from_table(table, columns, known_ags=known)
    result = upsert_contacts(
        session,
        records,
        source=table.source,
        fmt=table.format,
        errors=errors,
        raise_on_error=raise_on_error,
    )
    result.ignored_columns = columns.extra_headers()
    return result


def records_from_table(
    table: Table, columns: ColumnMap, *, known_ags: Collection[str] | None = None
) -> tuple[list[ContactRecord], list[RowError]]:
    """Contact records and row errors from a table (AGS outside KNOWN_AGS are errors)."""
    require_fields(table, columns, _required())
    collector = ErrorCollector(table.source)
    parsed = (_record_from_row(row, columns, collector, known_ags) for row in table.rows)
    records = [record for record in parsed if record is not None]
    duplicates = duplicate_lines((r.key, r.line) for r in records)
    for record in records:
        if record.line in duplicates:
            lines = describe_lines(duplicates[record.line])
            reason = say("import.contact.repeated", lines=lines)
            collector.add(record.line, columns.header("email"), record.email, reason)
    return records, sorted(collector.errors, key=lambda e: e.line or 0)


def _required() -> dict[str, str]:
    """The required fields and how a missing column is named."""
    return {
        "ags": say("import.ags_column"),
        "role": say("import.contact.column_role"),
        "email": say("import.contact.column_email"),
    }


def _record_from_row(
    row: Row, columns: ColumnMap, collector: ErrorCollector, known: Collection[str] | None
) -> ContactRecord | None:
    """The record of one table row, or None after recording its errors."""
    before = len(collector.errors)

    def cell(name: str, parser: Callable[[str], Any]) -> Any:
        return collector.parse(row.line, columns.header(name), columns.value(row, name), parser)

    ags = cell("ags", parse_ags)
    if ags is not None and known is not None and ags not in known:
        reason = say("import.contact.unknown_ags")
        collector.add(row.line, columns.header("ags"), columns.value(row, "ags"), reason)
    role, email = cell("role", _parse_role), cell("email", parse_email)
    values = {name: cell(name, p) for name, p in _OPTIONAL_PARSERS.items() if columns.has(name)}
    name_value = _contact_name(row, columns, collector)
    if name_value is not _ABSENT:
        values["name"] = name_value
    if len(collector.errors) > before or not (ags and role and email):
        return None
    values["email"] = email
    return ContactRecord(row.line, ags, role, email, values)


def _contact_name(row: Row, columns: ColumnMap, collector: ErrorCollector) -> Any:
    """The person's name from `Name` or `Vorname`+`Nachname`; _ABSENT when there is no column."""
    if columns.has("name"):
        column, value = columns.header("name"), columns.value(row, "name")
    elif columns.has("first_name") or columns.has("last_name"):
        parts = (columns.value(row, "first_name"), columns.value(row, "last_name"))
        column, value = (
            columns.header("last_name") or columns.header("first_name"),
            " ".join(p for p in parts if p),
        )
    else:
        return _ABSENT
    return collector.parse(
        row.line, column, value, lambda v: max_length(MAX_CONTACT_TEXT)(v) or None
    )


def _parse_phone(value: str) -> str:
    """An optional phone number under the one contact rule (`domain.contacts.is_phone`)."""
    text = " ".join(value.split())
    if text and not is_phone(text):
        raise FieldError(say("import.contact.phone_invalid", limit=MAX_PHONE))
    return text


def _parse_role(value: str) -> str:
    """A required role of at most 60 characters."""
    text = max_length(60)(value)
    if not text:
        raise FieldError(say("import.contact.role_missing"))
    return text


def _candidate_ags(table: Table, columns: ColumnMap) -> set[str]:
    """The valid AGS values in TABLE (invalid ones are reported later)."""
    found: set[str] = set()
    for row in table.rows:
        try:
            found.add(parse_ags(columns.value(row, "ags")))
        except FieldError:
            continue
    return found


def known_ags(session: Session, ags_set: Iterable[str]) -> set[str]:
    """The AGS among AGS_SET that exist in the directory."""
    wanted = sorted(set(ags_set))
    known: set[str] = set()
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        statement = select(col(Municipality.ags)).where(col(Municipality.ags).in_(chunk))
        known.update(session.execute(statement).scalars())
    return known


def upsert_contacts(
    session: Session,
    records: Sequence[ContactRecord],
    *,
    source: str,
    fmt: str,
    errors: Sequence[RowError] = (),
    raise_on_error: bool = True,
) -> ImportResult:
    """Insert new and update changed contacts in bulk; write nothing if there are errors."""
    result = ImportResult(source, fmt)
    result.errors = sorted(errors, key=lambda e: e.line or 0)
    if result.errors:
        if raise_on_error:
            result.raise_for_errors()
        return result
    existing = load_contact_rows(session, {r.ags for r in records})
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for record in records:
        current = existing.get(record.key)
        if current is None:
            inserts.append(_new_row(record, source, now))
            continue
        changes = {k: v for k, v in record.values.items() if current.get(k) != v}
        if changes:
            updates.append({**changes, "id": current["id"], "source": source, "updated_at": now})
        else:
            result.unchanged += 1
    result.added, result.changed = len(inserts), len(updates)
    if inserts:
        session.execute(insert(Contact), inserts)
    if updates:
        session.execute(update(Contact), updates)
    return result


def _new_row(record: ContactRecord, source: str, now: Any) -> dict[str, Any]:
    """All columns of a new contact."""
    row: dict[str, Any] = dict.fromkeys(c for c in _COLUMNS if c != "id")
    row.update(ags=record.ags, role=record.role, is_shared_mailbox=False)
    row.update({k: v for k, v in record.values.items()})
    row.update(source=source, updated_at=now)
    return row


def load_contact_rows(session: Session, ags_set: Iterable[str]) -> dict[ContactKey, dict[str, Any]]:
    """The stored contacts of the municipalities in AGS_SET, keyed by (AGS, role, e-mail lower)."""
    table = table_of(Contact)
    wanted = sorted(set(ags_set))
    rows: dict[ContactKey, dict[str, Any]] = {}
    for start in range(0, len(wanted), CHUNK):
        statement = select(table).where(table.c.ags.in_(wanted[start : start + CHUNK]))
        for row in session.execute(statement).mappings():
            rows[(row["ags"], row["role"], row["email"].lower())] = dict(row)
    return rows


def list_contacts(session: Session, *, ags: str | None = None) -> list[Contact]:
    """The contacts (of the municipality AGS, None: all), ordered by AGS, role and e-mail."""
    statement = select(Contact).order_by(Contact.ags, Contact.role, Contact.email)
    if ags is not None:
        try:
            ags = parse_ags(ags)
        except FieldError as error:
            from efa_rollout.errors import UserError

            raise UserError(say("import.ags_option", value=ags, reason=error)) from None
        statement = statement.where(col(Contact.ags) == ags)
    return list(session.execute(statement).scalars())
