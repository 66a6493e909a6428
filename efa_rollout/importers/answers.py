"""Import answers from a spreadsheet (one row per municipality, one column per question)."""

from __future__ import annotations

import re
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
    from efa_rollout.importers.validation import ImportResult
from efa_rollout.services.answers import latest_response, save_answers, validate_answers
from efa_rollout.services.contacts import CONTACT_ALIASES
from efa_rollout.services.lookup import campaign_definition, get_campaign

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
) -> ImportResult:
    """Import answers from a CSV/XLSX file, one row per municipality — all or nothing.

    The file has an AGS column and one column per field (its key or its question text);
    contact fields take ``name=..;email=..`` in one cell or one column per part
    (e.g. ``projektleitung.email`` or ``Projektleitung E-Mail``). Empty cells leave an answer
    as it is; the values are merged onto each municipality's latest answers. Any error (bad
    value, unknown column or municipality, duplicate row, with SUBMIT a missing required
    answer) raises ImportErrors naming file, line, column, value and reason, and nothing is
    written. A row that changes nothing adds no version. Returns an ImportResult.
    """
    from efa_rollout.importers.tabular import read_table
    from efa_rollout.importers.validation import (
        ErrorCollector,
        ImportErrors,
        ImportResult,
        RowError,
        parse_ags,
    )

    campaign = get_campaign(session, campaign_id)
    definition = campaign_definition(campaign)
    table = read_table(Path(path))
    ags_index, columns, ignored, unknown = _answer_columns(table.headers, definition)
    if ags_index is None:
        found = ", ".join(f"»{h}«" for h in table.headers if h) or "keine"
        raise UserError(
            f"In der Datei »{table.source}« fehlt die Spalte »AGS« (Gemeindeschlüssel). "
            "Es wurde nichts importiert.",
            details=[f"Gefundene Spalten (Zeile {table.header_line}): {found}"],
        )
    if unknown:
        keys = ", ".join(q.key for q in definition.questionnaire)
        raise ImportErrors(
            [
                RowError(
                    table.source,
                    table.header_line,
                    header,
                    None,
                    f"unbekannte Spalte – erwartet wird ein Feldschlüssel oder die Frage (Felder: {keys})",
                )
                for _, header in unknown
            ],
            source=table.source,
        )
    ags_header = table.headers[ags_index]
    labels = {q.key: q.label for q in definition.questionnaire}
    enrolments = {
        e.ags: e
        for e in session.exec(select(Enrolment).where(Enrolment.campaign_id == campaign_id)).all()
    }
    collector = ErrorCollector(table.source)
    seen: dict[str, int] = {}
    planned: list[tuple[Enrolment, dict[str, Any], int]] = []
    result = ImportResult(table.source, table.format, ignored_columns=ignored)
    for row in table.rows:
        ags = collector.parse(row.line, ags_header, row.get(ags_index), parse_ags)
        if ags is None:
            continue
        enrolment = enrolments.get(ags)
        if enrolment is None:
            collector.add(
                row.line,
                ags_header,
                row.get(ags_index),
                f"die Gemeinde nimmt an der Kampagne »{campaign_id}« nicht teil",
            )
            continue
        if ags in seen:
            collector.add(
                row.line,
                ags_header,
                row.get(ags_index),
                f"die Gemeinde steht mehrfach in der Datei (auch in Zeile {seen[ags]})",
            )
            continue
        seen[ags] = row.line
        answers: dict[str, Any] = {}
        cells: dict[str, list[tuple[str, str]]] = {}
        for index, (key, part) in columns.items():
            text = row.get(index)
            if not text:
                continue
            cells.setdefault(key, []).append((table.headers[index], text))
            if part is None:
                answers[key] = text
            else:
                current = answers.setdefault(key, {})
                if isinstance(current, dict):
                    current[part] = text
        whole = {key for i, (key, part) in columns.items() if part is None and row.get(i)}
        split = {key for i, (key, part) in columns.items() if part is not None and row.get(i)}
        for key in sorted(whole & split):
            collector.add(
                row.line,
                " / ".join(h for h, _ in cells[key]),
                None,
                "die Angabe steht sowohl in einer Gesamtspalte als auch in Teilspalten",
            )
        if not answers:
            result.unchanged += 1
            continue
        assert enrolment.id is not None
        latest = latest_response(session, enrolment.id)
        merged = {**(latest.answers if latest else {}), **answers}
        checked = validate_answers(
            definition,
            role=enrolment.role,
            is_pilot=enrolment.is_pilot,
            answers=merged,
            submit=submit,
        )
        for key, message in checked.errors.items():
            if key in cells:
                header = " / ".join(h for h, _ in cells[key])
                value: str | None = "; ".join(v for _, v in cells[key])
            else:
                header, value = labels.get(key, key), None
            # the value is shown in its own place: "»x« ist keine …" → "keine …"
            reason = re.sub(r"^»[^«]*« ist ", "", message).rstrip(".")
            collector.add(row.line, header, value, reason)
        if (
            latest is not None
            and latest.answers == checked.clean
            and (latest.status == ResponseStatus.SUBMITTED or not submit)
        ):
            result.unchanged += 1
            continue
        planned.append((enrolment, answers, row.line))
    if collector.errors:
        raise ImportErrors(collector.errors, source=table.source)
    for enrolment, answers, line in planned:
        assert enrolment.id is not None
        first = latest_response(session, enrolment.id) is None
        save_answers(
            session,
            enrolment=enrolment,
            answers=answers,
            submit=submit,
            source="import",
            author=author,
            now=now,
            reason=f"Import aus »{table.source}«, Zeile {line}",
        )
        if first:
            result.added += 1
        else:
            result.changed += 1
    return result
