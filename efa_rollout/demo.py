"""The demo: the Ostalbkreis rolls out ViBa BW and eWA on a simulated timeline.

Everything a municipality does here (answers, ticks) is SIMULATED and logged as such
(source "simulation", author "Simulation (Demo)"); mail goes into the mail folder.
"""

from __future__ import annotations

import csv
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from efa_rollout import PROJECT_ROOT
from efa_rollout.db import get_engine, session_scope
from efa_rollout.domain.text import german_date
from efa_rollout.services import campaigns, clock, lookup
from efa_rollout.settings import get_settings
from models import Enrolment, Municipality

REFERENCE = PROJECT_ROOT / "reference"
DISTRICT = "08136"
SIMULATION = "Simulation (Demo)"
VIBA = "viba-bw-ostalbkreis"
EWA = "ewa-ostalbkreis"
PILOTS = ("08136021", "08136033")  # Essingen, Hüttlingen


@dataclass(frozen=True)
class Step:
    """One moment on the simulated timeline and what happens then."""

    day: date
    title: str
    actions: tuple[str, ...]


TIMELINE: tuple[Step, ...] = (
    Step(date(2023, 4, 17), "ViBa BW: Kampagne startet", ("start:" + VIBA,)),
    Step(date(2023, 5, 15), "ViBa BW: erste Rückmeldungen", ("answer:" + VIBA + ":0.55",)),
    Step(date(2023, 5, 26), "ViBa BW: freundliche Erinnerung vor der Frist", ()),
    Step(date(2023, 6, 2), "ViBa BW: Zusammenfassung an alle", ("summary:" + VIBA,)),
    Step(date(2023, 10, 26), "ViBa BW: Pilotphase", ("tick_items:" + VIBA + ":0.3",)),
    Step(date(2023, 11, 16), "ViBa BW: Silent Go-Live der Pilotgemeinden", ()),
    Step(
        date(2024, 4, 15), "eWA: Kampagne startet", ("start:" + EWA, "tick_items:" + VIBA + ":0.6")
    ),
    Step(date(2024, 6, 3), "eWA: Rückmeldungen", ("answer:" + EWA + ":0.6",)),
    Step(date(2024, 7, 4), "eWA: freundliche Erinnerung vor der Frist", ()),
    Step(date(2024, 7, 9), "eWA: Frist abgelaufen, Zusammenfassung", ("summary:" + EWA,)),
    Step(date(2024, 8, 1), "ViBa BW: Go-Live", ("tick_items:" + EWA + ":0.5",)),
    Step(
        date(2024, 9, 16), "eWA: Checklisten werden abgearbeitet", ("tick_items:" + EWA + ":0.8",)
    ),
    Step(date(2024, 10, 1), "eWA: Go-Live (nur wo alle Pflichtpunkte erledigt sind)", ()),
    Step(
        date(2025, 1, 2),
        "ViBa BW: digitale Antragstellung verpflichtend",
        ("tick_items:" + VIBA + ":1.0",),
    ),
)


def moment(day: date) -> datetime:
    """09:00 local time on DAY (inside the sending window)."""
    return datetime.combine(day, time(9, 0), tzinfo=get_settings().zone)


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


