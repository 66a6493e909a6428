"""Test data for the collection and summary tests, built with the models directly."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlmodel import Session

from efa_rollout.definitions import CampaignDefinition, get_definition
from models import Campaign, ChecklistItemState, Enrolment, Municipality

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
GO_LIVE = date(2025, 8, 1)

MUNICIPALITIES = {
    "08136088": "Aalen",
    "08136019": "Essingen",
    "08136010": "Bopfingen",
    "08136027": "Hüttlingen",
}


def add_municipalities(session: Session) -> None:
    """The municipalities of MUNICIPALITIES (Ostalbkreis)."""
    for ags, name in MUNICIPALITIES.items():
        if session.get(Municipality, ags) is None:
            session.add(
                Municipality(
                    ags=ags,
                    name=name,
                    district_code="08136",
                    district_name="Ostalbkreis",
                    state_code="08",
                )
            )
    session.flush()


def make_campaign(
    session: Session, template: str = "ewa", *, campaign_id: str | None = None
) -> tuple[Campaign, CampaignDefinition]:
    """A running campaign from the shipped definition TEMPLATE, going live on GO_LIVE."""
    add_municipalities(session)
    definition = get_definition(template)
    campaign = Campaign(
        id=campaign_id or f"{template}-ostalbkreis",
        template=template,
        title=definition.title,
        service=definition.service,
        area_code="08136",
        area_name="Ostalbkreis",
        go_live=GO_LIVE,
        dates=definition.resolve_dates(GO_LIVE),
        definition=definition.model_dump(mode="json"),
        status="running",
        created_at=NOW,
        started_at=NOW,
    )
    session.add(campaign)
    session.flush()
    return campaign, definition


def enrol(
    session: Session,
    campaign: Campaign,
    definition: CampaignDefinition,
    ags: str,
    *,
    stage: str = "information_collection",
    role: str | None = None,
    is_pilot: bool = False,
    status: str = "active",
) -> Enrolment:
    """An enrolment with one ChecklistItemState per applicable item, as the engine makes it."""
    items = definition.items_for(role, is_pilot)
    enrolment = Enrolment(
        campaign_id=campaign.id,
        ags=ags,
        stage=stage,
        stage_entered_at=NOW,
        status=status,
        role=role,
        is_pilot=is_pilot,
        required_open=sum(1 for i in items if i.required),
        updated_at=NOW,
    )
    session.add(enrolment)
    session.flush()
    for item in items:
        session.add(
            ChecklistItemState(enrolment_id=enrolment.id, item_key=item.key, updated_at=NOW)
        )
    session.flush()
    return enrolment


def contact(name: str, email: str, **extra: str) -> dict[str, str]:
    """A contact answer."""
    return {"name": name, "email": email, **extra}


def complete_ewa_answers(prefix: str = "a") -> dict[str, object]:
    """A complete set of eWA answers."""
    return {
        "projektleitung": contact(
            "Anna Muster", f"{prefix}.muster@gemeinde.example", salutation="Frau"
        ),
        "kontakt_technik": contact("Tim Technik", f"{prefix}.technik@gemeinde.example"),
        "kontakt_fachlich": contact("Fritz Fach", f"{prefix}.fach@gemeinde.example"),
        "funktionspostfach": f"meldeamt-{prefix}@gemeinde.example",
        "kontakt_datenschutz": contact("Dora Daten", f"{prefix}.ds@gemeinde.example"),
        "meldesoftware": "ok_ewo",
        "ewa_modul_bestellt": "ja",
        "routing_delegiert": "nein",
        "bearbeitung_1704": contact("Bert Bearbeiter", f"{prefix}.b@gemeinde.example"),
        "bearbeitung_1704_vertretung": contact("Vera Vertretung", f"{prefix}.v@gemeinde.example"),
        "wunsch_stichtag": "15.07.2025",
        "muellveranlagung": "Formular des Abfallwirtschaftsbetriebs bei der Anmeldung",
    }


def add_contacts(session: Session, ags_list: list[str] | None = None) -> None:
    """A shared mailbox of the Hauptamt for each municipality (so campaign mail can be queued)."""
    from models import Contact

    for ags in ags_list or list(MUNICIPALITIES):
        session.add(
            Contact(
                ags=ags,
                role="Hauptamt",
                email=f"hauptamt-{ags}@gemeinde.example",
                is_shared_mailbox=True,
                updated_at=NOW,
            )
        )
    session.flush()
