"""How a date is phrased relative to the day a text is dated: past, today or future.

One place for the rule "never announce a past date as future": mails, the summary and the
portal get their date sentences from here (through their template context).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

WEEKDAYS = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")

PAST, TODAY, FUTURE = "past", "today", "future"

#: Label of each key date, per tense: (future, today, past); {d} is the date with weekday.
_DATE_WORDING: dict[str, tuple[str, str, str]] = {
    "collection_deadline": (
        "Rückmeldefrist: {d}",
        "Rückmeldefrist: heute, {d}",
        "Rückmeldefrist: {d} (abgelaufen)",
    ),
    "summary": (
        "Zusammenfassung: {d}",
        "Zusammenfassung: heute, {d}",
        "Zusammenfassung: {d} (versandt)",
    ),
    "pilot_start": (
        "Pilotbetrieb ab: {d}",
        "Pilotbetrieb ab: heute, {d}",
        "Pilotbetrieb: seit {d}",
    ),
    "silent_go_live": (
        "Silent Go-Live (nur Testbeteiligte): {d}",
        "Silent Go-Live (nur Testbeteiligte): heute, {d}",
        "Silent Go-Live (nur Testbeteiligte): seit {d}",
    ),
    "training": (
        "Schulung: {d}",
        "Schulung: heute, {d}",
        "Schulung: {d} (hat bereits stattgefunden)",
    ),
    "go_live": ("Start: {d}", "Start: heute, {d}", "Start: {d} (seitdem in Betrieb)"),
    "mandatory_from": (
        "Verpflichtende Nutzung ab: {d}",
        "Verpflichtende Nutzung ab: heute, {d}",
        "Verpflichtende Nutzung: seit {d}",
    ),
    "after_care_until": (
        "Nachbetreuung bis: {d}",
        "Nachbetreuung bis: heute, {d}",
        "Nachbetreuung: bis {d} (abgeschlossen)",
    ),
}


def long_date(day: date) -> str:
    """'Dienstag, 01.10.2024'."""
    return f"{WEEKDAYS[day.weekday()]}, {day:%d.%m.%Y}"


def tense(day: date, today: date) -> str:
    """'past', 'today' or 'future' of DAY seen from TODAY."""
    if day < today:
        return PAST
    return TODAY if day == today else FUTURE


@dataclass(frozen=True)
class DatedEntry:
    """One key date as a line of text: key, date, tense and the phrased line."""

    key: str
    date: date
    tense: str
    text: str

    @property
    def past(self) -> bool:
        """True when the date lies before the text's own date."""
        return self.tense == PAST


def date_line(key: str, day: date, today: date) -> DatedEntry:
    """The line for key date KEY ('go_live', 'training', ...) as of TODAY."""
    which = tense(day, today)
    future, present, past = _DATE_WORDING[key]
    template = {FUTURE: future, TODAY: present, PAST: past}[which]
    return DatedEntry(key, day, which, template.format(d=long_date(day)))


def timeline(entries: Iterable[tuple[str, date]], today: date) -> dict[str, list[DatedEntry]]:
    """Key dates split into 'upcoming' (soonest first) and 'past' (latest first)."""
    lines = [date_line(key, day, today) for key, day in entries]
    upcoming = sorted((e for e in lines if not e.past), key=lambda e: e.date)
    past = sorted((e for e in lines if e.past), key=lambda e: e.date, reverse=True)
    return {"upcoming": upcoming, "past": past}


def start_sentence(service: str, go_live: date, today: date) -> str:
    """'Der Start ist für … geplant.' before, 'heute' on, 'seit … in Betrieb' after go-live."""
    which = tense(go_live, today)
    if which == FUTURE:
        return f"Der Start ist für {long_date(go_live)} geplant."
    if which == TODAY:
        return f"Heute, am {long_date(go_live)}, startet {service}."
    return f"{service} ist seit {long_date(go_live)} in Betrieb."


def due_phrase(due: date, today: date, *, done: bool = False) -> str:
    """An item's due date: 'fällig am …', 'fällig heute, …', 'war fällig am … (überfällig)'."""
    which = tense(due, today)
    if which == FUTURE or done:
        return f"fällig am {long_date(due)}"
    if which == TODAY:
        return f"fällig heute, {long_date(due)}"
    return f"war fällig am {long_date(due)} (überfällig)"


def answer_deadline(deadline: date | None, today: date, fallback: date) -> date:
    """The deadline a mail may still ask for: DEADLINE, or FALLBACK when it has passed."""
    if deadline is None or deadline < today:
        return fallback
    return deadline


def deadline_passed_sentence(deadline: date, today: date) -> str | None:
    """'Die Rückmeldefrist ist am … abgelaufen.' once DEADLINE lies before TODAY, else None."""
    if deadline >= today:
        return None
    return f"Die Rückmeldefrist ist am {long_date(deadline)} abgelaufen."


def current_first(items: Iterable[dict], today: date) -> list[dict]:
    """Checklist items: open ones first (overdue and soonest first), done ones last."""
    return sorted(items, key=lambda i: (bool(i.get("done")), i["due"], i.get("title", "")))


def answer_request(
    deadline: date | None, today: date, *, submitted: bool, collecting: bool
) -> str | None:
    """What the portal asks for: 'ask' (deadline ahead), 'late' (passed), None (nothing).

    Nothing is asked once the answers are in or the municipality has moved past the
    information collection (a finished rollout must not ask for answers by a date long past).
    """
    if submitted or not collecting or deadline is None:
        return None
    return "ask" if deadline >= today else "late"
