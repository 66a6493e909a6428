"""Scale benchmark: the Ostalbkreis (42), Baden-Württemberg (1,101) and Germany (10,981).

Prints a table; never a timed test. For every size and database it runs, each in a fresh
process (so that peak memory is that size's own):

* the product's way: import (directory + contacts), campaign start (enrol + information
  requests), the reminder selection, a tick in which every municipality moves, a tick with
  nothing due, the report roll-up, and delivery of the whole outbox to a local aiosmtpd sink
  over the pooled SMTP connections;
* the naive way, side by side: the same tick as one Prefect task per municipality, and
  delivery as one SMTP connection per message (smtplib) with one ledger update each.
  The naive runs are capped (``--naive-cap``, default the size of Baden-Württemberg); above
  the cap they run over the first CAP municipalities/messages and are extrapolated linearly,
  which the table marks with "≈".

    .venv/bin/python bench/bench_scale.py                                   # SQLite only
    .venv/bin/python bench/bench_scale.py --databases sqlite,postgresql     # both
    .venv/bin/python bench/bench_scale.py --sizes bw --databases postgresql --profile tick

PostgreSQL: ``--postgres-url`` (default ``$EFA_BENCH_POSTGRES_URL``, else the URL printed by
``scripts/postgres.sh start``); every run gets its own database, dropped afterwards.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
GV100AD = REPO / "reference" / "GV100AD_301123.txt"

#: name → (label, state filter, district filter)
SIZES: dict[str, tuple[str, str | None, str | None]] = {
    "ostalbkreis": ("Ostalbkreis", None, "08136"),
    "bw": ("Baden-Württemberg", "08", None),
    "germany": ("Deutschland", None, None),
}
CAMPAIGN = "ewa-scale"
NAIVE_TICK_CAMPAIGN = "ewa-naive-tick"
BATCH_TICK_CAMPAIGN = "ewa-prefect-tick"
GO_LIVE = date(2024, 10, 1)  # eWA: collection deadline -12w = 09.07.2024
START_DAY = date(2024, 4, 15)
REMIND_DAY = date(2024, 7, 4)  # three working days before the deadline
TICK_DAY = date(2024, 7, 10)  # the day after the deadline: everybody moves on
SMTP_POOL = 8
CEILING_SAMPLE = 2000


# --- helpers shared with scripts/distributed.py ----------------------------------------------


def local_moment(day: date, hour: int = 9) -> datetime:
    """HOUR o'clock Europe/Berlin on DAY, as aware UTC."""
    from zoneinfo import ZoneInfo

    return datetime(
        day.year, day.month, day.day, hour, tzinfo=ZoneInfo("Europe/Berlin")
    ).astimezone(UTC)


def write_contacts(path: Path, municipalities: list[tuple[str, str]]) -> int:
    """Fictitious contacts (.example domains) for (AGS, name) pairs, as the demo writes them."""
    rows = []
    for ags, name in municipalities:
        domain = f"{_slug(name)}-{ags}.example"
        rows += [
            [ags, "Hauptamt", "", "", "Hauptamt", f"hauptamt@{domain}", "", "ja"],
            [ags, "Meldebehörde", "", "", "Bürgerbüro", f"buergerbuero@{domain}", "", "ja"],
            [ags, "Bürgermeister", "Frau", "Muster", "Bürgermeisterin", f"bm@{domain}", "", "nein"],
        ]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(
            ["AGS", "Rolle", "Anrede", "Name", "Funktion", "E-Mail", "Telefon", "Funktionspostfach"]
        )
        writer.writerows(rows)
    return len(rows)


