"""Report files: XLSX, CSV, Markdown and HTML from the known campaign, the CLI, the weekly mail."""

from __future__ import annotations

import csv
import email
import io
import shutil
import subprocess
import sys
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlmodel import Session, select
from typer.testing import CliRunner

from efa_rollout.reports import campaign_rollup, district_overview
from efa_rollout.reports.files import render_campaign, render_overview
from efa_rollout.reports.model import CampaignRollup
from models import Enrolment, Municipality, OutboxMessage
from tests.test_reports import AS_OF, Builder, build_known_campaign, utc

SHEETS = [
    "Überblick",
    "Gemeinden",
    "Überfällig",
    "Verbände",
    "Rollen",
    "Kreise",
    "Verlauf",
    "Mailfehler",
    "Geschichte",
]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REPO_ROOT = Path(__file__).resolve().parent.parent


def add_history(b: Builder) -> None:
    """Enrolled and stage-change events for every enrolment, so the burn-up has a history."""
    order = ["information_collection", "summary_distribution", "checklist_follow_up", "go_live"]
    for number, enrolment in enumerate(b.session.exec(select(Enrolment)).all()):
        assert enrolment.id is not None
        b.event(enrolment.id, "enrolled", order[0], utc(2025, 3, 1, 9))
        reached = order.index(enrolment.stage) if enrolment.stage in order else 0
        for step in range(1, reached + 1):
            when = utc(2025, 3, 1, 9) + timedelta(days=10 * step + number)
            b.event(enrolment.id, "stage_changed", order[step], when, order[step - 1])
    b.session.commit()


@pytest.fixture
def rollup(session: Session) -> CampaignRollup:
    """The known campaign with an event history and a name that needs escaping."""
    b = build_known_campaign(session)
    add_history(b)
    aalen = session.get(Municipality, "08136088")
    assert aalen is not None
    aalen.name = "Aalen <b>&</b>"
    session.add(aalen)
    session.commit()
    return campaign_rollup(session, b.campaign_id, as_of=AS_OF)


def test_xlsx_has_every_view_with_filters_frozen_headers_and_real_dates(
    rollup: CampaignRollup,
) -> None:
    book = load_workbook(io.BytesIO(render_campaign(rollup, "xlsx")))
    assert book.sheetnames == SHEETS
    for name in SHEETS:
        sheet = book[name]
        assert sheet.freeze_panes == "A2", name
        assert sheet.auto_filter.ref and sheet.auto_filter.ref.startswith("A1:"), name
        assert sheet["A1"].font.bold, name
    municipalities = book["Gemeinden"]
    headers = [c.value for c in municipalities[1]]
    assert municipalities.max_row == 9  # header + 8 municipalities
    assert (
        municipalities.auto_filter.ref
        == f"A1:{municipalities.cell(1, len(headers)).column_letter}9"
    )
    assert municipalities.column_dimensions["B"].width == 28
    first = {h: c for h, c in zip(headers, municipalities[2], strict=True)}
    assert first["Gemeinde"].value == "Aalen <b>&</b>"
    assert first["In Stufe seit"].is_date
    assert first["In Stufe seit"].number_format == "DD.MM.YYYY"
    assert (
        first["In Stufe seit"].value.date().isoformat() == "2025-03-21"
    )  # as the event log says (add_history)
    assert first["Ampel"].value == "Gelb" and first["Überfällig"].value == 1
    overdue = book["Überfällig"]
    assert [c.value for c in overdue[2]][1:3] == ["Bopfingen", "Kontakte gemeldet"]
    assert overdue["G2"].is_date and overdue["H2"].value == 57
    timeline = book["Verlauf"]
    assert timeline["A2"].is_date and timeline["A2"].number_format == "DD.MM.YYYY"
    assert timeline.max_row == 1 + 81  # 01.03. to 20.05.2025
    summary = {row[0].value: row[1] for row in book["Überblick"].iter_rows(min_row=2)}
    assert summary["Stand"].is_date and summary["Go-Live"].number_format == "DD.MM.YYYY"
    assert summary["Stufe: Checklisten-Nachverfolgung"].value == 3
    mail = book["Mailfehler"]
    assert mail.max_row == 3 and mail["G2"].is_date
    assert mail["G2"].number_format == "DD.MM.YYYY HH:MM"
    assert mail["G2"].value.isoformat() == "2025-05-10T10:00:00"  # local time, naive for Excel


def test_csv_is_excel_friendly(rollup: CampaignRollup) -> None:
    data = render_campaign(rollup, "csv")
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:3] == ["AGS", "Gemeinde", "Verband"]
    assert len(rows) == 9
    aalen = dict(zip(rows[0], rows[1], strict=True))
    assert aalen["AGS"] == "08136088"  # leading zero kept
    assert aalen["In Stufe seit"] == "21.03.2025"  # as the event log says (add_history)
    assert aalen["Fragebogen beantwortet"] == "ja"
    assert aalen["Gründe"] == "1 Punkt überfällig (freiwillig)"


