"""The one orchestration path: whole-campaign loops that run each batch through a runner.

`BatchRunner` runs a batch as a plain call (the CLI's ``--no-prefect``, tests, benchmarks);
`tasks.runner.TaskRunner` runs the same batches as Prefect tasks (the flows). The loops here —
start, advance (tick and go-live), reminders, the summary — exist once; flows add artifacts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from efa_rollout.db import get_engine, session_scope
from efa_rollout.services import (
    campaigns,
    enrolment,
    lookup,
    progression,
    reminders,
    start_check,
    summary,
)
from efa_rollout.services.batches import chunks
from efa_rollout.services.clock import resolve_as_of
from efa_rollout.services.progression import AdvanceOptions, BatchResult
from efa_rollout.services.reminder_report import ReminderReport
from efa_rollout.settings import get_settings

#: Called after each batch with (campaign id, done, total).
Progress = Callable[[str, int, int], None]


class BatchRunner:
    """Runs every batch as a plain function call in its own transaction."""

    def __init__(self, engine: Engine | None = None) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        """The engine the batches write to (the configured one unless given)."""
        return self._engine or get_engine()

    def campaign_scope(
        self, campaign_id: str, service_key: str | None
    ) -> AbstractContextManager[Any]:
        """What surrounds a campaign's batches (Prefect: its tags); nothing here."""
        return nullcontext()

    def enrol(
        self, campaign_id: str, ags_list: Sequence[str], now: datetime, actor: str
    ) -> BatchResult:
        """Enrol a batch of municipalities (skips those already enrolled)."""
        return enrolment.enrol_batch(self.engine, campaign_id, list(ags_list), now=now, actor=actor)

    def queue_information_requests(
        self, campaign_id: str, ids: Sequence[int], now: datetime
    ) -> BatchResult:
        """Queue the information request for a batch (idempotent per municipality)."""
        return enrolment.queue_information_requests(self.engine, campaign_id, list(ids), now=now)

    def advance(
        self, campaign_id: str, ids: Sequence[int], now: datetime, options: AdvanceOptions
    ) -> BatchResult:
        """Apply the due transitions of a batch of enrolments."""
        return progression.advance_batch(
            self.engine, campaign_id, list(ids), now=now, options=options
        )

    def remind(
        self, campaign_id: str, ids: Sequence[int], now: datetime, dry_run: bool, actor: str
    ) -> ReminderReport:
        """Decide and queue reminders for one batch of enrolments."""
        return reminders.process_ids(
            self.engine, campaign_id, list(ids), now=now, dry_run=dry_run, actor=actor
        )

    def close_collection(self, campaign_id: str, now: datetime, actor: str) -> bool:
        """Close the information collection of CAMPAIGN_ID (once; logged as an event)."""
        with session_scope(self.engine) as session:
            return campaigns.close_collection(session, campaign_id, now=now, actor=actor)

    def build_and_queue_summary(
        self, campaign_id: str, now: datetime, actor: str
    ) -> dict[str, Any]:
        """Build the summary and queue it to those who have not had this version."""
        return summary.distribute_summary(self.engine, campaign_id, now=now, actor=actor)


def _actor(step: str) -> str:
    return f"{step} ({get_settings().actor})"


def _service_key(campaign: Any) -> str | None:
    return (campaign.definition or {}).get("service_key")


# --- start ------------------------------------------------------------------------------------


def start_campaign(
    campaign_id: str,
    now: datetime,
    *,
    runner: BatchRunner | None = None,
    progress: Progress | None = None,
    refresh_definition: bool = False,
) -> dict[str, int]:
    """Check every mail renders, mark CAMPAIGN_ID started, enrol, queue the requests.

    REFRESH_DEFINITION re-takes the definition file first (only while no mail exists).
    """
    runner = runner or BatchRunner()
    actor = _actor("start-campaign")
    start_check.check_before_start(
        runner.engine, campaign_id, now, refresh=refresh_definition, actor=actor
    )
    campaigns.mark_started(runner.engine, campaign_id, now=now, actor=actor)
    with session_scope(runner.engine) as session:
        campaign = lookup.get_campaign(session, campaign_id)
        pending = campaigns.pending_enrolment_ags(session, campaign)
        service_key = _service_key(campaign)
    result = BatchResult()
    with runner.campaign_scope(campaign_id, service_key):
        for batch in chunks(pending):
            result.merge(runner.enrol(campaign_id, batch, now, actor))
        with session_scope(runner.engine) as session:
            ids = lookup.enrolment_ids(session, campaign_id)
        done = 0
        for id_batch in chunks(ids):
            result.merge(runner.queue_information_requests(campaign_id, id_batch, now))
            done += len(id_batch)
            if progress:
                progress(campaign_id, done, len(ids))
    if progress:
        progress(campaign_id, len(ids), len(ids))
    return {
        "enrolled": result.enrolled,
        "enrolments": len(ids),
        "mails_queued": result.mails_queued,
    }


# --- advance (tick, go-live) ------------------------------------------------------------------


