"""`efa response` and `efa checklist`: the coordinator enters answers and checklist ticks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from efa_rollout.cli._common import print_json, print_table
from efa_rollout.domain.stages import ResponseStatus
from efa_rollout.domain.text import german_date
from efa_rollout.errors import UserError
from efa_rollout.texts import say, table

response_app = typer.Typer(
    help="Rückmeldungen der Gemeinden (Fragebogen) erfassen, importieren und anzeigen.",
    no_args_is_help=True,
)
checklist_app = typer.Typer(
    help="Checklistenpunkte einer Gemeinde abhaken und anzeigen.", no_args_is_help=True
)

_AUTHOR_HELP = "Wer die Angabe macht (für das Protokoll); Standard: EFA_ACTOR bzw. Benutzername."
_AS_OF_HELP = (
    "Wann die Angabe einging, wenn früher als jetzt (z. B. ein Brief vom Freitag; "
    "JJJJ-MM-TT oder ISO-Zeitpunkt, auch für Simulationen); Standard: jetzt."
)


def _author(author: str | None) -> str:
    from efa_rollout.settings import get_settings

    return (author or "").strip() or get_settings().actor


def _now() -> Any:
    from models import utcnow

    return utcnow()


def _moment(as_of: str | None) -> Any:
    """(moment to stamp, LateEntry or None) for --as-of; refused when it lies in the future."""
    from efa_rollout.cli._common import parse_as_of
    from efa_rollout.services.late_entry import late_entry

    return late_entry(
        parse_as_of(as_of), now=_now(), label=say("cli.collection.late_label", value=as_of)
    )


def _echo_late(moment: Any, late: Any) -> None:
    """Say which moment a late entry carries (in the history: »nachgetragen«)."""
    if late is not None:
        from efa_rollout.settings import get_settings

        local = moment.astimezone(get_settings().zone)
        typer.echo(say("cli.collection.late", moment=f"{local:%d.%m.%Y %H:%M}", label=late.label))


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """`feld=wert` arguments as a dict; `feld=` clears the field."""
    answers: dict[str, str] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(
                say("cli.collection.not_an_assignment", assignment=assignment),
                details=[
                    say("cli.collection.assignment_example_mail"),
                    say("cli.collection.assignment_example_person"),
                ],
            )
        if key in answers:
            raise UserError(say("cli.collection.assigned_twice", key=key))
        answers[key] = value
    return answers


@response_app.command("set")
def set_response_command(
    campaign: str = typer.Argument(..., help="Kampagne, z. B. ewa-ostalbkreis."),
    ags: str = typer.Argument(..., help="Gemeindeschlüssel (AGS, 8 Ziffern)."),
    assignments: list[str] = typer.Argument(
        ...,
        help="Angaben als feld=wert; Ansprechpersonen als JSON oder "
        "'name=..;email=..;funktion=..;telefon=..'; feld= löscht eine Angabe.",
    ),
    submit: bool = typer.Option(
        False, "--submit", help="Als eingereicht speichern (Pflichtangaben werden geprüft)."
    ),
    author: str | None = typer.Option(None, "--author", help=_AUTHOR_HELP),
    as_of: str | None = typer.Option(None, "--as-of", help=_AS_OF_HELP),
) -> None:
    """Erfasst einzelne Antworten einer Gemeinde (neue Version, übrige Antworten bleiben)."""
    from efa_rollout.db import session_scope
    from efa_rollout.services.answers import save_answers
    from efa_rollout.services.contacts import contact_changes
    from efa_rollout.services.lookup import find_enrolment

    answers = parse_assignments(assignments)
    now, late = _moment(as_of)
    with session_scope() as session:
        enrolment = find_enrolment(session, campaign, ags)
        response = save_answers(
            session,
            enrolment=enrolment,
            answers=answers,
            submit=submit,
            source="cli",
            author=_author(author),
            now=now,
            late=late,
        )
        missing = _missing_required(session, enrolment, response.answers)
        changes = contact_changes(session, enrolment.id, now)
        name = _name(session, enrolment.ags)
    saved = say(
        "cli.collection.saved",
        name=name,
        version=response.version,
        status=_status(response),
        complete=_yes_no(response.complete),
    )
    typer.echo(saved)
    _echo_late(now, late)
    if missing:
        typer.echo(say("cli.collection.missing", keys=", ".join(missing)))
    if changes:
        typer.echo(say("cli.collection.contacts_taken"))
        typer.echo("\n".join(f"  {line}" for line in changes))


@response_app.command("show")
def show_response_command(
    campaign: str = typer.Argument(..., help="Kampagne, z. B. ewa-ostalbkreis."),
    ags: str = typer.Argument(..., help="Gemeindeschlüssel (AGS, 8 Ziffern)."),
    as_json: bool = typer.Option(False, "--json", help="Als JSON ausgeben."),
) -> None:
    """Zeigt die neueste Version der Antworten einer Gemeinde."""
    from efa_rollout.db import session_scope
    from efa_rollout.services.answers import format_answer
    from efa_rollout.services.answers import latest_response as latest
    from efa_rollout.services.lookup import campaign_definition, find_enrolment, get_campaign

    with session_scope() as session:
        enrolment = find_enrolment(session, campaign, ags)
        assert enrolment.id is not None
        response = latest(session, enrolment.id)
        campaign_row = get_campaign(session, campaign)
        definition = campaign_definition(campaign_row)
        name = _name(session, enrolment.ags)
    if as_json:
        print_json(
            None
            if response is None
            else {
                "version": response.version,
                "status": response.status,
                "complete": response.complete,
                "source": response.source,
                "author": response.author,
                "created_at": response.created_at,
                "answers": response.answers,
            }
        )
        return
    if response is None:
        typer.echo(say("cli.collection.no_answers", name=name))
        return
    shown = say(
        "cli.collection.answers",
        name=name,
        version=response.version,
        status=_status(response),
        complete=_yes_no(response.complete),
    )
    typer.echo(shown)
    rows = [
        [q.key, q.label, format_answer(q, response.answers.get(q.key))]
        for q in definition.fields_for(enrolment.role, enrolment.is_pilot)
    ]
    print_table(list(table("cli.collection.answer_columns").values()), rows)


@response_app.command("import")
def import_responses_command(
    campaign: str = typer.Argument(..., help="Kampagne, z. B. ewa-ostalbkreis."),
    path: Path = typer.Argument(..., help="CSV- oder XLSX-Datei, eine Zeile je Gemeinde."),
    submit: bool = typer.Option(
        False, "--submit", help="Als eingereicht speichern (Pflichtangaben werden geprüft)."
    ),
    author: str | None = typer.Option(None, "--author", help=_AUTHOR_HELP),
    as_of: str | None = typer.Option(None, "--as-of", help=_AS_OF_HELP),
) -> None:
    """Importiert Antworten aus einer Tabelle (Spalte AGS + je Feld eine Spalte) – ganz oder gar nicht."""
    from efa_rollout.db import session_scope
    from efa_rollout.importers.answers import import_answers

    now, late = _moment(as_of)
    with session_scope() as session:
        result = import_answers(
            session,
            campaign_id=campaign,
            path=path,
            submit=submit,
            author=_author(author),
            now=now,
            late=late,
        )
    typer.echo(say("cli.collection.imported", source=result.source, summary=result.summary()))
    _echo_late(now, late)
    if result.ignored_columns:
        names = ", ".join(say("cli.collection.column", name=n) for n in result.ignored_columns)
        typer.echo(say("cli.collection.ignored_columns", names=names))


@checklist_app.command("done")
def checklist_done_command(
    campaign: str = typer.Argument(..., help="Kampagne, z. B. ewa-ostalbkreis."),
    ags: str = typer.Argument(..., help="Gemeindeschlüssel (AGS, 8 Ziffern)."),
    item: str = typer.Argument(..., help="Schlüssel des Checklistenpunkts, z. B. schulung."),
    note: str | None = typer.Option(None, "--note", help="Notiz zum Punkt."),
    undo: bool = typer.Option(False, "--undo", help="Punkt wieder öffnen."),
    author: str | None = typer.Option(None, "--author", help=_AUTHOR_HELP),
    as_of: str | None = typer.Option(None, "--as-of", help=_AS_OF_HELP),
) -> None:
    """Hakt einen Checklistenpunkt einer Gemeinde ab (oder öffnet ihn mit --undo wieder)."""
    from efa_rollout.db import session_scope
    from efa_rollout.services.checklist import set_checklist_item
    from efa_rollout.services.lookup import find_enrolment

    now, late = _moment(as_of)
    with session_scope() as session:
        enrolment = find_enrolment(session, campaign, ags)
        set_checklist_item(
            session,
            enrolment=enrolment,
            item_key=item,
            done=not undo,
            note=note,
            source="cli",
            author=_author(author),
            now=now,
            late=late,
        )
        name = _name(session, enrolment.ags)
        required_open = enrolment.required_open
    state = say("cli.collection.reopened" if undo else "cli.collection.done")
    typer.echo(say("cli.collection.ticked", name=name, item=item, state=state, open=required_open))
    _echo_late(now, late)


@checklist_app.command("show")
def checklist_show_command(
    campaign: str = typer.Argument(..., help="Kampagne, z. B. ewa-ostalbkreis."),
    ags: str = typer.Argument(..., help="Gemeindeschlüssel (AGS, 8 Ziffern)."),
    as_json: bool = typer.Option(False, "--json", help="Als JSON ausgeben."),
) -> None:
    """Zeigt die Checkliste einer Gemeinde mit Fälligkeiten."""
    from efa_rollout.db import session_scope
    from efa_rollout.services.checklist import checklist_view
    from efa_rollout.services.lookup import campaign_definition, find_enrolment, get_campaign
    from efa_rollout.settings import get_settings

    today = _now().astimezone(get_settings().zone).date()
    with session_scope() as session:
        enrolment = find_enrolment(session, campaign, ags)
        campaign_row = get_campaign(session, campaign)
        view = checklist_view(session, enrolment, campaign_definition(campaign_row), today=today)
    if as_json:
        print_json(view)
        return
    print_table(
        list(table("cli.collection.checklist_columns").values()),
        [
            [
                row["key"],
                row["title"],
                row["owner"],
                (
                    say("cli.collection.overdue", due=german_date(row["due"]))
                    if row["overdue"]
                    else german_date(row["due"])
                ),
                _yes_no(row["required"]),
                _yes_no(row["done"]),
                row["note"],
            ]
            for row in view
        ],
    )


def _yes_no(value: Any) -> str:
    return say("cli.yes" if value else "cli.no")


def _status(response: Any) -> str:
    submitted = response.status == ResponseStatus.SUBMITTED
    return say("cli.submitted" if submitted else "cli.draft")


def _name(session: Any, ags: str) -> str:
    from efa_rollout.services.lookup import municipality_label

    return municipality_label(session, ags)


def _missing_required(session: Any, enrolment: Any, answers: dict[str, Any]) -> list[str]:
    """Keys of required applicable fields not answered in ANSWERS."""
    from efa_rollout.services.lookup import campaign_definition, get_campaign

    definition = campaign_definition(get_campaign(session, enrolment.campaign_id))
    return [
        q.key
        for q in definition.fields_for(enrolment.role, enrolment.is_pilot)
        if q.required and q.key not in answers
    ]