def _slug(name: str) -> str:
    from efa_rollout.services.campaigns import slugify

    return slugify(name)[:40] or "gemeinde"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SINK_CODE = r"""
import asyncio, collections, email.parser, json, os, signal, socket, sys, threading
from aiosmtpd.controller import Controller

counts = collections.Counter()
lock = threading.Lock()
parser = email.parser.BytesHeaderParser()
RTT = float(os.environ.get("EFA_BENCH_RELAY_RTT_MS", "0")) / 1000

class Handler:
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # PIPELINING as Postfix, Exim and the common relays advertise it (aiosmtpd does not).
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server, session, envelope):
        message_id = parser.parsebytes(envelope.original_content or envelope.content).get("Message-ID")
        message_id = "".join(message_id.split()) if message_id else None
        with lock:
            counts[message_id] += 1
        return "250 OK"

# A relay RTT away: a TCP proxy in front of aiosmtpd that delays every chunk by RTT/2 in each
# direction (delivered at arrival + RTT/2, in order, not one sleep after another) and the
# connection set-up by one RTT (the TCP handshake). Greeting, every reply, the 354 and QUIT
# all pay it; commands written together (pipelining) share one trip. TLS/AUTH not modelled.
async def delayed_pump(reader, writer):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()
    async def deliver():
        while True:
            due, chunk = await queue.get()
            await asyncio.sleep(due - loop.time())
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()
    sender = asyncio.ensure_future(deliver())
    try:
        while True:
            chunk = await reader.read(65536)
            queue.put_nowait((loop.time() + RTT / 2, chunk))
            if not chunk:
                break
        await sender
    except (ConnectionError, OSError):
        sender.cancel()
    finally:
        writer.close()

async def proxy(listening, upstream_port):
    async def serve(reader, writer):
        # Replies go out as they come (asyncio sets this only on sockets made with IPPROTO_TCP).
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.sleep(RTT)  # SYN, SYN-ACK: a round trip before the first byte
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(delayed_pump(reader, up_writer), delayed_pump(up_reader, writer))
    server = await asyncio.start_server(serve, sock=listening)
    async with server:
        await server.serve_forever()

port = int(sys.argv[1])
proxy_pid = None
if RTT:
    # The proxy in a process of its own (forked before any thread starts): in aiosmtpd's
    # process it would wait for the GIL whenever aiosmtpd is busy, and delay chunks late.
    listening = socket.socket()
    listening.bind(("127.0.0.1", port))
    listening.listen(512)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    proxy_pid = os.fork()
    if proxy_pid == 0:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        asyncio.run(proxy(listening, smtp_port))
        os._exit(0)
    listening.close()
else:
    smtp_port = port  # loopback: no proxy, nothing in between
controller = Controller(Handler(), hostname="127.0.0.1", port=smtp_port)
controller.start()
print("ready", flush=True)
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
signal.signal(signal.SIGINT, lambda *_: done.set())
done.wait()
if proxy_pid:
    os.kill(proxy_pid, signal.SIGTERM)
    os.waitpid(proxy_pid, 0)
controller.stop()
with lock:
    dupes = {k: v for k, v in counts.items() if v > 1}
    if len(sys.argv) > 2:  # every Message-ID with how often it arrived
        with open(sys.argv[2], "w") as handle:
            json.dump(counts, handle)
    print(json.dumps({"messages": sum(counts.values()), "unique": len(counts),
                      "duplicates": len(dupes), "without_id": counts.get(None, 0)}), flush=True)
"""


DELIVER_CODE = r"""
import sys
from datetime import datetime
from efa_rollout.mail import deliver
print(deliver(now=datetime.fromisoformat(sys.argv[1])).total("sent"))
"""


class Sink:
    """A local aiosmtpd SMTP server in its own process, counting messages by Message-ID."""

    def __init__(self, port: int | None = None, ids_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.ids_file = ids_file
        extra = [str(ids_file)] if ids_file else []
        self.process = subprocess.Popen(
            [sys.executable, "-c", SINK_CODE, str(self.port), *extra],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"SMTP sink did not start: {line!r}")

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def stop(self) -> dict[str, int]:
        """Stop the sink; its counts: messages, unique Message-IDs, duplicates (once)."""
        if self.process.returncode is not None:
            return {}
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=30)
        return json.loads(out.strip().splitlines()[-1])


# --- the child processes ---------------------------------------------------------------------


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def _timed(figures: dict[str, Any], key: str) -> Iterator[None]:
    """Wall time as KEY, this process's CPU time as KEY_cpu (the machine may be shared)."""
    started, cpu = time.perf_counter(), time.process_time()
    yield
    figures[key] = time.perf_counter() - started
    figures[f"{key}_cpu"] = time.process_time() - cpu


@contextmanager
def _ledger_timer(figures: dict[str, Any]) -> Iterator[None]:
    """Time spent in the outbox ledger's transactions (claim, hand-over, outcome)."""
    from efa_rollout.mail import ledger

    spent: dict[str, float] = {}
    names = ("claim_batch", "commit_group", "record_outcome")
    originals = {n: getattr(ledger, n) for n in names if hasattr(ledger, n)}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - started

        return wrapper

    for name, fn in originals.items():
        setattr(ledger, name, timed(name, fn))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(ledger, name, fn)
        figures["ledger_seconds"] = spent