@dataclass
class Advanced:
    """What advancing one campaign did."""

    campaign_id: str
    enrolments: int
    result: BatchResult = field(default_factory=BatchResult)

    def figures(self) -> dict[str, Any]:
        """The figures flows return and the CLI prints."""
        return {
            "enrolments": self.enrolments,
            "changes": len(self.result.changes),
            "mails_queued": self.result.mails_queued,
            "blocked": len(self.result.blocked),
            "change_list": [c.as_row() for c in self.result.changes],
        }


def advance_campaign(
    campaign_id: str,
    now: datetime,
    *,
    actor: str,
    include_go_live: bool,
    send_latest_summary: bool = True,
    runner: BatchRunner | None = None,
    progress: Progress | None = None,
) -> Advanced:
    """Apply the due transitions to every enrolment of CAMPAIGN_ID, batch by batch."""
    runner = runner or BatchRunner()
    with session_scope(runner.engine) as session:
        lookup.get_campaign(session, campaign_id)
        ids = lookup.enrolment_ids(session, campaign_id)
    advanced = Advanced(campaign_id, len(ids))
    options = AdvanceOptions(actor, include_go_live, send_latest_summary)
    done = 0
    for batch in chunks(ids):
        advanced.result.merge(runner.advance(campaign_id, batch, now, options))
        done += len(batch)
        if progress:
            progress(campaign_id, done, len(ids))
    if not ids and progress:
        progress(campaign_id, 0, 0)
    return advanced


def advance_campaigns(
    campaign_id: str | None,
    now: datetime,
    *,
    go_live: bool,
    runner: BatchRunner | None = None,
    progress: Progress | None = None,
    on_campaign: Callable[[Advanced], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """The tick (or go-live) over CAMPAIGN_ID or every running campaign; figures per campaign."""
    runner = runner or BatchRunner()
    actor = _actor("go-live" if go_live else "tick")
    with session_scope(runner.engine) as session:
        campaign_ids = lookup.running_campaign_ids(session, campaign_id)
    figures: dict[str, dict[str, Any]] = {}
    for cid in campaign_ids:
        advanced = advance_campaign(
            cid, now, actor=actor, include_go_live=go_live, runner=runner, progress=progress
        )
        if on_campaign:
            on_campaign(advanced)
        figures[cid] = advanced.figures()
    return figures


# --- reminders --------------------------------------------------------------------------------


def remind_campaign(
    campaign_id: str,
    now: datetime,
    *,
    dry_run: bool = False,
    actor: str = reminders.DEFAULT_ACTOR,
    runner: BatchRunner | None = None,
) -> ReminderReport:
    """Run the reminder policy over one campaign, one transaction (or task run) per batch."""
    runner = runner or BatchRunner()
    with session_scope(runner.engine) as session:
        campaign = reminders.campaigns_to_remind(session, campaign_id)[0]
        note = reminders.not_running_note(campaign)
        service_key = lookup.campaign_definition(campaign).service_key
        batches = [] if note else reminders.candidate_id_batches(session, campaign)
    report = ReminderReport(campaign_id, dry_run=dry_run, note=note)
    with runner.campaign_scope(campaign_id, service_key):
        for ids in batches:
            report.add(runner.remind(campaign_id, ids, now, dry_run, actor))
    return report


def remind(
    *,
    campaign_id: str | None = None,
    as_of: datetime | None = None,
    dry_run: bool = False,
    actor: str = reminders.DEFAULT_ACTOR,
    engine: Engine | None = None,
    runner: BatchRunner | None = None,
    on_campaign: Callable[[ReminderReport], None] | None = None,
) -> list[ReminderReport]:
    """Remind across the running campaigns (or the one named) as of AS_OF."""
    runner = runner or BatchRunner(engine)
    now = resolve_as_of(as_of)
    with session_scope(runner.engine) as session:
        ids = [c.id for c in reminders.campaigns_to_remind(session, campaign_id)]
    reports = []
    for cid in ids:
        report = remind_campaign(cid, now, dry_run=dry_run, actor=actor, runner=runner)
        if on_campaign:
            on_campaign(report)
        reports.append(report)
    return reports


# --- the summary ------------------------------------------------------------------------------


def distribute_summary(
    campaign_id: str,
    now: datetime,
    *,
    close_collection: bool = False,
    runner: BatchRunner | None = None,
) -> dict[str, Any]:
    """Close collection (optional), bring stages up to date, build and queue, advance again.

    The summary flow decides which version goes out, so its advances never re-send the latest.
    """
    runner = runner or BatchRunner()
    actor = _actor("zusammenfassung")
    with session_scope(runner.engine) as session:
        service_key = _service_key(lookup.get_campaign(session, campaign_id))

    def advance() -> int:
        done = advance_campaign(
            campaign_id,
            now,
            actor=actor,
            include_go_live=False,
            send_latest_summary=False,
            runner=runner,
        )
        return len(done.result.changes)

    with runner.campaign_scope(campaign_id, service_key):
        closed = runner.close_collection(campaign_id, now, actor) if close_collection else False
        advance()
        result = runner.build_and_queue_summary(campaign_id, now, actor)
        moved = advance()
    return {**result, "collection_closed": closed, "stage_changes": moved}
