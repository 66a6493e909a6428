"""`efa config`: the effective settings."""

from __future__ import annotations

import typer

from efa_rollout.cli._common import print_json


def show_config(
    as_json: bool = typer.Option(False, "--json", help="Als JSON ausgeben."),
) -> None:
    """Zeigt die wirksamen Einstellungen (Passwörter maskiert)."""
    from efa_rollout.settings import get_settings

    data = get_settings().masked()
    if as_json:
        print_json(data)
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        typer.echo(f"{key.ljust(width)}  {value}")
