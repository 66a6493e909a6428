"""Suppression at delivery and retry (real aiosmtpd), and the coordinator's address (real Dovecot)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from efa_rollout.cli import app
from efa_rollout.mail.delivery import deliver
from efa_rollout.services.bounces import process_bounces
from efa_rollout.services.outbox import queue_coordinator_mail
from efa_rollout.services.suppression import suppress, unsuppress
from efa_rollout.settings import get_settings
from models import Event, OutboxMessage, Suppression
from tests.bounce_samples import rfc3464
from tests.imap_support import Dovecot, dovecot_available, start_dovecot
from tests.mail_support import (
    NOW,
    add_campaign,
    queue_request,
)
from tests.smtp_fault_server import FaultServer

runner = CliRunner()
OK = "hauptamt@essingen.example"
SECOND = "buergermeister@essingen.example"
COORDINATOR = "egov-koordination@ostalbkreis.example"  # the default EFA_COORDINATOR_EMAIL


def _queue(session: Session, *emails: str) -> OutboxMessage:
    """The information request to Essingen, whose Hauptamt contacts have EMAILS; committed."""
    row = queue_request(session, *emails)
    assert row.recipients == list(emails)
    return row


def _suppress(session: Session, address: str) -> None:
    """ADDRESS on the suppression list, as a permanent bounce puts it there."""
    suppress(session, address, reason="550 5.1.1 User unknown", status="5.1.1", row=None, now=NOW)
    session.commit()


def _events(session: Session, stage: str) -> list[Event]:
    session.expire_all()
    events = session.exec(select(Event).where(Event.kind == "mail_recipient_suppressed")).all()
    return [e for e in events if e.data.get("stage") == stage]


def _deliver(session: Session, **kwargs: object) -> None:
    """deliver(), after ending the test session's transaction (SQLite: BEGIN IMMEDIATE)."""
    session.commit()
    deliver(**kwargs)  # type: ignore[arg-type]


def _efa(session: Session, *args: str) -> str:
    session.commit()
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


def test_an_address_suppressed_after_queueing_is_skipped_at_delivery(
    session: Session, smtp_server: FaultServer
) -> None:
    row = _queue(session, OK, SECOND)
    _suppress(session, SECOND)  # a bounce of an earlier mail arrived after queueing

    _deliver(session, now=NOW)

    session.refresh(row)
    [stored] = smtp_server.handler.stored
    assert stored.rcpt_tos == (OK,)  # the server never heard of the suppressed address
    assert smtp_server.handler.rcpt_calls[SECOND] == 0
    assert row.status == "sent"
    assert row.recipient_status[OK]["status"] == "sent"
    assert row.recipient_status[SECOND]["status"] == "suppressed"
    assert "gesperrt" in row.recipient_status[SECOND]["text"]
    assert f"{SECOND} (gesperrt)" in (row.last_error or "")
    [event] = _events(session, "delivery")
    assert event.data["recipient"] == SECOND and event.data["outbox_id"] == row.id
    assert "Nicht an buergermeister@essingen.example gesendet (Zustellung)" in (event.reason or "")
    _deliver(session, now=NOW + timedelta(days=1))  # nothing left to do, nothing logged twice
    assert len(smtp_server.handler.stored) == 1 and len(_events(session, "delivery")) == 1


def test_retry_does_not_send_to_a_suppressed_address_until_it_is_lifted(
    session: Session, smtp_server: FaultServer
) -> None:
    row = _queue(session, OK)
    _suppress(session, OK)

    # Delivery of the queued mail: nobody left to send to, no SMTP exchange at all.
    _deliver(session, now=NOW)
    session.refresh(row)
    assert smtp_server.handler.stored == [] and smtp_server.handler.rcpt_calls[OK] == 0
    assert row.status == "failed_permanently" and row.recipient_status[OK]["status"] == "suppressed"
    assert "efa contacts unsuppress" in (row.last_error or "")
    session.commit()
    listing = _efa(session, "mail", "outbox")
    assert f"Nicht eingestellt an {OK} (gesperrt)" in listing

    # `efa mail retry` of the failed row: refused for that recipient, with a line saying why.
    out = _efa(session, "mail", "retry", str(row.id))
    assert "0 Mail(s) zum erneuten Versand eingereiht" in out
    assert f"nicht an {OK} – Adresse gesperrt" in out
    assert f"efa contacts unsuppress {OK}" in out
    assert "kein offener Empfänger ohne Sperre" in out
    session.expire_all()
    assert session.get(OutboxMessage, row.id).status == "failed_permanently"  # type: ignore[union-attr]
    assert len(_events(session, "retry")) == 1
    session.commit()
    _deliver(session)
    assert smtp_server.handler.stored == [] and smtp_server.handler.rcpt_calls[OK] == 0

    # Lifted by the coordinator: the retry goes out, once.
    unsuppress(session, OK, now=NOW, actor="test")
    session.commit()
    out = _efa(session, "mail", "retry", str(row.id))
    assert "1 Mail(s) zum erneuten Versand eingereiht" in out
    _deliver(session)  # the CLI's retry is due at the real now
    session.refresh(row)
    assert row.status == "sent" and smtp_server.handler.copies(row.message_id) == 1


