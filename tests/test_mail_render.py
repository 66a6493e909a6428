"""Mail templates: every kind renders, strict variables, escaping rules, the sandbox."""

from __future__ import annotations

from datetime import date

import pytest

from efa_rollout.domain.text import german_weekday_date
from efa_rollout.mail.context import municipality_label, salutation_for
from efa_rollout.mail.render import (
    MAIL_KINDS,
    MailRenderError,
    render_mail,
    render_paragraph,
)
from efa_rollout.services.mail_preview import sample_extra, sample_objects
from efa_rollout.settings import get_settings
from models import Contact, Municipality
from tests.mail_support import NOW


def _context(kind: str, **overrides: object) -> dict[str, object]:
    from efa_rollout.mail.context import build_context

    campaign, enrolment, municipality = sample_objects(NOW)
    extra = {**sample_extra(kind, NOW), **overrides}
    return build_context(
        None,
        campaign=campaign,
        enrolment=enrolment,
        municipality=municipality,
        contacts=[],
        kind=kind,
        sequence=1,
        now=NOW,
        settings=get_settings(),
        portal_link="https://portal.example/p/abc",
        extra=extra,
    )


@pytest.mark.parametrize("kind", MAIL_KINDS)
def test_every_kind_renders_with_salutation_closing_and_signature(efa_env, kind: str) -> None:
    mail = render_mail(kind, _context(kind))
    assert mail.subject.startswith("ViBa BW – ") and "\n" not in mail.subject
    for part in (mail.text, mail.html):
        assert "Sehr geehrte Damen und Herren," in part
        assert "Mit freundlichen Grüßen" in part and "Mit freundlichen Grüßen," not in part
        assert "Erika Mustermann" in part and "Landratsamt Ostalbkreis" in part
        assert "07361 503-0" in part and "Stuttgarter Straße 41" in part
    assert "<img" not in mail.html.lower()  # no tracking pixels, no remote images
    if kind != "weekly_report":
        assert "https://portal.example/p/abc" in mail.text
        assert "(Gemeinde Musterhausen)" in mail.subject


def test_reminder_subject_and_deadline_with_weekday(efa_env) -> None:
    context = _context(
        "reminder",
        deadline=date(2025, 3, 15),
        open_items=[{"key": "schulung", "title": "Schulung besucht", "due": "2025-03-14"}],
        open_questions=[],
    )
    mail = render_mail("reminder", context)
    assert mail.subject == (
        "ViBa BW – Erinnerung: Rückmeldung Checkliste bis 15.03.2025 (Gemeinde Musterhausen)"
    )
    assert "bis spätestens Samstag, 15.03.2025" in mail.text
    assert "Schulung besucht – fällig am Freitag, 14.03.2025" in mail.text
    assert german_weekday_date(date(2025, 3, 14)) == "Freitag, 14.03.2025"


def test_missing_variable_raises(efa_env) -> None:
    context = _context("submission_confirmation")
    del context["submitted_at"]
    with pytest.raises(MailRenderError, match="submitted_at"):
        render_mail("submission_confirmation", context)


def test_html_is_escaped_text_and_subject_are_not(efa_env) -> None:
    context = _context("go_live")
    context["municipality"] = {
        "ags": "08136019",
        "name": "x",
        "label": "Gemeinde <script>alert(1)</script> & Co",
    }
    mail = render_mail("go_live", context)
    assert "<script>" not in mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in mail.html
    assert "(Gemeinde <script>alert(1)</script> & Co)" in mail.subject
    assert "Gemeinde <script>alert(1)</script> & Co" in mail.text


def test_subject_has_no_line_breaks(efa_env) -> None:
    context = _context("go_live")
    context["municipality"] = {"ags": "08136019", "name": "x", "label": "Essingen\r\nBcc: x@y"}
    assert "\r" not in render_mail("go_live", context).subject
    assert "\n" not in render_mail("go_live", context).subject


