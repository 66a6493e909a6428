"""SMTP command pipelining (RFC 2920): several commands in one write, their replies in order.

aiosmtplib expects one reply per command sent: its protocol parses one reply per chunk
received and ignores data that arrives while a parsed reply still waits to be picked up. With
MAIL FROM, RCPT TO and DATA outstanding at once, replies that come in one segment (or before
the reader resumes) would be lost and the next read would wait for its timeout.
`PipeliningProtocol` keeps every complete reply, in order; `exchange` writes a group of commands
and reads all their replies.
"""

from __future__ import annotations

import re
from collections import deque
from typing import cast

import aiosmtplib
from aiosmtplib import SMTPException, SMTPResponse, SMTPResponseException
from aiosmtplib.protocol import MAX_RESPONSE_LENGTH, SMTPProtocol

#: What aiosmtplib refuses in a command's arguments (no CR/LF or other control characters).
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


class PipeliningProtocol(SMTPProtocol):
    """aiosmtplib's protocol, keeping every complete reply that arrives until it is read."""

    _replies: deque[SMTPResponse]

    def data_received(self, data: bytes) -> None:
        """Parse every complete reply in the buffer (the stock one parses one per chunk)."""
        if self._response_waiter is None or not self._response_pending:
            return  # nothing expected: unsolicited data is ignored, as by the stock protocol
        self._buffer.extend(data)
        try:
            while (reply := self._read_response_from_buffer()) is not None:
                self._replies.append(reply)
        except SMTPResponseException as error:
            self._fail(error)
            return
        if len(self._buffer) > MAX_RESPONSE_LENGTH:
            del self._buffer[:]
            self._fail(SMTPResponseException(500, "Response too long"))
            return
        if self._replies and not self._response_waiter.done():
            self._response_waiter.set_result(self._replies.popleft())

    def _fail(self, error: BaseException) -> None:
        if self._response_waiter is not None and not self._response_waiter.done():
            self._set_response_exception(self._response_waiter, error)

    async def read_response(self, timeout: float | None = None) -> SMTPResponse:
        """The next reply: one already received, else the next to arrive."""
        if self._replies:
            return self._replies.popleft()
        return await super().read_response(timeout=timeout)


def enable_pipelining(protocol: SMTPProtocol) -> None:
    """Make PROTOCOL (connected, greeted, idle) keep replies for pipelined commands."""
    if not isinstance(protocol, PipeliningProtocol):
        # aiosmtplib builds its protocol inside `connect` with no way to choose the class;
        # the subclass only overrides methods and adds the reply queue.
        protocol.__class__ = PipeliningProtocol
        cast(PipeliningProtocol, protocol)._replies = deque()


def supports_pipelining(smtp: aiosmtplib.SMTP) -> bool:
    """Whether SMTP's connection sends command groups (the server advertised PIPELINING)."""
    return isinstance(smtp.protocol, PipeliningProtocol)


def check_line(line: bytes) -> bytes:
    """LINE (CRLF-terminated) unless its arguments hold a control character (CR/LF injection)."""
    if _CONTROL.search(line, 0, len(line) - 2):
        raise ValueError("Command arg contains a prohibited control character")
    return line


async def exchange(
    smtp: aiosmtplib.SMTP, lines: list[bytes]
) -> tuple[list[SMTPResponse], BaseException | None]:
    """Write LINES at once, read their replies in order: all, or up to a 421 or a lost line.

    The error is what ended the reading early (lost connection, timeout, garbled reply); the
    connection is then closed, and after a 421 (the server closes it) as well.
    """
    replies: list[SMTPResponse] = []
    protocol = smtp.protocol
    try:
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Server not connected")
        protocol.write(b"".join(lines))
        for _line in lines:
            reply = await protocol.read_response(timeout=smtp.timeout)
            replies.append(reply)
            if reply.code == 421:
                smtp.close()
                break
    except (SMTPException, OSError) as error:
        smtp.close()  # the replies are out of step with the commands: never reuse it
        return replies, error
    return replies, None
