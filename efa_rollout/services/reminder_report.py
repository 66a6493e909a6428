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
            label = f"{self.sequence}. Erinnerung ({SLOT_LABELS[SlotKind(self.reminder_kind)]})"
        elif self.action == Action.ESCALATE:
            label = f"{self.sequence}. Eskalation"
        else:
            return ACTION_LABELS[self.action]
        return label if self.queued else f"{label} – nicht vorgemerkt: keine Ansprechperson"


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
    verb = "würden vorgemerkt" if report.dry_run else "vorgemerkt"
    line = (
        f"{report.campaign_id}: {report.reminders} Erinnerung(en) und "
        f"{report.escalations} Eskalation(en) {verb}, {report.dropped} verpasste "
        f"Erinnerung(en) verworfen, {report.deferred} zurückgestellt"
    )
    if report.without_recipient:
        line += f", {report.without_recipient} ohne Empfänger"
    if report.note:
        line += f" – {report.note}"
    return line + "."


def row_line(row: ReminderRow) -> str:
    """One German line for a municipality, e.g. for the dry-run listing."""
    deadline = f", Frist {german_date(row.deadline)}" if row.deadline else ""
    dropped = f", {row.dropped} verpasste verworfen" if row.dropped else ""
    return (
        f"{row.ags} {row.name}: {row.label} – {row.open_items} offene(r) Punkt(e)"
        f"{deadline}{dropped}. {row.reason}"
    )
