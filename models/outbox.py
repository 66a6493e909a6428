"""The outbox ledger: every mail is a row before any SMTP traffic."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from models._types import JSONType, LazyDialectIndex, UTCDateTime, utcnow

OUTBOX_STATUSES = (
    "queued",
    "sending",
    "sent",
    "retrying",
    "failed_permanently",
    "unknown",
    "cancelled",
)

#: Rows delivery may claim (the partial index ix_outbox_due and the claim use the same text).
DUE_CONDITION = "status IN ('queued', 'retrying')"


class OutboxMessage(SQLModel, table=True):
    """One logical mail; (campaign, municipality, kind, sequence) is unique."""

    __table_args__ = (
        UniqueConstraint("campaign_id", "ags", "kind", "sequence", name="uq_outbox_logical_mail"),
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
        # The roll-up's mail figures per municipality, read from the index alone: the rows
        # themselves carry the whole MIME message (SQLite walks its overflow pages to reach
        # the columns after it). Its campaign_id prefix also serves lookups by campaign.
        Index(
            "ix_outbox_campaign_mail",
            "campaign_id",
            "ags",
            "status",
            "is_test",
            "queued_at",
            "sent_at",
        ),
        # The delivery claim's order over due rows only: without it PostgreSQL sorts every
        # due row under FOR UPDATE on each claim (11 ms for Germany's 21,546 mails).
        LazyDialectIndex(
            "ix_outbox_due",
            "next_attempt_at",
            "id",
            postgresql_where=text(DUE_CONDITION),
            sqlite_where=text(DUE_CONDITION),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str | None = Field(default=None, max_length=80)
    ags: str | None = Field(default=None, max_length=8)
    kind: str = Field(max_length=40, description="information_request, reminder, summary, ...")
    sequence: int = Field(default=1, description="Which one of this kind (reminder no., version)")
    message_id: str = Field(max_length=300, unique=True)
    sender: str = Field(max_length=320)
    recipients: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    cc: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    subject: str = Field(max_length=500)
    raw: bytes = Field(
        sa_column=Column(LargeBinary, nullable=False), description="Full MIME message"
    )
    is_test: bool = Field(default=False, description="A [TEST] copy: never counts as campaign mail")
    status: str = Field(default="queued", max_length=24)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    not_after: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True), description="Late-send guard"
    )
    claimed_by: str | None = Field(default=None, max_length=120)
    claimed_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    queued_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    last_error: str | None = Field(default=None, max_length=1000)
    recipient_status: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONType, nullable=False)
    )
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))


class DeliveryAttempt(SQLModel, table=True):
    """One SMTP attempt for one outbox message, with the server's reply."""

    id: int | None = Field(default=None, primary_key=True)
    outbox_id: int = Field(foreign_key="outboxmessage.id", index=True)
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    worker: str | None = Field(default=None, max_length=120)
    outcome: str = Field(max_length=24, description="sent/retry/failed/unknown/partial")
    smtp_code: int | None = None
    smtp_text: str | None = Field(default=None, max_length=1000)
    recipient: str | None = Field(default=None, max_length=320)
