"""The reminder policy as plain functions: who is reminded of what, when, and when it escalates.

The ladder runs per deadline: the open items of a municipality are grouped by due date D, and
each D (moved to the last working day on or before it when D is a weekend, holiday or closing
day) has its own steps: a friendly reminder `before_working_days` working days before, one on
the deadline, then one every `every_working_days` working days. `max_reminders` caps the
reminders per deadline. After `escalate_after` reminders on or after D, D's next step escalates
(once per deadline); an escalation asks only for what is due or overdue. Whatever the steps, a
municipality gets at most one mail a day, listing every deadline whose step is today.

A step that passed without a mail (system down, or another mail went out that day) is made up
once, on the next working day the run comes, while its deadline is still ahead; once the
deadline has passed it is dropped (logged), never sent late.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from efa_rollout.definitions import ReminderPlan
from efa_rollout.domain.reminder_plan import (
    REMINDER_STAGES,
    SLOT_LABELS,
    OpenItem,
    Slot,
    SlotKind,
    effective_deadline,
    group_by_deadline,
    slots_until,
)
from efa_rollout.domain.stages import EnrolmentStatus, Stage
from efa_rollout.domain.text import german_date, german_weekday_date
from efa_rollout.domain.workdays import WorkCalendar

#: Outbox kinds that make up the reminder history of a municipality.
REMINDER = "reminder"
ESCALATION = "escalation"
HISTORY_KINDS = (REMINDER, ESCALATION)

#: Event kind logged for a reminder day that passed without a mail.
DROPPED_EVENT = "reminder_dropped"


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


@dataclass(frozen=True)
class SentMail:
    """One mail already queued for the municipality, its local day and what it asked for.

    COVERED: the (item key, due date) pairs a reminder or escalation listed; None when unknown
    (mails queued before this was recorded: they count for every deadline whose steps had begun).
    Mails of other kinds count only for the one-mail-a-day rule.
    """

    kind: str
    sequence: int
    day: date
    covered: tuple[tuple[str, date], ...] | None = None


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
class DeadlineStep:
    """One deadline a mail asks for today: its open items, the step, and the reply-by date."""

    due: date
    items: tuple[OpenItem, ...]
    slot: Slot
    reply_by: date
    made_up: bool = False
    escalates: bool = False
    reminders_sent: int = 0

    def overdue(self, today: date) -> bool:
        """Whether this deadline has passed on TODAY."""
        return today > self.due


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
    steps: tuple[DeadlineStep, ...] = ()
    deferred: tuple[date, ...] = ()

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

    @property
    def covered(self) -> tuple[tuple[str, date], ...]:
        """The (item key, due date) pairs the mail asks for (kept with the mail)."""
        return tuple((i.key, i.due) for i in self.items)

    @property
    def made_up(self) -> tuple[date, ...]:
        """Deadlines whose missed step this mail makes up."""
        return tuple(step.due for step in self.steps if step.made_up)

    def mail_extra(self, today: date) -> dict[str, Any]:
        """The template data: the items per deadline, the reply-by date, the reminder kind.

        'deadline' is the earliest reply-by date of the mail: a deadline while it lies ahead,
        once it has passed the deadline's next step (a mail never asks for a past date).
        """
        extra: dict[str, Any] = {
            "open_items": [_item_data(i, today) for i in self.items],
            "deadline_groups": [
                {
                    "due": step.due,
                    "reply_by": step.reply_by,
                    "overdue": step.overdue(today),
                    "items": [_item_data(i, today) for i in step.items],
                }
                for step in self.steps
            ],
            "deadline": self.reply_by or self.deadline,
            "reminder_kind": self.reminder_kind,
        }
        if self.action == Action.ESCALATE:
            extra["reminders_sent"] = self.reminders_sent
        return extra


def _item_data(item: OpenItem, today: date) -> dict[str, Any]:
    return {"key": item.key, "title": item.title, "due": item.due, "overdue": item.overdue(today)}


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


def _next_sequence(history: Sequence[SentMail], kind: str) -> int:
    return max((mail.sequence for mail in history if mail.kind == kind), default=0) + 1


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
    today = calendar.local_date(now)
    deadlines = [
        _deadline_state(due, group, history, plan, calendar, today, active_since)
        for due, group in group_by_deadline(items)
    ]
    return _decide_today(today, deadlines, history, plan, calendar)


@dataclass(frozen=True)
class _Deadline:
    """Where one deadline's ladder stands today."""

    due: date
    items: tuple[OpenItem, ...]
    anchor: date
    upcoming: Slot
    step: Slot | None
    made_up: bool
    dropped: tuple[DroppedReminder, ...]
    capped: bool
    escalates: bool
    reminders_sent: int

    def reply_by(self, today: date) -> date:
        """The deadline while it lies ahead, else the next step."""
        return self.due if today <= self.due else self.upcoming.day


