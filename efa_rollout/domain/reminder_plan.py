"""What a municipality is reminded of, and on which days: open items and each deadline's steps."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from efa_rollout.definitions import CampaignDefinition, ChecklistItem, ReminderPlan
from efa_rollout.domain.stages import Stage
from efa_rollout.domain.workdays import WorkCalendar

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
class Slot:
    """A day on which a reminder for a deadline is due."""

    day: date
    kind: SlotKind


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


def group_by_deadline(items: Iterable[OpenItem]) -> list[tuple[date, tuple[OpenItem, ...]]]:
    """The open items grouped by due date, earliest first (items in a group by key)."""
    groups: dict[date, list[OpenItem]] = {}
    for item in items:
        groups.setdefault(item.due, []).append(item)
    return [(due, tuple(sorted(groups[due], key=lambda i: i.key))) for due in sorted(groups)]
