"""The audit trail's vocabulary: the kinds of events, and event rows for bulk inserts.

Every place that writes an ``Event`` names its kind from `EventKind` (stored as its value).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    """What an event records; stored as its value in ``Event.kind``."""

    CAMPAIGN_CREATED = "campaign_created"
    CAMPAIGN_STARTED = "campaign_started"
    DEFINITION_REFRESHED = "definition_refreshed"
    CAMPAIGN_CLOSED = "campaign_closed"
    CAMPAIGN_CANCELLED = "campaign_cancelled"
    CAMPAIGN_DELETED = "campaign_deleted"
    COLLECTION_CLOSED = "collection_closed"
    ENROLLED = "enrolled"
    STAGE_CHANGED = "stage_changed"
    STATUS_CHANGED = "status_changed"
    ANSWERS_SAVED = "answers_saved"
    ANSWERS_SUBMITTED = "answers_submitted"
    CHECKLIST_ITEM_DONE = "checklist_item_done"
    CHECKLIST_ITEM_REOPENED = "checklist_item_reopened"
    CONTACTS_CHANGED = "contacts_changed"
    CONTACT_UNDELIVERABLE = "contact_undeliverable"
    SUMMARY_BUILT = "summary_built"
    SUMMARY_QUEUED = "summary_queued"
    SUMMARY_APPROVAL_REQUESTED = "summary_approval_requested"
    SUMMARY_APPROVED = "summary_approved"
    SUMMARY_REJECTED = "summary_rejected"
    MAIL_NOT_QUEUED = "mail_not_queued"
    MAIL_RETRY_REQUESTED = "mail_retry_requested"
    MAIL_CANCELLED = "mail_cancelled"
    PORTAL_LINK_ISSUED = "portal_link_issued"
    PORTAL_LINKS_REVOKED = "portal_links_revoked"
    REMINDER_DROPPED = "reminder_dropped"  # domain.reminders.DROPPED_EVENT


def event_row(
    campaign_id: str,
    ags: str,
    enrolment_id: int | None,
    actor: str,
    now: datetime,
    kind: EventKind,
    from_stage: str | None,
    to_stage: str | None,
    reason: str | None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An ``Event`` row as a mapping, for bulk inserts of a whole batch."""
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
