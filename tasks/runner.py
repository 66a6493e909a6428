"""The orchestration's batches as Prefect tasks: what the flows pass as the runner."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from prefect import tags

from efa_rollout.prefect_api import campaign_tags
from efa_rollout.services.orchestration import BatchRunner
from efa_rollout.services.progression import AdvanceOptions, BatchResult
from efa_rollout.services.reminder_report import ReminderReport
from tasks import engine, reminders, summary


class TaskRunner(BatchRunner):
    """Runs every batch as a Prefect task run (retries in the task decorators)."""

    def campaign_scope(
        self, campaign_id: str, service_key: str | None
    ) -> AbstractContextManager[Any]:
        """The campaign's tags on every task run inside."""
        return tags(*campaign_tags(campaign_id, service_key))

    def enrol(
        self, campaign_id: str, ags_list: Sequence[str], now: datetime, actor: str
    ) -> BatchResult:
        """The enrol-batch task."""
        return engine.enrol_batch(campaign_id, ags_list, now, actor)

    def queue_information_requests(
        self, campaign_id: str, ids: Sequence[int], now: datetime
    ) -> BatchResult:
        """The queue-information-requests task."""
        return engine.queue_information_requests(campaign_id, ids, now)

    def advance(
        self, campaign_id: str, ids: Sequence[int], now: datetime, options: AdvanceOptions
    ) -> BatchResult:
        """The advance-batch task, named after the campaign."""
        # The task runs carry the campaign in their name, not as tags: a task run with a tag set
        # new to the process first sets up Prefect's tag-concurrency client (~1 s each with
        # Prefect 3.8.8), i.e. ~1 s per campaign and tick; 16 campaigns: 20 s instead of 5 s.
        task = engine.advance_batch.with_options(task_run_name=f"advance-batch · {campaign_id}")
        return task(campaign_id, ids, now, options)

    def remind(
        self, campaign_id: str, ids: Sequence[int], now: datetime, dry_run: bool, actor: str
    ) -> ReminderReport:
        """The remind-batch task."""
        return reminders.remind_batch(campaign_id, ids, now, dry_run, actor)

    def close_collection(self, campaign_id: str, now: datetime, actor: str) -> bool:
        """The close-collection task."""
        return summary.close_collection(campaign_id, now, actor)

    def build_and_queue_summary(
        self, campaign_id: str, now: datetime, actor: str
    ) -> dict[str, Any]:
        """The build-and-queue-summary task."""
        return summary.build_and_queue_summary(campaign_id, now, actor)
