"""Campaigns, enrolments, answers, checklist state and the event log."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

import models.directory  # noqa: F401 - the table Enrolment.ags points to, for the unit of work
from models._types import JSONType, UTCDateTime, utcnow


class Campaign(SQLModel, table=True):
    """One rollout of one EfA service in one area, created from a definition."""

    id: str = Field(primary_key=True, max_length=80, description="Slug, e.g. ewa-ostalbkreis")
    template: str = Field(max_length=80, description="Key of the campaign definition")
    title: str = Field(max_length=300)
    service: str = Field(max_length=120)
    area_code: str = Field(max_length=12, description="District (5) or state (2) code targeted")
    area_name: str | None = Field(default=None, max_length=200)
    go_live: date
    dates: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSONType, nullable=False),
        description="Resolved key dates (ISO) such as collection_deadline, mandatory_from",
    )
    definition: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSONType, nullable=False),
        description="Snapshot of the definition at creation, so edits never change a running one",
    )
    status: str = Field(default="created", max_length=20, description="created/running/closed")
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    started_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    collection_closed_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class Enrolment(SQLModel, table=True):
    """A municipality taking part in a campaign, and where it stands."""

    __table_args__ = (
        UniqueConstraint("campaign_id", "ags", name="uq_enrolment_campaign_ags"),
        Index("ix_enrolment_campaign_stage", "campaign_id", "stage"),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(foreign_key="campaign.id", max_length=80)
    ags: str = Field(foreign_key="municipality.ags", max_length=8, index=True)
    stage: str = Field(max_length=40)
    stage_entered_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    status: str = Field(default="active", max_length=20, description="active/paused/not_applicable")
    role: str | None = Field(
        default=None, max_length=60, description="Role variant, e.g. landratsamt"
    )
    role_attributes: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONType, nullable=False)
    )
    is_pilot: bool = Field(default=False)
    go_live: date | None = Field(
        default=None, description="Own go-live date, if not the campaign's"
    )
    answers_complete: bool = Field(default=False, description="Latest submitted answers complete")
    required_open: int = Field(default=0, description="Required checklist items not done")
    version: int = Field(default=0, description="Bumped on every change; optimistic locking")
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class ChecklistItemState(SQLModel, table=True):
    """Whether one checklist item of one enrolment is done."""

    __table_args__ = (UniqueConstraint("enrolment_id", "item_key", name="uq_checklist_item"),)

    id: int | None = Field(default=None, primary_key=True)
    enrolment_id: int = Field(foreign_key="enrolment.id", index=True)
    item_key: str = Field(max_length=80)
    done: bool = Field(default=False)
    done_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    note: str | None = Field(default=None, max_length=2000)
    source: str | None = Field(default=None, max_length=40, description="portal/cli/import/prefect")
    author: str | None = Field(default=None, max_length=200)
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class QuestionnaireResponse(SQLModel, table=True):
    """One version of a municipality's answers; versions are never overwritten."""

    __table_args__ = (UniqueConstraint("enrolment_id", "version", name="uq_response_version"),)

    id: int | None = Field(default=None, primary_key=True)
    enrolment_id: int = Field(foreign_key="enrolment.id", index=True)
    version: int
    status: str = Field(default="draft", max_length=20, description="draft/submitted")
    answers: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONType, nullable=False)
    )
    complete: bool = Field(default=False, description="All required fields answered and valid")
    source: str = Field(max_length=40, description="portal/cli/import/prefect")
    author: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class Event(SQLModel, table=True):
    """Append-only log: who did what to which enrolment, when, and why."""

    __table_args__ = (Index("ix_event_campaign_at", "campaign_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    campaign_id: str | None = Field(default=None, max_length=80)
    ags: str | None = Field(default=None, max_length=8)
    enrolment_id: int | None = Field(default=None, index=True)
    actor: str = Field(max_length=200, description="Person or system (flow name) that acted")
    kind: str = Field(max_length=60, description="e.g. stage_changed, answer_submitted, override")
    from_stage: str | None = Field(default=None, max_length=40)
    to_stage: str | None = Field(default=None, max_length=40)
    reason: str | None = Field(default=None, max_length=1000)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
