"""`efa municipalities import/list`: GV100AD, Excel-style CSV and XLSX, all or nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import typer
from conftest import BUILDING_AUTHORITIES, GV100AD
from sqlalchemy import Engine, func, select
from sqlmodel import Session
from typer.testing import CliRunner

from efa_rollout.cli import directory
from efa_rollout.db import session_scope
from efa_rollout.errors import UserError
from efa_rollout.importers.municipalities import import_municipalities
from efa_rollout.importers.tabular import header_match_key, normalise_header
from efa_rollout.importers.validation import ImportErrors
from models.directory import Municipality

AUTHORITIES_CSV = BUILDING_AUTHORITIES
OSTALB = "08136"
CLI = (sys.executable, "-c", "from efa_rollout.cli import main; main()")


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


def rows(engine: Engine) -> dict[str, dict[str, Any]]:
    """Every stored municipality as a dict, keyed by AGS."""
    with Session(engine) as session:
        found = session.execute(select(Municipality)).scalars()
        return {m.ags: m.model_dump() for m in found}


def count(engine: Engine) -> int:
    """The number of stored municipalities."""
    with Session(engine) as session:
        return session.execute(select(func.count()).select_from(Municipality)).scalar_one()


def import_ostalb(engine: Engine) -> None:
    """Import the Ostalbkreis from the GV100AD file."""
    with session_scope(engine) as session:
        import_municipalities(session, GV100AD, district=OSTALB)


def gv100ad_count(prefix: str = "") -> int:
    """The number of record-60 lines in the GV100AD file whose AGS starts with PREFIX."""
    with GV100AD.open(encoding="utf-8") as handle:
        return sum(1 for line in handle if line[:2] == "60" and line[10:18].startswith(prefix))


def test_gv100ad_district_yields_the_42_municipalities(engine: Engine) -> None:
    code, output = run("municipalities", "import", str(GV100AD), "--district", OSTALB)
    assert code == 0, output
    assert "42 hinzugefügt, 0 geändert, 0 unverändert" in output
    stored = rows(engine)
    assert len(stored) == 42
    with AUTHORITIES_CSV.open(encoding="utf-8") as handle:
        expected_ags = {line.split(",", 1)[0] for line in handle.read().splitlines()[1:]}
    assert set(stored) == expected_ags
    aalen = stored["08136088"]
    assert aalen["name"] == "Aalen"
    assert aalen["official_name"] == "Aalen, Stadt"
    assert (aalen["type_code"], aalen["type_label"]) == ("67", "Große Kreisstadt")
    assert aalen["ars"] == "081365001088"
    assert aalen["association_code"] == "5001"
    assert aalen["association_name"] == "VVG der Stadt Aalen"
    assert (aalen["district_code"], aalen["district_name"]) == ("08136", "Ostalbkreis")
    assert (aalen["state_code"], aalen["state_name"]) == ("08", "Baden-Württemberg")
    assert (aalen["population"], aalen["postal_code"]) == (68816, "73430")
    assert aalen["source"] == GV100AD.name
    heubach = stored["08136028"]
    assert (heubach["name"], heubach["type_code"]) == ("Heubach", "63")
    assert heubach["association_name"] == "GVV Rosenstein"
    assert stored["08136019"]["name"] == "Ellwangen (Jagst)"
    assert stored["08136065"]["name"] == "Schwäbisch Gmünd"
    types = [m["type_code"] for m in stored.values()]
    assert (types.count("67"), types.count("63"), types.count("64")) == (3, 6, 33)


def test_reimport_reports_unchanged(engine: Engine) -> None:
    import_ostalb(engine)
    before = rows(engine)
    code, output = run("municipalities", "import", str(GV100AD), "--district", OSTALB)
    assert code == 0, output
    assert "0 hinzugefügt, 0 geändert, 42 unverändert" in output
    assert rows(engine) == before


def test_whole_file_imports_every_municipality_in_seconds(engine: Engine) -> None:
    started = time.perf_counter()
    with session_scope(engine) as session:
        result = import_municipalities(session, GV100AD)
    seconds = time.perf_counter() - started
    assert result.added == gv100ad_count() == 10_981
    assert count(engine) == 10_981
    assert seconds < 20, f"whole file took {seconds:.1f} s"
    stored = rows(engine)
    unincorporated = [m for m in stored.values() if m["type_code"] in ("65", "66")]
    assert len(unincorporated) == 208
    assert stored["11000000"]["name"] == "Berlin"
    with session_scope(engine) as session:
        again = import_municipalities(session, GV100AD)
    assert (again.added, again.changed, again.unchanged) == (0, 0, 10_981)


def test_state_filter(engine: Engine) -> None:
    code, output = run("municipalities", "import", str(GV100AD), "--state", "8")
    assert code == 0, output
    assert count(engine) == gv100ad_count("08")
    assert {m["state_code"] for m in rows(engine).values()} == {"08"}


def test_invalid_filters_are_refused(engine: Engine) -> None:
    code, output = run("municipalities", "import", str(GV100AD), "--district", "813X")
    assert code == 1
    assert "--district: »813X« ist kein Kreisschlüssel" in output
    code, output = run("municipalities", "import", str(GV100AD), "--state", "17")
    assert code == 1 and "--state" in output
    assert count(engine) == 0


def test_gv100ad_is_detected_by_content(engine: Engine, tmp_path: Path) -> None:
    with GV100AD.open(encoding="utf-8") as handle:
        lines = [line for line in handle if line[10:15] in ("08", "081", OSTALB)]
    copy = tmp_path / "export.csv"
    copy.write_text("".join(lines), encoding="utf-8")
    code, output = run("municipalities", "import", str(copy))
    assert code == 0, output
    assert "(GV100AD)" in output and "42 hinzugefügt" in output
    assert rows(engine)["08136028"]["association_name"] == "GVV Rosenstein"


def test_gv100ad_with_a_broken_line_imports_nothing(engine: Engine, tmp_path: Path) -> None:
    with GV100AD.open(encoding="utf-8") as handle:
        lines = [line for line in handle if line[10:15] == OSTALB]
    broken = next(i for i, line in enumerate(lines) if line.startswith("60"))
    lines[broken] = lines[broken][:10] + "0813X088" + lines[broken][18:]
    copy = tmp_path / "gv.txt"
    copy.write_text("".join(lines), encoding="utf-8")
    code, output = run("municipalities", "import", str(copy))
    assert code == 1
    assert f"gv.txt, Zeile {broken + 1}, Spalte »Gemeindeschlüssel (Zeichen 11–18)«" in output
    assert count(engine) == 0


def test_building_authority_csv_adds_attribute_keeping_names(engine: Engine) -> None:
    import_ostalb(engine)
    names_before = {ags: m["name"] for ags, m in rows(engine).items()}
    code, output = run("municipalities", "import", str(AUTHORITIES_CSV))
    assert code == 0, output
    assert "0 hinzugefügt, 42 geändert, 0 unverändert" in output
    stored = rows(engine)
    assert {ags: m["name"] for ags, m in stored.items()} == names_before
    assert stored["08136010"]["name"] == "Bopfingen"
    assert stored["08136010"]["official_name"] == "Bopfingen, Stadt"
    values = [m["attributes"]["baurechtsbehoerde"] for m in stored.values()]
    counts = {v: values.count(v) for v in set(values)}
    assert counts == {"landratsamt": 34, "eigene": 3, "vg_rosenstein": 5}
    assert stored["08136088"]["attributes"] == {"baurechtsbehoerde": "eigene"}
    assert stored["08136028"]["attributes"] == {"baurechtsbehoerde": "vg_rosenstein"}
    assert stored["08136088"]["source"] == AUTHORITIES_CSV.name
    assert stored["08136088"]["population"] == 68816

    code, output = run("municipalities", "import", str(AUTHORITIES_CSV))
    assert "0 hinzugefügt, 0 geändert, 42 unverändert" in output
    code, output = run("municipalities", "import", str(GV100AD), "--district", OSTALB)
    assert "0 hinzugefügt, 0 geändert, 42 unverändert" in output
    assert rows(engine)["08136088"]["attributes"] == {"baurechtsbehoerde": "eigene"}


BAD_CSV = """\
AGS;ARS;Name;Einwohner;Bemerkung
08136088;081365001088;Aalen, Stadt;70000;geändert
8136A88;;Irgendwo;10;
08136028;12345;Heubach, Stadt;10063;
08136029;081365006099;Heuchlingen;1872;
08136021;;Essingen;6503;
08136021;;Essingen;6503;
08136043;;;4500;
08136044;;Mutlangen;-5;
08136045;;Neresheim, Stadt;12,5;
17000001;;Nirgendwo;1;
08136999;;;;
"""


def test_bad_rows_leave_the_database_unchanged_and_are_all_reported(
    engine: Engine, tmp_path: Path
) -> None:
    import_ostalb(engine)
    before = rows(engine)
    path = tmp_path / "datei.csv"
    path.write_text(BAD_CSV, encoding="utf-8")
    code, output = run("municipalities", "import", str(path))
    assert code == 1
    assert rows(engine) == before
    assert "Die Datei »datei.csv« enthält 10 Fehler in 10 Zeile(n)" in output
    assert "Es wurde nichts importiert" in output
    expected = [
        "datei.csv, Zeile 3, Spalte »AGS«: »8136A88« – kein gültiger Gemeindeschlüssel"
        " (8 Ziffern erwartet)",
        "datei.csv, Zeile 4, Spalte »ARS«: »12345« – kein gültiger Regionalschlüssel"
        " (12 Ziffern erwartet)",
        "datei.csv, Zeile 5, Spalte »ARS«: »081365006099« – Regionalschlüssel passt nicht"
        " zum Gemeindeschlüssel »08136029«",
        "datei.csv, Zeile 6, Spalte »AGS«: »08136021« – Gemeindeschlüssel kommt mehrfach vor"
        " (Zeilen 6 und 7)",
        "datei.csv, Zeile 7, Spalte »AGS«: »08136021« – Gemeindeschlüssel kommt mehrfach vor"
        " (Zeilen 6 und 7)",
        "datei.csv, Zeile 8, Spalte »Name«: »« – Name fehlt",
        "datei.csv, Zeile 9, Spalte »Einwohner«: »-5« – keine gültige Einwohnerzahl",
        "datei.csv, Zeile 10, Spalte »Einwohner«: »12,5« – keine gültige Einwohnerzahl",
        "datei.csv, Zeile 11, Spalte »AGS«: »17000001« – kein gültiger Gemeindeschlüssel"
        " (Land 01–16 erwartet)",
        "datei.csv, Zeile 12, Spalte »Name«: »« – Name fehlt",
    ]
    for line in expected:
        assert line in output, f"{line!r} missing in:\n{output}"


def test_error_report_shows_fifty_and_counts_the_rest(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "viele.csv"
    body = "".join(f"08136{i:03d};X\n" for i in range(60))
    path.write_text("AGS;Einwohner\n" + body, encoding="utf-8")
    with pytest.raises(ImportErrors) as caught, session_scope(engine) as session:
        import_municipalities(session, path)
    error = caught.value
    assert len(error.errors) == 60
    assert len(error.details) == 51
    assert error.details[-1] == "… und 10 weitere Fehler"
    assert error.details[0].startswith("viele.csv, Zeile 2, Spalte »Einwohner«: »X«")
    assert count(engine) == 0


def test_console_script_prints_the_report_and_exits_1(efa_env: Path, tmp_path: Path) -> None:
    path = tmp_path / "datei.csv"
    path.write_text("AGS,Name\n8136A88,Aalen\n", encoding="utf-8")
    env = {**os.environ, "EFA_DATA_DIR": str(efa_env)}
    done = subprocess.run(
        [*CLI, "municipalities", "import", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Fehler: Die Datei »datei.csv« enthält 1 Fehler" in done.stderr
    assert "datei.csv, Zeile 2, Spalte »AGS«: »8136A88« – kein gültiger Gemeindeschlüssel" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr


def test_cp1252_semicolon_file_with_seven_digit_ags(engine: Engine, tmp_path: Path) -> None:
    import_ostalb(engine)
    path = tmp_path / "gemeinden.csv"
    text = (
        "Gemeindeschlüssel;Gemeinde;Einwohner;Baurechtsbehörde\r\n"
        "8136065;Schwäbisch Gmünd, Stadt;61.137;eigene\r\n"
        "8136009;Böbingen an der Rems;4691;vg_rosenstein\r\n"
        ";;;\r\n"
    )
    path.write_bytes(text.encode("cp1252"))
    code, output = run("municipalities", "import", str(path))
    assert code == 0, output
    assert "0 hinzugefügt, 2 geändert" in output
    stored = rows(engine)
    gmuend = stored["08136065"]
    assert gmuend["name"] == "Schwäbisch Gmünd"
    assert gmuend["official_name"] == "Schwäbisch Gmünd, Stadt"
    assert gmuend["population"] == 61137
    assert (gmuend["district_code"], gmuend["state_code"]) == ("08136", "08")
    assert gmuend["state_name"] == "Baden-Württemberg"
    assert gmuend["attributes"] == {"baurechtsbehoerde": "eigene"}
    assert stored["08136009"]["name"] == "Böbingen an der Rems"


def test_utf8_bom_comma_file_with_english_headers(engine: Engine, tmp_path: Path) -> None:
    import_ostalb(engine)
    path = tmp_path / "export.csv"
    text = (
        ' ags ,Name,Population,Building Authority\n8136010,"Bopfingen, Stadt",11800,landratsamt\n'
    )
    path.write_text(text, encoding="utf-8-sig")
    code, output = run("municipalities", "import", str(path))
    assert code == 0, output
    assert "0 hinzugefügt, 1 geändert, 0 unverändert" in output
    stored = rows(engine)
    bopfingen = stored["08136010"]
    assert bopfingen["name"] == "Bopfingen"
    assert bopfingen["population"] == 11800
    assert bopfingen["attributes"] == {"building_authority": "landratsamt"}
    assert bopfingen["type_label"] == "Stadt"


def test_xlsx_with_numeric_ags(engine: Engine, tmp_path: Path) -> None:
    from openpyxl import Workbook

    import_ostalb(engine)
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["AGS", "Name", "Einwohner", "Ansprechpartner Bauamt", "Pilot"])
    sheet.append([8136088, "Aalen, Stadt", 68816, "Frau Muster", True])
    sheet.append([8136043.0, "Mögglingen", 4500, None, False])
    path = tmp_path / "liste.xlsx"
    workbook.save(path)
    code, output = run("municipalities", "import", str(path))
    assert code == 0, output
    assert "(Excel)" in output and "0 hinzugefügt, 2 geändert" in output
    stored = rows(engine)
    assert stored["08136088"]["name"] == "Aalen"
    assert stored["08136088"]["population"] == 68816
    assert stored["08136088"]["attributes"] == {
        "ansprechpartner_bauamt": "Frau Muster",
        "pilot": "ja",
    }
    assert stored["08136043"]["name"] == "Mögglingen"
    code, output = run("municipalities", "import", str(path))
    assert "0 hinzugefügt, 0 geändert, 2 unverändert" in output


def test_csv_district_filter_skips_other_rows(engine: Engine, tmp_path: Path) -> None:
    import_ostalb(engine)
    path = tmp_path / "mix.csv"
    path.write_text("AGS,Name\n08136088,Aalen neu\n08111000,Stuttgart\n", encoding="utf-8")
    code, output = run("municipalities", "import", str(path), "--district", OSTALB)
    assert code == 0, output
    assert "1 geändert" in output and "1 außerhalb der Auswahl übersprungen" in output
    assert "08111000" not in rows(engine)


def test_a_table_cannot_add_a_municipality(engine: Engine, tmp_path: Path) -> None:
    import_ostalb(engine)
    path = tmp_path / "neu.csv"
    path.write_text("AGS,Einwohner,Name\n08136088,70000,\n08136999,5,Erfunden\n", encoding="utf-8")
    code, output = run("municipalities", "import", str(path))
    assert code == 1
    assert (
        "neu.csv, Zeile 3: »08136999« – Gemeinde nicht im amtlichen Gemeindeverzeichnis" in output
    )
    assert "08136999" not in rows(engine)
    assert rows(engine)["08136088"]["population"] == 68816


def test_missing_ags_column_is_reported(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "ohne.csv"
    path.write_text("Name;Einwohner\nAalen;1\n", encoding="utf-8")
    code, output = run("municipalities", "import", str(path))
    assert code == 1
    assert "fehlt die Spalte »AGS«" in output and "»Name«, »Einwohner«" in output


def test_missing_file_is_reported(engine: Engine, tmp_path: Path) -> None:
    code, output = run("municipalities", "import", str(tmp_path / "nichts.csv"))
    assert code == 1 and "wurde nicht gefunden" in output


def test_list_as_table_and_json(engine: Engine) -> None:
    import_ostalb(engine)
    code, output = run("municipalities", "list", "--district", OSTALB)
    assert code == 0, output
    assert "08136088  Aalen" in output
    assert "GVV Rosenstein" in output and "68.816" in output
    assert "42 Gemeinde(n)." in output
    code, output = run("municipalities", "list", "--state", "08", "--json")
    data = json.loads(output)
    assert len(data) == 42
    assert data[0]["ags"] == "08136002" and data[0]["state_name"] == "Baden-Württemberg"
    code, output = run("municipalities", "list", "--district", "08111")
    assert code == 0 and "Keine Gemeinden gefunden." in output


def test_list_does_not_import_prefect(engine: Engine) -> None:
    import_ostalb(engine)
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from efa_rollout.cli import directory\n"
        "r = CliRunner().invoke(directory.municipalities_app, ['list', '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(directory.contacts_app, ['list'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_header_normalisation() -> None:
    assert normalise_header("Baurechtsbehörde") == "baurechtsbehoerde"
    assert normalise_header("  Ansprechpartner (Bauamt) ") == "ansprechpartner_bauamt"
    keys = {
        header_match_key(h)
        for h in ("Gemeindeschlüssel", "gemeindeschluessel", " GEMEINDESCHLUSSEL")
    }
    assert len(keys) == 1
    assert header_match_key("E-Mail") == header_match_key("email")


def test_separator_hint_and_rows_changing_different_columns(engine: Engine, tmp_path: Path) -> None:
    import_ostalb(engine)
    path = tmp_path / "hinweis.csv"
    text = (
        "sep=;\n"
        "AGS;Einwohner;PLZ;Pilot\n"
        "08136088;70000;;ja\n"
        "08136028;;73541;\n"
        "08136029;1872;;\n"
        "8136A88;;;\n"
    )
    path.write_text(text, encoding="utf-8")
    code, output = run("municipalities", "import", str(path))
    assert code == 1
    assert "hinweis.csv, Zeile 6, Spalte »AGS«: »8136A88«" in output
    path.write_text(text.rsplit("8136A88", 1)[0], encoding="utf-8")
    code, output = run("municipalities", "import", str(path))
    assert code == 0, output
    assert "0 hinzugefügt, 2 geändert, 1 unverändert" in output
    stored = rows(engine)
    assert stored["08136088"]["population"] == 70000
    assert stored["08136088"]["postal_code"] == "73430"
    assert stored["08136088"]["attributes"] == {"pilot": "ja"}
    assert stored["08136028"]["population"] == 10063
    assert stored["08136028"]["postal_code"] == "73541"
    assert stored["08136028"]["attributes"] == {}
