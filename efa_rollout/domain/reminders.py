"""The reminder policy as plain functions: who is reminded of what, when, and when it escalates.

The schedule is anchored on the earliest open deadline D of a municipality (moved to the last
working day on or before D when D is a weekend, holiday or closing day): a friendly reminder
`before_working_days` working days before, one on the deadline, then one every
`every_working_days` working days. Each mail lists all open items. After `escalate_after`
reminders on or after the deadline, the next reminder day escalates instead (once per cycle).
A reminder day that passed without a mail is dropped (logged), never sent late.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from efa_rollout.definitions import CampaignDefinition, ChecklistItem, ReminderPlan
from efa_rollout.domain.stages import EnrolmentStatus, Stage
from efa_rollout.domain.text import german_date, german_weekday_date
from efa_rollout.domain.workdays import WorkCalendar

#: Outbox kinds that make up the reminder history of a municipality.
REMINDER = "reminder"
ESCALATION = "escalation"
HISTORY_KINDS = (REMINDER, ESCALATION)

#: Event kind logged for a reminder day that passed without a mail.
DROPPED_EVENT = "reminder_dropped"

#: Checklist items owned by the municipality itself (others, e.g. Komm.ONE, are not reminded).
MUNICIPALITY_OWNER = "Gemeinde"
QUESTIONNAIRE_KEY = "fragebogen"
QUESTIONNAIRE_TITLE = "Rückmeldung zum Fragebogen der Informationserhebung"

QUESTIONNAIRE_STAGES = frozenset({Stage.INFORMATION_COLLECTION})
CHECKLIST_STAGES = frozenset(
    {
        Stage.CHECKLIST_FOLLOW_UP,
        Stage.PILOT,
        Stage.SILENT_GO_LIVE,
        Stage.GO_LIVE,
        Stage.MANDATORY,
        Stage.AFTER_CARE,
    }
)
#: Stages in which open items are reminded (summary distribution and completed: never).
REMINDER_STAGES = QUESTIONNAIRE_STAGES | CHECKLIST_STAGES


class Action(StrEnum):
    """What the policy decided for one municipality today."""

    NOTHING = "nothing"
    REMIND = "remind"
    ESCALATE = "escalate"
    WAIT = "wait"


ACTION_LABELS = {
    Action.NOTHING: "keine Erinnerung",
    Action.REMIND: "Erinnerung",
    Action.ESCALATE: "Eskalation",
    Action.WAIT: "zurückgestellt",
}


class SlotKind(StrEnum):
    """Which reminder of a deadline's schedule."""

    BEFORE = "before"
    DEADLINE = "deadline"
    REPEAT = "repeat"


SLOT_LABELS = {
    SlotKind.BEFORE: "freundliche Vorab-Erinnerung",
    SlotKind.DEADLINE: "Erinnerung am Fristtag",
    SlotKind.REPEAT: "wiederholte Erinnerung",
}


@dataclass(frozen=True)
class OpenItem:
    """Something the municipality still has to do, with its absolute due date."""

    key: str
    title: str
    due: date

    def overdue(self, today: date) -> bool:
        """Whether the due date has passed on TODAY."""
        return today > self.due


@dataclass(frozen=True)
class SentMail:
    """One reminder or escalation already queued for the municipality, and its local day."""

    kind: str
    sequence: int
    day: date


@dataclass(frozen=True)
class Slot:
    """A day on which a reminder for a deadline is due."""

    day: date
    kind: SlotKind


@dataclass(frozen=True)
class DroppedReminder:
    """A reminder day that passed without a mail; logged, not sent late."""

    day: date
    kind: SlotKind
    deadline: date

    @property
    def reason(self) -> str:
        """German explanation for the event log."""
        return (
            f"{_upper_first(SLOT_LABELS[self.kind])} vom {german_date(self.day)} "
            f"(Frist {german_date(self.deadline)}) nicht versandt: der Tag ist verstrichen, "
            "Erinnerungen werden nicht nachgeholt."
        )


