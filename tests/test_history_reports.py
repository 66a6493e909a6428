"""Reports at past dates are rebuilt from the event log: a campaign simulated from 2023 to 2025."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from efa_rollout.db import session_scope
from efa_rollout.demo import EWA, VIBA
from efa_rollout.reports.rollup import campaign_rollup
from tests.history_support import moment, run_timeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One run of the demo's timeline (module scope: it takes a while), and the stored truth."""
    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("history")
    data_dir = base / "data"
    mp.setenv("EFA_DATA_DIR", str(data_dir))
    mp.delenv("EFA_DATABASE_URL", raising=False)
    mp.delenv("EFA_SMTP_URL", raising=False)
    mp.chdir(base)
    from efa_rollout import db as dbmod
    from efa_rollout.settings import get_settings

    get_settings.cache_clear()
    dbmod.reset_engines()
    truth = run_timeline(data_dir)
    yield data_dir, truth
    mp.undo()
    get_settings.cache_clear()
    dbmod.reset_engines()


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
    assert attempts and all("zugestellt" in e.what and "@" in e.what for e in attempts)
    assert all(e.ags == "08136021" and e.who for e in entries)
