"""`efa history`: every event of a campaign (or one municipality) in order, with mail attempts."""

from __future__ import annotations

import typer

from efa_rollout.cli._common import parse_as_of, print_json
from efa_rollout.errors import UserError
from efa_rollout.texts import say


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
                raise UserError(say("cli.history.ags_invalid", ags=ags))
            find_enrolment(session, campaign, ags)
        entries = campaign_history(
            session, campaign, ags=ags, as_of=parse_as_of(as_of), with_mail=not no_mail
        )
    if as_json:
        print_json([entry.to_json() for entry in entries])
        return
    if not entries:
        typer.echo(say("cli.history.none"))
        return
    zone = get_settings().zone
    campaign_label = say("cli.history.campaign")
    for entry in entries:
        where = (
            say("cli.history.municipality", name=entry.name, ags=entry.ags)
            if entry.ags
            else campaign_label
        )
        moment = f"{entry.at.astimezone(zone):%d.%m.%Y %H:%M}"
        typer.echo(say("cli.history.entry", moment=moment, where=where, what=entry.what))
        line = say(
            "cli.history.who_why" if entry.why else "cli.history.who",
            indent="",
            who=entry.who,
            why=entry.why,
        )
        typer.echo(line)
    typer.echo(say("cli.history.count", count=len(entries)))