@dataclass(frozen=True)
class ReminderDecision:
    """The policy's answer for one municipality: nothing, wait, a reminder or an escalation."""

    action: Action
    reason: str
    sequence: int | None = None
    slot: Slot | None = None
    items: tuple[OpenItem, ...] = ()
    deadline: date | None = None
    not_after: datetime | None = None
    send_at: datetime | None = None
    recipient_roles: tuple[str, ...] | None = None
    cc_coordinator: bool = False
    dropped: tuple[DroppedReminder, ...] = field(default=())
    next_day: date | None = None
    reply_by: date | None = None
    reminders_sent: int = 0

    @property
    def sends(self) -> bool:
        """Whether a mail is to be queued now."""
        return self.action in (Action.REMIND, Action.ESCALATE)

    @property
    def mail_kind(self) -> str | None:
        """The outbox kind of the mail to queue ('reminder' or 'escalation')."""
        return {Action.REMIND: REMINDER, Action.ESCALATE: ESCALATION}.get(self.action)

    @property
    def reminder_kind(self) -> str | None:
        """'before', 'deadline' or 'repeat' for a mail, else None."""
        return self.slot.kind.value if self.sends and self.slot else None

    def mail_extra(self, today: date) -> dict[str, Any]:
        """The template data for the mail: all open items, the reply-by date, the reminder kind.

        'deadline' is the earliest due date while it lies ahead; once it has passed, the next
        reminder day (a mail must never ask for something "bis spätestens" a past date).
        """
        extra: dict[str, Any] = {
            "open_items": [
                {"key": i.key, "title": i.title, "due": i.due, "overdue": i.overdue(today)}
                for i in self.items
            ],
            "deadline": self.reply_by or self.deadline,
            "reminder_kind": self.reminder_kind,
        }
        if self.action == Action.ESCALATE:
            extra["reminders_sent"] = self.reminders_sent
        return extra


# --- open items ------------------------------------------------------------------------------


def questionnaire_open(
    *, stage: str, answers_complete: bool, collection_closed: bool = False
) -> bool:
    """Whether the questionnaire is still owed: in information collection, incomplete, open."""
    return stage == Stage.INFORMATION_COLLECTION and not answers_complete and not collection_closed


def remindable_items(
    definition: CampaignDefinition, role: str | None, is_pilot: bool
) -> list[ChecklistItem]:
    """The applying checklist items the municipality itself owns (not e.g. the Landratsamt's)."""
    return [
        item for item in definition.items_for(role, is_pilot) if item.owner == MUNICIPALITY_OWNER
    ]


def open_items(
    definition: CampaignDefinition,
    *,
    stage: str,
    role: str | None,
    is_pilot: bool,
    go_live: date,
    collection_deadline: date,
    answers_complete: bool,
    done_keys: Iterable[str],
    collection_closed: bool = False,
) -> list[OpenItem]:
    """The open items of one enrolment in its stage, earliest due first."""
    if stage in QUESTIONNAIRE_STAGES:
        if not questionnaire_open(
            stage=stage, answers_complete=answers_complete, collection_closed=collection_closed
        ):
            return []
        return [OpenItem(QUESTIONNAIRE_KEY, QUESTIONNAIRE_TITLE, collection_deadline)]
    if stage not in CHECKLIST_STAGES:
        return []
    done = set(done_keys)
    items = [
        OpenItem(item.key, item.title, go_live + timedelta(days=item.due))
        for item in remindable_items(definition, role, is_pilot)
        if item.key not in done
    ]
    return sorted(items, key=lambda i: (i.due, i.key))


# --- the schedule ----------------------------------------------------------------------------


def effective_deadline(due: date, calendar: WorkCalendar) -> date:
    """DUE, or the last working day before it when DUE is no working day."""
    return calendar.previous_working_day(due, include_today=True)


