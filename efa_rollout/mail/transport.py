"""SMTP with aiosmtplib: connection settings from a URL, reused connections, a rate limit.

`send_message` runs one SMTP transaction step by step so that every failure is attributed
to the step it happened in. Only a failure after the content was written (between the
end of DATA and the server's reply) leaves the outcome open: `unknown`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

import aiosmtplib
from aiosmtplib import (
    SMTPException,
    SMTPHeloError,
    SMTPResponse,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from efa_rollout.errors import UserError
from efa_rollout.mail.ledger_state import Claimed, Outcome, RecipientStates, SendResult
from efa_rollout.mail.smtp_pipeline import (
    check_line,
    enable_pipelining,
    exchange,
    supports_pipelining,
)
from efa_rollout.settings import mask_url

#: Errors that mean the connection is gone or unusable.
CONNECTION_ERRORS = (SMTPServerDisconnected, SMTPTimeoutError, ConnectionError, OSError)
_TRUE = {"1", "true", "yes", "ja", "on"}


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to connect: host, port, TLS mode, credentials, timeout."""

    host: str
    port: int
    use_tls: bool
    start_tls: bool
    username: str | None
    password: str | None
    timeout: float
    validate_certs: bool = True


def parse_smtp_url(url: str, *, timeout: float) -> SmtpConfig:
    """smtp://user:pass@host:587?starttls=1, smtps://host:465 (implicit TLS); ?verify=0."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise UserError(
            f"SMTP-URL »{mask_url(url)}« ist ungültig: erwartet smtp://host:port oder "
            "smtps://host:port (optional benutzer:passwort@ und ?starttls=1)."
        )
    query = {k.lower(): v[-1].lower() for k, v in parse_qs(parts.query).items()}
    use_tls = parts.scheme == "smtps"
    start_tls = not use_tls and query.get("starttls", "0") in _TRUE
    default_port = 465 if use_tls else (587 if start_tls else 25)
    return SmtpConfig(
        host=parts.hostname,
        port=_port(parts, url) or default_port,
        use_tls=use_tls,
        start_tls=start_tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        timeout=timeout,
        validate_certs=query.get("verify", "1") in _TRUE,
    )


def _port(parts: SplitResult, url: str) -> int | None:
    """The port of an SMTP URL (None: default), with a German error when it is not 1–65535."""
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise UserError(
            f"SMTP-URL »{mask_url(url)}«: der Port ist ungültig (erwartet eine Zahl von 1 bis "
            "65535, z. B. smtp://relay.example:587)."
        )
    return port


class TokenBucket:
    """At most RATE sends per second on average, bursts of at most CAPACITY."""

    def __init__(self, rate: float, capacity: float = 1.0) -> None:
        self.rate = rate
        self.capacity = max(1.0, capacity)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    async def acquire(self) -> None:
        """Wait until a token is free and take it."""
        async with self._lock:
            while True:
                self._refill()
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self.tokens) / self.rate)


class SmtpConnection:
    """One SMTP connection, opened on demand, reused for many messages."""

    def __init__(self, config: SmtpConfig, *, local_hostname: str | None = None) -> None:
        self.config = config
        self.local_hostname = local_hostname
        self.smtp: aiosmtplib.SMTP | None = None
        self.messages = 0

    @property
    def is_open(self) -> bool:
        return self.smtp is not None and self.smtp.is_connected

    async def open(self) -> aiosmtplib.SMTP:
        """The connected client; connects (TLS, AUTH) when there is none."""
        if self.smtp is not None and self.smtp.is_connected:
            return self.smtp
        self.drop()
        config = self.config
        smtp = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.use_tls,
            start_tls=config.start_tls,
            validate_certs=config.validate_certs,
            timeout=config.timeout,
            local_hostname=self.local_hostname,
        )
        await smtp.connect()
        if smtp.is_ehlo_or_helo_needed:
            # Greet now, so that a refusal (e.g. 421 too many connections) counts as a
            # connection failure and not as the first message's.
            try:
                await smtp.ehlo()
            except SMTPHeloError:
                if not smtp.is_connected:
                    raise
                await smtp.helo()
        if config.username:
            await smtp.login(config.username, config.password or "")
        if smtp.supports_extension("pipelining") and smtp.protocol is not None:
            enable_pipelining(smtp.protocol)
        self.smtp, self.messages = smtp, 0
        return smtp

    def drop(self) -> None:
        """Forget the connection without a goodbye (after errors)."""
        if self.smtp is not None:
            self.smtp.close()
        self.smtp = None

    async def reset(self) -> None:
        """RSET after a failed transaction; drop the connection if even that fails."""
        if self.smtp is None or not self.smtp.is_connected:
            self.drop()
            return
        try:
            await self.smtp.rset()
        except (SMTPException, *CONNECTION_ERRORS):
            self.drop()

    async def close(self) -> None:
        """QUIT politely, then close."""
        if self.smtp is not None and self.smtp.is_connected:
            try:
                await self.smtp.quit()
            except (SMTPException, *CONNECTION_ERRORS):
                pass
        self.drop()


def smtp_payload(raw: bytes) -> bytes:
    """RAW as DATA content: CRLF line ends, dot-stuffed, terminated by CRLF.CRLF.

    Plain `bytes.replace` passes (a lone LF becomes CRLF, a lone CR stays; a dot that starts a
    line is doubled): the same bytes as the regular expressions `\\r?\\n` → CRLF and `^\\.` →
    `..` (multiline), at a fraction of the cost per message.
    """
    data = raw
    if data.count(b"\n") != data.count(b"\r\n"):  # a lone LF somewhere (ours are all CRLF)
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    data = data.replace(b"\n.", b"\n..")
    if data.startswith(b"."):
        data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _describe(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}"[:900]


def _reply_outcome(code: int) -> Outcome:
    return "retry" if 400 <= code < 500 else "failed"


async def connect_or_error(connection: SmtpConnection) -> SendResult | None:
    """Open the connection; a retry result when that fails (relay down, TLS, AUTH)."""
    try:
        await connection.open()
    except (SMTPException, *CONNECTION_ERRORS) as error:
        # Whatever stops us from connecting is the relay's or our configuration's fault,
        # never the message's: retry (and give up only after retry_max_age_hours).
        connection.drop()
        return SendResult(
            outcome="retry",
            stage="connect",
            code=getattr(error, "code", None),
            text=f"Verbindung zum Mailserver fehlgeschlagen: {_describe(error)}",
            drop_connection=True,
        )
    return None


async def send_message(
    connection: SmtpConnection,
    claimed: Claimed,
    handover: Callable[[], Awaitable[int | None]],
) -> tuple[SendResult, int | None]:
    """One SMTP transaction for CLAIMED; HANDOVER records the hand-over and returns its id.

    The hand-over marker is committed while MAIL, RCPT and DATA are on their way (its commit
    is awaited before the content is written, as before), so the ledger's commit costs no
    round trip of its own. An attempt that fails before the content is written finishes the
    marker's attempt row with its failure (the returned attempt id).
    """
    marker = asyncio.ensure_future(handover())
    try:
        envelope = await _envelope(connection, claimed)
    except BaseException:
        marker.cancel()
        raise
    if isinstance(envelope, SendResult):
        return envelope, await marker
    accepted, recipients = envelope
    attempt_id = await marker
    if attempt_id is None:
        connection.drop()  # closing mid-DATA aborts the transaction on the server
        return SendResult("skipped", "data", text="Auftrag inzwischen anderweitig vergeben."), None
    return await _content(connection, claimed, accepted, recipients), attempt_id


# MAIL, RCPT and DATA as aiosmtplib sends them, straight on its protocol: without the address
# parsing of `sendmail` (email.utils, about a fifth of the CPU per message; the ledger holds
# normalised ASCII addresses only) and without `execute_command`'s command lock, per-argument
# regular expression and wrapper (a connection here only ever has one command outstanding,
# or one pipelined group: see `smtp_pipeline`).
async def _command(smtp: aiosmtplib.SMTP, line: bytes) -> SMTPResponse:
    """Write one command LINE (CRLF-terminated) and read its reply, as `execute_command` does."""
    protocol = smtp.protocol
    if protocol is None:
        raise SMTPServerDisconnected("Server not connected")
    try:
        protocol.write(line)
        reply = await protocol.read_response(timeout=smtp.timeout)
    except (SMTPServerDisconnected, SMTPTimeoutError):
        smtp.close()  # a lost or late reply leaves the protocol out of step: never reuse it
        raise
    if reply.code == 421:
        smtp.close()  # service not available: the server closes the connection
    return reply


async def _one_by_one(
    smtp: aiosmtplib.SMTP, lines: list[bytes]
) -> tuple[list[SMTPResponse], BaseException | None]:
    """LINES one at a time (no PIPELINING): RCPT only after MAIL's 250, DATA only for a recipient."""
    replies: list[SMTPResponse] = []
    try:
        for index, line in enumerate(lines):
            if index == len(lines) - 1 and not any(r.code in (250, 251) for r in replies[1:]):
                break  # DATA, and no recipient was accepted
            reply = await _command(smtp, line)
            replies.append(reply)
            if reply.code == 421 or replies[0].code != 250:
                break
    except (SMTPException, *CONNECTION_ERRORS) as error:
        smtp.close()
        return replies, error
    return replies, None


