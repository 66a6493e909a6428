"""`efa portal`: serve the municipalities' portal, issue and revoke personal links."""

from __future__ import annotations

import typer

from efa_rollout.domain.text import german_date
from efa_rollout.texts import say

app = typer.Typer(
    help="Portal für die Gemeinden: starten, persönliche Links ausgeben oder widerrufen.",
    invoke_without_command=True,
)


@app.callback()
def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Adresse, an der das Portal lauscht."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="TCP-Port."),
    forwarded_allow_ips: str | None = typer.Option(
        None,
        "--forwarded-allow-ips",
        help="Vertrauenswürdige Reverse-Proxys (X-Forwarded-For), kommagetrennt; "
        "Vorgabe: EFA_PORTAL_TRUSTED_PROXIES (127.0.0.1).",
    ),
) -> None:
    """Startet das Portal (ohne Unterbefehl), bis es mit Strg+C beendet wird."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from efa_rollout.portal.app import create_app
    from efa_rollout.portal.security import install_log_redaction
    from efa_rollout.settings import get_settings

    settings = get_settings()
    if forwarded_allow_ips is not None:
        settings = settings.model_copy(update={"portal_trusted_proxies": forwarded_allow_ips})
    config = uvicorn.Config(
        create_app(settings=settings),
        host=host,
        port=port,
        proxy_headers=False,  # the app reads X-Forwarded-For from the trusted proxies itself
        server_header=False,
        log_level="info",
    )
    install_log_redaction()  # after uvicorn.Config configured the loggers
    typer.echo(say("cli.portal.running", host=host, port=port, base=get_settings().portal_base_url))
    uvicorn.Server(config).run()


@app.command("link")
def link(
    campaign_id: str = typer.Argument(..., metavar="KAMPAGNE", help="Kennung der Kampagne."),
    ags: str = typer.Argument(..., metavar="AGS", help="Gemeindeschlüssel (8 Ziffern)."),
    rotate: bool = typer.Option(
        False, "--rotate", help="Alle bisherigen Links dieser Gemeinde widerrufen."
    ),
) -> None:
    """Gibt einen neuen persönlichen Link für eine Gemeinde aus (nur jetzt sichtbar)."""
    from efa_rollout.db import session_scope
    from efa_rollout.services.links import issue_link, portal_url
    from efa_rollout.settings import get_settings
    from models import utcnow

    settings = get_settings()
    with session_scope() as session:
        issued = issue_link(
            session, campaign_id, ags, rotate=rotate, now=utcnow(), actor=settings.actor
        )
    until = german_date(issued.valid_until.astimezone(settings.zone).date())
    typer.echo(say("cli.portal.link", name=issued.name, ags=issued.ags, until=until))
    typer.echo(portal_url(settings.portal_base_url, issued.token))
    if rotate:
        typer.echo(say("cli.portal.rotated", count=issued.revoked), err=True)


@app.command("revoke")
def revoke(
    campaign_id: str = typer.Argument(..., metavar="KAMPAGNE", help="Kennung der Kampagne."),
    ags: str = typer.Argument(..., metavar="AGS", help="Gemeindeschlüssel (8 Ziffern)."),
) -> None:
    """Widerruft alle persönlichen Links einer Gemeinde für eine Kampagne."""
    from efa_rollout.db import session_scope
    from efa_rollout.services.links import revoke_links
    from efa_rollout.settings import get_settings
    from models import utcnow

    with session_scope() as session:
        code, revoked = revoke_links(
            session, campaign_id, ags, now=utcnow(), actor=get_settings().actor
        )
    typer.echo(say("cli.portal.revoked", count=revoked, ags=code, campaign=campaign_id))
