"""Benchmark: delivery next to SMTP alone in one process run, with the ledger thread's CPU.

    .venv/bin/python bench/bench_ledger.py [--messages 2000] [--databases sqlite,postgresql]
        [--postgres-url postgresql://...] [--profile]

Queues N messages (bench_delivery's outbox), delivers them with `deliver()` (8 connections, as
bench_scale) to bench_scale's counting sink, then sends the same messages over 8 aiosmtplib
connections with no database ("SMTP alone", the ceiling). Prints msg/s, the ratio, this
process's CPU per message and the part of it spent in the ledger thread (`time.thread_time`
around every ledger call). With --profile, cProfile of the ledger thread (cumulative, top 30).
PostgreSQL: a fresh database on the given server (default: `scripts/postgres.sh start`).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import bench_delivery  # noqa: E402
import bench_scale  # noqa: E402


def run(messages: int, database: str, admin_url: str | None, profile: bool) -> dict[str, Any]:
    """One delivery and one SMTP-alone pass over the same messages; the figures."""
    from efa_rollout import db
    from efa_rollout.mail import delivery
    from efa_rollout.settings import get_settings

    work = Path(tempfile.mkdtemp(prefix="efa-bench-ledger-"))
    sink = bench_scale.Sink()
    os.environ.update(
        EFA_DATA_DIR=str(work),
        EFA_SMTP_URL=sink.url,
        EFA_SMTP_POOL_SIZE=str(bench_scale.SMTP_POOL),
        EFA_SMTP_RATE_PER_SECOND="100000",
    )
    name = f"efa_bench_ledger_{os.getpid()}"
    if database == "postgresql":
        assert admin_url is not None
        bench_scale._pg_admin(admin_url, f"CREATE DATABASE {name}")
        os.environ["EFA_DATABASE_URL"] = admin_url.rsplit("/", 1)[0] + "/" + name
    else:
        os.environ.pop("EFA_DATABASE_URL", None)
    get_settings.cache_clear()
    db.reset_engines()
    profiler = cProfile.Profile()
    ledger_cpu = [0.0]
    original = delivery._Run._call

    def timed_call(self: Any, fn: Any, kwargs: dict[str, Any]) -> Any:
        started = time.thread_time()
        if profile:
            profiler.enable()
        try:
            return original(self, fn, kwargs)
        finally:
            if profile:
                profiler.disable()
            ledger_cpu[0] += time.thread_time() - started

    delivery._Run._call = timed_call  # type: ignore[method-assign]
    load = os.getloadavg()[0]
    try:
        queued = bench_delivery.queue(messages)
        wall, cpu = time.perf_counter(), time.process_time()
        report = delivery.deliver()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        counted = sink.stop()
        ceiling_sink = bench_scale.Sink()
        try:
            ceiling = bench_scale.smtp_ceiling(ceiling_sink.port, queued)
        finally:
            ceiling_sink.stop()
    finally:
        delivery._Run._call = original  # type: ignore[method-assign]
        sink.stop()
        db.reset_engines()
        shutil.rmtree(work, ignore_errors=True)
        if database == "postgresql":
            bench_scale._pg_admin(admin_url or "", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    if profile:
        print(f"--- ledger thread, {database}", file=sys.stderr)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    assert report.total("sent") == messages == counted["unique"], (report.summary(), counted)
    return {
        "database": database,
        "load": load,
        "rate": messages / wall,
        "ceiling": ceiling,
        "cpu_ms": cpu / messages * 1000,
        "ledger_ms": ledger_cpu[0] / messages * 1000,
        "duplicates": counted["duplicates"],
    }


def main() -> None:
    """Each database in turn, one table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    rows = []
    for database in args.databases.split(","):
        admin = bench_scale._postgres_admin_url(args.postgres_url) if database != "sqlite" else None
        rows.append(run(args.messages, database, admin, args.profile))
    print(
        "| db | delivery msg/s | SMTP alone msg/s | ratio | CPU ms/msg | of it ledger thread "
        "| duplicates | load |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    for r in rows:
        print(
            f"| {r['database']} | {r['rate']:,.0f} | {r['ceiling']:,.0f} | "
            f"{r['rate'] / r['ceiling']:.0%} | {r['cpu_ms']:.2f} | {r['ledger_ms']:.2f} | "
            f"{r['duplicates']} | {r['load']:.1f} |"
        )


if __name__ == "__main__":
    main()
