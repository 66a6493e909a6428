#!/usr/bin/env python3
"""CLI figures side by side in one run: `efa campaign start` and `tick` in Prefect's local mode,
with `--no-prefect`, and with `efa up` running; then the time from a portal submission to the
stage change (event trigger → tick deployment run).

Run: .venv/bin/python bench/bench_cli.py [--repeat 2]
Each mode gets its own eWA campaign of the Ostalbkreis (42 municipalities, 42 mails per start).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

ESSINGEN = "08136021"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_up(
    env: dict[str, str], work: Path, data: Path, cwd: Path | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """`efa up` on free ports (in CWD), once it is ready (its record written); its portal port."""
    port, portal_port = free_port(), free_port()
    command = ["efa_rollout.cli", "up", "--port", str(port), "--portal-port", str(portal_port)]
    log = work / "up.log"
    up = subprocess.Popen(
        [sys.executable, "-m", *command],
        env=env,
        cwd=cwd,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    started = time.monotonic()
    while not (data / "prefect" / "efa-up.json").exists():
        if up.poll() is not None or time.monotonic() - started > 300:
            up.kill()
            raise SystemExit(log.read_text())
        time.sleep(0.5)
    print(f"efa up bereit nach {time.monotonic() - started:.1f} s", flush=True)
    return up, portal_port


def import_ostalbkreis(env: dict[str, str], work: Path) -> None:
    """The Ostalbkreis, its building authorities and demo contacts (CSV in WORK)."""
    efa(
        env,
        "municipalities",
        "import",
        str(ROOT / "reference" / "GV100AD_301123.txt"),
        "--district",
        "08136",
    )
    efa(
        env,
        "municipalities",
        "import",
        str(ROOT / "reference" / "ostalbkreis-baurechtsbehoerden.csv"),
    )
    from efa_rollout.demo.simulation import write_demo_contacts

    write_demo_contacts(work / "contacts.csv")
    efa(env, "contacts", "import", str(work / "contacts.csv"))


def efa(env: dict[str, str], *args: str) -> float:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "efa_rollout.cli", *args], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"efa {' '.join(args)}:\n{result.stdout}\n{result.stderr}")
    return time.monotonic() - started


def stage(data: Path, campaign: str, ags: str) -> str:
    with sqlite3.connect(data / "efa.db") as db:
        return db.execute(
            "SELECT stage FROM enrolment WHERE campaign_id = ? AND ags = ?", (campaign, ags)
        ).fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1, help="Campaigns per mode.")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="efa-bench-cli-"))
    data = work / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EFA_"))}
    env.update(EFA_DATA_DIR=str(data), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env["PREFECT_HOME"] = str(work / "prefect-local")  # local mode: its own database
    import_ostalbkreis(env, work)
    go_live = (date.today() + timedelta(weeks=20)).isoformat()
    figures: dict[str, list[tuple[float, float]]] = {}

    def measure(mode: str, extra: list[str]) -> None:
        for index in range(args.repeat):
            name = f"ewa-{mode}-{index}"
            efa(
                env,
                "campaign",
                "create",
                "ewa",
                "--district",
                "08136",
                "--go-live",
                go_live,
                "--name",
                name,
            )
            start = efa(env, "campaign", "start", name, *extra)
            tick = efa(env, "campaign", "tick", name, *extra)
            figures.setdefault(mode, []).append((start, tick))
            print(f"{mode:<12} start {start:5.1f} s   tick {tick:5.1f} s", flush=True)

    measure("local", [])
    measure("no-prefect", ["--no-prefect"])

    up_env = dict(env)
    up_env.pop("PREFECT_HOME")
    up, portal_port = start_up(up_env, work, data)
    try:
        measure("efa-up", [])
        measure("efa-up-nowait", ["--no-wait"])

        from test_portal_support import basis_of, complete_ewa_form, csrf_of

        latencies = []
        for index in range(args.repeat):
            name = f"ewa-efa-up-{index}"
            out = subprocess.run(
                [sys.executable, "-m", "efa_rollout.cli", "portal", "link", name, ESSINGEN],
                env=up_env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            path = "/p/" + re.search(r"/p/(\S+)", out).group(1)
            with httpx.Client(base_url=f"http://127.0.0.1:{portal_port}", timeout=20) as client:
                page = client.get(path).text
                submitted = time.monotonic()
                client.post(
                    f"{path}/fragebogen",
                    data={
                        "csrf": csrf_of(page),
                        "basis": basis_of(page),
                        "aktion": "absenden",
                        **complete_ewa_form(),
                    },
                )
            while stage(data, name, ESSINGEN) == "information_collection":
                if time.monotonic() - submitted > 180:
                    raise SystemExit("kein Stufenwechsel nach 180 s")
                time.sleep(0.2)
            latencies.append(time.monotonic() - submitted)
            print(f"Portal-Einreichung → Stufenwechsel: {latencies[-1]:.1f} s", flush=True)
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=90)

    print("\n| Modus | campaign start | campaign tick |\n|---|---:|---:|")
    for mode, rows in figures.items():
        starts = ", ".join(f"{s:.1f}" for s, _ in rows)
        ticks = ", ".join(f"{t:.1f}" for _, t in rows)
        print(f"| {mode} | {starts} s | {ticks} s |")
    print(f"\nPortal-Einreichung → Stufenwechsel: {', '.join(f'{x:.1f}' for x in latencies)} s")


if __name__ == "__main__":
    main()
