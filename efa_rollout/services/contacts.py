"""The one contact rule set: parsing and checking contact persons (portal, CLI, imports)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlmodel import Session, col, select

from efa_rollout.domain.audit import EventKind
from efa_rollout.domain.contacts import (
    MAX_CONTACT_TEXT,
    SALUTATION_ALIASES,
    SALUTATIONS,
    is_phone,
)
from efa_rollout.mail.message import InvalidAddressError, contact_address
from efa_rollout.services.fields import (
    InvalidValue,
    is_empty,
    parse_email,
    parse_phone,
    text_parser,
)
from efa_rollout.texts import say
from models import Contact, Event

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


_MAX_CONTACTS = 200


def parse_contact_text(text: str) -> dict[str, Any]:
    """A contact from JSON (``{"name": ..}``) or ``name=..;email=..`` (German keys too)."""
    text = text.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            raise InvalidValue(say("service.contacts.json_invalid")) from None
        if not isinstance(parsed, dict):
            raise InvalidValue(say("service.contacts.json_not_object"))
        return parsed
    data: dict[str, Any] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        if "=" not in part:
            raise InvalidValue(say("service.contacts.not_key_value", part=part.strip()))
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
            raise InvalidValue(say("service.contacts.json_list_invalid")) from None
        if not isinstance(data, list):
            raise InvalidValue(say("service.contacts.json_not_list"))
        return data
    return [part for part in re.split(r"\s*(?:\||\n)\s*", text) if part.strip()]


def parse_contact(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = parse_contact_text(value)
    if not isinstance(value, Mapping):
        raise InvalidValue(say("service.contacts.not_a_contact"))
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
        parts = ", ".join(say("service.contacts.part", key=k) for k in unknown)
        problems.append(say("service.contacts.unknown_parts", parts=parts))
    contact: dict[str, Any] = {}
    salutation = data.get("salutation")
    if salutation is not None:
        text = str(salutation).strip().rstrip(".").lower()
        if text in SALUTATION_ALIASES:
            contact["salutation"] = SALUTATION_ALIASES[text]
        else:
            problems.append(say("service.contacts.salutation_invalid", salutation=salutation))
    for key, label, parser in (
        ("name", say("service.contacts.label_name"), text_parser(MAX_CONTACT_TEXT)),
        ("function", say("service.contacts.label_function"), text_parser(MAX_CONTACT_TEXT)),
        ("email", say("service.contacts.label_email"), parse_email),
        ("phone", say("service.contacts.label_phone"), parse_phone),
    ):
        if key not in data:
            if key in ("name", "email"):
                problems.append(say("service.contacts.part_missing", label=label))
            continue
        try:
            contact[key] = parser(data[key])
        except InvalidValue as error:
            problems.append(say("service.contacts.part_invalid", label=label, error=error))
    if problems:
        raise InvalidValue("; ".join(problems).rstrip(".") + ".")
    return {key: contact[key] for key in CONTACT_KEYS if key in contact}


def parse_contacts(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        value = parse_contacts_text(value)
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list | tuple):
        raise InvalidValue(say("service.contacts.not_a_list"))
    if len(value) > _MAX_CONTACTS:
        raise InvalidValue(say("service.contacts.too_many", limit=_MAX_CONTACTS))
    contacts: list[dict[str, Any]] = []
    problems: list[str] = []
    for number, item in enumerate(value, start=1):
        if is_empty(item):
            continue
        try:
            contacts.append(parse_contact(item))
        except InvalidValue as error:
            problems.append(say("service.contacts.entry", number=number, error=error))
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


@dataclass(frozen=True)
class ContactChange:
    """One checked row of a contact list: keep or update (DATA), add (no ID) or DELETE."""

    id: int | None
    delete: bool
    data: dict[str, Any]


def apply_contact_changes(
    session: Session,
    existing: Mapping[int | None, Contact],
    changes: Sequence[ContactChange],
    *,
    ags: str,
    campaign_id: str,
    enrolment_id: int | None,
    actor: str,
    now: datetime,
    source: str = "portal",
) -> bool:
    """Store CHANGES to a municipality's contacts (logged once); False when nothing changed."""
    added = changed = deleted = 0
    for change in changes:
        contact = existing.get(change.id) if change.id is not None else None
        if change.delete:
            if contact is not None:
                session.delete(contact)
                deleted += 1
            continue
        if contact is None:
            session.add(Contact(ags=ags, source=source, updated_at=now, **change.data))
            added += 1
        elif any(getattr(contact, k) != v for k, v in change.data.items()):
            if contact.email != change.data["email"]:
                contact.delivery_failed_at = None  # a new address gets a fresh chance
                contact.delivery_failure = None
            for key, value in change.data.items():
                setattr(contact, key, value)
            contact.source = source
            contact.updated_at = now
            session.add(contact)
            changed += 1
    if not (added or changed or deleted):
        return False
    session.flush()
    session.add(
        Event(
            at=now,
            campaign_id=campaign_id,
            ags=ags,
            enrolment_id=enrolment_id,
            actor=actor,
            kind=EventKind.CONTACTS_CHANGED,
            data={"added": added, "changed": changed, "deleted": deleted, "source": source},
        )
    )
    return True


