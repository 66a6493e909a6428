"""Safe concurrency: several processes deliver or tick at once, and everything happens once.

Real processes, started together behind a barrier, against the test's own database:

* delivery: two workers deliver a few hundred queued messages to an aiosmtpd server on
  loopback; the server sees every Message-ID exactly once;
* tick: two workers advance the same campaigns batch by batch (one front to back, the other
  back to front, so they meet); every stage transition is logged exactly once and every
  stage mail is queued once.

On PostgreSQL (EFA_TEST_DATABASE_URL=postgresql://...) the workers share the load through row
locks with SKIP LOCKED; on SQLite through the single-writer discipline (WAL, busy timeout,
BEGIN IMMEDIATE). Each variant runs on its own backend only.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from email.parser import BytesHeaderParser
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from efa_rollout.db import get_engine, session_scope
from efa_rollout.domain.stages import Stage
from efa_rollout.services import overrides
from efa_rollout.services.orchestration import start_campaign
from efa_rollout.settings import get_settings
from models import DeliveryAttempt, Enrolment, Event, OutboxMessage
from tests.conftest import REPO_ROOT, database_backend
from tests.engine_fixtures import EWA, VIBA, at, create_ewa, ostalbkreis_with_campaigns

pytestmark = pytest.mark.slow

BACKENDS = [
    pytest.param("postgresql", id="postgresql"),
    pytest.param("sqlite", id="sqlite"),
]
#: Extra eWA campaigns over the Ostalbkreis, so that there are a few hundred messages.
EXTRA_CAMPAIGNS = [f"ewa-welle-{n}" for n in range(1, 7)]
WORKERS = 2
WORKER_TIMEOUT = 300

# One worker process: imports and connects first, then waits for the start signal (a file),
# so that the workers really run at the same time; prints one JSON line with its figures.
WORKER_CODE = r"""
import json, os, sys, time
from datetime import datetime
from pathlib import Path

mode, go_file = sys.argv[1], Path(sys.argv[2])
from efa_rollout.services import lookup, progression
from efa_rollout.db import get_engine, session_scope
from efa_rollout.mail import deliver

engine = get_engine()
with engine.connect():
    pass
(go_file.parent / f"{go_file.name}.ready-{os.getpid()}").touch()
while not go_file.exists():
    time.sleep(0.002)
started = time.time()
if mode == "deliver":
    report = deliver(now=datetime.fromisoformat(sys.argv[3]))
    figures = {"sent": report.total("sent"), "attempted": report.attempted,
               "unknown": report.total("unknown"), "retrying": report.total("retrying")}
else:
    now, batch_size, reverse = datetime.fromisoformat(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
    campaigns = sys.argv[6].split(",")
    work = []
    for campaign_id in campaigns:
        with session_scope(engine) as session:
            ids = lookup.enrolment_ids(session, campaign_id)
        work += [(campaign_id, ids[i:i + batch_size]) for i in range(0, len(ids), batch_size)]
    if reverse:
        work.reverse()
    changes = mails = 0
    for campaign_id, batch in work:
        options = progression.AdvanceOptions(actor=f"tick-{os.getpid()}", include_go_live=True)
        result = progression.advance_batch(engine, campaign_id, batch, now=now, options=options)
        changes += len(result.changes)
        mails += result.mails_queued
        time.sleep(0.01)  # a real worker does other things between batches
    figures = {"changes": changes, "mails_queued": mails}
figures.update(pid=os.getpid(), started=started, finished=time.time())
print(json.dumps(figures), flush=True)
"""


def _require(backend: str) -> None:
    if backend != database_backend():
        if backend == "postgresql":
            pytest.skip(
                "PostgreSQL variant: set EFA_TEST_DATABASE_URL=postgresql://... "
                "(e.g. $(scripts/postgres.sh start)) to run it"
            )
        pytest.skip("SQLite variant: runs when EFA_TEST_DATABASE_URL is not set")


class CountingSink:
    """aiosmtpd on a free loopback port, counting received messages by Message-ID."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.received: Counter[str | None] = Counter()
        self._lock = threading.Lock()
        self._parser = BytesHeaderParser()
        with socket.socket() as probe:  # aiosmtpd's readiness check needs a real port
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        message_id = self._parser.parsebytes(content).get("Message-ID")
        message_id = "".join(message_id.split()) if message_id else None  # unfold
        with self._lock:
            self.received[message_id] += 1
        return "250 2.0.0 OK"

    def __enter__(self) -> CountingSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


def run_workers(data_dir: Path, argument_lists: list[list[str]], **env: str) -> list[dict]:
    """Start one worker per argument list, release them together, return their figures."""
    go = data_dir / f"go-{time.monotonic_ns()}"
    environment = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "EFA_DATABASE_URL": get_settings().effective_database_url,
        "PREFECT_LOGGING_LEVEL": "WARNING",
        **env,
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER_CODE, args[0], str(go), *args[1:]],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in argument_lists
    ]
    # Release them only when every worker has imported and connected: on a loaded machine a
    # fixed pause let one worker finish before the other had started.
    deadline = time.monotonic() + WORKER_TIMEOUT
    while len(list(data_dir.glob(f"{go.name}.ready-*"))) < len(processes):
        assert all(p.poll() is None for p in processes), "a worker ended before the start"
        assert time.monotonic() < deadline, "the workers did not get ready"
        time.sleep(0.01)
    go.touch()
    figures = []
    for process in processes:
        out, err = process.communicate(timeout=WORKER_TIMEOUT)
        assert process.returncode == 0, f"worker failed:\n{err}"
        figures.append(json.loads(out.strip().splitlines()[-1]))
    return figures


def assert_overlapping(figures: list[dict]) -> None:
    """The workers really ran at the same time."""
    assert max(f["started"] for f in figures) < min(f["finished"] for f in figures), figures


