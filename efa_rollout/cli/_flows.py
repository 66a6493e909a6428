"""Running a Prefect flow from the CLI: through its deployment when a server serves it, else
in this process (against PREFECT_API_URL, or Prefect's local mode)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer

from efa_rollout.errors import UserError
from efa_rollout.texts import say, table

if TYPE_CHECKING:
    from efa_rollout.prefect_rest import ServerApi

#: What the CLI says about a deployment run's final state (templates/texts/cli.ini).
STATE_LABELS = table("cli.flows.states")

NO_WAIT = typer.Option(
    False,
    "--no-wait",
    help="Nur den Lauf auf dem Prefect-Server auslösen, nicht auf sein Ende warten.",
)


def prepare_prefect_environment() -> None:
    """Defaults for Prefect's local mode on a busy machine (before Prefect is imported)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The local server needs more than the default 20 s to start when the machine is busy.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


class DeploymentRun:
    """What a deployment run ended as (or that it was only triggered, with --no-wait)."""

    def __init__(self, flow_run: dict[str, Any], ui_url: str, result: Any = None) -> None:
        self.flow_run = flow_run  # as the REST API returns it
        self.ui_url = ui_url
        self.result = result

    @property
    def state(self) -> dict[str, Any]:
        return self.flow_run.get("state") or {}

    @property
    def state_type(self) -> str:
        return self.state.get("type") or "SCHEDULED"

    @property
    def completed(self) -> bool:
        return self.state_type == "COMPLETED"


def run_flow(
    deployment: str,
    /,
    *,
    flow_tags: list[str] | None = None,
    wait: bool = True,
    **params: Any,
) -> Any:
    """Run DEPLOYMENT's flow with PARAMS and return its result (None with --no-wait).

    With a reachable server that serves DEPLOYMENT, the run is triggered there (tagged with
    FLOW_TAGS) and followed until it ends; otherwise the flow runs in this process. The flow
    module (Prefect, tasks, services) is imported only for a run in this process.
    """
    prepare_prefect_environment()
    served, result = run_if_served(deployment, tags=flow_tags, wait=wait, **params)
    if served:
        return result
    from deployments.catalog import spec_named

    return _in_process(spec_named(deployment).load_flow(), flow_tags, params)


def run_if_served(
    deployment: str,
    /,
    *,
    tags: list[str] | None = None,
    wait: bool = True,
    **params: Any,
) -> tuple[bool, Any]:
    """(True, result) when a reachable server serves DEPLOYMENT and ran it; else (False, None).

    Costs nothing when no server is configured (no PREFECT_API_URL, no running `efa up`). Talks
    to the server over its REST API: Prefect itself is not imported (~1 s of CPU).
    """
    from efa_rollout.prefect_api import adopt_server, configured_api_url
    from efa_rollout.prefect_rest import ServerApi

    api_url = configured_api_url()
    if not api_url:
        return False, None
    prepare_prefect_environment()
    with ServerApi(api_url) as api:  # its client asks for the health check too
        if not adopt_server(api_url, client=api.client):
            return False, None
        deployment_id = api.ready_deployment(deployment)
        if deployment_id is None:
            typer.echo(say("cli.flows.not_served", deployment=deployment), err=True)
            return False, None
        return True, _through_deployment(api, deployment_id, params, tags or [], wait)


def _in_process(flow_fn: Callable[..., Any], flow_tags: list[str] | None, params: dict) -> Any:
    started = time.monotonic()
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    from efa_rollout.prefect_api import adopt_recorded_server

    updates: dict[Any, Any] = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    if api_url := adopt_recorded_server():  # report to the running server, not a local one
        updates[PREFECT_API_URL] = api_url
    if not (api_url or PREFECT_API_URL.value()):
        typer.echo(say("cli.flows.local_mode"), err=True)
    # Heartbeats make each synchronous flow wait up to 1 s at its end (PREFECT.md).
    from prefect import tags

    with temporary_settings(updates=updates), tags(*(flow_tags or [])):
        result = flow_fn(**params)
    typer.echo(say("cli.flows.local_done", seconds=time.monotonic() - started), err=True)
    return result


def _through_deployment(
    api: ServerApi, deployment_id: str, params: dict[str, Any], flow_tags: list[str], wait: bool
) -> Any:
    started = time.monotonic()
    run = _trigger_and_follow(api, deployment_id, params, flow_tags, wait)
    typer.echo(say("cli.flows.run", name=run.flow_run["name"], url=run.ui_url), err=True)
    if not wait:
        typer.echo(say("cli.flows.triggered"), err=True)
        return None
    label = STATE_LABELS.get(run.state_type, run.state_type.lower())
    typer.echo(say("cli.flows.ended", state=label, seconds=time.monotonic() - started), err=True)
    if not run.completed:
        message = run.state.get("message") or say("cli.flows.see_ui")
        raise typer.Exit(_fail(say("cli.flows.failed", state=label, message=message)))
    return run.result


def _fail(message: str) -> int:
    typer.echo(say("cli.flows.error", message=message), err=True)
    return 1


def _trigger_and_follow(
    api: ServerApi, deployment_id: str, params: dict[str, Any], flow_tags: list[str], wait: bool
) -> DeploymentRun:
    from efa_rollout.prefect_rest import ServerError, stored_result

    flow_run = api.create_flow_run(deployment_id, _jsonable(params), ["efa-rollout", *flow_tags])
    ui = api.api_url.removesuffix("/api") + f"/runs/flow-run/{flow_run['id']}"
    if not wait:
        return DeploymentRun(flow_run, ui)
    try:
        flow_run = api.wait_for(flow_run["id"])
    except ServerError as error:  # the run exists: say so, and where to follow it
        raise UserError(
            say("cli.flows.result_unknown", name=flow_run["name"], message=error.message),
            details=[say("cli.flows.run_in_ui", url=ui)],
        ) from error
    result = None
    if flow_run["state"]["type"] == "COMPLETED":
        try:
            try:
                result = stored_result(flow_run["state"])
            except LookupError:  # kept elsewhere (a storage block): Prefect reads it
                result = _result_through_prefect(flow_run["state"])
        except Exception:  # result not kept or unreadable: the links still help
            result = None
    return DeploymentRun(flow_run, ui, result)


def _result_through_prefect(state: dict[str, Any]) -> Any:
    import asyncio

    from prefect.client.schemas.objects import State

    return asyncio.run(State.model_validate(state).aresult(raise_on_failure=False))


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    """PARAMS as JSON for the API (pydantic models and datetimes included)."""
    from pydantic import TypeAdapter

    return TypeAdapter(dict[str, Any]).dump_python(params, mode="json")
