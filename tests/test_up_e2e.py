"""End to end through `efa up`: a real Prefect server on loopback, the catalogue served, the
portal, SMTP into a real aiosmtpd server. Checks that the scheduler creates runs for every
scheduled deployment, that a deployment run triggered through the API delivers its mails, that
a portal submission moves a municipality on through the event trigger, and that SIGTERM stops
everything and a restart resumes the schedules.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.catalog import CATALOG
from efa_rollout.prefect_api import SMTP_RATE_LIMIT
from efa_rollout.prefect_rest import send_with_retry
from tests.conftest import BUILDING_AUTHORITIES, GV100AD, REPO_ROOT, database_backend
from tests.test_portal_support import basis_of, complete_ewa_form, csrf_of

pytestmark = pytest.mark.slow

CAMPAIGN = "ewa-ostalbkreis"
ESSINGEN = "08136021"
SCHEDULED = {spec.name for spec in CATALOG if spec.crons}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Counting:
    """aiosmtpd handler: Message-IDs of every message received."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        match = re.search(rb"^Message-ID:\s*(\S+)", envelope.content, re.M | re.I)
        with self.lock:
            self.ids.append(match.group(1).decode() if match else "?")
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[str, Counting]]:
    from aiosmtpd.controller import Controller

    handler = Counting()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield f"smtp://127.0.0.1:{port}", handler
    controller.stop()


