"""Crash test: a delivery process killed with SIGKILL at random points, then delivery re-run.

Every message must reach the server at least once and at most twice; a second copy may only
come from a message that was in flight at the kill (state `unknown`, re-sent by the
coordinator's `efa mail retry --status unknown`), and carries the same Message-ID.

The killed processes come from a fork server with the delivery code preloaded: each is a
real, separate process (own database connections, own SMTP connections), started in
milliseconds instead of the ~1-3 s a fresh interpreter needs.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from efa_rollout.mail.delivery import deliver
from efa_rollout.mail.message import Recipient, build_message, message_bytes
from efa_rollout.mail.render import render_mail
from efa_rollout.services.mail_preview import sample_extra, sample_objects
from efa_rollout.services.outbox_admin import retry_messages
from efa_rollout.settings import get_settings
from models import OutboxMessage
from tests.smtp_fault_server import FaultServer

RUNS = int(os.environ.get("EFA_CRASH_RUNS", "20"))
MESSAGES = int(os.environ.get("EFA_CRASH_MESSAGES", "200"))


def _deliver_child(environment: dict[str, str]) -> None:
    """Runs in the killed process: deliver everything due."""
    from efa_rollout import db

    os.environ.update(environment)
    get_settings.cache_clear()
    db.reset_engines()
    deliver()


def _queue(session: Session, run: int, now: datetime) -> list[str]:
    """MESSAGES rows for this run (one message built, ID and recipient swapped); their IDs."""
    from efa_rollout.mail.context import build_context

    campaign, enrolment, municipality = sample_objects(now)
    context = build_context(
        None,
        campaign=campaign,
        enrolment=enrolment,
        municipality=municipality,
        contacts=[],
        kind="go_live",
        sequence=1,
        now=now,
        settings=get_settings(),
        portal_link=None,
        extra=sample_extra("go_live", now),
    )
    rendered = render_mail("go_live", context)
    template = message_bytes(
        build_message(
            rendered,
            to=[Recipient("r-XXXXXX@gemeinde.example")],
            message_id="<XXXXXX@lra.example>",
            date=now,
            kind="go_live",
        )
    )
    ids = []
    for i in range(MESSAGES):
        token = f"{run:02d}{i:04d}"
        message_id, recipient = f"<{token}@lra.example>", f"r-{token}@gemeinde.example"
        session.add(
            OutboxMessage(
                campaign_id=f"crash{run}",
                kind="go_live",
                sequence=i,
                message_id=message_id,
                sender="egov@lra.example",
                recipients=[recipient],
                subject="x",
                raw=template.replace(b"XXXXXX", token.encode()),
                status="queued",
                next_attempt_at=now,
                queued_at=now,
            )
        )
        ids.append(message_id)
    session.commit()
    return ids


def _wait_for_server(server: FaultServer, count: int, process: Any) -> None:
    deadline = time.monotonic() + 30
    while len(server.handler.stored) < count and process.is_alive() and time.monotonic() < deadline:
        time.sleep(0.0005)


def _kill_at_random_point(
    process: Any, server: FaultServer, rng: random.Random, before: int
) -> str:
    """SIGKILL the delivery: during start-up, after the k-th message, or at a random moment."""
    choice = rng.random()
    if choice < 0.1:
        delay = rng.uniform(0, 1.0)
        time.sleep(delay)
        how = f"Start +{delay:.2f} s"
    elif choice < 0.55:
        _wait_for_server(server, before + rng.randint(1, MESSAGES - 1), process)
        time.sleep(rng.uniform(0, 0.003))
        how = f"nach Nachricht {len(server.handler.stored) - before}"
    else:
        _wait_for_server(server, before + 1, process)
        delay = rng.uniform(0, 0.6)
        time.sleep(delay)
        how = f"1. Nachricht +{delay:.2f} s"
    process.kill()
    process.join()
    return how


@pytest.mark.slow
def test_sigkill_at_random_points_loses_nothing_and_duplicates_only_in_flight_mail(
    efa_env: Path,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = FaultServer().start()
    environment = {
        "EFA_DATA_DIR": str(efa_env),
        "EFA_SMTP_URL": server.url,
        "EFA_SMTP_RATE_PER_SECOND": "100000",
        "EFA_SMTP_POOL_SIZE": "4",
        "EFA_SMTP_TIMEOUT_SECONDS": "5",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "efa_rollout.mail.transport", "alembic.script"])
    seed = int(os.environ.get("EFA_CRASH_SEED", str(random.randrange(10**6))))
    rng = random.Random(seed)
    figures: Counter[str] = Counter()
    lines = []
    started = time.monotonic()
    try:
        for run in range(RUNS):
            now = datetime.now(UTC)
            with Session(engine) as session:
                message_ids = _queue(session, run, now)
            before = len(server.handler.stored)
            process = context.Process(target=_deliver_child, args=(environment,))
            process.start()
            how = _kill_at_random_point(process, server, rng, before)
            received_before_rerun = len(server.handler.stored) - before
            first = deliver()  # recovers the dead process's claims, sends what is provably unsent
            with Session(engine) as session:
                retried, _ = retry_messages(session, now=datetime.now(UTC), statuses=["unknown"])
                session.commit()
            second = deliver()
            copies = server.handler.by_message_id()
            counts = [copies[m] for m in message_ids]
            duplicates = sum(c - 1 for c in counts if c > 1)
            assert min(counts) >= 1, f"run {run}: a message never reached the server"
            assert max(counts) <= 2, f"run {run}: a message reached the server three times"
            assert duplicates <= len(retried) == first.recovered_unknown
            assert sum(counts) == len(server.handler.stored) - before  # nothing foreign
            with Session(engine) as session:
                statuses = Counter(
                    session.exec(
                        select(OutboxMessage.status).where(
                            OutboxMessage.campaign_id == f"crash{run}"
                        )
                    ).all()
                )
            assert statuses == Counter({"sent": MESSAGES}), statuses
            assert second.total("sent") == len(retried)
            figures["runs"] += 1
            figures["messages"] += MESSAGES
            figures["received_before_kill"] += received_before_rerun
            figures["requeued_after_kill"] += first.recovered_requeued
            figures["unknown_after_kill"] += first.recovered_unknown
            figures["duplicates"] += duplicates
            lines.append(
                f"  Lauf {run + 1:2d}: Abbruch {how:<24} vor Abbruch beim Server {received_before_rerun:3d}, "
                f"wieder eingereiht {first.recovered_requeued:2d}, ungewiss {first.recovered_unknown}, Duplikate {duplicates}"
            )
    finally:
        server.stop()
    with capsys.disabled():
        print(f"\nCrash-Test (Seed {seed}, {time.monotonic() - started:.1f} s):")
        print("\n".join(lines))
        print(
            f"  Summe: {figures['runs']} Läufe, {figures['messages']} Nachrichten, "
            f"{figures['unknown_after_kill']} ungewiss nach Abbruch, {figures['duplicates']} Duplikate "
            f"(alle mit derselben Message-ID), 0 verloren."
        )
