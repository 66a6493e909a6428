"""The queueing API: idempotent, recipients by role, nothing queued on errors, previews."""

from __future__ import annotations

import email
from datetime import timedelta
from email import policy

import pytest
from sqlmodel import Session, func, select

from efa_rollout.mail.ledger import cancel_late
from efa_rollout.mail.render import MailRenderError
from efa_rollout.services.mail_preview import preview_campaign_mail, queue_test_mail
from efa_rollout.services.outbox import queue_campaign_mail, queue_coordinator_mail
from efa_rollout.services.outbox_admin import cancel_messages, retry_messages
from models import Event, OutboxMessage, PortalToken
from tests.mail_support import (
    NOW,
    add_campaign,
    add_contact,
    add_enrolment,
    add_municipality,
    setup_one,
)


def _count(session: Session, model: type) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


def _queue(
    session: Session, campaign, enrolment, municipality, kind: str = "information_request", **kw
):
    return queue_campaign_mail(
        session,
        campaign=campaign,
        enrolment=enrolment,
        municipality=municipality,
        kind=kind,
        sequence=kw.pop("sequence", 1),
        now=NOW,
        **kw,
    )


def test_queue_builds_the_complete_message(session: Session) -> None:
    campaign, enrolment, municipality = setup_one(
        session, "anna.mueller@essingen.example", salutation="Frau", name="Anna Müller"
    )
    row = _queue(session, campaign, enrolment, municipality)
    session.commit()
    assert row is not None and row.status == "queued" and row.next_attempt_at == NOW
    assert row.recipients == ["anna.mueller@essingen.example"]
    assert row.message_id == "<viba-ostalbkreis.08136019.information_request.1@ostalbkreis.example>"
    # The definition's deadline (07.06.2024) has passed by NOW: five working days from today.
    assert (
        row.subject
        == "ViBa BW – Informationserhebung: Rückmeldung bis 17.03.2025 (Gemeinde Essingen)"
    )
    parsed = email.message_from_bytes(row.raw, policy=policy.default)
    text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith("Sehr geehrte Frau Müller,\n")
    assert "bis spätestens Montag, 17.03.2025" in text
    assert "Rückmeldefrist: Freitag, 07.06.2024 (abgelaufen)" in text
    assert "http://127.0.0.1:8080/p/" in text
    assert _count(session, PortalToken) == 1


def test_queueing_twice_gives_one_row(session: Session) -> None:
    campaign, enrolment, municipality = setup_one(session)
    assert _queue(session, campaign, enrolment, municipality) is not None
    session.commit()
    assert _queue(session, campaign, enrolment, municipality) is None
    session.commit()
    assert _count(session, OutboxMessage) == 1
    assert _count(session, PortalToken) == 1  # no token issued for the duplicate


def test_concurrent_duplicate_does_not_poison_the_callers_transaction(
    session: Session, engine
) -> None:
    campaign, enrolment, municipality = setup_one(session)
    with Session(engine) as other:  # another writer got there first
        _queue(
            other,
            other.get(type(campaign), campaign.id),
            other.get(type(enrolment), enrolment.id),
            other.get(type(municipality), municipality.ags),
        )
        other.commit()
    session.add(Event(campaign_id=campaign.id, actor="test", kind="before"))
    import efa_rollout.services.outbox as outbox

    original = outbox._existing
    outbox._existing = lambda *args: None  # pretend the check ran before the other commit
    try:
        assert _queue(session, campaign, enrolment, municipality) is None
    finally:
        outbox._existing = original
    session.add(Event(campaign_id=campaign.id, actor="test", kind="after"))
    session.commit()
    kinds = {e.kind for e in session.exec(select(Event)).all()}
    assert {"before", "after"} <= kinds
    assert _count(session, OutboxMessage) == 1
    assert _count(session, PortalToken) == 1


def test_queue_is_part_of_the_callers_transaction(session: Session) -> None:
    campaign, enrolment, municipality = setup_one(session)
    assert _queue(session, campaign, enrolment, municipality) is not None
    session.rollback()
    assert _count(session, OutboxMessage) == 0
    assert _count(session, PortalToken) == 0


def test_missing_variable_raises_before_anything_is_queued(session: Session) -> None:
    campaign, enrolment, municipality = setup_one(session)
    with pytest.raises(MailRenderError, match="submitted_at"):
        _queue(session, campaign, enrolment, municipality, kind="submission_confirmation")
    session.commit()
    assert _count(session, OutboxMessage) == 0
    assert _count(session, PortalToken) == 0


