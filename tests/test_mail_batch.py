"""`queue_campaign_mails`: a batch queues the same rows as one call per mail, once, in bulk."""

from __future__ import annotations

import pytest
from sqlmodel import Session, func, select

from efa_rollout.services import outbox_batch
from efa_rollout.services.compose import MailRequest
from efa_rollout.services.outbox import queue_campaign_mail
from efa_rollout.services.outbox_batch import EXISTS, NO_RECIPIENT, QUEUED, queue_campaign_mails
from models import Event, OutboxMessage, PortalToken
from tests.mail_support import NOW, add_campaign, add_contact, add_enrolment, add_municipality

COLUMNS = ("ags", "kind", "sequence", "message_id", "sender", "recipients", "cc", "subject", "raw")


def _world(session: Session):
    campaign = add_campaign(session)
    pairs = []
    for ags, name in (("08136019", "Essingen"), ("08136010", "Böbingen an der Rems")):
        municipality = add_municipality(session, ags=ags, name=name)
        add_contact(session, ags, f"hauptamt@{ags}.example", name="Anna Müller", salutation="Frau")
        pairs.append((add_enrolment(session, campaign, ags), municipality))
    nobody = add_municipality(session, ags="08136088", name="Niemand")
    pairs.append((add_enrolment(session, campaign, nobody.ags), nobody))
    session.commit()
    return campaign, pairs


def _rows(session: Session) -> list[tuple]:
    rows = session.exec(select(OutboxMessage).order_by(OutboxMessage.ags)).all()
    return [tuple(getattr(r, c) for c in COLUMNS) for r in rows]


def _count(session: Session, model: type) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


@pytest.mark.parametrize("kind", ["information_request", "go_live"])
def test_batch_queues_exactly_what_single_calls_queue(session: Session, kind: str) -> None:
    campaign, pairs = _world(session)
    for enrolment, municipality in pairs:
        queue_campaign_mail(
            session,
            campaign=campaign,
            enrolment=enrolment,
            municipality=municipality,
            kind=kind,
            sequence=1,
            now=NOW,
        )
    single = _rows(session)
    session.rollback()
    requests = [MailRequest(e, m, kind) for e, m in pairs]
    assert queue_campaign_mails(session, campaign=campaign, requests=requests, now=NOW) == [
        QUEUED,
        QUEUED,
        NO_RECIPIENT,
    ]
    assert _rows(session) == single  # same message, byte for byte (the link is not in it)
    assert _count(session, PortalToken) == 2
    session.commit()
    again = queue_campaign_mails(session, campaign=campaign, requests=requests, now=NOW)
    assert again == [EXISTS, EXISTS, NO_RECIPIENT]
    assert _count(session, OutboxMessage) == 2 and _count(session, PortalToken) == 2
    events = session.exec(select(Event).where(Event.kind == "mail_not_queued")).all()
    assert [(e.ags, e.data) for e in events] == [("08136088", {"kind": kind, "sequence": 1})]


def test_a_concurrent_writer_first_wins_without_a_second_token(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign, pairs = _world(session)
    requests = [MailRequest(e, m, "information_request") for e, m in pairs[:2]]
    queue_campaign_mails(session, campaign=campaign, requests=requests[:1], now=NOW)
    session.commit()
    # The other writer's row was not there yet when this batch looked.
    monkeypatch.setattr(outbox_batch, "_existing_keys", lambda *args: set())
    result = queue_campaign_mails(session, campaign=campaign, requests=requests, now=NOW)
    assert result == [EXISTS, QUEUED]
    session.commit()
    assert _count(session, OutboxMessage) == 2 and _count(session, PortalToken) == 2


def test_a_template_error_stores_nothing(session: Session) -> None:
    from efa_rollout.mail.render import MailRenderError

    campaign, pairs = _world(session)
    requests = [MailRequest(e, m, "submission_confirmation") for e, m in pairs]
    with pytest.raises(MailRenderError):
        queue_campaign_mails(session, campaign=campaign, requests=requests, now=NOW)
    session.rollback()
    assert _count(session, OutboxMessage) == 0 and _count(session, PortalToken) == 0