def iter_slots(deadline: date, plan: ReminderPlan, calendar: WorkCalendar) -> Iterator[Slot]:
    """The reminder days for DEADLINE in order: before, on the deadline, then repeats (endless)."""
    anchor = effective_deadline(deadline, calendar)
    if plan.before_working_days > 0:
        yield Slot(calendar.add_working_days(anchor, -plan.before_working_days), SlotKind.BEFORE)
    if plan.on_deadline:
        yield Slot(anchor, SlotKind.DEADLINE)
    day = anchor
    while True:
        day = calendar.add_working_days(day, plan.every_working_days)
        yield Slot(day, SlotKind.REPEAT)


@functools.lru_cache(maxsize=4096)
def _slots_until(
    deadline: date,
    before: int,
    on_deadline: bool,
    every: int,
    calendar: WorkCalendar,
    until: date,
) -> tuple[tuple[Slot, ...], Slot]:
    plan = ReminderPlan(
        before_working_days=before, on_deadline=on_deadline, every_working_days=every
    )
    past: list[Slot] = []
    for slot in iter_slots(deadline, plan, calendar):
        if slot.day > until:
            return tuple(past), slot
        past.append(slot)
    raise AssertionError("iter_slots is endless")  # pragma: no cover


def slots_until(
    deadline: date, plan: ReminderPlan, calendar: WorkCalendar, until: date
) -> tuple[tuple[Slot, ...], Slot]:
    """The reminder days for DEADLINE up to UNTIL (inclusive), and the first one after it."""
    return _slots_until(
        deadline,
        plan.before_working_days,
        plan.on_deadline,
        plan.every_working_days,
        calendar,
        until,
    )


# --- the decision ----------------------------------------------------------------------------


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _nothing(reason: str, **kwargs: Any) -> ReminderDecision:
    return ReminderDecision(Action.NOTHING, reason, **kwargs)


def _inactive_reason(status: str, stage: str) -> str | None:
    if status == EnrolmentStatus.PAUSED:
        return "Teilnahme pausiert: keine Erinnerungen."
    if status != EnrolmentStatus.ACTIVE:
        return "Teilnahme nicht zutreffend: keine Erinnerungen."
    if stage not in REMINDER_STAGES:
        return f"In der Stufe »{_stage_label(stage)}« sind keine Erinnerungen vorgesehen."
    return None


def _stage_label(stage: str) -> str:
    try:
        return Stage(stage).label
    except ValueError:
        return stage


def _wait(now: datetime, calendar: WorkCalendar) -> ReminderDecision:
    today = calendar.local_date(now)
    send_at = calendar.next_send_time(now)
    why = calendar.non_working_reason(today)
    why = f"kein Arbeitstag ({why})" if why else "außerhalb des Versandfensters"
    local = send_at.astimezone(calendar.zone)
    return ReminderDecision(
        Action.WAIT,
        f"Jetzt {why}; Versand frühestens {german_weekday_date(local.date())}, {local:%H:%M} Uhr.",
        send_at=send_at,
    )


def _reminders_since(history: Sequence[SentMail], kind: str, day: date) -> int:
    return sum(1 for mail in history if mail.kind == kind and mail.day >= day)


def _next_sequence(history: Sequence[SentMail], kind: str) -> int:
    return max((mail.sequence for mail in history if mail.kind == kind), default=0) + 1


def _missed(
    slots: Sequence[Slot], today: date, last_mail: date | None, active_since: date | None
) -> list[Slot]:
    """Slots before TODAY after the last mail (and not before the stage began): never sent."""
    return [
        slot
        for slot in slots
        if slot.day < today
        and (last_mail is None or slot.day > last_mail)
        and (active_since is None or slot.day >= active_since)
    ]


