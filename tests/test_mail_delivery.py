"""Delivery against a real aiosmtpd server on loopback, with faults injected per recipient."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from efa_rollout.mail.delivery import deliver
from efa_rollout.mail.ledger import recover_stale_claims
from efa_rollout.mail.transport import TokenBucket, parse_smtp_url, smtp_payload
from efa_rollout.services.mail_preview import queue_test_mail
from efa_rollout.services.outbox_admin import retry_messages
from efa_rollout.settings import get_settings
from models import Contact, DeliveryAttempt, Event, OutboxMessage
from tests.mail_support import NOW, queue_request
from tests.smtp_fault_server import SLOW_SECONDS, FaultServer, free_port


def _deliver(session: Session, **kwargs: object):
    """deliver(), after ending the test session's transaction (SQLite: BEGIN IMMEDIATE)."""
    session.commit()
    return deliver(**kwargs)  # type: ignore[arg-type]


def _attempts(session: Session, row: OutboxMessage) -> list[DeliveryAttempt]:
    return list(
        session.exec(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.outbox_id == row.id)
            .order_by(DeliveryAttempt.id)
        ).all()
    )


def test_accepted_message_is_sent_once(session: Session, smtp_server: FaultServer) -> None:
    row = queue_request(session, "ok@essingen.example")
    report = _deliver(session, now=NOW)
    session.refresh(row)
    assert row.status == "sent" and row.sent_at is not None and row.attempts == 1
    assert smtp_server.handler.copies(row.message_id) == 1
    assert row.recipient_status["ok@essingen.example"]["status"] == "sent"
    [attempt] = _attempts(session, row)
    assert attempt.outcome == "sent" and attempt.smtp_code == 250
    assert report.total("sent") == 1
    _deliver(session, now=NOW + timedelta(hours=1))  # nothing due any more
    assert smtp_server.handler.copies(row.message_id) == 1


def test_550_at_rcpt_fails_permanently_and_flags_the_contact(
    session: Session, smtp_server: FaultServer
) -> None:
    row = queue_request(session, "refuse@essingen.example")
    _deliver(session, now=NOW)
    session.refresh(row)
    assert row.status == "failed_permanently"
    assert smtp_server.handler.copies(row.message_id) == 0
    contact = session.exec(select(Contact).where(Contact.email == "refuse@essingen.example")).one()
    assert contact.delivery_failed_at is not None and contact.delivery_failure.startswith("550")
    assert session.exec(select(Event).where(Event.kind == "contact_undeliverable")).one()
    codes = {(a.recipient, a.smtp_code) for a in _attempts(session, row)}
    assert ("refuse@essingen.example", 550) in codes


def test_451_twice_then_accepted(session: Session, smtp_server: FaultServer) -> None:
    row = queue_request(session, "flaky@essingen.example")
    statuses = []
    for hours in (0, 2, 4):
        _deliver(session, now=NOW + timedelta(hours=hours))
        session.refresh(row)
        statuses.append(row.status)
        if row.status == "retrying":
            assert row.next_attempt_at > NOW + timedelta(hours=hours)
            assert row.next_attempt_at <= NOW + timedelta(hours=hours, minutes=61)
    assert statuses == ["retrying", "retrying", "sent"]
    assert row.attempts == 3
    assert smtp_server.handler.copies(row.message_id) == 1


def test_retry_is_not_due_before_the_backoff(session: Session, smtp_server: FaultServer) -> None:
    row = queue_request(session, "flaky@essingen.example")
    _deliver(session, now=NOW)
    report = _deliver(session, now=NOW + timedelta(seconds=1))
    assert report.attempted == 0
    session.refresh(row)
    assert row.attempts == 1


def test_421_at_data_is_retried_until_too_old(session: Session, smtp_server: FaultServer) -> None:
    row = queue_request(session, "data421@essingen.example")
    _deliver(session, now=NOW)
    session.refresh(row)
    assert row.status == "retrying" and "421" in row.last_error
    assert smtp_server.handler.copies(row.message_id) == 0
    _deliver(session, now=NOW + timedelta(hours=49))
    session.refresh(row)
    assert row.status == "failed_permanently" and "48 Stunden aufgegeben" in row.last_error
    assert smtp_server.handler.copies(row.message_id) == 0
    contact = session.exec(select(Contact)).one()
    assert contact.delivery_failed_at is None  # a relay's 4xx says nothing about the address


