"""Entries made later than they happened: an answer that came by letter last Friday.

The coordinator names the moment it happened (`--as-of`). That moment stamps the row (answer
version, checklist tick) and its event, so the replay of the event log, the reports and the
history place it where it belongs; the moment of entry is kept in the event as ``recorded_at``.
A moment is refused when it lies in the future, before the municipality was enrolled, or
before what is already recorded for the same thing (the newest answers version, the item's last
change): versions are numbered in the order they are entered and laid over each other, so an
entry slipped in before them would make the stored state and the replayed one disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from efa_rollout.domain.text import german_date
from efa_rollout.errors import UserError
from efa_rollout.services.clock import local_today
from efa_rollout.services.history import TICK_EVENTS
from efa_rollout.services.stamps import utc
from efa_rollout.settings import get_settings
from efa_rollout.texts import say
from models import Campaign, Enrolment, Event, QuestionnaireResponse


@dataclass(frozen=True, slots=True)
class LateEntry:
    """An entry made at RECORDED_AT for an earlier moment; LABEL names that moment in refusals."""

    recorded_at: datetime
    label: str

    def event_data(self, at: datetime) -> dict[str, str]:
        """What the event keeps about the entry (nothing when it was entered as it happened)."""
        return {"recorded_at": self.recorded_at.isoformat()} if at < self.recorded_at else {}


def late_entry(
    requested: datetime | None, *, now: datetime, label: str
) -> tuple[datetime, LateEntry | None]:
    """The moment to stamp (REQUESTED, or NOW when None) and the LateEntry for it.

    Later today counts as now (a bare date means 09:00); a later day is refused.
    """
    if requested is None:
        return now, None
    if requested > now:
        if local_today(requested) != local_today(now):
            raise UserError(
                say(
                    "service.late_entry.future",
                    label=label,
                    moment=_moment_text(requested),
                    now=_moment_text(now),
                )
            )
        requested = now
    return requested, LateEntry(recorded_at=now, label=label)


def check_answers_moment(
    session: Session, enrolment: Enrolment, at: datetime, late: LateEntry
) -> None:
    """Refuse AT before the enrolment, or before the newest answers version of ENROLMENT."""
    _check_enrolled(session, enrolment, at, late)
    newest = session.exec(
        select(QuestionnaireResponse.version, QuestionnaireResponse.created_at)
        .where(QuestionnaireResponse.enrolment_id == enrolment.id)
        .order_by(col(QuestionnaireResponse.version).desc())
        .limit(1)
    ).first()
    if newest is not None and at < utc(newest[1]):
        _refuse(
            late,
            at,
            say(
                "service.late_entry.before_answers",
                version=newest[0],
                moment=_moment_text(utc(newest[1])),
            ),
        )


def check_item_moment(
    session: Session, enrolment: Enrolment, item_key: str, at: datetime, late: LateEntry
) -> None:
    """Refuse AT before the enrolment, or before the last change of the checklist item."""
    _check_enrolled(session, enrolment, at, late)
    events = session.exec(
        select(Event.at, Event.data).where(
            Event.enrolment_id == enrolment.id, col(Event.kind).in_(TICK_EVENTS)
        )
    ).all()
    changes = [utc(moment) for moment, data in events if (data or {}).get("item") == item_key]
    last = max(changes, default=None)
    if last is not None and at < last:
        why = say("service.late_entry.before_item", item=item_key, moment=_moment_text(last))
        _refuse(late, at, why)


def enrolled_at(session: Session, enrolment: Enrolment) -> datetime:
    """When ENROLMENT joined its campaign: its 'enrolled' event, else the campaign's start."""
    first = session.exec(
        select(func.min(Event.at)).where(
            Event.enrolment_id == enrolment.id, Event.kind == "enrolled"
        )
    ).one()
    if first is not None:
        return utc(first)
    campaign = session.get(Campaign, enrolment.campaign_id)
    assert campaign is not None
    return utc(campaign.started_at or campaign.created_at)


def _check_enrolled(session: Session, enrolment: Enrolment, at: datetime, late: LateEntry) -> None:
    start = enrolled_at(session, enrolment)
    if at < start:
        _refuse(late, at, say("service.late_entry.before_enrolment", moment=_moment_text(start)))


def _refuse(late: LateEntry, at: datetime, why: str) -> None:
    raise UserError(
        say("service.late_entry.refused", label=late.label, moment=_moment_text(at), why=why),
        details=[say("service.late_entry.later")],
    )


def _moment_text(moment: datetime) -> str:
    """DD.MM.YYYY HH:MM in local time."""
    local = moment.astimezone(get_settings().zone)
    return f"{german_date(local.date())} {local:%H:%M}"
