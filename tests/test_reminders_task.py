"""Reminders over the database: candidates in batches, history, dropped days, the CLI, the flow.

The mail layer (`efa_rollout.services.outbox.queue_campaign_mail`) is replaced by a recording fake
in most tests, so the contract with it is checked on its own; the tests marked `real_mail` use
the real module and are skipped while it does not exist.
"""

from __future__ import annotations

import email
import email.policy
import importlib.util
import sys
import types
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, event
from sqlmodel import Session, select

from efa_rollout.definitions import CampaignDefinition
from efa_rollout.domain.reminders import Action
from efa_rollout.errors import UserError
from efa_rollout.services.orchestration import remind
from efa_rollout.services.reminders import process_batch
from models import (
    Campaign,
    ChecklistItemState,
    Contact,
    Enrolment,
    Event,
    Municipality,
    OutboxMessage,
)

BERLIN = ZoneInfo("Europe/Berlin")
GO_LIVE = date(2025, 4, 25)  # 'schulung' (-6w) is due Friday 14.03.2025
CAMPAIGN = "test-ostalb"
AALEN, PAUSED, DONE, SUMMARY, COLLECTING = (
    "08136088",
    "08136003",
    "08136007",
    "08136010",
    "08136013",
)

DEFINITION = CampaignDefinition.model_validate(
    {
        "key": "test",
        "title": "Testdienst – Einführung",
        "service": "Testdienst",
        "service_key": "test",
        "stages": [
            "information_collection",
            "summary_distribution",
            "checklist_follow_up",
            "go_live",
        ],
        "contact_roles": ["Hauptamt"],
        "questionnaire": [{"key": "kontakt", "label": "Kontakt", "type": "text", "required": True}],
        "checklist": [
            {"key": "schulung", "title": "Schulung durchgeführt", "due": "-6w"},
            {"key": "support", "title": "First-Level-Support eingerichtet", "due": "-5w"},
            {"key": "konten", "title": "Konten eingerichtet", "owner": "Landratsamt", "due": "-8w"},
            {"key": "hinweis", "title": "Hinweis im Amtsblatt", "due": "+2w", "required": False},
        ],
    }
)


