"""Import answers from a spreadsheet (one row per municipality, one column per question)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from efa_rollout.definitions import CampaignDefinition
from efa_rollout.domain.stages import ResponseStatus
from efa_rollout.errors import UserError
from models import (
    Enrolment,
)

if TYPE_CHECKING:
    from efa_rollout.importers.tabular import Row, Table
    from efa_rollout.importers.validation import ErrorCollector, ImportResult
from efa_rollout.services.answers import latest_response, save_answers, validate_answers
from efa_rollout.services.contacts import CONTACT_ALIASES
from efa_rollout.services.late_entry import LateEntry
from efa_rollout.services.lookup import campaign_definition, get_campaign
from efa_rollout.texts import say

#: Headers that name the municipality's key.
AGS_HEADERS = ("AGS", "Gemeindeschlüssel", "Amtlicher Gemeindeschlüssel", "Gemeindekennziffer")


#: Informational columns that an answers file may carry and that are not imported.
INFO_HEADERS = ("Gemeinde", "Gemeindename", "Name", "Kommune", "Stadt", "Bemerkung Koordination")


def _answer_columns(
    headers: tuple[str, ...], definition: CampaignDefinition
) -> tuple[int | None, dict[int, tuple[str, str | None]], list[str], list[tuple[int, str]]]:
    """AGS column, answer columns (field key, contact part), ignored and unknown headers."""
    from efa_rollout.importers.tabular import header_match_key

    lookup: dict[str, tuple[str, str | None]] = {}
    for question in definition.questionnaire:
        for name in (question.key, question.label):
            lookup.setdefault(header_match_key(name), (question.key, None))
            if question.type == "contact":
                for alias, part in CONTACT_ALIASES.items():
                    lookup.setdefault(header_match_key(f"{name} {alias}"), (question.key, part))
    ags_keys = {header_match_key(h) for h in AGS_HEADERS}
    info_keys = {header_match_key(h) for h in INFO_HEADERS}
    ags_index: int | None = None
    columns: dict[int, tuple[str, str | None]] = {}
    ignored: list[str] = []
    unknown: list[tuple[int, str]] = []
    for index, header in enumerate(headers):
        if not header:
            continue
        match = header_match_key(header)
        if match in ags_keys and ags_index is None:
            ags_index = index
        elif match in lookup:
            columns[index] = lookup[match]
        elif match in info_keys:
            ignored.append(header)
        else:
            unknown.append((index, header))
    return ags_index, columns, ignored, unknown


def import_answers(
    session: Session,
    *,
    campaign_id: str,
    path: Path | str,
    submit: bool,
    author: str,
    now: datetime,
    late: LateEntry | None = None,
) -> ImportResult:
    """Import answers from a CSV/XLSX file, one row per municipality — all or nothing.

    The file has an AGS column and one column per field (its key or its question text);
    contact fields take ``name=..;email=..`` in one cell or one column per part
    (e.g. ``projektleitung.email`` or ``Projektleitung E-Mail``). Empty cells leave an answer
    as it is; the values are merged onto each municipality's latest answers. Any error (bad
    value, unknown column or municipality, duplicate row, with SUBMIT a missing required
    answer) raises ImportErrors naming file, line, column, value and reason, and nothing is
    written. A row that changes nothing adds no version. LATE: NOW is when the answers
    came, earlier than the import (checked per municipality). Returns an ImportResult.
    """
    from efa_rollout.importers.tabular import read_table
    from efa_rollout.importers.validation import ErrorCollector, ImportErrors, ImportResult

    campaign = get_campaign(session, campaign_id)
    definition = campaign_definition(campaign)
    table = read_table(Path(path))
    ags_index, columns, ignored = _checked_columns(table, definition)
    enrolments = {
        e.ags: e
        for e in session.exec(select(Enrolment).where(Enrolment.campaign_id == campaign_id)).all()
    }
    reader = _RowReader(
        table=table,
        definition=definition,
        ags_index=ags_index,
        columns=columns,
        enrolments=enrolments,
        campaign_id=campaign_id,
        submit=submit,
        collector=ErrorCollector(table.source),
    )
    result = ImportResult(table.source, table.format, ignored_columns=ignored)
    planned: list[_Planned] = []
    for row in table.rows:
        plan = reader.plan(session, row)
        if plan is _UNCHANGED:
            result.unchanged += 1
        elif isinstance(plan, _Planned):
            planned.append(plan)
    if reader.collector.errors:
        raise ImportErrors(reader.collector.errors, source=table.source)
    for plan in planned:
        _save(session, plan, submit=submit, author=author, now=now, late=late, result=result)
    return result


def _checked_columns(
    table: Table, definition: CampaignDefinition
) -> tuple[int, dict[int, tuple[str, str | None]], list[str]]:
    """AGS column, answer columns and ignored headers; refuses a file without AGS or with unknowns."""
    from efa_rollout.importers.tabular import found_columns
    from efa_rollout.importers.validation import ImportErrors, RowError

    ags_index, columns, ignored, unknown = _answer_columns(table.headers, definition)
    if ags_index is None:
        raise UserError(
            say("import.answers.ags_column_missing", file=table.source),
            details=[found_columns(table)],
        )
    if unknown:
        keys = ", ".join(q.key for q in definition.questionnaire)
        reason = say("import.answers.unknown_column", keys=keys)
        raise ImportErrors(
            [RowError(table.source, table.header_line, h, None, reason) for _, h in unknown],
            source=table.source,
        )
    return ags_index, columns, ignored


@dataclass(frozen=True)
class _Planned:
    """A row that will be saved once the whole file is free of errors."""

    enrolment: Enrolment
    answers: dict[str, Any]
    line: int


#: A row that leaves every answer as it is.
_UNCHANGED = object()


@dataclass
class _RowReader:
    """Reads one row after another: its municipality, its answers, and what is wrong with it."""

    table: Table
    definition: CampaignDefinition
    ags_index: int
    columns: dict[int, tuple[str, str | None]]
    enrolments: dict[str, Enrolment]
    campaign_id: str
    submit: bool
    collector: ErrorCollector
    seen: dict[str, int] = field(default_factory=dict)

    def plan(self, session: Session, row: Row) -> _Planned | object | None:
        """The row's plan, _UNCHANGED, or None when it has errors (collected)."""
        enrolment = self._enrolment(row)
        if enrolment is None:
            return None
        answers, cells = self._answers(row)
        if not answers:
            return _UNCHANGED
        assert enrolment.id is not None
        latest = latest_response(session, enrolment.id)
        checked = validate_answers(
            self.definition,
            role=enrolment.role,
            is_pilot=enrolment.is_pilot,
            answers={**(latest.answers if latest else {}), **answers},
            submit=self.submit,
        )
        self._report(row.line, checked.errors, cells)
        if (
            latest is not None
            and latest.answers == checked.clean
            and (latest.status == ResponseStatus.SUBMITTED or not self.submit)
        ):
            return _UNCHANGED
        return _Planned(enrolment, answers, row.line)

    def _enrolment(self, row: Row) -> Enrolment | None:
        """The row's enrolment; an unknown, absent or repeated municipality is an error."""
        from efa_rollout.importers.validation import parse_ags

        header, cell = self.table.headers[self.ags_index], row.get(self.ags_index)
        ags = self.collector.parse(row.line, header, cell, parse_ags)
        if ags is None:
            return None
        enrolment = self.enrolments.get(ags)
        if enrolment is None:
            reason = say("import.answers.not_enrolled", campaign=self.campaign_id)
        elif ags in self.seen:
            reason = say("import.answers.repeated", line=self.seen[ags])
        else:
            self.seen[ags] = row.line
            return enrolment
        self.collector.add(row.line, header, cell, reason)
        return None

    def _answers(self, row: Row) -> tuple[dict[str, Any], dict[str, list[tuple[str, str]]]]:
        """The row's non-empty answers (contact parts joined) and their cells per field key."""
        answers: dict[str, Any] = {}
        cells: dict[str, list[tuple[str, str]]] = {}
        whole: set[str] = set()
        split: set[str] = set()
        for index, (key, part) in self.columns.items():
            text = row.get(index)
            if not text:
                continue
            cells.setdefault(key, []).append((self.table.headers[index], text))
            if part is None:
                answers[key] = text
                whole.add(key)
            else:
                split.add(key)
                current = answers.setdefault(key, {})
                if isinstance(current, dict):
                    current[part] = text
        for key in sorted(whole & split):
            self.collector.add(
                row.line,
                " / ".join(h for h, _ in cells[key]),
                None,
                say("import.answers.whole_and_parts"),
            )
        return answers, cells

    def _report(
        self, line: int, errors: dict[str, str], cells: dict[str, list[tuple[str, str]]]
    ) -> None:
        """Each validation error at the cells it came from (or the field's label)."""
        labels = {q.key: q.label for q in self.definition.questionnaire}
        for key, message in errors.items():
            if key in cells:
                header = " / ".join(h for h, _ in cells[key])
                value: str | None = "; ".join(v for _, v in cells[key])
            else:
                header, value = labels.get(key, key), None
            # the value is shown in its own place: "»x« ist keine …" → "keine …"
            reason = re.sub(r"^»[^«]*« ist ", "", message).rstrip(".")
            self.collector.add(line, header, value, reason)


def _save(
    session: Session,
    plan: _Planned,
    *,
    submit: bool,
    author: str,
    now: datetime,
    late: LateEntry | None,
    result: ImportResult,
) -> None:
    """Save one planned row as a new answers version and count it as added or changed."""
    assert plan.enrolment.id is not None
    first = latest_response(session, plan.enrolment.id) is None
    where = say("import.answers.where", file=result.source, line=plan.line)
    try:
        save_answers(
            session,
            enrolment=plan.enrolment,
            answers=plan.answers,
            submit=submit,
            source="import",
            author=author,
            now=now,
            reason=say("import.answers.reason", where=where),
            late=late,
        )
    except UserError as error:  # a refused moment: say which row, nothing is kept
        if late is None:
            raise
        raise UserError(
            error.message,
            details=[
                say("import.answers.where_ags", where=where, ags=plan.enrolment.ags),
                *error.details,
            ],
        ) from None
    if first:
        result.added += 1
    else:
        result.changed += 1
