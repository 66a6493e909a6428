"""Between HTML forms and stored data: questionnaire answers, checklist ticks, contacts.

Form values are always strings as the user typed them, so a page re-rendered with errors shows
exactly the input. The questionnaire uses these field names (KEY from the definition):

- ``f.KEY`` for text, textarea, email, phone, date, number, choice and yesno;
- ``f.KEY.SUB`` for a contact (SUB in salutation, name, function, email, phone);
- ``f.KEY.N.SUB`` for row N (0-based) of a contacts list, ``rows.KEY`` the number of rows.

Only keys of the fields that apply to the municipality are read; anything else in the form
(say, a planted ``ags`` or ``campaign_id``) is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from efa_rollout.definitions import QuestionField
from efa_rollout.domain.text import german_date
from efa_rollout.services.contacts import CONTACT_KEYS

__all__ = [
    "MAX_ROWS",
    "MIN_ROWS",
    "ContactRow",
    "FormValues",
    "answers_from_values",
    "contact_rows_from_form",
    "values_from_answers",
    "values_from_form",
]

MIN_ROWS = 3  # rows a contacts list shows at least
MAX_ROWS = 200
MAX_CONTACT_ROWS = 60

FormValues = dict[str, Any]  # key → str | dict[str, str] | list[dict[str, str]]


def _blank_contact() -> dict[str, str]:
    return dict.fromkeys(CONTACT_KEYS, "")


def _display(question: QuestionField, value: Any) -> str:
    """A stored (typed) answer as the string a form field shows."""
    if value is None:
        return ""
    if question.type == "yesno":
        return "ja" if value else "nein"
    if question.type == "date":
        try:
            return german_date(date.fromisoformat(str(value)))
        except ValueError:
            return str(value)
    if question.type == "number":
        return str(value).replace(".", ",")
    return str(value)


def _contact_strings(value: Any) -> dict[str, str]:
    contact = _blank_contact()
    if isinstance(value, Mapping):
        for key in CONTACT_KEYS:
            if value.get(key) is not None:
                contact[key] = str(value[key])
    return contact


def values_from_answers(fields: Iterable[QuestionField], answers: Mapping[str, Any]) -> FormValues:
    """Form values for FIELDS prefilled from stored ANSWERS."""
    values: FormValues = {}
    for question in fields:
        value = answers.get(question.key)
        if question.type == "contact":
            values[question.key] = _contact_strings(value)
        elif question.type == "contacts":
            rows = [_contact_strings(v) for v in value] if isinstance(value, list) else []
            values[question.key] = rows
        else:
            values[question.key] = _display(question, value)
    return values


def _text(form: Mapping[str, Any], name: str, limit: int = 65_536) -> str:
    # Long texts are kept whole (the body limit bounds them): validation says "zu lang" and
    # the page shown again must hold everything the person wrote.
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def row_count(form: Mapping[str, Any], key: str) -> int:
    """How many rows of the contacts list KEY the posted form had (bounded)."""
    try:
        count = int(_text(form, f"rows.{key}", 4))
    except ValueError:
        count = 0
    return max(0, min(count, MAX_ROWS))


def values_from_form(fields: Iterable[QuestionField], form: Mapping[str, Any]) -> FormValues:
    """Form values of FIELDS as posted (strings, trimmed); other form keys are ignored."""
    values: FormValues = {}
    for question in fields:
        key = question.key
        if question.type == "contact":
            values[key] = {sub: _text(form, f"f.{key}.{sub}", 400) for sub in CONTACT_KEYS}
        elif question.type == "contacts":
            values[key] = [
                {sub: _text(form, f"f.{key}.{n}.{sub}", 400) for sub in CONTACT_KEYS}
                for n in range(row_count(form, key))
            ]
        else:
            values[key] = _text(form, f"f.{key}")
    return values


def _contact_answer(contact: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in contact.items() if v}


def answers_from_values(fields: Iterable[QuestionField], values: FormValues) -> dict[str, Any]:
    """Answers for ``save_answers`` from form VALUES: every field present, empty ones as ''.

    Sending every applicable field lets an emptied input clear a stored answer. Blank rows of
    a contacts list are kept as ``{}`` so that "Eintrag N" in a message is row N on the page.
    """
    answers: dict[str, Any] = {}
    for question in fields:
        value = values.get(question.key)
        if question.type == "contact":
            contact = _contact_answer(value or {})
            answers[question.key] = contact or ""
        elif question.type == "contacts":
            rows = [_contact_answer(row) for row in value or []]
            while rows and not rows[-1]:
                rows.pop()
            answers[question.key] = rows
        else:
            answers[question.key] = value or ""
    return answers


# ---------------------------------------------------------------------------------------------
# Contacts of the municipality (the directory, not questionnaire answers)
# ---------------------------------------------------------------------------------------------


@dataclass
class ContactRow:
    """One row of the contacts form: an existing contact (``id``) or a new one."""

    id: int | None = None
    role: str = ""
    salutation: str = ""
    salutation_title: str = ""
    name: str = ""
    function: str = ""
    email: str = ""
    phone: str = ""
    shared_mailbox: bool = False
    delete: bool = False
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def blank(self) -> bool:
        """A new row nobody filled in."""
        return self.id is None and not any(
            (self.salutation, self.name, self.function, self.email, self.phone)
        )


def contact_rows_from_form(form: Mapping[str, Any]) -> list[ContactRow]:
    """The rows of the posted contacts form (ids as posted: the caller checks ownership)."""
    try:
        count = max(0, min(int(_text(form, "k.rows", 4)), MAX_CONTACT_ROWS))
    except ValueError:
        count = 0
    rows: list[ContactRow] = []
    for n in range(count):
        raw_id = _text(form, f"k.{n}.id", 20)
        rows.append(
            ContactRow(
                id=int(raw_id) if raw_id.isdigit() else None,
                role=_text(form, f"k.{n}.role", 60),
                salutation=_text(form, f"k.{n}.salutation", 10),
                salutation_title=_text(form, f"k.{n}.salutation_title", 100),
                name=_text(form, f"k.{n}.name", 400),
                function=_text(form, f"k.{n}.function", 400),
                email=_text(form, f"k.{n}.email", 400),
                phone=_text(form, f"k.{n}.phone", 100),
                shared_mailbox=bool(_text(form, f"k.{n}.shared_mailbox", 5)),
                delete=bool(_text(form, f"k.{n}.delete", 5)),
            )
        )
    return rows
