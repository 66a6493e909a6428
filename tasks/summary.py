"""Units of work of the summary: close the collection, build and queue the summary."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import task

from efa_rollout.services.orchestration import BatchRunner


@task(name="close-collection")
def close_collection(campaign: str, now: datetime, actor: str) -> bool:
    """Close the information collection of CAMPAIGN (once; logged as an event)."""
    return BatchRunner().close_collection(campaign, now, actor)


@task(name="build-and-queue-summary", retries=2, retry_delay_seconds=[2, 10])
def build_and_queue_summary(campaign: str, now: datetime, actor: str) -> dict[str, Any]:
    """Build the summary and queue it to those who have not had this version."""
    return BatchRunner().build_and_queue_summary(campaign, now, actor)
