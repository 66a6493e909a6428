"""What is stored: SQLModel tables, each module imported on first use of one of its names.

`from models import Campaign` loads `models.campaign` (and the tables its foreign keys point
to), not all thirteen tables: a read-only command saves the rest (`models.outbox` alone costs
~40 ms). What needs every table on `SQLModel.metadata` (the migrations) calls `load_all()`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as mypy and readers see them; at run time via __getattr__
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

#: Every table module: importing them all registers every table.
MODULES = ("bounces", "campaign", "directory", "outbox", "portal")

#: Public name → the module (in this package) that defines it.
_HOMES = {
    "UTCDateTime": "_types",
    "table_of": "_types",
    "utcnow": "_types",
    "BounceReport": "bounces",
    "Suppression": "bounces",
    "Campaign": "campaign",
    "ChecklistItemState": "campaign",
    "Enrolment": "campaign",
    "Event": "campaign",
    "QuestionnaireResponse": "campaign",
    "Contact": "directory",
    "Municipality": "directory",
    "OUTBOX_STATUSES": "outbox",
    "DeliveryAttempt": "outbox",
    "OutboxMessage": "outbox",
    "PortalToken": "portal",
    "SummaryDocument": "portal",
}

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
    "load_all",
    "table_of",
    "utcnow",
]


def load_all() -> None:
    """Import every table module, so that `SQLModel.metadata` holds every table."""
    for module in MODULES:
        importlib.import_module(f"{__name__}.{module}")


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # __import__, not importlib.import_module: the C import path, which -X importtime reports.
    value = getattr(__import__(f"{__name__}.{home}", fromlist=[name]), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
