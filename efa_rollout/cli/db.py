"""`efa db`: schema migrations."""

from __future__ import annotations

from typing import Any

import typer

app = typer.Typer(help="Datenbank verwalten.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_command() -> None:
    """Migriert die Datenbank auf den neuesten Stand."""
    from efa_rollout.db import current_revision, make_engine, upgrade
    from efa_rollout.settings import get_settings, mask_url

    url = get_settings().effective_database_url
    engine = make_engine(url)
    before = current_revision(engine)
    upgrade(engine)
    after = current_revision(engine)
    typer.echo(f"Datenbank {mask_url(url)}: Stand {before or 'leer'} → {after}.")
    _legacy_link_hint(engine)


@app.command("status")
def status_command() -> None:
    """Zeigt den Migrationsstand der Datenbank."""
    from efa_rollout.db import current_revision, head_revision, make_engine
    from efa_rollout.settings import get_settings

    engine = make_engine(get_settings().effective_database_url)
    current, head = current_revision(engine), head_revision()
    state = "aktuell" if current == head else "veraltet"
    typer.echo(f"Stand: {current or 'leer'} (neuester: {head}) – {state}.")
    if current == head:
        _legacy_link_hint(engine)


def _legacy_link_hint(engine: Any) -> None:
    """Name the mails that still hold a live link from before the link-at-rest change."""
    from sqlmodel import Session

    from efa_rollout.services.link_scrub import legacy_link_rows

    with Session(engine) as session:
        count = legacy_link_rows(session)
    if count:
        typer.echo(
            f"Hinweis: {count} Mails von vor der Umstellung enthalten womöglich noch einen "
            "persönlichen Link im Klartext; bitte »efa mail scrub-links« aufrufen (README)."
        )
