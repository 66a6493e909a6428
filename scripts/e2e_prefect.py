#!/usr/bin/env python3
"""End to end against a real Prefect server on loopback.

Starts `efa up` (a persistent Prefect server in the data folder, every deployment served, the
portal), runs a campaign start and a tick from the CLI (through their deployments, tagged per
campaign and service) and a tick through `prefect deployment run`, then checks through the
Prefect API that the runs completed, the schedules carry Europe/Berlin and the artifacts exist,
and takes a screenshot of a run's page with headless Chromium. The checks of scheduled runs,
event triggers, SMTP and restart are in tests/test_up_e2e.py.
Run: .venv/bin/python scripts/e2e_prefect.py
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CAMPAIGN = "ewa-ostalbkreis"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"FEHLER: {url} antwortet nicht nach {timeout} s")


def efa(*args: str, env: dict[str, str]) -> tuple[str, float]:
    started = time.monotonic()
    result = subprocess.run([str(BIN / "efa"), *args], env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"FEHLER: efa {' '.join(args)}\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr, elapsed


async def api_checks(api: str) -> dict[str, object]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        deployments = await client.read_deployments()
        runs = await client.read_flow_runs()
        artifacts = await client.read_artifacts()
    zones = {
        d.name: sorted({s.schedule.timezone for s in d.schedules})
        for d in deployments
        if d.schedules
    }
    return {"deployments": deployments, "runs": runs, "artifacts": artifacts, "zones": zones}


def screenshot(url: str, target: Path) -> bool:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("Hinweis: chromium fehlt (apt-get install chromium); kein Screenshot.")
        return False
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--window-size=1500,1000",
                "--virtual-time-budget=20000",
                f"--screenshot={target}",
                url,
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
    return target.exists()


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="efa-e2e-"))
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = dict(os.environ)
    env = {k: v for k, v in env.items() if not k.startswith(("PREFECT_", "EFA_"))}
    env.update(EFA_DATA_DIR=str(work / "data"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    up_env = dict(env)
    # The CLI finds the server through the data folder; the API checks below name it.
    os.environ.update(env, PREFECT_API_URL=api)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        t0 = time.monotonic()
        efa(
            "municipalities",
            "import",
            str(ROOT / "reference" / "GV100AD_301123.txt"),
            "--district",
            "08136",
            env=env,
        )
        efa(
            "municipalities",
            "import",
            str(ROOT / "reference" / "ostalbkreis-baurechtsbehoerden.csv"),
            env=env,
        )
        sys.path.insert(0, str(ROOT))
        from efa_rollout.demo.simulation import write_demo_contacts

        (work / "data").mkdir(exist_ok=True)
        write_demo_contacts(work / "contacts.csv")
        efa("contacts", "import", str(work / "contacts.csv"), env=env)
        efa("campaign", "create", "ewa", "--district", "08136", "--go-live", "2025-06-02", env=env)

        processes.append(
            subprocess.Popen(
                [str(BIN / "efa"), "up", "--port", str(port), "--portal-port", str(free_port())],
                env=up_env,
                stdout=(work / "up.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
        record = work / "data" / "prefect" / "efa-up.json"
        while not record.exists():
            if processes[-1].poll() is not None or time.monotonic() - t0 > 300:
                raise SystemExit("FEHLER: efa up startet nicht\n" + (work / "up.log").read_text())
            time.sleep(0.5)
        print(f"efa up bereit nach {time.monotonic() - t0:.1f} s auf {api}")

        output, start_seconds = efa("campaign", "start", CAMPAIGN, "--as-of", "2025-03-03", env=env)
        print(
            f"efa campaign start (CLI gegen den Server): {start_seconds:.1f} s\n  "
            + output.strip().replace("\n", "\n  ")
        )
        output, tick_seconds = efa("campaign", "tick", CAMPAIGN, "--as-of", "2025-05-27", env=env)
        print(f"efa campaign tick: {tick_seconds:.1f} s")

        t_trigger, t_wall = time.monotonic(), time.time()
        subprocess.run(
            [
                str(BIN / "prefect"),
                "deployment",
                "run",
                "tick/tick",
                "--param",
                f"campaign={CAMPAIGN}",
            ],
            env={**env, "PREFECT_API_URL": api},
            check=True,
            capture_output=True,
        )
        deployed_run = None
        while time.monotonic() - t_trigger < 120:
            runs = asyncio.run(api_checks(api))["runs"]
            deployed_run = next(
                (
                    r
                    for r in runs
                    if r.deployment_id
                    and r.state
                    and r.state.is_final()
                    and r.created > datetime.fromtimestamp(t_wall, UTC)
                    and r.name.startswith(f"{CAMPAIGN} · tick")
                    and "efa-rollout" in r.tags
                    and f"campaign:{CAMPAIGN}" not in r.tags
                ),
                None,
            )
            if deployed_run:
                break
            time.sleep(1)
        if deployed_run is None:
            raise SystemExit("FEHLER: der über das Deployment ausgelöste Tick lief nicht zu Ende")
        print(
            f"Tick über das Deployment (efa serve): Status {deployed_run.state.name} nach {time.monotonic() - t_trigger:.1f} s"
        )

        checks = asyncio.run(api_checks(api))
        failures = []
        for run in checks["runs"]:
            if not (run.state and run.state.is_final()):
                continue  # scheduled runs of the served deployments
            print(
                f"  Lauf {run.name!r}: {run.state.name if run.state else '?'}, Tags {sorted(run.tags)}"
            )
            if not run.state.is_completed():
                failures.append(f"Lauf {run.name} nicht erfolgreich")
        cli_runs = [r for r in checks["runs"] if f"campaign:{CAMPAIGN}" in r.tags]
        if not any("service:ewa" in r.tags and r.deployment_id for r in cli_runs):
            failures.append("kein Deployment-Lauf mit den Tags campaign:/service:")
        for name, zones in sorted(checks["zones"].items()):
            print(f"  Deployment {name}: Zeitzone {zones}")
            if zones != ["Europe/Berlin"]:
                failures.append(f"Deployment {name}: Zeitzone {zones}")
        keys = sorted({a.key for a in checks["artifacts"] if a.key})
        print(f"  Artefakte: {', '.join(keys)}")
        for wanted in (
            f"{CAMPAIGN}-start-summary",
            f"{CAMPAIGN}-tick-stufen",
            f"{CAMPAIGN}-tick-summary",
        ):
            if wanted not in keys:
                failures.append(f"Artefakt {wanted} fehlt")
        start_run = next(r for r in checks["runs"] if r.name.startswith(f"{CAMPAIGN} · start"))
        target = ROOT / "docs" / "screenshots" / "prefect-run.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        ui = f"http://127.0.0.1:{port}/runs/flow-run/{start_run.id}"
        if screenshot(ui, target):
            print(f"Screenshot der Laufseite: {target} ({ui})")
        print(f"Gesamtdauer: {time.monotonic() - t0:.1f} s")
        if failures:
            raise SystemExit("FEHLER:\n  " + "\n  ".join(failures))
        print("OK: Läufe erfolgreich, Zeitpläne in Europe/Berlin, Artefakte vorhanden.")
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