def contacts_of(session: Session, ags: str) -> list[Contact]:
    """The contacts of a municipality, by role and age."""
    query = select(Contact).where(Contact.ags == ags).order_by(col(Contact.role), col(Contact.id))
    return list(session.exec(query).all())


def contacts_from_answers(
    session: Session,
    *,
    fields: Sequence[Any],
    answers: Mapping[str, Any],
    ags: str,
    campaign_id: str,
    enrolment_id: int | None,
    actor: str,
    now: datetime,
) -> list[str]:
    """Contact persons named in submitted answers update the directory; the changes as lines.

    A field with ``directory_role`` names the role: a contact with that role and e-mail is
    updated (name, salutation, function, phone), otherwise added, so the next mail reaches
    the person named. Nothing is deleted. Logged as one CONTACTS_CHANGED event.
    """
    lines: list[str] = []
    for field in fields:
        value = answers.get(field.key)
        role = getattr(field, "directory_role", None)
        if not role or field.type != "contact" or not isinstance(value, Mapping):
            continue
        email = str(value.get("email") or "").strip()
        if not email:
            continue
        data = {k: value.get(k) or None for k in ("salutation", "name", "function", "phone")}
        existing = session.exec(
            select(Contact).where(Contact.ags == ags, Contact.role == role)
        ).all()
        contact = next((c for c in existing if c.email.lower() == email.lower()), None)
        source = say("service.contacts.source", campaign=campaign_id, label=field.label)
        if contact is None:
            session.add(
                Contact(
                    ags=ags,
                    role=role,
                    email=email,
                    source=source,
                    updated_at=now,
                    **{k: v for k, v in data.items() if v},
                )
            )
            lines.append(say("service.contacts.added", role=role, contact=format_contact(value)))
            continue
        changed = {k: v for k, v in data.items() if v and getattr(contact, k) != v}
        if not changed:
            continue
        for key, new in changed.items():
            setattr(contact, key, new)
        contact.source, contact.updated_at = source, now
        session.add(contact)
        fields = ", ".join(sorted(changed))
        lines.append(say("service.contacts.updated", role=role, email=email, fields=fields))
    if lines:
        session.add(
            Event(
                at=now,
                campaign_id=campaign_id,
                ags=ags,
                enrolment_id=enrolment_id,
                actor=actor,
                kind=EventKind.CONTACTS_CHANGED,
                reason=say("service.contacts.taken_over", lines="; ".join(lines)),
                data={"source": "answers", "changes": lines},
            )
        )
        session.flush()
    return lines


def contact_changes(session: Session, enrolment_id: int | None, now: datetime) -> list[str]:
    """The directory changes answers of ENROLMENT_ID made at NOW (for the CLI's message)."""
    events = session.exec(
        select(Event).where(
            Event.enrolment_id == enrolment_id,
            Event.kind == EventKind.CONTACTS_CHANGED,
            Event.at == now,
        )
    ).all()
    return [line for e in events for line in (e.data or {}).get("changes", [])]


# ---------------------------------------------------------------------------------------------
# A municipality's own list of contacts (the portal's contacts form)
# ---------------------------------------------------------------------------------------------

#: Roles a municipality can give its contacts (besides those the campaign names); stored values.
COMMON_ROLES = (
    "Hauptamt",
    "Bürgermeister",
    "Meldebehörde",
    "Bauamt",
    "IT",
    "Datenschutz",
)


