"""`efa campaign`: definitions, creation, start, tick, go-live, status."""

from __future__ import annotations

import typer

app = typer.Typer(help="Kampagnen anlegen, starten und verfolgen.", no_args_is_help=True)
