"""Progress and mail events to Prefect: once per commit, after it, never failing the caller."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import Engine

from efa_rollout import prefect_api as server_api
from efa_rollout.db import session_scope
from models import Event


class _Recorder(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, list[dict[str, Any]]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append((self.path, json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, list[dict[str, Any]]]]]:
    """A stand-in for the server's event endpoint that records what it gets."""
    received: ClassVar[list[tuple[str, list[dict[str, Any]]]]] = []
    handler = type("Handler", (_Recorder,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{server.server_port}/api")
    yield received
    server.shutdown()


def _events(received: list[tuple[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    server_api.flush(5)
    assert all(path == "/api/events" for path, _ in received)
    return [event for _, batch in received for event in batch]


def test_progress_is_emitted_once_after_the_commit_per_campaign(
    engine: Engine, api: list[Any]
) -> None:
    with session_scope(engine) as session:
        for kind in ("answers_submitted", "checklist_item_done", "stage_changed"):
            session.add(Event(campaign_id="ewa-x", actor="test", kind=kind))
        with session.begin_nested():  # a SAVEPOINT commit is not yet durable: nothing sent
            session.add(Event(campaign_id="viba-x", actor="test", kind="checklist_item_done"))
        server_api.flush(1)
        assert api == []
    events = _events(api)
    assert sorted(e["payload"]["campaign"] for e in events) == ["ewa-x", "viba-x"]
    assert {e["event"] for e in events} == {server_api.PROGRESS_EVENT}
    assert {e["resource"]["prefect.resource.id"] for e in events} == {
        "efa.campaign.ewa-x",
        "efa.campaign.viba-x",
    }


def test_a_tick_of_its_own_emits_nothing_and_a_rollback_nothing(
    engine: Engine, api: list[Any]
) -> None:
    with session_scope(engine) as session:
        session.add(Event(campaign_id="ewa-x", actor="tick", kind="stage_changed"))
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        session.add(Event(campaign_id="ewa-x", actor="portal", kind="answers_submitted"))
        session.flush()
        raise RuntimeError("abgebrochen")
    with session_scope(engine) as session:
        session.add(Event(campaign_id=None, actor="x", kind="note"))
    assert _events(api) == []


def test_without_a_server_nothing_is_sent_and_a_dead_server_fails_nobody(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, efa_env: Path
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert server_api.configured_api_url() is None
    assert server_api.emit([server_api.make_event("x", "y", {})]) is False
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{port}/api")
    with session_scope(engine) as session:
        session.add(Event(campaign_id="ewa-x", actor="portal", kind="answers_submitted"))
    server_api.flush(5)  # the post failed in the background; the commit stands
    with session_scope(engine) as session:
        assert session.get(Event, 1) is not None


def test_the_record_of_efa_up_counts_only_while_its_process_lives(efa_env: Path) -> None:
    server_api.write_record(efa_env, api_url="http://127.0.0.1:1/api")
    assert server_api.read_record(efa_env)["api_url"] == "http://127.0.0.1:1/api"
    path = server_api.record_path(efa_env)
    path.write_text(json.dumps({"api_url": "x", "pid": 2**22 + 12345}), encoding="utf-8")
    assert server_api.read_record(efa_env) is None
    server_api.clear_record(efa_env)
    assert not path.exists()


@pytest.mark.prefect
@pytest.mark.slow
def test_the_shared_rate_holds_across_concurrent_delivery_runs(prefect_api: None) -> None:
    import asyncio
    import time

    from prefect.client.orchestration import get_client

    from deployments.serving import ensure_rate_limit
    from tasks.mail_rate import SharedRate

    asyncio.run(ensure_rate_limit(5))
    asyncio.run(ensure_rate_limit(5))  # idempotent: updates the existing limit

    async def read() -> Any:
        async with get_client() as client:
            return await client.read_global_concurrency_limit_by_name(server_api.SMTP_RATE_LIMIT)

    limit = asyncio.run(read())
    assert (limit.limit, limit.slot_decay_per_second, limit.active) == (5, 5.0, True)

    def one_run(sent: list[float]) -> None:
        async def deliver() -> None:
            rate = SharedRate()
            for _ in range(10):
                await rate.acquire()
                sent.append(time.monotonic())

        asyncio.run(deliver())

    started = time.monotonic()
    sent: list[float] = []
    runs = [threading.Thread(target=one_run, args=(sent,)) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=120)
    # 20 messages at 5 per second with a burst of 5 take at least 3 s for both runs together;
    # two runs with a limit each would be done after about 1 s.
    assert len(sent) == 20
    assert max(sent) - started >= 2.8


def test_mail_queued_with_a_bulk_insert_emits_the_mail_event(
    engine: Engine, api: list[Any]
) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from models import OutboxMessage

    row = {
        "kind": "information_request",
        "message_id": "<bulk-1@example.org>",
        "sender": "efa@example.org",
        "recipients": ["hauptamt@example.org"],
        "cc": [],
        "subject": "Test",
        "raw": b"Subject: Test\r\n\r\n",
        "status": "queued",
        "queued_at": datetime.now(UTC),
        "recipient_status": {},
        "meta": {},
    }
    # As services.outbox queues per batch: a Core INSERT, no ORM objects in the session.
    with session_scope(engine) as session:
        session.execute(insert(OutboxMessage.__table__), [row])  # type: ignore[attr-defined]
    events = _events(api)
    assert [e["event"] for e in events] == [server_api.MAIL_EVENT]
