"""Where the Prefect server is, runs and progress events sent to it (no Prefect import).

`efa up` records its server in the data folder; `PREFECT_API_URL` names one explicitly. Progress
events (a municipality answered or ticked its checklist, mail was queued) go to the server's
event API after the database commit, from a background thread: a portal request or a CLI
command never waits for Prefect or fails because it is down. The server's deployment triggers
(`deployments/catalog.py`) turn them into tick and delivery runs. `ServerApi` triggers and follows
a deployment run over the REST API with httpx (`efa_rollout/prefect_rest.py`): the CLI answers
without importing Prefect (~1 s).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from efa_rollout.domain.audit import EventKind
from efa_rollout.prefect_rest import send_with_retry

_log = logging.getLogger(__name__)

#: Event-log kinds that mean "a municipality did its part": they trigger a tick.
PROGRESS_KINDS = frozenset(
    {EventKind.ANSWERS_SUBMITTED, EventKind.CHECKLIST_ITEM_DONE, EventKind.CHECKLIST_ITEM_REOPENED}
)
PROGRESS_EVENT = "efa.enrolment.progress"
MAIL_EVENT = "efa.outbox.queued"
#: The Prefect global concurrency limit (with slot decay) that carries EFA_SMTP_RATE_PER_SECOND.
SMTP_RATE_LIMIT = "efa-smtp-rate"
RECORD_NAME = "efa-up.json"


def campaign_tags(campaign_id: str, service_key: str | None) -> list[str]:
    """Tags per campaign and service, for filtering in the Prefect UI."""
    found = [f"campaign:{campaign_id}"]
    if service_key:
        found.append(f"service:{service_key}")
    return found


# -- where the server is ----------------------------------------------------------------------


def prefect_home(data_dir: Path) -> Path:
    """PREFECT_HOME of `efa up`: inside the data folder, so the server's database is kept."""
    return (data_dir / "prefect").resolve()


def record_path(data_dir: Path) -> Path:
    """The file in which `efa up` records its addresses and process id."""
    return prefect_home(data_dir) / RECORD_NAME


def write_record(data_dir: Path, **values: Any) -> None:
    """Record what `efa up` runs (atomically)."""
    path = record_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps({**values, "pid": os.getpid()}, indent=2), encoding="utf-8")
    os.replace(temp, path)


