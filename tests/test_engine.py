"""The engine without Prefect: start, tick, go-live, overrides, and idempotency of each."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from efa_rollout.db import get_engine, session_scope
from efa_rollout.demo.simulation import SAMPLE_ANSWERS, _fill
from efa_rollout.domain.stages import EnrolmentStatus, Stage
from efa_rollout.errors import UserError
from efa_rollout.services import campaigns, lookup, overrides
from efa_rollout.services.answers import save_answers
from efa_rollout.services.checklist import set_checklist_item
from efa_rollout.services.orchestration import advance_campaigns, start_campaign
from models import Enrolment, Event, OutboxMessage
from tests.engine_fixtures import EWA, VIBA, at, ostalbkreis_with_campaigns, snapshot


@pytest.fixture
def district(efa_env: Path) -> Path:
    ostalbkreis_with_campaigns(efa_env)
    return efa_env


def stages(campaign_id: str) -> dict[str, str]:
    with Session(get_engine()) as session:
        rows = session.exec(select(Enrolment).where(Enrolment.campaign_id == campaign_id))
        return {e.ags: e.stage for e in rows}


def answer(campaign_id: str, ags: str, day: str) -> None:
    with session_scope() as session:
        enrolment = lookup.find_enrolment(session, campaign_id, ags)
        template = lookup.get_campaign(session, campaign_id).template
        save_answers(
            session,
            enrolment=enrolment,
            answers=_fill(SAMPLE_ANSWERS[template], "x.example"),
            submit=True,
            source="cli",
            author="test",
            now=at(day),
        )


def test_start_enrols_targeted_municipalities_and_queues_one_request_each(district: Path) -> None:
    viba = start_campaign(VIBA, at("2023-04-17"))
    ewa = start_campaign(EWA, at("2024-04-15"))
    assert viba["enrolments"] == 34  # only where the Landratsamt is the building authority
    assert ewa["enrolments"] == 42
    assert viba["mails_queued"] == 34 and ewa["mails_queued"] == 42
    with Session(get_engine()) as session:
        pilots = session.exec(select(Enrolment.ags).where(Enrolment.is_pilot)).all()
        roles = set(session.exec(select(Enrolment.role).where(Enrolment.campaign_id == VIBA)))
    assert sorted(pilots) == ["08136021", "08136033"]
    assert roles == {"landratsamt"}


def test_start_twice_changes_nothing(district: Path) -> None:
    start_campaign(EWA, at("2024-04-15"))
    before = snapshot(EWA)
    again = start_campaign(EWA, at("2024-04-16"))
    assert again == {"enrolled": 0, "enrolments": 42, "mails_queued": 0}
    assert snapshot(EWA) == before


def test_tick_moves_answered_municipalities_and_is_idempotent(district: Path) -> None:
    start_campaign(EWA, at("2024-04-15"))
    answer(EWA, "08136088", "2024-05-02")
    first = advance_campaigns(EWA, at("2024-05-03"), go_live=False)
    assert first[EWA]["changes"] == 1
    assert stages(EWA)["08136088"] == Stage.SUMMARY_DISTRIBUTION
    before = snapshot(EWA)
    second = advance_campaigns(EWA, at("2024-05-03"), go_live=False)
    assert second[EWA]["changes"] == 0
    assert snapshot(EWA) == before


def test_deadline_moves_the_rest_and_every_transition_is_logged(district: Path) -> None:
    start_campaign(EWA, at("2024-04-15"))
    advance_campaigns(EWA, at("2024-07-10"), go_live=False)  # deadline 09.07.2024
    assert set(stages(EWA).values()) == {Stage.SUMMARY_DISTRIBUTION}
    with Session(get_engine()) as session:
        events = session.exec(
            select(Event).where(Event.campaign_id == EWA, Event.kind == "stage_changed")
        ).all()
    assert len(events) == 42
    assert all("09.07.2024" in (e.reason or "") for e in events)


def test_go_live_waits_for_required_items_and_queues_the_notice_once(district: Path) -> None:
    start_campaign(EWA, at("2024-04-15"))
    with session_scope() as session:
        enrolments = session.exec(select(Enrolment).where(Enrolment.campaign_id == EWA)).all()
        for enrolment in enrolments:  # skip ahead: everybody in checklist follow-up
            overrides.set_stage(
                session,
                enrolment,
                Stage.CHECKLIST_FOLLOW_UP,
                reason="Test",
                actor="test",
                now=at("2024-08-01"),
            )
        ready = next(e for e in enrolments if e.ags == "08136021")
        campaign = lookup.get_campaign(session, EWA)
        for item in lookup.campaign_definition(campaign).items_for(ready.role, ready.is_pilot):
            if item.required:
                set_checklist_item(
                    session,
                    enrolment=ready,
                    item_key=item.key,
                    done=True,
                    note=None,
                    source="cli",
                    author="test",
                    now=at("2024-09-01"),
                )
    figures = advance_campaigns(EWA, at("2024-10-01"), go_live=True)[EWA]
    assert stages(EWA)["08136021"] == Stage.AFTER_CARE  # live, after-care opened
    assert figures["blocked"] == 41
    assert sum(1 for s in stages(EWA).values() if s == Stage.CHECKLIST_FOLLOW_UP) == 41
    before = snapshot(EWA)
    advance_campaigns(EWA, at("2024-10-01", 15), go_live=True)
    assert snapshot(EWA) == before
    with Session(get_engine()) as session:
        notices = session.exec(
            select(OutboxMessage).where(
                OutboxMessage.kind == "go_live", OutboxMessage.campaign_id == EWA
            )
        ).all()
    assert [m.ags for m in notices] == ["08136021"]


def test_tick_does_not_go_live(district: Path) -> None:
    start_campaign(VIBA, at("2023-04-17"))
    with session_scope() as session:
        for e in session.exec(select(Enrolment).where(Enrolment.campaign_id == VIBA)).all():
            overrides.set_stage(
                session,
                e,
                Stage.CHECKLIST_FOLLOW_UP,
                reason="Test",
                actor="t",
                now=at("2024-01-01"),
            )
    advance_campaigns(VIBA, at("2024-08-01"), go_live=False)
    assert Stage.GO_LIVE not in set(stages(VIBA).values())
    advance_campaigns(VIBA, at("2024-08-01"), go_live=True)
    # ViBa goes live without waiting for the checklist; pilots were moved to pilot stage before
    assert set(stages(VIBA).values()) == {Stage.AFTER_CARE}


def test_overrides_are_logged_and_paused_enrolments_do_not_move(district: Path) -> None:
    start_campaign(EWA, at("2024-04-15"))
    with session_scope() as session:
        enrolment = lookup.find_enrolment(session, EWA, "08136088")
        overrides.set_status(
            session,
            enrolment,
            EnrolmentStatus.PAUSED,
            reason="Personalwechsel",
            actor="Koordination",
            now=at("2024-05-01"),
        )
        excluded = lookup.find_enrolment(session, EWA, "08136002")
        overrides.set_status(
            session,
            excluded,
            EnrolmentStatus.NOT_APPLICABLE,
            reason="eigenes Verfahren",
            actor="Koordination",
            now=at("2024-05-01"),
        )
    advance_campaigns(EWA, at("2024-07-10"), go_live=False)
    assert stages(EWA)["08136088"] == Stage.INFORMATION_COLLECTION
    assert stages(EWA)["08136002"] == Stage.INFORMATION_COLLECTION
    with session_scope() as session:
        enrolment = lookup.find_enrolment(session, EWA, "08136088")
        assert (
            overrides.set_status(
                session,
                enrolment,
                EnrolmentStatus.PAUSED,
                reason="x",
                actor="x",
                now=at("2024-07-11"),
            )
            is None
        )
        overrides.set_status(
            session,
            enrolment,
            EnrolmentStatus.ACTIVE,
            reason="zurück",
            actor="Koordination",
            now=at("2024-07-11"),
        )
        overrides.set_stage(
            session,
            enrolment,
            Stage.CHECKLIST_FOLLOW_UP,
            reason="Telefonisch geklärt",
            actor="Koordination",
            now=at("2024-07-11"),
        )
    with Session(get_engine()) as session:
        log = session.exec(
            select(Event)
            .where(Event.ags == "08136088", Event.campaign_id == EWA)
            .order_by(col(Event.id))
        ).all()
    kinds = [(e.kind, e.actor, e.reason) for e in log]
    assert ("status_changed", "Koordination", "Personalwechsel") in kinds
    assert ("stage_changed", "Koordination", "Telefonisch geklärt") in kinds
    assert log[-1].data.get("override") is True


def test_set_stage_refuses_a_stage_the_campaign_does_not_have(district: Path) -> None:
    start_campaign(EWA, at("2024-04-15"))
    with session_scope() as session, pytest.raises(UserError, match="silent_go_live"):
        overrides.set_stage(
            session,
            lookup.find_enrolment(session, EWA, "08136088"),
            Stage.SILENT_GO_LIVE,
            reason="x",
            actor="x",
            now=at("2024-05-01"),
        )


def test_create_refuses_duplicates_and_unknown_areas(district: Path) -> None:
    from efa_rollout.definitions import get_definition

    with session_scope() as session, pytest.raises(UserError, match="gibt es schon"):
        campaigns.create_campaign(
            session,
            definition=get_definition("ewa"),
            area_code="08136",
            go_live=at("2025-01-01").date(),
            now=at("2024-01-01"),
            name=EWA,
            actor="t",
        )
    with session_scope() as session, pytest.raises(UserError, match="keine Gemeinden"):
        campaigns.create_campaign(
            session,
            definition=get_definition("ewa"),
            area_code="08999",
            go_live=at("2025-01-01").date(),
            now=at("2024-01-01"),
            actor="t",
        )


def test_late_arrival_gets_the_latest_summary_once(district: Path) -> None:
    from efa_rollout.services.summary import distribute_summary

    start_campaign(EWA, at("2024-04-15"))
    with session_scope() as session:
        late = lookup.find_enrolment(session, EWA, "08136088")
        overrides.set_status(
            session, late, EnrolmentStatus.PAUSED, reason="Urlaub", actor="K", now=at("2024-07-01")
        )
    advance_campaigns(EWA, at("2024-07-10"), go_live=False)  # deadline passed
    distribute_summary(get_engine(), EWA, now=at("2024-07-10"), actor="test")

    def summaries(ags: str) -> list[int]:
        with Session(get_engine()) as session:
            return list(
                session.exec(
                    select(OutboxMessage.sequence).where(
                        OutboxMessage.kind == "summary", OutboxMessage.ags == ags
                    )
                )
            )

    assert summaries("08136088") == [] and summaries("08136002") == [1]
    with session_scope() as session:
        late = lookup.find_enrolment(session, EWA, "08136088")
        overrides.set_status(
            session, late, EnrolmentStatus.ACTIVE, reason="zurück", actor="K", now=at("2024-07-15")
        )
    advance_campaigns(EWA, at("2024-07-15"), go_live=False)
    advance_campaigns(EWA, at("2024-07-16"), go_live=False)
    assert summaries("08136088") == [1]  # the version that went out, once
    assert summaries("08136002") == [1]  # nobody else gets it again
    assert stages(EWA)["08136088"] == Stage.CHECKLIST_FOLLOW_UP


def test_the_target_read_as_columns_is_the_target(district: Path) -> None:
    from efa_rollout.definitions import get_definition

    with session_scope() as session:
        for key in ("ewa", "viba-bw"):
            definition = get_definition(key)
            for area in ("08136", "08"):
                full = campaigns.targeted_municipalities(session, definition, area)
                assert campaigns.targeted_ags(session, definition, area) == [m.ags for m in full]
                first = campaigns.first_targeted(session, definition, area)
                assert (first.ags if first else None) == (full[0].ags if full else None)
        ewa = get_definition("ewa")
        target = ewa.target.model_copy(update={"where": {"nicht": "vorhanden"}})
        narrowed = ewa.model_copy(update={"target": target})
        assert campaigns.targeted_ags(session, narrowed, "08136") == []
        assert campaigns.first_targeted(session, narrowed, "08136") is None