async def _envelope(
    connection: SmtpConnection, claimed: Claimed
) -> SendResult | tuple[list[str], RecipientStates]:
    """MAIL FROM, RCPT TO and DATA; the accepted recipients after DATA's 354, or the failure.

    With PIPELINING (RFC 2920) the three go in one write and every reply is read and judged
    in order; without it one at a time, as the replies allow.
    """
    lines = [check_line(b"MAIL FROM:<" + claimed.sender.encode("ascii") + b">\r\n")]
    lines += [check_line(b"RCPT TO:<" + a.encode("ascii") + b">\r\n") for a in claimed.pending]
    lines.append(b"DATA\r\n")
    for try_no in (1, 2):
        reused = connection.is_open and connection.messages > 0
        failure = await connect_or_error(connection)
        if failure is not None:
            return failure
        smtp = connection.smtp
        assert smtp is not None
        send = exchange if supports_pipelining(smtp) else _one_by_one
        replies, error = await send(smtp, lines)
        if replies:
            return await _judge(connection, claimed, replies, error)
        connection.drop()
        if not (reused and try_no == 1):
            break  # else the server closed an idle connection: reconnect once
    assert error is not None  # no reply at all: the connection was lost or timed out
    return _retry("mail", error, {})


async def _judge(
    connection: SmtpConnection,
    claimed: Claimed,
    replies: list[SMTPResponse],
    error: BaseException | None,
) -> SendResult | tuple[list[str], RecipientStates]:
    """What the replies to MAIL, each RCPT and DATA (as far as they came) mean for CLAIMED."""
    if error is not None or replies[-1].code == 421:
        connection.drop()  # lost, late, garbled or closing: the connection is gone
    count = len(claimed.pending)
    mail, rcpts, data = replies[0], replies[1 : 1 + count], replies[1 + count : 2 + count]
    if mail.code != 250:
        await _end_transaction(connection, data)
        return SendResult(_reply_outcome(mail.code), "mail", mail.code, mail.message)
    accepted: list[str] = []
    recipients: RecipientStates = {}
    for address, reply in zip(claimed.pending, rcpts, strict=False):
        if reply.code in (250, 251):
            accepted.append(address)
            continue
        status = "refused" if reply.code >= 500 else "deferred"
        recipients[address] = {"status": status, "code": reply.code, "text": reply.message}
        if reply.code == 421:
            return SendResult("retry", "rcpt", reply.code, reply.message, recipients)
    if len(rcpts) < count:
        assert error is not None
        return _retry("rcpt", error, recipients)
    if not accepted:
        await _end_transaction(connection, data)
        return _no_recipient(recipients)
    if not data:
        assert error is not None
        return _retry("data", error, recipients)
    if data[0].code != 354:
        await connection.reset()
        code, text = data[0].code, data[0].message
        return SendResult(_reply_outcome(code), "data", code, text, recipients)
    return accepted, recipients


