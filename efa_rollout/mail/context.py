"""Template context for a campaign mail: who, what, which dates, which open items."""

from __future__ import annotations

import functools
from collections.abc import Hashable, Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, select

from efa_rollout.definitions import CampaignDefinition
from efa_rollout.domain import phrasing
from efa_rollout.domain.text import as_date, signature
from efa_rollout.mail.render import MailRenderError, render_paragraph
from efa_rollout.settings import Settings
from models import (
    Campaign,
    ChecklistItemState,
    Contact,
    Enrolment,
    Municipality,
    QuestionnaireResponse,
)

#: Kinds whose mail carries the municipality's personal portal link.
KINDS_WITH_LINK = frozenset(
    {
        "information_request",
        "summary",
        "reminder",
        "escalation",
        "go_live",
        "after_care",
        "submission_confirmation",
    }
)

_TYPE_LABELS = {"60": "Markt", "61": "Stadt", "62": "Stadt", "63": "Stadt", "67": "Stadt"}
_NAME_PARTICLES = frozenset({"von", "van", "vom", "zu", "zum", "zur", "de", "der", "den", "di"})
_TITLES = frozenset({"Dr.", "Prof.", "Dipl.-Ing.", "Dr.-Ing."})
#: Key of the open item that stands for the questionnaire (see efa_rollout.domain.reminders).
QUESTIONNAIRE_ITEM_KEY = "fragebogen"
#: Checklist owner that means "the municipality itself" (others confirm their own items).
MUNICIPALITY_OWNER = "Gemeinde"
#: Kinds that ask the municipality for something by a deadline (never a past one).
_ASKING_KINDS = frozenset(
    {"information_request", "submission_confirmation", "summary", "go_live", "after_care"}
)
_DATE_KEYS = (
    "collection_deadline",
    "summary",
    "pilot_start",
    "silent_go_live",
    "mandatory_from",
    "after_care_until",
)


def municipality_label(municipality: Municipality) -> str:
    """'Stadt Aalen', 'Gemeinde Essingen', 'Markt ...' from the GV100AD type code."""
    prefix = _TYPE_LABELS.get(municipality.type_code or "", "Gemeinde")
    return f"{prefix} {municipality.name}"


def salutation_for(contacts: Sequence[Contact]) -> str:
    """The salutation line for the mail's recipients (see README, "Anrede").

    Persons with a salutation (Frau/Herr) and a name are addressed by name and title
    ("Sehr geehrter Herr Bürgermeister Müller,"); with two such persons both are named,
    shared mailboxes among the recipients are not addressed. More than two persons, or a
    person we cannot address by name, give "Sehr geehrte Damen und Herren,".
    """
    people = [c for c in contacts if not c.is_shared_mailbox]
    lines = [personal_salutation(c) for c in people]
    if not lines or len(lines) > 2 or None in lines:
        return GENERIC_SALUTATION
    text = ", ".join(line for line in lines if line)
    return text[0].upper() + text[1:] + ","


GENERIC_SALUTATION = "Sehr geehrte Damen und Herren,"


def personal_salutation(contact: Contact) -> str | None:
    """'sehr geehrte Frau Hauptamtsleiterin Schmid' (no comma), None if not possible."""
    surname = _surname(contact.name or "")
    if contact.is_shared_mailbox or not surname or contact.salutation not in ("Frau", "Herr"):
        return None
    title = (getattr(contact, "salutation_title", None) or "").strip()
    words = [contact.salutation, title, surname] if title else [contact.salutation, surname]
    opening = "sehr geehrte" if contact.salutation == "Frau" else "sehr geehrter"
    return f"{opening} {' '.join(words)}"


def _surname(name: str) -> str:
    """'Dr. Anna von Berg' → 'Dr. von Berg'; the academic title stays, first names go."""
    words = name.split()
    if not words:
        return ""
    titles = [w for w in words if w in _TITLES]
    rest = [w for w in words if w not in _TITLES]
    if not rest:
        return ""
    start = len(rest) - 1
    while start > 1 and rest[start - 1].lower() in _NAME_PARTICLES:
        start -= 1
    if start == 1 and rest[0].lower() in _NAME_PARTICLES:
        start = 0
    return " ".join([*titles, *rest[start:]])