def at(day: date, hour: int = 9) -> datetime:
    """DAY at HOUR local time, aware UTC."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=BERLIN).astimezone(UTC)


# --- data ------------------------------------------------------------------------------------


def add_campaign(session: Session, campaign_id: str = CAMPAIGN, status: str = "running") -> None:
    dates = DEFINITION.resolve_dates(GO_LIVE, {"collection_deadline": date(2025, 3, 14)})
    session.add(
        Campaign(
            id=campaign_id,
            template="test",
            title=DEFINITION.title,
            service=DEFINITION.service,
            area_code="08136",
            go_live=GO_LIVE,
            dates=dates,
            definition=DEFINITION.model_dump(mode="json"),
            status=status,
        )
    )


def add_municipality(session: Session, ags: str, name: str) -> None:
    session.add(
        Municipality(ags=ags, name=name, district_code="08136", state_code="08", type_code="64")
    )
    session.flush()
    session.add(Contact(ags=ags, role="Hauptamt", email=f"hauptamt@{ags}.example"))
    session.add(Contact(ags=ags, role="Bürgermeister", email=f"bm@{ags}.example"))


def add_enrolment(
    session: Session,
    ags: str,
    *,
    stage: str = "checklist_follow_up",
    status: str = "active",
    done: tuple[str, ...] = (),
    campaign_id: str = CAMPAIGN,
) -> None:
    enrolment = Enrolment(
        campaign_id=campaign_id,
        ags=ags,
        stage=stage,
        status=status,
        stage_entered_at=datetime(2025, 2, 3, 8, tzinfo=UTC),
    )
    session.add(enrolment)
    session.flush()
    for item in DEFINITION.checklist:
        session.add(
            ChecklistItemState(
                enrolment_id=enrolment.id,  # type: ignore[arg-type]
                item_key=item.key,
                done=item.key in done,
            )
        )


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    """One campaign: an open, a paused, a done, a summary-stage and a collecting municipality."""
    with Session(engine) as session:
        add_campaign(session)
        for ags, name in [
            (AALEN, "Aalen"),
            (PAUSED, "Abtsgmünd"),
            (DONE, "Bopfingen"),
            (SUMMARY, "Ellwangen (Jagst)"),
            (COLLECTING, "Essingen"),
        ]:
            add_municipality(session, ags, name)
        session.flush()
        add_enrolment(session, AALEN)
        add_enrolment(session, PAUSED, status="paused")
        add_enrolment(session, DONE, done=("schulung", "support", "hinweis"))
        add_enrolment(session, SUMMARY, stage="summary_distribution")
        add_enrolment(session, COLLECTING, stage="information_collection")
        session.commit()
    return engine


# --- a recording fake of the mail layer ------------------------------------------------------


class FakeMail:
    """Stands in for efa_rollout.services.outbox: records calls, writes idempotent outbox rows."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def queue_campaign_mail(self, session: Session, **kwargs: Any) -> OutboxMessage | None:
        self.calls.append(kwargs)
        key = (
            kwargs["campaign"].id,
            kwargs["municipality"].ags,
            kwargs["kind"],
            kwargs["sequence"],
        )
        existing = session.exec(
            select(OutboxMessage).where(
                OutboxMessage.campaign_id == key[0],
                OutboxMessage.ags == key[1],
                OutboxMessage.kind == key[2],
                OutboxMessage.sequence == key[3],
            )
        ).first()
        if existing is not None:
            return existing
        message = outbox_row(*key, queued_at=kwargs["now"], not_after=kwargs["not_after"])
        session.add(message)
        session.flush()
        return message

    def queue_campaign_mails(
        self, session: Session, *, campaign: Campaign, requests: list[Any], now: datetime
    ) -> list[str]:
        """The batch form: the same call recorded once per request."""
        results = []
        for request in requests:
            message = self.queue_campaign_mail(
                session,
                campaign=campaign,
                enrolment=request.enrolment,
                municipality=request.municipality,
                kind=request.kind,
                sequence=request.sequence,
                now=now,
                extra=request.extra,
                not_after=request.not_after,
                cc_coordinator=request.cc_coordinator,
                recipient_roles=request.recipient_roles,
            )
            if message is not None and request.meta:
                message.meta = {**(message.meta or {}), **request.meta}
                session.add(message)
            results.append("no_recipient" if message is None else "queued")
        return results


def outbox_row(
    campaign_id: str,
    ags: str,
    kind: str,
    sequence: int,
    *,
    queued_at: datetime,
    not_after: datetime | None = None,
) -> OutboxMessage:
    return OutboxMessage(
        campaign_id=campaign_id,
        ags=ags,
        kind=kind,
        sequence=sequence,
        message_id=f"<{campaign_id}.{ags}.{kind}.{sequence}@test.example>",
        sender="egov@test.example",
        recipients=[f"hauptamt@{ags}.example"],
        subject=f"{kind} {sequence}",
        raw=b"x",
        queued_at=queued_at,
        not_after=not_after,
    )


@pytest.fixture
def fake_mail(monkeypatch: pytest.MonkeyPatch) -> FakeMail:
    from efa_rollout.services import outbox as real
    from efa_rollout.services import outbox_batch as real_batch

    fake = FakeMail()
    module = types.ModuleType("efa_rollout.services.outbox")
    module.queue_campaign_mail = fake.queue_campaign_mail  # type: ignore[attr-defined]
    module.MailRequest = real.MailRequest  # type: ignore[attr-defined]
    batch = types.ModuleType("efa_rollout.services.outbox_batch")
    batch.queue_campaign_mails = fake.queue_campaign_mails  # type: ignore[attr-defined]
    batch.NO_RECIPIENT = real_batch.NO_RECIPIENT  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "efa_rollout.services.outbox", module)
    monkeypatch.setitem(sys.modules, "efa_rollout.services.outbox_batch", batch)
    return fake


