"""Serving the catalogue in one process: the mail-rate limit, missed runs, `prefect.serve`."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from deployments import warm_start
from deployments.catalog import deployment_options, served_specs
from efa_rollout.prefect_api import SMTP_RATE_LIMIT

#: Late runs younger than this are simply run; older ones are caught up once per deployment.
MISSED_GRACE = timedelta(minutes=2)
#: Seconds between the runner's looks for runs to start (Prefect's default: 10). A triggered run
#: waits half of it on average to be picked up; each look is one small query of the server.
RUNNER_POLL_SECONDS = 0.5


def prepare_environment() -> None:
    """Settings for serving (before Prefect is imported; flow-run processes inherit them)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Results of deployment runs are kept so that the CLI can print them, as in local mode.
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "true")
    # ... without turning on task caching: a batch task called twice in one run must run twice.
    os.environ.setdefault("PREFECT_TASKS_DEFAULT_NO_CACHE", "true")


async def ensure_rate_limit(rate_per_second: float) -> None:
    """Create or update the global limit that spreads EFA_SMTP_RATE_PER_SECOND over all runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectNotFound

    # A limit of N slots decaying at N per second admits N messages a second, in bursts of N.
    slots = max(1, round(rate_per_second))
    async with get_client() as client:
        try:
            await client.read_global_concurrency_limit_by_name(SMTP_RATE_LIMIT)
        except ObjectNotFound:
            await client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(
                    name=SMTP_RATE_LIMIT,
                    limit=slots,
                    slot_decay_per_second=float(rate_per_second),
                    active=True,
                )
            )
            return
        await client.update_global_concurrency_limit(
            SMTP_RATE_LIMIT,
            GlobalConcurrencyLimitUpdate(
                limit=slots, slot_decay_per_second=float(rate_per_second), active=True
            ),
        )


async def catch_up_once(deployment_names: list[str], now: datetime | None = None) -> int:
    """Of the runs missed while nothing served, keep the newest per deployment; cancel the rest.

    Every flow is idempotent and works up to "now", so one catch-up run does all that the missed
    ones would have done; running each of them would only queue up behind one another.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled

    cutoff = (now or datetime.now(UTC)) - MISSED_GRACE
    cancelled = 0
    async with get_client() as client:
        runs: list[Any] = []
        while True:  # the API returns at most 200 per page
            page = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(
                        type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])
                    ),
                    expected_start_time=FlowRunFilterExpectedStartTime(before_=cutoff),  # type: ignore[arg-type]  # pydantic turns the datetime into prefect's DateTime (pendulum on 3.11)
                ),
                deployment_filter=DeploymentFilter(
                    name=DeploymentFilterName(any_=deployment_names)
                ),
                limit=200,
                offset=len(runs),
            )
            runs.extend(page)
            if len(page) < 200:
                break
        newest: dict[Any, Any] = {}
        for run in runs:
            kept = newest.get(run.deployment_id)
            if kept is None or run.expected_start_time > kept.expected_start_time:
                newest[run.deployment_id] = run
        for run in runs:
            if newest.get(run.deployment_id) is run:
                continue
            await client.set_flow_run_state(
                run.id,
                Cancelled(message="Beim Neustart übersprungen: ein späterer Lauf holt nach."),
                force=True,
            )
            cancelled += 1
    return cancelled


def serve_warm(flows: list[tuple[Any, dict[str, Any]]], *, limit: int) -> None:
    """Serve FLOWS (flow, `Runner.add_flow` options) until stopped, each run forked warm.

    Call `warm_start.install` with the flows' modules first. As `prefect.serve` does, but with
    the flows added as flows (`add_flow`), not as deployments: only then does the runner start
    a run from the flow object it holds (`DirectSubprocessStarter`, the start `warm_start`
    replaces) instead of a new `python -m prefect.engine` that imports it from the entrypoint.
    The runner looks for runs every RUNNER_POLL_SECONDS, one small query of the server each.
    """
    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner

    # pause_on_shutdown=False: stopping must not switch the schedules off for good (#16363).
    runner = Runner(limit=limit, pause_on_shutdown=False, query_seconds=RUNNER_POLL_SECONDS)
    for flow, options in flows:
        runner.add_flow(flow, **options)
    warm_start.wait_until_warm()
    try:
        asyncio.run(runner.start())
    except (KeyboardInterrupt, TerminationSignal):
        print("Bereitstellung beendet.", flush=True)


def serve_catalog(*, limit: int, only: set[str] | None = None) -> None:
    """Register and serve the catalogue until stopped (SIGTERM, Ctrl-C)."""
    prepare_environment()
    specs = served_specs(only)
    # The warm server imports the flows while this process registers the deployments.
    warm_start.install(spec.module for spec in specs)
    from efa_rollout.settings import get_settings

    asyncio.run(ensure_rate_limit(get_settings().smtp_rate_per_second))
    skipped = asyncio.run(catch_up_once([spec.name for spec in specs]))
    if skipped:
        print(f"{skipped} verpasste Läufe übersprungen (je Deployment holt einer nach).")
    print(
        f"Stelle {len(specs)} Deployments bereit: " + ", ".join(spec.name for spec in specs),
        flush=True,
    )
    serve_warm([(spec.load_flow(), deployment_options(spec)) for spec in specs], limit=limit)
