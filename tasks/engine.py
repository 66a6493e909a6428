"""Units of work of the campaign engine: one Prefect task per batch of enrolments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from prefect import task

from efa_rollout.db import get_engine
from efa_rollout.services import enrolment, progression


@task(name="enrol-batch", retries=2, retry_delay_seconds=[2, 10])
def enrol_batch(
    campaign_id: str, ags_list: Sequence[str], now: datetime, actor: str
) -> progression.BatchResult:
    """Enrol a batch of municipalities (skips those already enrolled)."""
    return enrolment.enrol_batch(get_engine(), campaign_id, list(ags_list), now=now, actor=actor)


@task(name="queue-information-requests", retries=2, retry_delay_seconds=[2, 10])
def queue_information_requests(
    campaign_id: str, ids: Sequence[int], now: datetime
) -> progression.BatchResult:
    """Queue the information request for a batch (idempotent per municipality)."""
    return enrolment.queue_information_requests(get_engine(), campaign_id, list(ids), now=now)


@task(name="advance-batch", retries=2, retry_delay_seconds=[2, 10])
def advance_batch(
    campaign_id: str, ids: Sequence[int], now: datetime, actor: str, include_go_live: bool
) -> progression.BatchResult:
    """Apply the due transitions of a batch of enrolments."""
    return progression.advance_batch(
        get_engine(), campaign_id, list(ids), now=now, actor=actor, include_go_live=include_go_live
    )
