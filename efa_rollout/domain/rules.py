"""Stage rules as plain functions: which transition is due for an enrolment, and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from efa_rollout.domain.stages import EnrolmentStatus, Stage
from efa_rollout.texts import say

#: Stages a municipality is live in (go-live notice sent, platform on).
LIVE_STAGES = frozenset({Stage.GO_LIVE, Stage.AFTER_CARE, Stage.MANDATORY, Stage.COMPLETED})


@dataclass(frozen=True)
class Timeline:
    """The campaign-wide facts the rules need."""

    stages: tuple[Stage, ...]
    go_live: date
    collection_deadline: date
    collection_closed: bool = False
    pilot_start: date | None = None
    silent_go_live: date | None = None
    mandatory_from: date | None = None
    after_care_days: int | None = None
    go_live_requires_checklist: bool = True

    @classmethod
    def from_campaign(
        cls, *, dates: dict[str, Any], definition: Any, collection_closed: bool
    ) -> Timeline:
        """Build from a campaign's resolved dates and its (validated) definition."""

        def day(name: str) -> date | None:
            value = dates.get(name)
            return date.fromisoformat(value) if value else None

        go_live = day("go_live")
        assert go_live is not None
        after_care_until = day("after_care_until")
        return cls(
            stages=tuple(definition.ordered_stages()),
            go_live=go_live,
            collection_deadline=day("collection_deadline") or go_live,
            collection_closed=collection_closed,
            pilot_start=day("pilot_start"),
            silent_go_live=day("silent_go_live"),
            mandatory_from=day("mandatory_from"),
            after_care_days=(after_care_until - go_live).days if after_care_until else None,
            go_live_requires_checklist=definition.go_live_requires_checklist,
        )


@dataclass(frozen=True)
class Facts:
    """What is known about one enrolment when the rules are evaluated."""

    stage: Stage
    status: EnrolmentStatus = EnrolmentStatus.ACTIVE
    is_pilot: bool = False
    answers_complete: bool = False
    required_open: int = 0
    summary_received: bool = False
    own_go_live: date | None = None


@dataclass(frozen=True)
class Transition:
    """A due move from one stage to the next, with the reason in German."""

    from_stage: Stage
    to_stage: Stage
    reason: str


def fmt(day: date) -> str:
    """DD.MM.YYYY."""
    return day.strftime("%d.%m.%Y")


def go_live_date(facts: Facts, timeline: Timeline) -> date:
    """The enrolment's own go-live date, or the campaign's."""
    return facts.own_go_live or timeline.go_live


def next_transition(
    facts: Facts, timeline: Timeline, today: date, *, include_go_live: bool = True
) -> Transition | None:
    """The one transition due now for FACTS, or None (paused and excluded never move)."""
    if facts.status != EnrolmentStatus.ACTIVE:
        return None
    rule = _RULES.get(facts.stage)
    if rule is None:
        return None
    result = rule(facts, timeline, today)
    if result is None or result[0] not in timeline.stages:
        return None
    to_stage, reason = result
    if to_stage == Stage.GO_LIVE and not include_go_live:
        return None
    return Transition(facts.stage, to_stage, reason)


def due_transitions(
    facts: Facts, timeline: Timeline, today: date, *, include_go_live: bool = True
) -> list[Transition]:
    """All transitions due now, in order (catches up when ticks were missed)."""
    transitions: list[Transition] = []
    current = facts
    for _ in range(len(Stage)):
        step = next_transition(current, timeline, today, include_go_live=include_go_live)
        if step is None:
            break
        transitions.append(step)
        current = _replace_stage(current, step.to_stage)
    return transitions


def _replace_stage(facts: Facts, stage: Stage) -> Facts:
    from dataclasses import replace

    return replace(facts, stage=stage)


Rule = Any  # Callable[[Facts, Timeline, date], tuple[Stage, str] | None]