def outbox(engine: Engine) -> list[tuple[str | None, str, int]]:
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        return [(r.ags, r.kind, r.sequence) for r in rows]


def drop_events(engine: Engine) -> list[tuple[str | None, str]]:
    with Session(engine) as session:
        rows = session.exec(select(Event).where(Event.kind == "reminder_dropped")).all()
        return sorted((r.ags, day) for r in rows for day in r.data["days"])


# --- the task logic with the fake mail layer -------------------------------------------------


def test_reminds_open_municipalities_only_and_passes_the_contract(
    seeded: Engine, fake_mail: FakeMail
) -> None:
    [report] = remind(campaign_id=CAMPAIGN, as_of=at(date(2025, 3, 11)), engine=seeded)
    assert report.reminders == 2 and report.escalations == 0
    assert sorted(c["municipality"].ags for c in fake_mail.calls) == [COLLECTING, AALEN]
    call = next(c for c in fake_mail.calls if c["municipality"].ags == AALEN)
    assert call["kind"] == "reminder" and call["sequence"] == 1
    assert call["campaign"].id == CAMPAIGN and call["enrolment"].ags == AALEN
    assert call["now"] == at(date(2025, 3, 11))
    assert call["not_after"] == at(date(2025, 3, 11), 16)
    assert call["cc_coordinator"] is False and call["recipient_roles"] is None
    extra = call["extra"]
    assert extra["reminder_kind"] == "before"
    assert extra["deadline"] == date(2025, 3, 14)
    # the ladder runs per deadline: 11.03. is the friendly step of 'schulung' (14.03.) only
    assert [(i["key"], i["due"], i["overdue"]) for i in extra["open_items"]] == [
        ("schulung", date(2025, 3, 14), False),
    ]
    assert [g["due"] for g in extra["deadline_groups"]] == [date(2025, 3, 14)]
    with Session(seeded) as session:
        row = session.exec(select(OutboxMessage).where(OutboxMessage.ags == AALEN)).one()
        assert row.meta["reminder_items"] == [["schulung", "2025-03-14"]]
    collecting = next(c for c in fake_mail.calls if c["municipality"].ags == COLLECTING)
    assert [i["key"] for i in collecting["extra"]["open_items"]] == ["fragebogen"]


def test_running_twice_queues_nothing_more(seeded: Engine, fake_mail: FakeMail) -> None:
    remind(as_of=at(date(2025, 3, 11)), engine=seeded)
    before = outbox(seeded)
    [again] = remind(as_of=at(date(2025, 3, 11), 14), engine=seeded)
    assert again.reminders == 0
    assert outbox(seeded) == before and len(before) == 2
    assert len(fake_mail.calls) == 2


def test_month_of_runs_gives_before_deadline_repeat_and_escalation(
    seeded: Engine, fake_mail: FakeMail
) -> None:
    day = date(2025, 3, 3)
    while day <= date(2025, 4, 10):
        remind(campaign_id=CAMPAIGN, as_of=at(day), engine=seeded)
        day += timedelta(days=1)
    aalen = [
        (c["now"].astimezone(BERLIN).date(), c["kind"], c["sequence"])
        for c in fake_mail.calls
        if c["municipality"].ags == AALEN
    ]
    # 'schulung' due 14.03., 'support' due 21.03.: each deadline its own steps, one mail a day
    assert aalen == [
        (date(2025, 3, 11), "reminder", 1),  # schulung: friendly
        (date(2025, 3, 14), "reminder", 2),  # schulung: deadline
        (date(2025, 3, 18), "reminder", 3),  # support: friendly
        (date(2025, 3, 21), "reminder", 4),  # schulung: repeat, support: deadline
        (date(2025, 3, 28), "reminder", 5),  # both: repeat
        (date(2025, 4, 4), "escalation", 1),  # schulung: 3 reminders since its deadline
    ]
    escalation = next(c for c in fake_mail.calls if c["kind"] == "escalation")
    assert escalation["recipient_roles"] == ["Bürgermeister", "Hauptamt"]
    assert escalation["cc_coordinator"] is True