def test_definition_paragraph_is_rendered_in_the_sandbox(efa_env) -> None:
    text = render_paragraph(
        "Bitte bis {{ frist|frist }} an {{ kommune }}.",
        {"frist": date(2025, 3, 14), "kommune": "Essingen"},
    )
    assert text == "Bitte bis Freitag, 14.03.2025 an Essingen."
    for attack in (
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ kommune.__init__.__globals__ }}",
    ):
        with pytest.raises(MailRenderError, match="unzulässig"):
            render_paragraph(attack, {"kommune": "Essingen"})
    with pytest.raises(MailRenderError, match="nicht erstellt"):
        render_paragraph("{{ unbekannt }}", {"kommune": "Essingen"})


def test_definition_paragraph_appears_escaped_in_html(efa_env) -> None:
    context = _context("go_live")
    context["paragraph"] = "Erste Zeile <b>fett?</b>\n\nZweiter Absatz"
    mail = render_mail("go_live", context)
    assert "<p>Erste Zeile &lt;b&gt;fett?&lt;/b&gt;</p>" in mail.html
    assert "<p>Zweiter Absatz</p>" in mail.html
    assert "Erste Zeile <b>fett?</b>\n\nZweiter Absatz" in mail.text


@pytest.mark.parametrize(
    ("contacts", "expected"),
    [
        (
            [Contact(ags="1", role="r", email="a@b.de", salutation="Frau", name="Dr. Anna Müller")],
            "Sehr geehrte Frau Dr. Müller,",
        ),
        (
            [Contact(ags="1", role="r", email="a@b.de", salutation="Herr", name="Hans von Berg")],
            "Sehr geehrter Herr von Berg,",
        ),
        (
            [
                Contact(
                    ags="1",
                    role="r",
                    email="a@b.de",
                    salutation="Herr",
                    name="Bauamt",
                    is_shared_mailbox=True,
                )
            ],
            "Sehr geehrte Damen und Herren,",
        ),
        (
            [Contact(ags="1", role="r", email="a@b.de", salutation=None, name="Kim Meier")],
            "Sehr geehrte Damen und Herren,",
        ),
        (
            [
                Contact(ags="1", role="r", email="a@b.de", salutation="Frau", name="Anna Müller"),
                Contact(ags="1", role="r", email="c@b.de", salutation="Herr", name="Bernd Kurz"),
            ],
            "Sehr geehrte Frau Müller, sehr geehrter Herr Kurz,",
        ),
        (
            [
                Contact(
                    ags="1",
                    role="Bürgermeister",
                    email="a@b.de",
                    salutation="Herr",
                    salutation_title="Bürgermeister",
                    name="Thomas Müller",
                ),
                Contact(ags="1", role="Hauptamt", email="h@b.de", is_shared_mailbox=True),
            ],
            "Sehr geehrter Herr Bürgermeister Müller,",
        ),
        (
            [
                Contact(
                    ags="1",
                    role="r",
                    email="a@b.de",
                    salutation="Frau",
                    salutation_title="Hauptamtsleiterin",
                    name="Julia Schmid",
                )
            ],
            "Sehr geehrte Frau Hauptamtsleiterin Schmid,",
        ),
        (
            [
                Contact(ags="1", role="r", email=f"{n}@b.de", salutation="Frau", name=f"A {n}")
                for n in ("Maier", "Roth", "Vogel")
            ],
            "Sehr geehrte Damen und Herren,",
        ),
    ],
)
def test_salutation(contacts: list[Contact], expected: str) -> None:
    assert salutation_for(contacts) == expected


@pytest.mark.parametrize(
    ("type_code", "label"),
    [
        ("63", "Stadt Aalen"),
        ("67", "Stadt Aalen"),
        ("64", "Gemeinde Aalen"),
        ("60", "Markt Aalen"),
        (None, "Gemeinde Aalen"),
    ],
)
def test_municipality_label(type_code: str | None, label: str) -> None:
    municipality = Municipality(
        ags="08136088", name="Aalen", type_code=type_code, district_code="08136", state_code="08"
    )
    assert municipality_label(municipality) == label
