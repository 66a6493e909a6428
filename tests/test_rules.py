"""Every stage transition, as plain functions without Prefect."""

from __future__ import annotations

from datetime import date

import pytest

from efa_rollout.domain.rules import (
    Facts,
    Timeline,
    due_transitions,
    go_live_blocked,
    next_transition,
)
from efa_rollout.domain.stages import EnrolmentStatus, Stage

ALL = tuple(Stage)
GO_LIVE = date(2024, 8, 1)


def timeline(**overrides: object) -> Timeline:
    values: dict[str, object] = {
        "stages": ALL,
        "go_live": GO_LIVE,
        "collection_deadline": date(2024, 5, 10),
        "pilot_start": date(2023, 10, 1),
        "silent_go_live": date(2023, 11, 15),
        "mandatory_from": date(2025, 1, 1),
        "after_care_days": 28,
        "go_live_requires_checklist": True,
    }
    values.update(overrides)
    return Timeline(**values)  # type: ignore[arg-type]


def to(facts: Facts, tl: Timeline, today: date, **kw: bool) -> Stage | None:
    step = next_transition(facts, tl, today, **kw)
    return step.to_stage if step else None


def test_collection_waits_until_answers_or_deadline() -> None:
    facts = Facts(stage=Stage.INFORMATION_COLLECTION)
    assert to(facts, timeline(), date(2024, 5, 10)) is None  # deadline day itself still open
    assert to(facts, timeline(), date(2024, 5, 11)) == Stage.SUMMARY_DISTRIBUTION


def test_complete_answers_move_on_before_the_deadline() -> None:
    step = next_transition(
        Facts(stage=Stage.INFORMATION_COLLECTION, answers_complete=True),
        timeline(),
        date(2024, 3, 1),
    )
    assert step is not None and step.to_stage == Stage.SUMMARY_DISTRIBUTION
    assert "vollständig" in step.reason


def test_coordinator_closing_collection_moves_everyone_on() -> None:
    step = next_transition(
        Facts(stage=Stage.INFORMATION_COLLECTION),
        timeline(collection_closed=True),
        date(2024, 3, 1),
    )
    assert step is not None and "Koordination" in step.reason


def test_deadline_reason_names_the_date() -> None:
    step = next_transition(Facts(stage=Stage.INFORMATION_COLLECTION), timeline(), date(2024, 6, 1))
    assert step is not None and "10.05.2024" in step.reason


def test_summary_stage_waits_for_the_summary() -> None:
    assert to(Facts(stage=Stage.SUMMARY_DISTRIBUTION), timeline(), date(2024, 6, 1)) is None
    received = Facts(stage=Stage.SUMMARY_DISTRIBUTION, summary_received=True)
    assert to(received, timeline(), date(2024, 6, 1)) == Stage.CHECKLIST_FOLLOW_UP


def test_go_live_requires_checklist_when_the_definition_says_so() -> None:
    open_items = Facts(stage=Stage.CHECKLIST_FOLLOW_UP, required_open=2)
    assert to(open_items, timeline(), GO_LIVE) is None
    assert go_live_blocked(open_items, timeline(), GO_LIVE)
    done = Facts(stage=Stage.CHECKLIST_FOLLOW_UP, required_open=0)
    assert to(done, timeline(), date(2024, 7, 31)) is None
    assert to(done, timeline(), GO_LIVE) == Stage.GO_LIVE
    assert not go_live_blocked(done, timeline(), GO_LIVE)


def test_go_live_without_checklist_requirement() -> None:
    open_items = Facts(stage=Stage.CHECKLIST_FOLLOW_UP, required_open=5)
    assert to(open_items, timeline(go_live_requires_checklist=False), GO_LIVE) == Stage.GO_LIVE


def test_own_go_live_date_wins() -> None:
    facts = Facts(stage=Stage.CHECKLIST_FOLLOW_UP, own_go_live=date(2024, 9, 1))
    assert to(facts, timeline(), GO_LIVE) is None
    assert to(facts, timeline(), date(2024, 9, 1)) == Stage.GO_LIVE


