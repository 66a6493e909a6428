#!/usr/bin/env python3
"""How fast the CLI answers: wall and CPU seconds per command and its import time, side by side
for this checkout and (optionally) another one, e.g. `main` in a temporary worktree.

Run:
    git worktree add /tmp/efa-before main
    .venv/bin/python bench/bench_cli_startup.py --before /tmp/efa-before [--runs 7] [--with-up]

Every command runs RUNS times in a fresh interpreter on the same data (the Ostalbkreis: 42
municipalities, their building authorities, an eWA campaign); the figures are medians. "import"
is the sum of `python -X importtime` over the top-level imports of one more run, "modules" how
many modules that run ended with. With --with-up, `efa up` is started and the flow-running
commands are timed against it (`campaign tick --no-wait`, `campaign tick`), with the CPU the CLI
process itself spent. Both checkouts run with this checkout's virtualenv.

With --up-per-tree, each checkout runs its own `efa up` (the server side is what differs), in
turn for --rounds rounds: per round and checkout, `efa up` is started, left alone for
--settle seconds, and the waiting `campaign tick` is timed --runs times; printed per run: wall,
the CLI's CPU, the trigger-to-end time the CLI reports ("Lauf erfolgreich nach X s") and the
load. Compile the other checkout's bytecode first (as scripts/_bootstrap.sh does here):
`python -m compileall -q efa_rollout models flows tasks deployments`.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from bench_cli import import_ostalbkreis, start_up  # this folder: the script's own

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN = "ewa-ostalbkreis"
READ_ONLY = (
    ("--help",),
    ("config",),
    ("campaign", "list"),
    ("campaign", "show", CAMPAIGN),
    ("campaign", "status", CAMPAIGN),
    ("municipalities", "list"),
    ("mail", "outbox"),
    ("history", CAMPAIGN),
    ("report", CAMPAIGN),
)
FLOW_RUNNING = (("campaign", "tick", CAMPAIGN, "--no-wait"), ("campaign", "tick", CAMPAIGN))
#: Modules whose presence the table marks (what a read-only command should not need).
HEAVY = ("prefect", "alembic", "jinja2", "openpyxl", "numpy", "httpx", "flows", "yaml")
_IMPORT_LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)")


def environment(root: Path, data: Path) -> dict[str, str]:
    """The environment of a CLI process of the checkout ROOT on the data folder DATA."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EFA_"))}
    env.update(EFA_DATA_DIR=str(data), PYTHONPATH=str(root))
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    return env


def run(root: Path, env: dict[str, str], args: tuple[str, ...], *extra: str) -> tuple[float, str]:
    """Wall seconds of one `efa ARGS` in ROOT, and its standard error."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *extra, "-m", "efa_rollout.cli", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"efa {' '.join(args)} ({root}):\n{done.stdout}\n{done.stderr}")
    return wall, done.stderr


def measure(root: Path, env: dict[str, str], args: tuple[str, ...], runs: int) -> dict[str, object]:
    """Median wall and CPU seconds of RUNS runs, import figures of one more."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall, _ = run(root, env, args)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        walls.append(wall)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    _, stderr = run(root, env, args, "-X", "importtime")
    top_level, modules = 0, set()
    for match in _IMPORT_LINE.finditer(stderr):
        modules.add(match.group(3))
        if not match.group(2):  # a top-level import: its cumulative time
            top_level += int(match.group(1))
    loaded = [h for h in HEAVY if any(m == h or m.startswith(f"{h}.") for m in modules)]
    return {
        "wall": statistics.median(walls),
        "cpu": statistics.median(cpus),
        "import": top_level / 1e6,
        "modules": len(modules),
        "heavy": ", ".join(loaded) or "–",
    }