def test_markdown_summary(rollup: CampaignRollup) -> None:
    text = render_campaign(rollup, "md").decode("utf-8")
    assert text.startswith("# Statusbericht: Testdienst – Einführung")
    assert "Stand: 20.05.2025" in text
    assert "| Checklisten-Nachverfolgung | 3 | 37,5 % |" in text
    assert "| Rot | 3 |" in text
    assert (
        "## Überfällige Punkte" in text and "| Bopfingen (08136010) | Kontakte gemeldet |" in text
    )
    assert "Statistisches Bundesamt" in text


def test_html_parses_strictly_escapes_and_embeds_charts(rollup: CampaignRollup) -> None:
    import html5lib

    page = render_campaign(rollup, "html").decode("utf-8")
    html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(page)
    assert page.count("<svg ") == 2
    assert 'id="burnup"' in page and 'id="stages"' in page
    assert "Aalen &lt;b&gt;&amp;&lt;/b&gt;" in page and "<b>&</b>" not in page
    assert "@media print" in page and 'name="viewport"' in page
    for text in ("Legende der Ampel", "Überfällige Checklistenpunkte", "Mailfehler"):
        assert text in page
    # every light carries its name as text, not colour alone
    assert page.count('class="light light-red"') >= 4
    assert '<span class="dot" aria-hidden="true"></span>Rot</span>' in page
    ids = [part.split('"', 1)[0] for part in page.split(' id="')[1:]]
    assert len(ids) == len(set(ids)), "element ids must be unique across both charts"


def test_district_overview_files(session: Session) -> None:
    build_known_campaign(session)
    overview = district_overview(session, area_code="08136")
    page = render_overview(overview, "html").decode("utf-8")
    import html5lib

    html5lib.HTMLParser(strict=True).parse(page)
    assert "Übersicht aller Kampagnen: Ostalbkreis" in page
    assert "Informationserhebung (pausiert)" in page
    book = load_workbook(io.BytesIO(render_overview(overview, "xlsx")))
    assert book.sheetnames == ["Kampagnen", "Gemeinden"]
    grid = book["Gemeinden"]
    assert grid.freeze_panes == "A2" and grid.auto_filter.ref == "A1:E8"
    assert [c.value for c in grid[2]] == [
        "08136088",
        "Aalen",
        None,
        "Ostalbkreis",
        "Checklisten-Nachverfolgung",
    ]


def test_cli_writes_report_to_default_path_and_prints_it(session: Session, efa_env: Path) -> None:
    from efa_rollout.cli import app

    build_known_campaign(session)
    runner = CliRunner()
    result = runner.invoke(
        app, ["report", "test-ostalb", "--format", "xlsx", "--as-of", "20.05.2025"]
    )
    assert result.exit_code == 0, result.output
    path = Path(result.output.strip())
    assert path == (efa_env / "reports" / "test-ostalb-2025-05-20.xlsx").resolve()
    assert load_workbook(path).sheetnames == SHEETS

    out = efa_env / "eigener" / "bericht.csv"
    result = runner.invoke(app, ["report", "test-ostalb", "-f", "csv", "--out", str(out)])
    assert result.exit_code == 0 and out.read_bytes().startswith(b"\xef\xbb\xbf")

    result = runner.invoke(
        app, ["report", "--overview", "--area", "08136", "--as-of", "2025-05-20"]
    )
    assert result.exit_code == 0, result.output
    assert Path(result.output.strip()).name == "uebersicht-08136-2025-05-20.html"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "test-ostalb", "--format", "pdf"], "Unbekanntes Format »pdf«"),
        (["report", "--overview", "--format", "csv"], "Die Übersicht gibt es als html oder xlsx"),
        (["report"], "Bitte eine Kampagne angeben"),
        (["report", "gibt-es-nicht"], "Die Kampagne »gibt-es-nicht« gibt es nicht"),
    ],
)
def test_cli_errors_are_german_and_clear(session: Session, args: list[str], message: str) -> None:
    from efa_rollout.cli import app
    from efa_rollout.errors import UserError

    build_known_campaign(session)
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, UserError)
    assert message in result.exception.message


