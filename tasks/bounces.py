"""Unit of work of the bounce processing: one Prefect task per pass over the mailbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import task

from efa_rollout.db import session_scope
from efa_rollout.services.bounces import process_bounces, unreachable_municipalities


@task(name="process-bounces", retries=1, retry_delay_seconds=[30])
def process_bounce_mailbox(as_of: datetime | None, dry_run: bool) -> dict[str, Any]:
    """Read and apply every report in the bounce mailbox once (safe to retry: idempotent)."""
    run = process_bounces(now=as_of, dry_run=dry_run)
    return {
        "summary": run.summary(),
        "seen": run.seen,
        "counts": dict(run.counts),
        "moved": run.moved,
        "outcomes": run.outcomes,
        "seconds": round(run.seconds, 3),
    }


@task(name="unreachable-municipalities")
def list_unreachable(as_of: datetime) -> list[dict[str, Any]]:
    """The municipalities without a working contact, per running campaign."""
    with session_scope() as session:
        return unreachable_municipalities(session, as_of=as_of)
