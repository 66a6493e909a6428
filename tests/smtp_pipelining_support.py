"""SMTP servers for the pipelining tests: aiosmtpd advertising PIPELINING, a recording proxy.

`PipeliningHandler` is the fault server's handler (same recipient faults) that also
    advertises PIPELINING in its EHLO reply (aiosmtpd does not by default),
    refuses a sender whose local part starts with "refuse" (550 at MAIL),
    answers a recipient "bye421*" with 421 and then closes the connection.
`LenientController` runs a server that answers DATA with 354 even when no recipient was
accepted (a client must then end the transaction with a lone dot, RFC 2920 section 3.1).
`RecordingProxy` sits between client and server and records every chunk in arrival order, so a
test can tell whether commands arrived before the server had answered the first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from tests.smtp_fault_server import FaultHandler, FaultServer


class PipeliningHandler(FaultHandler):
    """FaultHandler with PIPELINING, sender refusal and 421 at RCPT."""

    def __init__(self, *, pipelining: bool = True) -> None:
        super().__init__()
        self.pipelining = pipelining

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        responses = await super().handle_EHLO(server, session, envelope, hostname, responses)
        if self.pipelining and responses[-1].startswith("250 "):
            responses = [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if address.split("@", 1)[0].lower().startswith("refuse"):
            return "550 5.7.1 Sender refused"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.split("@", 1)[0].lower().startswith("bye421"):
            # The reply goes out first; then the server hangs up, as a relay shutting down does.
            asyncio.get_running_loop().call_later(0.05, server.transport.close)
            return "421 4.3.2 Service shutting down"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


class LenientSMTP(SMTP):
    """aiosmtpd that answers DATA with 354 without a recipient, then refuses the message."""

    async def smtp_DATA(self, arg: str) -> None:
        assert self.envelope is not None
        if self.envelope.rcpt_tos:
            await super().smtp_DATA(arg)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        while True:
            line = await self._reader.readuntil(b"\r\n")
            if line == b".\r\n":
                break
        await self.push("554 5.5.1 No valid recipients")


class LenientController(Controller):
    """A controller whose sessions are `LenientSMTP`."""

    def factory(self) -> SMTP:
        return LenientSMTP(self.handler, **self.SMTP_kwargs)


def pipelining_server(*, pipelining: bool = True, lenient: bool = False) -> FaultServer:
    """A started FaultServer with `PipeliningHandler` (optionally LenientSMTP sessions)."""
    server = FaultServer()
    server.handler = PipeliningHandler(pipelining=pipelining)
    kind = LenientController if lenient else Controller
    server.controller = kind(server.handler, hostname="127.0.0.1", port=server.port)
    return server.start()


class RecordingProxy:
    """A TCP proxy on loopback recording ("client"/"server", bytes) in the order it got them."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.events: list[tuple[str, bytes]] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> RecordingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(
            self._pump("client", reader, up_writer), self._pump("server", up_reader, writer)
        )

    async def _pump(
        self, side: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                self.events.append((side, chunk))
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def sent_before_first_reply_to(self, command: bytes) -> bytes:
        """Everything the client sent from COMMAND on, until the server's next reply."""
        sent = b""
        for side, chunk in self.events:
            if side == "client" and (sent or command in chunk):
                sent += chunk[chunk.find(command) :] if not sent else chunk
            elif side == "server" and sent:
                break
        return sent
