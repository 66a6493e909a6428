"""`efa contacts import/list`: contacts keyed by AGS, role and e-mail, all or nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from conftest import GV100AD
from sqlalchemy import Engine, select
from sqlmodel import Session
from typer.testing import CliRunner

from efa_rollout.cli import directory
from efa_rollout.db import session_scope
from efa_rollout.errors import UserError
from efa_rollout.importers.contacts import import_contacts
from efa_rollout.importers.municipalities import import_municipalities
from efa_rollout.importers.validation import ImportErrors
from models.directory import Contact

app = typer.Typer()
app.add_typer(directory.municipalities_app, name="municipalities")
app.add_typer(directory.contacts_app, name="contacts")


def run(*args: str) -> tuple[int, str]:
    """Run `efa ARGS` like the console script does: UserErrors rendered, exit code returned."""
    result = CliRunner().invoke(app, list(args))
    if isinstance(result.exception, UserError):
        return result.exception.exit_code, result.output + result.exception.render()
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture
def directory(engine: Engine) -> Engine:
    """The engine, with the 42 municipalities of the Ostalbkreis imported."""
    with session_scope(engine) as session:
        import_municipalities(session, GV100AD, district="08136")
    return engine


def contacts(engine: Engine) -> list[dict[str, Any]]:
    """Every stored contact as a dict, ordered by id."""
    with Session(engine) as session:
        found = session.execute(select(Contact).order_by(Contact.id)).scalars()  # type: ignore[arg-type]
        return [c.model_dump() for c in found]


GOOD_CSV = (
    "AGS;Rolle;Anrede;Name;Funktion;E-Mail;Telefon;Funktionspostfach;Bemerkung\r\n"
    "8136088;Bauamt;Frau;Jana Müller;Sachgebietsleiterin;Jana.Mueller@Aalen.DE;07361 52-0;;\r\n"
    "8136088;Bauamt;;;;bauamt@aalen.de;;x;Postfach\r\n"
    "08136028;Meldebehörde;Herr;Jörg Weiß;Hauptamtsleiter;j.weiss@heubach.de;;nein;\r\n"
)


def test_contacts_import_list_and_reimport(directory: Engine, tmp_path: Path) -> None:
    path = tmp_path / "kontakte.csv"
    path.write_bytes(GOOD_CSV.encode("cp1252"))
    code, output = run("contacts", "import", str(path))
    assert code == 0, output
    assert "3 hinzugefügt, 0 geändert, 0 unverändert" in output
    assert "Nicht übernommene Spalten: »Bemerkung«." in output
    stored = contacts(directory)
    jana = stored[0]
    assert jana["ags"] == "08136088" and jana["role"] == "Bauamt"
    assert (jana["salutation"], jana["name"]) == ("Frau", "Jana Müller")
    assert jana["email"] == "Jana.Mueller@aalen.de"
    assert (jana["phone"], jana["is_shared_mailbox"]) == ("07361 52-0", False)
    assert jana["source"] == "kontakte.csv"
    mailbox = stored[1]
    assert mailbox["is_shared_mailbox"] is True
    assert (mailbox["salutation"], mailbox["name"]) == (None, None)
    assert stored[2]["name"] == "Jörg Weiß" and stored[2]["role"] == "Meldebehörde"

    code, output = run("contacts", "import", str(path))
    assert "0 hinzugefügt, 0 geändert, 3 unverändert" in output

    changed = GOOD_CSV.replace("07361 52-0", "07361 52-1234").replace(
        "Jana.Mueller@Aalen.DE", "jana.mueller@aalen.de"
    )
    path.write_bytes(changed.encode("cp1252"))
    code, output = run("contacts", "import", str(path))
    assert "0 hinzugefügt, 1 geändert, 2 unverändert" in output
    stored = contacts(directory)
    assert len(stored) == 3
    assert (stored[0]["phone"], stored[0]["email"]) == ("07361 52-1234", "jana.mueller@aalen.de")

    code, output = run("contacts", "list", "--ags", "8136088")
    assert code == 0, output
    assert "Jana Müller" in output and "bauamt@aalen.de" in output
    assert "Jörg Weiß" not in output
    assert "2 Ansprechperson(en)." in output
    code, output = run("contacts", "list", "--json")
    data = json.loads(output)
    assert [c["ags"] for c in data] == ["08136028", "08136088", "08136088"]
    assert data[0]["is_shared_mailbox"] is False


BAD_CSV = """\
AGS,Rolle,Anrede,Name,E-Mail,Funktionspostfach
08136088,Bauamt,Frau,Jana Müller,jana.mueller@aalen.de,nein
08136088,Bauamt,Frau,Jana Müller,jana.mueller@@aalen,nein
08136999,Bauamt,Herr,Max Muster,max@nirgendwo.de,nein
08136028,Bauamt,Dr.,Eva Roth,eva.roth@heubach.de,vielleicht
08136029,Bauamt,,,BAUAMT@heuchlingen.de,ja
08136029,Bauamt,,,bauamt@heuchlingen.de,ja
08136043,,,,info@moegglingen.de,ja
"""


def test_bad_contacts_fail_atomically_and_are_all_reported(
    directory: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "kontakte.csv"
    path.write_text(BAD_CSV, encoding="utf-8")
    code, output = run("contacts", "import", str(path))
    assert code == 1
    assert contacts(directory) == []
    assert "Es wurde nichts importiert" in output
    expected = [
        "kontakte.csv, Zeile 3, Spalte »E-Mail«: »jana.mueller@@aalen« – keine gültige"
        " E-Mail-Adresse",
        "kontakte.csv, Zeile 4, Spalte »AGS«: »08136999« – Gemeinde nicht im Verzeichnis",
        "kontakte.csv, Zeile 5, Spalte »Anrede«: »Dr.« – unbekannte Anrede",
        "kontakte.csv, Zeile 5, Spalte »Funktionspostfach«: »vielleicht« – kein gültiger"
        " Ja/Nein-Wert",
        "kontakte.csv, Zeile 6, Spalte »E-Mail«: »BAUAMT@heuchlingen.de« – Ansprechperson mit"
        " gleicher Gemeinde, Rolle und E-Mail mehrfach (Zeilen 6 und 7)",
        "kontakte.csv, Zeile 7, Spalte »E-Mail«: »bauamt@heuchlingen.de« – Ansprechperson mit"
        " gleicher Gemeinde, Rolle und E-Mail mehrfach (Zeilen 6 und 7)",
        "kontakte.csv, Zeile 8, Spalte »Rolle«: »« – Rolle fehlt",
    ]
    for line in expected:
        assert line in output, f"{line!r} missing in:\n{output}"
    assert "enthält 7 Fehler in 6 Zeile(n)" in output


def test_unknown_ags_is_reported_even_with_other_errors(directory: Engine, tmp_path: Path) -> None:
    path = tmp_path / "k.csv"
    path.write_text("AGS;Rolle;E-Mail\n8136998;Bauamt;kein-at-zeichen\n", encoding="utf-8")
    with pytest.raises(ImportErrors) as caught, session_scope(directory) as session:
        import_contacts(session, path)
    reasons = [(e.line, e.column, e.reason.split(" ")[0]) for e in caught.value.errors]
    assert reasons == [(2, "AGS", "Gemeinde"), (2, "E-Mail", "keine")]


def test_xlsx_contacts_with_first_and_last_name(directory: Engine, tmp_path: Path) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Gemeindeschlüssel", "Role", "Salutation", "Vorname", "Nachname", "Email"])
    sheet.append([8136088, "eWA Projektleitung", "Herr", "Max", "Mustermann", "max@aalen.de"])
    path = tmp_path / "kontakte.xlsx"
    workbook.save(path)
    code, output = run("contacts", "import", str(path))
    assert code == 0, output
    stored = contacts(directory)
    assert len(stored) == 1
    assert (stored[0]["name"], stored[0]["role"]) == ("Max Mustermann", "eWA Projektleitung")
    assert stored[0]["salutation"] == "Herr"


def test_missing_required_columns(directory: Engine, tmp_path: Path) -> None:
    path = tmp_path / "k.csv"
    path.write_text("AGS;Name\n08136088;Jana\n", encoding="utf-8")
    code, output = run("contacts", "import", str(path))
    assert code == 1
    assert "fehlen die Spalten »Rolle«, »E-Mail«" in output


def test_list_without_contacts_and_bad_ags(directory: Engine) -> None:
    code, output = run("contacts", "list")
    assert code == 0 and "Keine Ansprechpersonen gefunden." in output
    code, output = run("contacts", "list", "--ags", "81X")
    assert code == 1 and "--ags: »81X«" in output