@dataclass(frozen=True)
class Problem:
    """A broken rule: CODE names it (the caller words it), PARAMS fill in the details."""

    code: str
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class ContactDraft(Protocol):
    """One entry of a contact list as a person edited it (an existing contact or a new one)."""

    id: int | None
    role: str
    salutation: str
    salutation_title: str
    name: str
    function: str
    email: str
    phone: str
    shared_mailbox: bool
    delete: bool

    @property
    def blank(self) -> bool: ...


@dataclass
class ContactCheck:
    """Problems per entry (index → field → problem), normalised addresses, the list's problem."""

    problems: dict[int, dict[str, Problem]] = dataclasses.field(default_factory=dict)
    emails: dict[int, str] = dataclasses.field(default_factory=dict)
    overall: Problem | None = None

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return self.overall is None and not any(self.problems.values())


def role_options(definition: Any, existing: Sequence[str]) -> list[str]:
    """The roles a contact may have: the campaign's, the common ones, and those already used."""
    roles = [
        *definition.contact_roles,
        *definition.reminders.escalation_roles,
        *COMMON_ROLES,
        *existing,
    ]
    return list(dict.fromkeys(r for r in roles if r))


def _entry_problems(draft: ContactDraft, roles: Sequence[str]) -> tuple[dict[str, Problem], str]:
    """The problems of one kept entry (later ones for a field win) and its checked address."""
    problems: dict[str, Problem] = {}
    if draft.role not in roles:
        problems["role"] = Problem("contact.role_unknown")
    if draft.salutation and draft.salutation not in SALUTATIONS:
        problems["salutation"] = Problem("contact.salutation_unknown")
    if not draft.shared_mailbox and not draft.name:
        problems["name"] = Problem("contact.name_missing")
    if len(draft.name) > MAX_CONTACT_TEXT:
        problems["name"] = Problem("contact.name_too_long", {"limit": MAX_CONTACT_TEXT})
    if len(draft.function) > MAX_CONTACT_TEXT:
        problems["function"] = Problem("contact.function_too_long", {"limit": MAX_CONTACT_TEXT})
    email = draft.email
    if not email:
        problems["email"] = Problem("contact.email_missing")
    else:
        try:
            email = contact_address(email)
        except InvalidAddressError as error:
            problems["email"] = Problem("contact.email_invalid", {"reason": error.message})
    if draft.phone and not is_phone(draft.phone):
        problems["phone"] = Problem("contact.phone_invalid", {"phone": draft.phone})
    return problems, email


def check_contact_list(
    drafts: Sequence[ContactDraft], existing_ids: Collection[int | None], roles: Sequence[str]
) -> ContactCheck:
    """Check an edited contact list: every kept entry, repeated addresses, at least one left."""
    check = ContactCheck()
    seen: dict[tuple[str, str], int] = {}
    remaining = 0
    for n, draft in enumerate(drafts):
        if draft.blank:
            continue
        if draft.id is not None and draft.id not in existing_ids:
            check.problems[n] = {"name": Problem("contact.contact_gone")}
            continue
        if draft.delete:
            continue
        remaining += 1
        problems, email = _entry_problems(draft, roles)
        check.emails[n] = email
        pair = (draft.role, email.casefold())
        if email and pair in seen:
            problems["email"] = Problem(
                "contact.email_repeated", {"role": draft.role, "number": seen[pair] + 1}
            )
        seen.setdefault(pair, n)
        if problems:
            check.problems[n] = problems
    if remaining == 0:
        check.overall = Problem("contact.no_contact_left")
    return check


def changes_of(drafts: Sequence[ContactDraft]) -> list[ContactChange]:
    """The checked, non-blank entries of a contact list as changes to store."""
    return [
        ContactChange(
            id=draft.id,
            delete=draft.delete,
            data={
                "role": draft.role,
                "salutation": draft.salutation or None,
                "salutation_title": draft.salutation_title or None,
                "name": draft.name or None,
                "function": draft.function or None,
                "email": draft.email,
                "phone": draft.phone or None,
                "is_shared_mailbox": draft.shared_mailbox,
            },
        )
        for draft in drafts
        if not draft.blank
    ]
