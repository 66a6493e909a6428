"""Test data for the mail tests: one campaign (ViBa BW definition), municipalities, contacts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlmodel import Session

from efa_rollout.definitions import get_definition
from models import Campaign, Contact, Enrolment, Municipality, OutboxMessage

NOW = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)  # Monday, 09:00 in Berlin (winter time)


def add_municipality(
    session: Session, ags: str = "08136019", name: str = "Essingen", type_code: str = "64"
) -> Municipality:
    """A municipality of the Ostalbkreis."""
    municipality = Municipality(
        ags=ags, name=name, type_code=type_code, district_code=ags[:5], state_code=ags[:2]
    )
    session.add(municipality)
    session.flush()
    return municipality


def add_contact(session: Session, ags: str, email: str, **fields: Any) -> Contact:
    """A contact (role Hauptamt unless given)."""
    fields.setdefault("role", "Hauptamt")
    contact = Contact(ags=ags, email=email, **fields)
    session.add(contact)
    session.flush()
    return contact


def add_campaign(
    session: Session,
    campaign_id: str = "viba-ostalbkreis",
    *,
    mail: dict[str, str] | None = None,
    service: str = "ViBa BW",
) -> Campaign:
    """The ViBa BW campaign, go-live 01.08.2025, with the definition snapshot."""
    definition = get_definition("viba-bw")
    snapshot = definition.model_dump(mode="json")
    if mail is not None:
        snapshot["mail"] = mail
    go_live = date(2025, 8, 1)
    campaign = Campaign(
        id=campaign_id,
        template="viba-bw",
        title="ViBa BW im Ostalbkreis",
        service=service,
        area_code="08136",
        go_live=go_live,
        dates=definition.resolve_dates(go_live),
        definition=snapshot,
        status="running",
    )
    session.add(campaign)
    session.flush()
    return campaign


def add_enrolment(session: Session, campaign: Campaign, ags: str) -> Enrolment:
    """ENROLMENT of AGS in CAMPAIGN, in checklist follow-up."""
    enrolment = Enrolment(
        campaign_id=campaign.id,
        ags=ags,
        stage="checklist_follow_up",
        stage_entered_at=NOW,
        role="landratsamt",
    )
    session.add(enrolment)
    session.flush()
    return enrolment


def setup_one(
    session: Session, *emails: str, municipality_name: str = "Essingen", **contact_fields: Any
) -> tuple[Campaign, Enrolment, Municipality]:
    """A campaign, a municipality with one contact per EMAIL, an enrolment; committed."""
    campaign = add_campaign(session)
    municipality = add_municipality(session, name=municipality_name)
    for email in emails or ("hauptamt@essingen.example",):
        add_contact(session, municipality.ags, email, **contact_fields)
    enrolment = add_enrolment(session, campaign, municipality.ags)
    session.commit()
    return campaign, enrolment, municipality


def queue_request(
    session: Session,
    *emails: str,
    ags: str = "08136019",
    name: str = "Essingen",
    roles: Mapping[str, str] | None = None,
    **contact_fields: Any,
) -> OutboxMessage:
    """The information request to a new municipality AGS whose contacts have EMAILS; committed.

    ROLES gives a contact a role other than Hauptamt, by address.
    """
    from efa_rollout.services.outbox import queue_campaign_mail

    campaign = session.get(Campaign, "viba-ostalbkreis") or add_campaign(session)
    municipality = add_municipality(session, ags=ags, name=name)
    for email in emails:
        role = (roles or {}).get(email)
        add_contact(session, ags, email, **({"role": role} if role else {}), **contact_fields)
    enrolment = add_enrolment(session, campaign, ags)
    row = queue_campaign_mail(
        session,
        campaign=campaign,
        enrolment=enrolment,
        municipality=municipality,
        kind="information_request",
        sequence=1,
        now=NOW,
    )
    assert row is not None
    session.commit()
    return row