def test_sandbox_violation_in_definition_paragraph_queues_nothing(session: Session) -> None:
    campaign = add_campaign(session, mail={"go_live": "Hallo {{ ''.__class__.__mro__ }}"})
    municipality = add_municipality(session)
    add_contact(session, municipality.ags, "a@essingen.example")
    enrolment = add_enrolment(session, campaign, municipality.ags)
    session.commit()
    with pytest.raises(MailRenderError, match="unzulässig"):
        _queue(session, campaign, enrolment, municipality, kind="go_live")
    session.commit()
    assert _count(session, OutboxMessage) == 0


def test_definition_paragraph_is_included(session: Session) -> None:
    campaign = add_campaign(
        session, mail={"go_live": "Hinweis für die {{ kommune }}: ab {{ start|datum }}."}
    )
    municipality = add_municipality(session)
    add_contact(session, municipality.ags, "a@essingen.example")
    enrolment = add_enrolment(session, campaign, municipality.ags)
    row = _queue(session, campaign, enrolment, municipality, kind="go_live")
    assert row is not None
    text = (
        email.message_from_bytes(row.raw, policy=policy.default).get_body(("plain",)).get_content()
    )
    assert "Hinweis für die Gemeinde Essingen: ab 01.08.2025." in text


def test_recipients_by_role_without_failed_contacts(session: Session) -> None:
    campaign = add_campaign(session)
    municipality = add_municipality(session)
    add_contact(session, municipality.ags, "bauamt@essingen.example", role="Bauamt")
    add_contact(session, municipality.ags, "kaemmerei@essingen.example", role="Kämmerei")
    add_contact(
        session, municipality.ags, "alt@essingen.example", role="Hauptamt", delivery_failed_at=NOW
    )
    add_contact(session, municipality.ags, "bm@essingen.example", role="Bürgermeister")
    enrolment = add_enrolment(session, campaign, municipality.ags)
    session.commit()
    row = _queue(session, campaign, enrolment, municipality)
    assert row is not None and row.recipients == ["bauamt@essingen.example"]
    escalation = _queue(
        session,
        campaign,
        enrolment,
        municipality,
        kind="escalation",
        recipient_roles=["Bürgermeister"],
        cc_coordinator=True,
    )
    assert escalation is not None
    assert escalation.recipients == ["bm@essingen.example"]
    assert escalation.cc == ["egov-koordination@ostalbkreis.example"]


def test_nobody_to_send_to_logs_an_event_once(session: Session) -> None:
    campaign = add_campaign(session)
    municipality = add_municipality(session)
    add_contact(session, municipality.ags, "alt@essingen.example", delivery_failed_at=NOW)
    enrolment = add_enrolment(session, campaign, municipality.ags)
    session.commit()
    assert _queue(session, campaign, enrolment, municipality) is None
    assert _queue(session, campaign, enrolment, municipality) is None
    session.commit()
    events = session.exec(select(Event).where(Event.kind == "mail_not_queued")).all()
    assert len(events) == 1 and events[0].reason == "keine zustellbare Ansprechperson"
    assert _count(session, OutboxMessage) == 0


def test_explicit_roles_do_not_fall_back_to_anyone(session: Session) -> None:
    campaign, enrolment, municipality = setup_one(session)
    assert (
        _queue(
            session,
            campaign,
            enrolment,
            municipality,
            kind="escalation",
            recipient_roles=["Bürgermeister"],
        )
        is None
    )


def test_coordinator_mail_and_test_mail(session: Session) -> None:
    campaign, _, _ = setup_one(session)
    extra = {"week": "11/2025", "as_of": NOW, "rows": []}
    report = queue_coordinator_mail(
        session, campaign=campaign, kind="weekly_report", sequence=202511, now=NOW, extra=extra
    )
    assert report is not None and report.recipients == ["egov-koordination@ostalbkreis.example"]
    assert (
        queue_coordinator_mail(
            session, campaign=campaign, kind="weekly_report", sequence=202511, now=NOW, extra=extra
        )
        is None
    )
    test = queue_test_mail(session, address="ich@gemeinde-böbingen.de", kind="reminder", now=NOW)
    session.commit()
    assert test.is_test and test.campaign_id is None and test.subject.startswith("[TEST] ViBa BW")
    assert test.recipients == ["ich@xn--gemeinde-bbingen-vwb.de"]


