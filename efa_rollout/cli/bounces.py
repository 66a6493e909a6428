"""`efa mail bounces` and `efa contacts unsuppress`: the bounce mailbox and the suppression list."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from efa_rollout.cli._common import print_table
from efa_rollout.texts import say


def bounces_command(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Nur zeigen, was geschähe: nichts ändern, nichts verschieben."
    ),
) -> None:
    """Liest das Postfach für Unzustellbarkeitsmeldungen und wertet die Meldungen aus."""
    from efa_rollout.db import session_scope
    from efa_rollout.services.bounces import process_bounces, unreachable_municipalities
    from efa_rollout.settings import get_settings

    now = datetime.now(UTC)
    run = process_bounces(now=now, dry_run=dry_run)
    if run.outcomes:
        headers = list(run.outcomes[0])
        print_table(headers, [[o[h] for h in headers] for o in run.outcomes])
    typer.echo(run.summary())
    if not dry_run and run.moved:
        typer.echo(say("cli.bounces.moved", folder=get_settings().bounce_processed_folder))
    with session_scope() as session:
        unreachable = unreachable_municipalities(session, as_of=now)
    if unreachable:
        typer.echo(say("cli.bounces.unreachable", count=len(unreachable)))
        for row in unreachable:
            line = say(
                "cli.bounces.unreachable_row",
                campaign=row["Kampagne"],
                name=row["Gemeinde"],
                ags=row["AGS"],
                reason=row["Grund"],
            )
            typer.echo(f"  {line}")


def unsuppress_command(
    address: str = typer.Argument(..., metavar="ADRESSE", help="Die gesperrte E-Mail-Adresse."),
) -> None:
    """Hebt die Sperre einer Adresse auf (nach einer Unzustellbarkeitsmeldung)."""
    from efa_rollout.db import session_scope
    from efa_rollout.services.suppression import unsuppress
    from efa_rollout.settings import get_settings

    with session_scope() as session:
        cleared = unsuppress(session, address, now=datetime.now(UTC), actor=get_settings().actor)
    typer.echo(say("cli.bounces.unsuppressed", address=address.strip().lower(), cleared=cleared))
