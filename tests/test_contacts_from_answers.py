"""Contact persons named in submitted answers reach the directory, and the next mail."""

from __future__ import annotations

from sqlmodel import Session, select
from test_collection_support import NOW, add_contacts, complete_ewa_answers, enrol, make_campaign

from efa_rollout.services.answers import save_answers
from efa_rollout.services.outbox import queue_campaign_mail
from models import Contact, Event, Municipality

AALEN = "08136088"


def test_named_persons_update_the_directory_and_get_the_next_mail(session: Session) -> None:
    campaign, definition = make_campaign(session)
    enrolment = enrol(session, campaign, definition, AALEN)
    add_contacts(session, [AALEN])
    answers = complete_ewa_answers()
    save_answers(
        session,
        enrolment=enrolment,
        answers=answers,
        submit=False,
        source="portal",
        author="Gemeinde",
        now=NOW,
    )
    assert session.exec(select(Contact).where(Contact.role == "Meldebehörde")).all() == []
    save_answers(
        session,
        enrolment=enrolment,
        answers=answers,
        submit=True,
        source="portal",
        author="Gemeinde",
        now=NOW,
    )
    contacts = {
        (c.role, c.email): c for c in session.exec(select(Contact).where(Contact.ags == AALEN))
    }
    fach = contacts[("Meldebehörde", "a.fach@gemeinde.example")]
    assert fach.name == "Fritz Fach" and "Fragebogen" in (fach.source or "")
    lead = contacts[("Hauptamt", "a.muster@gemeinde.example")]
    assert lead.salutation == "Frau" and lead.name == "Anna Muster"
    assert ("Hauptamt", "hauptamt-08136088@gemeinde.example") in contacts  # nothing deleted
    event = session.exec(select(Event).where(Event.kind == "contacts_changed")).one()
    assert "Meldebehörde: Fritz Fach" in (event.reason or "")

    row = queue_campaign_mail(
        session,
        campaign=campaign,
        enrolment=enrolment,
        municipality=session.get(Municipality, AALEN),  # type: ignore[arg-type]
        kind="reminder",
        sequence=1,
        now=NOW,
    )
    assert row is not None
    assert "a.fach@gemeinde.example" in row.recipients
    assert "a.muster@gemeinde.example" in row.recipients

    # Submitting the same answers again changes nothing and logs nothing.
    save_answers(
        session,
        enrolment=enrolment,
        answers=answers,
        submit=True,
        source="portal",
        author="Gemeinde",
        now=NOW,
    )
    assert len(session.exec(select(Event).where(Event.kind == "contacts_changed")).all()) == 1