def test_reports_do_not_import_prefect() -> None:
    code = (
        "import sys\n"
        "import efa_rollout.reports, efa_rollout.reports.html, efa_rollout.reports.xlsx\n"
        "import efa_rollout.reports.text, efa_rollout.reports.weekly, efa_rollout.reports.charts\n"
        "assert not any(m == 'prefect' or m.startswith('prefect.') for m in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_weekly_mail_is_queued_once_per_week_with_attachments(
    session: Session, rollup: CampaignRollup, tmp_path: Path
) -> None:
    from efa_rollout.reports.weekly import build_weekly_report, queue_weekly_mail, week_sequence

    _, report = build_weekly_report(session, rollup.campaign_id, as_of=AS_OF, out_dir=tmp_path)
    assert sorted(p.name for p in report.files.values()) == [
        "test-ostalb-2025-05-20.html",
        "test-ostalb-2025-05-20.md",
        "test-ostalb-2025-05-20.xlsx",
    ]
    files = {fmt: report.files[fmt] for fmt in ("html", "xlsx")}
    row = queue_weekly_mail(session, rollup, files, now=AS_OF)
    session.commit()
    assert row is not None and row.kind == "weekly_report" and row.ags is None
    assert row.sequence == week_sequence(AS_OF) == 202521
    assert queue_weekly_mail(session, rollup, files, now=AS_OF + timedelta(days=2)) is None
    message = email.message_from_bytes(row.raw, policy=email.policy.SMTP)
    assert isinstance(message, EmailMessage)
    assert "Wochenbericht" in str(message["Subject"])
    names = sorted(part.get_filename() for part in message.iter_attachments())
    assert names == ["test-ostalb-2025-05-20.html", "test-ostalb-2025-05-20.xlsx"]
    xlsx = next(p for p in message.iter_attachments() if p.get_filename().endswith(".xlsx"))
    assert load_workbook(io.BytesIO(xlsx.get_content())).sheetnames == SHEETS
    body = message.get_body(("plain",))
    assert body is not None and "Bartholomä" in body.get_content()
    stored = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "weekly_report")).all()
    assert len(stored) == 1
    # the coordinator's mail is no municipality's mail: the roll-up ignores it
    again = campaign_rollup(session, rollup.campaign_id, as_of=AS_OF + timedelta(days=1))
    assert len(again.failed_mail) == 2


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_headless_chromium_renders_the_report(rollup: CampaignRollup, tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    from screenshot_report import screenshot

    page = tmp_path / "bericht.html"
    page.write_bytes(render_campaign(rollup, "html"))
    png = screenshot(page, tmp_path / "bericht.png", width=1200, height=2000)
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 50_000


def test_a_campaign_without_enrolments_renders_in_every_format(session: Session) -> None:
    b = Builder(session, campaign_id="leer")
    b.campaign()
    session.commit()
    empty = campaign_rollup(session, "leer", as_of=AS_OF)
    assert empty.total == 0 and all(s.count == 0 for s in empty.stages.values())
    assert empty.timeline == [] and empty.lights == {"red": 0, "yellow": 0, "green": 0, "grey": 0}
    for fmt in ("html", "xlsx", "csv", "md"):
        assert render_campaign(empty, fmt)
    page = render_campaign(empty, "html").decode("utf-8")
    assert "Noch keine Ereignisse im Protokoll." in page and page.count("<svg ") == 1


def test_weekly_mail_hands_attachments_to_the_outbox_when_it_takes_them(
    session: Session, rollup: CampaignRollup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from efa_rollout.reports.weekly import queue_weekly_mail
    from efa_rollout.services import outbox

    seen: dict[str, object] = {}

    def queue_coordinator_mail(session: Session, *, attachments: list, **kwargs: object) -> None:
        seen.update(kwargs, attachments=attachments)

    monkeypatch.setattr(outbox, "queue_coordinator_mail", queue_coordinator_mail)
    page = tmp_path / "bericht.html"
    page.write_text("<p>Bericht</p>", encoding="utf-8")
    assert queue_weekly_mail(session, rollup, {"html": page}, now=AS_OF) is None
    assert seen["attachments"] == [("bericht.html", b"<p>Bericht</p>", "text/html")]
    assert seen["kind"] == "weekly_report" and seen["sequence"] == 202521


def test_compiled_report_templates_are_kept_in_the_data_folder(
    rollup: CampaignRollup, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stat
    from datetime import UTC, datetime

    from jinja2 import Environment

    from efa_rollout.reports import html
    from efa_rollout.settings import get_settings

    monkeypatch.setattr(html, "_now", lambda: datetime(2025, 6, 2, 9, tzinfo=UTC))
    html.environment.cache_clear()
    first = render_campaign(rollup, "html")
    folder = get_settings().data_dir.resolve() / "cache" / "templates" / "reports-html"
    entries = list(folder.iterdir())
    assert len(entries) >= 3  # the report, its two charts
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in entries)
    compiled: list[str | None] = []
    original = Environment.compile

    def compile_counted(self: Environment, source: Any, name: str | None = None, *a: Any) -> Any:
        compiled.append(name)
        return original(self, source, name, *a)

    monkeypatch.setattr(Environment, "compile", compile_counted)
    html.environment.cache_clear()  # as in the next process: a new environment
    assert render_campaign(rollup, "html") == first
    assert compiled == []