def test_disconnect_after_data_is_unknown_and_not_resent(
    session: Session, smtp_server: FaultServer
) -> None:
    row = queue_request(session, "drop@essingen.example")
    _deliver(session, now=NOW)
    session.refresh(row)
    assert row.status == "unknown" and row.next_attempt_at is None
    assert smtp_server.handler.copies(row.message_id) == 1
    _deliver(session, now=NOW + timedelta(days=1))
    assert smtp_server.handler.copies(row.message_id) == 1
    # The coordinator decides to send it again: same Message-ID.
    retry_messages(session, now=NOW + timedelta(days=1), ids=[row.id])
    session.commit()
    _deliver(session, now=NOW + timedelta(days=1))
    assert smtp_server.handler.copies(row.message_id) == 2


def test_reply_timeout_after_data_is_unknown(
    session: Session, smtp_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EFA_SMTP_TIMEOUT_SECONDS", "0.5")  # shorter than the server's SLOW_SECONDS
    get_settings.cache_clear()
    row = queue_request(session, "slow@essingen.example")
    started = time.monotonic()
    _deliver(session, now=NOW)
    assert time.monotonic() - started < SLOW_SECONDS
    session.refresh(row)
    assert row.status == "unknown" and "Timed out" in row.last_error
    assert (
        smtp_server.handler.copies(row.message_id) == 1
    )  # the server has it, the client cannot know
    _deliver(session, now=NOW + timedelta(days=1))
    assert smtp_server.handler.copies(row.message_id) == 1


def test_server_not_running_means_retry(
    session: Session, efa_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EFA_SMTP_URL", f"smtp://127.0.0.1:{free_port()}")
    get_settings.cache_clear()
    rows = [
        queue_request(session, f"ok{i}@x.example", ags=f"0813601{i}", name=f"G{i}")
        for i in range(3)
    ]
    report = _deliver(session, now=NOW)
    assert report.total("retrying") == 3
    for row in rows:
        session.refresh(row)
        assert (
            row.status == "retrying"
            and "Verbindung zum Mailserver fehlgeschlagen" in row.last_error
        )
        assert [a.outcome for a in _attempts(session, row)] == ["retry"]


def test_partial_refusal_sends_to_the_accepted_recipients(
    session: Session, smtp_server: FaultServer
) -> None:
    row = queue_request(session, "ok@essingen.example", "refuse@essingen.example")
    assert row.recipients == ["ok@essingen.example", "refuse@essingen.example"]
    _deliver(session, now=NOW)
    session.refresh(row)
    assert row.status == "sent" and "Teilweise zugestellt" in row.last_error
    assert row.recipient_status["ok@essingen.example"]["status"] == "sent"
    assert row.recipient_status["refuse@essingen.example"] == {
        "status": "refused",
        "code": 550,
        "text": "5.1.1 Mailbox unavailable",
    }
    [stored] = smtp_server.handler.stored
    assert stored.rcpt_tos == ("ok@essingen.example",)
    flagged = session.exec(select(Contact).where(Contact.delivery_failed_at.is_not(None))).all()
    assert [c.email for c in flagged] == ["refuse@essingen.example"]
    _deliver(session, now=NOW + timedelta(days=1))
    assert len(smtp_server.handler.stored) == 1


def test_connections_are_reused(
    session: Session, smtp_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EFA_SMTP_POOL_SIZE", "2")
    get_settings.cache_clear()
    for i in range(30):
        queue_test_mail(session, address=f"ok{i}@x.example", kind="go_live", now=NOW)
    session.commit()
    report = _deliver(session, now=NOW)
    assert report.total("sent") == 30
    assert len(smtp_server.handler.stored) == 30
    assert 1 <= len(smtp_server.handler.sessions) <= 2


def test_a_refused_connection_leaves_the_work_to_the_others(
    session: Session, efa_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FaultServer(max_sessions=2).start()
    try:
        monkeypatch.setenv("EFA_SMTP_URL", server.url)
        monkeypatch.setenv("EFA_SMTP_POOL_SIZE", "4")
        get_settings.cache_clear()
        for i in range(40):
            queue_test_mail(session, address=f"ok{i}@x.example", kind="go_live", now=NOW)
        report = _deliver(session, now=NOW)
        assert report.total("sent") + report.total("retrying") == 40
        assert report.total("retrying") <= 2  # one attempt per refused connection
        assert len(server.handler.sessions) == 2
        server.handler.max_sessions = None  # later the relay has room again
        _deliver(session, now=NOW + timedelta(hours=2))
        assert len(server.handler.stored) == 40
    finally:
        server.stop()


def test_limit_and_only_ids(session: Session, smtp_server: FaultServer) -> None:
    rows = [
        queue_test_mail(session, address=f"ok{i}@x.example", kind="go_live", now=NOW)
        for i in range(5)
    ]
    session.commit()
    assert _deliver(session, now=NOW, only_ids=[rows[3].id]).attempted == 1
    assert smtp_server.handler.copies(rows[3].message_id) == 1
    assert _deliver(session, now=NOW, limit=2).attempted == 2
    assert _deliver(session, now=NOW).attempted == 2


def test_folder_delivery_is_atomic_and_idempotent(session: Session, efa_env: Path) -> None:
    rows = [
        queue_test_mail(session, address=f"a{i}@x.example", kind="go_live", now=NOW)
        for i in range(3)
    ]
    session.commit()
    report = _deliver(session, now=NOW)
    folder = get_settings().effective_mail_dir
    files = sorted(folder.glob("*.eml"))
    assert report.total("sent") == 3 and len(files) == 3
    assert files[0].read_bytes() == rows[0].raw
    assert not list(folder.glob(".*.tmp"))
    # A crash after writing but before recording: the re-run rewrites the same file.
    row = session.get(OutboxMessage, rows[0].id)
    row.status, row.claimed_by, row.claimed_at = (
        "sending",
        "elsewhere:1:x",
        NOW - timedelta(hours=1),
    )
    session.add(row)
    session.commit()
    _deliver(session, now=NOW)
    assert sorted(folder.glob("*.eml")) == files
    session.refresh(row)
    assert row.status == "sent"


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_recovery_requeues_unsent_claims_and_marks_handed_over_ones_unknown(
    session: Session, engine
) -> None:
    import socket

    first = queue_test_mail(session, address="a@x.example", kind="go_live", now=NOW)
    second = queue_test_mail(session, address="b@x.example", kind="go_live", now=NOW)
    alive = queue_test_mail(session, address="c@x.example", kind="go_live", now=NOW)
    dead = f"{socket.gethostname()}:{_dead_pid()}:abcd"
    for row in (first, second):
        row.status, row.claimed_by, row.claimed_at = "sending", dead, NOW
    alive.status, alive.claimed_by, alive.claimed_at = (
        "sending",
        f"{socket.gethostname()}:1:abcd",
        NOW,
    )
    session.add(DeliveryAttempt(outbox_id=second.id, worker=dead, outcome="in_flight"))
    session.commit()
    recovery = recover_stale_claims(engine, now=NOW + timedelta(seconds=5))
    assert (recovery.requeued, recovery.unknown) == (1, 1)
    for row in (first, second, alive):
        session.refresh(row)
    assert first.status == "queued" and second.status == "unknown" and alive.status == "sending"
    # PID 1 is alive; after the lease, its claim counts as abandoned as well.
    session.commit()
    recovery = recover_stale_claims(engine, now=NOW + timedelta(hours=1))
    assert recovery.requeued == 1


def test_token_bucket_limits_the_rate() -> None:
    async def measure() -> float:
        bucket = TokenBucket(rate=50, capacity=1)
        started = time.monotonic()
        for _ in range(11):
            await bucket.acquire()
        return time.monotonic() - started

    assert 0.18 <= asyncio.run(measure()) < 0.5


def test_smtp_url_parsing() -> None:
    config = parse_smtp_url("smtp://user%40lra:p%3Ass@relay.example:587?starttls=1", timeout=5)
    assert (config.host, config.port, config.start_tls, config.use_tls) == (
        "relay.example",
        587,
        True,
        False,
    )
    assert (config.username, config.password) == ("user@lra", "p:ss")
    implicit = parse_smtp_url("smtps://relay.example", timeout=5)
    assert (implicit.port, implicit.use_tls, implicit.start_tls) == (465, True, False)
    assert parse_smtp_url("smtp://relay.example", timeout=5).port == 25
    assert parse_smtp_url("smtps://relay.example?verify=0", timeout=5).validate_certs is False


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),  # already CRLF: unchanged, terminated
        (b"a\nb", b"a\r\nb\r\n.\r\n"),  # lone LF → CRLF, a missing last line end added
        (b"a\r\r\nb\rc\r\n", b"a\r\r\nb\rc\r\n.\r\n"),  # a lone CR stays
        (b".a\r\n..b\r\nc.\r\n.\r\n", b"..a\r\n...b\r\nc.\r\n..\r\n.\r\n"),  # dot-stuffing
        (b"x\n.\n", b"x\r\n..\r\n.\r\n"),  # stuffing after normalising
        (b"", b"\r\n.\r\n"),
    ],
)
def test_smtp_payload_normalises_and_dot_stuffs(raw: bytes, expected: bytes) -> None:
    assert smtp_payload(raw) == expected