def check_checkout(root: Path, env: dict[str, str]) -> None:
    """Stop unless ROOT's own efa_rollout is the one imported."""
    found = subprocess.run(
        [sys.executable, "-c", "import efa_rollout; print(efa_rollout.__file__)"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not found.startswith(str(root.resolve())):
        raise SystemExit(f"{root}: efa_rollout kommt aus {found}")


def prepare(data: Path) -> None:
    """The Ostalbkreis, its building authorities, contacts and an eWA campaign in DATA."""
    env = environment(ROOT, data)
    import_ostalbkreis(env, data.parent)
    go_live = (date.today() + timedelta(weeks=20)).isoformat()
    run(ROOT, env, ("campaign", "create", "ewa", "--district", "08136", "--go-live", go_live))
    run(ROOT, env, ("campaign", "start", CAMPAIGN, "--no-prefect"))


def table(
    title: str, rows: list[tuple[str, dict[str, dict[str, object]]]], names: list[str]
) -> None:
    print(f"\n{title}\n")
    head = " | ".join(f"{n} wall | {n} CPU | {n} import | {n} modules | {n} loaded" for n in names)
    print(f"| command | {head} |")
    print("|---|" + "---:|---:|---:|---:|---|" * len(names))
    for command, by_root in rows:
        cells = " | ".join(
            f"{by_root[n]['wall']:.2f} s | {by_root[n]['cpu']:.2f} s | {by_root[n]['import']:.2f} s"
            f" | {by_root[n]['modules']} | {by_root[n]['heavy']}"
            for n in names
        )
        print(f"| `efa {command}` | {cells} |", flush=True)


TICK = ("campaign", "tick", CAMPAIGN)
IDLE_SECONDS = 20.0


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) of the live processes in process group PGID."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def api_url(data: Path) -> str:
    """The API of the `efa up` running on DATA."""
    import json

    return str(json.loads((data / "prefect" / "efa-up.json").read_text())["api_url"])


def idle_cpu(data: Path) -> dict[str, float]:
    """Share of one core that `efa up`'s server and serving groups use while nothing runs."""
    import json

    children = json.loads((data / "prefect" / "efa-up.json").read_text())["children"]
    groups = {name: children[name] for name in ("Prefect-Server", "Deployments")}
    before = {name: group_cpu(pid) for name, pid in groups.items()}
    time.sleep(IDLE_SECONDS)
    return {name: (group_cpu(pid) - before[name]) / IDLE_SECONDS for name, pid in groups.items()}


_SERVER_SECONDS = re.compile(r"Lauf erfolgreich nach ([0-9.]+) s")


def breakdown(api_url: str, stderr: str, started: float, ended: float) -> str:
    """Where a waiting tick's wall went, from the run's state times on the server (epoch s)."""
    import httpx

    from efa_rollout.prefect_rest import FINAL_STATES

    found = re.search(r"flow-run/([0-9a-f-]+)", stderr)
    if not found:
        return "–"
    run_id = found.group(1)

    def epoch(stamp: str) -> float:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    states = httpx.get(f"{api_url}/flow_run_states/", params={"flow_run_id": run_id}).json()
    at = {s["type"]: epoch(s["timestamp"]) for s in states}
    created = epoch(httpx.get(f"{api_url}/flow_runs/{run_id}").json()["created"])
    final = next((at[t] for t in FINAL_STATES if t in at), float("nan"))
    parts = (
        created - started,
        at.get("PENDING", float("nan")) - created,
        at.get("RUNNING", float("nan")) - at.get("PENDING", float("nan")),
        final - at.get("RUNNING", float("nan")),
        ended - final,
    )
    return " / ".join(f"{p:.2f}" for p in parts)


def up_per_tree(
    roots: dict[str, Path], data: Path, work: Path, runs: int, rounds: int, settle: float
) -> None:
    """The waiting tick against each checkout's own `efa up`, in turn, side by side."""
    rows: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in roots}
    print(
        "\n| round | tree | run | wall | CLI CPU | trigger → end | load | CLI → created / "
        "→ pending (poll) / → running (process) / → completed (flow) / → CLI end |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---|", flush=True)
    for number in range(1, rounds + 1):
        for name, root in roots.items():
            env = environment(root, data)
            # In the checkout: `prefect.serve` records file entrypoints relative to the cwd.
            up, _ = start_up(env, work, data, cwd=root)
            try:
                time.sleep(settle)
                idle = idle_cpu(data)
                print(
                    f"| {number} | {name} | idle {IDLE_SECONDS:.0f} s | server "
                    f"{100 * idle['Prefect-Server']:.1f} % | serving "
                    f"{100 * idle['Deployments']:.1f} % of a core | | {os.getloadavg()[0]:.2f} |",
                    flush=True,
                )
                for index in range(1, runs + 1):
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    started = time.time()
                    wall, stderr = run(root, env, TICK)
                    ended = time.time()
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                    found = _SERVER_SECONDS.search(stderr)
                    server = float(found.group(1)) if found else float("nan")
                    load = os.getloadavg()[0]
                    rows[name].append((wall, cpu, server, load))
                    parts = breakdown(api_url(data), stderr, started, ended)
                    print(
                        f"| {number} | {name} | {index} | {wall:.2f} s | {cpu:.2f} s "
                        f"| {server:.1f} s | {load:.2f} | {parts} |",
                        flush=True,
                    )
            finally:
                up.send_signal(signal.SIGTERM)
                up.wait(timeout=90)
    print("\n| tree | runs | wall median (min–max) | CLI CPU median | trigger → end median |")
    print("|---|---:|---:|---:|---:|")
    for name, found in rows.items():
        walls = [r[0] for r in found]
        print(
            f"| {name} | {len(found)} | {statistics.median(walls):.2f} s "
            f"({min(walls):.2f}–{max(walls):.2f}) | {statistics.median(r[1] for r in found):.2f} s "
            f"| {statistics.median(r[2] for r in found):.1f} s |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--before", type=Path, help="Another checkout to compare with (e.g. main).")
    parser.add_argument("--runs", type=int, default=5, help="Runs per command and checkout.")
    parser.add_argument(
        "--with-up", action="store_true", help="Also time flow commands against efa up."
    )
    parser.add_argument("--flows-only", action="store_true", help="With --with-up: only those.")
    parser.add_argument(
        "--up-per-tree",
        action="store_true",
        help="Only the waiting tick, against each checkout's own efa up.",
    )
    parser.add_argument("--rounds", type=int, default=2, help="With --up-per-tree.")
    parser.add_argument("--settle", type=float, default=10.0, help="Seconds after efa up is ready.")
    args = parser.parse_args()
    args.with_up = args.with_up or args.flows_only
    work = Path(tempfile.mkdtemp(prefix="efa-bench-startup-"))
    data = work / "data"
    prepare(data)
    roots = {"after": ROOT}
    if args.before:
        roots = {"before": args.before.resolve(), **roots}
    for root in roots.values():
        check_checkout(root, environment(root, data))
    print(f"load average at start: {os.getloadavg()[0]:.2f}, runs per figure: {args.runs}")
    if args.up_per_tree:
        up_per_tree(roots, data, work, args.runs, args.rounds, args.settle)
        return
    rows = []
    for command in READ_ONLY if not args.flows_only else ():
        rows.append(
            (
                " ".join(command),
                {n: measure(r, environment(r, data), command, args.runs) for n, r in roots.items()},
            )
        )
    if rows:
        table("Read-only commands (medians)", rows, list(roots))
    if args.with_up:
        up, _ = start_up(environment(ROOT, data), work, data)
        try:
            print(f"load average: {os.getloadavg()[0]:.2f}")
            rows = []
            for command in FLOW_RUNNING:
                rows.append(
                    (
                        " ".join(command),
                        {
                            n: measure(r, environment(r, data), command, args.runs)
                            for n, r in roots.items()
                        },
                    )
                )
            table("Flow-running commands against `efa up` (medians)", rows, list(roots))
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=90)


if __name__ == "__main__":
    main()
