"""Prefect's REST API as the CLI uses it, with httpx and without importing Prefect.

Requests are asked again while the server is busy (as Prefect's own client does); a refusal
(4xx) or a server that stays busy ends in a German message (`ServerError`). `ServerApi`
triggers a deployment run and follows it; `stored_result` reads what the run kept.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from efa_rollout.errors import UserError

_log = logging.getLogger(__name__)

#: State types after which a flow run does not change any more (Prefect's `State.is_final`).
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
#: Answers after which Prefect's own client tries again: the server was busy (a locked SQLite
#: answers 503), a proxy in front of it failed, or it asks to slow down.
RETRY_STATUS = frozenset({408, 429, 502, 503, 504})
#: Seconds between tries, doubled each time (about 30 s in all, as Prefect's client waits).
RETRY_FIRST_WAIT = 0.5
RETRY_ATTEMPTS = 7


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
        # Over plain HTTP no certificate is checked: loading the CA bundle would be ~20 ms wasted.
        verify = not api_url.startswith("http://")
        self.client = httpx.Client(base_url=api_url, timeout=timeout, verify=verify)

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
