"""Entries made later than they happened (`--as-of` on `efa response set|import`, `checklist done`).

The moment given stamps the row and its event, so reports and history place the entry where it
happened; refused in the future, before the enrolment and before what is already recorded.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlmodel import Session, col, select
from test_collection_support import complete_ewa_answers, enrol, make_campaign
from typer.testing import CliRunner

from efa_rollout.cli.collection import checklist_app, response_app
from efa_rollout.errors import UserError
from efa_rollout.settings import get_settings
from models import ChecklistItemState, Enrolment, Event, QuestionnaireResponse

AALEN = "08136088"
ESSINGEN = "08136019"

_runner = CliRunner()
app = typer.Typer()
app.add_typer(response_app, name="response")
app.add_typer(checklist_app, name="checklist")


def local(day: str, hour: int = 9) -> datetime:
    """DAY at HOUR local time, as aware UTC."""
    moment = datetime.fromisoformat(day).replace(hour=hour, tzinfo=get_settings().zone)
    return moment.astimezone(UTC)


@pytest.fixture
def cli(session: Session) -> Any:
    def invoke(args: list[str]) -> Any:
        session.commit()
        return _runner.invoke(app, args)

    return invoke


@pytest.fixture
def campaign_id(session: Session) -> str:
    campaign, definition = make_campaign(session)  # started NOW (2025-03-03)
    for ags in (AALEN, ESSINGEN):
        enrol(session, campaign, definition, ags)
    session.commit()
    return campaign.id


def _answers() -> list[str]:
    return [
        f"{k}={json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else v}"
        for k, v in complete_ewa_answers().items()
    ]


def _events(session: Session, kind: str) -> list[Event]:
    session.expire_all()
    return list(session.exec(select(Event).where(Event.kind == kind).order_by(col(Event.id))))


def test_response_set_as_of_stamps_the_version_and_the_event(
    cli: Any, session: Session, campaign_id: str
) -> None:
    before = datetime.now(UTC)
    result = cli(
        ["response", "set", campaign_id, AALEN, *_answers(), "--submit", "--as-of", "2025-03-07"]
    )
    assert result.exit_code == 0, result.output
    assert "Erfasst mit dem Zeitpunkt 07.03.2025 09:00 (--as-of »2025-03-07«)." in result.output
    response = session.exec(select(QuestionnaireResponse)).one()
    (event,) = _events(session, "answers_submitted")
    assert response.created_at.astimezone(UTC) == local("2025-03-07")
    assert event.at.replace(tzinfo=UTC) == local("2025-03-07")
    recorded = datetime.fromisoformat(event.data["recorded_at"])
    assert before <= recorded <= datetime.now(UTC)  # the moment of entry is kept
    contacts = _events(session, "contacts_changed")
    assert [e.at.replace(tzinfo=UTC) for e in contacts] == [local("2025-03-07")]


def test_without_as_of_nothing_changes(cli: Any, session: Session, campaign_id: str) -> None:
    result = cli(["response", "set", campaign_id, AALEN, "funktionspostfach=a@aalen.de"])
    assert result.exit_code == 0, result.output
    assert "Erfasst mit dem Zeitpunkt" not in result.output
    (event,) = _events(session, "answers_saved")
    assert "recorded_at" not in event.data
    assert datetime.now(UTC) - event.at.replace(tzinfo=UTC) < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2999-01-01", "liegt in der Zukunft"),
        ("2025-03-01", "vor der Aufnahme der Gemeinde in die Kampagne am 03.03.2025"),
        ("gestern", "ist kein Datum oder Zeitpunkt"),
    ],
)
def test_response_set_refuses_a_moment_naming_option_and_value(
    cli: Any, session: Session, campaign_id: str, value: str, expected: str
) -> None:
    result = cli(
        ["response", "set", campaign_id, AALEN, "funktionspostfach=a@aalen.de", "--as-of", value]
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, UserError), result.output
    rendered = result.exception.render()
    assert f"--as-of: »{value}«" in rendered or f"--as-of »{value}«" in rendered
    assert expected in rendered
    assert session.exec(select(QuestionnaireResponse)).all() == []
    assert _events(session, "answers_saved") == []


def test_a_late_entry_cannot_go_before_the_newest_version(
    cli: Any, session: Session, campaign_id: str
) -> None:
    first = cli(
        [
            "response",
            "set",
            campaign_id,
            AALEN,
            "funktionspostfach=a@aalen.de",
            "--as-of",
            "2025-03-10",
        ]
    )
    assert first.exit_code == 0, first.output
    result = cli(
        ["response", "set", campaign_id, AALEN, *_answers(), "--submit", "--as-of", "2025-03-07"]
    )
    assert isinstance(result.exception, UserError)
    rendered = result.exception.render()
    assert "--as-of »2025-03-07«" in rendered
    assert "vor der neuesten Version 1 der Antworten vom 10.03.2025 09:00" in rendered
    assert "es wurde nichts gespeichert" in rendered
    session.expire_all()
    assert len(session.exec(select(QuestionnaireResponse)).all()) == 1
    later = cli(
        ["response", "set", campaign_id, AALEN, *_answers(), "--submit", "--as-of", "2025-03-11"]
    )
    assert later.exit_code == 0, later.output


def test_checklist_done_as_of_and_its_order(cli: Any, session: Session, campaign_id: str) -> None:
    result = cli(
        ["checklist", "done", campaign_id, AALEN, "schulung", "--as-of", "2025-03-12T14:30"]
    )
    assert result.exit_code == 0, result.output
    enrolment_id = session.exec(select(Enrolment.id).where(Enrolment.ags == AALEN)).one()
    state = session.exec(
        select(ChecklistItemState).where(
            ChecklistItemState.enrolment_id == enrolment_id,
            ChecklistItemState.item_key == "schulung",
        )
    ).one()
    assert state.done and state.done_at is not None
    assert state.done_at.replace(tzinfo=UTC) == local("2025-03-12", 14) + timedelta(minutes=30)
    (event,) = _events(session, "checklist_item_done")
    assert event.at.replace(tzinfo=UTC) == state.done_at.replace(tzinfo=UTC)
    undo = cli(
        ["checklist", "done", campaign_id, AALEN, "schulung", "--undo", "--as-of", "2025-03-11"]
    )
    assert isinstance(undo.exception, UserError)
    assert (
        "vor der letzten Änderung des Punkts »schulung« am 12.03.2025 14:30"
        in undo.exception.render()
    )
    # another item is not held up by the first one's date
    other = cli(
        ["checklist", "done", campaign_id, AALEN, "rollen_benannt", "--as-of", "2025-03-11"]
    )
    assert other.exit_code == 0, other.output


def test_response_import_as_of(
    cli: Any, session: Session, campaign_id: str, tmp_path: Path
) -> None:
    path = tmp_path / "antworten.csv"
    path.write_text(
        "AGS;funktionspostfach\n08136088;a@aalen.de\n08136019;e@essingen.de\n", encoding="utf-8"
    )
    result = cli(["response", "import", campaign_id, str(path), "--as-of", "2025-03-06"])
    assert result.exit_code == 0, result.output
    stamps = {e.at.replace(tzinfo=UTC) for e in _events(session, "answers_saved")}
    assert stamps == {local("2025-03-06")}
    path.write_text(
        "AGS;funktionspostfach\n08136088;b@aalen.de\n08136019;f@essingen.de\n", encoding="utf-8"
    )
    cli(
        [
            "response",
            "set",
            campaign_id,
            ESSINGEN,
            "funktionspostfach=g@essingen.de",
            "--as-of",
            "2025-03-09",
        ]
    )
    refused = cli(["response", "import", campaign_id, str(path), "--as-of", "2025-03-08"])
    assert isinstance(refused.exception, UserError)
    rendered = refused.exception.render()
    assert "»antworten.csv«, Zeile 3 (AGS 08136019)" in rendered
    session.expire_all()
    assert (
        len(_events(session, "answers_saved")) == 3
    )  # all or nothing: Aalen's row not kept either


def test_later_today_counts_as_now_a_later_day_is_refused() -> None:
    from efa_rollout.services.late_entry import late_entry

    now = local("2025-06-02", 8)
    moment, late = late_entry(local("2025-06-02", 9), now=now, label="--as-of »2025-06-02«")
    assert moment == now and late is not None and late.event_data(moment) == {}
    with pytest.raises(UserError, match=r"--as-of »2025-06-03«: .* liegt in der Zukunft"):
        late_entry(local("2025-06-03"), now=now, label="--as-of »2025-06-03«")
    assert late_entry(None, now=now, label="x") == (now, None)


# --- a late answer after the stage change it did not take part in -------------------------


def _status(campaign: str, ags: str, as_of: datetime) -> Any:
    from efa_rollout.db import get_engine
    from efa_rollout.reports.rollup import campaign_rollup

    with Session(get_engine()) as s:
        rollup = campaign_rollup(s, campaign, as_of=as_of)
    return next(m for m in rollup.municipalities if m.ags == ags)


def test_a_late_answer_keeps_reports_and_stage_history_in_agreement(efa_env: Path) -> None:
    """eWA: the deadline (09.07.2024) moved Aalen on unanswered; its letter of 01.07. comes in."""
    from efa_rollout.cli import app as efa
    from efa_rollout.db import get_engine
    from efa_rollout.demo.simulation import SAMPLE_ANSWERS, _fill
    from efa_rollout.services.history import campaign_history, past_states
    from efa_rollout.services.orchestration import advance_campaigns, start_campaign
    from tests.engine_fixtures import EWA, at, ostalbkreis_with_campaigns

    ostalbkreis_with_campaigns(efa_env)
    start_campaign(EWA, at("2024-04-15"))
    advance_campaigns(EWA, at("2024-07-10", 7), go_live=False)
    assert _status(EWA, AALEN, at("2024-07-10", 8)).stage == "summary_distribution"

    pairs = [
        f"{k}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
        for k, v in _fill(SAMPLE_ANSWERS["ewa"], "x.example").items()
    ]
    result = _runner.invoke(
        efa, ["response", "set", EWA, AALEN, *pairs, "--submit", "--as-of", "2024-07-01"]
    )
    assert result.exit_code == 0, result.output
    advance_campaigns(EWA, at("2024-07-11", 7), go_live=False)  # nothing to undo or redo

    before, between, after = at("2024-06-28"), at("2024-07-05"), at("2024-07-11", 8)
    assert (_status(EWA, AALEN, before).stage, _status(EWA, AALEN, before).answered) == (
        "information_collection",
        False,
    )
    assert (_status(EWA, AALEN, between).stage, _status(EWA, AALEN, between).answered) == (
        "information_collection",
        True,
    )
    now = _status(EWA, AALEN, after)
    assert (now.stage, now.answered, now.answers_complete) == ("summary_distribution", True, True)
    assert "Fragebogen fehlt" not in " ".join(now.reasons)

    with Session(get_engine()) as s:
        history = campaign_history(s, EWA, ags=AALEN, with_mail=False)
        enrolment = s.exec(
            select(Enrolment).where(Enrolment.campaign_id == EWA, Enrolment.ags == AALEN)
        ).one()
        assert enrolment.id is not None
        replayed = past_states(s, EWA, as_of=datetime.now(UTC))[enrolment.id]
        stage_events = s.exec(
            select(Event).where(Event.enrolment_id == enrolment.id, Event.kind == "stage_changed")
        ).all()
    kinds = [e.kind for e in history]
    assert [e.at for e in history] == sorted(e.at for e in history)
    assert kinds.index("answers_submitted") < kinds.index("stage_changed")  # by when, not entry
    assert kinds.count("answers_submitted") == 1
    answered = history[kinds.index("answers_submitted")]
    today = datetime.now(get_settings().zone).strftime("%d.%m.%Y")
    assert answered.what.endswith(f"(nachgetragen am {today})")
    assert answered.at == at("2024-07-01") and answered.recorded_at is not None
    moved = history[kinds.index("stage_changed")]
    assert "Frist der Informationserhebung am 09.07.2024 abgelaufen" in (moved.why or "")
    # the stored state and the replayed one agree; the stage history is not rewritten
    assert replayed.answers_complete is True and enrolment.answers_complete is True
    assert replayed.stage == enrolment.stage == "summary_distribution"
    assert len(stage_events) == 1


def test_prefect_form_received_at(session: Session, campaign_id: str) -> None:
    from flows.record_response import RecordResponseInput, record

    params = RecordResponseInput(
        campaign=campaign_id,
        ags=AALEN,
        answers=complete_ewa_answers(),
        submit=True,
        checklist_done=["interesse_bekundet"],
        author="Erika Mustermann",
        received_at=datetime(2025, 3, 5, 10, 0),  # local time, as the form sends it
    )
    record(params)
    events = _events(session, "answers_submitted") + _events(session, "checklist_item_done")
    assert [e.at.replace(tzinfo=UTC) for e in events] == [local("2025-03-05", 10)] * 2
    assert all("recorded_at" in e.data for e in events)
    future = params.model_copy(update={"received_at": datetime(2999, 1, 1)})
    with pytest.raises(UserError, match=r"Eingegangen am »2999-01-01 00:00:00«: .*Zukunft"):
        record(future)
