"""Units of work of the campaign engine: one Prefect task per batch of enrolments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from prefect import task

from efa_rollout.services.orchestration import BatchRunner
from efa_rollout.services.progression import AdvanceOptions, BatchResult


@task(name="enrol-batch", retries=2, retry_delay_seconds=[2, 10])
def enrol_batch(
    campaign_id: str, ags_list: Sequence[str], now: datetime, actor: str
) -> BatchResult:
    """Enrol a batch of municipalities (skips those already enrolled)."""
    return BatchRunner().enrol(campaign_id, ags_list, now, actor)


@task(name="queue-information-requests", retries=2, retry_delay_seconds=[2, 10])
def queue_information_requests(campaign_id: str, ids: Sequence[int], now: datetime) -> BatchResult:
    """Queue the information request for a batch (idempotent per municipality)."""
    return BatchRunner().queue_information_requests(campaign_id, ids, now)


@task(name="advance-batch", retries=2, retry_delay_seconds=[2, 10])
def advance_batch(
    campaign_id: str, ids: Sequence[int], now: datetime, options: AdvanceOptions
) -> BatchResult:
    """Apply the due transitions of a batch of enrolments."""
    return BatchRunner().advance(campaign_id, ids, now, options)
