"""What a reminder run decided, per municipality and per campaign, and its German lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from efa_rollout.domain.reminder_plan import SLOT_LABELS, SlotKind
from efa_rollout.domain.reminders import (
    ACTION_LABELS,
    Action,
)
from efa_rollout.domain.text import german_date
from efa_rollout.texts import say


@dataclass
class ReminderRow:
    """What was decided for one municipality, for reports and the dry-run listing."""

    ags: str
    name: str
    open_items: int
    action: Action
    reason: str
    sequence: int | None = None
    reminder_kind: str | None = None
    deadline: date | None = None
    queued: bool = False
    dropped: int = 0

    @property
    def label(self) -> str:
        """The decision in German, e.g. '2. Erinnerung (Erinnerung am Fristtag)'."""
        if self.action == Action.REMIND and self.reminder_kind:
            slot = SLOT_LABELS[SlotKind(self.reminder_kind)]
            label = say("service.reminder_report.reminder", sequence=self.sequence, slot=slot)
        elif self.action == Action.ESCALATE:
            label = say("service.reminder_report.escalation", sequence=self.sequence)
        else:
            return ACTION_LABELS[self.action]
        return label if self.queued else say("service.reminder_report.not_queued", label=label)


@dataclass
class ReminderReport:
    """Counts and rows of one campaign's reminder run (or one batch of it)."""

    campaign_id: str
    dry_run: bool = False
    evaluated: int = 0
    reminders: int = 0
    escalations: int = 0
    dropped: int = 0
    deferred: int = 0
    without_recipient: int = 0
    rows: list[ReminderRow] = field(default_factory=list)
    note: str | None = None

    def add(self, other: ReminderReport) -> None:
        """Add the counts and rows of a batch."""
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rows.extend(other.rows)

    @property
    def actions(self) -> list[ReminderRow]:
        """Rows with something to report (a mail, a dropped day or a deferral)."""
        return [r for r in self.rows if r.action != Action.NOTHING or r.dropped]


_COUNTS = ("evaluated", "reminders", "escalations", "dropped", "deferred", "without_recipient")


def summary_line(report: ReminderReport) -> str:
    """One German line of counts for a campaign's run."""
    verb = say(
        "service.reminder_report.would_queue"
        if report.dry_run
        else "service.reminder_report.queued"
    )
    line = say(
        "service.reminder_report.summary",
        campaign=report.campaign_id,
        reminders=report.reminders,
        escalations=report.escalations,
        verb=verb,
        dropped=report.dropped,
        deferred=report.deferred,
    )
    if report.without_recipient:
        line = say(
            "service.reminder_report.without_recipient", line=line, count=report.without_recipient
        )
    if report.note:
        line = say("service.reminder_report.note", line=line, note=report.note)
    return say("service.reminder_report.end", line=line)


def row_line(row: ReminderRow) -> str:
    """One German line for a municipality, e.g. for the dry-run listing."""
    deadline = (
        say("service.reminder_report.deadline", day=german_date(row.deadline))
        if row.deadline
        else ""
    )
    dropped = say("service.reminder_report.dropped", count=row.dropped) if row.dropped else ""
    return say(
        "service.reminder_report.row",
        ags=row.ags,
        name=row.name,
        label=row.label,
        open_items=row.open_items,
        deadline=deadline,
        dropped=dropped,
        reason=row.reason,
    )