def test_stop_on_done(seeded: Engine, fake_mail: FakeMail) -> None:
    remind(as_of=at(date(2025, 3, 14)), engine=seeded)
    with Session(seeded) as session:
        enrolment = session.exec(select(Enrolment).where(Enrolment.ags == AALEN)).one()
        for state in session.exec(
            select(ChecklistItemState).where(ChecklistItemState.enrolment_id == enrolment.id)
        ):
            state.done = True
            session.add(state)
        session.commit()
    calls = len(fake_mail.calls)
    [report] = remind(as_of=at(date(2025, 3, 21)), engine=seeded)
    aalen = next(r for r in report.rows if r.ags == AALEN)
    assert aalen.action == Action.NOTHING and aalen.open_items == 0
    assert all(c["municipality"].ags != AALEN for c in fake_mail.calls[calls:])


def test_late_send_guard_drops_stale_days_and_logs_them_once(
    seeded: Engine, fake_mail: FakeMail
) -> None:
    remind(as_of=at(date(2025, 3, 11)), engine=seeded)
    # The flow did not run until 25.03.: the steps of 14.03., 18.03. and 21.03. passed without a
    # mail, and both deadlines (14.03., 21.03.) are past: nothing is made up.
    [report] = remind(as_of=at(date(2025, 3, 25)), engine=seeded)
    assert report.reminders == 0 and report.dropped == 6
    assert len(fake_mail.calls) == 2
    expected = [
        (COLLECTING, "2025-03-14"),
        (COLLECTING, "2025-03-21"),
        (AALEN, "2025-03-14"),
        (AALEN, "2025-03-18"),
        (AALEN, "2025-03-21"),
        (AALEN, "2025-03-21"),  # the repeat of 14.03. and the deadline of 21.03.
    ]
    assert drop_events(seeded) == sorted(expected)
    [again] = remind(as_of=at(date(2025, 3, 25), 11), engine=seeded)
    assert again.dropped == 0 and drop_events(seeded) == sorted(expected)
    # Next reminder day: only the current reminder goes out, with the next sequence.
    [current] = remind(as_of=at(date(2025, 3, 28)), engine=seeded)
    assert current.reminders == 2 and current.dropped == 0
    assert [(c["sequence"], c["extra"]["reminder_kind"]) for c in fake_mail.calls[2:]] == [
        (2, "repeat"),
        (2, "repeat"),
    ]
    with Session(seeded) as session:
        logged = session.exec(
            select(Event).where(Event.kind == "reminder_dropped", Event.ags == AALEN)
        ).one()
        assert logged.reason is not None
        assert "14.03.2025, 18.03.2025, 21.03.2025" in logged.reason
        assert "verstrichen" in logged.reason
        assert [(d["day"], d["kind"], d["deadline"]) for d in logged.data["drops"]] == [
            ("2025-03-14", "deadline", "2025-03-14"),
            ("2025-03-21", "repeat", "2025-03-14"),
            ("2025-03-18", "before", "2025-03-21"),
            ("2025-03-21", "deadline", "2025-03-21"),
        ]


def test_a_missed_friendly_step_is_made_up_on_the_next_working_day(
    seeded: Engine, fake_mail: FakeMail
) -> None:
    # Nothing ran on 11.03. (the friendly steps of 14.03.): made up on 12.03., once.
    [report] = remind(as_of=at(date(2025, 3, 12)), engine=seeded)
    assert report.reminders == 2 and report.dropped == 0
    assert {c["extra"]["reminder_kind"] for c in fake_mail.calls} == {"before"}
    [again] = remind(as_of=at(date(2025, 3, 13)), engine=seeded)
    assert again.reminders == 0
    [deadline] = remind(as_of=at(date(2025, 3, 14)), engine=seeded)
    assert deadline.reminders == 2
    assert [c["sequence"] for c in fake_mail.calls] == [1, 1, 2, 2]