def test_tick_leaves_go_live_to_the_go_live_flow() -> None:
    facts = Facts(stage=Stage.CHECKLIST_FOLLOW_UP)
    assert to(facts, timeline(), GO_LIVE, include_go_live=False) is None


def test_pilots_go_through_pilot_and_silent_go_live() -> None:
    pilot = Facts(stage=Stage.CHECKLIST_FOLLOW_UP, is_pilot=True)
    assert to(pilot, timeline(), date(2023, 9, 30)) is None
    assert to(pilot, timeline(), date(2023, 10, 1)) == Stage.PILOT
    in_pilot = Facts(stage=Stage.PILOT, is_pilot=True)
    assert to(in_pilot, timeline(), date(2023, 11, 14)) is None
    assert to(in_pilot, timeline(), date(2023, 11, 15)) == Stage.SILENT_GO_LIVE
    silent = Facts(stage=Stage.SILENT_GO_LIVE, is_pilot=True, required_open=3)
    assert to(silent, timeline(), GO_LIVE) == Stage.GO_LIVE
    non_pilot = Facts(stage=Stage.CHECKLIST_FOLLOW_UP)
    assert to(non_pilot, timeline(), date(2023, 10, 1)) is None


def test_pilot_stage_skipped_when_not_in_definition() -> None:
    stages = tuple(s for s in Stage if s not in {Stage.PILOT, Stage.SILENT_GO_LIVE})
    pilot = Facts(stage=Stage.CHECKLIST_FOLLOW_UP, is_pilot=True)
    assert to(pilot, timeline(stages=stages), date(2023, 10, 1)) is None


def test_after_care_then_mandatory_then_completed() -> None:
    tl = timeline()
    assert to(Facts(stage=Stage.GO_LIVE), tl, GO_LIVE) == Stage.AFTER_CARE
    care = Facts(stage=Stage.AFTER_CARE, required_open=1)
    assert to(care, tl, date(2024, 8, 28)) is None
    assert to(care, tl, date(2024, 12, 31)) is None  # after-care over, mandatory not yet
    assert to(care, tl, date(2025, 1, 1)) == Stage.MANDATORY
    assert to(Facts(stage=Stage.MANDATORY, required_open=1), tl, date(2025, 2, 1)) is None
    assert to(Facts(stage=Stage.MANDATORY), tl, date(2025, 2, 1)) == Stage.COMPLETED


def test_after_care_ends_in_completed_without_mandatory() -> None:
    stages = tuple(s for s in Stage if s != Stage.MANDATORY)
    tl = timeline(stages=stages, mandatory_from=None)
    assert to(Facts(stage=Stage.AFTER_CARE), tl, date(2024, 8, 28)) is None
    assert to(Facts(stage=Stage.AFTER_CARE), tl, date(2024, 8, 29)) == Stage.COMPLETED


@pytest.mark.parametrize("status", [EnrolmentStatus.PAUSED, EnrolmentStatus.NOT_APPLICABLE])
def test_paused_and_excluded_never_move(status: EnrolmentStatus) -> None:
    facts = Facts(stage=Stage.INFORMATION_COLLECTION, status=status, answers_complete=True)
    assert due_transitions(facts, timeline(), date(2030, 1, 1)) == []


def test_missed_ticks_catch_up_in_order() -> None:
    facts = Facts(stage=Stage.CHECKLIST_FOLLOW_UP)
    steps = due_transitions(facts, timeline(), date(2025, 3, 1))
    assert [s.to_stage for s in steps] == [
        Stage.GO_LIVE,
        Stage.AFTER_CARE,
        Stage.MANDATORY,
        Stage.COMPLETED,
    ]
    assert all(s.reason for s in steps)
    assert [s.from_stage for s in steps[1:]] == [s.to_stage for s in steps[:-1]]


def test_completed_is_final() -> None:
    assert due_transitions(Facts(stage=Stage.COMPLETED), timeline(), date(2030, 1, 1)) == []
