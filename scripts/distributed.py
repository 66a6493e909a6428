#!/usr/bin/env python
"""efa-rollout distributed on this machine: Prefect server on PostgreSQL, a process work pool,
two workers, the campaign database on PostgreSQL and an SMTP server – then a whole state.

    .venv/bin/python scripts/distributed.py [--workers 2] [--limit 2] [--delivery-runs 6]

What it does, in order:

1. PostgreSQL from ``scripts/postgres.sh start``; databases ``prefect`` (Prefect's own) and
   ``efa`` (the campaigns) are created afresh.
2. A local SMTP server (aiosmtpd) that counts every message it receives by Message-ID.
3. ``prefect server start`` with PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://…/prefect,
   the work pool ``efa`` (type process) and N workers ``prefect worker start --pool efa
   --limit L --name efa-worker-i``.
4. The deployment catalogue (deployments/catalog.py) deployed into that pool with module
   entrypoints (``flows.tick:tick``) and this repository folder as working directory; the
   catalogue's cron schedules are registered but inactive, so only this script's runs happen.
5. As the coordinator (the ``efa`` CLI): import Baden-Württemberg (state 08, 1,101
   municipalities) from reference/GV100AD_301123.txt, fictitious contacts (.example domains),
   create the eWA campaign over the state.
6. Through deployment runs, picked up by the workers: start the campaign; the reminders;
   several delivery runs at once (each with a limit); two ticks at once over the campaign.
7. A report: which worker ran which flow run (the worker's own "submitting flow run" log line,
   read back from the Prefect API, and the flow run's process id), the workers' heartbeats,
   that every message reached the SMTP server exactly once (Message-IDs counted there, compared
   with the outbox), and that every stage transition happened exactly once.
8. Tear-down: workers, server, SMTP server, both databases, the temporary folder
   (``--keep`` leaves everything running for a look at http://127.0.0.1:4200 until Ctrl+C).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from contextlib import ExitStack, redirect_stdout, suppress
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_scale import (  # noqa: E402  (needs the repository on sys.path)
    GV100AD,
    Sink,
    free_port,
    local_moment,
    write_contacts,
)

VENV_BIN = Path(sys.executable).parent
STATE = "08"
CAMPAIGN = "ewa-baden-wuerttemberg"
GO_LIVE = "2024-10-01"  # eWA: information collection until 09.07.2024
START_DAY, REMIND_DAY, TICK_DAY = date(2024, 4, 15), date(2024, 7, 4), date(2024, 7, 10)
POOL = "efa"
PG_DATABASES = ("prefect", "efa")
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
SUBMITTED = re.compile(r"Worker '([^']+)' submitting flow run")


def say(text: str) -> None:
    print(text, flush=True)


# --- infrastructure --------------------------------------------------------------------------


def postgres_admin_url() -> str:
    out = subprocess.run(
        [str(REPO / "scripts" / "postgres.sh"), "start"], check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


def pg_admin(admin_url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def pg_url(admin_url: str, database: str, driver: str = "postgresql") -> str:
    base = admin_url.rsplit("/", 1)[0].split("://", 1)[1]
    return f"{driver}://{base}/{database}"


class Service:
    """A background process of ours (own process group), its output in a log file."""

    def __init__(self, name: str, command: list[str], log: Path, env: dict[str, str]) -> None:
        self.name, self.log = name, log
        self.handle = log.open("w")
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=REPO,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self, timeout: float = 30) -> None:
        """SIGINT first (orderly shutdown), then SIGTERM, then SIGKILL – only our group."""
        if self.process.poll() is None:
            for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.handle.close()


def show_logs(logs: Path, lines: int = 25) -> None:
    """On failure, before the temporary folder goes: the end of every service's log."""
    for log in sorted(logs.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        say(f"--- {log.name} (last {len(tail)} lines) ---")
        for line in tail:
            say(f"  {line}")


def wait_for_health(api_url: str, server: Service, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit("Prefect server exited (its log follows)")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"Prefect server not healthy after {timeout:.0f} s (its log follows)")


def run(command: list[str], env: dict[str, str]) -> str:
    out = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


# --- deployments -----------------------------------------------------------------------------


def deploy_catalog(log: Path) -> list[str]:
    """The catalogue into the pool: module entrypoints, repository as working directory."""
    from prefect.deployments.runner import EntrypointType, deploy
    from prefect.schedules import Cron

    from deployments.catalog import CATALOG, TIMEZONE

    deployments, names = [], []
    for spec in CATALOG:
        try:
            flow = spec.load_flow()
        except (ImportError, AttributeError) as error:
            say(f"  (nicht bereitgestellt: {spec.name} – {error})")
            continue
        deployments.append(
            flow.to_deployment(
                name=spec.name,
                description=spec.description,
                schedules=[Cron(c, timezone=TIMEZONE, active=False) for c in spec.crons],
                parameters=spec.parameters,
                tags=list(spec.tags),
                entrypoint_type=EntrypointType.MODULE_PATH,
                job_variables={"working_dir": str(REPO)},
            )
        )
        names.append(f"{flow.name}/{spec.name}  ←  {deployments[-1].entrypoint}")
    with log.open("w") as handle, redirect_stdout(handle):  # deploy() prints a rich table
        deploy(*deployments, work_pool_name=POOL, build=False, push=False, ignore_warnings=True)
    return names


def trigger(name: str, parameters: dict[str, Any]) -> Any:
    from prefect.deployments import run_deployment

    return run_deployment(name=name, parameters=parameters, timeout=0)


async def _wait(ids: list[Any], timeout: float) -> list[Any]:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            runs = [await client.read_flow_run(i) for i in ids]
            if all(r.state and r.state.type.value in FINAL for r in runs):
                return runs
            if time.monotonic() > deadline:
                raise SystemExit(f"flow runs not finished after {timeout:.0f} s")
            await asyncio.sleep(2)


def wait_for(runs: list[Any], timeout: float = 1800) -> list[Any]:
    """Poll the API until every run is final; fail loudly if one did not complete."""
    finished = asyncio.run(_wait([r.id for r in runs], timeout))
    for r in finished:
        if r.state.type.value != "COMPLETED":
            raise SystemExit(f"flow run {r.name} ended {r.state.type.value}: {r.state.message}")
    return finished


async def _worker_of(ids: list[Any]) -> dict[Any, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    found: dict[Any, str] = {}
    async with get_client() as client:
        logs = await client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)), limit=200
        )
        for entry in logs:
            match = SUBMITTED.search(entry.message)
            if match:
                found[entry.flow_run_id] = match.group(1)
    return found


