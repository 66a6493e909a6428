"""Reports at past dates are rebuilt from the event log: a campaign simulated from 2023 to 2025."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from efa_rollout.db import session_scope
from efa_rollout.demo.scenario import EWA, VIBA
from efa_rollout.reports.rollup import campaign_rollup
from tests.history_support import moment, run_timeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def simulated(
    tmp_path_factory: pytest.TempPathFactory, postgres_template: str | None
) -> Iterator[tuple[Path, dict]]:
    """One run of the demo's timeline (module scope: it takes a while), and the stored truth."""
    from efa_rollout import db as dbmod
    from efa_rollout.settings import get_settings
    from tests.conftest import _pg_admin, _pg_url

    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("history")
    data_dir = base / "data"
    mp.setenv("EFA_DATA_DIR", str(data_dir))
    mp.delenv("EFA_DATABASE_URL", raising=False)
    mp.delenv("EFA_SMTP_URL", raising=False)
    mp.delenv("EFA_MAIL_DIR", raising=False)
    database = None
    if postgres_template:  # the PostgreSQL run: a database of its own, from the template
        database = f"efa_hist_{os.getpid()}"
        _pg_admin(f"CREATE DATABASE {database} TEMPLATE {postgres_template}")
        mp.setenv("EFA_DATABASE_URL", _pg_url(database))
    mp.chdir(base)
    get_settings.cache_clear()
    dbmod.reset_engines()
    try:
        yield data_dir, run_timeline(data_dir)
    finally:
        mp.undo()
        get_settings.cache_clear()
        dbmod.reset_engines()
        if database:
            _pg_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def test_past_reports_show_the_stages_of_their_day(simulated: tuple[Path, dict]) -> None:
    """For every step of the timeline, the report as of that moment shows that moment's stages."""
    _, truth = simulated
    checked = 0
    for day, stored in truth.items():
        for campaign_id in (VIBA, EWA):
            expected = stored.get(campaign_id, {})
            with session_scope() as session:
                rollup = campaign_rollup(session, campaign_id, as_of=moment(day))
            shown = {m.ags: (m.stage, m.status) for m in rollup.municipalities}
            assert shown == expected, f"{campaign_id} am {day}"
            counted = {k: s.count for k, s in rollup.stages.items()}
            assert sum(counted.values()) == sum(1 for _, st in expected.values() if st == "active")
            checked += len(expected)
    assert checked > 500  # both campaigns over most of the 14 days


def test_the_day_after_viba_went_live(simulated: tuple[Path, dict]) -> None:
    """02.08.2024: ViBa BW is live everywhere, not 'Abgeschlossen', and no light is red for that."""
    with session_scope() as session:
        rollup = campaign_rollup(session, VIBA, as_of=moment(date(2024, 8, 2)))
    stages = {m.stage for m in rollup.municipalities}
    assert stages <= {"go_live", "after_care"}, stages
    assert rollup.status == "running"
    assert all(m.live_since == date(2024, 8, 1) for m in rollup.municipalities)
    pilots = [m for m in rollup.municipalities if m.is_pilot]
    assert [m.silent_since for m in pilots] == [date(2023, 11, 16)] * 2
    assert all(m.pilot_since == date(2023, 10, 26) for m in pilots)
    assert all("Fragebogen" not in " ".join(m.reasons) for m in rollup.municipalities)
    key = {k.key: k for k in rollup.key_dates}
    assert key["live_since"].first_reached == date(2024, 8, 1) and key["live_since"].reached == 34
    assert key["mandatory_since"].reached == 0
    assert key["mandatory_since"].planned == date.fromisoformat(rollup.dates["mandatory_from"])


def test_lights_never_contradict_the_stage(simulated: tuple[Path, dict]) -> None:
    """'Abgeschlossen' is never red or yellow, on any day of the timeline and after it."""
    _, truth = simulated
    days = [*truth, max(truth) + timedelta(days=200)]
    seen_completed = 0
    for day in days:
        for campaign_id in (VIBA, EWA):
            with session_scope() as session:
                rollup = campaign_rollup(session, campaign_id, as_of=moment(day))
            for m in rollup.municipalities:
                if m.stage == "completed":
                    seen_completed += 1
                    assert m.light == "green" and m.reasons == [], (day, m.name)
    with session_scope() as session:
        late = campaign_rollup(session, VIBA, as_of=moment(days[-1]))
    assert seen_completed == 0 or late.status in {"running", "completed"}