def test_no_reminder_on_a_day_with_a_mail_from_another_campaign(
    seeded: Engine, fake_mail: FakeMail
) -> None:
    with Session(seeded) as session:
        add_campaign(session, "other-campaign")
        session.flush()
        session.add(
            outbox_row("other-campaign", AALEN, "go_live", 1, queued_at=at(date(2025, 3, 11), 6))
        )
        session.add(  # yesterday's mail of the other campaign does not count today
            outbox_row(
                "other-campaign", COLLECTING, "go_live", 1, queued_at=at(date(2025, 3, 10), 15)
            )
        )
        session.commit()
    remind(campaign_id=CAMPAIGN, as_of=at(date(2025, 3, 11)), engine=seeded)
    assert [c["municipality"].ags for c in fake_mail.calls] == [COLLECTING]


def test_no_reminder_on_a_day_with_another_mail_to_the_municipality(
    seeded: Engine, fake_mail: FakeMail
) -> None:
    with Session(seeded) as session:
        session.add(outbox_row(CAMPAIGN, AALEN, "summary", 1, queued_at=at(date(2025, 3, 11), 7)))
        session.commit()
    remind(as_of=at(date(2025, 3, 11)), engine=seeded)
    assert [c["municipality"].ags for c in fake_mail.calls] == [COLLECTING]
    remind(as_of=at(date(2025, 3, 12)), engine=seeded)  # made up the next working day
    assert [c["municipality"].ags for c in fake_mail.calls] == [COLLECTING, AALEN]


def test_outside_the_window_everything_is_deferred(seeded: Engine, fake_mail: FakeMail) -> None:
    [report] = remind(as_of=at(date(2025, 3, 15), 10), engine=seeded)  # Saturday
    assert report.deferred == 2 and report.reminders == 0
    assert fake_mail.calls == [] and outbox(seeded) == []


def test_not_running_campaign_is_reported_not_reminded(engine: Engine, fake_mail: FakeMail) -> None:
    with Session(engine) as session:
        add_campaign(session, "entwurf", status="created")
        add_municipality(session, AALEN, "Aalen")
        session.flush()
        add_enrolment(session, AALEN, campaign_id="entwurf")
        session.commit()
    assert remind(as_of=at(date(2025, 3, 11)), engine=engine) == []
    [report] = remind(campaign_id="entwurf", as_of=at(date(2025, 3, 11)), engine=engine)
    assert report.evaluated == 0 and "nicht gestartet" in (report.note or "")
    assert fake_mail.calls == []


def test_unknown_campaign_is_a_german_error(engine: Engine) -> None:
    with pytest.raises(UserError, match="gibt es nicht"):
        remind(campaign_id="gibtsnicht", engine=engine)


def test_dry_run_writes_nothing(seeded: Engine, fake_mail: FakeMail) -> None:
    remind(as_of=at(date(2025, 3, 11)), engine=seeded)
    [report] = remind(as_of=at(date(2025, 3, 25)), engine=seeded, dry_run=True)
    assert report.dropped == 6 and drop_events(seeded) == []
    [report] = remind(as_of=at(date(2025, 3, 28)), engine=seeded, dry_run=True)
    assert report.reminders == 2
    assert [r.ags for r in report.actions] == [COLLECTING, AALEN]
    assert len(fake_mail.calls) == 2 and len(outbox(seeded)) == 2


# --- set-based: the number of queries does not grow with the municipalities -------------------