def decide_reminder(
    *,
    now: datetime,
    items: Sequence[OpenItem],
    history: Sequence[SentMail],
    plan: ReminderPlan,
    calendar: WorkCalendar,
    stage: str,
    status: str = EnrolmentStatus.ACTIVE,
    active_since: date | None = None,
) -> ReminderDecision:
    """Decide for one municipality at NOW (aware) given its open ITEMS and mail HISTORY."""
    inactive = _inactive_reason(status, stage)
    if inactive:
        return _nothing(inactive)
    if not items:
        return _nothing("Keine offenen Punkte: keine Erinnerung.")
    if not calendar.in_sending_window(now):
        return _wait(now, calendar)
    ordered = tuple(sorted(items, key=lambda i: (i.due, i.key)))
    return _decide_today(calendar.local_date(now), ordered, history, plan, calendar, active_since)


def _decide_today(
    today: date,
    items: tuple[OpenItem, ...],
    history: Sequence[SentMail],
    plan: ReminderPlan,
    calendar: WorkCalendar,
    active_since: date | None,
) -> ReminderDecision:
    """The decision on a working day inside the window, anchored on the earliest due date."""
    deadline = items[0].due
    past, upcoming = slots_until(deadline, plan, calendar, today)
    last_mail = max((mail.day for mail in history), default=None)
    facts: dict[str, Any] = {
        "items": items,
        "deadline": deadline,
        "next_day": upcoming.day,
        "reply_by": deadline if today <= deadline else upcoming.day,
    }
    if last_mail is not None and last_mail >= today:
        return _nothing(
            "Heute wurde bereits eine Erinnerung vorgemerkt (höchstens eine am Tag).", **facts
        )
    if not past:
        return _nothing(f"Nächste Erinnerung am {german_date(upcoming.day)}.", **facts)

    sent = _reminders_since(history, REMINDER, past[0].day)
    overdue_sent = _reminders_since(history, REMINDER, effective_deadline(deadline, calendar))
    escalate = (
        overdue_sent >= plan.escalate_after
        and _reminders_since(history, ESCALATION, past[0].day) == 0
    )
    if sent >= plan.max_reminders and not escalate:
        reason = f"Höchstzahl von {plan.max_reminders} Erinnerungen zur Frist {german_date(deadline)} erreicht."
        return _nothing(reason, **facts)

    dropped = tuple(
        DroppedReminder(slot.day, slot.kind, deadline)
        for slot in _missed(past, today, last_mail, active_since)
    )
    current = past[-1]
    if current.day < today:
        return _nothing(_missed_reason(dropped, upcoming.day), dropped=dropped, **facts)

    common: dict[str, Any] = {
        **facts,
        "slot": current,
        "not_after": calendar.window_closes(today),
        "dropped": dropped,
    }
    if escalate:
        return _escalation(plan, history, deadline, overdue_sent, sent, common)
    return ReminderDecision(
        Action.REMIND,
        f"{_upper_first(SLOT_LABELS[current.kind])} zur Frist {german_weekday_date(deadline)}, "
        f"{len(items)} offene(r) Punkt(e).",
        sequence=_next_sequence(history, REMINDER),
        **common,
    )


def _missed_reason(dropped: Sequence[DroppedReminder], next_day: date) -> str:
    reason = f"Nächste Erinnerung am {german_date(next_day)}."
    if not dropped:
        return reason
    days = ", ".join(german_date(d.day) for d in dropped)
    return f"Verpasste Erinnerung ({days}) wird nicht nachgeholt. {reason}"


def _escalation(
    plan: ReminderPlan,
    history: Sequence[SentMail],
    deadline: date,
    overdue_sent: int,
    sent: int,
    common: dict[str, Any],
) -> ReminderDecision:
    roles = tuple(plan.escalation_roles)
    return ReminderDecision(
        Action.ESCALATE,
        f"{overdue_sent} Erinnerung(en) seit der Frist {german_date(deadline)} ohne Erledigung: "
        f"Eskalation an {', '.join(roles)}, Koordination in Kopie.",
        sequence=_next_sequence(history, ESCALATION),
        recipient_roles=roles,
        cc_coordinator=True,
        reminders_sent=sent,
        **common,
    )
