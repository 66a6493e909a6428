"""Personal portal links (stored as hashes only) and summary documents."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

import models.campaign  # noqa: F401 - the tables the foreign keys point to (campaign, municipality)
from models._types import UTCDateTime, utcnow


class PortalToken(SQLModel, table=True):
    """A personal link for one campaign and one municipality; only its hash is stored."""

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(foreign_key="campaign.id", max_length=80, index=True)
    ags: str = Field(foreign_key="municipality.ags", max_length=8)
    token_hash: str = Field(max_length=128, unique=True)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class SummaryDocument(SQLModel, table=True):
    """One version of a campaign's summary (Zusammenfassung), as HTML and PDF."""

    __table_args__ = (UniqueConstraint("campaign_id", "version", name="uq_summary_version"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: str = Field(foreign_key="campaign.id", max_length=80)
    version: int
    content_hash: str = Field(max_length=64)
    html: str = Field(sa_column=Column(Text, nullable=False))
    pdf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