def _pooled(messages: list[Any], send_part: Callable[[list[Any]], Any]) -> float:
    """Messages per second, MESSAGES split over as many connections as delivery has."""
    import asyncio

    async def run() -> None:
        pool = int(os.environ.get("EFA_SMTP_POOL_SIZE", SMTP_POOL))
        await asyncio.gather(*(send_part(messages[k::pool]) for k in range(pool)))

    started = time.perf_counter()
    asyncio.run(run())
    return len(messages) / (time.perf_counter() - started)


def smtp_ceiling(port: int, messages: list[tuple[str, list[str], bytes]]) -> float:
    """Messages per second over as many reused connections as delivery has, no database at all.

    aiosmtplib's `sendmail`: one command at a time (it does not pipeline).
    """
    import aiosmtplib

    async def connection(part: list[tuple[str, list[str], bytes]]) -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await smtp.connect()
        for sender, recipients, raw in part:
            await smtp.sendmail(sender, recipients, raw)
        await smtp.quit()

    return _pooled(messages, connection)


def transport_ceiling(port: int, messages: list[tuple[str, list[str], bytes]]) -> float:
    """The same over the product's own SMTP transport (`send_message`), no database at all."""
    from efa_rollout.mail.ledger_state import Claimed
    from efa_rollout.mail.transport import SmtpConnection, parse_smtp_url, send_message

    async def handover() -> int:
        return 1

    async def connection(part: list[tuple[str, list[str], bytes]]) -> None:
        smtp = SmtpConnection(parse_smtp_url(f"smtp://127.0.0.1:{port}", timeout=30))
        for number, (sender, recipients, raw) in enumerate(part):
            claimed = Claimed(
                id=number,
                message_id="",
                campaign_id=None,
                ags=None,
                kind="bench",
                is_test=True,
                sender=sender,
                pending=tuple(recipients),
                raw=raw,
            )
            result, _ = await send_message(smtp, claimed, handover)
            assert result.outcome == "sent", result
        await smtp.close()

    return _pooled(messages, connection)


def _profile(name: str, wanted: str | None, fn: Callable[[], Any]) -> Any:
    if wanted != name:
        return fn()
    from pyinstrument import Profiler

    profiler = Profiler()
    profiler.start()
    try:
        return fn()
    finally:
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False), file=sys.stderr)


def _municipalities(state: str | None, district: str | None) -> list[tuple[str, str]]:
    from sqlmodel import col, select

    from efa_rollout.db import session_scope
    from models import Municipality

    with session_scope() as session:
        query = select(Municipality.ags, Municipality.name).order_by(col(Municipality.ags))
        if state:
            query = query.where(Municipality.state_code == state)
        if district:
            query = query.where(Municipality.district_code == district)
        return [(a, n) for a, n in session.exec(query)]


def _create(campaign_id: str, area: str) -> None:
    from efa_rollout.db import session_scope
    from efa_rollout.definitions import get_definition
    from efa_rollout.services import campaigns

    with session_scope() as session:
        campaigns.create_campaign(
            session,
            definition=get_definition("ewa"),
            area_code=area,
            go_live=GO_LIVE,
            now=local_moment(START_DAY, 8),
            name=campaign_id,
            actor="bench",
        )


def _area(state: str | None, district: str | None) -> list[str]:
    """Area codes a campaign can cover: the district, the state, or every state."""
    if district:
        return [district]
    if state:
        return [state]
    return [f"{n:02d}" for n in range(1, 17)]