async def _end_transaction(connection: SmtpConnection, data: list[SMTPResponse]) -> None:
    """RSET after a refused envelope; a pipelined DATA the server took (354) ends with a lone dot."""
    smtp = connection.smtp
    if data and data[0].code == 354 and smtp is not None and smtp.is_connected:
        try:
            await _command(smtp, b".\r\n")  # an empty message no recipient receives
        except (SMTPException, *CONNECTION_ERRORS):
            connection.drop()
    await connection.reset()


def _no_recipient(recipients: RecipientStates) -> SendResult:
    """No recipient accepted: retry if one was deferred, else failed; the first refusal's reply."""
    deferred = any(r["status"] == "deferred" for r in recipients.values())
    first: dict[str, Any] = next(
        iter(recipients.values()), {"code": None, "text": "kein Empfänger angenommen"}
    )
    return SendResult(
        "retry" if deferred else "failed", "rcpt", first["code"], str(first["text"]), recipients
    )


async def _content(
    connection: SmtpConnection,
    claimed: Claimed,
    accepted: list[str],
    recipients: RecipientStates,
) -> SendResult:
    """Write the content and read the final reply; silence or a lost line means unknown."""
    smtp = connection.smtp
    assert smtp is not None and smtp.protocol is not None
    try:
        smtp.protocol.write(smtp_payload(claimed.payload))
        reply = await smtp.protocol.read_response(timeout=connection.config.timeout)
    except (SMTPException, *CONNECTION_ERRORS) as error:
        connection.drop()
        text = f"keine Antwort nach Übergabe der Nachricht: {_describe(error)}"
        for address in accepted:
            recipients[address] = {"status": "unknown", "code": None, "text": text}
        return SendResult("unknown", "content", None, text, recipients, drop_connection=True)
    connection.messages += 1
    if reply.code == 250:
        for address in accepted:
            recipients[address] = {"status": "sent", "code": reply.code, "text": reply.message}
        return SendResult("sent", "content", reply.code, reply.message, recipients)
    status = "deferred" if 400 <= reply.code < 500 else "refused"
    for address in accepted:
        recipients[address] = {"status": status, "code": reply.code, "text": reply.message}
    if reply.code == 421:
        connection.drop()
    return SendResult(_reply_outcome(reply.code), "content", reply.code, reply.message, recipients)


def _retry(stage: str, error: BaseException, recipients: RecipientStates) -> SendResult:
    return SendResult(
        "retry",
        stage,
        getattr(error, "code", None),
        f"Verbindung unterbrochen: {_describe(error)}",
        recipients,
        drop_connection=True,
    )
