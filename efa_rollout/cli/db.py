"""`efa db`: schema migrations."""

from __future__ import annotations

from typing import Any

import typer

from efa_rollout.texts import say

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
    before_text = before or say("cli.db.empty")
    typer.echo(say("cli.db.upgraded", url=mask_url(url), before=before_text, after=after))
    _legacy_link_hint(engine)


@app.command("status")
def status_command() -> None:
    """Zeigt den Migrationsstand der Datenbank."""
    from efa_rollout.db import current_revision, head_revision, make_engine
    from efa_rollout.settings import get_settings

    engine = make_engine(get_settings().effective_database_url)
    current, head = current_revision(engine), head_revision()
    state = say("cli.db.current" if current == head else "cli.db.outdated")
    shown = current or say("cli.db.empty")
    typer.echo(say("cli.db.status", current=shown, head=head, state=state))
    if current == head:
        _legacy_link_hint(engine)


def _legacy_link_hint(engine: Any) -> None:
    """Name the mails that still hold a live link from before the link-at-rest change."""
    from sqlmodel import Session

    from efa_rollout.services.link_scrub import legacy_link_rows

    with Session(engine) as session:
        count = legacy_link_rows(session)
    if count:
        typer.echo(say("cli.db.legacy_links", count=count))
