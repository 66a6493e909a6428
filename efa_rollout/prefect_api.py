"""Where the Prefect server is, runs and progress events sent to it (no Prefect import).

`efa up` records its server in the data folder; `PREFECT_API_URL` names one explicitly. Progress
events (a municipality answered or ticked its checklist, mail was queued) go to the server's
event API after the database commit, from a background thread: a portal request or a CLI
command never waits for Prefect or fails because it is down. The server's deployment triggers
(`deployments/catalog.py`) turn them into tick and delivery runs. `ServerApi` triggers and follows
a deployment run over the REST API with httpx: the CLI answers without importing Prefect (~1 s).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from efa_rollout.domain.audit import EventKind
from efa_rollout.errors import UserError

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
#: State types after which a flow run does not change any more (Prefect's `State.is_final`).
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
#: Answers after which Prefect's own client tries again: the server was busy (a locked SQLite
#: answers 503), a proxy in front of it failed, or it asks to slow down.
RETRY_STATUS = frozenset({408, 429, 502, 503, 504})
#: Seconds between tries, doubled each time (about 30 s in all, as Prefect's client waits).
RETRY_FIRST_WAIT = 0.5
RETRY_ATTEMPTS = 7


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


def server_reachable(api_url: str, timeout: float = 2.0, attempts: int = 3) -> bool:
    """Whether the Prefect API at API_URL answers its health check.

    A busy server (a timeout, a 503) is asked again briefly: a False makes the CLI run the flow
    in its own process instead, beside the server. Nobody listening (a record left by an `efa
    up` that has ended) is a False at once.
    """
    import httpx

    try:
        with httpx.Client(timeout=timeout) as client:
            response = send_with_retry(
                client, "GET", f"{api_url}/health", attempts=attempts, retry_refused=False
            )
        return response.status_code == 200
    except httpx.HTTPError:
        return False


def adopt_recorded_server() -> str | None:
    """Point this process at a reachable server (env or `efa up`); its API URL or None."""
    url = configured_api_url()
    if not url or not server_reachable(url):
        return None
    os.environ["PREFECT_API_URL"] = url  # for a Prefect imported later in this process
    return url


# -- requests that survive a busy server -----------------------------------------------------


def _retry_after(response: Any) -> float | None:
    """Seconds the server asked to wait (Retry-After in seconds), if it did."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def send_with_retry(
    client: Any,
    method: str,
    path: str,
    *,
    attempts: int | None = None,
    retry_refused: bool = True,
    **kwargs: Any,
) -> Any:
    """The response to METHOD PATH, tried again while the server is busy or the line drops.

    Only for requests that are safe to repeat: reads, and writes the server deduplicates (a
    flow run with an idempotency key, an event with its id). The last answer or error is
    returned or raised as it came. RETRY_REFUSED=False: a refused connection (nobody listens)
    is raised at once.
    """
    import httpx

    attempts = attempts or RETRY_ATTEMPTS
    wait = RETRY_FIRST_WAIT
    for attempt in range(1, attempts + 1):
        last = attempt == attempts
        try:
            response = client.request(method, path, **kwargs)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as error:
            if last or (not retry_refused and isinstance(error, httpx.ConnectError)):
                raise
            delay = wait
        else:
            if response.status_code not in RETRY_STATUS or last:
                return response
            asked = _retry_after(response)
            delay = wait if asked is None else asked
        _log.info("Prefect-Server beschäftigt (Versuch %d von %d)", attempt, attempts)
        time.sleep(min(delay, 10.0))
        wait *= 2
    raise AssertionError("unreachable")  # pragma: no cover


class ServerError(UserError):
    """A request to the Prefect server that did not go through (busy or refused)."""


class ServerUnavailable(ServerError):
    """The Prefect server did not take a request, even after waiting."""

    def __init__(self, api_url: str, what: str, error: Exception) -> None:
        super().__init__(
            f"Der Prefect-Server unter {api_url} hat die Anfrage »{what}« nicht angenommen "
            f"({_describe(error)}).",
            details=[
                "Es wurde nichts ausgelöst, was nicht in der Prefect-Oberfläche zu sehen ist.",
                "Bitte in einigen Minuten erneut versuchen oder »efa up« prüfen.",
            ],
        )


class ServerRejected(ServerError):
    """The Prefect server answered a request with a client error (4xx): waiting will not help."""

    def __init__(self, api_url: str, what: str, status: int, reason: str) -> None:
        super().__init__(
            f"Der Prefect-Server unter {api_url} hat die Anfrage »{what}« abgelehnt "
            f"(HTTP {status}{': ' + reason if reason else ''}).",
            details=[
                "Ein erneuter Versuch ändert daran nichts: Die Anfrage passt nicht zu diesem "
                "Server (z. B. ein gelöschtes Deployment oder eine andere Prefect-Version).",
                "Bitte »efa up« neu starten; bleibt der Fehler, die Meldung weitergeben.",
            ],
        )


