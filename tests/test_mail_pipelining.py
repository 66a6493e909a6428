"""SMTP command pipelining (RFC 2920) against real aiosmtpd servers on loopback.

With PIPELINING advertised, MAIL FROM, every RCPT TO and DATA go in one write and every reply
is read in order; a connection stays in step after any refusal (the next message on it is
sent), and a 421 or a lost line drops it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import Session

from efa_rollout.mail.delivery import deliver
from efa_rollout.mail.ledger_state import Claimed, SendResult
from efa_rollout.mail.smtp_pipeline import supports_pipelining
from efa_rollout.mail.transport import SmtpConnection, parse_smtp_url, send_message
from efa_rollout.settings import get_settings
from tests.mail_support import NOW, queue_request
from tests.smtp_fault_server import FaultServer
from tests.smtp_pipelining_support import RecordingProxy, pipelining_server

SENDER = "absender@efa.example"


@pytest.fixture
def server() -> Iterator[FaultServer]:
    """aiosmtpd advertising PIPELINING."""
    server = pipelining_server()
    yield server
    server.stop()


def _claimed(*recipients: str, sender: str = SENDER, number: int = 1) -> Claimed:
    message_id = f"<m{number}@efa.example>"
    raw = f"Message-ID: {message_id}\r\nSubject: Test {number}\r\n\r\nHallo.\r\n".encode()
    return Claimed(
        id=number,
        message_id=message_id,
        campaign_id=None,
        ags=None,
        kind="test",
        is_test=True,
        sender=sender,
        pending=tuple(recipients),
        raw=raw,
    )


async def _send(connection: SmtpConnection, claimed: Claimed) -> tuple[SendResult, int | None]:
    async def handover() -> int:
        return 100 + claimed.id

    return await send_message(connection, claimed, handover)


def _connection(url: str) -> SmtpConnection:
    return SmtpConnection(parse_smtp_url(url, timeout=5), local_hostname="efa.example")


def _with_next(connection: SmtpConnection, claimed: Claimed) -> tuple[SendResult, SendResult]:
    """Send CLAIMED, then another message over the same CONNECTION; both results."""

    async def run() -> tuple[SendResult, SendResult]:
        result, attempt_id = await _send(connection, claimed)
        assert attempt_id == 100 + claimed.id  # the marker's attempt row gets the outcome
        following, _ = await _send(connection, _claimed("next@x.example", number=9))
        await connection.close()
        return result, following

    return asyncio.run(run())


def _next_was_sent(server: FaultServer, following: SendResult, sessions: int) -> None:
    """The next message went out, over the same connection when SESSIONS is 1 (still in step)."""
    assert following.outcome == "sent"
    assert server.handler.copies("<m9@efa.example>") == 1
    assert len(server.handler.ehlo_sessions) == sessions


@pytest.mark.parametrize("pipelining", [True, False])
def test_the_envelope_goes_in_one_write_only_with_pipelining(pipelining: bool) -> None:
    server = pipelining_server(pipelining=pipelining)
    recipients = ("a@x.example", "b@x.example", "c@x.example")

    async def run() -> tuple[SendResult, bytes, bool]:
        proxy = await RecordingProxy(server.port).start()
        connection = _connection(proxy.url)
        try:
            result, attempt_id = await _send(connection, _claimed(*recipients))
            assert attempt_id == 101
            assert connection.smtp is not None
            grouped = supports_pipelining(connection.smtp)
            await connection.close()
        finally:
            await proxy.stop()
        return result, proxy.sent_before_first_reply_to(b"MAIL FROM"), grouped

    try:
        result, group, grouped = asyncio.run(run())
    finally:
        server.stop()
    assert grouped is pipelining
    assert result.outcome == "sent" and result.code == 250
    assert {a: r["status"] for a, r in result.recipients.items()} == dict.fromkeys(
        recipients, "sent"
    )
    [stored] = server.handler.stored
    assert stored.rcpt_tos == recipients
    expected = b"MAIL FROM:<absender@efa.example>\r\n" + b"".join(
        b"RCPT TO:<" + a.encode() + b">\r\n" for a in recipients
    )
    if pipelining:
        # Everything up to DATA arrived before the server had answered MAIL; the content not.
        assert group == expected + b"DATA\r\n"
    else:
        assert group == b"MAIL FROM:<absender@efa.example>\r\n"


def test_partial_refusal_keeps_the_per_recipient_states(server: FaultServer) -> None:
    connection = _connection(server.url)
    claimed = _claimed("ok@x.example", "refuse@x.example", "flaky@x.example")
    result, following = _with_next(connection, claimed)
    assert result.outcome == "sent" and result.stage == "content"
    assert result.recipients == {
        "ok@x.example": {"status": "sent", "code": 250, "text": "2.0.0 OK"},
        "refuse@x.example": {"status": "refused", "code": 550, "text": "5.1.1 Mailbox unavailable"},
        "flaky@x.example": {
            "status": "deferred",
            "code": 451,
            "text": "4.3.0 Temporary local problem, try again",
        },
    }
    [stored, _following] = server.handler.stored
    assert stored.rcpt_tos == ("ok@x.example",)
    _next_was_sent(server, following, sessions=1)


def test_a_refused_sender_still_reads_the_rcpt_and_data_replies(server: FaultServer) -> None:
    connection = _connection(server.url)
    claimed = _claimed("ok@x.example", "ok2@x.example", sender="refuse@efa.example")
    result, following = _with_next(connection, claimed)
    assert (result.outcome, result.stage, result.code) == ("failed", "mail", 550)
    assert result.text == "5.7.1 Sender refused"
    assert server.handler.copies("<m1@efa.example>") == 0
    assert "ok@x.example" not in server.handler.rcpt_calls  # 503 from aiosmtpd: no MAIL
    _next_was_sent(server, following, sessions=1)


def test_no_recipient_accepted_and_data_refused(server: FaultServer) -> None:
    connection = _connection(server.url)
    result, following = _with_next(connection, _claimed("refuse1@x.example", "refuse2@x.example"))
    assert (result.outcome, result.stage, result.code) == ("failed", "rcpt", 550)
    assert [r["status"] for r in result.recipients.values()] == ["refused", "refused"]
    assert server.handler.copies("<m1@efa.example>") == 0
    _next_was_sent(server, following, sessions=1)


def test_no_recipient_accepted_but_data_answered_354_ends_with_a_lone_dot() -> None:
    server = pipelining_server(lenient=True)
    try:
        connection = _connection(server.url)
        claimed = _claimed("refuse@x.example", "flaky@x.example")
        result, following = _with_next(connection, claimed)
        # A deferred recipient: retry; the first refusal's reply is the message's.
        assert (result.outcome, result.stage, result.code) == ("retry", "rcpt", 550)
        assert result.recipients["flaky@x.example"]["status"] == "deferred"
        assert server.handler.copies("<m1@efa.example>") == 0
        _next_was_sent(server, following, sessions=1)
    finally:
        server.stop()


def test_421_in_the_middle_of_the_group_drops_the_connection(server: FaultServer) -> None:
    connection = _connection(server.url)
    claimed = _claimed("ok@x.example", "bye421@x.example", "ok2@x.example")
    connection_was_open: list[bool] = []

    async def run() -> tuple[SendResult, SendResult]:
        result, _ = await _send(connection, claimed)
        connection_was_open.append(connection.is_open)
        following, _ = await _send(connection, _claimed("next@x.example", number=9))
        await connection.close()
        return result, following

    result, following = asyncio.run(run())
    assert (result.outcome, result.stage, result.code) == ("retry", "rcpt", 421)
    assert result.recipients == {
        "bye421@x.example": {
            "status": "deferred",
            "code": 421,
            "text": "4.3.2 Service shutting down",
        }
    }
    assert connection_was_open == [False]
    assert server.handler.copies("<m1@efa.example>") == 0
    _next_was_sent(server, following, sessions=2)


def test_a_reused_connection_the_server_closed_is_reopened_once(server: FaultServer) -> None:
    async def run() -> tuple[SendResult, SendResult]:
        connection = _connection(server.url)
        first, _ = await _send(connection, _claimed("a@x.example", number=1))
        # The server goes away and comes back: the idle connection is dead.
        await asyncio.to_thread(server.controller.stop)
        server.controller = Controller(server.handler, hostname="127.0.0.1", port=server.port)
        await asyncio.to_thread(server.controller.start)
        second, _ = await _send(connection, _claimed("b@x.example", number=2))
        await connection.close()
        return first, second

    first, second = asyncio.run(run())
    assert first.outcome == "sent" and second.outcome == "sent"
    assert server.handler.copies("<m2@efa.example>") == 1
    assert len(server.handler.ehlo_sessions) == 2


def test_delivery_over_a_pipelining_relay(
    session: Session, efa_env: Path, monkeypatch: pytest.MonkeyPatch, server: FaultServer
) -> None:
    monkeypatch.setenv("EFA_SMTP_URL", server.url)
    monkeypatch.setenv("EFA_SMTP_TIMEOUT_SECONDS", "5")
    monkeypatch.setenv("EFA_SMTP_RATE_PER_SECOND", "100000")
    get_settings.cache_clear()
    try:
        row = queue_request(session, "ok@essingen.example", "refuse@essingen.example")
        session.commit()
        report = deliver(now=NOW)
        session.refresh(row)
        assert report.total("sent") == 1 and row.status == "sent" and row.attempts == 1
        assert row.recipient_status["refuse@essingen.example"]["code"] == 550
        [stored] = server.handler.stored
        assert stored.rcpt_tos == ("ok@essingen.example",)
        session.commit()  # SQLite: the refresh's transaction would hold the write lock
        deliver(now=NOW + timedelta(days=1))
        assert len(server.handler.stored) == 1
    finally:
        get_settings.cache_clear()
