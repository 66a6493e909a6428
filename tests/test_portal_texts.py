"""The portal's words in templates/texts/portal.ini (that every code exists: test_texts.py): the
texts are plain (escaped once, by the page), and the rules' problems read as German."""

# ruff: noqa: F811
from __future__ import annotations

import re

from test_portal_support import (  # noqa: F401 (fixtures)
    LivePortal,
    World,
    brake,
    csrf_of,
    portal,
    world,
)

from efa_rollout.portal.forms import ContactRow
from efa_rollout.portal.texts import PortalTexts
from efa_rollout.services.checklist import note_problems
from efa_rollout.services.contacts import check_contact_list


def test_error_pages_and_notices() -> None:
    texts = PortalTexts()
    assert texts.error_page(404)[0] == "Dieser Link ist ungültig"
    assert texts.error_page(418) == texts.error_page(500)
    assert texts.has_error_page(413) and not texts.has_error_page(418)
    assert texts.notice("kontakte") == ("success", "Die Ansprechpersonen wurden gespeichert.")
    assert texts.notice("gibt-es-nicht") is None


def test_rule_problems_read_as_german() -> None:
    texts = PortalTexts()
    rows = [
        ContactRow(role="Hauptamt", name="x" * 201, email="kein-at", phone="abc"),
        ContactRow(id=999, role="Hauptamt", email="a@b.example"),
    ]
    check = check_contact_list(rows, existing_ids={1}, roles=["Hauptamt"])
    worded = {sub: texts.problem(p) for sub, p in check.problems[0].items()}
    assert worded["name"] == "Der Name ist zu lang (höchstens 200 Zeichen)."
    assert worded["phone"].startswith("»abc« ist keine gültige Telefonnummer")
    assert worded["email"]  # the address rules' own wording
    assert texts.problem(check.problems[1]["name"]).startswith("Diesen Eintrag gibt es nicht")
    assert check.overall is None
    (problem,) = note_problems({"a": (True, "n" * 2001)}).values()
    assert texts.problem(problem) == "Die Bemerkung ist zu lang (höchstens 2000 Zeichen)."


def test_a_message_with_markup_characters_is_escaped_once(portal: LivePortal, world: World) -> None:
    token = world.essingen_token
    data = {
        "csrf": csrf_of(portal.page(token).text),
        "k.rows": "1",
        "k.0.role": "Hauptamt",
        "k.0.name": "Anna",
        "k.0.email": "anna@essingen.example",
        "k.0.phone": "<b>&1",
    }
    response = portal.post(token, "kontakte", data)
    assert response.status_code == 422
    assert "»&lt;b&gt;&amp;1« ist keine gültige Telefonnummer" in response.text
    assert "&amp;amp;" not in response.text and not re.search(r"»<b>", response.text)
