"""Calendar invites: the .ics parsed back with icalendar matches the definition's dates."""

from __future__ import annotations

import email
from datetime import UTC, date, datetime, timedelta
from email import policy

from icalendar import Calendar
from sqlmodel import Session

from efa_rollout.definitions import get_definition
from efa_rollout.services.outbox import queue_campaign_mail
from models import OutboxMessage
from tests.mail_support import setup_one

BEFORE_ALL = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)  # before every key date of go-live 01.08.2025


def _invite(row: OutboxMessage) -> Calendar:
    message = email.message_from_bytes(row.raw, policy=policy.default)
    parts = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1 and parts[0].get_filename() == "Termine.ics"
    return Calendar.from_ical(parts[0].get_payload(decode=True))


def _events(calendar: Calendar) -> dict[str, dict[str, object]]:
    return {
        str(e["x-efa-key"]): {
            "uid": str(e["uid"]),
            "start": e.decoded("dtstart"),
            "end": e.decoded("dtend"),
            "sequence": int(e["sequence"]),
        }
        for e in calendar.walk("VEVENT")
    }


def _queue(session: Session, campaign, enrolment, municipality, kind: str, now: datetime, **kw):
    row = queue_campaign_mail(
        session,
        campaign=campaign,
        enrolment=enrolment,
        municipality=municipality,
        kind=kind,
        sequence=kw.pop("sequence", 1),
        now=now,
        **kw,
    )
    assert row is not None
    session.commit()
    return row


def test_information_request_carries_every_key_date(session: Session) -> None:
    campaign, enrolment, municipality = setup_one(session)
    row = _queue(session, campaign, enrolment, municipality, "information_request", BEFORE_ALL)
    calendar = _invite(row)
    assert str(calendar["method"]) == "PUBLISH"
    zones = [str(z["tzid"]) for z in calendar.walk("VTIMEZONE")]
    assert zones == ["Europe/Berlin"]
    assert {c.name for c in calendar.walk("VTIMEZONE")[0].subcomponents} >= {
        "STANDARD",
        "DAYLIGHT",
    }
    events = _events(calendar)
    expected = get_definition("viba-bw").resolve_dates(date(2025, 8, 1))
    assert events["go_live"]["start"] == date(2025, 8, 1) == campaign.go_live
    assert events["collection_deadline"]["start"] == date.fromisoformat(
        expected["collection_deadline"]
    )
    assert events["mandatory_from"]["start"] == date.fromisoformat(expected["mandatory_from"])
    trainings = [events[k]["start"] for k in sorted(events) if k.startswith("training-")]
    assert trainings == [date.fromisoformat(d) for d in expected["trainings"]]
    assert "silent_go_live" not in events  # only pilots are in the silent go-live
    for event in events.values():
        assert event["end"] == event["start"] + timedelta(days=1)  # type: ignore[operator]
        assert event["sequence"] == 0
    assert events["go_live"]["uid"] == "viba-ostalbkreis.08136019.go-live@ostalbkreis.example"


def test_moved_date_keeps_uid_and_raises_sequence(session: Session) -> None:
    campaign, enrolment, municipality = setup_one(session)
    first = _events(
        _invite(
            _queue(session, campaign, enrolment, municipality, "information_request", BEFORE_ALL)
        )
    )
    campaign.go_live = date(2025, 9, 1)
    session.add(campaign)
    session.commit()
    reminder_day = datetime(2025, 8, 20, 8, 0, tzinfo=UTC)
    moved = _events(
        _invite(_queue(session, campaign, enrolment, municipality, "reminder", reminder_day))
    )
    assert moved["go_live"]["uid"] == first["go_live"]["uid"]
    assert moved["go_live"]["start"] == date(2025, 9, 1)
    assert moved["go_live"]["sequence"] == 1
    assert set(moved) == {"go_live"}  # a reminder repeats only the dates of the next weeks
    again = _events(
        _invite(
            _queue(session, campaign, enrolment, municipality, "reminder", reminder_day, sequence=2)
        )
    )
    assert again["go_live"]["sequence"] == 1  # same date again: no new revision


def test_no_invite_for_past_dates(session: Session) -> None:
    campaign, enrolment, municipality = setup_one(session)
    row = queue_campaign_mail(
        session,
        campaign=campaign,
        enrolment=enrolment,
        municipality=municipality,
        kind="go_live",
        sequence=1,
        now=datetime(2025, 8, 1, 8, tzinfo=UTC),
    )
    assert row is not None
    message = email.message_from_bytes(row.raw, policy=policy.default)
    assert not [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