def _describe(error: Exception) -> str:
    import httpx

    if isinstance(error, httpx.HTTPStatusError):
        return f"HTTP {error.response.status_code}"
    return type(error).__name__


def _server_reason(response: Any, limit: int = 200) -> str:
    """The server's own short explanation of a refused request (Prefect's JSON error body)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:limit]
    if isinstance(body, dict):
        detail = body.get("exception_message") or body.get("detail") or ""
        return str(detail)[:limit]
    return ""


# -- deployment runs over the REST API -------------------------------------------------------


class ServerApi:
    """The few calls of Prefect's REST API the CLI needs, with one httpx client."""

    def __init__(self, api_url: str, timeout: float = 10.0) -> None:
        import httpx

        self.api_url = api_url
        self.client = httpx.Client(base_url=api_url, timeout=timeout)

    def __enter__(self) -> ServerApi:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.client.close()

    def _call(self, method: str, path: str, what: str, body: dict[str, Any] | None = None) -> Any:
        import httpx

        try:
            response = send_with_retry(self.client, method, path, json=body)
            response.raise_for_status()
        except httpx.HTTPStatusError as error:
            status = error.response.status_code
            if 400 <= status < 500:  # refused, not busy (those statuses were retried above)
                reason = _server_reason(error.response)
                raise ServerRejected(self.api_url, what, status, reason) from error
            raise ServerUnavailable(self.api_url, what, error) from error
        except httpx.HTTPError as error:
            raise ServerUnavailable(self.api_url, what, error) from error
        return response.json()

    def ready_deployment(self, name: str) -> str | None:
        """The id of the deployment NAME if a runner polls it (status READY), else None."""
        body = {"deployments": {"name": {"any_": [name]}}}
        found = self._call("POST", "/deployments/filter", "Deployments lesen", body)
        ready = [d["id"] for d in found if d.get("status") == "READY"]
        return ready[0] if ready else None

    def create_flow_run(
        self, deployment_id: str, parameters: dict[str, Any], tags: list[str]
    ) -> dict[str, Any]:
        """A flow run of DEPLOYMENT_ID, scheduled for now (as `run_deployment` creates it).

        The idempotency key makes a retry after a lost answer return the run already created
        instead of a second one.
        """
        now = datetime.now(UTC).isoformat()
        state = {"type": "SCHEDULED", "name": "Scheduled", "state_details": {"scheduled_time": now}}
        body = {
            "parameters": parameters,
            "tags": tags,
            "state": state,
            "idempotency_key": f"efa-cli-{uuid.uuid4()}",
        }
        path = f"/deployments/{deployment_id}/create_flow_run"
        return self._call("POST", path, "Lauf auslösen", body)

    def flow_run(self, flow_run_id: str) -> dict[str, Any]:
        """The flow run FLOW_RUN_ID as the API returns it (with its state)."""
        return self._call("GET", f"/flow_runs/{flow_run_id}", "Laufstatus lesen")

    def wait_for(
        self, flow_run_id: str, poll_seconds: float = 0.1, slower_after: float = 10.0
    ) -> dict[str, Any]:
        """The flow run once its state is final.

        One read of the run by id (a primary-key read on the server) every POLL_SECONDS for
        the first SLOWER_AFTER seconds, every 0.5 s after that: a served tick ends 1–2 s after
        it was triggered, and the poll interval is what the answer waits at most beyond its
        end; a long run asks twice a second, as before.
        """
        started = time.monotonic()
        while True:
            flow_run = self.flow_run(flow_run_id)
            if (flow_run.get("state") or {}).get("type") in FINAL_STATES:
                return flow_run
            late = time.monotonic() - started > slower_after
            time.sleep(max(poll_seconds, 0.5) if late else poll_seconds)


def stored_result(state: dict[str, Any]) -> Any:
    """The persisted result of a completed STATE (API JSON), read without Prefect.

    Reads what the runner kept in local storage with the pickle serializer (the default of
    `efa up`, `deployments/serving.py`); anything else, e.g. a storage block, raises
    LookupError: Prefect's own reader can read it (the CLI falls back to it).
    """
    data = state.get("data")
    if not isinstance(data, dict) or not data.get("storage_key"):
        return None  # not persisted
    serializer = data.get("serializer") or {}
    local = data.get("storage_block_id") is None and Path(data["storage_key"]).is_absolute()
    if local and serializer.get("type") == "pickle":
        import base64
        import pickle

        # The runner of our own `efa up` wrote it, into our data folder: as trusted as Prefect's
        # reading it would be. A cloudpickle of plain values loads with pickle.
        blob = Path(data["storage_key"]).read_bytes()
        if blob.lstrip().startswith(b"{"):  # a whole result record (result and metadata)
            blob = json.loads(blob)["result"].encode()
        return pickle.loads(base64.decodebytes(blob))
    raise LookupError(f"Ergebnis nicht lokal lesbar: {data.get('storage_key')}")


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