def campaign_definition(campaign: Campaign) -> CampaignDefinition | None:
    """The campaign's definition snapshot, validated (None when there is none)."""
    if not campaign.definition:
        return None
    try:
        return CampaignDefinition.model_validate(campaign.definition)
    except ValidationError as error:
        raise MailRenderError(
            f"Die Definition der Kampagne {campaign.id} ist ungültig: {error.error_count()} Fehler."
        ) from None


def key_dates(campaign: Campaign, enrolment: Enrolment | None) -> tuple[date, dict[str, Any]]:
    """Go-live (the municipality's own, else the campaign's) and the other key dates."""
    go_live = (enrolment.go_live if enrolment and enrolment.go_live else None) or campaign.go_live
    stored = campaign.dates or {}
    dates: dict[str, Any] = {
        key: as_date(stored[key]) if stored.get(key) else None for key in _DATE_KEYS
    }
    dates["trainings"] = [as_date(d) for d in stored.get("trainings") or []]
    return go_live, dates


def add_working_days(start: date, days: int, settings: Settings) -> date:
    """START plus DAYS working days (no weekends, state holidays or closing days)."""
    return _add_working_days(
        start, days, settings.holiday_subdivision, tuple(settings.closing_days)
    )


@functools.lru_cache(maxsize=256)
def _add_working_days(
    start: date, days: int, subdivision: str, closing_days: tuple[str, ...]
) -> date:
    """Cached: a batch asks the same few days for every mail (building the holidays is slow)."""
    import holidays

    years = range(start.year, start.year + 2)
    off = holidays.country_holidays("DE", subdiv=subdivision, years=years)
    current, left = start, days
    while left > 0:
        current += timedelta(days=1)
        closed = current.strftime("%m-%d") in closing_days
        if current.weekday() < 5 and current not in off and not closed:
            left -= 1
    return current


def checklist_context(
    session: Session | None,
    definition: CampaignDefinition | None,
    enrolment: Enrolment | None,
    go_live: date,
    today: date,
    done: set[str] | None = None,
) -> list[dict[str, Any]]:
    """The municipality's checklist: title, due date, done, overdue; ordered by due date.

    DONE: the keys of the items done, when the caller loaded them (for a whole batch).
    """
    if definition is None:
        return []
    role = enrolment.role if enrolment else None
    is_pilot = bool(enrolment and enrolment.is_pilot)
    if done is None and session is not None and enrolment is not None and enrolment.id is not None:
        states = session.exec(
            select(ChecklistItemState).where(ChecklistItemState.enrolment_id == enrolment.id)
        ).all()
        done = {s.item_key for s in states if s.done}
    done = done or set()
    items = []
    for item in definition.items_for(role, is_pilot):
        due = go_live + timedelta(days=item.due)
        is_done = item.key in done
        items.append(
            {
                "key": item.key,
                "title": item.title,
                "due": due,
                "required": item.required,
                "owner": item.owner,
                "own": item.owner == MUNICIPALITY_OWNER,
                "done": is_done,
                "overdue": not is_done and due < today,
                "due_text": phrasing.due_phrase(due, today, done=is_done),
            }
        )
    return sorted(items, key=lambda i: (i["due"], i["title"]))


def normalise_items(items: Iterable[dict[str, Any]], today: date) -> list[dict[str, Any]]:
    """Open items passed by a caller: due as a date, 'overdue' computed when missing."""
    result = []
    for item in items:
        due = as_date(item["due"])
        overdue = item.get("overdue", due < today)
        due_text = phrasing.due_phrase(due, today)
        result.append({**item, "due": due, "overdue": overdue, "due_text": due_text})
    return sorted(result, key=lambda i: (i["due"], i["title"]))


def reminder_deadline(
    open_items: Sequence[dict[str, Any]], today: date, settings: Settings
) -> date:
    """Overdue items: five working days from today; else the earliest due date."""
    if not open_items or any(i["due"] < today for i in open_items):
        return add_working_days(today, 5, settings)
    return min(i["due"] for i in open_items)


