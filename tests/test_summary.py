"""The summary (Zusammenfassung): content, HTML and PDF, versions, distribution."""

from __future__ import annotations

import io
from datetime import timedelta
from email import message_from_bytes, policy
from html.parser import HTMLParser
from typing import Any

import pytest
from sqlmodel import Session, select
from test_collection_support import (
    NOW,
    add_contacts,
    complete_ewa_answers,
    contact,
    enrol,
    make_campaign,
)

from efa_rollout.services.answers import save_answers
from efa_rollout.services.summary import (
    build_summary,
    build_summary_data,
    content_hash,
    distribute_summary,
    latest_summary,
    pdf_filename,
)
from models import Campaign, Enrolment, Event, OutboxMessage, SummaryDocument

AALEN = "08136088"
ESSINGEN = "08136019"
BOPFINGEN = "08136010"
HUETTLINGEN = "08136027"


def pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def _submit(session: Session, enrolment: Enrolment, answers: dict[str, Any], **kw: Any) -> None:
    save_answers(
        session,
        enrolment=enrolment,
        answers=answers,
        submit=kw.pop("submit", True),
        source="portal",
        author="Gemeinde",
        now=kw.pop("now", NOW),
        **kw,
    )


@pytest.fixture
def ewa(session: Session) -> tuple[Campaign, dict[str, Enrolment]]:
    """eWA with mixed answers: Aalen and Bopfingen submitted, Essingen a draft, Hüttlingen out."""
    campaign, definition = make_campaign(session)
    enrolments = {
        AALEN: enrol(session, campaign, definition, AALEN, stage="summary_distribution"),
        BOPFINGEN: enrol(
            session, campaign, definition, BOPFINGEN, stage="checklist_follow_up", is_pilot=True
        ),
        ESSINGEN: enrol(session, campaign, definition, ESSINGEN),
        HUETTLINGEN: enrol(session, campaign, definition, HUETTLINGEN, status="not_applicable"),
    }
    _submit(
        session,
        enrolments[AALEN],
        {**complete_ewa_answers("a"), "offene_punkte": "Wer schult <Vertretung> & Team?"},
    )
    _submit(
        session,
        enrolments[BOPFINGEN],
        {
            **complete_ewa_answers("b"),
            "meldesoftware": "votemanager_ewo",
            "ewa_modul_bestellt": "nein",
            "projektleitung": contact("Bernd Bopp", "bernd.bopp@bopfingen.example"),
        },
    )
    _submit(session, enrolments[ESSINGEN], {"funktionspostfach": "x@essingen.de"}, submit=False)
    return campaign, enrolments


# --- content ---------------------------------------------------------------------------------


def test_summary_html_has_key_answers_status_open_points_and_dates(
    session: Session, ewa: tuple[Campaign, dict[str, Enrolment]]
) -> None:
    campaign, _ = ewa
    document = build_summary(session, campaign, now=NOW)
    html = document.html
    assert document.version == 1 and len(document.content_hash) == 64
    assert html.startswith("<!DOCTYPE html>") and '<html lang="de">' in html
    # who is how far
    assert "Gemeinde Aalen" in html and "Gemeinde Bopfingen" in html and "Essingen" in html
    assert "begonnen, noch nicht eingereicht" in html and "Pilotkommune" in html
    assert "Hüttlingen" not in html  # not applicable
    assert "Rückmeldungen eingereicht: 2 von 3 Kommunen" in html
    # key answers side by side, formatted
    for text in (
        "Eingesetzte Meldesoftware",
        "OK.EWO",
        "Andere Meldesoftware",
        "Frau Anna Muster, a.muster@gemeinde.example",
        "Bernd Bopp, bernd.bopp@bopfingen.example",
        "meldeamt-b@gemeinde.example",
        "15.07.2025",
    ):
        assert text in html, text
    assert "x@essingen.de" not in html  # drafts are not shared
    # open points, escaped
    assert "Wer schult &lt;Vertretung&gt; &amp; Team?" in html
    assert "<Vertretung>" not in html
    assert "Rückmeldung zum Fragebogen" in html  # Essingen has not submitted
    # next steps and central dates, DD.MM.YYYY
    assert "Ablauf für die Müllveranlagung festgelegt" in html
    assert "Freitag, 01.08.2025" in html and "Go-Live" in html
    assert "Rückmeldefrist der Informationserhebung" in html
    assert "Freitag, 11.07.2025" in html  # the training (T-3w)
    assert "bis zum Freitag, 09.05.2025" in html  # late municipalities are asked
    assert "@page" in html and "@media print" in html
    assert "Stand 03.03.2025" in html and "Version 1" in html


