"""Coordinator entry on the command line: `efa response set/show/import`, `efa checklist`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from sqlmodel import Session, select
from test_collection_support import complete_ewa_answers, enrol, make_campaign
from typer.testing import CliRunner

from efa_rollout.cli.collection import checklist_app, response_app
from efa_rollout.errors import UserError
from efa_rollout.importers.validation import ImportErrors
from efa_rollout.services.answers import latest_response
from models import Enrolment, Event, QuestionnaireResponse

AALEN = "08136088"
ESSINGEN = "08136019"
BOPFINGEN = "08136010"

_runner = CliRunner()

# The two sub-apps as `efa` registers them (kept apart from the rest of the CLI).
app = typer.Typer()
app.add_typer(response_app, name="response")
app.add_typer(checklist_app, name="checklist")


@pytest.fixture
def cli(session: Session) -> Any:
    """Invoke the CLI after ending the test session's transaction (SQLite: BEGIN IMMEDIATE)."""

    def invoke(args: list[str]) -> Any:
        session.commit()
        return _runner.invoke(app, args)

    return invoke


@pytest.fixture
def campaign_id(session: Session) -> str:
    campaign, definition = make_campaign(session)
    for ags in (AALEN, ESSINGEN, BOPFINGEN):
        enrol(session, campaign, definition, ags)
    session.commit()
    return campaign.id


def _enrolment(session: Session, campaign_id: str, ags: str) -> Enrolment:
    session.expire_all()
    return session.exec(
        select(Enrolment).where(Enrolment.campaign_id == campaign_id, Enrolment.ags == ags)
    ).one()


def test_response_set_single_fields_then_submit(
    cli: Any, session: Session, campaign_id: str
) -> None:
    result = cli(
        [
            "response",
            "set",
            campaign_id,
            AALEN,
            "funktionspostfach=meldeamt@aalen.de",
            "projektleitung=name=Anna Muster;email=anna.muster@aalen.de;anrede=Frau",
            "wunsch_stichtag=15.07.2025",
            "--author",
            "Erika Mustermann",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Antworten von Aalen (08136088) gespeichert: Version 1 (Entwurf)" in result.output
    assert "Noch offene Pflichtangaben: kontakt_technik" in result.output
    enrolment = _enrolment(session, campaign_id, AALEN)
    response = latest_response(session, enrolment.id)
    assert response.answers["projektleitung"] == {
        "salutation": "Frau",
        "name": "Anna Muster",
        "email": "anna.muster@aalen.de",
    }
    assert response.answers["wunsch_stichtag"] == "2025-07-15"
    assert (response.source, response.author) == ("cli", "Erika Mustermann")

    rest = {
        k: v
        for k, v in complete_ewa_answers().items()
        if k not in ("funktionspostfach", "projektleitung", "wunsch_stichtag")
    }
    args = [f"{k}={_cli_value(v)}" for k, v in rest.items()]
    result = cli(["response", "set", campaign_id, AALEN, *args, "--submit"])
    assert result.exit_code == 0, result.output
    assert "Version 2 (eingereicht), vollständig: ja" in result.output
    enrolment = _enrolment(session, campaign_id, AALEN)
    assert enrolment.answers_complete is True
    event = session.exec(
        select(Event).where(Event.kind == "answers_submitted").order_by(Event.id.desc())  # type: ignore[union-attr]
    ).first()
    assert event is not None and event.data["source"] == "cli"
    assert "Ansprechpersonen übernommen" in result.output  # the directory took over the persons
    assert (
        "Hauptamt: Frau Anna Muster" in result.output
        and "Meldebehörde: Fritz Fach" in result.output
    )


def _cli_value(value: object) -> str:
    import json

    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)


def test_response_set_invalid_value_reports_in_german(
    cli: Any, session: Session, campaign_id: str
) -> None:
    result = cli(["response", "set", campaign_id, AALEN, "funktionspostfach=kein-postfach"])
    assert result.exit_code != 0
    assert isinstance(result.exception, UserError)
    rendered = result.exception.render()
    assert "es wurde nichts gespeichert" in rendered
    assert "Funktionspostfach der Meldebehörde (funktionspostfach): »kein-postfach«" in rendered
    assert session.exec(select(QuestionnaireResponse)).all() == []


def test_response_set_submit_incomplete_names_missing_fields(cli: Any, campaign_id: str) -> None:
    result = cli(
        ["response", "set", campaign_id, AALEN, "funktionspostfach=a@aalen.de", "--submit"],
    )
    assert isinstance(result.exception, UserError)
    assert "Projektleitung (projektleitung): Bitte füllen Sie dieses Pflichtfeld aus." in (
        result.exception.render()
    )


def test_response_set_bad_assignment_and_unknown_municipality(cli: Any, campaign_id: str) -> None:
    result = cli(["response", "set", campaign_id, AALEN, "funktionspostfach"])
    assert isinstance(result.exception, UserError)
    assert "hat nicht die Form feld=wert" in result.exception.message
    result = cli(["response", "set", campaign_id, "08136027", "offene_punkte=x"])
    assert isinstance(result.exception, UserError)
    assert "Hüttlingen (08136027) nimmt an der Kampagne" in result.exception.message


def test_response_show(cli: Any, campaign_id: str) -> None:
    cli(["response", "set", campaign_id, AALEN, "ewa_modul_bestellt=ja"])
    result = cli(["response", "show", campaign_id, AALEN])
    assert result.exit_code == 0, result.output
    assert "Version 1 (Entwurf)" in result.output
    assert "ewa_modul_bestellt" in result.output and " ja" in result.output
    as_json = cli(["response", "show", campaign_id, AALEN, "--json"])
    assert '"ewa_modul_bestellt": true' in as_json.output


def test_checklist_done_undo_and_show(cli: Any, session: Session, campaign_id: str) -> None:
    result = cli(
        ["checklist", "done", campaign_id, AALEN, "schulung", "--note", "12.06.", "--author", "EM"],
    )
    assert result.exit_code == 0, result.output
    assert "Aalen (08136088): »schulung« erledigt. Offene Pflichtpunkte: 10." in result.output
    assert _enrolment(session, campaign_id, AALEN).required_open == 10
    result = cli(["checklist", "show", campaign_id, AALEN])
    assert result.exit_code == 0, result.output
    assert "Schulung durchgeführt" in result.output and "12.06." in result.output
    result = cli(["checklist", "done", campaign_id, AALEN, "schulung", "--undo"])
    assert result.exit_code == 0, result.output
    assert "wieder geöffnet. Offene Pflichtpunkte: 11." in result.output
    assert _enrolment(session, campaign_id, AALEN).required_open == 11
    events = session.exec(select(Event).order_by(Event.id)).all()
    assert (events[0].kind, events[0].actor) == ("checklist_item_done", "EM")
    assert events[-1].kind == "checklist_item_reopened"


def test_checklist_unknown_item_lists_valid_keys(cli: Any, campaign_id: str) -> None:
    result = cli(["checklist", "done", campaign_id, AALEN, "schulungen"])
    assert isinstance(result.exception, UserError)
    assert "schulung, first_level_support" in result.exception.details[0]


# --- import ----------------------------------------------------------------------------------


def _write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="cp1252")
    return path


