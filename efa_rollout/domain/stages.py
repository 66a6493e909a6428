"""The stages of a municipality's pipeline and their German labels."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from efa_rollout import texts


class Stage(StrEnum):
    """Where an enrolment stands; the order of members is the pipeline order."""

    INFORMATION_COLLECTION = "information_collection"
    SUMMARY_DISTRIBUTION = "summary_distribution"
    CHECKLIST_FOLLOW_UP = "checklist_follow_up"
    PILOT = "pilot"
    SILENT_GO_LIVE = "silent_go_live"
    GO_LIVE = "go_live"
    AFTER_CARE = "after_care"
    MANDATORY = "mandatory"
    COMPLETED = "completed"

    @classmethod
    def generic(cls) -> list[Stage]:
        """The four stages every campaign has."""
        return [
            cls.INFORMATION_COLLECTION,
            cls.SUMMARY_DISTRIBUTION,
            cls.CHECKLIST_FOLLOW_UP,
            cls.GO_LIVE,
        ]

    @classmethod
    def pipeline(cls) -> list[Stage]:
        """All stages in order."""
        return list(cls)

    @property
    def label(self) -> str:
        """German label for reports and the portal."""
        return STAGE_LABELS[self]


OPTIONAL_STAGES = frozenset(
    {Stage.PILOT, Stage.SILENT_GO_LIVE, Stage.MANDATORY, Stage.AFTER_CARE, Stage.COMPLETED}
)

#: Labels in templates/texts/domain.ini, read on first use.
STAGE_LABELS: Mapping[Stage, str] = texts.table("stage", Stage)


class EnrolmentStatus(StrEnum):
    """Whether the engine acts on an enrolment."""

    ACTIVE = "active"
    PAUSED = "paused"
    NOT_APPLICABLE = "not_applicable"


STATUS_LABELS: Mapping[EnrolmentStatus, str] = texts.table("enrolment_status", EnrolmentStatus)


class CampaignStatus(StrEnum):
    """Where a campaign stands as a whole (stored as its value)."""

    CREATED = "created"
    RUNNING = "running"
    CLOSED = "closed"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        """German label for the CLI and reports."""
        return CAMPAIGN_STATUS_LABELS[self]


#: Keyed by str: a stored status (plain str) finds its label too.
CAMPAIGN_STATUS_LABELS: Mapping[str, str] = texts.table("campaign_status")


class ResponseStatus(StrEnum):
    """Whether a questionnaire answers version is a draft or was submitted (stored as its value)."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