class DemoRunner:
    """Runs the simulated timeline through the real flows (Prefect's local mode by default)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say

    def run(self) -> None:
        """Every step of TIMELINE: the simulated municipalities act, then the flows run."""
        from efa_rollout.cli._flows import prepare_prefect_environment

        prepare_prefect_environment()
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            for step in TIMELINE:
                self.run_step(step)

    def run_step(self, step: Step) -> None:
        """One simulated day."""
        now = moment(step.day)
        self.say(f"\n── {german_date(step.day)} · {step.title}")
        summaries = []
        for action in step.actions:
            kind, _, rest = action.partition(":")
            if kind == "start":
                self.start(rest, now)
            elif kind == "answer":
                campaign_id, _, share = rest.rpartition(":")
                self.say(
                    f"   simuliert: {simulate_answers(campaign_id, float(share), now)} Gemeinden senden ihre Rückmeldung ({campaign_id})"
                )
            elif kind == "tick_items":
                campaign_id, _, share = rest.rpartition(":")
                self.say(
                    f"   simuliert: {simulate_ticks(campaign_id, float(share), now)} Checklistenpunkte abgehakt ({campaign_id})"
                )
            elif kind == "summary":
                summaries.append(rest)
        for campaign_id in summaries:
            self.summary(campaign_id, now)
        self.go_live(now)  # applies every due transition, go-live included
        self.remind(now)
        self.deliver(now)

    def start(self, campaign_id: str, now: datetime) -> None:
        """The start-campaign flow."""
        from prefect import tags

        from efa_rollout.services.orchestration import campaign_tags
        from flows.start_campaign import StartCampaignInput, start_campaign

        service = "viba" if campaign_id == VIBA else "ewa"
        with tags(*campaign_tags(campaign_id, service)):
            figures = start_campaign(params=StartCampaignInput(campaign=campaign_id, as_of=now))
        self.say(
            f"   {campaign_id} gestartet: {figures['enrolments']} Gemeinden, {figures['mails_queued']} Informationsanfragen"
        )

    def tick(self, now: datetime) -> None:
        """The tick flow over all running campaigns."""
        from flows.tick import tick

        self._report_changes(tick(as_of=now), "Tick")

    def go_live(self, now: datetime) -> None:
        """The go-live flow over all running campaigns."""
        from flows.go_live import go_live

        self._report_changes(go_live(as_of=now), "Stufen")

    def _report_changes(self, figures: dict[str, dict[str, Any]], label: str) -> None:
        for campaign_id, fig in figures.items():
            if fig["changes"] or fig["mails_queued"] or fig["blocked"]:
                self.say(
                    f"   {label} {campaign_id}: {fig['changes']} Stufenwechsel, {fig['mails_queued']} Mails"
                    + (f", {fig['blocked']} warten auf Pflichtpunkte" if fig["blocked"] else "")
                )

    def summary(self, campaign_id: str, now: datetime) -> None:
        """The coordinator closes collection and the summary goes out."""
        from flows.distribute_summary import distribute_summary

        with session_scope() as session:
            campaigns.close_collection(session, campaign_id, now=now, actor=SIMULATION)
        self.tick(now)  # everybody still collecting moves on to the summary stage
        result = distribute_summary(campaign=campaign_id, as_of=now)
        self.say(
            f"   Zusammenfassung {campaign_id}: Version {result.get('version')}, "
            f"{result.get('queued', 0)} Mails in den Postausgang"
        )

    def remind(self, now: datetime) -> None:
        """The reminder flow."""
        from flows.send_reminders import send_reminders

        result = send_reminders(as_of=now)
        self.say(f"   Erinnerungen: {_short(result)}")

    def deliver(self, now: datetime) -> None:
        """Deliver the outbox (into the mail folder when no SMTP server is configured)."""
        try:
            from flows.deliver_outbox import deliver_outbox
        except ImportError:  # the flow module is optional; the ledger does the work
            from efa_rollout.mail.delivery import deliver

            result: Any = deliver(now=now)
        else:
            result = deliver_outbox(as_of=now)
        self.say(f"   Postausgang: {_short(result)}")


def _short(result: Any) -> str:
    """Numeric figures of a flow result (dict, dataclass or a list of them), summed."""
    items = result if isinstance(result, list) else [result]
    totals: dict[str, int] = {}
    for item in items:
        values = item if isinstance(item, dict) else getattr(item, "__dict__", {})
        for key, value in values.items():
            if isinstance(value, int) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0) + value
    return (
        ", ".join(f"{FIGURE_LABELS.get(k, k)}: {v}" for k, v in totals.items() if v)
        or "nichts zu tun"
    )


FIGURE_LABELS = {
    "evaluated": "geprüft",
    "reminders": "Erinnerungen",
    "escalations": "Eskalationen",
    "dropped": "verpasste Termine verworfen",
    "deferred": "zurückgestellt",
    "without_recipient": "ohne Empfänger",
}


def write_reports(data_dir: Path, now: datetime, say: Callable[[str], None]) -> list[Path]:
    """The status reports of both campaigns (HTML and XLSX) as of the end of the simulation."""
    try:
        from efa_rollout.reports import write_report
    except ImportError:
        say("Berichte: (Modul efa_rollout.reports noch nicht verfügbar)")
        return []
    paths = []
    for campaign_id in (VIBA, EWA):
        for fmt in ("html", "xlsx"):
            paths.append(write_report(campaign_id, fmt=fmt, out=None, as_of=now))
    return paths


def run_demo(data_dir: Path, say: Callable[[str], None]) -> None:
    """The whole demo into DATA_DIR."""
    prepare_data_dir(data_dir)
    get_engine()
    say(f"Daten: {data_dir}")
    import_directory(say)
    contacts_csv = data_dir / "demo-ansprechpersonen.csv"
    write_demo_contacts(contacts_csv)
    import_contacts(contacts_csv, say)
    create_campaigns(say)
    DemoRunner(say).run()
    end = moment(TIMELINE[-1].day)
    reports = write_reports(data_dir, end, say)
    keep_links_open(datetime.now(UTC), say)
    _closing(data_dir, reports, say)


def keep_links_open(now: datetime, say: Callable[[str], None]) -> int:
    """SIMULATED time ends long before today: the newest link per municipality stays valid.

    The demo's mails were sent in 2023–2025, so their links would all have expired (410).
    The newest live link of each campaign and municipality gets the usual validity from
    NOW, so the links in the newest mails open the portal; older ones stay expired.
    """
    from models import PortalToken

    settings = get_settings()
    until = now + timedelta(days=settings.portal_token_days)
    with session_scope() as session:
        rows = session.exec(
            select(PortalToken)
            .where(col(PortalToken.revoked_at).is_(None))
            .order_by(col(PortalToken.created_at), col(PortalToken.id))
        ).all()
        newest = {(r.campaign_id, r.ags): r for r in rows}
        for token in newest.values():
            token.expires_at = until
            session.add(token)
    say(
        f"Persönliche Links (simuliert): der neueste Link je Gemeinde und Kampagne "
        f"({len(newest)}) bleibt bis {until.astimezone(settings.zone):%d.%m.%Y} gültig."
    )
    return len(newest)


def _closing(data_dir: Path, reports: list[Path], say: Callable[[str], None]) -> None:
    mail_dir = get_settings().effective_mail_dir
    mails = len(list(mail_dir.glob("*.eml"))) if mail_dir.exists() else 0
    say("\nFertig. Hier sehen Sie sich um:")
    say(f"  Mails ({mails} Dateien):   {mail_dir}")
    for path in reports:
        say(f"  Bericht:               {path}")
    say(f"  Datenbank:             {get_settings().effective_database_url}")
    say(
        f"\nDie Befehle beziehen sich auf diese Daten, wenn Sie vorher setzen:\n  export EFA_DATA_DIR={data_dir}"
    )
    for command in (
        f"efa campaign status {EWA}",
        f"efa campaign show {VIBA}",
        "efa mail outbox --status sent",
        f"efa report {EWA} --format html --as-of 2025-01-02",
        "efa municipalities list --district 08136",
    ):
        say(f"  .venv/bin/{command}")
