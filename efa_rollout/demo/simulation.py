"""The demo's data and the simulated municipalities: directory, contacts, campaigns, answers, ticks."""

from __future__ import annotations

import csv
import random
import shutil
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from efa_rollout.db import session_scope
from efa_rollout.demo.scenario import DISTRICT, EWA, PILOTS, REFERENCE, SIMULATION, VIBA, moment
from efa_rollout.domain.text import german_date
from efa_rollout.services import campaigns, clock, lookup
from models import Enrolment, Municipality


def prepare_data_dir(data_dir: Path) -> None:
    """Start from an empty demo folder (only ever the demo's own folder)."""
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)


def import_directory(say: Callable[[str], None]) -> None:
    """The Ostalbkreis from the official directory, plus the building-authority attribute."""
    from efa_rollout.importers.municipalities import import_municipalities

    with session_scope() as session:
        result = import_municipalities(session, REFERENCE / "GV100AD_301123.txt", district=DISTRICT)
    say(f"Gemeindeverzeichnis: {result.summary()}")
    with session_scope() as session:
        result = import_municipalities(session, REFERENCE / "ostalbkreis-baurechtsbehoerden.csv")
    say(f"Baurechtsbehörden: {result.summary()}")


def write_demo_contacts(path: Path) -> int:
    """A CSV of fictitious contacts (domain .example) for every Ostalbkreis municipality."""
    with session_scope() as session:
        municipalities = session.exec(
            select(Municipality)
            .where(Municipality.district_code == DISTRICT)
            .order_by(col(Municipality.ags))
        ).all()
    rng = random.Random(8136)
    surnames = [
        "Maier",
        "Schmid",
        "Weber",
        "Wagner",
        "Keller",
        "Hofmann",
        "Baur",
        "Fischer",
        "Roth",
        "Vogel",
    ]
    first_names = {
        "Frau": ["Anna", "Claudia", "Sabine", "Julia"],
        "Herr": ["Thomas", "Markus", "Jan", "Peter"],
    }

    def person(salutation: str) -> str:
        return f"{rng.choice(first_names[salutation])} {rng.choice(surnames)}"

    rows = []
    for m in municipalities:
        domain = campaigns.slugify(m.name) + ".example"
        mayor, clerk = rng.choice(["Frau", "Herr"]), rng.choice(["Frau", "Herr"])
        rows += [
            [m.ags, "Hauptamt", "", "", "", "Hauptamt", f"hauptamt@{domain}", "", "ja"],
            [
                m.ags,
                "Bürgermeister",
                mayor,
                "Bürgermeister" + ("in" if mayor == "Frau" else ""),
                person(mayor),
                "Bürgermeister" + ("in" if mayor == "Frau" else ""),
                f"buergermeister@{domain}",
                "",
                "nein",
            ],
            [m.ags, "Meldebehörde", "", "", "", "Bürgerbüro", f"buergerbuero@{domain}", "", "ja"],
            [
                m.ags,
                "Bauamt",
                clerk,
                "",
                person(clerk),
                "Bauverwaltung",
                f"bauamt@{domain}",
                "07361 5000-0",
                "nein",
            ],
        ]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(
            [
                "AGS",
                "Rolle",
                "Anrede",
                "Anredetitel",
                "Name",
                "Funktion",
                "E-Mail",
                "Telefon",
                "Funktionspostfach",
            ]
        )
        writer.writerows(rows)
    return len(rows)


def import_contacts(path: Path, say: Callable[[str], None]) -> None:
    """Import the fictitious contacts through the regular importer."""
    from efa_rollout.importers.contacts import import_contacts as run_import

    with session_scope() as session:
        result = run_import(session, path)
    say(f"Ansprechpersonen (fiktiv): {result.summary()}")


def create_campaigns(say: Callable[[str], None]) -> None:
    """ViBa BW (where the Landratsamt is the authority, with two pilots) and eWA (all 42)."""
    from efa_rollout.definitions import get_definition

    actor = SIMULATION
    with session_scope() as session:
        viba = campaigns.create_campaign(
            session,
            definition=get_definition("viba-bw"),
            area_code=DISTRICT,
            go_live=date(2024, 8, 1),
            now=moment(date(2023, 4, 14)),
            name=VIBA,
            pilots=PILOTS,
            actor=actor,
            date_overrides={
                "silent_go_live": date(2023, 11, 16),
                "mandatory_from": date(2025, 1, 1),
                "collection_deadline": date(2023, 5, 31),
            },
        )
        ewa = campaigns.create_campaign(
            session,
            definition=get_definition("ewa"),
            area_code=DISTRICT,
            go_live=date(2024, 10, 1),
            now=moment(date(2024, 4, 12)),
            name=EWA,
            actor=actor,
        )
        for campaign in (viba, ewa):
            count = len(
                campaigns.targeted_municipalities(
                    session, lookup.campaign_definition(campaign), DISTRICT
                )
            )
            say(
                f"Kampagne {campaign.id} angelegt: {count} Gemeinden, Go-Live {german_date(campaign.go_live)}"
            )


