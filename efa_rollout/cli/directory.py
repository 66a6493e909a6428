"""`efa municipalities` and `efa contacts`: the directory (filled by the import helper)."""

from __future__ import annotations

import typer

municipalities_app = typer.Typer(
    help="Gemeindeverzeichnis importieren und anzeigen.", no_args_is_help=True
)
contacts_app = typer.Typer(help="Ansprechpersonen importieren und anzeigen.", no_args_is_help=True)
