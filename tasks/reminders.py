"""The reminder task: one Prefect task run per batch of reminder candidates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from prefect import task

from efa_rollout.services.orchestration import BatchRunner
from efa_rollout.services.reminder_report import ReminderReport


@task(name="remind-batch", retries=2, retry_delay_seconds=[2, 10])
def remind_batch(
    campaign_id: str, ids: Sequence[int], now: datetime, dry_run: bool, actor: str
) -> ReminderReport:
    """Decide and queue reminders for one batch of enrolments."""
    return BatchRunner().remind(campaign_id, ids, now, dry_run, actor)
