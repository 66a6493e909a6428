"""Building blocks for engine tests: the Ostalbkreis with contacts and both campaigns."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from sqlmodel import Session, func, select

from efa_rollout.db import get_engine, session_scope
from efa_rollout.definitions import get_definition
from efa_rollout.demo import scenario, simulation
from efa_rollout.services import campaigns
from efa_rollout.settings import get_settings
from models import ChecklistItemState, Enrolment, Event, OutboxMessage

VIBA, EWA = scenario.VIBA, scenario.EWA


def at(day: str, hour: int = 9) -> datetime:
    """A local moment on DAY as aware UTC."""
    local = datetime.combine(date.fromisoformat(day), datetime.min.time()).replace(hour=hour)
    return local.replace(tzinfo=get_settings().zone).astimezone(UTC)


def ostalbkreis_with_campaigns(data_dir: Path) -> None:
    """Directory, building authorities, fictitious contacts, ViBa BW and eWA (not started)."""
    messages: list[str] = []
    simulation.import_directory(messages.append)
    csv_path = data_dir / "contacts.csv"
    data_dir.mkdir(parents=True, exist_ok=True)
    simulation.write_demo_contacts(csv_path)
    simulation.import_contacts(csv_path, messages.append)
    simulation.create_campaigns(messages.append)


def create_ewa(go_live: str = "2024-10-01", name: str = EWA) -> None:
    """Only the eWA campaign."""
    with session_scope() as session:
        campaigns.create_campaign(
            session,
            definition=get_definition("ewa"),
            area_code="08136",
            go_live=date.fromisoformat(go_live),
            now=at("2024-04-01"),
            name=name,
            actor="test",
        )


def snapshot(campaign_id: str) -> dict[str, object]:
    """Everything the engine writes, to compare before and after a repeated run."""
    with Session(get_engine()) as session:
        stages = sorted(
            (e.ags, e.stage, e.status, e.version)
            for e in session.exec(select(Enrolment).where(Enrolment.campaign_id == campaign_id))
        )
        outbox = sorted(
            (m.ags or "", m.kind, m.sequence)
            for m in session.exec(
                select(OutboxMessage).where(OutboxMessage.campaign_id == campaign_id)
            )
        )
        events = session.exec(
            select(func.count()).select_from(Event).where(Event.campaign_id == campaign_id)
        ).one()
        items = session.exec(select(func.count()).select_from(ChecklistItemState)).one()
    return {"stages": stages, "outbox": outbox, "events": events, "items": items}
