"""`efa mail`: the outbox – deliver, inspect, retry, cancel, preview, test, local sink."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from efa_rollout.cli import bounces
from efa_rollout.cli._common import parse_as_of, print_json, print_table
from efa_rollout.cli._flows import NO_WAIT, run_if_served
from efa_rollout.errors import UserError
from efa_rollout.texts import say, table

app = typer.Typer(help="Postausgang: Mails zustellen, prüfen, erneut senden.", no_args_is_help=True)

_STATUS_HELP = "queued, sending, sent, retrying, failed_permanently, unknown, cancelled"


def _now() -> datetime:
    return datetime.now(UTC)


def _check_statuses(statuses: list[str]) -> list[str]:
    from models import OUTBOX_STATUSES

    wrong = [s for s in statuses if s not in OUTBOX_STATUSES]
    if wrong:
        raise UserError(
            say("cli.mail.status_unknown", statuses=", ".join(wrong), known=_STATUS_HELP)
        )
    return statuses


def _local(moment: datetime | None) -> str:
    from efa_rollout.settings import get_settings

    if moment is None:
        return ""
    return moment.astimezone(get_settings().zone).strftime("%d.%m.%Y %H:%M")


@app.command("deliver")
def deliver_command(
    limit: int | None = typer.Option(None, "--limit", min=1, help="Höchstens so viele Mails."),
    as_of: str | None = typer.Option(None, "--as-of", help="Uhr verstellen (Simulation)."),
    no_wait: bool = NO_WAIT,
) -> None:
    """Stellt fällige Mails zu (SMTP oder .eml-Ordner); über Prefect, wenn ein Server läuft."""
    served, result = run_if_served(
        "postausgang-zustellen", wait=not no_wait, as_of=parse_as_of(as_of), limit=limit
    )
    if served:
        for key, value in (result or {}).items():
            typer.echo(f"  {say('cli.mail.delivered_row', key=key, value=value)}")
        return
    from efa_rollout.mail.delivery import deliver  # here: a served run needs no SMTP machinery

    report = deliver(now=parse_as_of(as_of), limit=limit)
    typer.echo(report.summary())
    for row in report.rows():
        typer.echo("  " + ", ".join(f"{k}: {v}" for k, v in row.items()))


@app.command("outbox")
def outbox_command(
    status: list[str] = typer.Option([], "--status", help=f"Nur diese Status ({_STATUS_HELP})."),
    campaign: str | None = typer.Option(None, "--campaign", help="Nur diese Kampagne."),
    limit: int = typer.Option(200, "--limit", min=1, help="Höchstens so viele Zeilen."),
    as_json: bool = typer.Option(False, "--json", help="Als JSON ausgeben."),
) -> None:
    """Zeigt den Postausgang (neueste zuerst)."""
    from efa_rollout.db import session_scope
    from efa_rollout.services.outbox_admin import list_messages
    from efa_rollout.services.suppression import suppression_notes

    with session_scope() as session:
        rows = list_messages(
            session, statuses=_check_statuses(status), campaign_id=campaign, limit=limit
        )
        notes = suppression_notes(session, campaign)
    if as_json:
        print_json([r.model_dump(exclude={"raw"}) for r in rows])
        return
    for note in notes:
        typer.echo(note)
    if not rows:
        typer.echo(say("cli.mail.none"))
        return
    test = say("cli.mail.test_mail")
    print_table(
        list(table("cli.mail.outbox_columns").values()),
        [
            [
                r.id,
                r.status,
                r.campaign_id or (test if r.is_test else ""),
                r.ags or "",
                r.kind,
                r.sequence,
                ", ".join(r.recipients),
                r.attempts,
                _local(r.sent_at or r.next_attempt_at),
                (r.last_error or "")[:60],
            ]
            for r in rows
        ],
    )


@app.command("retry")
def retry_command(
    ids: list[int] = typer.Argument(None, help="IDs aus »efa mail outbox«."),
    status: list[str] = typer.Option(
        [], "--status", help="Alle mit diesem Status (unknown, failed_permanently, retrying)."
    ),
) -> None:
    """Sendet Mails erneut, mit derselben Message-ID (nur an noch nicht bediente Empfänger)."""
    from efa_rollout.db import session_scope
    from efa_rollout.services.outbox_admin import retry_messages

    if not ids and not status:
        raise UserError(say("cli.mail.ids_or_status"))
    with session_scope() as session:
        rows, problems = retry_messages(
            session, now=_now(), ids=ids or None, statuses=_check_statuses(status) or None
        )
        done = [r.id for r in rows]
    shown = ", ".join(map(str, done)) or say("cli.none")
    typer.echo(say("cli.mail.retried", count=len(done), ids=shown))
    for problem in problems:
        typer.echo(f"  {say('cli.mail.not_possible', problem=problem)}", err=True)
    if done:
        typer.echo(say("cli.mail.deliver_with"))


@app.command("cancel")
def cancel_command(ids: list[int] = typer.Argument(..., help="IDs aus »efa mail outbox«.")) -> None:
    """Storniert Mails, die noch nicht zugestellt sind."""
    from efa_rollout.db import session_scope
    from efa_rollout.services.outbox_admin import cancel_messages

    with session_scope() as session:
        rows, problems = cancel_messages(session, now=_now(), ids=ids)
        done = [r.id for r in rows]
    shown = ", ".join(map(str, done)) or say("cli.none")
    typer.echo(say("cli.mail.cancelled", count=len(done), ids=shown))
    for problem in problems:
        typer.echo(f"  {say('cli.mail.not_possible', problem=problem)}", err=True)
    if problems:
        raise typer.Exit(1)


@app.command("preview")
def preview_command(
    campaign: str = typer.Argument(..., help="Kampagne (ID)."),
    municipality: str = typer.Option(..., "--municipality", help="AGS der Gemeinde."),
    kind: str = typer.Option(..., "--kind", help="Mail-Art, z. B. reminder."),
    sequence: int = typer.Option(1, "--sequence", min=1, help="Laufende Nummer."),
    out: Path | None = typer.Option(None, "--out", help="Datei für die HTML-Fassung."),
) -> None:
    """Zeigt eine Mail, wie sie versandt würde; stellt nichts in den Postausgang."""
    from efa_rollout.db import session_scope
    from efa_rollout.services.mail_preview import preview_campaign_mail
    from efa_rollout.settings import get_settings

    with session_scope() as session:
        preview = preview_campaign_mail(
            session,
            campaign_id=campaign,
            ags=municipality,
            kind=kind,
            now=_now(),
            sequence=sequence,
        )
        session.rollback()  # a preview never changes anything
    target = out or get_settings().data_dir / "vorschau" / f"{campaign}-{municipality}-{kind}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(preview.html, encoding="utf-8")
    for name, value in preview.headers.items():
        if not name.lower().startswith(("content-", "mime-")):
            typer.echo(f"{name}: {value}")
    typer.echo("")
    typer.echo(preview.text)
    for warning in preview.warnings:
        typer.echo(say("cli.mail.warning", warning=warning), err=True)
    typer.echo(say("cli.mail.html_file", path=target.resolve()))


@app.command("test")
def test_command(
    address: str = typer.Argument(..., help="Empfängeradresse der Testmail."),
    kind: str = typer.Option("information_request", "--kind", help="Mail-Art."),
    send: bool = typer.Option(True, "--send/--no-send", help="Gleich zustellen."),
) -> None:
    """Stellt eine [TEST]-Mail mit Beispieldaten zu (zählt nie als Kampagnenmail)."""
    from efa_rollout.db import session_scope
    from efa_rollout.mail.delivery import deliver
    from efa_rollout.services.mail_preview import queue_test_mail

    with session_scope() as session:
        row = queue_test_mail(session, address=address, kind=kind, now=_now())
        outbox_id, subject = row.id, row.subject
    typer.echo(say("cli.mail.test_queued", id=outbox_id, subject=subject))
    if not send:
        return
    assert outbox_id is not None
    report = deliver(only_ids=[outbox_id])
    typer.echo(report.summary())


@app.command("sink")
def sink_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Adresse, an der der Server lauscht."),
    port: int = typer.Option(8025, "--port", help="Port."),
    folder: Path | None = typer.Option(None, "--dir", help="Ordner für die .eml-Dateien."),
) -> None:
    """Startet einen lokalen SMTP-Server, der jede Mail als .eml speichert (Strg+C beendet)."""
    from efa_rollout.mail.sink import run_sink
    from efa_rollout.settings import get_settings

    target = folder or get_settings().data_dir / "sink"
    typer.echo(say("cli.mail.sink", host=host, port=port, folder=target.resolve()))
    typer.echo(say("cli.mail.sink_use", host=host, port=port))
    run_sink(target, host=host, port=port, echo=typer.echo)


@app.command("scrub-links")
def scrub_links_command(
    dry_run: bool = typer.Option(False, "--dry-run", help="Nur zählen, nichts ändern."),
) -> None:
    """Entfernt persönliche Links im Klartext aus Mails, die vor der Umstellung gespeichert wurden.

    Einmal nach dem Update aufrufen, mit denselben Einstellungen wie die Zustellung
    (Link-Geheimnis). Noch zu sendende Mails behalten einen funktionierenden Link.
    """
    from efa_rollout.db import get_engine, session_scope
    from efa_rollout.services import link_scrub
    from efa_rollout.settings import get_settings

    settings, now = get_settings(), _now()
    with session_scope() as session:
        secret = link_scrub.scrub_secret(session, settings.data_dir)
        report = link_scrub.scrub_legacy_links(session, secret=secret, now=now, dry_run=dry_run)
        if report.changed and not dry_run:
            link_scrub.record_scrub(session, report, now=now, actor=settings.actor)
    left = None if dry_run or not report.changed else link_scrub.settle_files(get_engine())
    verb = say("cli.mail.would_replace" if dry_run else "cli.mail.replaced")
    scrubbed = say(
        "cli.mail.scrubbed",
        examined=report.examined,
        verb=verb,
        converted=len(report.converted),
        marked=len(report.marked),
    )
    typer.echo(scrubbed)
    if report.in_flight:
        ids = ", ".join(str(i) for i in report.in_flight)
        typer.echo(say("cli.mail.in_flight", ids=ids))
    if left:
        typer.echo(left)
    if dry_run:
        typer.echo(say("cli.mail.dry_run"))


# Registered last, as the bounce mailbox command always was: `efa mail bounces`.
app.command("bounces")(bounces.bounces_command)
