"""Checklist figures of one enrolment: its applicable items against the keys it has ticked.

SQL delivers the ticked keys per enrolment (one grouped query); which items apply and when they
are due depends only on role, pilot flag and go-live date, so that part is computed once per
distinct combination here instead of joining every enrolment with every item in SQL (measured:
~0.1 s instead of ~0.7–1.3 s for 10,981 municipalities on SQLite).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, timedelta

from efa_rollout.definitions import CampaignDefinition, ChecklistItem
from efa_rollout.reports.model import DUE_SOON_DAYS


@dataclass(slots=True)
class ChecklistFigures:
    """Counts for one enrolment at the report date, and its overdue items."""

    total: int = 0
    open: int = 0
    overdue: int = 0
    required_overdue: int = 0
    due_soon: int = 0
    next_due: date | None = None
    oldest_overdue: date | None = None
    overdue_items: list[tuple[ChecklistItem, date]] = field(default_factory=list)


class ChecklistJudge:
    """Evaluates enrolments of one campaign against its checklist at TODAY."""

    def __init__(self, definition: CampaignDefinition, today: date) -> None:
        self.definition = definition
        self.today = today
        self.soon_until = today + timedelta(days=DUE_SOON_DAYS)
        self._items = functools.lru_cache(maxsize=4096)(self._applicable)

    def _applicable(
        self, role: str | None, is_pilot: bool, go_live: date
    ) -> tuple[tuple[ChecklistItem, date], ...]:
        """The items for this role and pilot flag with their due dates, earliest first."""
        items = self.definition.items_for(role, is_pilot)
        dated = [(item, go_live + timedelta(days=item.due)) for item in items]
        return tuple(sorted(dated, key=lambda pair: pair[1]))

    def evaluate(
        self, role: str | None, is_pilot: bool, go_live: date, done: frozenset[str]
    ) -> ChecklistFigures:
        """Figures for one enrolment that ticked the item keys DONE."""
        figures = ChecklistFigures()
        for item, due in self._items(role, is_pilot, go_live):
            figures.total += 1
            if item.key in done:
                continue
            figures.open += 1
            if due < self.today:
                figures.overdue += 1
                figures.required_overdue += int(item.required)
                figures.overdue_items.append((item, due))
                if figures.oldest_overdue is None:
                    figures.oldest_overdue = due
            else:
                if figures.next_due is None:
                    figures.next_due = due
                if due <= self.soon_until:
                    figures.due_soon += 1
        return figures


def done_keys(value: str | None) -> frozenset[str]:
    """The ticked keys from an aggregated 'a,b,c' string (keys never contain commas)."""
    return frozenset(value.split(",")) if value else frozenset()
