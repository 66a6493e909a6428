"""The one contact rule set: parsing and checking contact persons (portal, CLI, imports)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass
from efa_rollout.services.fields import (
    InvalidValue,
    is_empty,
    parse_email,
    parse_phone,
    text_parser,
)

#: The keys of a contact answer, in display order.
CONTACT_KEYS = ("salutation", "name", "function", "email", "phone")


CONTACT_ALIASES = {
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


_MAX_CONTACTS = 200


def parse_contact_text(text: str) -> dict[str, Any]:
    """A contact from JSON (``{"name": ..}``) or ``name=..;email=..`` (German keys too)."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise InvalidValue("Die Angabe ist kein gültiges JSON-Objekt.") from None
        if not isinstance(data, dict):
            raise InvalidValue("Die Angabe ist kein JSON-Objekt.")
        return data
    data: dict[str, Any] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        if "=" not in part:
            raise InvalidValue(
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
            raise InvalidValue("Die Angabe ist keine gültige JSON-Liste.") from None
        if not isinstance(data, list):
            raise InvalidValue("Die Angabe ist keine JSON-Liste.")
        return data
    return [part for part in re.split(r"\s*(?:\||\n)\s*", text) if part.strip()]


def parse_contact(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = parse_contact_text(value)
    if not isinstance(value, Mapping):
        raise InvalidValue("Bitte geben Sie eine Ansprechperson mit Name und E-Mail-Adresse an.")
    data: dict[str, Any] = {}
    unknown: list[str] = []
    for raw_key, raw_value in value.items():
        key = CONTACT_ALIASES.get(str(raw_key).strip().lower())
        if key is None:
            unknown.append(str(raw_key))
        elif not is_empty(raw_value):
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
        ("name", "Name", text_parser(200)),
        ("function", "Funktion", text_parser(200)),
        ("email", "E-Mail", parse_email),
        ("phone", "Telefon", parse_phone),
    ):
        if key not in data:
            if key in ("name", "email"):
                problems.append(f"{label} fehlt")
            continue
        try:
            contact[key] = parser(data[key])
        except InvalidValue as error:
            problems.append(f"{label}: {error}")
    if problems:
        raise InvalidValue("; ".join(problems).rstrip(".") + ".")
    return {key: contact[key] for key in CONTACT_KEYS if key in contact}


def parse_contacts(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        value = parse_contacts_text(value)
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list | tuple):
        raise InvalidValue(
            "Bitte geben Sie eine Liste von Personen mit Name und E-Mail-Adresse an."
        )
    if len(value) > _MAX_CONTACTS:
        raise InvalidValue(f"Zu viele Einträge (höchstens {_MAX_CONTACTS}).")
    contacts: list[dict[str, Any]] = []
    problems: list[str] = []
    for number, item in enumerate(value, start=1):
        if is_empty(item):
            continue
        try:
            contacts.append(parse_contact(item))
        except InvalidValue as error:
            problems.append(f"Eintrag {number}: {error}")
    if problems:
        raise InvalidValue(" ".join(problems))
    return contacts


def format_contact(value: Any) -> str:
    if not isinstance(value, Mapping):
        return str(value)
    name = " ".join(str(value[k]) for k in ("salutation", "name") if value.get(k))
    parts = [name]
    if value.get("function"):
        parts[0] += f" ({value['function']})"
    parts.extend(str(value[k]) for k in ("email", "phone") if value.get(k))
    return ", ".join(p for p in parts if p)
