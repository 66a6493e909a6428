"""The burn-up: enrolments per stage at the end of each day, rebuilt from the event log."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlmodel import Session, col

from efa_rollout.reports.model import TimelinePoint
from efa_rollout.services.stamps import raw, utc
from efa_rollout.settings import get_settings
from models import Event

STAGE_EVENTS = ("enrolled", "stage_changed")

#: One replayed event: (enrolment, when, kind, stage it moved to).
EventRow = tuple[int | str, datetime, str, str]


def campaign_timeline(
    session: Session, campaign_id: str, stage_order: Sequence[str], *, as_of: datetime
) -> list[TimelinePoint]:
    """Stage counts per day, from the first 'enrolled' event to AS_OF's local day."""
    query = (
        select(
            col(Event.enrolment_id),
            col(Event.ags),
            raw(col(Event.at)),
            col(Event.kind),
            col(Event.to_stage),
        )
        .where(
            col(Event.campaign_id) == campaign_id,
            col(Event.kind).in_(STAGE_EVENTS),
            col(Event.to_stage).is_not(None),
            col(Event.at) <= as_of,
        )
        .order_by(col(Event.at), col(Event.id))
    )
    rows = cast(
        "Iterable[tuple[Any, ...]]", session.connection().execute(query)
    )  # mypy unpacks a Row of Any columns as object
    events = []
    for eid, ags, at_raw, kind, to in rows:
        at = utc(at_raw)
        assert at is not None  # Event.at is NOT NULL
        events.append((eid if eid is not None else ags, at, kind, to))
    zone = get_settings().zone
    return replay(events, stage_order, until=as_of.astimezone(zone).date(), zone=zone)


def replay(
    events: Iterable[EventRow], stage_order: Sequence[str], *, until: date, zone: ZoneInfo
) -> list[TimelinePoint]:
    """Replay EVENTS (in time order) into one point per local day up to UNTIL."""
    by_day: dict[date, list[tuple[int | str, str]]] = defaultdict(list)
    first: date | None = None
    for subject, at, kind, stage in events:
        day = at.astimezone(zone).date()
        by_day[day].append((subject, stage))
        if kind == "enrolled" and (first is None or day < first):
            first = day
    if first is None:
        return []
    stages = list(stage_order)
    current: dict[int | str, str] = {}
    counts: Counter[str] = Counter()
    for day in sorted(d for d in by_day if d < first):
        _apply(by_day[day], current, counts)
    points = []
    day = first
    while day <= until:
        _apply(by_day.get(day, ()), current, counts)
        stages.extend(s for s in counts if s not in stages)
        points.append(TimelinePoint(day=day, stages={s: counts[s] for s in stages}))
        day += timedelta(days=1)
    for point in points:  # a stage first seen late still gets zeros on the days before
        point.stages = {s: point.stages.get(s, 0) for s in stages}
    return points


def _apply(
    moves: Iterable[tuple[int | str, str]], current: dict[int | str, str], counts: Counter[str]
) -> None:
    """Move each subject to its new stage, keeping the counts in step."""
    for subject, stage in moves:
        previous = current.get(subject)
        if previous is not None:
            counts[previous] -= 1
        current[subject] = stage
        counts[stage] += 1
