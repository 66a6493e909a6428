"""Start a campaign: enrol the targeted municipalities and queue the information request."""

from __future__ import annotations

from datetime import datetime

from prefect import flow, tags
from pydantic import BaseModel, Field

from efa_rollout.db import get_engine, session_scope
from efa_rollout.services import campaigns, lookup, progression
from efa_rollout.services.batches import chunks
from efa_rollout.services.clock import local_day, resolve_as_of
from efa_rollout.settings import get_settings
from flows._prefect import Progress, campaign_tags, flow_parameter, publish_markdown, run_name
from tasks.engine import enrol_batch, queue_information_requests


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
    now = resolve_as_of(params.as_of)
    actor = f"start-campaign ({get_settings().actor})"
    engine = get_engine()
    campaigns.mark_started(engine, params.campaign, now=now, actor=actor)
    with session_scope(engine) as session:
        campaign = lookup.get_campaign(session, params.campaign)
        pending = campaigns.pending_enrolment_ags(session, campaign)
        service_key = campaign.definition.get("service_key")
    result = progression.BatchResult()
    progress = Progress(f"{params.campaign}-start-progress", f"{params.campaign}: Start")
    with tags(*campaign_tags(params.campaign, service_key)):
        for batch in chunks(pending):
            result.merge(enrol_batch(params.campaign, batch, now, actor))
        with session_scope(engine) as session:
            ids = lookup.enrolment_ids(session, params.campaign)
        done = 0
        for batch in chunks(ids):
            result.merge(queue_information_requests(params.campaign, batch, now))
            done += len(batch)
            progress.update(done, len(ids))
    progress.update(len(ids), len(ids))
    publish_markdown(
        f"{params.campaign}-start-summary",
        "\n".join(
            [
                f"# {params.campaign} · start · {local_day(now)}",
                "",
                f"- neu aufgenommene Gemeinden: **{result.enrolled}**",
                f"- teilnehmende Gemeinden insgesamt: **{len(ids)}**",
                f"- Informationsanfragen in den Postausgang gestellt: **{result.mails_queued}**",
            ]
        ),
        "Kampagnenstart",
    )
    return {
        "enrolled": result.enrolled,
        "enrolments": len(ids),
        "mails_queued": result.mails_queued,
    }
