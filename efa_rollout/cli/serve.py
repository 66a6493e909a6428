"""`efa serve`: serve every deployment against the configured Prefect API."""

from __future__ import annotations

import os

import typer


def serve(
    limit: int = typer.Option(4, "--limit", min=1, help="Höchstens so viele gleichzeitige Läufe."),
    only: list[str] = typer.Option([], "--only", help="Nur diese Deployments (mehrfach)."),
) -> None:
    """Stellt alle Deployments (Zeitpläne in Europe/Berlin) bereit, bis Strg+C."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect import serve as prefect_serve
    from prefect.settings import PREFECT_API_URL

    from deployments.catalog import build_deployments

    if not PREFECT_API_URL.value():
        typer.echo(
            "Hinweis: PREFECT_API_URL ist nicht gesetzt. Für die Prefect-Oberfläche zuerst "
            "`prefect server start` ausführen und `prefect config set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api` setzen.",
            err=True,
        )
    deployments = build_deployments(only=set(only) or None)
    typer.echo(
        f"Stelle {len(deployments)} Deployments bereit: " + ", ".join(d.name for d in deployments)
    )
    prefect_serve(*deployments, limit=limit)