def test_import_csv_merges_and_is_idempotent(
    cli: Any, session: Session, campaign_id: str, tmp_path: Path
) -> None:
    cli(["response", "set", campaign_id, AALEN, "offene_punkte=Termin?"])
    path = _write_csv(
        tmp_path / "antworten.csv",
        [
            "AGS;Gemeinde;Funktionspostfach der Meldebehörde;meldesoftware;"
            "ewa_modul_bestellt;Projektleitung E-Mail;Projektleitung Name",
            "8136088;Aalen;meldeamt@aalen.de;OK.EWO;ja;anna@aalen.de;Anna Muster",
            "08136019;Essingen;buergerbuero@essingen.de;Andere Meldesoftware;nein;;",
        ],
    )
    result = cli(["response", "import", campaign_id, str(path)])
    assert result.exit_code == 0, result.output
    assert "1 hinzugefügt, 1 geändert, 0 unverändert" in result.output
    assert "Nicht übernommene Spalten: »Gemeinde«" in result.output
    aalen = latest_response(session, _enrolment(session, campaign_id, AALEN).id)
    assert aalen.version == 2 and aalen.source == "import"
    assert aalen.answers == {
        "projektleitung": {"name": "Anna Muster", "email": "anna@aalen.de"},
        "funktionspostfach": "meldeamt@aalen.de",
        "meldesoftware": "ok_ewo",
        "ewa_modul_bestellt": True,
        "offene_punkte": "Termin?",
    }
    essingen = latest_response(session, _enrolment(session, campaign_id, ESSINGEN).id)
    assert essingen.answers["meldesoftware"] == "votemanager_ewo"
    event = session.exec(
        select(Event).where(Event.ags == ESSINGEN, Event.kind == "answers_saved")
    ).one()
    assert event.reason == "Import aus »antworten.csv«, Zeile 3"
    assert event.data["source"] == "import"

    again = cli(["response", "import", campaign_id, str(path)])
    assert again.exit_code == 0, again.output
    assert "0 hinzugefügt, 0 geändert, 2 unverändert" in again.output


