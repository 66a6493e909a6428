"""`efa enrolment`: coordinator overrides for one municipality in one campaign."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from efa_rollout.domain.stages import STATUS_LABELS, EnrolmentStatus, Stage
from efa_rollout.errors import UserError
from efa_rollout.texts import say

app = typer.Typer(
    help="Teilnahme einer Gemeinde steuern (Stufe setzen, pausieren, …).", no_args_is_help=True
)

CAMPAIGN = typer.Argument(..., metavar="KAMPAGNE")
AGS = typer.Argument(..., metavar="AGS")
REASON = typer.Option(..., "--reason", "-r", help="Begründung (steht im Ereignisprotokoll).")


@app.command("set-stage")
def set_stage_command(
    campaign_id: str = CAMPAIGN,
    ags: str = AGS,
    stage: str = typer.Argument(..., metavar="STUFE"),
    reason: str = REASON,
) -> None:
    """Setzt eine Gemeinde von Hand in eine Stufe."""
    from efa_rollout.db import session_scope
    from efa_rollout.services import lookup, overrides
    from efa_rollout.settings import get_settings

    try:
        target = Stage(stage)
    except ValueError:
        allowed = ", ".join(s.value for s in Stage)
        raise UserError(say("cli.enrolment.stage_unknown", stage=stage, allowed=allowed)) from None
    with session_scope() as session:
        enrolment = lookup.find_enrolment(session, campaign_id, ags)
        before = Stage(enrolment.stage)
        overrides.set_stage(
            session,
            enrolment,
            target,
            reason=reason,
            actor=get_settings().actor,
            now=datetime.now(UTC),
        )
    typer.echo(say("cli.enrolment.stage_set", ags=ags, before=before.label, after=target.label))


def _status(campaign_id: str, ags: str, status: EnrolmentStatus, reason: str) -> None:
    from efa_rollout.db import session_scope
    from efa_rollout.services import lookup, overrides
    from efa_rollout.settings import get_settings

    with session_scope() as session:
        enrolment = lookup.find_enrolment(session, campaign_id, ags)
        event = overrides.set_status(
            session,
            enrolment,
            status,
            reason=reason,
            actor=get_settings().actor,
            now=datetime.now(UTC),
        )
    label = STATUS_LABELS[status]
    if event is None:
        typer.echo(say("cli.enrolment.unchanged", ags=ags, status=label))
    else:
        typer.echo(say("cli.enrolment.status_set", ags=ags, status=label))


@app.command("pause")
def pause_command(campaign_id: str = CAMPAIGN, ags: str = AGS, reason: str = REASON) -> None:
    """Pausiert eine Gemeinde: keine Stufenwechsel, keine Erinnerungen."""
    _status(campaign_id, ags, EnrolmentStatus.PAUSED, reason)


@app.command("resume")
def resume_command(campaign_id: str = CAMPAIGN, ags: str = AGS, reason: str = REASON) -> None:
    """Setzt eine pausierte oder ausgenommene Gemeinde fort."""
    _status(campaign_id, ags, EnrolmentStatus.ACTIVE, reason)


@app.command("exclude")
def exclude_command(campaign_id: str = CAMPAIGN, ags: str = AGS, reason: str = REASON) -> None:
    """Markiert eine Gemeinde als »nicht zutreffend« (nimmt nicht teil)."""
    _status(campaign_id, ags, EnrolmentStatus.NOT_APPLICABLE, reason)
