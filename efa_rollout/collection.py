"""Information collection: typed answers, their versions, and the checklist ticks.

Every write of answers or checklist items goes through this module, because the engine's stage
rules read two denormalised fields of the enrolment: ``answers_complete`` (the latest *submitted*
answers are complete) and ``required_open`` (required checklist items not done). The functions
here keep both right in the caller's transaction: they ``flush`` but never ``commit``.

Entry points of every channel (portal, CLI, import, Prefect) call the same functions and pass
their ``source`` and ``author``; both end up in the event log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlmodel import Session, select

from efa_rollout.definitions import CampaignDefinition, ChecklistItem, QuestionField
from efa_rollout.errors import UserError
from models import (
    Campaign,
    ChecklistItemState,
    Enrolment,
    Event,
    Municipality,
    QuestionnaireResponse,
)

if TYPE_CHECKING:
    from efa_rollout.importers.validation import ImportResult

__all__ = [
    "CONTACT_KEYS",
    "SOURCES",
    "AnswersInvalid",
    "ValidationResult",
    "checklist_view",
    "definition_of",
    "find_enrolment",
    "format_answer",
    "import_answers",
    "latest_response",
    "parse_contact_text",
    "parse_contacts_text",
    "recompute_required_open",
    "save_answers",
    "set_checklist_item",
    "validate_answers",
]

#: Where an entry came from; recorded on the response, the checklist row and the event.
SOURCES = ("portal", "cli", "import", "prefect", "simulation")

#: The keys of a contact answer, in display order.
CONTACT_KEYS = ("salutation", "name", "function", "email", "phone")

_CONTACT_ALIASES = {
    "salutation": "salutation",
    "anrede": "salutation",
    "name": "name",
    "function": "function",
    "funktion": "function",
    "email": "email",
    "e-mail": "email",
    "mail": "email",
    "phone": "phone",
    "telefon": "phone",
    "tel": "phone",
}
_SALUTATIONS = {"frau": "Frau", "fr": "Frau", "herr": "Herr", "hr": "Herr"}
_PHONE = re.compile(r"^\+?[0-9 ()/\-]+$")
_NUMBER = re.compile(r"^[+-]?\d+(?:[.,]\d+)?$")
_TRUE = frozenset({"ja", "j", "true", "1", "yes", "wahr"})
_FALSE = frozenset({"nein", "n", "false", "0", "no", "falsch"})
_MAX_TEXT = 500
_MAX_TEXTAREA = 5000
_MAX_CONTACTS = 200


class AnswersInvalid(UserError):
    """Answers refused as a whole: ``errors`` maps each field key to a German reason."""

    def __init__(self, errors: Mapping[str, str], *, labels: Mapping[str, str] | None = None):
        self.errors = dict(errors)
        labels = labels or {}
        count = len(self.errors)
        super().__init__(
            f"Die Angaben enthalten {count} Fehler; es wurde nichts gespeichert.",
            details=[f"{labels.get(k, k)} ({k}): {msg}" for k, msg in self.errors.items()],
        )


@dataclass
class ValidationResult:
    """Cleaned answers (typed, empty ones left out), errors per field key, and completeness."""

    clean: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)
    complete: bool = False

    @property
    def ok(self) -> bool:
        """True when there are no errors."""
        return not self.errors


class _Invalid(ValueError):
    """A value that does not fit its field; the message is the German reason."""


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | dict | tuple) and not value


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        raise _Invalid("Bitte geben Sie einen Text an.")
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise _Invalid("Bitte geben Sie einen Text an.")
    return value.strip()


def _text(limit: int) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _as_text(value)
        if len(text) > limit:
            raise _Invalid(f"Der Text ist zu lang (höchstens {limit} Zeichen).")
        return text

    return parse


def _email(value: Any) -> str:
    from efa_rollout.mail.message import NON_ASCII_LOCAL_PART, InvalidAddressError, contact_address

    text = _as_text(value)
    try:
        return contact_address(text)
    except InvalidAddressError as error:
        if NON_ASCII_LOCAL_PART in error.message:
            raise _Invalid(error.message) from None
        raise _Invalid(
            f"»{text}« ist keine gültige E-Mail-Adresse (z. B. bauamt@gemeinde.de)."
        ) from None


def _phone(value: Any) -> str:
    text = " ".join(_as_text(value).split())
    digits = sum(ch.isdigit() for ch in text)
    if not _PHONE.match(text) or digits < 3 or len(text) > 40:
        raise _Invalid(
            f"»{text}« ist keine gültige Telefonnummer (erlaubt sind Ziffern, Leerzeichen "
            "und + / - ( ), z. B. 07361 503-1234)."
        )
    return text


def _date(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = _as_text(value)
    for fmt in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    raise _Invalid(f"»{text}« ist kein gültiges Datum (erwartet TT.MM.JJJJ oder JJJJ-MM-TT).")


def _yesno(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = _as_text(value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _Invalid(f"»{text}« ist keine gültige Antwort (erwartet ja oder nein).")


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise _Invalid("Bitte geben Sie eine Zahl an.")
    if isinstance(value, int | float):
        number: int | float = value
    else:
        text = _as_text(value).replace(" ", "")
        if not _NUMBER.match(text):
            raise _Invalid(f"»{text}« ist keine gültige Zahl (z. B. 12 oder 3,5).")
        number = float(text.replace(",", "."))
    if isinstance(number, float):
        if number != number or number in (float("inf"), float("-inf")):
            raise _Invalid("Bitte geben Sie eine endliche Zahl an.")
        if number.is_integer():
            return int(number)
    return number


def _choice(question: QuestionField) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _as_text(value)
        for choice in question.choices:
            if text == choice.value:
                return choice.value
        folded = text.casefold()
        for choice in question.choices:
            if folded in (choice.value.casefold(), choice.label.casefold()):
                return choice.value
        options = ", ".join(f"»{c.label}«" for c in question.choices)
        raise _Invalid(f"»{text}« ist keine der möglichen Antworten ({options}).")

    return parse


def parse_contact_text(text: str) -> dict[str, Any]:
    """A contact from JSON (``{"name": ..}``) or ``name=..;email=..`` (German keys too)."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise _Invalid("Die Angabe ist kein gültiges JSON-Objekt.") from None
        if not isinstance(data, dict):
            raise _Invalid("Die Angabe ist kein JSON-Objekt.")
        return data
    data: dict[str, Any] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        if "=" not in part:
            raise _Invalid(
                f"»{part.strip()}« hat nicht die Form schlüssel=wert "
                "(z. B. name=Anna Muster;email=anna.muster@gemeinde.de)."
            )
        key, _, value = part.partition("=")
        data[key.strip().lower()] = value.strip()
    return data


