"""`efa history`: every event of a campaign (or one municipality) in order, with mail attempts."""

from __future__ import annotations

import typer

from efa_rollout.cli._common import parse_as_of, print_json
from efa_rollout.errors import UserError


def history(
    campaign: str = typer.Argument(..., metavar="KAMPAGNE", help="Kampagnen-ID."),
    ags: str | None = typer.Argument(None, metavar="[AGS]", help="Nur diese Gemeinde (AGS)."),
    as_of: str | None = typer.Option(
        None, "--as-of", help="Nur Ereignisse bis zu diesem Stichtag."
    ),
    no_mail: bool = typer.Option(False, "--no-mail", help="Ohne die einzelnen Zustellversuche."),
    as_json: bool = typer.Option(False, "--json", help="Als JSON ausgeben."),
) -> None:
    """Zeigt die Geschichte einer Kampagne: was, wann, wer, warum – mit Zustellversuchen."""
    from efa_rollout.db import session_scope
    from efa_rollout.services.history import campaign_history
    from efa_rollout.services.lookup import find_enrolment, get_campaign
    from efa_rollout.settings import get_settings

    with session_scope() as session:
        get_campaign(session, campaign)
        if ags is not None:
            if not (ags.isdigit() and len(ags) == 8):
                raise UserError(f"AGS: »{ags}« ist kein achtstelliger Gemeindeschlüssel.")
            find_enrolment(session, campaign, ags)
        entries = campaign_history(
            session, campaign, ags=ags, as_of=parse_as_of(as_of), with_mail=not no_mail
        )
    if as_json:
        print_json([entry.to_json() for entry in entries])
        return
    if not entries:
        typer.echo("Keine Ereignisse.")
        return
    zone = get_settings().zone
    for entry in entries:
        where = f"{entry.name} ({entry.ags})" if entry.ags else "Kampagne"
        typer.echo(f"{entry.at.astimezone(zone):%d.%m.%Y %H:%M}  {where}  {entry.what}")
        typer.echo(f"{'':18}von: {entry.who}" + (f" · {entry.why}" if entry.why else ""))
    typer.echo(f"{len(entries)} Einträge.")