async def _workers() -> list[Any]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.read_workers_for_work_pool(POOL)


async def _changes_reported(run: Any) -> int | None:
    """'Stufenwechsel in diesem Lauf: **N**' from the tick run's Markdown artifact."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    for artifact in artifacts:
        match = re.search(r"Stufenwechsel in diesem Lauf: \*\*(\d+)\*\*", str(artifact.data))
        if match:
            return int(match.group(1))
    return None


# --- the campaign side -----------------------------------------------------------------------


def coordinator(env: dict[str, str], data_dir: Path) -> None:
    """Import the state and fictitious contacts, create the campaign (the efa CLI)."""
    efa = str(VENV_BIN / "efa")
    run([efa, "municipalities", "import", str(GV100AD), "--state", STATE], env)
    os.environ.update({k: env[k] for k in ("EFA_DATABASE_URL", "EFA_DATA_DIR")})
    from sqlmodel import col, select

    from efa_rollout.db import session_scope
    from models import Municipality

    with session_scope() as session:
        rows = session.exec(
            select(Municipality.ags, Municipality.name, Municipality.type_code)
            .where(Municipality.state_code == STATE)
            .order_by(col(Municipality.ags))
        ).all()
    unincorporated = sum(1 for _, _, type_code in rows if type_code in ("65", "66"))
    say(
        f"  directory: {len(rows)} entries of state {STATE} – {len(rows) - unincorporated} "
        f"municipalities, {unincorporated} unincorporated areas (no town hall, not enrolled)"
    )
    pairs = [(a, n) for a, n, _ in rows]
    contacts = data_dir / "kontakte-bw.csv"
    write_contacts(contacts, pairs)
    run([efa, "contacts", "import", str(contacts)], env)
    run([efa, "campaign", "create", "ewa", "--state", STATE, "--go-live", GO_LIVE], env)


def campaign_facts() -> dict[str, Any]:
    """What the campaign database says: enrolments, outbox, transitions per step."""
    from sqlalchemy import func
    from sqlmodel import col, select

    from efa_rollout.db import session_scope
    from models import Enrolment, Event, OutboxMessage

    with session_scope() as session:
        enrolments = session.exec(
            select(func.count()).select_from(Enrolment).where(Enrolment.campaign_id == CAMPAIGN)
        ).one()
        outbox = Counter(session.exec(select(OutboxMessage.status)).all())
        message_ids = set(session.exec(select(OutboxMessage.message_id)).all())
        steps = Counter(
            session.exec(
                select(Event.enrolment_id, Event.from_stage, Event.to_stage).where(
                    Event.kind == "stage_changed", col(Event.actor).startswith("tick")
                )
            ).all()
        )
    return {"enrolments": enrolments, "outbox": outbox, "ids": message_ids, "steps": steps}


def prefect_db_counts(admin_url: str) -> str:
    """Rows in the Prefect server's PostgreSQL database: proof of where it keeps its state."""
    import psycopg

    counts = []
    with psycopg.connect(pg_url(admin_url, "prefect"), autocommit=True) as conn:
        for table in ("deployment", "flow_run", "task_run", "log", "artifact", "worker"):
            try:
                counts.append(
                    f"{conn.execute(f'SELECT count(*) FROM {table}').fetchone()[0]} {table}"
                )
            except psycopg.Error:
                counts.append(f"? {table}")
    return ", ".join(counts)