def _covers(mail: SentMail, due: date, keys: frozenset[str], first_step: date | None) -> bool:
    """Whether MAIL asked for deadline DUE (older mails: if DUE's steps had begun)."""
    if mail.kind not in HISTORY_KINDS:
        return False
    if mail.covered is None:
        return first_step is not None and mail.day >= first_step
    return any(d == due and k in keys for k, d in mail.covered)


def _deadline_state(
    due: date,
    items: tuple[OpenItem, ...],
    history: Sequence[SentMail],
    plan: ReminderPlan,
    calendar: WorkCalendar,
    today: date,
    active_since: date | None,
) -> _Deadline:
    """The ladder of deadline DUE on TODAY: today's step or the one made up, drops, cap."""
    past, upcoming = slots_until(due, plan, calendar, today)
    anchor = effective_deadline(due, calendar)
    keys = frozenset(i.key for i in items)
    first_step = past[0].day if past else None
    mails = [m for m in history if _covers(m, due, keys, first_step)]
    reminders = sum(1 for m in mails if m.kind == REMINDER)
    after_deadline = sum(1 for m in mails if m.kind == REMINDER and m.day >= anchor)
    escalates = after_deadline >= plan.escalate_after and not any(
        m.kind == ESCALATION for m in mails
    )
    capped = reminders >= plan.max_reminders and not escalates
    last_mail = max((m.day for m in mails), default=None)
    missed = [
        s
        for s in past
        if s.day < today
        and (last_mail is None or s.day > last_mail)
        and (active_since is None or s.day >= active_since)
    ]
    step: Slot | None = past[-1] if past and past[-1].day == today else None
    made_up = False
    if step is None and missed and today <= anchor:
        step, made_up = missed[-1], True  # made up once: the mail today covers it
    dropped = tuple(
        DroppedReminder(s.day, s.kind, due) for s in missed if not (made_up and s == step)
    )
    return _Deadline(
        due=due,
        items=items,
        anchor=anchor,
        upcoming=upcoming,
        step=None if capped else step,
        made_up=made_up,
        dropped=() if capped else dropped,
        capped=capped,
        escalates=escalates,
        reminders_sent=reminders,
    )