def count_queries(engine: Engine, campaign_id: str, when: datetime) -> int:
    statements: list[str] = []

    def listener(*args: Any) -> None:
        statements.append(args[2])

    with Session(engine) as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        ids = list(session.exec(select(Enrolment.id).where(Enrolment.campaign_id == campaign_id)))
        event.listen(engine, "before_cursor_execute", listener)
        try:
            report = process_batch(session, campaign, ids, now=when, dry_run=True)  # type: ignore[arg-type]
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        assert report.reminders == len(ids)
    return len(statements)


def test_query_count_is_independent_of_the_batch_size(engine: Engine) -> None:
    with Session(engine) as session:
        for campaign_id, count in (("klein", 3), ("gross", 60)):
            add_campaign(session, campaign_id)
            for n in range(count):
                ags = f"0813{6 if campaign_id == 'klein' else 7}{n:03d}"
                add_municipality(session, ags, f"Gemeinde {n}")
                session.flush()
                add_enrolment(session, ags, campaign_id=campaign_id)
        session.commit()
    small = count_queries(engine, "klein", at(date(2025, 3, 11)))
    large = count_queries(engine, "gross", at(date(2025, 3, 11)))
    assert small == large <= 6


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_dry_run_lists_in_german_and_queues_nothing(
    seeded: Engine, fake_mail: FakeMail
) -> None:
    from typer.testing import CliRunner

    from efa_rollout.cli import app

    result = CliRunner().invoke(app, ["remind", "--as-of", "2025-03-11", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Probelauf" in result.output
    assert f"{CAMPAIGN}: 2 Erinnerung(en) und 0 Eskalation(en) würden vorgemerkt" in result.output
    assert "08136088 Aalen: 1. Erinnerung (freundliche Vorab-Erinnerung)" in result.output
    assert "Abtsgmünd" not in result.output
    assert fake_mail.calls == [] and outbox(seeded) == []


def test_cli_queues_and_reports_counts(seeded: Engine, fake_mail: FakeMail) -> None:
    from typer.testing import CliRunner

    from efa_rollout.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["remind", "--campaign", CAMPAIGN, "--as-of", "2025-03-11T09:30"])
    assert result.exit_code == 0, result.output
    assert f"{CAMPAIGN}: 2 Erinnerung(en) und 0 Eskalation(en) vorgemerkt" in result.output
    assert len(outbox(seeded)) == 2
    result = runner.invoke(app, ["remind", "--as-of", "2025-03-15"])
    assert "2 zurückgestellt" in result.output
    result = runner.invoke(app, ["remind", "--campaign", "gibtsnicht"])
    assert isinstance(result.exception, UserError)
    assert "gibt es nicht" in result.exception.message


# --- with the real mail layer ----------------------------------------------------------------

real_mail = pytest.mark.skipif(
    importlib.util.find_spec("efa_rollout.services.outbox") is None,
    reason="efa_rollout.services.outbox (queue_campaign_mail) is not written yet",
)


@real_mail
def test_real_mail_layer_queues_reminders_and_escalations_once(seeded: Engine) -> None:
    with Session(seeded) as session:
        for sequence, day in enumerate(
            [date(2025, 3, 11), date(2025, 3, 14), date(2025, 3, 21), date(2025, 3, 28)], 1
        ):
            session.add(outbox_row(CAMPAIGN, AALEN, "reminder", sequence, queued_at=at(day)))
        session.commit()
    [report] = remind(as_of=at(date(2025, 4, 4)), engine=seeded)
    assert report.escalations == 1, report.rows
    with Session(seeded) as session:
        escalation = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "escalation")
        ).one()
        assert escalation.ags == AALEN and escalation.sequence == 1
        assert f"bm@{AALEN}.example" in escalation.recipients + escalation.cc
        assert escalation.not_after == at(date(2025, 4, 4), 16)
    [again] = remind(as_of=at(date(2025, 4, 4), 13), engine=seeded)
    assert again.escalations == 0 and again.reminders == 0


