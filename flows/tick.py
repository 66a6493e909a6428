"""The tick: evaluate every enrolment as of a moment and apply the due transitions."""

from __future__ import annotations

from datetime import datetime

from prefect import flow

from efa_rollout.services.clock import resolve_as_of
from flows._advance import advance_campaigns
from flows._prefect import flow_parameter, run_name


def _name() -> str:
    return run_name(flow_parameter("campaign") or "alle-kampagnen", "tick", flow_parameter("as_of"))


@flow(name="tick", flow_run_name=_name, log_prints=True)
def tick(
    campaign: str | None = None, as_of: datetime | None = None
) -> dict[str, dict[str, object]]:
    """Advance CAMPAIGN (or every running campaign) to AS_OF; idempotent."""
    now = resolve_as_of(as_of)
    return advance_campaigns(campaign, now, action="tick", go_live=False)
