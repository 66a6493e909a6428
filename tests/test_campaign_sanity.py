"""Campaign creation refuses what cannot work; close, cancel and delete are logged."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from efa_rollout.cli import app
from efa_rollout.db import get_engine, session_scope
from efa_rollout.definitions import get_definition
from efa_rollout.errors import UserError
from efa_rollout.services import campaigns
from models import Campaign, Enrolment, Event, OutboxMessage
from tests.conftest import BUILDING_AUTHORITIES, GV100AD
from tests.engine_fixtures import at

runner = CliRunner()


@pytest.fixture
def directory(efa_env: Path) -> Path:
    for path in (GV100AD, BUILDING_AUTHORITIES):
        args = ["municipalities", "import", str(path)]
        if path == GV100AD:
            args += ["--district", "08136"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    return efa_env


def _create(**kw: object) -> Campaign:
    values: dict[str, object] = {
        "definition": get_definition("viba-bw"),
        "area_code": "08136",
        "go_live": date(2025, 8, 1),
        "now": at("2024-04-01"),
        "actor": "test",
    }
    values.update(kw)
    with session_scope() as session:
        return campaigns.create_campaign(session, **values)  # type: ignore[arg-type]


def test_go_live_in_the_past_is_refused_unless_allowed(directory: Path) -> None:
    with pytest.raises(UserError, match=r"Go-Live 07\.11\.2018 liegt vor dem heutigen Tag"):
        _create(go_live=date(2018, 11, 7))
    campaign = _create(go_live=date(2018, 11, 7), allow_past=True, name="nachtrag")
    past = campaigns.past_dates(campaign, at("2024-04-01"))
    assert "Go-Live: 07.11.2018" in past and len(past) > 3


def test_dates_already_past_are_listed(directory: Path) -> None:
    campaign = _create()  # deadline 60 weeks, summary 58 weeks before go-live 01.08.2025
    assert campaigns.past_dates(campaign, at("2024-04-01")) == []
    assert campaigns.past_dates(campaign, at("2024-07-01")) == [
        "Frist Informationserhebung: 07.06.2024",  # as `efa campaign show` names it
        "Zusammenfassung: 21.06.2024",
    ]


def test_pilots_must_exist_and_be_in_the_target(directory: Path) -> None:
    with pytest.raises(UserError) as error:
        _create(pilots=["08136999", "08136088"])  # unknown; Aalen is its own building authority
    details = " ".join(error.value.details)
    assert "--pilot 08136999: keine Gemeinde" in details
    assert "--pilot 08136088 (Aalen): nicht in der Zielauswahl" in details
    with Session(get_engine()) as session:
        assert session.exec(select(Campaign)).all() == []


def test_empty_target_and_unknown_codes_are_refused(directory: Path) -> None:
    with pytest.raises(UserError, match="keine Gemeinden mit dem Schlüssel 08999"):
        _create(area_code="08999")
    with pytest.raises(UserError, match="keine Gemeinden mit dem Schlüssel 09"):
        _create(area_code="09")
    from efa_rollout.definitions import CampaignDefinition

    data = get_definition("viba-bw").model_dump(mode="json")
    data["target"]["where"] = {"baurechtsbehoerde": "niemand"}
    definition = CampaignDefinition.model_validate(data)
    with pytest.raises(UserError, match=r"trifft im Gebiet .* keine Gemeinde"):
        _create(definition=definition)


def test_cli_create_refuses_past_go_live_and_warns_of_past_dates(directory: Path) -> None:
    args = ["campaign", "create", "ewa", "--district", "08136", "--go-live", "2018-11-07"]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "--allow-past" in str(result.exception.details)  # type: ignore[union-attr]
    result = runner.invoke(app, [*args, "--allow-past"])
    assert result.exit_code == 0, result.output
    assert "Warnung: diese Termine liegen bereits in der Vergangenheit" in result.output
    assert "Go-Live: 07.11.2018" in result.output


def test_close_cancel_delete_are_logged(directory: Path) -> None:
    for name in ("a-kampagne", "b-kampagne", "c-kampagne"):
        _create(name=name)
    out = runner.invoke(app, ["campaign", "close", "a-kampagne", "--reason", "fertig"])
    assert out.exit_code == 0 and "abgeschlossen" in out.output
    out = runner.invoke(app, ["campaign", "cancel", "b-kampagne", "--reason", "verschoben"])
    assert out.exit_code == 0 and "abgebrochen" in out.output
    out = runner.invoke(app, ["campaign", "close", "b-kampagne", "--reason", "x"])
    assert "bereits abgebrochen" in str(out.exception)
    out = runner.invoke(app, ["campaign", "delete", "c-kampagne", "--yes"])
    assert out.exit_code == 0, out.output
    with Session(get_engine()) as session:
        assert session.get(Campaign, "a-kampagne").status == "closed"  # type: ignore[union-attr]
        assert session.get(Campaign, "b-kampagne").status == "cancelled"  # type: ignore[union-attr]
        assert session.get(Campaign, "c-kampagne") is None
        kinds = {
            (e.campaign_id, e.kind)
            for e in session.exec(select(Event).where(Event.kind.startswith("campaign_")))  # type: ignore[attr-defined]
        }
    assert {
        ("a-kampagne", "campaign_closed"),
        ("b-kampagne", "campaign_cancelled"),
        ("c-kampagne", "campaign_deleted"),
    } <= kinds


def test_delete_is_refused_once_a_mail_was_sent(directory: Path) -> None:
    _create(name="gesendet")
    with session_scope() as session:
        session.add(
            Enrolment(
                campaign_id="gesendet",
                ags="08136019",
                stage="information_collection",
                stage_entered_at=at("2024-04-02"),
            )
        )
        session.add(
            OutboxMessage(
                campaign_id="gesendet",
                ags="08136019",
                kind="information_request",
                sequence=1,
                message_id="<x@y.example>",
                sender="a@b.example",
                recipients=["c@d.example"],
                subject="s",
                raw=b"x",
                status="sent",
                queued_at=at("2024-04-02"),
            )
        )
    result = runner.invoke(app, ["campaign", "delete", "gesendet", "--yes"])
    assert result.exit_code != 0
    assert "bereits versandt" in str(result.exception)
    with Session(get_engine()) as session:
        assert session.get(Campaign, "gesendet") is not None