def _wait(what: str, check: Any, timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: nicht erreicht nach {timeout:.0f} s")


class System:
    """`efa up` as a child process, and the API of its Prefect server."""

    def __init__(self, work: Path, env: dict[str, str], port: int, portal_port: int) -> None:
        self.work, self.env, self.port, self.portal_port = work, env, port, portal_port
        self.api = f"http://127.0.0.1:{port}/api"
        self.data = work / "data"
        self.record = self.data / "prefect" / "efa-up.json"
        self.process: subprocess.Popen[bytes] | None = None

    def efa(self, *args: str, python: tuple[str, ...] = ()) -> str:
        result = subprocess.run(
            [sys.executable, *python, "-m", "efa_rollout.cli", *args],
            env=self.env,
            cwd=self.work,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"efa {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result.stdout + result.stderr

    def up(self) -> float:
        started = time.monotonic()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "efa_rollout.cli",
                "up",
                "--port",
                str(self.port),
                "--portal-port",
                str(self.portal_port),
                "--limit",
                "4",
            ],
            env=self.env,
            cwd=self.work,
            stdout=(self.work / "up.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        _wait("efa up bereit", lambda: self.record.exists() or self.process.poll() is not None, 240)
        assert self.process.poll() is None, (self.work / "up.log").read_text()
        return time.monotonic() - started

    def stop(self) -> tuple[float, dict[str, int]]:
        assert self.process is not None
        children = json.loads(self.record.read_text())["children"]
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=90)
        return time.monotonic() - started, children

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        # As the CLI asks: a server busy writing scheduled runs may answer 503 for a moment.
        url = f"{self.api}{path}"
        response = send_with_retry(httpx, "POST", url, json=body or {}, timeout=10)
        response.raise_for_status()
        return response.json() if response.content else None

    def deployments(self) -> dict[str, dict[str, Any]]:
        return {d["name"]: d for d in self.post("/deployments/filter")}

    def runs(self, **flow_runs: Any) -> list[dict[str, Any]]:
        return self.post("/flow_runs/filter", {"flow_runs": flow_runs, "limit": 200})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie that nobody reaped yet counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _stage(data: Path, ags: str) -> str:
    with sqlite3.connect(data / "efa.db") as db:
        row = db.execute(
            "SELECT stage FROM enrolment WHERE campaign_id = ? AND ags = ?", (CAMPAIGN, ags)
        ).fetchone()
    return row[0]


def _sent(data: Path) -> int:
    with sqlite3.connect(data / "efa.db") as db:
        return db.execute("SELECT count(*) FROM outboxmessage WHERE status = 'sent'").fetchone()[0]


def _tracebacks_from_services(log: str) -> list[str]:
    blocks = log.split("Traceback (most recent call last):")[1:]
    return [b[:800] for b in blocks if "prefect/server/services" in b]


def test_efa_up_runs_the_whole_system(
    tmp_path: Path, efa_env: Path, smtp: tuple[str, Counting]
) -> None:
    if database_backend() != "sqlite":
        pytest.skip("runs once, in the SQLite pass (the Prefect server has its own database)")
    smtp_url, received = smtp
    port, portal_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EFA_"))}
    env.update(
        EFA_DATA_DIR=str(tmp_path / "data"),
        EFA_SMTP_URL=smtp_url,
        EFA_SMTP_RATE_PER_SECOND="20",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        # The real scheduler, looking more often than once a minute so the test stays short.
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5",
        PYTHONPATH=str(REPO_ROOT),
    )
    system = System(tmp_path, env, port, portal_port)
    system.efa("municipalities", "import", str(GV100AD), "--district", "08136")
    system.efa("municipalities", "import", str(BUILDING_AUTHORITIES))
    from efa_rollout.demo.simulation import write_demo_contacts

    assert efa_env == system.data  # the test reads the directory the children wrote
    write_demo_contacts(tmp_path / "contacts.csv")
    system.efa("contacts", "import", str(tmp_path / "contacts.csv"))
    go_live = date.today() + timedelta(weeks=20)
    system.efa("campaign", "create", "ewa", "--district", "08136", "--go-live", go_live.isoformat())

    try:
        seconds = system.up()
        print(f"efa up bereit nach {seconds:.1f} s")
        deployments = system.deployments()
        assert {spec.name for spec in CATALOG} <= set(deployments)
        limits = system.post("/v2/concurrency_limits/filter")
        rate = next(limit for limit in limits if limit["name"] == SMTP_RATE_LIMIT)
        assert rate["slot_decay_per_second"] == 20.0 and rate["limit"] == 20

        # A deployment run triggered through the API: the campaign start, 42 requests by SMTP.
        flow_run = system.post(
            f"/deployments/{deployments['kampagne-starten']['id']}/create_flow_run",
            {"parameters": {"params": {"campaign": CAMPAIGN}}},
        )
        started = time.monotonic()
        final = _wait(
            "Start-Lauf beendet",
            lambda: next(
                (
                    r
                    for r in system.runs(id={"any_": [flow_run["id"]]})
                    if r["state_type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
                ),
                None,
            ),
            120,
        )
        assert final["state_type"] == "COMPLETED", final["state"]
        # Queued mail triggers a delivery run (event trigger); every mail reaches the server.
        _wait("Informationsanfragen beim SMTP-Server", lambda: len(received.ids) >= 42, 90)
        print(f"Start + Zustellung von 42 Mails: {time.monotonic() - started:.1f} s")
        assert len(set(received.ids)) == len(received.ids) == _sent(system.data)
        # The run reports COMPLETED a moment after its last mail reached the server.
        delivery_runs = _wait(
            "abgeschlossener Zustelllauf",
            lambda: system.runs(
                deployment_id={"any_": [deployments["postausgang-zustellen"]["id"]]},
                state={"type": {"any_": ["COMPLETED"]}},
            ),
            60,
        )
        assert delivery_runs, "kein abgeschlossener Zustelllauf"
        logs = system.post(
            "/logs/filter",
            {"logs": {"flow_run_id": {"any_": [r["id"] for r in delivery_runs]}}, "limit": 200},
        )
        assert any("globale Limit" in log["message"] for log in logs), "Versandrate nicht global"

        # A portal submission: the tick runs through the event trigger and moves Essingen on.
        assert _stage(system.data, ESSINGEN) == "information_collection"
        link = re.search(r"https?://\S+/p/\S+", system.efa("portal", "link", CAMPAIGN, ESSINGEN))
        assert link, "kein persönlicher Link"
        with httpx.Client(base_url=f"http://127.0.0.1:{portal_port}", timeout=20) as client:
            path = "/p/" + link.group(0).split("/p/", 1)[1]
            page = client.get(path).text
            submitted = time.monotonic()
            response = client.post(
                f"{path}/fragebogen",
                data={
                    "csrf": csrf_of(page),
                    "basis": basis_of(page),
                    "aktion": "absenden",
                    **complete_ewa_form(),
                },
            )
            assert response.status_code == 303, response.text[:2000]
        _wait(
            "Stufenwechsel nach der Einreichung",
            lambda: _stage(system.data, ESSINGEN) != "information_collection",
            90,
            interval=0.25,
        )
        print(f"Einreichung im Portal → Stufenwechsel: {time.monotonic() - submitted:.1f} s")
        ticks = system.runs(deployment_id={"any_": [deployments["tick"]["id"]]})
        triggered = [r for r in ticks if (r.get("created_by") or {}).get("type") == "AUTOMATION"]
        assert any(r["state_type"] == "COMPLETED" for r in triggered) or _wait(
            "Tick-Lauf abgeschlossen",
            lambda: any(
                r["state_type"] == "COMPLETED"
                and (r.get("created_by") or {}).get("type") == "AUTOMATION"
                for r in system.runs(deployment_id={"any_": [deployments["tick"]["id"]]})
            ),
            30,
        )

        # The scheduler created runs for every scheduled deployment.
        def scheduled_per_deployment() -> dict[str, int] | None:
            counts = {
                name: len(
                    system.runs(
                        deployment_id={"any_": [deployments[name]["id"]]},
                        state={"type": {"any_": ["SCHEDULED"]}},
                    )
                )
                for name in SCHEDULED
            }
            return counts if all(counts.values()) else None

        print(
            "geplante Läufe:", _wait("geplante Läufe je Deployment", scheduled_per_deployment, 90)
        )

        # The CLI runs the tick through its deployment, tagged per campaign and service.
        # It talks to the server over its REST API: Prefect itself is never imported (issue 14).
        output = system.efa("campaign", "tick", CAMPAIGN, python=("-X", "importtime"))
        assert "auf dem Prefect-Server" in output and "Lauf erfolgreich" in output, output
        assert f"{CAMPAIGN} · tick: 42 Gemeinden geprüft" in output, output
        imported = re.findall(r"^import time:.*\| +(\S+)$", output, re.MULTILINE)
        assert "efa_rollout.cli._flows" in imported  # the check reads the right lines
        assert [m for m in imported if m.split(".")[0] == "prefect"] == []
        tagged = system.runs(tags={"all_": [f"campaign:{CAMPAIGN}", "service:ewa"]})
        assert any(r["deployment_id"] == deployments["tick"]["id"] for r in tagged)

        # SIGTERM stops everything; nothing is left running.
        seconds, children = system.stop()
        print(f"SIGTERM → beendet nach {seconds:.1f} s")
        assert system.process.returncode == 0
        assert not system.record.exists()
        assert not [name for name, pid in children.items() if _alive(pid)]
        server_log = (system.data / "prefect" / "logs" / "server.log").read_text(errors="replace")
        assert not _tracebacks_from_services(server_log)

        # A restart resumes: schedules active, triggers not doubled, runs created again.
        system.up()
        after = system.deployments()
        assert {d["id"] for d in after.values()} == {d["id"] for d in deployments.values()}
        for name in SCHEDULED:
            assert not after[name]["paused"], name
            assert all(s["active"] for s in after[name]["schedules"]), name
        automations = system.post("/automations/filter")
        assert len(automations) == sum(len(spec.on_events) for spec in CATALOG)
        _wait("geplante Läufe nach dem Neustart", scheduled_per_deployment, 60)
        seconds, children = system.stop()
        assert not [name for name, pid in children.items() if _alive(pid)]
        server_log = (system.data / "prefect" / "logs" / "server.log").read_text(errors="replace")
        assert not _tracebacks_from_services(server_log)
    finally:
        if system.process and system.process.poll() is None:
            system.process.send_signal(signal.SIGTERM)
            try:
                system.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                system.process.kill()
