"""`efa portal`: serve the municipalities' portal, issue and revoke personal links."""

from __future__ import annotations

from datetime import timedelta

import typer

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
    typer.echo(
        f"Portal läuft auf http://{host}:{port} (Links zeigen auf "
        f"{get_settings().portal_base_url}). Beenden mit Strg+C."
    )
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
    from efa_rollout.portal.links import issue_token, portal_url, rotate_token
    from efa_rollout.services.lookup import find_enrolment
    from efa_rollout.settings import get_settings
    from models import Event, Municipality, utcnow

    settings = get_settings()
    now = utcnow()
    with session_scope() as session:
        enrolment = find_enrolment(session, campaign_id, ags)
        municipality = session.get(Municipality, enrolment.ags)
        revoked = 0
        if rotate:
            token, revoked = rotate_token(
                session,
                campaign_id=campaign_id,
                ags=enrolment.ags,
                now=now,
                valid_days=settings.portal_token_days,
            )
        else:
            token = issue_token(
                session,
                campaign_id=campaign_id,
                ags=enrolment.ags,
                now=now,
                valid_days=settings.portal_token_days,
            )
        session.add(
            Event(
                at=now,
                campaign_id=campaign_id,
                ags=enrolment.ags,
                enrolment_id=enrolment.id,
                actor=settings.actor,
                kind="portal_link_issued",
                reason="Link erneuert, ältere widerrufen" if rotate else "Link ausgegeben",
                data={"revoked": revoked, "valid_days": settings.portal_token_days},
            )
        )
    name = municipality.name if municipality else enrolment.ags
    until = (now + timedelta(days=settings.portal_token_days)).astimezone(settings.zone)
    typer.echo(f"Persönlicher Link für {name} ({enrolment.ags}), gültig bis {until:%d.%m.%Y}:")
    typer.echo(portal_url(settings.portal_base_url, token))
    if rotate:
        typer.echo(f"{revoked} ältere(r) Link(s) widerrufen.", err=True)


@app.command("revoke")
def revoke(
    campaign_id: str = typer.Argument(..., metavar="KAMPAGNE", help="Kennung der Kampagne."),
    ags: str = typer.Argument(..., metavar="AGS", help="Gemeindeschlüssel (8 Ziffern)."),
) -> None:
    """Widerruft alle persönlichen Links einer Gemeinde für eine Kampagne."""
    from efa_rollout.db import session_scope
    from efa_rollout.portal.links import revoke_tokens
    from efa_rollout.services.lookup import find_enrolment
    from efa_rollout.settings import get_settings
    from models import Event, utcnow

    settings = get_settings()
    now = utcnow()
    with session_scope() as session:
        enrolment = find_enrolment(session, campaign_id, ags)
        revoked = revoke_tokens(session, campaign_id=campaign_id, ags=enrolment.ags, now=now)
        session.add(
            Event(
                at=now,
                campaign_id=campaign_id,
                ags=enrolment.ags,
                enrolment_id=enrolment.id,
                actor=settings.actor,
                kind="portal_links_revoked",
                data={"revoked": revoked},
            )
        )
    typer.echo(f"{revoked} Link(s) für {enrolment.ags} in »{campaign_id}« widerrufen.")