@pytest.fixture
def district(efa_env: Path) -> Path:
    """The Ostalbkreis with contacts, ViBa BW and eWA (not started)."""
    ostalbkreis_with_campaigns(efa_env)
    return efa_env


# --- delivery --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_delivery_processes_send_every_message_exactly_once(
    district: Path, backend: str
) -> None:
    _require(backend)
    for name in EXTRA_CAMPAIGNS:
        create_ewa(name=name)
    for campaign_id in [VIBA, EWA, *EXTRA_CAMPAIGNS]:
        start_campaign(campaign_id, at("2024-04-15"))
    with Session(get_engine()) as session:
        queued = session.exec(
            select(OutboxMessage.message_id).where(OutboxMessage.status == "queued")
        ).all()
    assert len(queued) >= 300

    with CountingSink() as sink:
        figures = run_workers(
            district,
            [["deliver", at("2024-04-15", 10).isoformat()] for _ in range(WORKERS)],
            EFA_SMTP_URL=sink.url,
            EFA_SMTP_POOL_SIZE="4",
            EFA_SMTP_RATE_PER_SECOND="10000",
        )
    print(f"\n{backend}: delivery workers {[(f['pid'], f['sent']) for f in figures]}")

    assert_overlapping(figures)
    assert sum(f["sent"] for f in figures) == len(queued)
    assert all(f["unknown"] == 0 and f["retrying"] == 0 for f in figures)
    assert set(sink.received) == set(queued)  # every queued message arrived ...
    duplicates = {mid: n for mid, n in sink.received.items() if n != 1}
    assert not duplicates  # ... exactly once
    with Session(get_engine()) as session:
        statuses = Counter(session.exec(select(OutboxMessage.status)).all())
        attempts = session.exec(
            select(DeliveryAttempt.outbox_id, func.count())
            .where(DeliveryAttempt.outcome == "sent")
            .group_by(DeliveryAttempt.outbox_id)
        ).all()
        workers = session.exec(select(func.count(func.distinct(DeliveryAttempt.worker)))).one()
    assert statuses == {"sent": len(queued)}
    assert len(attempts) == len(queued) and {n for _, n in attempts} == {1}
    if backend == "postgresql":  # SKIP LOCKED: both take work; SQLite may serialise them
        assert all(f["sent"] > 0 for f in figures), figures
        assert workers == WORKERS


# --- tick ------------------------------------------------------------------------------------


def _prepare_ticks() -> None:
    """eWA collecting (deadline 09.07.2024); ViBa BW all in checklist follow-up."""
    start_campaign(EWA, at("2024-04-15"))
    start_campaign(VIBA, at("2023-04-17"))
    with session_scope() as session:
        for enrolment in session.exec(select(Enrolment).where(Enrolment.campaign_id == VIBA)):
            overrides.set_stage(
                session,
                enrolment,
                Stage.CHECKLIST_FOLLOW_UP,
                reason="Test",
                actor="test",
                now=at("2024-01-08"),
            )


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_tick_processes_apply_every_transition_exactly_once(
    district: Path, backend: str
) -> None:
    _require(backend)
    _prepare_ticks()
    now = at("2024-08-19")  # eWA past its deadline; ViBa BW live since 01.08.2024
    campaigns = f"{EWA},{VIBA}"
    figures = run_workers(
        district,
        [
            ["tick", now.isoformat(), "4", str(reverse), campaigns]
            for reverse in range(WORKERS)  # one front to back, one back to front
        ],
    )
    print(f"\n{backend}: tick workers {[(f['pid'], f['changes']) for f in figures]}")
    assert_overlapping(figures)

    with Session(get_engine()) as session:
        events = session.exec(
            select(Event)
            .where(Event.kind == "stage_changed", col(Event.actor).startswith("tick-"))
            .order_by(col(Event.id))
        ).all()
        enrolments = {
            e.id: e
            for e in session.exec(
                select(Enrolment).where(col(Enrolment.campaign_id).in_([EWA, VIBA]))
            )
        }
        stage_mail = session.exec(
            select(OutboxMessage.ags, OutboxMessage.kind).where(
                OutboxMessage.kind != "information_request"
            )
        ).all()

    per_step = Counter((e.enrolment_id, e.from_stage, e.to_stage) for e in events)
    assert per_step and set(per_step.values()) == {1}  # every transition exactly once
    assert sum(f["changes"] for f in figures) == len(events)
    # Each enrolment's transitions form one unbroken path to the stage it is in now.
    for enrolment_id, enrolment in enrolments.items():
        path = [(e.from_stage, e.to_stage) for e in events if e.enrolment_id == enrolment_id]
        assert path, f"{enrolment.ags} did not move"
        assert all(a[1] == b[0] for a, b in pairwise(path))
        assert path[-1][1] == enrolment.stage
    ewa = [e for e in enrolments.values() if e.campaign_id == EWA]
    viba = [e for e in enrolments.values() if e.campaign_id == VIBA]
    assert {e.stage for e in ewa} == {Stage.SUMMARY_DISTRIBUTION.value}
    assert {e.stage for e in viba} == {Stage.AFTER_CARE.value}
    # Stage mail (go-live notice, after-care question) is queued once per municipality, by
    # whichever worker moved it, and the workers' counts add up to what is in the outbox.
    assert Counter(a for a, kind in stage_mail if kind == "go_live") == {e.ags: 1 for e in viba}
    assert len(stage_mail) == len(set(stage_mail))
    assert sum(f["mails_queued"] for f in figures) == len(stage_mail)
    if backend == "postgresql":  # SKIP LOCKED: both take batches; SQLite may serialise them
        assert all(f["changes"] > 0 for f in figures), figures
