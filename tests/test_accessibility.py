"""WCAG 2.1 A/AA with axe-core in real headless Chromium: every portal page state, the reports.

The portal's CSP (`script-src 'none'`) would block axe, so each page is fetched from the real
portal over HTTP (status, body as served) and checked as a file copy with its stylesheet linked
to templates/portal/static/ – the markup and CSS axe judges are exactly those served; only the
CSP header, which does not change the rendering, is not applied to the copy (tests/axe_support.py).
The reports are single self-contained files and are checked as written.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session
from test_portal_support import (  # noqa: F401 (fixtures)
    ESSINGEN,
    EWA,
    LivePortal,
    World,
    brake,
    complete_ewa_form,
    portal,
    world,
)

from efa_rollout import TEMPLATES_DIR
from efa_rollout.reports.files import render_campaign, render_overview
from efa_rollout.reports.onepager import district_onepager, render_onepager_html
from efa_rollout.reports.overview import district_overview
from efa_rollout.reports.rollup import campaign_rollup
from efa_rollout.services.links import issue_token
from tests.axe_support import CHROMIUM, describe, violations
from tests.test_report_outputs import add_history
from tests.test_reports import AS_OF, build_known_campaign

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
]
STATIC = {"/static/": TEMPLATES_DIR / "portal" / "static"}


def assert_accessible(page: str, what: str) -> None:
    found = violations(page, static=STATIC)
    assert found == [], f"{what}:\n{describe(found)}"


def test_portal_page_states(portal: LivePortal, world: World) -> None:  # noqa: F811
    """Empty form, errors, draft saved, submitted, another campaign, 404 and 410."""
    token = world.essingen_token
    states: dict[str, tuple[int, str]] = {}
    empty = portal.page(token)
    states["leer"] = (empty.status_code, empty.text)
    errors = portal.answers(token, {"f.funktionspostfach": "kein-mail"}, "absenden")
    states["Fehler"] = (errors.status_code, errors.text)
    draft = portal.answers(token, {"f.offene_punkte": "Noch offen"}, "entwurf")
    assert draft.status_code == 303
    saved = portal.client.get(draft.headers["location"])
    states["Entwurf gespeichert"] = (saved.status_code, saved.text)
    sent = portal.answers(token, complete_ewa_form(), "absenden")
    assert sent.status_code == 303
    submitted = portal.client.get(sent.headers["location"])
    states["abgesendet"] = (submitted.status_code, submitted.text)
    other = portal.page(world.viba_token)
    states["zweite Kampagne"] = (other.status_code, other.text)
    missing = portal.client.get("/p/" + "x" * 32)
    states["404"] = (missing.status_code, missing.text)
    with world.session() as session:
        expired = issue_token(
            session,
            campaign_id=EWA,
            ags=ESSINGEN,
            now=world.now - timedelta(days=200),
            valid_days=180,
        )
        session.commit()
    gone = portal.page(expired)
    states["410"] = (gone.status_code, gone.text)
    start = portal.client.get("/")
    states["Startseite"] = (start.status_code, start.text)

    assert [code for code, _ in states.values()] == [200, 422, 200, 200, 200, 404, 410, 200]
    for name, (_, body) in states.items():
        assert_accessible(body, f"Portal: {name}")


def test_reports_and_onepagers(session: Session) -> None:
    """The campaign report (with history), the overview and both one-pagers."""
    b = build_known_campaign(session)
    add_history(b)
    rollup = campaign_rollup(session, b.campaign_id, as_of=AS_OF, with_history=True)
    assert rollup.history, "the report's history section is empty"
    overview = district_overview(session, area_code="08136", as_of=AS_OF)
    pages = {
        "Statusbericht": render_campaign(rollup, "html").decode(),
        "One-Pager Kampagne": render_campaign(rollup, "onepager-html").decode(),
        "Kreisübersicht": render_overview(overview, "html").decode(),
        "One-Pager Kreis": render_onepager_html(
            district_onepager([rollup], overview.area_name or "", rollup.today)
        ),
    }
    for name, page in pages.items():
        assert_accessible(page, name)
