"""Municipalities and their contacts: the directory a campaign draws on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from models._types import JSONType, UTCDateTime, utcnow


class Municipality(SQLModel, table=True):
    """A municipality (Gemeinde), keyed by its AGS."""

    ags: str = Field(primary_key=True, min_length=8, max_length=8)
    ars: str | None = Field(default=None, max_length=12, index=True)
    name: str = Field(max_length=200, description="Name as people write it, e.g. 'Aalen'")
    official_name: str | None = Field(default=None, max_length=200)
    type_code: str | None = Field(default=None, max_length=2, description="GV100AD Textkennzeichen")
    type_label: str | None = Field(default=None, max_length=60)
    association_code: str | None = Field(default=None, max_length=4)
    association_name: str | None = Field(default=None, max_length=200)
    district_code: str = Field(max_length=5, index=True)
    district_name: str | None = Field(default=None, max_length=200)
    state_code: str = Field(max_length=2, index=True)
    state_name: str | None = Field(default=None, max_length=100)
    population: int | None = Field(default=None, ge=0)
    postal_code: str | None = Field(default=None, max_length=5)
    attributes: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONType, nullable=False)
    )
    source: str | None = Field(default=None, max_length=300)
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class Contact(SQLModel, table=True):
    """A business contact at a municipality (a person or a shared mailbox)."""

    __table_args__ = (UniqueConstraint("ags", "role", "email", name="uq_contact_ags_role_email"),)

    id: int | None = Field(default=None, primary_key=True)
    ags: str = Field(foreign_key="municipality.ags", index=True, max_length=8)
    role: str = Field(
        max_length=60, description="Hauptamt, Bürgermeister, Meldebehörde, Bauamt, ..."
    )
    salutation: str | None = Field(default=None, max_length=10, description="Frau / Herr / None")
    name: str | None = Field(default=None, max_length=200)
    salutation_title: str | None = Field(
        default=None,
        max_length=100,
        description="Title in the salutation: 'Bürgermeister' → 'Sehr geehrter Herr Bürgermeister …'",
    )
    function: str | None = Field(default=None, max_length=200)
    email: str = Field(max_length=320)
    phone: str | None = Field(default=None, max_length=60)
    is_shared_mailbox: bool = Field(default=False)
    delivery_failed_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    delivery_failure: str | None = Field(default=None, max_length=500)
    source: str | None = Field(default=None, max_length=300)
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
