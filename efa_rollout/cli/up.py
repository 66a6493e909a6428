"""`efa up`: a district's whole system on one machine, until Ctrl-C or SIGTERM.

A persistent Prefect server (its database under EFA_DATA_DIR/prefect), every deployment served
with its schedules and event triggers (delivery included), and the portal – each a child
process in its own process group, stopped in reverse order. A restart registers the same
deployments again, re-activates their schedules and catches missed runs up once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import typer

from efa_rollout.errors import UserError
from efa_rollout.texts import say

STOP_TIMEOUT = 30.0


@dataclass
class Child:
    """A child process of `efa up` and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    handle: IO[bytes]


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        # As the servers themselves do: a port in TIME_WAIT after a restart counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _wait_healthy(url: str, child: Child, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise UserError(
                say(
                    "cli.up.exited",
                    name=child.name,
                    code=child.process.returncode,
                    log=child.log,
                )
            )
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise UserError(
        say("cli.up.no_answer", name=child.name, timeout=timeout, url=url, log=child.log)
    )


def _wait_served(api_url: str, child: Child, timeout: float) -> None:
    """Until every catalogue deployment is registered and polled by the serving process."""
    import httpx

    from deployments.catalog import CATALOG

    wanted = {spec.name for spec in CATALOG}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise UserError(
                say(
                    "cli.up.exited",
                    name=child.name,
                    code=child.process.returncode,
                    log=child.log,
                )
            )
        try:
            found = httpx.post(f"{api_url}/deployments/filter", json={}, timeout=5).json()
            ready = {d["name"] for d in found if d.get("status") == "READY"}
            if wanted <= ready:
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise UserError(say("cli.up.not_served", name=child.name, timeout=timeout, log=child.log))


def _start(name: str, args: list[str], env: dict[str, str], log: Path) -> Child:
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("ab")
    started = say("cli.up.log_started", name=name, moment=time.strftime("%Y-%m-%d %H:%M:%S"))
    handle.write(f"\n{started}\n".encode())
    handle.flush()
    process = subprocess.Popen(
        args,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches only `efa up`, which stops them in order
    )
    return Child(name, process, log, handle)


def _stop(child: Child) -> None:
    """SIGTERM to the child's process group, SIGKILL after STOP_TIMEOUT."""
    process = child.process
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # Grandchildren (the server's web process, flow-run processes) share the group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    child.handle.close()


class _Stop(Exception):
    """SIGTERM or SIGINT arrived."""


def _raise_stop(signum: int, _frame: object) -> None:
    raise _Stop(signal.Signals(signum).name)


def child_environment(data_dir: Path, api_url: str, prefect_home: Path) -> dict[str, str]:
    """The environment of the children: one PREFECT_HOME, the server's API, analytics off."""
    env = dict(os.environ)
    env.update(
        EFA_DATA_DIR=str(data_dir),
        PREFECT_HOME=str(prefect_home),
        PREFECT_API_URL=api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_API_URL=api_url,
        PYTHONUNBUFFERED="1",
    )
    return env


def up(
    port: int = typer.Option(4200, "--port", min=1, max=65535, help="Port des Prefect-Servers."),
    portal_port: int = typer.Option(
        8080, "--portal-port", min=1, max=65535, help="Port des Portals."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Adresse für Server und Portal."),
    limit: int = typer.Option(4, "--limit", min=1, help="Höchstens so viele gleichzeitige Läufe."),
    no_portal: bool = typer.Option(False, "--no-portal", help="Das Portal nicht starten."),
) -> None:
    """Startet Prefect-Server, alle Deployments (mit Zeitplänen) und das Portal, bis Strg+C."""
    from efa_rollout import prefect_api
    from efa_rollout.db import get_engine
    from efa_rollout.settings import get_settings

    settings = get_settings()
    data_dir = settings.data_dir.resolve()
    record = prefect_api.read_record(data_dir)
    if record:
        raise UserError(
            say("cli.up.running", data_dir=data_dir, pid=record["pid"], ui=record.get("ui_url"))
        )
    for what, number in (("Prefect-Server", port), ("Portal", portal_port)):
        if (what == "Portal" and no_portal) or _port_free(host, number):
            continue
        option = "--port" if what == "Prefect-Server" else "--portal-port"
        raise UserError(say("cli.up.port_taken", port=number, what=what, option=option))
    get_engine()  # migrate the campaign database once, before three processes open it
    home = prefect_api.prefect_home(data_dir)
    api_url = f"http://{host}:{port}/api"
    env = child_environment(data_dir, api_url, home)
    portal_url = None if no_portal else f"http://{host}:{portal_port}"
    default_base = type(settings).model_fields["portal_base_url"].default
    if portal_url and str(settings.portal_base_url) == str(default_base):
        # Nothing configured: the personal links in the mails point at this portal.
        env["EFA_PORTAL_BASE_URL"] = portal_url
    logs = home / "logs"
    children: list[Child] = []
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        typer.echo(say("cli.up.starting", home=home))
        server = _start(
            "Prefect-Server",
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                host,
                "--port",
                str(port),
            ],
            env,
            logs / "server.log",
        )
        children.append(server)
        _wait_healthy(f"{api_url}/health", server, 180)
        served = _start(
            "Deployments",
            [sys.executable, "-m", "efa_rollout.cli", "serve", "--limit", str(limit)],
            env,
            logs / "serve.log",
        )
        children.append(served)
        if portal_url:
            portal = _start(
                "Portal",
                [
                    sys.executable,
                    "-m",
                    "efa_rollout.cli",
                    "portal",
                    "--host",
                    host,
                    "--port",
                    str(portal_port),
                ],
                env,
                logs / "portal.log",
            )
            children.append(portal)
            _wait_healthy(f"{portal_url}/healthz", portal, 60)
        _wait_served(api_url, served, 180)
        ui_url = f"http://{host}:{port}"
        prefect_api.write_record(
            data_dir,
            api_url=api_url,
            ui_url=ui_url,
            portal_url=portal_url,
            prefect_home=str(home),
            children={c.name: c.process.pid for c in children},
        )
        typer.echo(say("cli.up.ui", url=ui_url))
        if portal_url:
            typer.echo(say("cli.up.portal", url=portal_url, base=settings.portal_base_url))
        typer.echo(say("cli.up.logs", logs=logs))
        typer.echo(say("cli.up.serving"))
        while True:
            for child in children:
                if child.process.poll() is not None:
                    raise UserError(
                        say(
                            "cli.up.died",
                            name=child.name,
                            code=child.process.returncode,
                            log=child.log,
                        )
                    )
            time.sleep(0.5)
    except _Stop:
        typer.echo(say("cli.up.stopping"))
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        prefect_api.clear_record(data_dir)
        for child in reversed(children):
            _stop(child)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    typer.echo(say("cli.up.stopped"))
