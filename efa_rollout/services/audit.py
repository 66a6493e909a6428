"""The event log: every row written to the append-only audit trail is built here."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def event_row(
    campaign_id: str,
    ags: str,
    enrolment_id: int | None,
    actor: str,
    now: datetime,
    kind: str,
    from_stage: str | None,
    to_stage: str | None,
    reason: str | None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "at": now,
        "campaign_id": campaign_id,
        "ags": ags,
        "enrolment_id": enrolment_id,
        "actor": actor,
        "kind": kind,
        "from_stage": str(from_stage) if from_stage else None,
        "to_stage": str(to_stage) if to_stage else None,
        "reason": reason,
        "data": data or {},
    }