def test_history_lists_every_event_in_order(simulated: tuple[Path, dict]) -> None:
    """The history of one municipality: enrolled first, its stage moves, answers and ticks."""
    from efa_rollout.services.history import campaign_history

    with session_scope() as session:
        entries = campaign_history(session, VIBA, ags="08136021")  # Essingen, a pilot
    kinds = [e.kind for e in entries]
    assert kinds[0] == "enrolled"
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    moves = [e.what for e in entries if e.kind == "stage_changed"]
    assert any("Pilotphase" in w for w in moves) and any("Silent Go-Live" in w for w in moves)
    assert "checklist_item_done" in kinds
    attempts = [e for e in entries if e.kind == "mail_attempt"]
    assert attempts and all(
        e.what.startswith("Mail zugestellt: »") and "@" in e.what for e in attempts
    )
    assert all(e.ags == "08136021" and e.who for e in entries)


def _rollup(campaign_id: str, day: date, **kwargs: object):
    with session_scope() as session:
        return campaign_rollup(session, campaign_id, as_of=moment(day), **kwargs)  # type: ignore[arg-type]


def test_onepager_sentences_follow_the_date(simulated: tuple[Path, dict]) -> None:
    """The committee's sentences, generated from the data, phrase past and future as they are."""
    from efa_rollout.reports.onepager import campaign_onepager, status_sentences

    before = status_sentences(_rollup(VIBA, date(2023, 5, 15)))
    assert before[0] == (
        "ViBa BW geht am 01.08.2024 in 34 Gemeinden in Betrieb; die Pilotgemeinden Essingen und "
        "Hüttlingen starten am 16.11.2023 mit dem Silent Go-Live; ab 01.01.2025 wird die "
        "digitale Antragstellung verpflichtend."
    )
    assert before[1].endswith("die Rückmeldefrist läuft bis zum 31.05.2023.")
    live = _rollup(VIBA, date(2024, 8, 2))
    assert status_sentences(live)[0] == (
        "ViBa BW ist seit 01.08.2024 in 34 Gemeinden in Betrieb; die Pilotgemeinden Essingen und "
        "Hüttlingen arbeiten seit dem Silent Go-Live am 16.11.2023 damit; ab 01.01.2025 wird die "
        "digitale Antragstellung verpflichtend."
    )
    later = status_sentences(_rollup(VIBA, date(2025, 1, 3)))
    assert "seit 01.01.2025 ist die digitale Antragstellung verpflichtend" in later[0]
    ewa = _rollup(EWA, date(2024, 10, 2))
    live_ewa = sum(1 for m in ewa.municipalities if m.live_since)
    assert 0 < live_ewa < 42
    assert status_sentences(ewa)[0] == (
        f"eWA ist seit 01.10.2024 in {live_ewa} von 42 Gemeinden in Betrieb."
    )
    page = campaign_onepager(live)
    assert page.columns == [
        "Gemeinde",
        "Stufe",
        "Pilot seit",
        "Silent Go-Live",
        "Live seit",
        "Verpflichtend ab",
    ]
    essingen = next(row for row in page.rows if row[0] == "Essingen")
    assert essingen[2:] == ["26.10.2023", "16.11.2023", "01.08.2024", "–"]
    assert page.milestones[0][0] > live.today and page.chart is not None
    assert page.open_rows and all(o.open >= o.overdue for o in page.open_rows)


def test_district_onepager_and_overview(simulated: tuple[Path, dict]) -> None:
    """The district's page: its name, one sentence per campaign, dates in every cell."""
    from efa_rollout.reports.onepager import district_onepager
    from efa_rollout.reports.overview import district_overview

    day = date(2024, 10, 2)
    with session_scope() as session:
        overview = district_overview(session, as_of=moment(day))
    assert overview.area_name == "Ostalbkreis"
    essingen = next(r for r in overview.rows if r.ags == "08136021")
    assert essingen.cells[VIBA].dates_text == (
        "Pilot seit 26.10.2023; Silent Go-Live 16.11.2023; Live seit 01.08.2024"
    )
    viba = next(c for c in overview.campaigns if c.id == VIBA)
    assert viba.mandatory_from == date(2025, 1, 1) and viba.go_live == date(2024, 8, 1)
    rollups = [_rollup(VIBA, day), _rollup(EWA, day)]
    page = district_onepager(rollups, overview.area_name, day)
    assert [s.split(" ")[0] for s in page.sentences] == ["ViBa", "eWA"]
    assert page.columns == ["Gemeinde", "ViBa BW", "eWA"]
    assert len(page.rows) == 42


