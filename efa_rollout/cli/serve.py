"""`efa serve`: serve every deployment against the configured Prefect API."""

from __future__ import annotations

import os

import typer


def serve(
    limit: int = typer.Option(4, "--limit", min=1, help="Höchstens so viele gleichzeitige Läufe."),
    only: list[str] = typer.Option([], "--only", help="Nur diese Deployments (mehrfach)."),
) -> None:
    """Stellt alle Deployments (Zeitpläne in Europe/Berlin) bereit, bis Strg+C."""
    from efa_rollout.prefect_api import adopt_recorded_server
    from efa_rollout.texts import say

    if not adopt_recorded_server() and not os.environ.get("PREFECT_API_URL"):
        typer.echo(say("cli.serve.no_server"), err=True)
    from deployments.serving import serve_catalog

    serve_catalog(limit=limit, only=set(only) or None)