def default_deadline(kind: str, go_live: date, dates: dict[str, Any]) -> date:
    """The deadline a kind of mail names when the caller gives none."""
    if kind in ("information_request", "submission_confirmation"):
        return dates.get("collection_deadline") or go_live - timedelta(days=84)
    if kind == "summary":
        return dates.get("collection_deadline") or go_live
    if kind == "go_live":
        return go_live + timedelta(days=14)
    if kind == "after_care":
        return dates.get("after_care_until") or go_live + timedelta(days=28)
    return go_live


def paragraph_for(definition: CampaignDefinition | None, kind: str, context: dict[str, Any]) -> str:
    """The definition's extra paragraph for KIND, rendered in the sandbox ('' if none)."""
    if definition is None or not definition.mail.get(kind):
        return ""
    sandbox_context = {
        "kampagne": context["campaign"]["title"],
        "dienst": context["campaign"]["service"],
        "kommune": (context.get("municipality") or {}).get("label", ""),
        "start": context["go_live"],
        "frist": context.get("deadline"),
        "termine": {k: v for k, v in context["dates"].items() if v},
    }
    return render_paragraph(definition.mail[kind], sandbox_context)


def build_context(
    session: Session | None,
    *,
    campaign: Campaign,
    enrolment: Enrolment | None,
    municipality: Municipality | None,
    contacts: Sequence[Contact],
    kind: str,
    sequence: int,
    now: datetime,
    settings: Settings,
    portal_link: str | None,
    extra: dict[str, Any] | None = None,
    definition: CampaignDefinition | bool | None = False,
    done_items: set[str] | None = None,
) -> dict[str, Any]:
    """Everything a mail template may use; EXTRA (from the caller) wins over defaults.

    DEFINITION (the campaign's, validated) and DONE_ITEMS (its checklist keys done) may be given
    by a caller that queues a whole batch; otherwise they are read here.
    """
    extra = dict(extra or {})
    today = now.astimezone(settings.zone).date()
    if definition is False:
        definition = campaign_definition(campaign)
    assert not isinstance(definition, bool)
    go_live, dates = key_dates(campaign, enrolment)
    checklist = checklist_context(session, definition, enrolment, go_live, today, done_items)
    open_items = (
        normalise_items(extra.pop("open_items"), today)
        if "open_items" in extra
        else [i for i in checklist if not i["done"]]
    )
    role = enrolment.role if enrolment else None
    is_pilot = bool(enrolment and enrolment.is_pilot)
    questions = (
        [{"label": f.label, "required": f.required} for f in definition.fields_for(role, is_pilot)]
        if definition
        else []
    )
    if "deadline" in extra:
        deadline = as_date(extra.pop("deadline"))
    elif kind in ("reminder", "escalation"):
        deadline = reminder_deadline(open_items, today, settings)
    else:
        deadline = default_deadline(kind, go_live, dates)
        if kind in _ASKING_KINDS:
            deadline = phrasing.answer_deadline(
                deadline, today, add_working_days(today, 5, settings)
            )
    context: dict[str, Any] = {
        "kind": kind,
        "sequence": sequence,
        "campaign": {"id": campaign.id, "title": campaign.title, "service": campaign.service},
        "municipality": _municipality_context(municipality),
        "salutation": salutation_for(contacts),
        "signature": signature(settings),
        "go_live": go_live,
        "dates": dates,
        "deadline": deadline,
        "today": today,
        "questions": questions,
        "checklist": checklist,
        "open_items": open_items,
        "open_questions": [],
        "reminders_sent": None,
        "missing": [],
        "undeliverable": [],
        "mail_stats": None,
        "attachment_names": [],
        "portal_link": portal_link,
        "portal_link_valid_until": (
            (now + timedelta(days=settings.portal_token_days)).astimezone(settings.zone).date()
            if portal_link
            else None
        ),
    }
    context.update(extra)
    context.setdefault("reminder_kind", None)
    context.setdefault("deadline_groups", [])  # reminders: the open items per deadline
    context.setdefault("answered", _answered(session, enrolment))
    context["phrases"] = phrases(
        campaign.service, context["go_live"], context["dates"], context["checklist"], today
    )
    context["reminder_topic"] = reminder_topic(context["open_items"], context["open_questions"])
    context["paragraph"] = paragraph_for(definition, kind, context)
    return context


