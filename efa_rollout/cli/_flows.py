"""Running a Prefect flow from the CLI: against PREFECT_API_URL, or Prefect's local mode."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import typer


def prepare_prefect_environment() -> None:
    """Defaults for Prefect's local mode on a busy machine (before Prefect is imported)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The local server needs more than the default 20 s to start when the machine is busy.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def run_flow(
    flow_fn: Callable[..., Any], /, *, flow_tags: list[str] | None = None, **params: Any
) -> Any:
    """Run FLOW_FN with PARAMS in this process and return its result."""
    prepare_prefect_environment()
    started = time.monotonic()
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    if not PREFECT_API_URL.value():
        typer.echo(
            "» Prefect läuft im lokalen Modus (kein PREFECT_API_URL gesetzt): "
            "der Start des lokalen Servers dauert einige Sekunden.",
            err=True,
        )
    # Heartbeats make each synchronous flow wait up to 1 s at its end (PREFECT.md).
    from prefect import tags

    with (
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
        tags(*(flow_tags or [])),
    ):
        result = flow_fn(**params)
    typer.echo(f"» Prefect-Lauf beendet nach {time.monotonic() - started:.1f} s.", err=True)
    return result