def _from_collection(facts: Facts, timeline: Timeline, today: date) -> tuple[Stage, str] | None:
    if facts.answers_complete:
        return Stage.SUMMARY_DISTRIBUTION, say("reason.answers_complete")
    if timeline.collection_closed:
        return Stage.SUMMARY_DISTRIBUTION, say("reason.collection_closed")
    if today > timeline.collection_deadline:
        deadline = fmt(timeline.collection_deadline)
        return Stage.SUMMARY_DISTRIBUTION, say("reason.deadline_passed", day=deadline)
    return None


def _from_summary(facts: Facts, timeline: Timeline, today: date) -> tuple[Stage, str] | None:
    if facts.summary_received:
        return Stage.CHECKLIST_FOLLOW_UP, say("reason.summary_sent")
    return None


def _from_checklist(facts: Facts, timeline: Timeline, today: date) -> tuple[Stage, str] | None:
    if (
        facts.is_pilot
        and Stage.PILOT in timeline.stages
        and timeline.pilot_start is not None
        and today >= timeline.pilot_start
    ):
        return Stage.PILOT, say("reason.pilot", day=fmt(timeline.pilot_start))
    go_live = go_live_date(facts, timeline)
    if today < go_live:
        return None
    if timeline.go_live_requires_checklist and facts.required_open > 0:
        return None  # blocked: reported as such, goes live once the items are done
    return Stage.GO_LIVE, say("reason.go_live", day=fmt(go_live))


def _from_pilot(facts: Facts, timeline: Timeline, today: date) -> tuple[Stage, str] | None:
    if timeline.silent_go_live is not None and today >= timeline.silent_go_live:
        return Stage.SILENT_GO_LIVE, say("reason.silent_go_live", day=fmt(timeline.silent_go_live))
    if Stage.SILENT_GO_LIVE not in timeline.stages:
        return _go_live_on_date(facts, timeline, today)
    return None


def _go_live_on_date(facts: Facts, timeline: Timeline, today: date) -> tuple[Stage, str] | None:
    go_live = go_live_date(facts, timeline)
    if today >= go_live:
        return Stage.GO_LIVE, say("reason.go_live", day=fmt(go_live))
    return None


def _from_go_live(facts: Facts, timeline: Timeline, today: date) -> tuple[Stage, str] | None:
    if Stage.AFTER_CARE in timeline.stages:
        return Stage.AFTER_CARE, say("reason.after_care")
    if timeline.mandatory_from is not None and today >= timeline.mandatory_from:
        return Stage.MANDATORY, say("reason.mandatory", day=fmt(timeline.mandatory_from))
    return None


def _from_after_care(facts: Facts, timeline: Timeline, today: date) -> tuple[Stage, str] | None:
    end = go_live_date(facts, timeline) + timedelta(days=timeline.after_care_days or 0)
    if today < end:
        return None
    if Stage.MANDATORY in timeline.stages and timeline.mandatory_from is not None:
        if today >= timeline.mandatory_from:
            return Stage.MANDATORY, say("reason.mandatory", day=fmt(timeline.mandatory_from))
        return None
    return Stage.COMPLETED, say("reason.after_care_ended", day=fmt(end))


def _from_mandatory(facts: Facts, timeline: Timeline, today: date) -> tuple[Stage, str] | None:
    if facts.required_open == 0:
        return Stage.COMPLETED, say("reason.mandatory_done")
    return None


_RULES: dict[Stage, Rule] = {
    Stage.INFORMATION_COLLECTION: _from_collection,
    Stage.SUMMARY_DISTRIBUTION: _from_summary,
    Stage.CHECKLIST_FOLLOW_UP: _from_checklist,
    Stage.PILOT: _from_pilot,
    Stage.SILENT_GO_LIVE: _go_live_on_date,
    Stage.GO_LIVE: _from_go_live,
    Stage.AFTER_CARE: _from_after_care,
    Stage.MANDATORY: _from_mandatory,
}


def go_live_blocked(facts: Facts, timeline: Timeline, today: date) -> bool:
    """True when the go-live date has come but required items are still open."""
    return (
        facts.status == EnrolmentStatus.ACTIVE
        and facts.stage == Stage.CHECKLIST_FOLLOW_UP
        and timeline.go_live_requires_checklist
        and facts.required_open > 0
        and today >= go_live_date(facts, timeline)
    )
