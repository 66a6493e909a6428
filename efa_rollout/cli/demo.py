"""`efa demo`: the main job on embedded defaults, on a simulated timeline."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer


def demo(
    data_dir: Path = typer.Option(
        Path("data/demo"), "--data-dir", help="Eigener Ordner der Demo (wird neu angelegt)."
    ),
) -> None:
    """Demo: Ostalbkreis führt ViBa BW und eWA ein – simulierte Zeitachse, Mails in einen Ordner."""
    from efa_rollout import db
    from efa_rollout.demo.runner import run_demo
    from efa_rollout.settings import get_settings
    from efa_rollout.texts import say

    started = time.monotonic()
    os.environ["EFA_DATA_DIR"] = str(data_dir.resolve())
    os.environ.pop("EFA_DATABASE_URL", None)
    os.environ.pop("EFA_SMTP_URL", None)
    os.environ.pop("EFA_MAIL_DIR", None)
    get_settings.cache_clear()
    db.reset_engines()
    typer.echo(say("cli.demo.banner"))
    run_demo(data_dir.resolve(), typer.echo)
    typer.echo("\n" + say("cli.demo.duration", seconds=time.monotonic() - started))
