"""What a municipality that cannot move waits for: a pure function over its facts."""

from __future__ import annotations

from datetime import date

from efa_rollout.domain.rules import Facts, Timeline
from efa_rollout.domain.stages import EnrolmentStatus, Stage
from efa_rollout.domain.waiting import Actor, SummaryFacts, campaign_flag, waiting_for

TIMELINE = Timeline(
    stages=(
        Stage.INFORMATION_COLLECTION,
        Stage.SUMMARY_DISTRIBUTION,
        Stage.CHECKLIST_FOLLOW_UP,
        Stage.GO_LIVE,
        Stage.AFTER_CARE,
        Stage.MANDATORY,
        Stage.COMPLETED,
    ),
    go_live=date(2025, 7, 1),
    collection_deadline=date(2025, 4, 8),
    mandatory_from=date(2025, 12, 1),
    after_care_days=28,
)
SUMMARY = SummaryFacts(date=date(2025, 4, 15))


def wait(stage: Stage, today: date, **kwargs: object) -> object:
    facts_args = {k: v for k, v in kwargs.items() if k in Facts.__dataclass_fields__}
    other = {k: v for k, v in kwargs.items() if k not in facts_args}
    return waiting_for(Facts(stage=stage, **facts_args), TIMELINE, today, **other)  # type: ignore[arg-type]


def test_collection_waits_for_answers_but_the_deadline_moves_it() -> None:
    waiting = wait(Stage.INFORMATION_COLLECTION, date(2025, 3, 1), questions_open=3)
    assert waiting.text == "wartet auf: Antworten (3 Pflichtfelder offen), Frist 08.04.2025"  # type: ignore[attr-defined]
    assert waiting.actor == Actor.MUNICIPALITY and not waiting.needs_action  # type: ignore[attr-defined]
    # complete answers: the transition is due, nothing is awaited
    assert wait(Stage.INFORMATION_COLLECTION, date(2025, 3, 1), answers_complete=True) is None


def test_summary_waits_for_its_date_then_for_approval_or_sending() -> None:
    before = wait(Stage.SUMMARY_DISTRIBUTION, date(2025, 4, 10), summary=SUMMARY)
    assert before.text == "wartet auf: Zusammenfassung am 15.04.2025"  # type: ignore[attr-defined]
    assert not before.needs_action  # type: ignore[attr-defined]
    approval = SummaryFacts(date=date(2025, 4, 15), approval_required=True)
    waiting = wait(Stage.SUMMARY_DISTRIBUTION, date(2025, 4, 15), summary=approval)
    assert waiting.text == "wartet auf: Freigabe der Zusammenfassung"  # type: ignore[attr-defined]
    assert waiting.actor == Actor.COORDINATOR and waiting.needs_action  # type: ignore[attr-defined]
    rejected = SummaryFacts(
        date=date(2025, 4, 15), approval_required=True, rejected_note="Tippfehler"
    )
    assert (
        "abgelehnt: Tippfehler"
        in wait(  # type: ignore[attr-defined]
            Stage.SUMMARY_DISTRIBUTION, date(2025, 4, 16), summary=rejected
        ).text
    )
    due = wait(Stage.SUMMARY_DISTRIBUTION, date(2025, 4, 16), summary=SUMMARY)
    assert due.text == "wartet auf: Versand der Zusammenfassung" and due.needs_action  # type: ignore[attr-defined]
    assert wait(Stage.SUMMARY_DISTRIBUTION, date(2025, 4, 16), summary_received=True) is None


def test_checklist_waits_for_go_live_then_for_the_open_items() -> None:
    early = wait(Stage.CHECKLIST_FOLLOW_UP, date(2025, 6, 1), required_open=2)
    assert early.text == "wartet auf: Go-Live am 01.07.2025" and not early.needs_action  # type: ignore[attr-defined]
    late = wait(Stage.CHECKLIST_FOLLOW_UP, date(2025, 7, 2), required_open=2)
    assert late.text == "wartet auf: Checkliste (2 Pflichtpunkte offen)" and late.needs_action  # type: ignore[attr-defined]
    assert wait(Stage.CHECKLIST_FOLLOW_UP, date(2025, 7, 2), required_open=0) is None


def test_live_stages_wait_for_dates_and_mandatory_for_open_items() -> None:
    after_care = wait(Stage.AFTER_CARE, date(2025, 7, 10))
    assert after_care.text == "wartet auf: verpflichtende Nutzung ab 01.12.2025"  # type: ignore[attr-defined]
    mandatory = wait(Stage.MANDATORY, date(2025, 12, 2), required_open=1)
    assert mandatory.text == "wartet auf: Checkliste (1 Pflichtpunkt offen)"  # type: ignore[attr-defined]
    assert wait(Stage.MANDATORY, date(2025, 12, 2), required_open=0) is None
    assert wait(Stage.COMPLETED, date(2025, 12, 2)) is None


def test_paused_waits_for_the_coordinator() -> None:
    paused = wait(
        Stage.CHECKLIST_FOLLOW_UP,
        date(2025, 6, 1),
        status=EnrolmentStatus.PAUSED,
        pause_reason="Bürgermeisterwahl",
    )
    assert (
        paused.text
        == "wartet auf: Fortsetzung durch die Koordination (pausiert: Bürgermeisterwahl)"
    )  # type: ignore[attr-defined]
    assert paused.needs_action  # type: ignore[attr-defined]


def test_a_campaign_is_flagged_when_someone_has_to_act() -> None:
    approval = SummaryFacts(date=date(2025, 4, 15), approval_required=True)
    waits = [
        wait(Stage.SUMMARY_DISTRIBUTION, date(2025, 4, 16), summary=approval),
        wait(Stage.SUMMARY_DISTRIBUTION, date(2025, 4, 16), summary=approval),
        wait(Stage.INFORMATION_COLLECTION, date(2025, 3, 1), questions_open=1),
        None,
    ]
    flag = campaign_flag(waits)  # type: ignore[arg-type]
    assert flag == (
        "Achtung: 2 Gemeinde(n) kommen ohne Zutun nicht weiter (2 × Freigabe der Zusammenfassung)."
    )
    assert campaign_flag([waits[2], None]) is None  # type: ignore[list-item]