def test_import_is_all_or_nothing_with_line_numbers(
    cli: Any, session: Session, campaign_id: str, tmp_path: Path
) -> None:
    path = _write_csv(
        tmp_path / "antworten.csv",
        [
            "AGS;funktionspostfach;wunsch_stichtag;projektleitung",
            '08136088;meldeamt@aalen.de;15.07.2025;"name=Anna;email=anna@aalen.de"',
            "08136019;kaputt;;",
            "08136010;ok@bopfingen.de;31.02.2025;name=Bo",
            "08136027;x@huettlingen.de;;",
            "08136088;meldeamt@aalen.de;;",
            "9999;;;",
        ],
    )
    result = cli(["response", "import", campaign_id, str(path)])
    error = result.exception
    assert isinstance(error, ImportErrors)
    lines = error.details
    assert error.message.startswith("Die Datei »antworten.csv« enthält 6 Fehler in 5 Zeile(n).")
    assert (
        "antworten.csv, Zeile 3, Spalte »funktionspostfach«: »kaputt« – keine "
        "gültige E-Mail-Adresse (z. B. bauamt@gemeinde.de)"
    ) in lines
    assert any(
        line.startswith("antworten.csv, Zeile 4, Spalte »wunsch_stichtag«: »31.02.2025« – kein gül")
        for line in lines
    )
    assert "antworten.csv, Zeile 4, Spalte »projektleitung«: »name=Bo« – E-Mail fehlt" in lines
    assert any("Zeile 5" in line and "nimmt an der Kampagne" in line for line in lines)
    assert any("Zeile 6" in line and "auch in Zeile 2" in line for line in lines)
    assert any("Zeile 7" in line and "Gemeindeschlüssel" in line for line in lines)
    assert session.exec(select(QuestionnaireResponse)).all() == []


def test_import_unknown_column_refused(cli: Any, campaign_id: str, tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "a.csv", ["AGS;funktionspostfach;Meldesoftwarre", "08136088;a@b.de;x"]
    )
    result = cli(["response", "import", campaign_id, str(path)])
    assert isinstance(result.exception, ImportErrors)
    assert result.exception.details[0].startswith("a.csv, Zeile 1, Spalte »Meldesoftwarre« – ")
    assert "unbekannte Spalte" in result.exception.details[0]


def test_import_without_ags_column(cli: Any, campaign_id: str, tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "a.csv", ["Gemeinde;funktionspostfach", "Aalen;a@b.de"])
    result = cli(["response", "import", campaign_id, str(path)])
    assert isinstance(result.exception, UserError)
    assert "fehlt die Spalte »AGS«" in result.exception.message


def test_import_submit_requires_complete_rows(
    cli: Any, session: Session, campaign_id: str, tmp_path: Path
) -> None:
    path = _write_csv(tmp_path / "a.csv", ["AGS;funktionspostfach", "08136088;a@aalen.de"])
    result = cli(["response", "import", campaign_id, str(path), "--submit"])
    assert isinstance(result.exception, ImportErrors)
    assert (
        "a.csv, Zeile 2, Spalte »Projektleitung« – Bitte füllen Sie dieses Pflichtfeld aus"
        in result.exception.details
    )


def test_import_xlsx_submits_complete_answers(
    cli: Any, session: Session, campaign_id: str, tmp_path: Path
) -> None:
    from openpyxl import Workbook

    answers = complete_ewa_answers()
    keys = list(answers)
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["AGS", *keys])
    for ags in (AALEN, ESSINGEN):
        row: list[object] = [int(ags)]  # Excel drops the leading zero
        for key in keys:
            value = answers[key]
            if isinstance(value, dict):
                value = ";".join(f"{k}={v}" for k, v in value.items())
            elif key == "ewa_modul_bestellt":
                value = True
            row.append(value)
        sheet.append(row)
    path = tmp_path / "antworten.xlsx"
    workbook.save(path)
    result = cli(["response", "import", campaign_id, str(path), "--submit"])
    assert result.exit_code == 0, result.output
    assert "2 hinzugefügt" in result.output
    for ags in (AALEN, ESSINGEN):
        enrolment = _enrolment(session, campaign_id, ags)
        assert enrolment.answers_complete is True
        response = latest_response(session, enrolment.id)
        assert response.status == "submitted" and response.answers["ewa_modul_bestellt"] is True
    assert _enrolment(session, campaign_id, BOPFINGEN).answers_complete is False
