"""`efa municipalities` and `efa contacts`: import and show the directory (no Prefect here)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from efa_rollout.cli import bounces
from efa_rollout.cli._common import print_json, print_table
from efa_rollout.texts import say, table

if TYPE_CHECKING:
    from efa_rollout.importers.validation import ImportResult

municipalities_app = typer.Typer(
    help="Gemeindeverzeichnis importieren und anzeigen.", no_args_is_help=True
)
contacts_app = typer.Typer(help="Ansprechpersonen importieren und anzeigen.", no_args_is_help=True)

#: A directory file's format as the import names it (templates/texts/cli.ini).
FORMAT_LABELS = table("cli.directory.formats")

_MUNICIPALITY_FIELDS = (
    "ags",
    "ars",
    "name",
    "official_name",
    "type_code",
    "type_label",
    "association_code",
    "association_name",
    "district_code",
    "district_name",
    "state_code",
    "state_name",
    "population",
    "postal_code",
    "attributes",
    "source",
    "updated_at",
)
_CONTACT_FIELDS = (
    "id",
    "ags",
    "role",
    "salutation",
    "salutation_title",
    "name",
    "function",
    "email",
    "phone",
    "is_shared_mailbox",
    "delivery_failed_at",
    "delivery_failure",
    "source",
    "updated_at",
)


@municipalities_app.command("import")
def import_municipalities_command(
    path: Path = typer.Argument(..., help="GV100AD-, CSV- oder XLSX-Datei."),
    district: str | None = typer.Option(
        None, "--district", help="Nur diesen Kreis importieren (5-stelliger Schlüssel)."
    ),
    state: str | None = typer.Option(
        None, "--state", help="Nur dieses Land importieren (2-stelliger Schlüssel)."
    ),
) -> None:
    """Importiert Gemeinden (GV100AD, CSV oder XLSX) – ganz oder gar nicht."""
    from efa_rollout.db import session_scope
    from efa_rollout.importers.municipalities import import_municipalities

    with session_scope() as session:
        result = import_municipalities(session, path, district=district, state=state)
    _echo_result(say("cli.directory.municipalities"), result)


@municipalities_app.command("list")
def list_municipalities_command(
    district: str | None = typer.Option(None, "--district", help="Nur dieser Kreis."),
    state: str | None = typer.Option(None, "--state", help="Nur dieses Land."),
    as_json: bool = typer.Option(False, "--json", help="Als JSON ausgeben."),
) -> None:
    """Zeigt die Gemeinden des Verzeichnisses."""
    from efa_rollout.db import session_scope
    from efa_rollout.importers.municipalities import list_municipalities
    from efa_rollout.importers.validation import format_number

    with session_scope() as session:
        rows = list_municipalities(session, district=district, state=state)
    if as_json:
        print_json([_fields(m, _MUNICIPALITY_FIELDS) for m in rows])
        return
    if not rows:
        typer.echo(say("cli.directory.no_municipalities"))
        return
    print_table(
        list(table("cli.directory.municipality_columns").values()),
        [
            [
                m.ags,
                m.name,
                m.type_label,
                m.association_name,
                m.district_name,
                None if m.population is None else format_number(m.population),
            ]
            for m in rows
        ],
    )
    typer.echo(say("cli.directory.municipality_count", count=format_number(len(rows))))


@contacts_app.command("import")
def import_contacts_command(
    path: Path = typer.Argument(..., help="CSV- oder XLSX-Datei mit Ansprechpersonen."),
) -> None:
    """Importiert Ansprechpersonen (CSV oder XLSX) – ganz oder gar nicht."""
    from efa_rollout.db import session_scope
    from efa_rollout.importers.contacts import import_contacts

    with session_scope() as session:
        result = import_contacts(session, path)
    _echo_result(say("cli.directory.contacts"), result)


@contacts_app.command("list")
def list_contacts_command(
    ags: str | None = typer.Option(None, "--ags", help="Nur diese Gemeinde (AGS)."),
    as_json: bool = typer.Option(False, "--json", help="Als JSON ausgeben."),
) -> None:
    """Zeigt die Ansprechpersonen."""
    from efa_rollout.db import session_scope
    from efa_rollout.importers.contacts import list_contacts
    from efa_rollout.importers.validation import format_number

    with session_scope() as session:
        rows = list_contacts(session, ags=ags)
    if as_json:
        print_json([_fields(c, _CONTACT_FIELDS) for c in rows])
        return
    if not rows:
        typer.echo(say("cli.directory.no_contacts"))
        return
    print_table(
        list(table("cli.directory.contact_columns").values()),
        [
            [
                c.ags,
                c.role,
                " ".join(p for p in (c.salutation, c.salutation_title) if p),
                c.name,
                c.function,
                c.email,
                c.phone,
                say("cli.yes" if c.is_shared_mailbox else "cli.no"),
                say(
                    "cli.directory.contact_source",
                    source=c.source or "",
                    updated=f"{c.updated_at:%d.%m.%Y}",
                ),
            ]
            for c in rows
        ],
    )
    typer.echo(say("cli.directory.contact_count", count=format_number(len(rows))))


def _echo_result(what: str, result: ImportResult) -> None:
    """Print the counts of an import (and columns it did not take over)."""
    label = FORMAT_LABELS.get(result.format, result.format)
    imported = say(
        "cli.directory.imported",
        what=what,
        source=result.source,
        format=label,
        summary=result.summary(),
    )
    typer.echo(imported)
    if result.ignored_columns:
        names = ", ".join(say("cli.directory.column", name=n) for n in result.ignored_columns)
        typer.echo(say("cli.directory.ignored_columns", names=names))


def _fields(row: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The attributes NAMES of ROW as a dict (for JSON output)."""
    return {name: getattr(row, name) for name in names}


# Registered last, as it always was: `efa contacts unsuppress` (the suppression list's command).
contacts_app.command("unsuppress")(bounces.unsuppress_command)