def test_history_cli_and_pdf(simulated: tuple[Path, dict], tmp_path: Path) -> None:
    """`efa history` lists a municipality's events; the one-pager PDF is one A4 page of today."""
    import shutil
    from datetime import UTC, datetime

    from pypdf import PdfReader
    from typer.testing import CliRunner

    from efa_rollout.cli import app

    result = CliRunner().invoke(app, ["history", VIBA, "08136021", "--as-of", "2024-08-02"])
    assert result.exit_code == 0, result.output
    assert "Stufenwechsel: Pilotphase → Silent Go-Live" in result.output
    assert "von: go-live" in result.output and "02.01.2025" not in result.output
    bad = CliRunner().invoke(app, ["history", VIBA, "0813602"])
    assert bad.exit_code != 0 and "Gemeindeschlüssel" in str(bad.exception)
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed")
    out = tmp_path / "onepager.pdf"
    result = CliRunner().invoke(
        app, ["report", VIBA, "--format", "onepager-pdf", "--as-of", "2024-08-02", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    reader = PdfReader(out)
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)  # A4 in points
    text = reader.pages[0].extract_text()
    assert "Sachstandsbericht ViBa BW" in text and "Essingen" in text
    created = reader.metadata.creation_date
    assert created is not None and created.year == datetime.now(UTC).year


@pytest.mark.parametrize("stage", ["completed", "go_live", "mandatory"])
def test_light_legend_bounds_the_stage(stage: str) -> None:
    """Completed is green whatever is open; once live, a missing questionnaire is no reason."""
    from efa_rollout.reports.lights import judge
    from efa_rollout.reports.model import MunicipalityStatus

    m = MunicipalityStatus(
        ags="08136021", name="Essingen", association_code=None, association_name=None,
        district_code="08136", district_name="Ostalbkreis", role=None, is_pilot=False,
        status="active", status_label="aktiv", stage=stage, stage_label=stage,
        stage_entered=date(2025, 1, 2), days_in_stage=0, go_live=date(2024, 8, 1),
        items_total=3, items_open=2, items_overdue=2, required_overdue=2,
        contacts=1, working_contacts=1,
    )  # fmt: skip
    light, reasons = judge(m, today=date(2025, 2, 1), deadline=date(2023, 5, 31))
    if stage == "completed":
        assert (light, reasons) == ("green", [])
    else:
        assert light == "red" and reasons == ["2 Punkte überfällig (Pflicht)"]


def test_report_shows_history_and_dates(simulated: tuple[Path, dict]) -> None:
    """HTML: the history per municipality and its dates; XLSX: the same as columns and a sheet."""
    import io

    from openpyxl import load_workbook

    from efa_rollout.reports.files import render_campaign

    rollup = _rollup(VIBA, date(2024, 8, 2), with_history=True)
    essingen = [e for e in rollup.history if e.ags == "08136021"]
    html = render_campaign(rollup, "html").decode()
    assert f"<summary>Essingen (08136021) – {len(essingen)} Einträge</summary>" in html
    assert "Stufenwechsel: Pilotphase → Silent Go-Live" in html
    book = load_workbook(io.BytesIO(render_campaign(rollup, "xlsx")), read_only=True)
    rows = list(book["Geschichte"].iter_rows(values_only=True))
    assert rows[0][:4] == ("Zeitpunkt", "AGS", "Gemeinde", "Art")
    assert len(rows) - 1 == len(rollup.history)
    header = list(next(book["Gemeinden"].iter_rows(values_only=True)))
    first = dict(
        zip(header, next(book["Gemeinden"].iter_rows(min_row=2, values_only=True)), strict=True)
    )
    assert first["Live seit"].date() == date(2024, 8, 1)