# --- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=2, help="flow runs at once per worker")
    parser.add_argument("--delivery-runs", type=int, default=6)
    parser.add_argument("--keep", action="store_true", help="keep running until Ctrl+C")
    args = parser.parse_args(argv)
    started = time.monotonic()

    with ExitStack() as teardown:
        say("» PostgreSQL")
        admin = postgres_admin_url()
        for database in PG_DATABASES:
            pg_admin(admin, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            pg_admin(admin, f"CREATE DATABASE {database}")
            teardown.callback(pg_admin, admin, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        tmp = Path(tempfile.mkdtemp(prefix="efa-distributed-"))
        teardown.callback(shutil.rmtree, tmp, True)
        data_dir, logs = tmp / "data", tmp / "logs"
        data_dir.mkdir()
        logs.mkdir()
        teardown.push(lambda kind, *_: show_logs(logs) if kind is not None else None)

        say("» SMTP server (aiosmtpd, counts Message-IDs)")
        sink = Sink(ids_file=tmp / "received.json")
        teardown.callback(sink.stop)

        port = free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "PREFECT_HOME": str(tmp / "prefect-home"),
            "PREFECT_API_URL": api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_WORKER_PREFETCH_SECONDS": "2",
            "EFA_DATA_DIR": str(data_dir),
            "EFA_DATABASE_URL": pg_url(admin, "efa"),
            "EFA_SMTP_URL": sink.url,
            "EFA_SMTP_RATE_PER_SECOND": "500",
        }
        for key in ("PREFECT_PROFILE", "PREFECT_API_KEY"):
            env.pop(key, None)
        os.environ.update({k: env[k] for k in ("PREFECT_HOME", "PREFECT_API_URL")})
        os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

        say(f"» Prefect server on PostgreSQL (database prefect) at {api_url[:-4]}")
        server_env = {
            **env,
            "PREFECT_API_DATABASE_CONNECTION_URL": pg_url(admin, "prefect", "postgresql+asyncpg"),
        }
        server = Service(
            "server",
            [
                str(VENV_BIN / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            logs / "server.log",
            server_env,
        )
        teardown.callback(server.stop)
        wait_for_health(api_url, server)

        say(f"» Work pool {POOL} (process) and {args.workers} workers (--limit {args.limit})")
        run([str(VENV_BIN / "prefect"), "work-pool", "create", POOL, "--type", "process"], env)
        workers = []
        for number in range(1, args.workers + 1):
            name = f"efa-worker-{number}"
            worker = Service(
                name,
                [
                    str(VENV_BIN / "prefect"),
                    "worker",
                    "start",
                    "--pool",
                    POOL,
                    "--name",
                    name,
                    "--limit",
                    str(args.limit),
                ],
                logs / f"{name}.log",
                env,
            )
            teardown.callback(worker.stop)
            workers.append(worker)

        say("» Deployments into the pool")
        for name in deploy_catalog(logs / "deploy.log"):
            say(f"  {name}")

        say("» Coordinator: Baden-Württemberg, contacts, eWA campaign (efa CLI)")
        coordinator(env, data_dir)
        say(f"  campaign {CAMPAIGN} created (go-live {GO_LIVE})")

        triggered: list[tuple[str, Any]] = []

        def phase(title: str, runs: list[tuple[str, dict[str, Any]]]) -> list[Any]:
            t0 = time.monotonic()
            flow_runs = [trigger(name, params) for name, params in runs]
            triggered.extend((title, r) for r in flow_runs)
            done = wait_for(flow_runs)
            say(f"  {title}: {len(done)} run(s) in {time.monotonic() - t0:.0f} s")
            return done

        say("» Runs through the workers")
        iso = lambda day, hour=9: local_moment(day, hour).isoformat()  # noqa: E731
        phase(
            "start",
            [
                (
                    "start-campaign/kampagne-starten",
                    {"params": {"campaign": CAMPAIGN, "as_of": iso(START_DAY)}},
                )
            ],
        )
        phase(
            "reminders",
            [("send-reminders/erinnerungen", {"campaign": CAMPAIGN, "as_of": iso(REMIND_DAY)})],
        )
        queued = sum(campaign_facts()["outbox"].values())
        per_run = math.ceil(queued / args.delivery_runs) + 1
        phase(
            "delivery",
            [
                (
                    "deliver-outbox/postausgang-zustellen",
                    {"as_of": iso(REMIND_DAY, 10), "limit": per_run},
                )
                for _ in range(args.delivery_runs)
            ],
        )
        ticks = phase(
            "tick",
            [("tick/tick", {"campaign": CAMPAIGN, "as_of": iso(TICK_DAY)}) for _ in range(2)],
        )

        report(triggered, ticks, sink, tmp, workers)
        say(f"\nPrefect's own database (PostgreSQL »prefect«): {prefect_db_counts(admin)}")
        say(f"\nTotal time: {time.monotonic() - started:.0f} s")
        if args.keep:
            say(f"Everything is still running: UI {api_url[:-4]} – Ctrl+C tears it down.")
            with suppress(KeyboardInterrupt):
                signal.pause()
        say("» Tear-down: workers, server, SMTP server, databases prefect and efa, temp folder")
    return 0


def report(
    triggered: list[tuple[str, Any]], ticks: list[Any], sink: Sink, tmp: Path, workers: list[Any]
) -> None:
    ids = [r.id for _, r in triggered]
    worker_of = asyncio.run(_worker_of(ids))
    final = {r.id: r for r in asyncio.run(_wait(ids, 60))}
    say("\n=== Flow runs and the worker that ran each ===")
    say(f"{'phase':<10} {'flow run':<52} {'worker':<14} {'pid':>8} {'seconds':>8}")
    per_worker: dict[str, list[str]] = defaultdict(list)
    for phase_name, r in triggered:
        run = final[r.id]
        worker = worker_of.get(r.id, "?")
        pid = (run.infrastructure_pid or "?").rsplit(":", 1)[-1]
        seconds = run.total_run_time.total_seconds() if run.total_run_time else 0.0
        per_worker[worker].append(phase_name)
        say(f"{phase_name:<10} {run.name[:52]:<52} {worker:<14} {pid:>8} {seconds:>8.1f}")
    say("\n=== Work per worker ===")
    for worker, phases in sorted(per_worker.items()):
        say(
            f"{worker}: {len(phases)} flow runs ({', '.join(f'{p} ×{n}' for p, n in Counter(phases).items())})"
        )
    for w in asyncio.run(_workers()):
        say(
            f"  heartbeat {w.name}: {w.status.value if w.status else '?'}, last {w.last_heartbeat_time}"
        )
    both = all(w.name in per_worker for w in workers)
    say(f"every worker took work: {'YES' if both else 'NO'}")

    facts = campaign_facts()
    counts = sink.stop()
    received: dict[str, int] = json.loads((tmp / "received.json").read_text())
    duplicates = {k: v for k, v in received.items() if v != 1}
    missing = facts["ids"] - set(received)
    extra = set(received) - facts["ids"]
    say("\n=== Mail at the SMTP server ===")
    say(f"outbox: {dict(facts['outbox'])}")
    say(
        f"received {counts['messages']} messages, {counts['unique']} distinct Message-IDs; "
        f"duplicates {len(duplicates)}, missing {len(missing)}, unknown {len(extra)}"
    )
    once = not duplicates and not missing and not extra and set(facts["outbox"]) == {"sent"}
    say(f"every mail exactly once: {'YES' if once else 'NO'}")

    say("\n=== Transitions (two tick runs at once) ===")
    tick_changes = [asyncio.run(_changes_reported(r)) for r in ticks]
    steps = facts["steps"]
    say(
        f"tick runs reported {tick_changes} changes; {len(steps)} distinct transitions over "
        f"{facts['enrolments']} enrolments, max per enrolment and step: {max(steps.values(), default=0)}"
    )
    say(
        "  (both runs tick the same campaign: whichever locks a batch first moves it; the other "
        "skips locked rows (SKIP LOCKED) or finds them already moved)"
    )
    exact = steps and set(steps.values()) == {1} and len(steps) == facts["enrolments"]
    say(f"every transition exactly once: {'YES' if exact else 'NO'}")
    if not (both and once and exact):
        raise SystemExit("distributed run: a check failed (see above)")


if __name__ == "__main__":
    raise SystemExit(main())
