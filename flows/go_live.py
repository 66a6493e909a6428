"""Go-live: mark municipalities live on their date, queue the go-live notice, open after-care."""

from __future__ import annotations

from datetime import datetime

from prefect import flow

from efa_rollout.services.clock import resolve_as_of
from flows._advance import advance_campaigns
from flows._prefect import flow_parameter, run_name


def _name() -> str:
    return run_name(
        flow_parameter("campaign") or "alle-kampagnen", "go-live", flow_parameter("as_of")
    )


@flow(name="go-live", flow_run_name=_name, log_prints=True)
def go_live(
    campaign: str | None = None, as_of: datetime | None = None
) -> dict[str, dict[str, object]]:
    """Take every municipality whose go-live date has come live (and what follows); idempotent."""
    now = resolve_as_of(as_of)
    return advance_campaigns(campaign, now, action="go-live", go_live=True)