def read_record(data_dir: Path) -> dict[str, Any] | None:
    """What a running `efa up` recorded, or None (no file, or its process is gone)."""
    try:
        record = json.loads(record_path(data_dir).read_text(encoding="utf-8"))
        os.kill(int(record["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record


def clear_record(data_dir: Path) -> None:
    """Remove the record (on shutdown of `efa up`)."""
    record_path(data_dir).unlink(missing_ok=True)


def _data_dir() -> Path:
    from efa_rollout.settings import get_settings

    return get_settings().data_dir


def configured_api_url() -> str | None:
    """PREFECT_API_URL from the environment, else the server a running `efa up` recorded."""
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return url.rstrip("/")
    record = read_record(_data_dir())
    return record.get("api_url") if record else None


def server_reachable(
    api_url: str, timeout: float = 2.0, attempts: int = 3, client: Any = None
) -> bool:
    """Whether the Prefect API at API_URL answers its health check (through CLIENT if given).

    A busy server (a timeout, a 503) is asked again briefly: a False makes the CLI run the flow
    in its own process instead, beside the server. Nobody listening (a record left by an `efa
    up` that has ended) is a False at once.
    """
    import httpx

    url = f"{api_url}/health"
    try:
        if client is not None:  # the caller's: one client (and TLS context) per command
            response = send_with_retry(
                client, "GET", url, attempts=attempts, retry_refused=False, timeout=timeout
            )
        else:
            with httpx.Client(timeout=timeout) as own:
                response = send_with_retry(own, "GET", url, attempts=attempts, retry_refused=False)
        return response.status_code == 200
    except httpx.HTTPError:
        return False


def adopt_server(url: str, client: Any = None) -> bool:
    """Point this process at the server URL if it is reachable (asked through CLIENT)."""
    if not server_reachable(url, client=client):
        return False
    os.environ["PREFECT_API_URL"] = url  # for a Prefect imported later in this process
    return True


def adopt_recorded_server() -> str | None:
    """Point this process at a reachable server (env or `efa up`); its API URL or None."""
    url = configured_api_url()
    return url if url and adopt_server(url) else None


# -- events -----------------------------------------------------------------------------------


class _Emitter:
    """One daemon thread posting events; flushed (briefly) when the process exits."""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[str, list[dict[str, Any]]] | None] = queue.Queue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def put(self, api_url: str, events: list[dict[str, Any]]) -> None:
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="efa-events", daemon=True)
                self.thread.start()
                atexit.register(self.flush, 3.0)
        self.queue.put((api_url, events))

    def _run(self) -> None:
        import httpx

        with httpx.Client(timeout=2.0) as client:
            while True:
                item = self.queue.get()
                try:
                    if item is None:
                        return
                    api_url, events = item
                    # Prefect keeps one event per id: a repeated post does not double it.
                    url = f"{api_url}/events"
                    send_with_retry(client, "POST", url, json=events, attempts=4).raise_for_status()
                except Exception as error:  # Prefect down: the schedules catch up
                    _log.warning("Prefect-Ereignis nicht zugestellt: %r", error)
                finally:
                    self.queue.task_done()

    def flush(self, timeout: float) -> None:
        """Wait up to TIMEOUT seconds for queued events to be posted."""
        done = threading.Event()

        def wait() -> None:
            self.queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        done.wait(timeout)


_emitter = _Emitter()


def make_event(name: str, resource_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A Prefect event as the API takes it."""
    return {
        "id": str(uuid.uuid4()),
        "occurred": datetime.now(UTC).isoformat(),
        "event": name,
        "resource": {"prefect.resource.id": resource_id, "prefect.resource.name": resource_id},
        "related": [],
        "payload": payload,
    }


def emit(events: list[dict[str, Any]]) -> bool:
    """Send EVENTS to the configured server in the background; False when there is none."""
    url = configured_api_url()
    if not url or not events:
        return False
    _emitter.put(url, events)
    return True


def flush(timeout: float = 3.0) -> None:
    """Wait briefly until emitted events are posted (tests, short-lived commands)."""
    _emitter.flush(timeout)


# -- the hook on every session ----------------------------------------------------------------

_KEY = "efa_orchestration"


def _after_flush(session: Session, _context: Any) -> None:
    from models import Event, OutboxMessage

    pending = session.info.setdefault(_KEY, {"campaigns": set(), "mail": False})
    for obj in session.new:
        if isinstance(obj, Event) and obj.kind in PROGRESS_KINDS and obj.campaign_id:
            pending["campaigns"].add(obj.campaign_id)
        elif isinstance(obj, OutboxMessage) and obj.status == "queued":
            pending["mail"] = True


def _on_execute(state: Any) -> None:
    """Mail queued with a bulk INSERT (no ORM objects in `session.new`) is pending mail too."""
    if not state.is_insert:
        return
    from models import OutboxMessage

    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) == OutboxMessage.__table__.name:  # type: ignore[attr-defined]
        pending = state.session.info.setdefault(_KEY, {"campaigns": set(), "mail": False})
        pending["mail"] = True


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a SAVEPOINT: the change is not durable yet
        return
    pending = session.info.pop(_KEY, None)
    if not pending or not (pending["campaigns"] or pending["mail"]):
        return
    events = [
        make_event(PROGRESS_EVENT, f"efa.campaign.{campaign}", {"campaign": campaign})
        for campaign in sorted(pending["campaigns"])
    ]
    if pending["mail"]:
        events.append(make_event(MAIL_EVENT, "efa.outbox", {}))
    try:
        emit(events)
    except Exception as error:  # never let a notification break a committed change
        _log.info("Prefect-Ereignis nicht erzeugt: %s", type(error).__name__)


def _after_transaction_end(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # the outer transaction ended: committed (sent) or not
        session.info.pop(_KEY, None)


_installed = False


def install() -> None:
    """Emit progress and mail events after every commit that holds them (idempotent)."""
    global _installed
    if _installed:
        return
    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "do_orm_execute", _on_execute)
    event.listen(Session, "after_commit", _after_commit)
    event.listen(Session, "after_transaction_end", _after_transaction_end)
    _installed = True


def prune_results(storage: Path, *, older_than: datetime) -> int:
    """Delete persisted run results in STORAGE last written before OLDER_THAN; how many.

    `efa up` persists every result so that the CLI can print a served run's figures; the CLI
    reads them right after the run, so old ones only fill the disk (hundreds a day from the
    five-minute delivery alone). Only plain files directly in STORAGE are touched.
    """
    if not storage.is_dir():
        return 0
    limit = older_than.timestamp()
    removed = 0
    for entry in storage.iterdir():
        try:
            if entry.is_file() and not entry.is_symlink() and entry.stat().st_mtime < limit:
                entry.unlink()
                removed += 1
        except FileNotFoundError:  # a concurrent run removed it first
            continue
    return removed
