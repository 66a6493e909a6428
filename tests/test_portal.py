"""The portal page against a live server: questionnaire, versions, checklist, contacts."""

# Fixtures come from test_portal_support; test parameters of the same name use them.
# ruff: noqa: F811

from __future__ import annotations

import re
from html.parser import HTMLParser

from sqlmodel import select
from test_portal_support import (  # noqa: F401 (fixtures)
    AALEN,
    ESSINGEN,
    EWA,
    LivePortal,
    World,
    assert_no_aalen_data,
    basis_of,
    brake,
    complete_ewa_form,
    contact_form,
    csrf_of,
    portal,
    world,
)
from typer.testing import CliRunner

from efa_rollout.services.links import hash_token
from models import ChecklistItemState, Contact, Enrolment, Event, OutboxMessage, PortalToken


class _Inputs(HTMLParser):
    """Collects form controls, labels and headings of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.headings: list[str] = []
        self.html_lang: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.html_lang = a.get("lang")
        if tag in {"input", "select", "textarea"} and a.get("type") != "hidden":
            self.controls.append(a)
        if tag == "label" and a.get("for"):
            self.label_for.add(str(a["for"]))
        if tag in {"h1", "h2"}:
            self.headings.append(tag)


def _parse(html: str) -> _Inputs:
    parser = _Inputs()
    parser.feed(html)
    return parser


def test_page_shows_campaign_municipality_dates_and_form(portal: LivePortal, world: World) -> None:
    response = portal.page(world.essingen_token)
    assert response.status_code == 200
    body = response.text
    assert "eWA – elektronische Wohnsitzanmeldung" in body
    assert "Gemeinde Essingen" in body and ESSINGEN in body
    assert "Rückmeldung bis" in body
    assert re.search(r"bis spätestens \w+, \d\d\.\d\d\.\d{4}", body)
    assert "Projektleitung" in body and "Müllveranlagung" in body
    assert "Entwurf speichern" in body and "Absenden" in body
    assert "Checkliste" in body and "Interesse bekundet" in body
    assert "hans.haupt@essingen.example" in body  # the contacts section
    assert_no_aalen_data(body)
    parsed = _parse(body)
    assert parsed.html_lang == "de"
    assert parsed.headings.count("h1") == 1 and parsed.headings.count("h2") >= 4
    unlabelled = [
        c
        for c in parsed.controls
        if c.get("class") != "default-action" and c.get("id") not in parsed.label_for
    ]
    assert unlabelled == [], unlabelled
    assert "<script" not in body and "style=" not in body


def test_role_dependent_fields_contacts_list_and_extra_row(
    portal: LivePortal, world: World
) -> None:
    page = portal.page(world.viba_token).text
    assert "Nutzerinnen und Nutzer, die in ViBa BW eingerichtet werden sollen" in page
    assert 'name="rows.nutzer" value="3"' in page
    data = {
        "csrf": csrf_of(page),
        "basis": basis_of(page),
        "aktion": "zeile:nutzer",
        "rows.nutzer": "3",
        **contact_form("f.nutzer.0", "Nina Nutzer", "nina@essingen.example"),
        "f.sitzungsrhythmus": "monatlich",
    }
    response = portal.post(world.viba_token, "fragebogen", data)
    assert response.status_code == 200
    assert 'name="rows.nutzer" value="4"' in response.text
    assert 'id="f-nutzer-3-name"' in response.text and "autofocus" in response.text
    assert 'value="Nina Nutzer"' in response.text and 'value="monatlich"' in response.text
    assert "noch nicht gespeichert" in response.text

    data.update(aktion="entwurf", **{"rows.nutzer": "4"})
    data.update(contact_form("f.nutzer.3", "Otto Vier", "otto@essingen.example"))
    assert portal.post(world.viba_token, "fragebogen", data).status_code == 303
    page = portal.page(world.viba_token).text
    assert 'value="Otto Vier"' in page and 'value="Nina Nutzer"' in page
    # the two filled rows, one spare, padded to the minimum of three
    assert 'name="rows.nutzer" value="3"' in page


def test_draft_submit_change_and_version_history(portal: LivePortal, world: World) -> None:
    token = world.essingen_token
    draft = {**contact_form("f.projektleitung", "Anna Projekt", "anna@essingen.example")}
    response = portal.answers(token, draft, "entwurf")
    assert response.status_code == 303
    assert response.headers["location"].startswith(f"/p/{token}?ok=entwurf")
    page = portal.page(f"{token}?ok=entwurf").text
    assert "Ihr Entwurf wurde gespeichert" in page
    assert "Entwurf, Version 1" in page and 'value="Anna Projekt"' in page

    # submitting with required fields missing: errors at the fields and in a summary
    response = portal.answers(token, {"f.funktionspostfach": "kein-mail"}, "absenden")
    assert response.status_code == 422
    body = response.text
    assert 'role="alert"' in body and "Bitte prüfen Sie Ihre Angaben" in body
    assert 'href="#f-funktionspostfach"' in body and 'href="#f-kontakt_technik-salutation"' in body
    assert 'id="f-funktionspostfach-error"' in body and 'aria-invalid="true"' in body
    assert 'value="kein-mail"' in body  # the input is shown again
    assert [r.version for r in world.responses(world.essingen_enrolment)] == [1]

    response = portal.answers(token, complete_ewa_form(), "absenden")
    assert response.status_code == 303, response.text[:2000]
    page = portal.page(token).text
    assert re.search(r"Version 2, abgesendet am \d\d\.\d\d\.\d{4} um \d\d:\d\d Uhr", page)

    changed = {**complete_ewa_form(), "f.funktionspostfach": "buergerbuero@essingen.example"}
    assert portal.answers(token, changed, "absenden").status_code == 303
    versions = world.responses(world.essingen_enrolment)
    assert [(v.version, v.status) for v in versions] == [
        (1, "draft"),
        (2, "submitted"),
        (3, "submitted"),
    ]
    assert versions[2].answers["funktionspostfach"] == "buergerbuero@essingen.example"
    assert versions[2].answers["projektleitung"]["name"] == "Anna Projekt"
    assert versions[2].source == "portal"
    page = portal.page(token).text
    assert "Version 3, abgesendet am" in page
    assert page.count("<strong>Version ") == 3
    with world.session() as session:
        enrolment = session.get(Enrolment, world.essingen_enrolment)
        assert enrolment is not None and enrolment.answers_complete
        mails = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "submission_confirmation")
        ).all()
        assert sorted((m.ags, m.sequence) for m in mails) == [(ESSINGEN, 2), (ESSINGEN, 3)]
        assert "meldeamt@essingen.example" in mails[0].recipients


def test_emptied_field_clears_the_answer(portal: LivePortal, world: World) -> None:
    token = world.essingen_token
    portal.answers(token, {"f.offene_punkte": "Schulungstermin?"})
    portal.answers(token, {"f.offene_punkte": ""})
    versions = world.responses(world.essingen_enrolment)
    assert versions[0].answers == {"offene_punkte": "Schulungstermin?"}
    assert "offene_punkte" not in versions[1].answers


def test_concurrent_change_is_not_overwritten(portal: LivePortal, world: World) -> None:
    token = world.essingen_token
    page = portal.page(token).text
    stale = {"csrf": csrf_of(page), "basis": basis_of(page), "aktion": "entwurf"}
    portal.answers(token, {"f.offene_punkte": "zuerst"})
    response = portal.post(token, "fragebogen", {**stale, "f.offene_punkte": "später"})
    assert response.status_code == 409
    assert "neuere Fassung" in response.text and 'value="1"' in response.text
    assert "später" in response.text  # the input is not lost
    assert len(world.responses(world.essingen_enrolment)) == 1


def test_enter_key_saves_a_draft(portal: LivePortal, world: World) -> None:
    page = portal.page(world.essingen_token).text
    # the first submit button of the form (used by the Enter key) saves a draft
    form = page[page.index('action="/p/') :]
    first = re.search(r"<button[^>]*>", form)
    assert first and 'value="entwurf"' in first.group(0)


def test_checklist_tick_with_note_and_untick(portal: LivePortal, world: World) -> None:
    token = world.essingen_token
    csrf = portal.csrf(token)
    response = portal.post(
        token,
        "checkliste",
        {
            "csrf": csrf,
            "erledigt": ["interesse_bekundet", "aktivierung_bestaetigt"],
            "notiz.interesse_bekundet": "per Mail an Komm.ONE am 03.03.",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"].endswith("?ok=checkliste#checkliste")
    with world.session() as session:
        states = {
            s.item_key: s
            for s in session.exec(
                select(ChecklistItemState).where(
                    ChecklistItemState.enrolment_id == world.essingen_enrolment
                )
            ).all()
        }
        enrolment = session.get(Enrolment, world.essingen_enrolment)
    assert states["interesse_bekundet"].done and states["interesse_bekundet"].source == "portal"
    assert states["interesse_bekundet"].note == "per Mail an Komm.ONE am 03.03."
    assert not states["aktivierung_bestaetigt"].done  # Komm.ONE's item: not the municipality's
    assert enrolment is not None and enrolment.required_open == 10
    page = portal.page(token).text
    assert 'value="per Mail an Komm.ONE am 03.03."' in page
    assert re.search(r'id="c-interesse_bekundet-done"[^>]*checked', page)

    response = portal.post(
        token, "checkliste", {"csrf": csrf, "notiz.interesse_bekundet": "doch nicht"}
    )
    assert response.status_code == 303
    with world.session() as session:
        state = session.exec(
            select(ChecklistItemState).where(
                ChecklistItemState.enrolment_id == world.essingen_enrolment,
                ChecklistItemState.item_key == "interesse_bekundet",
            )
        ).one()
    assert not state.done and state.note == "doch nicht"

    response = portal.post(
        token, "checkliste", {"csrf": csrf, "notiz.interesse_bekundet": "x" * 2100}
    )
    assert response.status_code == 422
    assert 'href="#c-interesse_bekundet-note"' in response.text


def test_contacts_change_add_delete(portal: LivePortal, world: World) -> None:
    token = world.essingen_token
    page = portal.page(token).text
    ids = re.findall(r'name="k\.(\d+)\.id" value="(\d+)"', page)
    assert len(ids) == 2
    rows = {}
    with world.session() as session:
        contacts = {
            c.id: c for c in session.exec(select(Contact).where(Contact.ags == ESSINGEN)).all()
        }
    data: dict[str, str] = {"csrf": csrf_of(page), "k.rows": "3", "aktion": "speichern"}
    for n, contact_id in ids:
        contact = contacts[int(contact_id)]
        rows[contact.role] = n
        data.update(
            {
                f"k.{n}.id": contact_id,
                f"k.{n}.role": contact.role,
                f"k.{n}.salutation": contact.salutation or "",
                f"k.{n}.name": contact.name or "",
                f"k.{n}.function": contact.function or "",
                f"k.{n}.email": contact.email,
                f"k.{n}.phone": contact.phone or "",
            }
        )
        if contact.is_shared_mailbox:
            data[f"k.{n}.shared_mailbox"] = "1"
    hauptamt = rows["Hauptamt"]
    data[f"k.{hauptamt}.phone"] = "07365 9600-10"
    data[f"k.{rows['Meldebehörde']}.delete"] = "1"
    data.update(
        {
            "k.2.role": "Bürgermeister",
            "k.2.salutation": "Frau",
            "k.2.salutation_title": "Bürgermeisterin",
            "k.2.name": "Bea Bürger",
            "k.2.function": "Bürgermeisterin",
            "k.2.email": "buergermeisterin@essingen.example",
        }
    )
    response = portal.post(token, "kontakte", data)
    assert response.status_code == 303, response.text[:3000]
    with world.session() as session:
        now = {
            c.role: c for c in session.exec(select(Contact).where(Contact.ags == ESSINGEN)).all()
        }
        events = session.exec(select(Event).where(Event.kind == "contacts_changed")).all()
    assert set(now) == {"Hauptamt", "Bürgermeister"}
    assert now["Hauptamt"].phone == "07365 9600-10" and now["Hauptamt"].source == "portal"
    assert now["Bürgermeister"].name == "Bea Bürger"
    assert now["Bürgermeister"].salutation_title == "Bürgermeisterin"
    assert re.search(
        r'name="k\.\d+\.salutation_title" value="Bürgermeisterin"', portal.page(token).text
    )
    assert len(events) == 1
    assert [events[0].data[k] for k in ("added", "changed", "deleted")] == [1, 1, 1]

    # invalid rows are marked and nothing is stored
    bad = {"csrf": data["csrf"], "k.rows": "1", "k.0.role": "Hauptamt", "k.0.name": "Ohne Mail"}
    response = portal.post(token, "kontakte", bad)
    assert response.status_code == 422
    assert 'href="#k-0-email"' in response.text and 'value="Ohne Mail"' in response.text

    # one more row, without JavaScript
    response = portal.post(token, "kontakte", {**bad, "aktion": "zeile"})
    assert response.status_code == 200
    assert 'name="k.rows" value="2"' in response.text and 'id="k-1-role"' in response.text


def test_contacts_list_cannot_be_emptied(portal: LivePortal, world: World) -> None:
    token = world.essingen_token
    page = portal.page(token).text
    ids = re.findall(r'name="k\.(\d+)\.id" value="(\d+)"', page)
    data = {"csrf": csrf_of(page), "k.rows": str(len(ids))}
    for n, contact_id in ids:
        data.update({f"k.{n}.id": contact_id, f"k.{n}.delete": "1"})
    response = portal.post(token, "kontakte", data)
    assert response.status_code == 422
    assert "mindestens eine Ansprechperson" in response.text


def test_closed_campaign_is_read_only(portal: LivePortal, world: World) -> None:
    from models import Campaign

    with world.session() as session:
        campaign = session.get(Campaign, EWA)
        assert campaign is not None
        campaign.status = "closed"
        session.add(campaign)
        session.commit()
    page = portal.page(world.essingen_token).text
    assert "Kampagne ist abgeschlossen" in page and "disabled" in page
    response = portal.answers(world.essingen_token, {"f.offene_punkte": "noch was"})
    assert response.status_code == 409
    assert world.responses(world.essingen_enrolment) == []


def test_cli_link_issues_and_rotates(world: World) -> None:
    from efa_rollout.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["portal", "link", EWA, AALEN])
    assert result.exit_code == 0, result.output
    url = result.output.strip().splitlines()[-1]
    assert re.fullmatch(r"http://127\.0\.0\.1:8080/p/[A-Za-z0-9_-]{32}", url)
    first = url.rsplit("/", 1)[1]
    result = runner.invoke(app, ["portal", "link", EWA, AALEN, "--rotate"])
    assert result.exit_code == 0, result.output
    second = result.output.strip().splitlines()[1].rsplit("/", 1)[1]
    with world.session() as session:
        rows = {
            t.token_hash: t
            for t in session.exec(select(PortalToken).where(PortalToken.ags == AALEN)).all()
        }
    assert rows[hash_token(first)].revoked_at is not None
    assert rows[hash_token(world.aalen_token)].revoked_at is not None
    assert rows[hash_token(second)].revoked_at is None
    assert first not in str(list(rows))  # only hashes are stored

    result = runner.invoke(app, ["portal", "link", EWA, "08136999"])
    assert result.exit_code != 0

    result = runner.invoke(app, ["portal", "revoke", EWA, AALEN])
    assert result.exit_code == 0 and "1 Link(s)" in result.output


def test_finished_rollout_asks_for_nothing_by_a_past_date(portal: LivePortal, world: World) -> None:
    from datetime import timedelta

    from models import Campaign

    with world.session() as session:
        campaign = session.get(Campaign, EWA)
        enrolment = session.get(Enrolment, world.essingen_enrolment)
        assert campaign is not None and enrolment is not None
        past = campaign.go_live - timedelta(days=400)
        campaign.dates = {**campaign.dates, "collection_deadline": past.isoformat()}
        session.add(campaign)
        session.commit()
    late = portal.page(world.essingen_token).text
    assert "bis spätestens" not in late
    assert "Die Rückmeldefrist ist am" in late and "abgelaufen" in late
    assert "(vergangen)" in late
    with world.session() as session:
        enrolment = session.get(Enrolment, world.essingen_enrolment)
        assert enrolment is not None
        enrolment.stage = "completed"
        session.add(enrolment)
        session.commit()
    done = portal.page(world.essingen_token).text
    assert "Abgeschlossen" in done
    assert "bis spätestens" not in done and "Rückmeldefrist ist am" not in done
