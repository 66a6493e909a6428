"""A real aiosmtpd server on loopback whose misbehaviour is chosen by the recipient.

Local part of a recipient → behaviour:
    refuse*      550 at RCPT
    flaky*       451 at RCPT the first two times, then accepted
    data421*     421 after the content (end of DATA)
    drop*        message stored, then the connection closed before any reply
    slow*        message stored, 250 sent only after SLOW_SECONDS (past the client timeout)
    anything else: stored, 250
Every stored copy is kept (envelope + bytes), so tests can count copies per Message-ID.
With max_sessions, EHLO from any further connection is answered with 421.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default
from typing import Any

from aiosmtpd.controller import Controller

SLOW_SECONDS = 1.5


@dataclass(frozen=True)
class Stored:
    """One copy the server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message_id: str
    content: bytes


class FaultHandler:
    """aiosmtpd handler with per-recipient faults."""

    def __init__(self, max_sessions: int | None = None) -> None:
        self.max_sessions = max_sessions  # refuse EHLO (421) from the sessions beyond this
        self.ehlo_sessions: list[Any] = []
        self.stored: list[Stored] = []
        self.rcpt_calls: Counter[str] = Counter()
        self.sessions: set[Any] = set()  # client (host, port) per connection that sent mail
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget everything received."""
        with self._lock:
            self.stored.clear()
            self.rcpt_calls.clear()
            self.sessions.clear()

    def copies(self, message_id: str) -> int:
        """How many copies with MESSAGE_ID were stored."""
        with self._lock:
            return sum(1 for s in self.stored if s.message_id == message_id)

    def by_message_id(self) -> Counter[str]:
        """Copies per Message-ID."""
        with self._lock:
            return Counter(s.message_id for s in self.stored)

    def _store(self, session: Any, envelope: Any) -> None:
        content = envelope.original_content or envelope.content
        headers = BytesHeaderParser(policy=default).parsebytes(content)
        stored = Stored(
            envelope.mail_from,
            tuple(envelope.rcpt_tos),
            str(headers.get("Message-ID", "")).strip(),
            content,
        )
        with self._lock:
            self.stored.append(stored)
            self.sessions.add(session.peer)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self._lock:
            if session.peer not in self.ehlo_sessions:
                self.ehlo_sessions.append(session.peer)
            position = self.ehlo_sessions.index(session.peer)
        if self.max_sessions is not None and position >= self.max_sessions:
            return ["421 4.7.0 Too many connections, try again later"]
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        local = address.split("@", 1)[0].lower()
        with self._lock:
            self.rcpt_calls[address] += 1
            calls = self.rcpt_calls[address]
        if local.startswith("refuse"):
            return "550 5.1.1 Mailbox unavailable"
        if local.startswith("flaky") and calls <= 2:
            return "451 4.3.0 Temporary local problem, try again"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        locals_ = [a.split("@", 1)[0].lower() for a in envelope.rcpt_tos]
        if any(p.startswith("data421") for p in locals_):
            return "421 4.3.2 Service shutting down"
        if any(p.startswith("drop") for p in locals_):
            self._store(session, envelope)
            server.transport.close()
            return "250 2.0.0 never seen by the client"
        if any(p.startswith("slow") for p in locals_):
            self._store(session, envelope)
            await asyncio.sleep(SLOW_SECONDS)
            return "250 2.0.0 OK (late)"
        self._store(session, envelope)
        return "250 2.0.0 OK"


def free_port() -> int:
    """A TCP port on loopback nobody listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FaultServer:
    """The handler running in a background thread on a free loopback port."""

    def __init__(self, max_sessions: int | None = None) -> None:
        self.handler = FaultHandler(max_sessions)
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> FaultServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def wait_for(self, count: int, timeout: float = 5.0) -> int:
        """Wait until at least COUNT copies are stored; how many there are."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.handler.stored) >= count:
                break
            time.sleep(0.02)
        return len(self.handler.stored)