def _fill(value: Any, domain: str) -> Any:
    if isinstance(value, str):
        return value.replace("{domain}", domain)
    if isinstance(value, list):
        return [_fill(v, domain) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, domain) for k, v in value.items()}
    return value


def simulate_answers(campaign_id: str, share: float, now: datetime) -> int:
    """SIMULATED: a share of the municipalities submit complete answers through the 'portal'."""
    from efa_rollout.services.answers import save_answers

    rng = random.Random(f"{campaign_id}-answers")
    count = 0
    with session_scope() as session:
        campaign = lookup.get_campaign(session, campaign_id)
        rows = session.exec(
            select(Enrolment, Municipality)
            .join(Municipality, col(Municipality.ags) == col(Enrolment.ags))
            .where(Enrolment.campaign_id == campaign_id)
            .order_by(col(Enrolment.ags))
        ).all()
        for enrolment, municipality in rows:
            if rng.random() > share or enrolment.answers_complete:
                continue
            answers = _fill(
                SAMPLE_ANSWERS[campaign.template], campaigns.slugify(municipality.name) + ".example"
            )
            save_answers(
                session,
                enrolment=enrolment,
                answers=answers,
                submit=True,
                source="simulation",
                author=SIMULATION,
                now=now,
            )
            count += 1
    return count


def simulate_ticks(campaign_id: str, share: float, now: datetime) -> int:
    """SIMULATED: municipalities tick off the checklist items that are due by now (a share of them)."""
    from efa_rollout.services.checklist import checklist_view, set_checklist_item

    rng = random.Random(f"{campaign_id}-ticks-{now.date()}")
    today = clock.local_today(now)
    count = 0
    with session_scope() as session:
        campaign = lookup.get_campaign(session, campaign_id)
        definition = lookup.campaign_definition(campaign)
        enrolments = session.exec(
            select(Enrolment).where(Enrolment.campaign_id == campaign_id)
        ).all()
        for enrolment in enrolments:
            diligent = rng.random() < share
            for item in checklist_view(session, enrolment, definition, today=today):
                if (
                    item["done"]
                    or not diligent
                    or item["due"] > today + __import__("datetime").timedelta(days=21)
                ):
                    continue
                set_checklist_item(
                    session,
                    enrolment=enrolment,
                    item_key=item["key"],
                    done=True,
                    note="simuliert (Demo)",
                    source="simulation",
                    author=SIMULATION,
                    now=now,
                )
                count += 1
    return count


SAMPLE_ANSWERS: dict[str, dict[str, Any]] = {
    "viba-bw": {
        "kontakt_bauverwaltung": {
            "salutation": "Frau",
            "name": "Petra Beispiel",
            "function": "Bauverwaltung",
            "email": "bauamt@{domain}",
            "phone": "07361 5000-10",
        },
        "kontakt_vertretung": {
            "salutation": "Herr",
            "name": "Jonas Muster",
            "function": "Bauverwaltung",
            "email": "bauamt@{domain}",
        },
        "funktionspostfach": "bauamt@{domain}",
        "nutzer": [{"name": "Petra Beispiel", "email": "bauamt@{domain}"}],
        "einvernehmen_gremium": "ausschuss",
        "ablage": "eakte",
        "offene_punkte": "Simulierte Rückmeldung (Demo)",
    },
    "ewa": {
        "projektleitung": {
            "salutation": "Herr",
            "name": "Karl Beispiel",
            "function": "Hauptamtsleitung",
            "email": "hauptamt@{domain}",
        },
        "kontakt_technik": {"name": "IT-Stelle", "email": "hauptamt@{domain}"},
        "kontakt_fachlich": {"name": "Bürgerbüro", "email": "buergerbuero@{domain}"},
        "funktionspostfach": "buergerbuero@{domain}",
        "kontakt_datenschutz": {"name": "Datenschutzbeauftragte", "email": "hauptamt@{domain}"},
        "meldesoftware": "ok_ewo",
        "ewa_modul_bestellt": "ja",
        "routing_delegiert": "ja",
        "bearbeitung_1704": {"name": "Bürgerbüro", "email": "buergerbuero@{domain}"},
        "bearbeitung_1704_vertretung": {"name": "Hauptamt", "email": "hauptamt@{domain}"},
        "muellveranlagung": "Formular des Abfallwirtschaftsbetriebs wird bei der Anmeldung verschickt (simuliert).",
    },
}
