"""The reminder task: one Prefect task run per batch of reminder candidates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from prefect import task

from efa_rollout.db import get_engine
from efa_rollout.services.reminders import ReminderReport, process_ids


@task(name="remind-batch", retries=2, retry_delay_seconds=[2, 10])
def remind_batch(
    campaign_id: str, ids: Sequence[int], now: datetime, dry_run: bool, actor: str
) -> ReminderReport:
    """Decide and queue reminders for one batch of enrolments."""
    return process_ids(get_engine(), campaign_id, list(ids), now=now, dry_run=dry_run, actor=actor)