@real_mail
def test_real_mail_layer_reminder_mail_lists_open_items(seeded: Engine) -> None:
    # 21.03.: the repeat of 'schulung' (14.03., overdue) and the deadline of 'support' (21.03.)
    [report] = remind(as_of=at(date(2025, 3, 21)), engine=seeded)
    assert report.reminders == 2 and report.without_recipient == 0
    with Session(seeded) as session:
        message = session.exec(
            select(OutboxMessage).where(
                OutboxMessage.ags == AALEN, OutboxMessage.kind == "reminder"
            )
        ).one()
        assert message.sequence == 1 and message.status == "queued"
        assert message.not_after == at(date(2025, 3, 21), 16)
        mail = email.message_from_bytes(message.raw, policy=email.policy.default)
        assert "Erinnerung" in mail["Subject"] and "Aalen" in mail["Subject"]
        body = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
        assert (
            "Frist Freitag, 14.03.2025 – überschritten, bitte bis spätestens Freitag, 28.03.2025:"
            "\n- Schulung durchgeführt\n" in body
        ), body
        assert "Fällig bis Freitag, 21.03.2025:\n- First-Level-Support eingerichtet\n" in body
        assert "bis zu den genannten Terminen" in body
        assert "Hinweis im Amtsblatt" not in body  # due after go-live: not yet asked for
        html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert "<li>Schulung durchgeführt</li>" in html and "überschritten" in html


# --- the Prefect flow ------------------------------------------------------------------------


@pytest.mark.prefect
@pytest.mark.slow
def test_flow_queues_once_and_publishes_artifacts(
    prefect_harness: None, seeded: Engine, fake_mail: FakeMail
) -> None:
    from flows.send_reminders import send_reminders

    when = at(date(2025, 3, 11))
    [report] = send_reminders(campaign=CAMPAIGN, as_of=when)
    assert report.reminders == 2
    [again] = send_reminders(as_of=when)
    assert again.reminders == 0 and len(outbox(seeded)) == 2
    dry = send_reminders(as_of=at(date(2025, 3, 14)), dry_run=True)
    assert dry[0].reminders == 2 and len(outbox(seeded)) == 2

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        names = {run.name for run in client.read_flow_runs()}
        artifacts = client.read_artifacts()
    assert f"{CAMPAIGN} · erinnerungen · 2025-03-11" in names
    assert "alle · erinnerungen · 2025-03-14" in names
    tables = [a for a in artifacts if a.key == f"erinnerungen-{CAMPAIGN}"]
    assert tables and any("Aalen (08136088)" in str(a.data) for a in tables)
    summaries = [a for a in artifacts if a.key == "erinnerungen-alle" and a.type == "markdown"]
    assert any("Probelauf" in str(a.data) for a in summaries)


def test_flow_summary_and_table_rows_are_german() -> None:
    from efa_rollout.services.reminder_report import ReminderReport, ReminderRow
    from flows.send_reminders import summary_markdown, table_rows

    report = ReminderReport(CAMPAIGN, reminders=1, evaluated=2)
    report.rows.append(
        ReminderRow(
            AALEN, "Aalen", 2, Action.REMIND, "Grund", 3, "repeat", date(2025, 3, 14), queued=True
        )
    )
    report.rows.append(ReminderRow("08136003", "Abtsgmünd", 1, Action.ESCALATE, "Grund", 1))
    row, unsent = table_rows(report)
    assert row["Gemeinde"] == "Aalen (08136088)" and row["Offene Punkte"] == 2
    assert row["Entscheidung"] == "3. Erinnerung (wiederholte Erinnerung)"
    assert row["Frist"] == "14.03.2025"
    assert unsent["Entscheidung"] == "1. Eskalation – nicht vorgemerkt: keine Ansprechperson"
    markdown = summary_markdown([report], at(date(2025, 3, 11)), dry_run=True)
    assert "# Erinnerungen (Probelauf) am 11.03.2025" in markdown
    assert f"| {CAMPAIGN} | 2 | 1 | 0 | 0 | 0 | 0 |" in markdown
