"""Reading a served run's persisted result without Prefect (the CLI's REST path, issue 14)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from efa_rollout.prefect_rest import stored_result

FIGURES = {
    "ewa-ostalbkreis": {
        "enrolments": 42,
        "changes": 1,
        "mails_queued": 0,
        "blocked": 0,
        "change_list": [{"AGS": "08136088", "Gemeinde": "Aalen", "von": "a", "nach": "b"}],
    }
}


def _state(path: Path, serializer: dict[str, object]) -> dict[str, object]:
    """A COMPLETED state as GET /api/flow_runs/{id} returns it for a persisted result."""
    return {
        "type": "COMPLETED",
        "data": {
            "storage_key": str(path),
            "expiration": None,
            "serializer": serializer,
            "prefect_version": "3.9.1",
            "storage_block_id": None,
        },
    }


def test_stored_result_reads_what_prefects_serializer_wrote(tmp_path: Path) -> None:
    from prefect.serializers import PickleSerializer

    serializer = PickleSerializer()
    path = tmp_path / "storage" / "3ec42c9b"
    path.parent.mkdir()
    path.write_bytes(serializer.dumps(FIGURES))  # as the runner of `efa up` keeps it
    assert stored_result(_state(path, serializer.model_dump(mode="json"))) == FIGURES


def test_stored_result_reads_a_whole_result_record(tmp_path: Path) -> None:
    from prefect._internal.result_records import ResultRecord, ResultRecordMetadata
    from prefect.serializers import PickleSerializer

    metadata = ResultRecordMetadata(storage_key=str(tmp_path / "r"), serializer=PickleSerializer())
    path = tmp_path / "r"
    path.write_bytes(ResultRecord(metadata=metadata, result=FIGURES).serialize())
    assert stored_result(_state(path, {"type": "pickle", "picklelib": "cloudpickle"})) == FIGURES


def test_no_persisted_result_is_none() -> None:
    assert stored_result({"type": "COMPLETED", "data": None}) is None


def test_reading_a_result_does_not_import_prefect(tmp_path: Path) -> None:
    from prefect.serializers import PickleSerializer

    path = tmp_path / "result"
    path.write_bytes(PickleSerializer().dumps(FIGURES))
    code = (
        "import sys\n"
        "from efa_rollout.prefect_rest import stored_result\n"
        f"state = {_state(path, {'type': 'pickle', 'picklelib': 'cloudpickle'})!r}\n"
        f"assert stored_result(state) == {FIGURES!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_result_in_a_storage_block_is_left_to_prefect(tmp_path: Path) -> None:
    state = _state(tmp_path / "r", {"type": "pickle", "picklelib": "cloudpickle"})
    state["data"]["storage_block_id"] = "3f1c0d5e-0000-4000-8000-000000000000"  # type: ignore[index]
    with pytest.raises(LookupError):
        stored_result(state)


class _BusyServer:
    """A real HTTP server on loopback that answers 503 (as a locked Prefect does) BUSY times.

    STATUS: another refusal to give instead (a 4xx, as Prefect answers an invalid request).
    """

    def __init__(
        self,
        busy: int,
        retry_after: str | None = "0",
        only: str | None = None,
        status: int = 503,
    ) -> None:
        import http.server
        import threading

        self.busy, self.requests = busy, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                outer.requests.append((self.command, self.path, self.rfile.read(length)))
                asked = [r for r in outer.requests if only in (None, r[0])]
                if self.command in (only or self.command) and len(asked) <= outer.busy:
                    self.send_response(status)
                    if retry_after is not None:
                        self.send_header("Retry-After", retry_after)
                    reason = "Service Unavailable" if status == 503 else "Invalid request received."
                    body = json.dumps({"exception_message": reason}).encode()
                else:
                    self.send_response(200)
                    body = b'{"id": "run-1", "name": "tidy-fox", "state": {"type": "COMPLETED"}}'
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *_args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> _BusyServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_busy_server_is_asked_again_and_the_run_is_created_once() -> None:
    from efa_rollout.prefect_rest import ServerApi

    with _BusyServer(busy=3) as server, ServerApi(server.url) as api:
        run = api.create_flow_run("dep-1", {"campaign": "ewa-ostalbkreis"}, ["efa-rollout"])
    assert run["id"] == "run-1"
    assert len(server.requests) == 4  # three busy answers, then the run
    keys = {json.loads(body)["idempotency_key"] for _method, _path, body in server.requests}
    assert len(keys) == 1 and next(iter(keys)).startswith("efa-cli-")  # one run, however often


def test_a_server_that_stays_busy_ends_in_a_german_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from efa_rollout import prefect_rest
    from efa_rollout.prefect_rest import ServerApi, ServerUnavailable

    monkeypatch.setattr(prefect_rest, "RETRY_FIRST_WAIT", 0.01)
    with (
        _BusyServer(busy=100, retry_after=None) as server,
        ServerApi(server.url) as api,
        pytest.raises(ServerUnavailable) as raised,
    ):
        api.flow_run("run-1")
    assert len(server.requests) == prefect_rest.RETRY_ATTEMPTS
    rendered = raised.value.render()
    assert f"Der Prefect-Server unter {server.url}" in rendered
    assert "»Laufstatus lesen«" in rendered and "HTTP 503" in rendered


def test_a_busy_health_check_is_asked_again_and_a_closed_port_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    from efa_rollout import prefect_api, prefect_rest

    waits: list[float] = []
    monkeypatch.setattr(prefect_rest.time, "sleep", waits.append)
    with _BusyServer(busy=2) as server:
        assert prefect_api.server_reachable(server.url)  # was False: the CLI ran the flow itself
    assert len(server.requests) == 3 and len(waits) == 2
    with socket.socket() as sock:  # a port nobody listens on: what a stale `efa up` record names
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
    waits.clear()
    assert not prefect_api.server_reachable(closed)
    assert waits == []  # refused: no waiting before the CLI runs the flow itself


def test_a_run_whose_end_cannot_be_read_names_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from efa_rollout import prefect_rest
    from efa_rollout.cli._flows import _trigger_and_follow
    from efa_rollout.errors import UserError
    from efa_rollout.prefect_rest import ServerApi

    monkeypatch.setattr(prefect_rest, "RETRY_FIRST_WAIT", 0.01)
    with (
        _BusyServer(busy=100, retry_after=None, only="GET") as server,
        ServerApi(server.url) as api,
        pytest.raises(UserError) as raised,
    ):
        _trigger_and_follow(api, "dep-1", {}, [], True)
    rendered = raised.value.render()
    assert "Der Lauf »tidy-fox« wurde ausgelöst" in rendered and "HTTP 503" in rendered
    assert "/runs/flow-run/run-1" in rendered
    assert [m for m, _path, _body in server.requests].count("POST") == 1  # triggered once


def test_a_refused_request_is_not_asked_again_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from efa_rollout import prefect_rest
    from efa_rollout.prefect_rest import ServerApi, ServerRejected

    monkeypatch.setattr(prefect_rest, "RETRY_FIRST_WAIT", 0.01)
    with (
        _BusyServer(busy=100, retry_after=None, status=422) as server,
        ServerApi(server.url) as api,
        pytest.raises(ServerRejected) as raised,
    ):
        api.create_flow_run("dep-1", {"campaign": "ewa-ostalbkreis"}, ["efa-rollout"])
    assert len(server.requests) == 1  # a client error is final: no second run, no waiting
    rendered = raised.value.render()
    assert "»Lauf auslösen« abgelehnt (HTTP 422: Invalid request received.)" in rendered
    assert "erneut versuchen" not in rendered and "Ein erneuter Versuch ändert" in rendered