def test_preview_stores_nothing(session: Session) -> None:
    campaign, _, municipality = setup_one(session)
    preview = preview_campaign_mail(
        session, campaign_id=campaign.id, ags=municipality.ags, kind="reminder", now=NOW
    )
    session.commit()
    assert "VORSCHAU-KEIN-GUELTIGER-LINK" in preview.text
    assert preview.headers["Subject"].startswith(
        "ViBa BW – Erinnerung: Rückmeldung Checkliste bis "
    )
    assert "<html" in preview.html
    assert _count(session, OutboxMessage) == 0 and _count(session, PortalToken) == 0


def test_retry_and_cancel(session: Session) -> None:
    campaign, enrolment, municipality = setup_one(session)
    row = _queue(session, campaign, enrolment, municipality)
    assert row is not None
    row.status = "unknown"
    row.recipient_status = {row.recipients[0]: {"status": "unknown"}}
    session.add(row)
    session.commit()
    retried, problems = retry_messages(session, now=NOW, statuses=["unknown"])
    assert [r.id for r in retried] == [row.id] and not problems
    assert row.status == "retrying" and row.recipient_status == {} and row.meta["manual_retry_at"]
    cancelled, problems = cancel_messages(session, now=NOW, ids=[row.id, 999])
    assert [r.id for r in cancelled] == [row.id] and problems == ["999: gibt es nicht"]
    _, problems = retry_messages(session, now=NOW, ids=[row.id])
    assert "cancelled" in problems[0]


def test_late_mail_is_cancelled_not_sent(session: Session, engine) -> None:
    campaign, enrolment, municipality = setup_one(session)
    row = _queue(session, campaign, enrolment, municipality, not_after=NOW + timedelta(hours=1))
    session.commit()
    assert cancel_late(engine, now=NOW + timedelta(minutes=30)) == 0
    assert cancel_late(engine, now=NOW + timedelta(hours=2)) == 1
    session.refresh(row)
    assert row.status == "cancelled" and "spätester Versandzeitpunkt" in row.last_error


def test_attachments_are_added_after_the_alternative_part(session: Session) -> None:
    campaign, enrolment, municipality = setup_one(session)
    pdf = b"%PDF-1.4 Zusammenfassung"
    row = _queue(
        session,
        campaign,
        enrolment,
        municipality,
        kind="summary",
        attachments=[("Zusammenfassung ViBa BW – Fassung 2.pdf", pdf, "application/pdf")],
    )
    assert row is not None and row.meta["attachments"] == [
        "Zusammenfassung ViBa BW – Fassung 2.pdf"
    ]
    parsed = email.message_from_bytes(row.raw, policy=policy.default)
    assert parsed.get_content_type() == "multipart/mixed"
    body, attachment = list(parsed.iter_parts())
    assert body.get_content_type() == "multipart/alternative"
    assert attachment.get_filename() == "Zusammenfassung ViBa BW – Fassung 2.pdf"
    assert attachment.get_content() == pdf
    text = parsed.get_body(("plain",)).get_content()
    assert (
        "im Anhang (Zusammenfassung ViBa BW – Fassung 2.pdf) und in Ihrem Portal"
        in text.replace("\r\n", "\n").replace("\n", " ")
    )


@pytest.mark.parametrize("kind", ["information_request", "reminder", "escalation"])
def test_preview_shows_the_real_to_and_cc(session: Session, kind: str) -> None:
    campaign, enrolment, municipality = setup_one(session, "bauamt@essingen.example", role="Bauamt")
    add_contact(
        session,
        municipality.ags,
        "bm@essingen.example",
        role="Bürgermeister",
        salutation="Herr",
        salutation_title="Bürgermeister",
        name="Thomas Müller",
    )
    add_contact(session, municipality.ags, "hauptamt@essingen.example", is_shared_mailbox=True)
    session.commit()
    preview = preview_campaign_mail(
        session, campaign_id=campaign.id, ags=municipality.ags, kind=kind, now=NOW
    )
    escalating = kind == "escalation"
    row = _queue(
        session,
        campaign,
        enrolment,
        municipality,
        kind,
        recipient_roles=["Bürgermeister", "Hauptamt"] if escalating else None,
        cc_coordinator=escalating,
    )
    assert row is not None
    sent = email.message_from_bytes(row.raw, policy=policy.default)
    assert preview.headers["To"] == str(sent["To"])
    assert preview.headers.get("Cc") == (str(sent["Cc"]) if sent["Cc"] else None)
    if escalating:
        assert "bm@essingen.example" in preview.headers["To"]
        assert "bauamt@" not in preview.headers["To"]
        assert "egov-koordination@ostalbkreis.example" in preview.headers["Cc"]
        assert preview.text.startswith("Sehr geehrter Herr Bürgermeister Müller,")