def child_product(size: str, profile: str | None) -> dict[str, Any]:
    """The product's way, end to end, in this process."""
    from sqlmodel import select

    from efa_rollout.db import get_engine, session_scope
    from efa_rollout.importers.contacts import import_contacts
    from efa_rollout.importers.municipalities import import_municipalities
    from efa_rollout.mail import deliver
    from efa_rollout.reports.rollup import campaign_rollup
    from efa_rollout.services.orchestration import advance_campaigns, remind, start_campaign
    from models import OutboxMessage

    _label, state, district = SIZES[size]
    figures: dict[str, Any] = {"rss_after_imports_mb": _peak_mb()}
    get_engine()  # migrate outside the timings
    data_dir = Path(os.environ["EFA_DATA_DIR"])

    def do_import() -> int:
        with session_scope() as session:
            import_municipalities(session, GV100AD, state=state, district=district)
        pairs = _municipalities(state, district)
        path = data_dir / "contacts.csv"
        write_contacts(path, pairs)
        with session_scope() as session:
            import_contacts(session, path)
        return len(pairs)

    with _timed(figures, "import"):
        figures["municipalities"] = _profile("import", profile, do_import)

    campaigns = []
    with _timed(figures, "start"):
        enrolments = mails = 0
        for area in _area(state, district):
            campaign_id = CAMPAIGN if len(_area(state, district)) == 1 else f"{CAMPAIGN}-{area}"
            campaigns.append(campaign_id)
            _create(campaign_id, area)
            started = _profile(
                "start",
                profile,
                lambda cid=campaign_id: start_campaign(cid, local_moment(START_DAY)),
            )
            enrolments += started["enrolments"]
            mails += started["mails_queued"]
    figures["enrolments"], figures["information_requests"] = enrolments, mails

    with _timed(figures, "remind"):
        reports = _profile(
            "remind", profile, lambda: remind(as_of=local_moment(REMIND_DAY), actor="bench")
        )
    figures["reminders"] = sum(r.reminders for r in reports)
    if os.environ.get("EFA_BENCH_UNTIL") == "remind":
        figures["peak_mb"] = _peak_mb()
    if os.environ.get("EFA_BENCH_DIGEST"):  # streamed, but after the peak was taken
        figures["outbox_rows"], figures["outbox_sha256"] = outbox_digest()
    if os.environ.get("EFA_BENCH_UNTIL") == "remind":
        return figures

    sink = Sink()
    os.environ["EFA_SMTP_URL"] = sink.url
    from efa_rollout.settings import get_settings

    get_settings.cache_clear()
    extra = int(os.environ.get("EFA_BENCH_DELIVERY_PROCESSES", "1")) - 1
    try:
        with _timed(figures, "deliver"), _ledger_timer(figures):
            # More delivery processes at once (--delivery-processes): they share the outbox.
            helpers = [
                subprocess.Popen(
                    [sys.executable, "-c", DELIVER_CODE, local_moment(REMIND_DAY, 10).isoformat()],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for _ in range(extra)
            ]
            report = _profile("deliver", profile, lambda: deliver(now=local_moment(REMIND_DAY, 10)))
            sent_by_helpers = [int(h.communicate()[0].strip() or 0) for h in helpers]
    finally:
        counted = sink.stop()
    figures["delivered"] = report.total("sent") + sum(sent_by_helpers)
    figures["delivered_per_process"] = [report.total("sent"), *sent_by_helpers]
    figures["sink"] = counted
    # The same messages again, straight over SMTP without the ledger: this machine's ceiling.
    with session_scope() as session:
        sample = [
            (sender, list(recipients), raw)
            for sender, recipients, raw in session.exec(
                select(OutboxMessage.sender, OutboxMessage.recipients, OutboxMessage.raw).limit(
                    CEILING_SAMPLE
                )
            )
        ]
    for key, ceiling in (("smtp_ceiling", smtp_ceiling), ("transport_ceiling", transport_ceiling)):
        sink = Sink()
        try:
            figures[key] = ceiling(sink.port, sample)
        finally:
            sink.stop()
    with _timed(figures, "tick"):
        ticked = _profile(
            "tick",
            profile,
            lambda: advance_campaigns(None, local_moment(TICK_DAY), go_live=False),
        )
    figures["changes"] = sum(f["changes"] for f in ticked.values())
    with _timed(figures, "tick_idle"):
        advance_campaigns(None, local_moment(TICK_DAY, 10), go_live=False)

    def do_rollup() -> int:
        total = 0
        with session_scope() as session:
            for campaign_id in campaigns:
                total += campaign_rollup(session, campaign_id, as_of=local_moment(TICK_DAY)).total
        return total

    with _timed(figures, "rollup"):
        figures["rollup_total"] = _profile("rollup", profile, do_rollup)

    figures["peak_mb"] = _peak_mb()
    return figures


def outbox_digest() -> tuple[int, str]:
    """Rows and SHA-256 over every outbox row's Message-ID, raw, subject and recipients.

    The bench's clock is fixed and the stored raw holds the link placeholder (the token's nonce
    is in meta only), so two trees that queue the same mails give the same digest.
    """
    import hashlib

    from sqlmodel import col, select

    from efa_rollout.db import session_scope
    from models import OutboxMessage

    digest = hashlib.sha256()
    count = 0
    with session_scope() as session:
        query = select(
            OutboxMessage.message_id,
            OutboxMessage.raw,
            OutboxMessage.subject,
            OutboxMessage.recipients,
            OutboxMessage.cc,
        ).order_by(col(OutboxMessage.message_id))
        for message_id, raw, subject, recipients, cc in session.exec(
            query.execution_options(yield_per=500)
        ):
            for part in (message_id, raw, subject, json.dumps([recipients, cc])):
                data = part if isinstance(part, bytes) else part.encode()
                digest.update(len(data).to_bytes(8, "big") + data)
            count += 1
    return count, digest.hexdigest()


def child_naive(size: str, cap: int) -> dict[str, Any]:
    """The naive way: a Prefect task per municipality; one SMTP connection per message.

    Also the product's tick as a Prefect flow (one task per 2,000 enrolments), so that both
    Prefect variants pay the same per-run costs. Runs after `child_product` on its database.
    """
    import smtplib

    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner
    from sqlalchemy import update
    from sqlmodel import col, select

    from efa_rollout.db import get_engine, session_scope
    from efa_rollout.services import campaigns, enrolment, lookup, progression
    from flows.tick import tick
    from models import Campaign, OutboxMessage

    _label, state, district = SIZES[size]
    engine = get_engine()
    now = local_moment(TICK_DAY)
    figures: dict[str, Any] = {}
    areas = _area(state, district)
    # Untimed set-up: the product's campaigns are done; fresh enrolled campaigns (no mail)
    # for the Prefect tick (all areas) and the naive tick (first area, capped).
    with session_scope(engine) as session:
        session.execute(update(Campaign).values(status="closed"))

    def enrolled(campaign_id: str, area: str) -> None:
        _create(campaign_id, area)
        campaigns.mark_started(engine, campaign_id, now=local_moment(START_DAY), actor="bench")
        with session_scope(engine) as session:
            pending = campaigns.pending_enrolment_ags(
                session, lookup.get_campaign(session, campaign_id)
            )
        enrolment.enrol_batch(
            engine, campaign_id, pending, now=local_moment(START_DAY), actor="bench"
        )

    for area in areas:
        enrolled(f"{BATCH_TICK_CAMPAIGN}-{area}", area)

    tick(campaign=f"{BATCH_TICK_CAMPAIGN}-{areas[0]}", as_of=local_moment(START_DAY))  # warm-up
    with _timed(figures, "prefect_tick"):
        result = tick(campaign=None, as_of=now)
    figures["prefect_tick_changes"] = sum(f["changes"] for f in result.values())

    with session_scope(engine) as session:
        session.execute(update(Campaign).values(status="closed"))
    enrolled(NAIVE_TICK_CAMPAIGN, areas[0])

    @task(name="advance-one")
    def advance_one(enrolment_id: int) -> int:
        result = progression.advance_batch(
            engine,
            NAIVE_TICK_CAMPAIGN,
            [enrolment_id],
            now=now,
            options=progression.AdvanceOptions(actor="naive", include_go_live=False),
        )
        return len(result.changes)

    @flow(name="naive-tick", task_runner=ThreadPoolTaskRunner(max_workers=4))
    def naive_tick(ids: list[int]) -> int:
        return sum(f.result() for f in advance_one.map(ids))

    with session_scope(engine) as session:
        ids = lookup.enrolment_ids(session, NAIVE_TICK_CAMPAIGN)[:cap]
    with _timed(figures, "naive_tick_sample"):
        figures["naive_tick_changes"] = naive_tick(ids)
    figures["naive_tick_n"] = len(ids)

    # Naive delivery: re-send already delivered messages, a new connection for each.
    with session_scope(engine) as session:
        rows = session.exec(
            select(
                OutboxMessage.id, OutboxMessage.sender, OutboxMessage.recipients, OutboxMessage.raw
            )
            .where(OutboxMessage.status == "sent")
            .order_by(col(OutboxMessage.id))
            .limit(cap)
        ).all()
    sink = Sink()
    try:
        started = time.perf_counter()
        for outbox_id, sender, recipients, raw in rows:
            with smtplib.SMTP("127.0.0.1", sink.port, timeout=30) as smtp:
                smtp.sendmail(sender, recipients, raw)
            with session_scope(engine) as session:
                session.execute(
                    update(OutboxMessage)
                    .where(col(OutboxMessage.id) == outbox_id)
                    .values(attempts=OutboxMessage.attempts + 1)
                )
        figures["naive_deliver_sample"] = time.perf_counter() - started
    finally:
        figures["naive_sink"] = sink.stop()
    figures["naive_deliver_n"] = len(rows)
    figures["naive_peak_mb"] = _peak_mb()
    return figures


# --- the parent: one fresh process per size and database --------------------------------------


def _postgres_admin_url(explicit: str | None) -> str:
    if explicit:
        return explicit
    if os.environ.get("EFA_BENCH_POSTGRES_URL"):
        return os.environ["EFA_BENCH_POSTGRES_URL"]
    out = subprocess.run(
        [str(REPO / "scripts" / "postgres.sh"), "start"], check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


def _pg_admin(admin_url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(
        admin_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as conn:
        for statement in statements:
            conn.execute(statement)


def _run_child(
    kind: str, size: str, env: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", kind, "--sizes", size]
    command += ["--naive-cap", str(args.naive_cap)]
    if args.profile:
        command += ["--profile", args.profile]
    out = subprocess.run(command, env=env, cwd=env["EFA_DATA_DIR"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"{kind} run for {size} failed (exit {out.returncode})")
    if args.profile:
        sys.stderr.write(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_one(size: str, database: str, args: argparse.Namespace) -> dict[str, Any]:
    """Both children for one size on one database, in a fresh data folder and database."""
    load = f"{os.getloadavg()[0]:.1f}"
    with tempfile.TemporaryDirectory(prefix=f"efa-bench-{size}-") as tmp:
        env = {
            **os.environ,
            "EFA_DATA_DIR": tmp,
            "PYTHONPATH": os.pathsep.join(
                [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            "EFA_SMTP_POOL_SIZE": str(args.smtp_pool),
            "EFA_SMTP_RATE_PER_SECOND": "100000",  # the bench measures us, not a relay's limit
            "PREFECT_HOME": str(args.prefect_home),
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "EFA_BENCH_RELAY_RTT_MS": str(args.relay_rtt_ms),
            "EFA_BENCH_DELIVERY_PROCESSES": str(args.delivery_processes),
            "EFA_BENCH_DIGEST": "1" if args.digest else "",
            "EFA_BENCH_UNTIL": args.until or "",
        }
        env.pop("PREFECT_API_URL", None)
        env.pop("EFA_SMTP_URL", None)
        database_name = None
        if database == "postgresql":
            admin = _postgres_admin_url(args.postgres_url)
            database_name = f"efa_bench_{size}_{os.getpid()}"
            _pg_admin(
                admin,
                f"DROP DATABASE IF EXISTS {database_name}",
                f"CREATE DATABASE {database_name}",
            )
            env["EFA_DATABASE_URL"] = admin.rsplit("/", 1)[0] + "/" + database_name
        else:
            env.pop("EFA_DATABASE_URL", None)
        try:
            figures = _run_child("product", size, env, args)
            if not args.skip_naive and not args.until:
                figures.update(_run_child("naive", size, env, args))
                _extrapolate(figures)
        finally:
            if database_name:
                _pg_admin(admin, f"DROP DATABASE IF EXISTS {database_name} WITH (FORCE)")
    figures["size"], figures["database"] = size, database
    figures["load"] = load
    figures["relay_rtt_ms"] = args.relay_rtt_ms
    figures["delivery_processes"] = args.delivery_processes
    figures["smtp_pool"] = args.smtp_pool
    return figures


def _extrapolate(figures: dict[str, Any]) -> None:
    """Naive figures for the whole size: linear from the capped sample (marked ≈ when capped)."""
    for key, total in (
        ("naive_tick", figures["enrolments"]),
        ("naive_deliver", figures["delivered"]),
    ):
        n = figures[f"{key}_n"]
        figures[key] = figures[f"{key}_sample"] * total / max(1, n)
        figures[f"{key}_extrapolated"] = n < total


def _s(seconds: float | None, approx: bool = False) -> str:
    if seconds is None:
        return "–"
    text = (
        f"{seconds:.2f} s"
        if seconds < 10
        else f"{seconds:.1f} s"
        if seconds < 100
        else f"{seconds:.0f} s"
    )
    return ("≈" if approx else "") + text


def _rate(r: dict[str, Any], key: str) -> float | None:
    return r["delivered"] / r[key] if r.get(key) else None


def _where(r: dict[str, Any]) -> str:
    return f"{SIZES[r['size']][0]} ({r['municipalities']:,}) | {r['database']}"


def short_table(results: list[dict[str, Any]]) -> str:
    """Markdown: start and reminders only (`--until remind`), CPU per mail, the digest."""
    out = [
        "| size | db | load | start | CPU/mail | reminders | CPU/mail | peak | outbox SHA-256 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        start_ms = r["start_cpu"] * 1000 / max(1, r["information_requests"])
        remind_ms = r["remind_cpu"] * 1000 / max(1, r["reminders"])
        digest = f"{r['outbox_rows']:,}: {r['outbox_sha256'][:16]}" if "outbox_sha256" in r else "–"
        out.append(
            f"| {_where(r)} | {r.get('load', '')} | {_s(r['start'])} | {start_ms:.2f} ms "
            f"| {_s(r['remind'])} | {remind_ms:.2f} ms | {r['peak_mb']:.0f} MB | {digest} |"
        )
    return "\n".join(out)


def tables(results: list[dict[str, Any]]) -> str:
    """Markdown: the product's way; side by side with the naive way; targets and linearity."""
    out = [
        "The product's way (wall time; each size in a fresh process):",
        "",
        "| size | db | import | start | reminders | tick | tick, nothing due | roll-up "
        "| delivery | msg/s | peak RSS |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        out.append(
            f"| {_where(r)} | {_s(r['import'])} | {_s(r['start'])} | {_s(r['remind'])} "
            f"| {_s(r['tick'])} | {_s(r['tick_idle'])} | {_s(r['rollup'])} "
            f"| {_s(r['deliver'])} ({r['delivered']:,}) | {_rate(r, 'deliver'):,.0f} "
            f"| {r['peak_mb']:.0f} MB |"
        )
    out += [
        "",
        "Side by side with the naive way (≈: extrapolated linearly from the first "
        "`--naive-cap` municipalities or messages):",
        "",
        "| size | db | tick: engine | tick: Prefect flow, task per 2,000 "
        "| tick: Prefect, task per municipality | delivery: pooled msg/s "
        "| delivery: connection per message msg/s | speed-up | SMTP alone msg/s "
        "| transport alone msg/s | delivery ÷ SMTP alone | delivery CPU per mail "
        "| ledger ms/msg |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        pooled, naive = _rate(r, "deliver"), _rate(r, "naive_deliver")
        own = (r.get("delivered_per_process") or [r["delivered"]])[0]  # timed in-process only
        ledger = sum((r.get("ledger_seconds") or {}).values()) * 1000 / max(1, own)
        out.append(
            f"| {_where(r)} | {_s(r['tick'])} | {_s(r.get('prefect_tick'))} "
            f"| {_s(r.get('naive_tick'), r.get('naive_tick_extrapolated', False))} "
            f"| {pooled:,.0f} | {f'{naive:,.0f}' if naive else '–'} "
            f"| {f'{pooled / naive:.1f}×' if naive else '–'} "
            f"| {r.get('smtp_ceiling', 0):,.0f} | {r.get('transport_ceiling', 0):,.0f} "
            f"| {pooled / r['smtp_ceiling'] if r.get('smtp_ceiling') else 0:.0%} "
            f"| {r['deliver_cpu'] * 1000 / max(1, own):.2f} ms | {ledger:.1f} |"
        )
    by_key = {(r["size"], r["database"]): r for r in results}
    checks = []
    for database in dict.fromkeys(r["database"] for r in results):
        de, bw = by_key.get(("germany", database)), by_key.get(("bw", database))
        if de is None:
            continue
        pooled, naive = _rate(de, "deliver"), _rate(de, "naive_deliver")
        checks += [
            f"| {database} | tick < 3 s | {_s(de['tick'])} | {_ok(de['tick'] < 3)} |",
            f"| {database} | roll-up < 2 s | {_s(de['rollup'])} | {_ok(de['rollup'] < 2)} |",
            f"| {database} | delivery ≥ 300 msg/s | {pooled:,.0f} msg/s | {_ok(pooled >= 300)} |",
            f"| {database} | delivery ≥ 10× naive | "
            + (f"{pooled / naive:.1f}× | {_ok(pooled / naive >= 10)} |" if naive else "– | – |"),
            f"| {database} | peak memory < 500 MB | {de['peak_mb']:.0f} MB "
            f"| {_ok(de['peak_mb'] < 500)} |",
        ]
        if bw is not None:
            ratios = ", ".join(
                f"{label} {de[key] / bw[key]:.1f}"
                for key, label in (
                    ("start", "start"),
                    ("remind", "reminders"),
                    ("tick", "tick"),
                    ("rollup", "roll-up"),
                    ("deliver", "delivery"),
                )
                if bw.get(key)
            )
            enrolled = de["enrolments"] / bw["enrolments"]
            checks.append(
                f"| {database} | linear: Germany ÷ BW ≈ {enrolled:.1f} (enrolments) | {ratios} | |"
            )
    if checks:
        out += [
            "",
            "Targets (all of Germany):",
            "",
            "| db | target | measured | |",
            "|---|---|---|---|",
        ]
        out += checks
    processes = {r.get("delivery_processes", 1) for r in results}
    out += [
        "",
        f"Delivery processes at once: {', '.join(map(str, sorted(processes)))}; "
        "SMTP connections per process (delivery and SMTP alone): "
        + ", ".join(str(p) for p in sorted({r.get("smtp_pool", SMTP_POOL) for r in results})),
    ]
    rtt = {r.get("relay_rtt_ms", 0.0) for r in results}
    out += [
        "",
        "SMTP sink: aiosmtpd on loopback advertising PIPELINING, relay round trip simulated "
        f"(a delaying proxy, RTT/2 each way, RTT to connect): {', '.join(f'{x:g} ms' for x in sorted(rtt))}. "
        "SMTP alone: aiosmtplib's sendmail (no pipelining); transport alone: the product's "
        "send_message; both without a database.",
    ]
    loads = ", ".join(f"{r['size']}/{r['database']} {r['load']}" for r in results if r.get("load"))
    out += ["", f"Load average (1 min) at the start of each run: {loads}"]
    return "\n".join(out)


def _ok(condition: bool) -> str:
    return "met" if condition else "**missed**"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="ostalbkreis,bw,germany")
    parser.add_argument("--databases", default="sqlite")
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--naive-cap", type=int, default=1101)
    parser.add_argument(
        "--delivery-processes",
        type=int,
        default=1,
        help="deliver with this many processes at once (peak memory: the first one only)",
    )
    parser.add_argument(
        "--relay-rtt-ms",
        type=float,
        default=0.0,
        help="the SMTP sink is this round trip away (a relay over the network): every chunk "
        "takes half of it each way, connecting one whole",
    )
    parser.add_argument(
        "--smtp-pool",
        type=int,
        default=SMTP_POOL,
        help="SMTP connections per delivery process, and for SMTP alone (EFA_SMTP_POOL_SIZE)",
    )
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument(
        "--profile", choices=["import", "start", "remind", "tick", "rollup", "deliver"]
    )
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument(
        "--until",
        choices=["remind"],
        help="stop after this step (no delivery, tick, roll-up, naive runs): a short table",
    )
    parser.add_argument(
        "--digest",
        action="store_true",
        help="SHA-256 over every outbox row after the reminders (a change must keep it)",
    )
    parser.add_argument("--child", choices=["product", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if args.child == "product":
            figures = child_product(args.sizes, args.profile)
        else:
            figures = child_naive(args.sizes, args.naive_cap)
        print(json.dumps(figures))
        return 0
    results = []
    prefect_home = tempfile.TemporaryDirectory(prefix="efa-bench-prefect-")
    args.prefect_home = Path(prefect_home.name)  # one local Prefect database for all runs
    for database in args.databases.split(","):
        for size in args.sizes.split(","):
            print(f"» {size} on {database} ...", file=sys.stderr, flush=True)
            results.append(run_one(size, database, args))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(short_table(results) if args.until else tables(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
