"""What is stored: SQLModel tables. Importing this package registers every table."""

from models._types import UTCDateTime, table_of, utcnow
from models.bounces import BounceReport, Suppression
from models.campaign import (
    Campaign,
    ChecklistItemState,
    Enrolment,
    Event,
    QuestionnaireResponse,
)
from models.directory import Contact, Municipality
from models.outbox import OUTBOX_STATUSES, DeliveryAttempt, OutboxMessage
from models.portal import PortalToken, SummaryDocument

__all__ = [
    "OUTBOX_STATUSES",
    "BounceReport",
    "Campaign",
    "ChecklistItemState",
    "Contact",
    "DeliveryAttempt",
    "Enrolment",
    "Event",
    "Municipality",
    "OutboxMessage",
    "PortalToken",
    "QuestionnaireResponse",
    "SummaryDocument",
    "Suppression",
    "UTCDateTime",
    "table_of",
    "utcnow",
]
