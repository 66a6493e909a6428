"""The flows 'Zusammenfassung verteilen' and 'Rückmeldung erfassen'."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlmodel import Session, select
from test_collection_support import NOW, add_contacts, complete_ewa_answers, enrol, make_campaign

from efa_rollout.errors import UserError
from flows.record_response import RecordResponseInput, record
from models import Campaign, Enrolment, Event, OutboxMessage, QuestionnaireResponse

AALEN = "08136088"
ESSINGEN = "08136019"
BOPFINGEN = "08136010"


@pytest.fixture
def campaign_id(session: Session) -> str:
    campaign, definition = make_campaign(session)
    for ags in (AALEN, ESSINGEN, BOPFINGEN):
        enrol(session, campaign, definition, ags)
    add_contacts(session)
    session.commit()
    return campaign.id


def _enrolment(session: Session, campaign_id: str, ags: str) -> Enrolment:
    session.expire_all()
    enrolment = session.exec(
        select(Enrolment).where(Enrolment.campaign_id == campaign_id, Enrolment.ags == ags)
    ).one()
    return enrolment


# --- record_response without the Prefect engine ------------------------------------------------


def test_record_answers_and_checklist_in_one_go(session: Session, campaign_id: str) -> None:
    params = RecordResponseInput(
        campaign=campaign_id,
        ags="8136088",
        answers=complete_ewa_answers(),
        submit=True,
        checklist_done=["interesse_bekundet", "rollen_benannt"],
        note="telefonisch bestätigt",
        author="Erika Mustermann",
    )
    result = record(params, now=NOW)
    assert result["version"] == 1 and result["status"] == "submitted" and result["complete"]
    assert result["answers_complete"] is True and result["required_open"] == 9
    enrolment = _enrolment(session, campaign_id, AALEN)
    assert enrolment.answers_complete and enrolment.required_open == 9
    events = session.exec(select(Event).order_by(Event.id)).all()
    assert [(e.kind, e.actor, e.data["source"]) for e in events] == [
        ("answers_submitted", "Erika Mustermann", "prefect"),
        ("contacts_changed", "Erika Mustermann", "answers"),  # the persons named
        ("checklist_item_done", "Erika Mustermann", "prefect"),
        ("checklist_item_done", "Erika Mustermann", "prefect"),
    ]
    assert events[2].data["note"] == "telefonisch bestätigt"


def test_record_is_all_or_nothing(session: Session, campaign_id: str) -> None:
    params = RecordResponseInput(
        campaign=campaign_id,
        ags=AALEN,
        answers={"funktionspostfach": "kaputt"},
        checklist_done=["schulung"],
        author="Erika Mustermann",
    )
    with pytest.raises(UserError, match="es wurde nichts gespeichert"):
        record(params, now=NOW)
    params = RecordResponseInput(
        campaign=campaign_id,
        ags=AALEN,
        answers={"funktionspostfach": "meldeamt@aalen.de"},
        checklist_done=["schulung", "gibtsnicht"],
        author="Erika Mustermann",
    )
    with pytest.raises(UserError, match="gibtsnicht"):
        record(params, now=NOW)
    session.expire_all()
    assert session.exec(select(QuestionnaireResponse)).all() == []
    assert session.exec(select(Event)).all() == []
    assert _enrolment(session, campaign_id, AALEN).required_open == 11


def test_record_reopen_and_conflicts(session: Session, campaign_id: str) -> None:
    record(
        RecordResponseInput(
            campaign=campaign_id, ags=AALEN, checklist_done=["schulung"], author="EM"
        ),
        now=NOW,
    )
    result = record(
        RecordResponseInput(
            campaign=campaign_id, ags=AALEN, checklist_reopen=["schulung"], author="EM"
        ),
        now=NOW,
    )
    assert result["required_open"] == 11 and "version" not in result
    with pytest.raises(UserError, match="zugleich erledigt und wieder geöffnet"):
        record(
            RecordResponseInput(
                campaign=campaign_id,
                ags=AALEN,
                checklist_done=["schulung"],
                checklist_reopen=["schulung"],
                author="EM",
            )
        )
    with pytest.raises(UserError, match="weder Antworten noch Checklistenpunkte"):
        record(RecordResponseInput(campaign=campaign_id, ags=AALEN, author="EM"))


def test_record_input_is_bounded_and_described() -> None:
    with pytest.raises(ValidationError):
        RecordResponseInput(campaign="ewa-ostalbkreis", ags="Aalen", author="EM")
    with pytest.raises(ValidationError, match="kein gültiger Schlüssel"):
        RecordResponseInput(
            campaign="ewa-ostalbkreis", ags=AALEN, checklist_done=["Schulung!"], author="EM"
        )
    schema = RecordResponseInput.model_json_schema()
    for name, field in schema["properties"].items():
        assert field.get("description"), name
        assert field.get("title"), name
    assert schema["properties"]["note"]["anyOf"][0]["maxLength"] == 2000


# --- under Prefect ------------------------------------------------------------------------------


async def _runs_and_artifacts() -> tuple[list[Any], list[Any]]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.read_flow_runs(), await client.read_artifacts()


@pytest.mark.prefect
def test_flows_under_prefect(
    prefect_api: None, efa_env: Path, session: Session, campaign_id: str
) -> None:
    from flows.distribute_summary import distribute_summary
    from flows.record_response import record_response

    started = datetime.now(UTC)  # the session-wide server also holds other tests' runs
    recorded = record_response(
        params=RecordResponseInput(
            campaign=campaign_id,
            ags=AALEN,
            answers=complete_ewa_answers(),
            submit=True,
            author="Erika Mustermann",
        )
    )
    assert recorded["complete"] is True

    # the coordinator closes the collection and distributes: everyone gets version 1
    first = distribute_summary(campaign=campaign_id, as_of=NOW, close_collection=True)
    assert first["version"] == 1 and first["queued"] == 3 and first["collection_closed"]
    session.expire_all()
    campaign = session.get(Campaign, campaign_id)
    assert campaign is not None and campaign.collection_closed_at == NOW
    stages = {e.ags: e.stage for e in session.exec(select(Enrolment)).all()}
    assert set(stages.values()) == {"checklist_follow_up"}  # the summary moved them on
    closed = session.exec(select(Event).where(Event.kind == "collection_closed")).all()
    assert len(closed) == 1
    session.commit()

    second = distribute_summary(campaign=campaign_id, as_of=NOW)
    assert (second["version"], second["queued"], second["already"]) == (1, 0, 3)
    session.expire_all()
    rows = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "summary")).all()
    assert sorted((r.ags, r.sequence) for r in rows) == [
        (BOPFINGEN, 1),
        (ESSINGEN, 1),
        (AALEN, 1),
    ]
    session.commit()

    runs, artifacts = asyncio.run(_runs_and_artifacts())
    runs = [run for run in runs if run.created is not None and run.created >= started]
    names = {run.name for run in runs}
    assert f"{campaign_id} · zusammenfassung · 2025-03-03" in names
    assert any(name.startswith(f"{campaign_id} · rueckmeldung-{AALEN}") for name in names)
    assert all(run.state is not None and run.state.is_completed() for run in runs)
    keys = {a.key for a in artifacts if a.key}
    assert {
        f"{campaign_id}-zusammenfassung-versand",
        f"{campaign_id}-zusammenfassung-summary",
        f"{campaign_id}-rueckmeldung-{AALEN}",
    } <= keys
    tables = [str(a.data) for a in artifacts if a.key == f"{campaign_id}-zusammenfassung-versand"]
    assert any("in den Postausgang gestellt" in t for t in tables)  # first run
    assert any("hatte diese Version bereits" in t for t in tables)  # second run
