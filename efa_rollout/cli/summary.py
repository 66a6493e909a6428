"""`efa summary`: preview, send, approve or reject a campaign's summary (plain function calls)."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from efa_rollout.cli._common import parse_as_of
from efa_rollout.texts import say

app = typer.Typer(help="Zusammenfassung ansehen, versenden, freigeben.", no_args_is_help=True)

AS_OF = typer.Option(
    None, "--as-of", help="Stichzeitpunkt (JJJJ-MM-TT oder ISO-Zeitpunkt) für Simulationen."
)


def _now(as_of: str | None) -> datetime:
    return parse_as_of(as_of) or datetime.now(UTC)


def _actor() -> str:
    from efa_rollout.settings import get_settings

    return say("cli.summary.actor", actor=get_settings().actor)


@app.command("preview")
def preview_command(
    campaign_id: str = typer.Argument(..., metavar="KAMPAGNE"),
    as_of: str | None = AS_OF,
) -> None:
    """Zeigt die Zusammenfassung, wie sie jetzt verschickt würde (PDF und HTML in EFA_DATA_DIR)."""
    from efa_rollout.db import session_scope
    from efa_rollout.services.summary_release import preview
    from efa_rollout.settings import get_settings

    now = _now(as_of)
    with session_scope() as session:
        result = preview(session, campaign_id, now=now)
    folder = get_settings().data_dir / "zusammenfassung-vorschau"
    folder.mkdir(parents=True, exist_ok=True)
    pdf = folder / f"{campaign_id}-vorschau-v{result['version']}.pdf"
    html = pdf.with_suffix(".html")
    pdf.write_bytes(result["pdf"])
    html.write_text(result["html"], encoding="utf-8")
    approval = result["approval"]
    decisions = {"summary_approved": "approved", "summary_rejected": "rejected"}
    state = say(
        "cli.summary.no_approval"
        if not approval.required
        else f"cli.summary.{decisions.get(approval.decision or '', 'pending')}"
    )
    counts = result["data"].get("counts", {})
    shown = say(
        "cli.summary.preview",
        campaign=campaign_id,
        version=result["version"],
        date=f"{result['summary_date']:%d.%m.%Y}",
        state=state,
        waiting=result["waiting"],
    )
    typer.echo(shown)
    if counts:
        figures = ", ".join(f"{k} {v}" for k, v in counts.items())
        typer.echo(say("cli.summary.figures", figures=figures))
    typer.echo(f"{say('cli.summary.files', pdf=pdf)}\n{say('cli.summary.html', html=html)}")


@app.command("send")
def send_command(
    campaign_id: str = typer.Argument(..., metavar="KAMPAGNE"),
    as_of: str | None = AS_OF,
    close_collection: bool = typer.Option(
        False, "--close-collection", help="Informationserhebung vorher schließen."
    ),
    when_due: bool = typer.Option(
        False, "--when-due", help="Nur am geplanten Tag versenden, wie der Zeitplan."
    ),
) -> None:
    """Versendet die Zusammenfassung jetzt (auch vor dem geplanten Tag; nie ohne Freigabe)."""
    from efa_rollout.db import get_engine
    from efa_rollout.services.summary_release import release_summary

    release = release_summary(
        get_engine(),
        campaign_id,
        now=_now(as_of),
        actor=_actor(),
        force=not when_due,
        close_collection=close_collection,
    )
    typer.echo(say("cli.summary.released", campaign=campaign_id, message=release.message))
    if release.sent:
        typer.echo(say("cli.summary.deliver_with"))


def _decide(campaign_id: str, as_of: str | None, *, approve: bool, note: str | None) -> None:
    from efa_rollout.db import get_engine, session_scope
    from efa_rollout.services.summary_release import decide, release_summary

    now = _now(as_of)
    with session_scope() as session:
        decide(session, campaign_id, approve=approve, note=note, actor=_actor(), now=now)
    if not approve:
        typer.echo(say("cli.summary.rejected_note", campaign=campaign_id, note=note))
        return
    release = release_summary(get_engine(), campaign_id, now=now, actor=_actor())
    typer.echo(say("cli.summary.approved_note", campaign=campaign_id, message=release.message))


@app.command("approve")
def approve_command(
    campaign_id: str = typer.Argument(..., metavar="KAMPAGNE"),
    note: str | None = typer.Option(None, "--note", help="Anmerkung (wird protokolliert)."),
    as_of: str | None = AS_OF,
) -> None:
    """Gibt die Zusammenfassung frei; ist sie fällig, geht sie gleich in den Postausgang."""
    _decide(campaign_id, as_of, approve=True, note=note)


@app.command("reject")
def reject_command(
    campaign_id: str = typer.Argument(..., metavar="KAMPAGNE"),
    note: str = typer.Option(..., "--note", help="Begründung (wird protokolliert)."),
    as_of: str | None = AS_OF,
) -> None:
    """Lehnt die Zusammenfassung mit Begründung ab; sie wird nicht versandt."""
    _decide(campaign_id, as_of, approve=False, note=note)
