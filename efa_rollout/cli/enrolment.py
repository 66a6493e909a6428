"""`efa enrolment`: coordinator overrides for one municipality in one campaign."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Teilnahme einer Gemeinde steuern (Stufe setzen, pausieren, ...).", no_args_is_help=True
)
