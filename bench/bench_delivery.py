"""Benchmark: our delivery (ledger, connection pool, reuse) vs. one smtplib connection per mail.

    .venv/bin/python bench/bench_delivery.py [--messages 2000] [--pool 4] [--rtt-ms 0,5]

Starts a local sink (aiosmtpd, own process, every message written as .eml), queues N
messages into a fresh SQLite outbox and delivers them: first with `deliver()` (pool of
reused connections, every outcome committed to the ledger), then the same raw messages
with a naive loop (new smtplib connection per message, no ledger). Same run, same sink.

Loopback has no latency; a real relay answers every command one round trip later (plus TLS
and AUTH per connection, not simulated here). With --rtt-ms the sink delays each reply to
EHLO, MAIL, RCPT and the end of DATA by that many milliseconds, once per value given.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LatencySink:
    """aiosmtpd handler: replies after RTT seconds, stores every message as .eml."""

    def __init__(self, folder: Path, rtt: float) -> None:
        from efa_rollout.mail.sink import FolderSink

        self.store = FolderSink(folder)
        self.rtt = rtt

    async def _wait(self) -> None:
        if self.rtt:
            import asyncio

            await asyncio.sleep(self.rtt)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # type: ignore[no-untyped-def]
        await self._wait()
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        await self._wait()
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        await self._wait()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        await self._wait()
        return await self.store.handle_DATA(server, session, envelope)


def serve_sink(folder: Path, port: int, rtt: float) -> None:
    """Run the sink until terminated (in its own process)."""
    import threading

    from aiosmtpd.controller import Controller

    controller = Controller(LatencySink(folder, rtt), hostname="127.0.0.1", port=port)
    controller.start()
    threading.Event().wait()


def start_sink(folder: Path, port: int, rtt: float) -> subprocess.Popen[bytes]:
    """The sink in its own process (so it does not share the GIL with the sender)."""
    command = [sys.executable, __file__, "--serve-sink", str(folder), str(port), str(rtt)]
    process = subprocess.Popen(command, cwd=REPO)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("Senke startet nicht.")


def count(folder: Path) -> int:
    """Messages the sink has stored."""
    return sum(1 for _ in folder.glob("*.eml"))


def wait_for(folder: Path, expected: int, timeout: float = 60) -> int:
    """Wait until the sink has stored EXPECTED messages."""
    deadline = time.monotonic() + timeout
    while count(folder) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return count(folder)


def queue(messages: int) -> list[tuple[str, list[str], bytes]]:
    """MESSAGES rows in the outbox (one rendered mail, ID and recipient varied)."""
    from sqlmodel import Session

    from efa_rollout.db import get_engine
    from efa_rollout.mail.context import build_context
    from efa_rollout.mail.message import Recipient, build_message, message_bytes
    from efa_rollout.mail.render import render_mail
    from efa_rollout.services.mail_preview import sample_extra, sample_objects
    from efa_rollout.settings import get_settings
    from models import OutboxMessage

    now = datetime.now(UTC)
    campaign, enrolment, municipality = sample_objects(now)
    context = build_context(
        None,
        campaign=campaign,
        enrolment=enrolment,
        municipality=municipality,
        contacts=[],
        kind="reminder",
        sequence=1,
        now=now,
        settings=get_settings(),
        portal_link="https://portal.example/p/x",
        extra=sample_extra("reminder", now),
    )
    rendered = render_mail("reminder", context)
    template = message_bytes(
        build_message(
            rendered,
            to=[Recipient("r-XXXXXX@gemeinde.example")],
            message_id="<XXXXXX@lra.example>",
            date=now,
            kind="reminder",
        )
    )
    sent: list[tuple[str, list[str], bytes]] = []
    with Session(get_engine()) as session:
        for i in range(messages):
            token = f"{i:06d}"
            raw = template.replace(b"XXXXXX", token.encode())
            recipient = f"r-{token}@gemeinde.example"
            session.add(
                OutboxMessage(
                    campaign_id="bench",
                    kind="reminder",
                    sequence=i,
                    message_id=f"<{token}@lra.example>",
                    sender="egov@lra.example",
                    recipients=[recipient],
                    subject=rendered.subject,
                    raw=raw,
                    status="queued",
                    next_attempt_at=now,
                    queued_at=now,
                )
            )
            sent.append(("egov@lra.example", [recipient], raw))
        session.commit()
    return sent


def naive(port: int, messages: list[tuple[str, list[str], bytes]]) -> None:
    """What prefect-email does: a new smtplib connection for every message."""
    import smtplib

    for sender, recipients, raw in messages:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail(sender, recipients, raw)


def run(messages: int, pool: int, rate: float, rtt: float) -> tuple[float, float, int]:
    """Both methods against a fresh sink and outbox; (ours, naive) seconds and message size."""
    work = Path(tempfile.mkdtemp(prefix="efa-bench-delivery-"))
    port = free_port()
    sink_dir = work / "sink"
    os.environ.update(
        EFA_DATA_DIR=str(work / "data"),
        EFA_SMTP_URL=f"smtp://127.0.0.1:{port}",
        EFA_SMTP_POOL_SIZE=str(pool),
        EFA_SMTP_RATE_PER_SECOND=str(rate),
    )
    from efa_rollout import db
    from efa_rollout.mail.delivery import deliver
    from efa_rollout.settings import get_settings

    get_settings.cache_clear()
    db.reset_engines()
    sink = start_sink(sink_dir, port, rtt)
    try:
        queued = queue(messages)
        started = time.perf_counter()
        report = deliver()
        ours = time.perf_counter() - started
        stored = wait_for(sink_dir, messages)
        assert report.total("sent") == messages == stored, (report.summary(), stored)
        started = time.perf_counter()
        naive(port, queued)
        plain = time.perf_counter() - started
        stored = wait_for(sink_dir, 2 * messages) - messages
        assert stored == messages, stored
    finally:
        sink.terminate()
        sink.wait()
        db.reset_engines()
        shutil.rmtree(work, ignore_errors=True)
    return ours, plain, len(queued[0][2])


def main() -> None:
    """Run both per round-trip time, print the table."""
    if len(sys.argv) == 5 and sys.argv[1] == "--serve-sink":
        serve_sink(Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--pool", type=int, default=4)
    parser.add_argument("--rate", type=float, default=100000.0, help="rate limit (messages/s)")
    parser.add_argument("--rtt-ms", default="0,5", help="simulated round trips, comma-separated")
    args = parser.parse_args()
    results = []
    size = 0
    for rtt_ms in [float(v) for v in args.rtt_ms.split(",")]:
        ours, plain, size = run(args.messages, args.pool, args.rate, rtt_ms / 1000)
        results.append((rtt_ms, ours, plain))
    print(
        f"\n{args.messages} Nachrichten à {size:,} Bytes an eine lokale aiosmtpd-Senke (eigener "
        f"Prozess, .eml je Nachricht); {os.cpu_count()} CPU-Kerne, Last {os.getloadavg()[0]:.1f}\n"
    )
    print(f"{'RTT':>6}  {'Verfahren':<58} {'Sekunden':>9} {'Mails/s':>9}")
    print("-" * 86)
    for rtt_ms, ours, plain in results:
        label = f"{rtt_ms:g} ms"
        print(
            f"{label:>6}  {'efa deliver: Pool ' + str(args.pool) + ', Verbindungen wiederverwendet, Ledger':<58} {ours:>9.2f} {args.messages / ours:>9.0f}"
        )
        print(
            f"{'':>6}  {'naiv: smtplib, neue Verbindung je Mail, ohne Ledger':<58} {plain:>9.2f} {args.messages / plain:>9.0f}"
        )
        print(f"{'':>6}  {'Verhältnis':<58} {'':>9} {plain / ours:>8.1f}×")


if __name__ == "__main__":
    main()
