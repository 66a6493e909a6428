"""Unit of work of the outbox delivery: one Prefect task per batch of messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import task

from efa_rollout.mail.delivery import deliver
from tasks.mail_rate import shared_rate_limiter


@task(name="deliver-batch", retries=1, retry_delay_seconds=[10])
def deliver_batch(as_of: datetime | None, batch_size: int) -> dict[str, Any]:
    """Deliver up to BATCH_SIZE due messages over a pool of reused connections."""
    report = deliver(now=as_of, limit=batch_size, rate_limiter=shared_rate_limiter())
    return {
        "attempted": report.attempted,
        "rows": report.rows(),
        "summary": report.summary(),
        "transport": report.transport,
        "recovered_requeued": report.recovered_requeued,
        "recovered_unknown": report.recovered_unknown,
        "cancelled_late": report.cancelled_late,
        "seconds": round(report.seconds, 3),
    }
