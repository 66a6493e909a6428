"""`efa campaign start`, `tick` and `go-live`: the commands that run a campaign's flows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from efa_rollout.cli._common import parse_as_of
from efa_rollout.cli._flows import NO_WAIT
from efa_rollout.texts import say

if TYPE_CHECKING:
    from models import Campaign

NO_PREFECT = typer.Option(
    False,
    "--no-prefect",
    help="Ohne Prefect ausführen (schnell, aber nicht in der Prefect-Oberfläche sichtbar).",
)
AS_OF = typer.Option(
    None, "--as-of", help="Stichzeitpunkt (JJJJ-MM-TT oder ISO-Zeitpunkt) für Simulationen."
)


def start_command(
    campaign_id: str = typer.Argument(..., metavar="KAMPAGNE"),
    as_of: str | None = AS_OF,
    no_prefect: bool = NO_PREFECT,
    no_wait: bool = NO_WAIT,
    refresh_definition: bool = typer.Option(
        False,
        "--refresh-definition",
        help="Definitionsdatei neu übernehmen (nur solange keine Mail der Kampagne existiert)",
    ),
) -> None:
    """Startet eine Kampagne: Gemeinden aufnehmen, Informationsanfrage in den Postausgang."""
    from efa_rollout.db import session_scope
    from efa_rollout.services import enrolment, lookup

    now = parse_as_of(as_of) or datetime.now(UTC)
    with session_scope() as session:
        campaign = lookup.get_campaign(session, campaign_id)
        tags = _tags(campaign)
    if no_prefect:
        from efa_rollout.services import orchestration

        figures = orchestration.start_campaign(
            campaign_id, now, refresh_definition=refresh_definition
        )
    else:
        from efa_rollout.cli._flows import run_flow

        # A mapping: Prefect validates it into the flow's StartCampaignInput (here or served).
        figures = run_flow(
            "kampagne-starten",
            flow_tags=tags,
            wait=not no_wait,
            params={
                "campaign": campaign_id,
                "as_of": now,
                "refresh_definition": refresh_definition,
            },
        )
    if figures is None:  # --no-wait, or the server kept no result
        return
    started = say(
        "cli.campaign_run.started",
        campaign=campaign_id,
        enrolments=figures["enrolments"],
        enrolled=figures["enrolled"],
        queued=figures["mails_queued"],
    )
    typer.echo(started)
    with session_scope() as session:
        missing = enrolment.without_information_request(session, campaign_id)
    if missing:
        hint = say(
            "cli.campaign_run.without_contact",
            count=len(missing),
            names=", ".join(missing[:5]),
            more=" …" if len(missing) > 5 else "",
        )
        typer.echo(hint)
    typer.echo(say("cli.campaign_run.deliver_with"))


def _tags(campaign: Campaign) -> list[str]:
    from efa_rollout.prefect_api import campaign_tags  # not orchestration: ~0.4 s of imports

    return campaign_tags(campaign.id, campaign.definition.get("service_key"))


def _advance(
    campaign_id: str | None,
    as_of: str | None,
    no_prefect: bool,
    *,
    go_live: bool,
    wait: bool = True,
) -> None:
    from efa_rollout.db import session_scope

    now = parse_as_of(as_of) or datetime.now(UTC)
    action = "go-live" if go_live else "tick"
    if no_prefect:
        from efa_rollout.services import orchestration

        figures = orchestration.advance_campaigns(campaign_id, now, go_live=go_live)
    else:
        from efa_rollout.cli._flows import run_flow
        from efa_rollout.services import lookup

        tags = None
        if campaign_id:
            with session_scope() as session:
                tags = _tags(lookup.get_campaign(session, campaign_id))
        figures = run_flow(
            action,
            flow_tags=tags,
            wait=wait,
            campaign=campaign_id,
            as_of=now,
        )
        if figures is None:  # --no-wait, or the server kept no result
            return
    if not figures:
        typer.echo(say("cli.campaign_run.no_campaign"))
    for cid, fig in figures.items():
        line = say(
            "cli.campaign_run.figures",
            campaign=cid,
            action=action,
            enrolments=fig["enrolments"],
            changes=fig["changes"],
            queued=fig["mails_queued"],
            blocked=fig["blocked"],
        )
        typer.echo(line)
        if not fig["changes"]:
            reasons = _why_no_change(cid, now)
            if reasons:
                typer.echo(f"  {say('cli.campaign_run.why_none', reasons='; '.join(reasons))}")
            hint = _summary_hint(cid, reasons)
            if hint:
                typer.echo(f"  {hint}")
        for row in fig["change_list"][:20]:
            change = say(
                "cli.campaign_run.change",
                ags=row["AGS"],
                name=row["Gemeinde"],
                before=row["von"],
                after=row["nach"],
                reason=row["Grund"],
            )
            typer.echo(f"  {change}")
        if len(fig["change_list"]) > 20:
            typer.echo(f"  {say('cli.campaign_run.more', rest=len(fig['change_list']) - 20)}")


def tick_command(
    campaign_id: str | None = typer.Argument(None, metavar="[KAMPAGNE]"),
    as_of: str | None = AS_OF,
    no_prefect: bool = NO_PREFECT,
    no_wait: bool = NO_WAIT,
) -> None:
    """Prüft alle Gemeinden zum Stichzeitpunkt und führt fällige Stufenwechsel aus."""
    _advance(campaign_id, as_of, no_prefect, go_live=False, wait=not no_wait)


def go_live_command(
    campaign_id: str | None = typer.Argument(None, metavar="[KAMPAGNE]"),
    as_of: str | None = AS_OF,
    no_prefect: bool = NO_PREFECT,
    no_wait: bool = NO_WAIT,
) -> None:
    """Schaltet Gemeinden an ihrem Go-Live-Datum live und stellt die Go-Live-Mitteilung ein."""
    _advance(campaign_id, as_of, no_prefect, go_live=True, wait=not no_wait)


def _summary_hint(campaign_id: str, reasons: list[str]) -> str | None:
    """The command that moves municipalities waiting for the summary, if any wait for it."""
    text = " ".join(reasons)
    approval = say("cli.campaign_run.waits_for_approval")
    if approval in text or say("cli.campaign_run.waits_for_revision") in text:
        return say("cli.campaign_run.approve_with", campaign=campaign_id)
    if say("cli.campaign_run.waits_for_sending") in text:
        return say("cli.campaign_run.send_with", campaign=campaign_id)
    return None


def _why_no_change(campaign_id: str, now: datetime) -> list[str]:
    """Why a run moved nobody: what the municipalities wait for, most frequent first."""
    from efa_rollout.db import session_scope
    from efa_rollout.services.clock import local_today
    from efa_rollout.services.waiting import campaign_waits

    with session_scope() as session:
        waits = campaign_waits(session, campaign_id, today=local_today(now))
    counts: dict[str, int] = {}
    for row in waits:
        counts[row.waiting.text] = counts.get(row.waiting.text, 0) + 1
    ranked = sorted(counts.items(), key=lambda x: -x[1])[:5]
    return [say("cli.campaign_run.why_count", count=n, what=what) for what, n in ranked]