def _decide_today(
    today: date,
    deadlines: list[_Deadline],
    history: Sequence[SentMail],
    plan: ReminderPlan,
    calendar: WorkCalendar,
) -> ReminderDecision:
    """The decision on a working day inside the window: one mail for every step due today."""
    all_items = tuple(i for d in deadlines for i in d.items)
    dropped = tuple(drop for d in deadlines for drop in d.dropped)
    open_ladders = [d for d in deadlines if not d.capped]
    next_day = min((d.upcoming.day for d in open_ladders), default=None)
    facts: dict[str, Any] = {
        "items": all_items,
        "deadline": deadlines[0].due,
        "next_day": next_day,
        "reply_by": deadlines[0].reply_by(today),
    }
    if any(mail.day >= today for mail in history):
        return _nothing(
            "Heute ging bereits eine Mail an die Gemeinde (höchstens eine am Tag).", **facts
        )
    due_today = [d for d in deadlines if d.step is not None]
    if not due_today:
        return _nothing(
            _no_step_reason(deadlines, dropped, next_day, plan), dropped=dropped, **facts
        )
    escalating = [d for d in due_today if d.escalates]
    listed = [d for d in due_today if d.anchor <= today] if escalating else due_today
    deferred = tuple(d.due for d in due_today if d not in listed)
    steps = tuple(
        DeadlineStep(
            due=d.due,
            items=d.items,
            slot=d.step,  # type: ignore[arg-type]  # not None: listed comes from due_today
            reply_by=d.reply_by(today),
            made_up=d.made_up,
            escalates=d.escalates,
            reminders_sent=d.reminders_sent,
        )
        for d in listed
    )
    common: dict[str, Any] = {
        "items": tuple(i for step in steps for i in step.items),
        "deadline": steps[0].due,
        "next_day": next_day,
        "reply_by": min(step.reply_by for step in steps),
        "slot": _most_urgent(steps),
        "not_after": calendar.window_closes(today),
        "dropped": dropped,
        "steps": steps,
        "deferred": deferred,
    }
    if escalating:
        return _escalation(plan, history, escalating, common)
    return ReminderDecision(
        Action.REMIND,
        _remind_reason(steps),
        sequence=_next_sequence(history, REMINDER),
        **common,
    )


_URGENCY = {SlotKind.BEFORE: 0, SlotKind.DEADLINE: 1, SlotKind.REPEAT: 2}


def _most_urgent(steps: Sequence[DeadlineStep]) -> Slot:
    """The step that sets the mail's tone: a repeat over a deadline day over a friendly one."""
    return max((step.slot for step in steps), key=lambda slot: _URGENCY[slot.kind])


def _remind_reason(steps: Sequence[DeadlineStep]) -> str:
    parts = []
    for step in steps:
        made_up = " (nachgeholt)" if step.made_up else ""
        parts.append(
            f"{_upper_first(SLOT_LABELS[step.slot.kind])}{made_up} zur Frist "
            f"{german_weekday_date(step.due)}, {len(step.items)} offene(r) Punkt(e)"
        )
    return "; ".join(parts) + "."


def _no_step_reason(
    deadlines: Sequence[_Deadline],
    dropped: Sequence[DroppedReminder],
    next_day: date | None,
    plan: ReminderPlan,
) -> str:
    if next_day is None:
        dates = ", ".join(german_date(d.due) for d in deadlines)
        return (
            f"Höchstzahl von {plan.max_reminders} Erinnerungen je Frist erreicht (Frist {dates})."
        )
    reason = f"Nächste Erinnerung am {german_date(next_day)}."
    capped = [d for d in deadlines if d.capped]
    if capped:
        dates = ", ".join(german_date(d.due) for d in capped)
        reason += f" Höchstzahl von {plan.max_reminders} Erinnerungen zur Frist {dates} erreicht."
    if not dropped:
        return reason
    days = ", ".join(sorted({german_date(d.day) for d in dropped}))
    return (
        f"Verpasste Erinnerung ({days}) wird nicht nachgeholt, die Frist ist verstrichen. {reason}"
    )


def _escalation(
    plan: ReminderPlan,
    history: Sequence[SentMail],
    escalating: Sequence[_Deadline],
    common: dict[str, Any],
) -> ReminderDecision:
    roles = tuple(plan.escalation_roles)
    dates = ", ".join(german_date(d.due) for d in escalating)
    sent = max(d.reminders_sent for d in escalating)
    reason = (
        f"{plan.escalate_after} oder mehr Erinnerung(en) seit der Frist {dates} ohne Erledigung: "
        f"Eskalation an {', '.join(roles)}, Koordination in Kopie."
    )
    if common["deferred"]:
        later = ", ".join(german_date(d) for d in common["deferred"])
        reason += f" Erinnerung zur späteren Frist {later} folgt am nächsten Arbeitstag."
    return ReminderDecision(
        Action.ESCALATE,
        reason,
        sequence=_next_sequence(history, ESCALATION),
        recipient_roles=roles,
        cc_coordinator=True,
        reminders_sent=sent,
        **common,
    )
