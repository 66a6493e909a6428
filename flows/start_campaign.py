"""Start a campaign: enrol the targeted municipalities and queue the information request."""

from __future__ import annotations

from datetime import datetime

from prefect import flow
from pydantic import BaseModel, Field

from efa_rollout.services import orchestration
from efa_rollout.services.clock import local_day, resolve_as_of
from efa_rollout.texts import say
from flows._prefect import (
    Progress,
    flow_parameter,
    publish_markdown,
    run_name,
    tag_run_with_campaign,
)
from tasks.runner import TaskRunner


class StartCampaignInput(BaseModel):
    """What the coordinator fills in to start a campaign (a form in the Prefect UI)."""

    campaign: str = Field(
        ...,
        min_length=2,
        max_length=80,
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        title="Kampagne",
        description="Name der Kampagne, z. B. ewa-ostalbkreis (efa campaign list)",
    )
    as_of: datetime | None = Field(
        None,
        title="Stichzeitpunkt",
        description="Leer lassen für jetzt; für Simulationen ein Datum",
    )
    refresh_definition: bool = Field(
        False,
        title="Definition neu übernehmen",
        description="Nach einem korrigierten Fehler in der Definitionsdatei; nur solange "
        "keine Mail der Kampagne im Postausgang steht",
    )


def _name() -> str:
    params = flow_parameter("params")
    campaign = (
        params.campaign
        if isinstance(params, StartCampaignInput)
        else (params or {}).get("campaign", "?")
    )
    as_of = params.as_of if isinstance(params, StartCampaignInput) else (params or {}).get("as_of")
    return run_name(campaign, "start", as_of)


@flow(name="start-campaign", flow_run_name=_name, log_prints=True)
def start_campaign(params: StartCampaignInput) -> dict[str, int]:
    """Enrol the campaign's municipalities and queue the information request to each; idempotent."""
    tag_run_with_campaign(params.campaign)
    now = resolve_as_of(params.as_of)
    progress = Progress(
        f"{params.campaign}-start-progress",
        say("flow.start_campaign.progress", campaign=params.campaign),
    )
    figures = orchestration.start_campaign(
        params.campaign,
        now,
        runner=TaskRunner(),
        refresh_definition=params.refresh_definition,
        progress=lambda _campaign, done, total: progress.update(done, total),
    )
    publish_markdown(
        f"{params.campaign}-start-summary",
        "\n".join(
            [
                say("flow.start_campaign.title", campaign=params.campaign, day=local_day(now)),
                "",
                say("flow.start_campaign.enrolled", count=figures["enrolled"]),
                say("flow.start_campaign.enrolments", count=figures["enrolments"]),
                say("flow.start_campaign.queued", count=figures["mails_queued"]),
            ]
        ),
        say("flow.start_campaign.summary"),
    )
    return figures