def test_retry_of_a_partly_delivered_mail_skips_only_the_suppressed_recipient(
    session: Session, smtp_server: FaultServer
) -> None:
    row = _queue(session, OK, "refuse@essingen.example", "flaky@essingen.example")
    _deliver(session, now=NOW)  # OK sent, refuse 550, flaky 451 → retrying
    session.refresh(row)
    assert row.status == "retrying"
    row.status = "failed_permanently"  # as after giving up; the coordinator retries by hand
    session.add(row)
    session.commit()
    _suppress(session, "refuse@essingen.example")
    out = _efa(session, "mail", "retry", str(row.id))
    assert "1 Mail(s) zum erneuten Versand eingereiht" in out
    assert "nicht an refuse@essingen.example – Adresse gesperrt" in out
    smtp_server.handler.rcpt_calls["flaky@essingen.example"] = 2  # accepted from now on
    _deliver(session)  # the CLI's retry is due at the real now
    session.refresh(row)
    first, second = smtp_server.handler.stored
    assert first.rcpt_tos == (OK,) and second.rcpt_tos == ("flaky@essingen.example",)
    assert smtp_server.handler.rcpt_calls["refuse@essingen.example"] == 1  # only the first 550
    assert row.status == "sent"
    assert row.recipient_status["refuse@essingen.example"]["status"] == "suppressed"


# --- the coordinator's own address -------------------------------------------------------------


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    """One Dovecot for the module."""
    if not dovecot_available():
        if os.environ.get("CI"):
            pytest.fail("dovecot-imapd fehlt in CI: .ci/run hätte es installieren müssen")
        pytest.skip("dovecot-imapd fehlt (.ci/run installiert es)")
    server = start_dovecot()
    yield server
    server.stop()


def test_a_bounce_of_the_weekly_report_never_suppresses_the_coordinator(
    dovecot: Dovecot,
    session: Session,
    smtp_server: FaultServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dovecot.clear()
    monkeypatch.setenv("EFA_BOUNCE_IMAP_URL", dovecot.url())
    get_settings.cache_clear()
    campaign = add_campaign(session)
    extra = {"week": "11/2025", "as_of": NOW.date(), "rows": [], "mail_stats": {}}
    report = queue_coordinator_mail(
        session, campaign=campaign, kind="weekly_report", sequence=1, now=NOW, extra=extra
    )
    assert report is not None and report.recipients == [COORDINATOR]
    session.commit()
    _deliver(session, now=NOW)
    assert smtp_server.handler.copies(report.message_id) == 1

    dovecot.append([rfc3464(message_id=report.message_id, recipient=COORDINATOR)])
    with caplog.at_level("WARNING"):
        run = process_bounces(now=NOW + timedelta(hours=1))

    assert run.counts["permanent"] == 1 and run.counts["coordinator"] == 1
    assert "Adresse der Koordination (nicht gesperrt, bitte prüfen)" in run.summary()
    assert run.outcomes[0]["Kontakt gesperrt"] == "nein (Koordination)"
    session.expire_all()
    assert session.exec(select(Suppression)).all() == []
    [event] = session.exec(select(Event).where(Event.kind == "coordinator_address_bounced")).all()
    assert COORDINATOR in (event.reason or "") and "EFA_COORDINATOR_EMAIL" in (event.reason or "")
    assert any("Adresse der Koordination" in r.getMessage() for r in caplog.records)
    session.refresh(report)
    assert report.recipient_status[COORDINATOR]["status"] == "bounced"  # the truth is recorded

    # Next week's report still reaches the coordinator.
    session.commit()
    following = queue_coordinator_mail(
        session, campaign=campaign, kind="weekly_report", sequence=2, now=NOW, extra=extra
    )
    assert following is not None
    session.commit()
    _deliver(session, now=NOW + timedelta(days=7))
    assert smtp_server.handler.copies(following.message_id) == 1


def test_an_old_suppression_entry_of_the_coordinator_does_not_block_delivery(
    session: Session, smtp_server: FaultServer
) -> None:
    """An entry from before this rule (or added by hand) must not stop the weekly report."""
    _suppress(session, COORDINATOR)
    campaign = add_campaign(session)
    extra = {"week": "11/2025", "as_of": NOW.date(), "rows": [], "mail_stats": {}}
    report = queue_coordinator_mail(
        session, campaign=campaign, kind="weekly_report", sequence=1, now=NOW, extra=extra
    )
    assert report is not None
    session.commit()
    _deliver(session, now=NOW)
    assert smtp_server.handler.copies(report.message_id) == 1
