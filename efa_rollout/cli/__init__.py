"""The `efa` command line. Read-only commands never import Prefect, so they answer fast."""

from __future__ import annotations

import sys

import typer

from efa_rollout.cli import (
    bounces,
    campaign,
    collection,
    config,
    db,
    demo,
    directory,
    enrolment,
    history,
    mail,
    portal,
    remind,
    report,
    serve,
    summary,
    up,
)
from efa_rollout.errors import UserError
from efa_rollout.output_safety import TerminalSafeStream

app = typer.Typer(
    help="efa-rollout – EfA-Onlinedienste in den Gemeinden eines Landkreises einführen.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("config")(config.show_config)
app.add_typer(db.app, name="db")
app.add_typer(directory.municipalities_app, name="municipalities")
app.add_typer(directory.contacts_app, name="contacts")
app.add_typer(campaign.app, name="campaign")
app.add_typer(enrolment.app, name="enrolment")
app.add_typer(mail.app, name="mail")
mail.app.command("bounces")(bounces.bounces_command)
directory.contacts_app.command("unsuppress")(bounces.unsuppress_command)
app.command("serve")(serve.serve)
app.command("up")(up.up)
app.command("demo")(demo.demo)
app.add_typer(collection.response_app, name="response")
app.add_typer(collection.checklist_app, name="checklist")
app.command("remind")(remind.remind)
app.command("report")(report.report)
app.command("history")(history.history)
app.add_typer(portal.app, name="portal")
app.add_typer(summary.app, name="summary")


def main() -> None:
    """Entry point of the `efa` console script."""
    # Every line the CLI prints may carry directory or portal text: one filter for all of it.
    sys.stdout = TerminalSafeStream(sys.stdout)
    sys.stderr = TerminalSafeStream(sys.stderr)
    try:
        app()
    except UserError as error:
        typer.echo(error.render(), err=True)
        sys.exit(error.exit_code)