def per_mail_values(municipality: Municipality, contacts: Sequence[Contact]) -> dict[str, str]:
    """What `build_context` takes from the municipality and the contacts (render_once.PER_MAIL)."""
    return {
        "municipality.ags": municipality.ags,
        "municipality.name": municipality.name,
        "municipality.label": municipality_label(municipality),
        "salutation": salutation_for(contacts),
    }


#: The enrolment's attributes `build_context` reads (tests/test_render_once.py checks it).
CONTEXT_ENROLMENT_FIELDS = ("go_live", "role", "is_pilot")


def context_key(
    *,
    campaign: Campaign,
    enrolment: Enrolment,
    kind: str,
    sequence: int,
    now: datetime,
    portal_link: str | None,
    extra: dict[str, Any] | None,
    definition: CampaignDefinition | None,
    done_items: set[str],
) -> Hashable | None:
    """Everything `build_context` (without a session) reads besides `per_mail_values`.

    Two mails of one campaign with the same key get the same context apart from those values
    (for `render_once.RenderOnce`); None when a value cannot be a key, or when the definition's
    own paragraph for KIND names the municipality (it is rendered with it, not printed).
    """
    from efa_rollout.mail.render_once import NotCacheable, frozen

    if definition is not None and "kommune" in (definition.mail.get(kind) or ""):
        return None
    try:
        return (
            campaign.id,
            kind,
            sequence,
            now,
            portal_link,
            frozenset(done_items),
            frozen(([getattr(enrolment, name) for name in CONTEXT_ENROLMENT_FIELDS], extra)),
        )
    except NotCacheable:
        return None


def reminder_topic(open_items: Sequence[dict[str, Any]], open_questions: Sequence[str]) -> str:
    """What a reminder is about: 'Checkliste', 'Fragebogen' or both."""
    questionnaire = bool(open_questions) or any(
        i.get("key") == QUESTIONNAIRE_ITEM_KEY for i in open_items
    )
    checklist = any(i.get("key") != QUESTIONNAIRE_ITEM_KEY for i in open_items)
    if checklist and questionnaire:
        return "Checkliste und Fragebogen"
    return "Fragebogen" if questionnaire else "Checkliste"


def _municipality_context(municipality: Municipality | None) -> dict[str, str] | None:
    if municipality is None:
        return None
    return {
        "ags": municipality.ags,
        "name": municipality.name,
        "label": municipality_label(municipality),
    }


def _answered(session: Session | None, enrolment: Enrolment | None) -> bool:
    """True when the municipality has submitted answers (so a thank-you is due)."""
    if session is None or enrolment is None or enrolment.id is None:
        return False
    query = select(QuestionnaireResponse.id).where(
        QuestionnaireResponse.enrolment_id == enrolment.id,
        QuestionnaireResponse.status == "submitted",
    )
    return session.exec(query.limit(1)).first() is not None


def phrases(
    service: str,
    go_live: date,
    dates: dict[str, Any],
    checklist: Sequence[dict[str, Any]],
    today: date,
) -> dict[str, Any]:
    """Date sentences true on TODAY (see efa_rollout.domain.phrasing) and the own tasks."""
    entries: list[tuple[str, date]] = [("go_live", go_live)]
    for key in ("collection_deadline", "silent_go_live", "mandatory_from"):
        if dates.get(key):
            entries.append((key, dates[key]))
    entries += [("training", day) for day in dates.get("trainings") or []]
    own = phrasing.current_first(
        [_with_due_text(i, today) for i in checklist if i.get("own", True)], today
    )
    deadline = dates.get("collection_deadline")
    return {
        "start": phrasing.start_sentence(service, go_live, today),
        "started": go_live <= today,
        "timeline": phrasing.timeline(entries, today),
        "tasks_open": [i for i in own if not i.get("done")],
        "tasks_done": [i for i in own if i.get("done")],
        "deadline_passed": (
            phrasing.deadline_passed_sentence(deadline, today) if deadline else None
        ),
    }


def _with_due_text(item: dict[str, Any], today: date) -> dict[str, Any]:
    """ITEM with its due date as a date and phrased (items passed in by callers lack it)."""
    due = as_date(item["due"])
    text = item.get("due_text") or phrasing.due_phrase(due, today, done=bool(item.get("done")))
    return {**item, "due": due, "due_text": text}
