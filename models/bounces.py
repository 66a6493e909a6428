"""Bounces: the suppression list and the delivery reports read from the bounce mailbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from models._types import JSONType, UTCDateTime, utcnow


class Suppression(SQLModel, table=True):
    """An address no mail is queued to (a permanent bounce); lifted, not deleted."""

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True, description="Lower-case address")
    reason: str = Field(max_length=1000, description="The report's diagnostic text")
    status_code: str | None = Field(default=None, max_length=16)
    outbox_id: int | None = Field(default=None, description="The mail that bounced")
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    lifted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    lifted_by: str | None = Field(default=None, max_length=200)


class BounceReport(SQLModel, table=True):
    """One processed message of the bounce mailbox: a report or an auto-reply, per recipient."""

    id: int | None = Field(default=None, primary_key=True)
    report_key: str = Field(max_length=300, index=True, description="Message-ID or hash")
    recipient: str = Field(default="", max_length=320)
    kind: str = Field(max_length=20, description="permanent, transient, auto_reply")
    status_code: str | None = Field(default=None, max_length=16)
    diagnostic: str = Field(default="", max_length=1000)
    outbox_id: int | None = Field(default=None, index=True)
    ags: str | None = Field(default=None, max_length=8)
    processed_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