def test_summary_pdf_is_a_pdf_with_names_and_umlauts(
    session: Session, ewa: tuple[Campaign, dict[str, Enrolment]]
) -> None:
    campaign, _ = ewa
    document = build_summary(session, campaign, now=NOW)
    assert document.pdf.startswith(b"%PDF")
    text = pdf_text(document.pdf)
    for needle in (
        "Zusammenfassung der Informationserhebung",
        "Gemeinde Aalen",
        "Gemeinde Bopfingen",
        "OK.EWO",
        "Müllveranlagung",
        "01.08.2025",
        "Wer schult <Vertretung> & Team?",
    ):
        assert needle in " ".join(text.split()), needle
    assert pdf_filename(campaign, 3) == "Zusammenfassung-ewa-ostalbkreis-v3.pdf"


class _Blocks(HTMLParser):
    """The text of each heading and paragraph of an HTML page (tables left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[str] = []
        self._open: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("h1", "h2", "p"):
            self._open = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "p") and self._open is not None:
            self.blocks.append(" ".join("".join(self._open).split()))
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open.append(data)


@pytest.mark.parametrize("after_deadline", [False, True])
def test_summary_html_and_pdf_carry_the_same_sentences(
    session: Session, ewa: tuple[Campaign, dict[str, Enrolment]], after_deadline: bool
) -> None:
    campaign, _ = ewa
    now = NOW.replace(year=NOW.year + 1) if after_deadline else NOW
    document = build_summary(session, campaign, now=now)
    parser = _Blocks()
    parser.feed(document.html)
    assert len(parser.blocks) >= 12, parser.blocks  # title, intro, glance, 6 headings, next steps
    pdf = " ".join(pdf_text(document.pdf).split())
    for block in parser.blocks:
        assert block in pdf, block
    title = parser.blocks[1]
    assert f"Zusammenfassung {title} · Version 1 · Stand" in pdf  # the running head
    assert "Seite 1 von" in pdf and f"<title>Zusammenfassung {title} – Version 1</title>" in (
        document.html
    )


def test_viba_dates_roles_and_pilot_items(session: Session) -> None:
    campaign, definition = make_campaign(session, "viba-bw")
    enrol(session, campaign, definition, AALEN, role="landratsamt", stage="summary_distribution")
    data = build_summary_data(session, campaign)
    labels = [d["label"] for d in data["dates"]]
    assert labels == [
        "Rückmeldefrist der Informationserhebung",
        "Beginn der Pilotphase",
        "Silent Go-Live (nur für die Testbeteiligten)",
        "Schulung (1. Termin)",
        "Schulung (2. Termin)",
        "Go-Live",
        "Ende der Nachbetreuung",
        "Verpflichtende digitale Nutzung ab",
    ]
    assert data["dates"][-1]["date"] == "Freitag, 02.01.2026"
    pilot = next(s for s in data["next_steps"] if s["title"].startswith("Test-Stellungnahme"))
    assert pilot["note"] == "nur Pilotkommunen"
    assert data["key_rows"] == []
    document = build_summary(session, campaign, now=NOW)
    assert "Es liegen noch keine eingereichten Rückmeldungen vor." in document.html
    assert "ViBa BW" in pdf_text(document.pdf)


# --- versions --------------------------------------------------------------------------------


def test_new_version_only_when_content_changes(
    session: Session, ewa: tuple[Campaign, dict[str, Enrolment]]
) -> None:
    campaign, enrolments = ewa
    first = build_summary(session, campaign, now=NOW)
    later = NOW + timedelta(days=3)
    assert build_summary(session, campaign, now=later).id == first.id  # time alone: same
    # a draft, a stage move within the preparation phase and a checklist tick change nothing
    _submit(session, enrolments[ESSINGEN], {"offene_punkte": "Entwurf"}, submit=False)
    enrolments[AALEN].stage = "checklist_follow_up"
    enrolments[AALEN].required_open = 3
    session.flush()
    assert build_summary(session, campaign, now=later).version == 1
    # a submitted answer does
    _submit(session, enrolments[ESSINGEN], complete_ewa_answers("e"), now=later)
    second = build_summary(session, campaign, now=later)
    assert second.version == 2 and second.content_hash != first.content_hash
    assert "Stand 06.03.2025" in second.html
    versions = session.exec(select(SummaryDocument.version)).all()
    assert sorted(versions) == [1, 2]
    built = session.exec(select(Event).where(Event.kind == "summary_built")).all()
    assert [e.data["version"] for e in built] == [1, 2]
    assert latest_summary(session, campaign.id).version == 2


def test_content_hash_is_canonical() -> None:
    assert content_hash({"a": 1, "b": [1, 2]}) == content_hash({"b": [1, 2], "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})


# --- distribution ----------------------------------------------------------------------------


def _summary_rows(session: Session) -> list[tuple[str, int]]:
    rows = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "summary")).all()
    return sorted((r.ags or "", r.sequence) for r in rows)


def test_distribute_once_per_version_to_eligible_only(
    session: Session, ewa: tuple[Campaign, dict[str, Enrolment]]
) -> None:
    campaign, enrolments = ewa
    add_contacts(session)
    result = distribute_summary(session, campaign.id, now=NOW, actor="test")
    # Aalen (summary_distribution) and Bopfingen (later); Essingen still collecting;
    # Hüttlingen not applicable
    assert (result["version"], result["new_version"], result["queued"]) == (1, True, 2)
    assert _summary_rows(session) == [(BOPFINGEN, 1), (AALEN, 1)]
    queued = session.exec(select(Event).where(Event.kind == "summary_queued")).all()
    assert {(e.ags, e.actor, e.data["version"]) for e in queued} == {
        (AALEN, "test", 1),
        (BOPFINGEN, "test", 1),
    }

    again = distribute_summary(session, campaign.id, now=NOW + timedelta(hours=1), actor="test")
    assert (again["version"], again["new_version"], again["queued"], again["already"]) == (
        1,
        False,
        0,
        2,
    )
    assert len(_summary_rows(session)) == 2

    # Essingen catches up: it gets the current version, the others nothing new
    enrolments[ESSINGEN].stage = "summary_distribution"
    session.flush()
    caught_up = distribute_summary(session, campaign.id, now=NOW, actor="test")
    assert (caught_up["version"], caught_up["queued"], caught_up["already"]) == (1, 1, 2)

    # a new version goes to everyone eligible who lacks it
    _submit(session, enrolments[ESSINGEN], complete_ewa_answers("e"))
    enrolments[BOPFINGEN].status = "paused"
    session.flush()
    second = distribute_summary(session, campaign.id, now=NOW, actor="test")
    assert (second["version"], second["new_version"], second["queued"]) == (2, True, 2)
    assert _summary_rows(session) == [
        (BOPFINGEN, 1),
        (ESSINGEN, 1),
        (ESSINGEN, 2),
        (AALEN, 1),
        (AALEN, 2),
    ]
    # Bopfingen gets version 2 once it is active again, and only then
    enrolments[BOPFINGEN].status = "active"
    session.flush()
    third = distribute_summary(session, campaign.id, now=NOW, actor="test")
    assert (third["version"], third["queued"], third["already"]) == (2, 1, 2)
    assert (BOPFINGEN, 2) in _summary_rows(session)


def test_distribute_without_contacts_reports_and_retries_later(
    session: Session, ewa: tuple[Campaign, dict[str, Enrolment]]
) -> None:
    from models import Contact

    campaign, _ = ewa
    for named in session.exec(select(Contact).where(Contact.ags == BOPFINGEN)):
        session.delete(named)  # the persons its answers named: Bopfingen has no contact now
    session.flush()
    add_contacts(session, [AALEN])
    result = distribute_summary(session, campaign.id, now=NOW, actor="test")
    assert (result["queued"], result["not_queued"]) == (1, 1)
    row = next(r for r in result["rows"] if r["ags"] == BOPFINGEN)
    assert row["ergebnis"] == "nicht versandt: keine zustellbare Ansprechperson"
    add_contacts(session, [BOPFINGEN])
    later = distribute_summary(session, campaign.id, now=NOW, actor="test")
    assert (later["queued"], later["already"]) == (1, 1)


def test_distribute_passes_the_pdf_to_the_mail_layer(
    session: Session, ewa: tuple[Campaign, dict[str, Enrolment]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from efa_rollout.services import outbox

    campaign, _ = ewa
    add_contacts(session)
    calls: list[dict[str, Any]] = []
    real = outbox.queue_campaign_mail

    def recorder(session: Session, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(session, **kwargs)

    monkeypatch.setattr(outbox, "queue_campaign_mail", recorder)
    distribute_summary(session, campaign.id, now=NOW, actor="test")
    assert {c["kind"] for c in calls} == {"summary"}
    assert {c["sequence"] for c in calls} == {1}
    attachments = calls[0].get("attachments") or calls[0]["extra"]["attachments"]
    (filename, data, mime) = attachments[0]
    assert filename == "Zusammenfassung-ewa-ostalbkreis-v1.pdf"
    assert data.startswith(b"%PDF") and mime == "application/pdf"


def test_queued_summary_mail_is_a_proper_message(
    session: Session, ewa: tuple[Campaign, dict[str, Enrolment]]
) -> None:
    campaign, _ = ewa
    add_contacts(session)
    distribute_summary(session, campaign.id, now=NOW, actor="test")
    row = session.exec(
        select(OutboxMessage).where(OutboxMessage.kind == "summary", OutboxMessage.ags == AALEN)
    ).one()
    # The persons Aalen's answers named came into the directory (Meldebehörde first).
    assert row.recipients[0] == "a.fach@gemeinde.example"
    assert f"hauptamt-{AALEN}@gemeinde.example" in row.recipients
    message = message_from_bytes(row.raw, policy=policy.default)
    assert "Zusammenfassung" in message["Subject"]
    pdfs = [p for p in message.walk() if p.get_content_type() == "application/pdf"]
    assert len(pdfs) == 1
    assert pdfs[0].get_filename() == "Zusammenfassung-ewa-ostalbkreis-v1.pdf"
    assert pdfs[0].get_content().startswith(b"%PDF")


def test_distribute_with_engine_commits_in_batches(
    session: Session, ewa: tuple[Campaign, dict[str, Enrolment]], engine: Any
) -> None:
    campaign_id = ewa[0].id
    add_contacts(session)
    session.commit()
    result = distribute_summary(engine, campaign_id, now=NOW, actor="test")
    assert result["queued"] == 2
    session.expire_all()
    assert len(_summary_rows(session)) == 2
    session.commit()  # SQLite: every transaction holds the write lock (BEGIN IMMEDIATE)
    assert distribute_summary(engine, campaign_id, now=NOW, actor="test")["queued"] == 0


def test_distribute_unknown_campaign(session: Session) -> None:
    from efa_rollout.errors import UserError

    with pytest.raises(UserError, match="Die Kampagne »nope« gibt es nicht"):
        distribute_summary(session, "nope", now=NOW, actor="test")


def test_summary_pdf_carries_its_real_creation_date(
    session: Session, ewa: tuple[Campaign, dict[str, Enrolment]]
) -> None:
    from pypdf import PdfReader

    campaign, _ = ewa
    document = build_summary(session, campaign, now=NOW)
    created = PdfReader(io.BytesIO(document.pdf)).metadata.creation_date
    assert created is not None and created.year != 2000
    assert abs(created - NOW) < timedelta(seconds=1)


def test_summary_after_the_deadline_asks_for_no_past_date(
    session: Session, ewa: tuple[Campaign, dict[str, Enrolment]]
) -> None:
    from efa_rollout.domain.text import german_date

    campaign, _ = ewa
    deadline = campaign.dates["collection_deadline"]
    later = NOW.replace(year=int(deadline[:4]) + 1)  # well after the deadline
    text = " ".join(pdf_text(build_summary(session, campaign, now=later).pdf).split())
    day = german_date(deadline, weekday=True)
    assert f"bis zum {day}" not in text
    assert f"Die Rückmeldefrist ist am {day} abgelaufen" in text
