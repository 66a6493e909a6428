"""Tick and roll-up, Germany ÷ Baden-Württemberg, on prepared states: medians of warm runs.

A single `bench_scale.py` run gives one BW tick of 20–100 ms, whose ratio to Germany swings with
the load of that moment. This bench prepares each size once per database (import, start,
reminders, delivery to a local sink – the same steps as `bench_scale.py`), then runs the tick
(every municipality moves on), an idle tick and the roll-up of every campaign on a fresh copy of
that state, REPEAT times per code tree, alternating the trees. Each run is its own process,
warmed first (an idle tick and a one-campaign roll-up, so statement compilation is out of the
figures). It prints medians of wall and CPU time, the time Python's garbage collector took, and
Germany ÷ BW per tree. Never a timed test.

    .venv/bin/python bench/bench_tick_rollup.py                       # this tree, SQLite
    git archive main | tar -x -C /tmp/before
    .venv/bin/python bench/bench_tick_rollup.py --trees /tmp/before,. \\
        --databases sqlite,postgresql --postgres-url "$PG" --repeat 3

PostgreSQL: every prepared state is a database used as a template (`CREATE DATABASE … TEMPLATE`);
all are dropped at the end. `scripts/postgres.sh` runs with fsync=off.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FIGURES = ("tick", "tick_idle", "rollup")


def _gc_timer() -> dict[str, float]:
    """Seconds spent in the cyclic garbage collector from now on (a gc callback)."""
    spent = {"seconds": 0.0, "started": 0.0}

    def callback(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            spent["started"] = time.perf_counter()
        else:
            spent["seconds"] += time.perf_counter() - spent["started"]

    gc.callbacks.append(callback)
    return spent


def child_prepare(size: str) -> dict[str, Any]:
    """Import, start, reminders and delivery for SIZE into the configured database."""
    import bench_scale as scale

    from efa_rollout.db import get_engine, session_scope
    from efa_rollout.importers.contacts import import_contacts
    from efa_rollout.importers.municipalities import import_municipalities
    from efa_rollout.mail import deliver
    from efa_rollout.services.orchestration import remind, start_campaign

    _label, state, district = scale.SIZES[size]
    engine = get_engine()
    data_dir = Path(os.environ["EFA_DATA_DIR"])
    with session_scope() as session:
        import_municipalities(session, scale.GV100AD, state=state, district=district)
    path = data_dir / "contacts.csv"
    scale.write_contacts(path, scale._municipalities(state, district))
    with session_scope() as session:
        import_contacts(session, path)
    campaigns = []
    areas = scale._area(state, district)
    for area in areas:
        campaign_id = scale.CAMPAIGN if len(areas) == 1 else f"{scale.CAMPAIGN}-{area}"
        campaigns.append(campaign_id)
        scale._create(campaign_id, area)
        start_campaign(campaign_id, scale.local_moment(scale.START_DAY))
    remind(as_of=scale.local_moment(scale.REMIND_DAY), actor="bench")
    sink = scale.Sink()
    os.environ["EFA_SMTP_URL"] = sink.url
    from efa_rollout.settings import get_settings

    get_settings.cache_clear()
    try:
        sent = deliver(now=scale.local_moment(scale.REMIND_DAY, 10)).total("sent")
    finally:
        sink.stop()
    engine.dispose()
    if engine.dialect.name == "sqlite":  # the whole state in the one file that is copied
        import sqlite3

        with sqlite3.connect(data_dir / "efa.db") as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {"campaigns": campaigns, "sent": sent}


def child_measure(campaigns: list[str]) -> dict[str, Any]:
    """Warm up, then time the tick, an idle tick and the roll-up of CAMPAIGNS."""
    import bench_scale as scale

    from efa_rollout.db import get_engine, session_scope
    from efa_rollout.reports.rollup import campaign_rollup
    from efa_rollout.services.orchestration import advance_campaigns

    get_engine()  # migrations (a newer tree on an older state) outside the figures
    # Warm: nothing is due on the reminder day; one roll-up compiles the statements.
    advance_campaigns(None, scale.local_moment(scale.REMIND_DAY, 11), go_live=False)
    with session_scope() as session:
        campaign_rollup(session, campaigns[0], as_of=scale.local_moment(scale.REMIND_DAY, 11))
    figures: dict[str, Any] = {}
    collector = _gc_timer()

    def timed(key: str, fn: Any) -> Any:
        collector["seconds"] = 0.0
        started, cpu = time.perf_counter(), time.process_time()
        result = fn()
        figures[key] = time.perf_counter() - started
        figures[f"{key}_cpu"] = time.process_time() - cpu
        figures[f"{key}_gc"] = collector["seconds"]
        return result

    moment = scale.local_moment(scale.TICK_DAY)
    ticked = timed("tick", lambda: advance_campaigns(None, moment, go_live=False))
    figures["changes"] = sum(f["changes"] for f in ticked.values())
    idle = scale.local_moment(scale.TICK_DAY, 10)
    timed("tick_idle", lambda: advance_campaigns(None, idle, go_live=False))

    def rollup() -> int:
        with session_scope() as session:
            return sum(campaign_rollup(session, c, as_of=moment).total for c in campaigns)

    figures["rollup_total"] = timed("rollup", rollup)
    figures["peak_mb"] = scale._peak_mb()
    return figures


# --- the parent ------------------------------------------------------------------------------


def _env(tree: Path, data_dir: Path, database_url: str | None) -> dict[str, str]:
    env = {
        **os.environ,
        "EFA_DATA_DIR": str(data_dir),
        # The tree's own code first (before the editable install of this checkout), then bench/.
        "PYTHONPATH": os.pathsep.join([str(tree), str(tree / "bench"), str(HERE)]),
        "EFA_SMTP_POOL_SIZE": "8",
        "EFA_SMTP_RATE_PER_SECOND": "100000",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    env.pop("EFA_SMTP_URL", None)
    env.pop("PREFECT_API_URL", None)
    if database_url:
        env["EFA_DATABASE_URL"] = database_url
    else:
        env.pop("EFA_DATABASE_URL", None)
    return env


def _child(kind: str, tree: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__)), "--child", kind, *extra]
    done = subprocess.run(command, env=env, cwd=env["EFA_DATA_DIR"], capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{kind} in {tree} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _pg(admin_url: str, *statements: str) -> None:
    import psycopg

    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


class State:
    """A prepared state of one size on one database, copied fresh for every run."""

    def __init__(self, size: str, database: str, admin_url: str | None, work: Path) -> None:
        self.size, self.database, self.admin_url = size, database, admin_url
        self.folder = work / f"{size}-{database}"
        self.folder.mkdir()
        self.template = f"efa_tr_{size}_{os.getpid()}"
        self.copies: list[str] = []
        self.campaigns: list[str] = []

    def url(self, name: str) -> str | None:
        if self.database == "sqlite":
            return None
        assert self.admin_url
        return self.admin_url.rsplit("/", 1)[0] + "/" + name

    def prepare(self, tree: Path) -> None:
        if self.database == "postgresql":
            assert self.admin_url
            _pg(self.admin_url, f"DROP DATABASE IF EXISTS {self.template}")
            _pg(self.admin_url, f"CREATE DATABASE {self.template}")
        env = _env(tree, self.folder, self.url(self.template))
        self.campaigns = _child("prepare", tree, env, "--size", self.size)["campaigns"]

    def fresh_copy(self, run: int) -> tuple[Path, str | None]:
        """A data folder (and database) holding exactly the prepared state."""
        target = self.folder.parent / f"{self.size}-{self.database}-run{run}"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        if self.database == "sqlite":
            shutil.copy2(self.folder / "efa.db", target / "efa.db")
            return target, None
        name = f"{self.template}_r{run}"
        assert self.admin_url
        _pg(self.admin_url, f"DROP DATABASE IF EXISTS {name}")
        _pg(self.admin_url, f"CREATE DATABASE {name} TEMPLATE {self.template}")
        self.copies.append(name)
        return target, self.url(name)

    def drop(self) -> None:
        if self.database == "postgresql" and self.admin_url:
            for name in [*self.copies, self.template]:
                _pg(self.admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def report(results: dict[tuple[str, str, str], list[dict[str, Any]]], trees: list[str]) -> str:
    """Medians per size, database and tree, then Germany ÷ BW."""
    lines = [
        "| db | tree | size | tick | CPU | GC | idle tick CPU | roll-up | CPU | GC | peak |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (database, tree, size), runs in results.items():
        m = {k: _median(runs, k) for k in runs[0] if isinstance(runs[0][k], float)}
        lines.append(
            f"| {database} | {tree} | {size} | {m['tick']:.3f} s | {m['tick_cpu']:.3f} s | "
            f"{m['tick_gc']:.3f} s | {m['tick_idle_cpu']:.3f} s | {m['rollup']:.3f} s | "
            f"{m['rollup_cpu']:.3f} s | {m['rollup_gc']:.3f} s | {m['peak_mb']:.0f} MB |"
        )
    lines += ["", "Germany ÷ BW (medians; wall | CPU | CPU without GC):"]
    for database in sorted({k[0] for k in results}):
        for tree in trees:
            big, small = (
                results.get((database, tree, "germany")),
                results.get((database, tree, "bw")),
            )
            if not big or not small:
                continue
            parts = []
            for step in ("tick", "tick_idle", "rollup"):
                wall = _median(big, step) / _median(small, step)
                cpu = _median(big, f"{step}_cpu") / _median(small, f"{step}_cpu")
                net = (_median(big, f"{step}_cpu") - _median(big, f"{step}_gc")) / (
                    _median(small, f"{step}_cpu") - _median(small, f"{step}_gc")
                )
                parts.append(f"{step} {wall:.1f} | {cpu:.1f} | {net:.1f}")
            lines.append(f"- {database}, {tree}: " + "; ".join(parts))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="bw,germany")
    parser.add_argument("--databases", default="sqlite")
    parser.add_argument("--postgres-url", default=os.environ.get("EFA_BENCH_POSTGRES_URL"))
    parser.add_argument("--trees", default=".", help="code trees to compare, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument("--child", choices=["prepare", "measure"], help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--campaigns", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "prepare":
        print(json.dumps(child_prepare(args.size)))
        return 0
    if args.child == "measure":
        print(json.dumps(child_measure(args.campaigns.split(","))))
        return 0
    trees = [str(Path(t).resolve()) for t in args.trees.split(",")]
    results: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="efa-bench-tr-") as tmp:
        for database in args.databases.split(","):
            admin = args.postgres_url if database == "postgresql" else None
            if database == "postgresql" and not admin:
                raise SystemExit("--postgres-url (or EFA_BENCH_POSTGRES_URL) is needed")
            for size in args.sizes.split(","):
                state = State(size, database, admin, Path(tmp))
                try:
                    started = time.monotonic()
                    state.prepare(Path(trees[0]))  # the oldest tree: newer ones migrate
                    print(
                        f"» {size} on {database} prepared in {time.monotonic() - started:.0f} s "
                        f"(load {os.getloadavg()[0]:.1f})",
                        file=sys.stderr,
                        flush=True,
                    )
                    for run in range(args.repeat):
                        for tree in trees:  # alternating: both trees see the same load
                            folder, url = state.fresh_copy(run)
                            env = _env(Path(tree), folder, url)
                            figures = _child(
                                "measure", Path(tree), env, "--campaigns", ",".join(state.campaigns)
                            )
                            figures["load"] = os.getloadavg()[0]
                            results.setdefault((database, Path(tree).name, size), []).append(
                                figures
                            )
                finally:
                    state.drop()
    print(report(results, [Path(t).name for t in trees]))
    if args.json:
        args.json.write_text(json.dumps({"|".join(k): v for k, v in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