def parse_contacts_text(text: str) -> list[Any]:
    """Contacts from a JSON list, or several ``name=..;email=..`` separated by ``|`` or lines."""
    text = text.strip()
    if text.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise _Invalid("Die Angabe ist keine gültige JSON-Liste.") from None
        if not isinstance(data, list):
            raise _Invalid("Die Angabe ist keine JSON-Liste.")
        return data
    return [part for part in re.split(r"\s*(?:\||\n)\s*", text) if part.strip()]


def _contact(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = parse_contact_text(value)
    if not isinstance(value, Mapping):
        raise _Invalid("Bitte geben Sie eine Ansprechperson mit Name und E-Mail-Adresse an.")
    data: dict[str, Any] = {}
    unknown: list[str] = []
    for raw_key, raw_value in value.items():
        key = _CONTACT_ALIASES.get(str(raw_key).strip().lower())
        if key is None:
            unknown.append(str(raw_key))
        elif not _is_empty(raw_value):
            data[key] = raw_value
    problems: list[str] = []
    if unknown:
        problems.append(
            f"unbekannte Angabe {', '.join(f'»{k}«' for k in unknown)} "
            "(möglich: Anrede, Name, Funktion, E-Mail, Telefon)"
        )
    contact: dict[str, Any] = {}
    salutation = data.get("salutation")
    if salutation is not None:
        text = str(salutation).strip().rstrip(".").lower()
        if text in _SALUTATIONS:
            contact["salutation"] = _SALUTATIONS[text]
        else:
            problems.append(f"Anrede »{salutation}« ist ungültig (erwartet Frau, Herr oder leer)")
    for key, label, parser in (
        ("name", "Name", _text(200)),
        ("function", "Funktion", _text(200)),
        ("email", "E-Mail", _email),
        ("phone", "Telefon", _phone),
    ):
        if key not in data:
            if key in ("name", "email"):
                problems.append(f"{label} fehlt")
            continue
        try:
            contact[key] = parser(data[key])
        except _Invalid as error:
            problems.append(f"{label}: {error}")
    if problems:
        raise _Invalid("; ".join(problems).rstrip(".") + ".")
    return {key: contact[key] for key in CONTACT_KEYS if key in contact}


def _contacts(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        value = parse_contacts_text(value)
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list | tuple):
        raise _Invalid("Bitte geben Sie eine Liste von Personen mit Name und E-Mail-Adresse an.")
    if len(value) > _MAX_CONTACTS:
        raise _Invalid(f"Zu viele Einträge (höchstens {_MAX_CONTACTS}).")
    contacts: list[dict[str, Any]] = []
    problems: list[str] = []
    for number, item in enumerate(value, start=1):
        if _is_empty(item):
            continue
        try:
            contacts.append(_contact(item))
        except _Invalid as error:
            problems.append(f"Eintrag {number}: {error}")
    if problems:
        raise _Invalid(" ".join(problems))
    return contacts


def _parser(question: QuestionField) -> Callable[[Any], Any]:
    parsers: dict[str, Callable[[Any], Any]] = {
        "text": _text(_MAX_TEXT),
        "textarea": _text(_MAX_TEXTAREA),
        "email": _email,
        "phone": _phone,
        "date": _date,
        "yesno": _yesno,
        "number": _number,
        "contact": _contact,
        "contacts": _contacts,
    }
    if question.type == "choice":
        return _choice(question)
    return parsers[question.type]


def validate_answers(
    definition: CampaignDefinition,
    *,
    role: str | None,
    is_pilot: bool,
    answers: Mapping[str, Any],
    submit: bool,
) -> ValidationResult:
    """Check and type ANSWERS against the fields that apply to ROLE (and pilots).

    Empty values (None, "", [], {}) count as not answered and are left out of ``clean``.
    Unknown keys and fields that do not apply are errors. Required fields are enforced only
    when SUBMIT; ``complete`` says whether every applicable required field is answered and
    there are no errors.
    """
    applicable = {q.key: q for q in definition.fields_for(role, is_pilot)}
    all_keys = {q.key for q in definition.questionnaire}
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, value in answers.items():
        question = applicable.get(key)
        if question is None:
            if key in all_keys and _is_empty(value):
                continue
            if key in all_keys:
                errors[key] = "Diese Frage gilt nicht für Ihre Gemeinde."
            else:
                valid = ", ".join(applicable) or "keine"
                errors[key] = f"Unbekanntes Feld »{key}« (gültige Felder: {valid})."
            continue
        if _is_empty(value):
            continue
        try:
            parsed = _parser(question)(value)
        except _Invalid as error:
            errors[key] = str(error)
            continue
        if _is_empty(parsed):
            continue
        clean[key] = parsed
    missing = [q.key for q in applicable.values() if q.required and q.key not in clean]
    if submit:
        for key in missing:
            errors.setdefault(key, "Bitte füllen Sie dieses Pflichtfeld aus.")
    ordered = {key: clean[key] for key in applicable if key in clean}
    return ValidationResult(clean=ordered, errors=errors, complete=not missing and not errors)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def definition_of(campaign: Campaign) -> CampaignDefinition:
    """The campaign's definition snapshot, validated."""
    return CampaignDefinition.model_validate(campaign.definition)


def _campaign(session: Session, enrolment: Enrolment) -> Campaign:
    campaign = session.get(Campaign, enrolment.campaign_id)
    if campaign is None:  # pragma: no cover - foreign key
        raise UserError(f"Die Kampagne »{enrolment.campaign_id}« gibt es nicht.")
    return campaign


def find_enrolment(session: Session, campaign_id: str, ags: str) -> Enrolment:
    """The enrolment of AGS in CAMPAIGN_ID; a German UserError when there is none."""
    code = ags.strip()
    if code.isdigit() and len(code) == 7:
        code = code.zfill(8)  # Excel lost the leading zero
    if not (code.isdigit() and len(code) == 8):
        raise UserError(f"»{ags}« ist kein gültiger Gemeindeschlüssel (8 Ziffern erwartet).")
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        known = session.exec(select(Campaign.id).order_by(Campaign.id)).all()
        raise UserError(
            f"Die Kampagne »{campaign_id}« gibt es nicht.",
            details=[f"Vorhandene Kampagnen: {', '.join(known) or 'keine'}"],
        )
    enrolment = session.exec(
        select(Enrolment).where(Enrolment.campaign_id == campaign_id, Enrolment.ags == code)
    ).first()
    if enrolment is None:
        municipality = session.get(Municipality, code)
        who = f"{municipality.name} ({code})" if municipality else f"mit dem Schlüssel {code}"
        raise UserError(f"Die Gemeinde {who} nimmt an der Kampagne »{campaign_id}« nicht teil.")
    return enrolment


def latest_response(
    session: Session, enrolment_id: int, *, submitted_only: bool = False
) -> QuestionnaireResponse | None:
    """The newest answers version of an enrolment (only submitted ones if SUBMITTED_ONLY)."""
    query = select(QuestionnaireResponse).where(QuestionnaireResponse.enrolment_id == enrolment_id)
    if submitted_only:
        query = query.where(QuestionnaireResponse.status == "submitted")
    query = query.order_by(QuestionnaireResponse.version.desc())  # type: ignore[attr-defined]
    return session.exec(query.limit(1)).first()


def format_answer(question: QuestionField, value: Any) -> str:
    """An answer as German text for the summary and the portal (dates DD.MM.YYYY)."""
    if _is_empty(value):
        return ""
    if question.type == "yesno":
        return "ja" if value else "nein"
    if question.type == "date":
        try:
            return date.fromisoformat(str(value)).strftime("%d.%m.%Y")
        except ValueError:
            return str(value)
    if question.type == "choice":
        labels = {c.value: c.label for c in question.choices}
        return labels.get(str(value), str(value))
    if question.type == "number":
        return str(value).replace(".", ",")
    if question.type == "contact":
        return _format_contact(value)
    if question.type == "contacts":
        return "; ".join(_format_contact(c) for c in value)
    return str(value)


def _format_contact(value: Any) -> str:
    if not isinstance(value, Mapping):
        return str(value)
    name = " ".join(str(value[k]) for k in ("salutation", "name") if value.get(k))
    parts = [name]
    if value.get("function"):
        parts[0] += f" ({value['function']})"
    parts.extend(str(value[k]) for k in ("email", "phone") if value.get(k))
    return ", ".join(p for p in parts if p)


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")


def _touch(enrolment: Enrolment, now: datetime, expected_version: int | None) -> None:
    if expected_version is not None and enrolment.version != expected_version:
        raise UserError(
            "Die Angaben wurden inzwischen von anderer Seite geändert. Bitte laden Sie die "
            "Seite neu und prüfen Sie Ihre Eingaben."
        )
    enrolment.version += 1
    enrolment.updated_at = now


def save_answers(
    session: Session,
    *,
    enrolment: Enrolment,
    answers: Mapping[str, Any],
    submit: bool,
    source: str,
    author: str,
    now: datetime,
    merge: bool = True,
    expected_version: int | None = None,
    reason: str | None = None,
) -> QuestionnaireResponse:
    """Store a new version of the answers of ENROLMENT (flushes, does not commit).

    With MERGE the given answers are laid over the latest version's (an empty value clears a
    field), so a coordinator can enter single fields. Raises AnswersInvalid (nothing written)
    when a value is invalid, or — with SUBMIT — a required field is missing. Keeps
    ``enrolment.answers_complete`` equal to the completeness of the latest submitted version.
    EXPECTED_VERSION (optional) refuses the write when the enrolment changed meanwhile;
    REASON (optional) is kept in the event log, e.g. the file and line of an import.
    """
    _check_source(source)
    assert enrolment.id is not None
    campaign = _campaign(session, enrolment)
    definition = definition_of(campaign)
    latest = latest_response(session, enrolment.id)
    combined: dict[str, Any] = dict(latest.answers) if merge and latest is not None else {}
    for key, value in answers.items():
        combined[key] = value  # an empty value clears the field (and unknown keys are reported)
    result = validate_answers(
        definition,
        role=enrolment.role,
        is_pilot=enrolment.is_pilot,
        answers=combined,
        submit=submit,
    )
    if result.errors:
        labels = {q.key: q.label for q in definition.questionnaire}
        raise AnswersInvalid(result.errors, labels=labels)
    _touch(enrolment, now, expected_version)
    version = (
        session.exec(
            select(func.max(QuestionnaireResponse.version)).where(
                QuestionnaireResponse.enrolment_id == enrolment.id
            )
        ).one()
        or 0
    ) + 1
    response = QuestionnaireResponse(
        enrolment_id=enrolment.id,
        version=version,
        status="submitted" if submit else "draft",
        answers=result.clean,
        complete=result.complete,
        source=source,
        author=author,
        created_at=now,
    )
    session.add(response)
    if submit:
        enrolment.answers_complete = result.complete
    else:
        submitted = latest_response(session, enrolment.id, submitted_only=True)
        enrolment.answers_complete = bool(submitted and submitted.complete)
    session.add(enrolment)
    session.add(
        Event(
            at=now,
            campaign_id=enrolment.campaign_id,
            ags=enrolment.ags,
            enrolment_id=enrolment.id,
            actor=author,
            kind="answers_submitted" if submit else "answers_saved",
            reason=reason,
            data={
                "version": version,
                "source": source,
                "complete": result.complete,
                "fields": sorted(answers),
            },
        )
    )
    session.flush()
    return response


def recompute_required_open(
    session: Session, enrolment: Enrolment, definition: CampaignDefinition
) -> int:
    """Set and return ``enrolment.required_open``: required applicable items not done."""
    assert enrolment.id is not None
    required = [
        i.key for i in definition.items_for(enrolment.role, enrolment.is_pilot) if i.required
    ]
    done = set(
        session.exec(
            select(ChecklistItemState.item_key).where(
                ChecklistItemState.enrolment_id == enrolment.id,
                ChecklistItemState.done == True,  # noqa: E712
            )
        ).all()
    )
    enrolment.required_open = sum(1 for key in required if key not in done)
    session.add(enrolment)
    return enrolment.required_open


def _item(definition: CampaignDefinition, enrolment: Enrolment, item_key: str) -> ChecklistItem:
    items = {i.key: i for i in definition.items_for(enrolment.role, enrolment.is_pilot)}
    item = items.get(item_key)
    if item is not None:
        return item
    valid = ", ".join(items) or "keine"
    if any(i.key == item_key for i in definition.checklist):
        message = f"Der Checklistenpunkt »{item_key}« gilt nicht für diese Gemeinde."
    else:
        message = f"Den Checklistenpunkt »{item_key}« gibt es in dieser Kampagne nicht."
    raise UserError(message, details=[f"Gültige Punkte: {valid}"])


def set_checklist_item(
    session: Session,
    *,
    enrolment: Enrolment,
    item_key: str,
    done: bool,
    note: str | None,
    source: str,
    author: str,
    now: datetime,
    expected_version: int | None = None,
) -> ChecklistItemState:
    """Mark one checklist item done (or open again) and recompute ``required_open``.

    Setting the state it already has, with the same note, changes nothing and logs nothing.
    Flushes, does not commit.
    """
    _check_source(source)
    assert enrolment.id is not None
    definition = definition_of(_campaign(session, enrolment))
    _item(definition, enrolment, item_key)
    if note is not None:
        note = note.strip() or None
        if note is not None and len(note) > 2000:
            raise UserError("Die Notiz ist zu lang (höchstens 2000 Zeichen).")
    state = session.exec(
        select(ChecklistItemState).where(
            ChecklistItemState.enrolment_id == enrolment.id,
            ChecklistItemState.item_key == item_key,
        )
    ).first()
    if state is None:  # created at enrolment normally; be forgiving for late definition items
        state = ChecklistItemState(enrolment_id=enrolment.id, item_key=item_key, updated_at=now)
    elif state.done == done and (note is None or note == state.note):
        return state
    _touch(enrolment, now, expected_version)
    state.done = done
    state.done_at = now if done else None
    if note is not None:
        state.note = note
    state.source = source
    state.author = author
    state.updated_at = now
    session.add(state)
    session.flush()
    recompute_required_open(session, enrolment, definition)
    session.add(
        Event(
            at=now,
            campaign_id=enrolment.campaign_id,
            ags=enrolment.ags,
            enrolment_id=enrolment.id,
            actor=author,
            kind="checklist_item_done" if done else "checklist_item_reopened",
            data={"item": item_key, "note": note, "source": source},
        )
    )
    session.flush()
    return state


def checklist_view(
    session: Session,
    enrolment: Enrolment,
    definition: CampaignDefinition,
    *,
    today: date,
) -> list[dict[str, Any]]:
    """The applicable checklist of ENROLMENT with due dates and state, in definition order.

    Each entry: key, title, owner, required, help, due (date), done, done_at, note, overdue.
    """
    assert enrolment.id is not None
    go_live = enrolment.go_live or _campaign(session, enrolment).go_live
    states = {
        s.item_key: s
        for s in session.exec(
            select(ChecklistItemState).where(ChecklistItemState.enrolment_id == enrolment.id)
        ).all()
    }
    view: list[dict[str, Any]] = []
    for item in definition.items_for(enrolment.role, enrolment.is_pilot):
        state = states.get(item.key)
        done = bool(state and state.done)
        due = go_live + timedelta(days=item.due)
        view.append(
            {
                "key": item.key,
                "title": item.title,
                "owner": item.owner,
                "required": item.required,
                "help": item.help,
                "due": due,
                "done": done,
                "done_at": state.done_at if state else None,
                "note": state.note if state else None,
                "overdue": not done and due < today,
            }
        )
    return view


# ---------------------------------------------------------------------------------------------
# Import of answers from a table (CSV/XLSX), all or nothing
# ---------------------------------------------------------------------------------------------

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
                for alias, part in _CONTACT_ALIASES.items():
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

    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise UserError(f"Die Kampagne »{campaign_id}« gibt es nicht.")
    definition = definition_of(campaign)
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
            and (latest.status == "submitted" or not submit)
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
