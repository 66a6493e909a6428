"""The ledger's plain DB-API statements write what the ORM reads back (both databases)."""

from __future__ import annotations

import socket
from datetime import UTC, timedelta
from pathlib import Path

from sqlmodel import Session, select

from models import DeliveryAttempt, OutboxMessage
from tests.mail_support import NOW, queue_request
from tests.smtp_fault_server import FaultServer
from tests.test_mail_delivery import _deliver


def _only_attempt(session: Session, row: OutboxMessage) -> DeliveryAttempt:
    [attempt] = session.exec(
        select(DeliveryAttempt).where(DeliveryAttempt.outbox_id == row.id)
    ).all()
    return attempt


def test_smtp_group_commit_values(session: Session, smtp_server: FaultServer) -> None:
    rows = [
        queue_request(session, f"ok{k}@gemeinde{k}.example", ags=f"0813601{k}", name=f"Ort {k}")
        for k in range(3)
    ]
    report = _deliver(session, now=NOW)
    assert report.total("sent") == 3
    for row in rows:
        session.refresh(row)
        assert (row.status, row.attempts, row.claimed_by, row.claimed_at) == ("sent", 1, None, None)
        assert row.next_attempt_at is None and row.last_error is None
        assert row.sent_at is not None and row.sent_at.tzinfo == UTC
        assert NOW <= row.sent_at < NOW + timedelta(minutes=1)
        [(address, state)] = row.recipient_status.items()
        assert address in row.recipients and state["status"] == "sent" and state["code"] == 250
        attempt = _only_attempt(session, row)
        assert (attempt.outcome, attempt.smtp_code) == ("sent", 250)
        assert attempt.smtp_text is not None and attempt.smtp_text.startswith("[content] ")
        assert attempt.worker is not None and attempt.worker.startswith(socket.gethostname()[:80])
        assert NOW <= attempt.at.replace(tzinfo=UTC) < NOW + timedelta(minutes=1)


def test_folder_group_commit_inserts_the_attempt(session: Session, efa_env: Path) -> None:
    row = queue_request(session, "ok@essingen.example")
    report = _deliver(session, now=NOW)
    assert report.total("sent") == 1
    session.refresh(row)
    assert row.status == "sent" and row.attempts == 1 and row.claimed_by is None
    attempt = _only_attempt(session, row)
    assert (attempt.outcome, attempt.smtp_code) == ("sent", None)
    assert attempt.smtp_text is not None and attempt.smtp_text.startswith("[file] gespeichert: ")
